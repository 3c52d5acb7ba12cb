/* SPDX-License-Identifier: Apache-2.0 */
/* ds_mpi_example.c — an MPI program that appends to a FAM dataset store and
 * reads it back, beside kodiakd and Python on the same store.
 *
 *   FAM_SERVERS=host:port[,...] [FAM_PROVIDER=tcp] \
 *     mpirun -np P ./ds_mpi_example [--one-commit] STORE DATASET ROWS
 *   FAM_SERVERS=... mpirun -np P ./ds_mpi_example --read STORE [DATASET]
 *
 * Append mode: opens (or creates) store STORE and dataset DATASET with
 * columns id (int64), fare (float64), rank (int64) and zone (text); rank r
 * appends one batch of ROWS + r rows:
 *   id   = r * 1000000000 + i          fare = (i % 1000) * 0.25 + r
 *   rank = r                           zone = "zone-<r>-<i % 4>", missing when i % 4 == 3
 * (zone's categories are the batch's own: "zone-<r>-0" .. "zone-<r>-2").
 * Each rank commits its own batch, at the same time as the others; with
 * --one-commit rank 0 commits every rank's batch in one atomic commit.
 * Then, as in read mode, it reads DATASET back.
 *
 * Read mode (and the end of append mode): for each dataset (DATASET only,
 * if given), rank r reads the batches b with b % P == r, and rank 0 prints
 *   dataset <name> (<kind>): <rows> rows in <batches> batches, catalog version <v>
 *     <column> <dtype> sum=<s>
 * where s is the sum of the column over every row: int64, datetime64[s]
 * and uint64 as 64-bit integers (wrapping), float64 as a double (%.17g),
 * bool the number of true values, text the sum over non-missing rows of
 * crc32 (zlib) of the row's category, followed by missing=<n>. A checksum
 * any other reader (Python: zlib.crc32) can recompute. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include <zlib.h>

#include "kodiak/dataset.h"

#define CHUNK (1u << 20) /* rows read or written per call */

static int rank, nranks;

/* Report a failed call and stop every rank. */
#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0) {                                                         \
            fprintf(stderr, "ds_mpi_example (rank %d): %s failed: %s (%s)\n",  \
                    rank, #call, ds_last_error(), ds_strerror(rc_));           \
            MPI_Abort(MPI_COMM_WORLD, 1);                                      \
        }                                                                      \
    } while (0)

static const ds_column_def_t cols[] = {
    {"id", DS_INT64}, {"fare", DS_FLOAT64}, {"rank", DS_INT64}, {"zone", DS_TEXT}};
#define NCOLS 4

/* Begin and write this rank's batch (not yet committed). */
static ds_batch_t *append_mine(ds_store_t *s, const char *dataset, uint64_t rows)
{
    ds_batch_t *b;
    CHECK(ds_batch_begin(s, dataset, rows, &b));
    int64_t *iv = malloc(CHUNK * 8), *rv = malloc(CHUNK * 8), *zv = malloc(CHUNK * 8);
    double *fv = malloc(CHUNK * 8);
    if (!iv || !rv || !zv || !fv) {
        fprintf(stderr, "ds_mpi_example (rank %d): out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (uint64_t at = 0; at < rows; at += CHUNK) {
        uint64_t k = rows - at < CHUNK ? rows - at : CHUNK;
        for (uint64_t j = 0; j < k; j++) {
            uint64_t i = at + j;
            iv[j] = (int64_t)rank * 1000000000 + (int64_t)i;
            fv[j] = (double)(i % 1000) * 0.25 + rank;
            rv[j] = rank;
            zv[j] = i % 4 == 3 ? -1 : (int64_t)(i % 4);
        }
        CHECK(fa_put(ds_batch_array(b, 0), at, k, iv));
        CHECK(fa_put(ds_batch_array(b, 1), at, k, fv));
        CHECK(fa_put(ds_batch_array(b, 2), at, k, rv));
        CHECK(fa_put(ds_batch_array(b, 3), at, k, zv));
    }
    free(iv);
    free(rv);
    free(zv);
    free(fv);
    char names[3][32];
    const char *cats[3];
    for (int j = 0; j < 3; j++) {
        snprintf(names[j], sizeof names[j], "zone-%d-%d", rank, j);
        cats[j] = names[j];
    }
    CHECK(ds_batch_set_categories(b, 3, 3, cats));
    return b;
}

/* One column's checksum over the batches this rank reads. */
struct sum {
    uint64_t u;   /* integer sums, true counts, crc sums */
    double d;     /* float64 sums */
    uint64_t missing; /* text: rows with code -1 */
};

static void sum_column(ds_store_t *s, const ds_info_t *in, size_t c, struct sum *out)
{
    memset(out, 0, sizeof *out);
    ds_dtype_t t = in->cols[c].dtype;
    void *buf = malloc(CHUNK * 8);
    if (!buf) MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t b = (size_t)rank; b < in->nbatches; b += (size_t)nranks) {
        char **cats = NULL;
        size_t ncat = 0;
        uint32_t *crcs = NULL;
        if (t == DS_TEXT) {
            CHECK(ds_read_categories(s, in, b, c, &cats, &ncat));
            crcs = calloc(ncat + 1, sizeof *crcs);
            for (size_t j = 0; j < ncat; j++)
                crcs[j] = (uint32_t)crc32(0L, (const Bytef *)cats[j], (uInt)strlen(cats[j]));
        }
        uint64_t rows = in->batches[b].rows;
        for (uint64_t at = 0; at < rows; at += CHUNK) {
            uint64_t k = rows - at < CHUNK ? rows - at : CHUNK;
            CHECK(ds_read(s, in, b, c, at, k, buf));
            for (uint64_t i = 0; i < k; i++) {
                switch (t) {
                case DS_FLOAT64: out->d += ((double *)buf)[i]; break;
                case DS_BOOL: out->u += ((uint8_t *)buf)[i] != 0; break;
                case DS_TEXT: {
                    int64_t code = ((int64_t *)buf)[i];
                    if (code < 0) out->missing++;
                    else if ((uint64_t)code < ncat) out->u += crcs[code];
                    else {
                        fprintf(stderr, "ds_mpi_example: code %" PRId64 " of column '%s' "
                                "in batch %zu is past its %zu categories\n", code,
                                in->cols[c].name, b, ncat);
                        MPI_Abort(MPI_COMM_WORLD, 1);
                    }
                    break;
                }
                default: out->u += ((uint64_t *)buf)[i]; break;
                }
            }
        }
        ds_free_names(cats, ncat);
        free(crcs);
    }
    free(buf);
}

/* Print (rank 0) the checksums of dataset `name`, every rank reading its batches. */
static void report(ds_store_t *s, const char *name)
{
    ds_info_t *in;
    /* rank 0 picks the catalog version; the others read the same one: a
     * commit by someone else in between must not split the work */
    uint64_t v = 0;
    for (;;) {
        CHECK(ds_info(s, name, &in));
        if (rank == 0) v = in->version;
        MPI_Bcast(&v, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
        int same = in->version == v, all;
        MPI_Allreduce(&same, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
        if (all) break;
        ds_free_info(in);
    }
    if (rank == 0)
        printf("dataset %s (%s): %" PRIu64 " rows in %zu batches, catalog version %" PRIu64 "\n",
               in->name, ds_kind_name(in->kind), in->rows, in->nbatches, in->version);
    for (size_t c = 0; c < in->ncols; c++) {
        struct sum mine, all;
        sum_column(s, in, c, &mine);
        MPI_Reduce(&mine.u, &all.u, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        MPI_Reduce(&mine.d, &all.d, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        MPI_Reduce(&mine.missing, &all.missing, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank != 0) continue;
        ds_dtype_t t = in->cols[c].dtype;
        printf("  %s %s sum=", in->cols[c].name, ds_dtype_name(t));
        if (t == DS_FLOAT64) printf("%.17g\n", all.d);
        else if (t == DS_UINT64 || t == DS_BOOL) printf("%" PRIu64 "\n", all.u);
        else if (t == DS_TEXT) printf("%" PRIu64 " missing=%" PRIu64 "\n", all.u, all.missing);
        else printf("%" PRId64 "\n", (int64_t)all.u);
    }
    fflush(stdout);
    ds_free_info(in);
}

static int usage(const char *argv0)
{
    if (rank == 0)
        fprintf(stderr, "usage: FAM_SERVERS=host:port[,...] mpirun -np P %s "
                "[--one-commit] STORE DATASET ROWS\n"
                "       FAM_SERVERS=host:port[,...] mpirun -np P %s --read STORE "
                "[DATASET]\n", argv0, argv0);
    MPI_Finalize();
    return 2;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    int read_only = argc >= 2 && strcmp(argv[1], "--read") == 0;
    int one_commit = argc >= 2 && strcmp(argv[1], "--one-commit") == 0;
    int a = 1 + (read_only || one_commit);
    const char *store = NULL, *dataset = NULL;
    unsigned long long rows = 0;
    if (read_only) {
        if (argc != a + 1 && argc != a + 2) return usage(argv[0]);
        store = argv[a];
        dataset = argc == a + 2 ? argv[a + 1] : NULL;
    } else {
        char *end = NULL;
        if (argc != a + 3) return usage(argv[0]);
        store = argv[a];
        dataset = argv[a + 1];
        rows = strtoull(argv[a + 2], &end, 10);
        if (!*argv[a + 2] || *end || argv[a + 2][0] == '-') return usage(argv[0]);
    }

    fam_t *f;
    CHECK(fam_initialize(NULL, &f)); /* $FAM_SERVERS, $FAM_PROVIDER */
    ds_store_t *s;
    if (read_only) {
        CHECK(ds_open(f, store, 0, 0, &s));
    } else {
        /* rank 0 makes the store and the dataset; the others attach */
        if (rank == 0) {
            CHECK(ds_open(f, store, DS_CREATE, 0644, &s));
            CHECK(ds_create_dataset(s, dataset, NCOLS, cols));
        }
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank != 0) CHECK(ds_open(f, store, 0, 0, &s));
        ds_batch_t *b = append_mine(s, dataset, rows + (uint64_t)rank);
        if (!one_commit) {
            CHECK(ds_commit(s, dataset, 1, &b));
        } else {
            /* every rank's batch, as a plain value, to rank 0: one commit */
            ds_batch_ref_t ref, *all = NULL;
            ds_batch_ref(b, &ref);
            if (rank == 0) all = calloc((size_t)nranks, sizeof *all);
            MPI_Gather(&ref, (int)sizeof ref, MPI_BYTE, all, (int)sizeof ref, MPI_BYTE, 0,
                       MPI_COMM_WORLD);
            if (rank == 0) CHECK(ds_commit_refs(s, dataset, (size_t)nranks, all));
            free(all);
        }
        ds_batch_close(b);
        MPI_Barrier(MPI_COMM_WORLD); /* every batch is in */
        if (rank == 0) printf("appended %d batches to %s\n", nranks, dataset);
    }

    if (dataset) {
        report(s, dataset);
    } else {
        char **names = NULL;
        size_t n = 0;
        CHECK(ds_list(s, &names, &n)); /* each rank: the same list unless changed */
        unsigned long long n0 = n;
        MPI_Bcast(&n0, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
        for (size_t i = 0; i < (size_t)n0; i++) {
            char nm[DS_NAME_MAX + 1] = "";
            if (rank == 0) snprintf(nm, sizeof nm, "%s", names[i]);
            MPI_Bcast(nm, sizeof nm, MPI_CHAR, 0, MPI_COMM_WORLD);
            report(s, nm);
        }
        ds_free_names(names, n);
    }
    ds_close(s);
    fam_finalize(f);
    MPI_Finalize();
    return 0;
}
