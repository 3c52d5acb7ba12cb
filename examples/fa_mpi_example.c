/* SPDX-License-Identifier: Apache-2.0 */
/* fa_mpi_example.c — an MPI program that leaves its results in FAM arrays,
 * for any other program (kodiakd, Python, another C program) to read.
 *
 *   FAM_SERVERS=host:port,host:port [FAM_PROVIDER=tcp] \
 *     mpirun -np P ./fa_mpi_example REGION N
 *
 * It fills FAM array "squares" (int64, N elements) in region REGION with
 * squares[i] = i*i, each rank writing its own block with fa_put, and adds
 * each rank's partial sum into the one-element FAM array "total" with an
 * atomic fa_add, so total[0] = sum of i*i for i < N (wrapping modulo 2^64
 * as int64 arithmetic does, like NumPy's sum). Rank 0 prints
 *   total = <value>
 * The region is created (interleaved over every memory server) if it does
 * not exist; arrays that exist with the right dtype and size are reused
 * ("total" is reset first), anything else is an error. Every rank talks to
 * the memory servers itself: no data passes through rank 0. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "fam/fam.h"
#include "kodiak/famarray.h"

#define CHUNK (1u << 20) /* elements each rank writes per fa_put */

static int rank;

/* Report a failed call and stop every rank. */
#define CHECK(call)                                                            \
    do {                                                                       \
        int rc_ = (call);                                                      \
        if (rc_ < 0) {                                                         \
            fprintf(stderr, "fa_mpi_example (rank %d): %s failed: %s (%s)\n",  \
                    rank, #call, fam_last_error(), fam_strerror(rc_));         \
            MPI_Abort(MPI_COMM_WORLD, 1);                                      \
        }                                                                      \
    } while (0)

/* Open array `name` or create it; an existing one must match. */
static fa_array_t *open_or_create(fam_t *f, const char *region, const char *name,
                                  uint64_t n)
{
    fa_array_t *a;
    int rc = fa_open(f, region, name, &a);
    if (rc == FAM_ENOTFOUND) {
        CHECK(fa_create(f, region, name, FA_INT64, n, 0644, &a));
        return a;
    }
    CHECK(rc);
    if (fa_dtype(a) != FA_INT64 || fa_size(a) != n) {
        fprintf(stderr, "fa_mpi_example: FAM array '%s' in region '%s' exists "
                "with %" PRIu64 " %s elements, not %" PRIu64 " int64: delete it "
                "or choose another region\n", name, region, fa_size(a),
                fa_dtype_name(fa_dtype(a)), n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return a;
}

int main(int argc, char **argv)
{
    int nranks;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    char *end = NULL;
    unsigned long long n = argc == 3 ? strtoull(argv[2], &end, 10) : 0;
    if (argc != 3 || !*argv[2] || *end || argv[2][0] == '-') {
        if (rank == 0)
            fprintf(stderr, "usage: FAM_SERVERS=host:port[,...] mpirun -np P "
                    "%s REGION N\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    const char *region = argv[1];

    fam_t *f;
    CHECK(fam_initialize(NULL, &f)); /* $FAM_SERVERS, $FAM_PROVIDER */

    /* rank 0 sets the stage; the others open what it made */
    fa_array_t *sq, *tot;
    if (rank == 0) {
        fam_region_t *r;
        int rc = fam_lookup_region(f, region, &r);
        if (rc == FAM_ENOTFOUND) {
            fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE};
            uint64_t need = 2 * (FA_HEADER_BYTES + 8 * (uint64_t)n) + (64u << 20);
            rc = fam_create_region(f, region, need, 0755, &at, &r);
        }
        CHECK(rc);
        fam_release_region(r);
        sq = open_or_create(f, region, "squares", n);
        tot = open_or_create(f, region, "total", 1);
        int64_t zero = 0;
        CHECK(fa_put(tot, 0, 1, &zero));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank != 0) {
        CHECK(fa_open(f, region, "squares", &sq));
        CHECK(fa_open(f, region, "total", &tot));
    }

    /* my block: [lo, hi), sizes differ by at most one */
    uint64_t lo = n * (uint64_t)rank / (uint64_t)nranks;
    uint64_t hi = n * (uint64_t)(rank + 1) / (uint64_t)nranks;
    int64_t *buf = malloc((hi - lo < CHUNK ? hi - lo : CHUNK) * 8 + 8);
    if (!buf) {
        fprintf(stderr, "fa_mpi_example (rank %d): out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    uint64_t partial = 0; /* unsigned: wraps as int64 sums do, defined */
    for (uint64_t at = lo; at < hi; at += CHUNK) {
        uint64_t k = hi - at < CHUNK ? hi - at : CHUNK;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t x = at + i, sq2 = x * x;
            buf[i] = (int64_t)sq2;
            partial += sq2;
        }
        CHECK(fa_put(sq, at, k, buf));
    }
    free(buf);
    uint64_t zero_idx = 0;
    int64_t mine = (int64_t)partial;
    CHECK(fa_add(tot, 1, &zero_idx, &mine));

    MPI_Barrier(MPI_COMM_WORLD); /* every rank's add is done */
    if (rank == 0) {
        int64_t total;
        CHECK(fa_get(tot, 0, 1, &total));
        printf("total = %" PRId64 "\n", total);
        fflush(stdout);
    }
    fa_close(sq);
    fa_close(tot);
    fam_finalize(f);
    MPI_Finalize();
    return 0;
}
