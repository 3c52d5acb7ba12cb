/* SPDX-License-Identifier: Apache-2.0 */
/* test_dataset.c — the FAM dataset store (libdataset) against real famd
 * processes: one, or two with the store's region interleaved over both
 * ($DS_TEST_FAMDS, 2 when unset), once per provider.
 *
 * What it proves: a create/append/list/info/read/drop round trip with
 * every dtype, checked against the values written; commits that are all
 * or nothing; several processes appending at once losing nothing and
 * duplicating nothing, while a reader only ever sees complete batches;
 * writers killed with SIGKILL in the middle of a batch, of a commit and of
 * a drop leaving a consistent store whose leftovers ds_reclaim frees (and
 * only those); damaged and hostile catalogs giving errors, not crashes;
 * the limits; a snapshot holding one version; a store that outlives kill -9
 * and restart of its (persistent) memory servers. Each test uses its own
 * store. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fixture.h"
#include "kodiak/dataset.h"

static struct famd_proc srv[2];
static int nsrv;
static char servers[200];
static fam_t *f;

static int setup(void **state)
{
    (void)state;
    /* every catalog written also through json-c's objects, and compared */
    setenv("DS_JSON_CHECK", "1", 1);
    const char *e = getenv("DS_TEST_FAMDS");
    nsrv = e && *e == '1' ? 1 : 2;
    servers[0] = '\0';
    for (int i = 0; i < nsrv; i++) {
        if (famd_start(&srv[i], 64 << 20, NULL)) return -1;
        snprintf(servers + strlen(servers), sizeof servers - strlen(servers), "%s%s",
                 i ? "," : "", srv[i].addr);
    }
    return (f = client(servers)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    for (int i = 0; i < nsrv; i++) famd_stop(&srv[i]);
    return 0;
}

/* ---- a dataset whose values say where they belong ------------------------------------- */

/* Columns of the test dataset "T": tag (int64: the batch's tag in every
 * row), v (int64 tag*1e6+row), x (float64 v/2), t (text: row % ncat of the
 * batch's categories "c<tag>_<j>"). */
static const ds_column_def_t tcols[] = {
    {"tag", DS_INT64}, {"v", DS_INT64}, {"x", DS_FLOAT64}, {"t", DS_TEXT}};
#define TNCOLS 4

static uint64_t ncat_of(int64_t tag) { return 1 + (uint64_t)tag % 5; }

/* Begin and fill a batch of `rows` rows with tag `tag`; returns the batch
 * or NULL (with the message printed), for use in children too. */
static ds_batch_t *fill_batch(ds_store_t *s, const char *dataset, int64_t tag, uint64_t rows)
{
    ds_batch_t *b;
    if (ds_batch_begin(s, dataset, rows, &b)) {
        fprintf(stderr, "ds_batch_begin: %s\n", ds_last_error());
        return NULL;
    }
    int64_t *iv = malloc(rows * 8 + 8), *tv = malloc(rows * 8 + 8), *cv = malloc(rows * 8 + 8);
    double *xv = malloc(rows * 8 + 8);
    for (uint64_t r = 0; r < rows; r++) {
        tv[r] = tag;
        iv[r] = tag * 1000000 + (int64_t)r;
        xv[r] = (double)iv[r] / 2;
        cv[r] = (int64_t)(r % ncat_of(tag));
    }
    int rc = fa_put(ds_batch_array(b, 0), 0, rows, tv) ||
             fa_put(ds_batch_array(b, 1), 0, rows, iv) ||
             fa_put(ds_batch_array(b, 2), 0, rows, xv) ||
             fa_put(ds_batch_array(b, 3), 0, rows, cv);
    free(iv);
    free(tv);
    free(cv);
    free(xv);
    char buf[8][32];
    const char *cats[8];
    for (uint64_t j = 0; j < ncat_of(tag); j++) {
        snprintf(buf[j], sizeof buf[j], "c%" PRId64 "_%" PRIu64, tag, j);
        cats[j] = buf[j];
    }
    if (!rc) rc = ds_batch_set_categories(b, 3, ncat_of(tag), cats);
    if (rc) {
        fprintf(stderr, "filling batch %" PRId64 ": %s\n", tag, ds_last_error());
        ds_batch_abort(b);
        return NULL;
    }
    return b;
}

/* fill_batch(s, "T", tag, rows), committed as T's next batch. */
static void commit_filled(ds_store_t *s, int64_t tag, uint64_t rows)
{
    ds_batch_t *b = fill_batch(s, "T", tag, rows);
    assert_non_null(b);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
}

/* Check batch i of info against what fill_batch writes; its tag in *tag.
 * 0 if all is right, else a reason (also for children). */
static const char *check_batch(ds_store_t *s, const ds_info_t *in, size_t i, int64_t *tag)
{
    uint64_t rows = in->batches[i].rows;
    int64_t *tv = malloc(rows * 8 + 8), *iv = malloc(rows * 8 + 8), *cv = malloc(rows * 8 + 8);
    double *xv = malloc(rows * 8 + 8);
    const char *why = NULL;
    if (ds_read(s, in, i, 0, 0, rows, tv) || ds_read(s, in, i, 1, 0, rows, iv) ||
        ds_read(s, in, i, 2, 0, rows, xv) || ds_read(s, in, i, 3, 0, rows, cv))
        why = "ds_read failed";
    int64_t t = rows ? tv[0] : -1;
    for (uint64_t r = 0; r < rows && !why; r++)
        if (tv[r] != t || iv[r] != t * 1000000 + (int64_t)r || xv[r] != (double)iv[r] / 2 ||
            cv[r] != (int64_t)(r % ncat_of(t)))
            why = "a value differs from what was written";
    if (!why && rows) {
        char **cats;
        size_t n;
        if (ds_read_categories(s, in, i, 3, &cats, &n)) why = "ds_read_categories failed";
        else {
            if (n != ncat_of(t) || in->batches[i].ncat[3] != n) why = "wrong category count";
            for (size_t j = 0; j < n && !why; j++) {
                char want[32];
                snprintf(want, sizeof want, "c%" PRId64 "_%zu", t, j);
                if (strcmp(cats[j], want)) why = "a category differs";
            }
            ds_free_names(cats, n);
        }
    }
    free(tv);
    free(iv);
    free(cv);
    free(xv);
    *tag = t;
    return why;
}

static ds_store_t *open_store(const char *name)
{
    ds_store_t *s = NULL;
    CHECK_OK(ds_open(f, name, DS_CREATE, 0600, &s));
    return s;
}

static void make_T(ds_store_t *s)
{
    CHECK_OK(ds_create_dataset(s, "T", TNCOLS, tcols));
}

/* Items of the store's region whose names start with prefix. */
static size_t count_items(ds_store_t *s, const char *prefix)
{
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, ds_store_region(s), &r));
    char **names;
    size_t n, k = 0;
    CHECK_OK(fam_list_items(f, r, &names, &n));
    fam_release_region(r);
    for (size_t i = 0; i < n; i++) k += strncmp(names[i], prefix, strlen(prefix)) == 0;
    fam_free_names(names, n);
    return k;
}

/* ---- round trip ---------------------------------------------------------------------- */

static void every_dtype_round_trips_through_create_append_info_read_drop(void **state)
{
    (void)state;
    ds_store_t *s = open_store("rt");
    assert_string_equal(ds_store_name(s), "rt");
    assert_string_equal(ds_store_region(s), "ds.rt");
    uint64_t v0;
    CHECK_OK(ds_version(s, &v0));
    assert_int_equal(v0, 0);
    char **names;
    size_t n;
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 0);

    const ds_column_def_t cols[] = {{"i", DS_INT64}, {"u", DS_UINT64}, {"f", DS_FLOAT64},
                                    {"b", DS_BOOL}, {"s", DS_TEXT}, {"when", DS_DATETIME}};
    CHECK_OK(ds_create_dataset(s, "All", 6, cols));
    CHECK_OK(ds_create_dataset(s, "All", 6, cols)); /* same schema: no change */
    CHECK_OK(ds_version(s, &v0));
    assert_int_equal(v0, 1);
    const ds_column_def_t other[] = {{"i", DS_FLOAT64}};
    assert_int_equal(ds_create_dataset(s, "All", 1, other), FAM_EEXIST);
    assert_non_null(strstr(ds_last_error(), "All"));

    enum { NB = 3 };
    const uint64_t rows[NB] = {1000, 1, 70000};
    ds_batch_t *b[NB];
    for (int k = 0; k < NB; k++) {
        CHECK_OK(ds_batch_begin(s, "All", rows[k], &b[k]));
        assert_int_equal(ds_batch_rows(b[k]), rows[k]);
        assert_int_equal(ds_batch_ncols(b[k]), 6);
        assert_int_equal(strlen(ds_batch_id(b[k])), DS_BATCH_ID_LEN);
        uint64_t m = rows[k];
        int64_t *i64 = malloc(m * 8);
        uint64_t *u64 = malloc(m * 8);
        double *f64 = malloc(m * 8);
        uint8_t *b8 = malloc(m);
        int64_t *codes = malloc(m * 8), *when = malloc(m * 8);
        for (uint64_t r = 0; r < m; r++) {
            i64[r] = (int64_t)r * (k + 1) - 500;
            u64[r] = UINT64_MAX - r;
            f64[r] = (double)r / 3.0 - k;
            b8[r] = (uint8_t)((r + (uint64_t)k) % 3 == 0);
            codes[r] = r % 7 == 6 ? -1 : (int64_t)(r % 3);
            when[r] = 1483228800 + (int64_t)r * 60;
        }
        CHECK_OK(fa_put(ds_batch_array(b[k], 0), 0, m, i64));
        CHECK_OK(fa_put(ds_batch_array(b[k], 1), 0, m, u64));
        CHECK_OK(fa_put(ds_batch_array(b[k], 2), 0, m, f64));
        CHECK_OK(fa_put(ds_batch_array(b[k], 3), 0, m, b8));
        CHECK_OK(fa_put(ds_batch_array(b[k], 4), 0, m, codes));
        CHECK_OK(fa_put(ds_batch_array(b[k], 5), 0, m, when));
        const char *cats[] = {"Manhattan", k == 1 ? "" : "Queens, NY", "Bronx \"x\""};
        CHECK_OK(ds_batch_set_categories(b[k], 4, 3, cats));
        free(i64); free(u64); free(f64); free(b8); free(codes); free(when);
    }
    /* two batches in one commit, the third after */
    CHECK_OK(ds_commit(s, "All", 2, b));
    CHECK_OK(ds_commit(s, "All", 1, b + 2));
    CHECK_OK(ds_version(s, &v0));
    assert_int_equal(v0, 3);
    for (int k = 0; k < NB; k++) ds_batch_close(b[k]);

    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "All");
    ds_free_names(names, n);

    ds_info_t *in;
    CHECK_OK(ds_info(s, "All", &in));
    assert_int_equal(in->kind, DS_KIND_BASE);
    assert_string_equal(in->base, "");
    assert_int_equal(in->version, 3);
    assert_int_equal(in->ncols, 6);
    assert_int_equal(in->nbatches, NB);
    assert_int_equal(in->rows, rows[0] + rows[1] + rows[2]);
    for (int c = 0; c < 6; c++) {
        assert_string_equal(in->cols[c].name, cols[c].name);
        assert_int_equal(in->cols[c].dtype, cols[c].dtype);
    }
    uint64_t first = 0;
    for (int k = 0; k < NB; k++) {
        assert_int_equal(in->batches[k].rows, rows[k]);
        assert_int_equal(in->batches[k].first_row, first);
        first += rows[k];
        assert_int_equal(in->batches[k].ncat[4], 3);
        assert_int_equal(in->batches[k].ncat[0], 0);
        /* the array names are real FAM arrays of the right shape */
        fa_array_t *a;
        CHECK_OK(fa_open(f, "ds.rt", in->batches[k].arrays[3], &a));
        assert_int_equal(fa_dtype(a), FA_BOOL);
        assert_int_equal(fa_size(a), rows[k]);
        fa_close(a);
        uint64_t m = rows[k];
        int64_t *i64 = malloc(m * 8), *codes = malloc(m * 8), *when = malloc(m * 8);
        uint64_t *u64 = malloc(m * 8);
        double *f64 = malloc(m * 8);
        uint8_t *b8 = malloc(m);
        CHECK_OK(ds_read(s, in, k, 0, 0, m, i64));
        CHECK_OK(ds_read(s, in, k, 1, 0, m, u64));
        CHECK_OK(ds_read(s, in, k, 2, 0, m, f64));
        CHECK_OK(ds_read(s, in, k, 3, 0, m, b8));
        CHECK_OK(ds_read(s, in, k, 4, 0, m, codes));
        CHECK_OK(ds_read(s, in, k, 5, 0, m, when));
        for (uint64_t r = 0; r < m; r++) {
            assert_int_equal(i64[r], (int64_t)r * (k + 1) - 500);
            assert_true(u64[r] == UINT64_MAX - r);
            assert_true(f64[r] == (double)r / 3.0 - k);
            assert_int_equal(b8[r], (r + (uint64_t)k) % 3 == 0);
            assert_int_equal(codes[r], r % 7 == 6 ? -1 : (int64_t)(r % 3));
            assert_int_equal(when[r], 1483228800 + (int64_t)r * 60);
        }
        if (m > 10) { /* a slice in the middle */
            CHECK_OK(ds_read(s, in, k, 0, 5, 3, i64));
            assert_int_equal(i64[0], 5 * (k + 1) - 500);
            assert_int_equal(i64[2], 7 * (k + 1) - 500);
            /* an indexed read: the same values as the range read, any order */
            uint64_t at[4] = {m - 1, 0, 7, 7};
            CHECK_OK(ds_gather(s, in, k, 0, 4, at, i64));
            for (int j = 0; j < 4; j++)
                assert_int_equal(i64[j], (int64_t)at[j] * (k + 1) - 500);
            CHECK_OK(ds_gather(s, in, k, 3, 4, at, b8)); /* bool: 1-byte elements */
            for (int j = 0; j < 4; j++)
                assert_int_equal(b8[j], (at[j] + (uint64_t)k) % 3 == 0);
            uint64_t past[2] = {1, m};
            assert_int_equal(ds_gather(s, in, k, 0, 2, past, i64), FAM_EOUTOFRANGE);
            assert_non_null(strstr(fam_last_error(), "past the end"));
            assert_int_equal(ds_gather(s, in, k, 9, 1, at, i64), FAM_EOUTOFRANGE);
            /* in place: the same values where the pool is mapped here, else
             * FAM_ENOTSUP (never a wrong pointer) */
            const void *lp = NULL;
            uint64_t run = 0;
            int lrc = ds_local(s, in, k, 0, 5, m - 5, &lp, &run);
            assert_true(lrc == 0 || lrc == FAM_ENOTSUP);
            if (lrc == 0) {
                assert_true(run >= 1 && run <= m - 5);
                for (uint64_t r = 0; r < run; r++)
                    assert_int_equal(((const int64_t *)lp)[r], (int64_t)(r + 5) * (k + 1) - 500);
            }
            assert_int_equal(ds_local(s, in, k, 0, m, 1, &lp, &run), FAM_EOUTOFRANGE);
        }
        free(i64); free(codes); free(when); free(u64); free(f64); free(b8);
        char **cats;
        size_t nc;
        CHECK_OK(ds_read_categories(s, in, k, 4, &cats, &nc));
        assert_int_equal(nc, 3);
        assert_string_equal(cats[0], "Manhattan");
        assert_string_equal(cats[1], k == 1 ? "" : "Queens, NY");
        assert_string_equal(cats[2], "Bronx \"x\"");
        ds_free_names(cats, nc);
    }
    /* row ranges across batches: rows 990..1010 span all three (1000, 1, 70000) */
    {
        int64_t span[21];
        CHECK_OK(ds_read_rows(s, in, 0, 990, 21, span));
        for (int j = 0; j < 21; j++) {
            uint64_t row = 990 + (uint64_t)j;
            int k = row < 1000 ? 0 : row < 1001 ? 1 : 2;
            uint64_t r = row - (k == 0 ? 0 : k == 1 ? 1000 : 1001);
            assert_int_equal(span[j], (int64_t)r * (k + 1) - 500);
        }
        uint8_t bb[3];
        CHECK_OK(ds_read_rows(s, in, 3, 999, 3, bb)); /* bool: 1-byte elements */
        assert_int_equal(bb[0], (999 + 0) % 3 == 0);
        assert_int_equal(bb[1], (0 + 1) % 3 == 0);
        assert_int_equal(bb[2], (0 + 2) % 3 == 0);
        CHECK_OK(ds_read_rows(s, in, 0, in->rows, 0, span));
        assert_int_equal(ds_read_rows(s, in, 0, in->rows - 1, 2, span), FAM_EOUTOFRANGE);
    }
    /* reads that must fail, cleanly */
    int64_t x;
    assert_int_equal(ds_read(s, in, 1, 0, 1, 1, &x), FAM_EOUTOFRANGE);
    assert_int_equal(ds_read(s, in, 3, 0, 0, 1, &x), FAM_EOUTOFRANGE);
    assert_int_equal(ds_read(s, in, 0, 6, 0, 1, &x), FAM_EOUTOFRANGE);
    char **cats;
    size_t nc;
    assert_int_equal(ds_read_categories(s, in, 0, 0, &cats, &nc), FAM_EINVAL);

    /* another process attaches by name only and sees the same */
    ds_store_t *s2;
    CHECK_OK(ds_open(f, "rt", 0, 0, &s2));
    ds_info_t *in2;
    CHECK_OK(ds_info(s2, "All", &in2));
    assert_int_equal(in2->rows, in->rows);
    assert_string_equal(in2->batches[2].id, in->batches[2].id);
    ds_free_info(in2);
    ds_close(s2);

    /* drop: gone from the catalog, arrays and categories freed */
    assert_int_equal(count_items(s, "b."), 6 * NB);
    assert_int_equal(count_items(s, "k."), NB);
    CHECK_OK(ds_drop(s, "All"));
    assert_int_equal(ds_info(s, "All", &in2), FAM_ENOTFOUND);
    assert_non_null(strstr(ds_last_error(), "All"));
    assert_int_equal(ds_drop(s, "All"), FAM_ENOTFOUND);
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 0);
    assert_int_equal(count_items(s, "b."), 0);
    assert_int_equal(count_items(s, "k."), 0);
    /* the old info now names arrays that are gone: an error, not garbage,
     * and at once, not after libfam's timeout (5 s here) on a handle that
     * ds_read kept open */
    time_t t0 = time(NULL);
    assert_int_equal(ds_read(s, in, 0, 0, 0, 1, &x), FAM_ENOTFOUND);
    assert_int_equal(ds_read(s, in, 2, 5, 0, 1, &x), FAM_ENOTFOUND);
    assert_true(time(NULL) - t0 < 4);
    ds_free_info(in);
    ds_close(s);
    CHECK_OK(ds_destroy_store(f, "rt"));
    assert_int_equal(ds_open(f, "rt", 0, 0, &s), FAM_ENOTFOUND);
}

/* The handle that commits keeps what it published as its catalog (no
 * fetch and parse of the snapshot it just wrote): every dataset's info,
 * text columns' category counts and a derived dataset's lineage included,
 * must be what a handle that reads the snapshot afresh parses. */
/* Every dataset as handle s2 answers equals what s answers. */
static void same_info(ds_store_t *s, ds_store_t *s2)
{
    char **names, **names2;
    size_t n, n2;
    CHECK_OK(ds_list(s, &names, &n));
    CHECK_OK(ds_list(s2, &names2, &n2));
    assert_int_equal(n, n2);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(names[i], names2[i]);
        ds_info_t *a, *b;
        CHECK_OK(ds_info(s, names[i], &a));
        CHECK_OK(ds_info(s2, names[i], &b));
        assert_int_equal(a->kind, b->kind);
        assert_string_equal(a->base, b->base);
        assert_string_equal(a->expr, b->expr);
        assert_int_equal(a->base_batches, b->base_batches);
        assert_int_equal(a->version, b->version);
        assert_int_equal(a->rows, b->rows);
        assert_int_equal(a->ncols, b->ncols);
        for (size_t k = 0; k < a->ncols; k++) {
            assert_string_equal(a->cols[k].name, b->cols[k].name);
            assert_int_equal(a->cols[k].dtype, b->cols[k].dtype);
        }
        assert_int_equal(a->nbatches, b->nbatches);
        for (size_t j = 0; j < a->nbatches; j++) {
            assert_string_equal(a->batches[j].id, b->batches[j].id);
            assert_int_equal(a->batches[j].rows, b->batches[j].rows);
            assert_int_equal(a->batches[j].first_row, b->batches[j].first_row);
            for (size_t k = 0; k < a->ncols; k++) {
                assert_string_equal(a->batches[j].arrays[k], b->batches[j].arrays[k]);
                assert_int_equal(a->batches[j].ncat[k], b->batches[j].ncat[k]);
            }
        }
        ds_free_info(a);
        ds_free_info(b);
    }
    ds_free_names(names, n);
    ds_free_names(names2, n2);
}

static void same_info_on_a_fresh_handle(ds_store_t *s, const char *store)
{
    ds_store_t *s2;
    CHECK_OK(ds_open(f, store, 0, 0, &s2));
    same_info(s, s2);
    ds_close(s2);
}

static void a_committing_handle_keeps_what_a_fresh_one_reads(void **state)
{
    (void)state;
    ds_store_t *s = open_store("kept");
    make_T(s);
    for (int64_t tag = 1; tag <= 3; tag++) { /* text columns with their categories */
        commit_filled(s, tag, 50 + (uint64_t)tag);
        same_info_on_a_fresh_handle(s, "kept");
    }
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    ds_dataset_def_t def = {.name = "T.v_gt_5", .kind = DS_KIND_INDEX, .base = "T",
                            .expr = "{\"filter\": \"v gt 5\"}", .ncols = 1, .cols = ic};
    ds_batch_t *ib;
    ds_txn_t *t;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &def));
    CHECK_OK(ds_txn_commit(t, NULL));
    CHECK_OK(ds_batch_begin(s, "T.v_gt_5", 2, &ib));
    int64_t idx[2] = {6, 9};
    CHECK_OK(fa_put(ds_batch_array(ib, 0), 0, 2, idx));
    ds_batch_ref_t ref;
    ds_batch_ref(ib, &ref);
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_expect_batches(t, "T.v_gt_5", 0));
    CHECK_OK(ds_txn_append(t, "T.v_gt_5", 1, &ref));
    CHECK_OK(ds_txn_set_progress(t, "T.v_gt_5", 1));
    CHECK_OK(ds_txn_commit(t, NULL));
    ds_batch_close(ib);
    same_info_on_a_fresh_handle(s, "kept");
    /* another handle commits: this one reads the new snapshot as before */
    ds_store_t *s2;
    CHECK_OK(ds_open(f, "kept", 0, 0, &s2));
    CHECK_OK(ds_create_dataset(s2, "U", TNCOLS, tcols));
    ds_close(s2);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "U", &in));
    ds_free_info(in);
    CHECK_OK(ds_drop(s, "T.v_gt_5"));
    assert_int_equal(ds_info(s, "T.v_gt_5", &in), FAM_ENOTFOUND);
    same_info_on_a_fresh_handle(s, "kept");
    ds_close(s);
    CHECK_OK(ds_destroy_store(f, "kept"));
}

/* The catalog snapshot the head of store region `region` names, damaged
 * (16 bytes at offset 80 overwritten: a fresh read fails its checksum);
 * mend_head_snapshot puts them back. */
typedef struct {
    fam_item_t *snap;
    uint8_t keep[16];
    uint64_t v, n; /* the head's version and nonce */
} damaged_t;

static void damage_head_snapshot(const char *region, damaged_t *d)
{
    fam_item_t *head;
    CHECK_OK(fam_lookup(f, "head", region, &head));
    uint64_t h[2];
    CHECK_OK(fam_get_blocking(f, h, head, 0, 16));
    fam_release(head);
    d->v = h[0];
    d->n = h[1];
    char name[64];
    snprintf(name, sizeof name, "c.%016" PRIx64 ".%016" PRIx64, h[0], h[1]);
    CHECK_OK(fam_lookup(f, name, region, &d->snap));
    uint8_t junk[16];
    memset(junk, 0x5a, sizeof junk);
    CHECK_OK(fam_get_blocking(f, d->keep, d->snap, 80, 16));
    CHECK_OK(fam_put_blocking(f, junk, d->snap, 80, 16));
}

static void mend_head_snapshot(damaged_t *d)
{
    CHECK_OK(fam_put_blocking(f, d->keep, d->snap, 80, 16));
    fam_release(d->snap);
}

/* ds_share_catalog: a handle given another's catalog answers from it while
 * the head names it (no fetch: it reads even a snapshot damaged since,
 * which a fresh handle refuses), reads anew once the head moves, and a
 * pinned handle or another store's is left alone. */
static void a_catalog_shared_between_handles_is_used_while_current(void **state)
{
    (void)state;
    ds_store_t *s = open_store("share"), *s2, *s3;
    make_T(s);
    CHECK_OK(ds_open(f, "share", 0, 0, &s2));
    ds_info_t *in;
    CHECK_OK(ds_info(s2, "T", &in)); /* s2 has read this version */
    ds_free_info(in);
    const ds_column_def_t c1[] = {{"a", DS_INT64}};
    CHECK_OK(ds_create_dataset(s, "U", 1, c1));
    CHECK_OK(ds_share_catalog(s2, s));
    /* the snapshot now current damaged: s2 does not read it */
    damaged_t d;
    damage_head_snapshot("ds.share", &d);
    CHECK_OK(ds_open(f, "share", 0, 0, &s3));
    assert_int_equal(ds_info(s3, "U", &in), FAM_EIO);
    ds_close(s3);
    CHECK_OK(ds_info(s2, "U", &in));
    assert_string_equal(in->name, "U");
    assert_int_equal(in->version, d.v);
    ds_free_info(in);
    mend_head_snapshot(&d);
    /* another handle commits: s2 reads the new version; ds_version_seen
     * says the version a handle last read or committed, without a read */
    CHECK_OK(ds_open(f, "share", 0, 0, &s3));
    uint64_t seen = ds_version_seen(s2), now;
    assert_int_equal(seen, d.v);
    CHECK_OK(ds_create_dataset(s3, "V", 1, c1));
    CHECK_OK(ds_version(s3, &now));
    assert_int_equal(ds_version_seen(s3), now);
    assert_int_equal(ds_version_seen(s2), seen); /* not read since */
    assert_true(now > seen);
    CHECK_OK(ds_info(s2, "V", &in));
    ds_free_info(in);
    assert_int_equal(ds_version_seen(s2), now);
    assert_int_equal(ds_version_seen(NULL), 0);
    /* pinned: left as it is until ds_unpin */
    ds_pin(s2);
    CHECK_OK(ds_create_dataset(s, "W", 1, c1));
    CHECK_OK(ds_share_catalog(s2, s));
    assert_int_equal(ds_info(s2, "W", &in), FAM_ENOTFOUND);
    ds_unpin(s2);
    CHECK_OK(ds_info(s2, "W", &in));
    ds_free_info(in);
    /* not one store */
    ds_store_t *o = open_store("share_other");
    assert_int_equal(ds_share_catalog(o, s), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "not one store"));
    assert_int_equal(ds_share_catalog(NULL, s), FAM_EINVAL);
    ds_close(o);
    CHECK_OK(ds_destroy_store(f, "share_other"));
    ds_close(s3);
    ds_close(s2);
    ds_close(s);
    CHECK_OK(ds_destroy_store(f, "share"));
}

/* ds_catalog_export/import: a handle given another's export answers from
 * it exactly as the exporting handle does, even while the snapshot in FAM
 * is damaged (which a fresh handle refuses: nothing was fetched), and its
 * own export is the same bytes; a cut, altered or other store's export,
 * or a pinned handle, is refused and the handle keeps what it held; an
 * imported catalog never makes a read stale. */
static void a_catalog_exported_to_another_handle_answers_as_the_exporter(void **state)
{
    (void)state;
    ds_store_t *s = open_store("xcat"), *s2, *s3;
    make_T(s); /* text columns: batches carry category counts */
    for (int64_t tag = 1; tag <= 2; tag++) commit_filled(s, tag, 40 + (uint64_t)tag);
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    ds_dataset_def_t def = {.name = "T.v_gt_5", .kind = DS_KIND_INDEX, .base = "T",
                            .expr = "{\"filter\": \"v gt 5\"}", .ncols = 1, .cols = ic};
    ds_txn_t *t;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &def));
    CHECK_OK(ds_txn_set_progress(t, "T.v_gt_5", 0));
    CHECK_OK(ds_txn_commit(t, NULL));
    CHECK_OK(ds_open(f, "xcat", 0, 0, &s2));
    uint64_t v, n, v2, n2;
    ds_catalog_held(s2, &v2, &n2);
    assert_true(v2 == 0 && n2 == 0); /* read nothing yet */
    void *buf, *buf2;
    size_t len, len2;
    CHECK_OK(ds_catalog_export(s, 1, &buf, &len, &v, &n));
    assert_true(v > 0 && n != 0);
    /* the snapshot the head names damaged: s2 must not need it */
    damaged_t d;
    damage_head_snapshot("ds.xcat", &d);
    assert_true(d.v == v && d.n == n);
    CHECK_OK(ds_catalog_import(s2, buf, len));
    ds_catalog_held(s2, &v2, &n2);
    assert_true(v2 == v && n2 == n);
    CHECK_OK(ds_open(f, "xcat", 0, 0, &s3));
    ds_info_t *in;
    assert_int_equal(ds_info(s3, "T", &in), FAM_EIO);
    ds_close(s3);
    same_info(s, s2);
    CHECK_OK(ds_catalog_export(s2, 0, &buf2, &len2, &v2, &n2));
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf2);
    mend_head_snapshot(&d);
    /* refused: every cut (with and without a checksum made to fit), every
     * byte altered; the handle keeps what it held (nothing) */
    ds_store_t *s4;
    CHECK_OK(ds_open(f, "xcat", 0, 0, &s4));
    uint8_t *cut = malloc(len + 8);
    assert_non_null(cut);
    for (size_t k = 0; k < len; k++) {
        assert_int_equal(ds_catalog_import(s4, buf, k), FAM_EINVAL);
        if (k < 8) continue;
        memcpy(cut, buf, k - 8);
        uint8_t w[8];
        uint64_t crc = (uint32_t)crc32_z(0L, cut, k - 8);
        for (int i = 0; i < 8; i++) w[i] = (uint8_t)(crc >> (8 * i));
        memcpy(cut + k - 8, w, 8);
        assert_int_equal(ds_catalog_import(s4, cut, k), FAM_EINVAL);
    }
    memcpy(cut, buf, len);
    for (size_t k = 0; k < len; k++) {
        cut[k] ^= 0x41;
        assert_int_equal(ds_catalog_import(s4, cut, len), FAM_EINVAL);
        cut[k] ^= 0x41;
    }
    free(cut);
    ds_catalog_held(s4, &v2, &n2);
    assert_true(v2 == 0 && n2 == 0);
    ds_store_t *o = open_store("xcat_other");
    make_T(o);
    void *ob;
    size_t olen;
    CHECK_OK(ds_catalog_export(o, 1, &ob, &olen, &v2, &n2));
    assert_int_equal(ds_catalog_import(s4, ob, olen), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "another store"));
    free(ob);
    ds_close(o);
    CHECK_OK(ds_destroy_store(f, "xcat_other"));
    ds_pin(s4);
    assert_int_equal(ds_catalog_import(s4, buf, len), FAM_EBUSY);
    ds_unpin(s4);
    CHECK_OK(ds_catalog_import(s4, buf, len));
    /* another commit: the importer, unpinned, reads it */
    const ds_column_def_t c1[] = {{"a", DS_INT64}};
    CHECK_OK(ds_create_dataset(s, "U", 1, c1));
    CHECK_OK(ds_info(s4, "U", &in));
    ds_free_info(in);
    same_info(s, s4);
    /* only the version: no buffer */
    CHECK_OK(ds_catalog_export(s4, 0, NULL, NULL, &v2, &n2));
    CHECK_OK(ds_version(s, &v));
    assert_int_equal(v2, v);
    free(buf);
    ds_close(s4);
    ds_close(s2);
    ds_close(s);
    CHECK_OK(ds_destroy_store(f, "xcat"));
}

/* ---- atomic, all-or-nothing commits ---------------------------------------------------- */

static void a_commit_with_one_bad_batch_changes_nothing(void **state)
{
    (void)state;
    ds_store_t *s = open_store("aon");
    make_T(s);
    ds_batch_t *b[3];
    assert_non_null(b[0] = fill_batch(s, "T", 1, 100));
    assert_non_null(b[1] = fill_batch(s, "T", 2, 100));
    /* the third has no categories for its text column */
    CHECK_OK(ds_batch_begin(s, "T", 10, &b[2]));
    uint64_t v0, v1;
    CHECK_OK(ds_version(s, &v0));
    assert_int_equal(ds_commit(s, "T", 3, b), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "categories"));
    CHECK_OK(ds_version(s, &v1));
    assert_int_equal(v1, v0);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 0);
    ds_free_info(in);
    /* an aborted batch's arrays are gone: committing it fails */
    ds_batch_ref_t ref;
    ds_batch_ref(b[2], &ref);
    CHECK_OK(ds_batch_abort(b[2]));
    assert_int_equal(ds_commit_refs(s, "T", 1, &ref), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), ref.id));
    /* the good two commit; committing one again is refused */
    CHECK_OK(ds_commit(s, "T", 2, b));
    assert_int_equal(ds_commit(s, "T", 1, b), FAM_EEXIST);
    /* committed: not deleted, the handle freed all the same (closed below:
     * a fresh handle on the same batch) */
    ds_batch_ref_t r0;
    ds_batch_ref(b[0], &r0);
    assert_int_equal(ds_batch_abort(b[0]), FAM_EBUSY);
    b[0] = NULL;
    CHECK_OK(ds_batch_attach(s, "T", &r0, &b[0]));
    /* a ref with the wrong row count is refused */
    ds_batch_t *c = fill_batch(s, "T", 3, 50);
    assert_non_null(c);
    ds_batch_ref(c, &ref);
    ref.rows = 49;
    assert_int_equal(ds_commit_refs(s, "T", 1, &ref), FAM_EINVAL);
    /* the same batch twice in one commit */
    ds_batch_ref_t two[2];
    ds_batch_ref(c, &two[0]);
    ds_batch_ref(c, &two[1]);
    assert_int_equal(ds_commit_refs(s, "T", 2, two), FAM_EINVAL);
    /* attach from "another process" and commit by ref */
    ds_batch_t *c2;
    CHECK_OK(ds_batch_attach(s, "T", &two[0], &c2));
    assert_string_equal(ds_batch_array_name(c2, 1), ds_batch_array_name(c, 1));
    CHECK_OK(ds_commit_refs(s, "T", 1, &two[0]));
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 3);
    for (size_t i = 0; i < 3; i++) {
        int64_t tag;
        const char *why = check_batch(s, in, i, &tag);
        if (why) fail_msg("batch %zu: %s", i, why);
        assert_int_equal(tag, (int64_t)i + 1);
    }
    ds_free_info(in);
    for (int i = 0; i < 2; i++) ds_batch_close(b[i]);
    ds_batch_close(c);
    ds_batch_close(c2);
    ds_close(s);
}

/* ds_txn_append_begun commits batches without looking their arrays up;
 * it still refuses batches begun for other dtypes than the dataset has at
 * commit time, and text columns without categories. */
static void vouched_batches_commit_and_other_dtypes_are_refused(void **state)
{
    (void)state;
    ds_store_t *s = open_store("vouch");
    make_T(s);
    const ds_dtype_t dts[TNCOLS] = {DS_INT64, DS_INT64, DS_FLOAT64, DS_TEXT};
    ds_batch_t *b = fill_batch(s, "T", 3, 9);
    assert_non_null(b);
    ds_batch_ref_t ref;
    ds_batch_ref(b, &ref);
    ds_txn_t *t;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_append_begun(t, "T", TNCOLS, dts, 1, &ref));
    CHECK_OK(ds_txn_commit(t, NULL));
    ds_batch_close(b);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 1);
    assert_int_equal(in->batches[0].rows, 9);
    int64_t got[9];
    CHECK_OK(ds_read(s, in, 0, 1, 0, 9, got));
    for (int r = 0; r < 9; r++) assert_int_equal(got[r], 3 * 1000000 + r);
    ds_free_info(in);
    /* begun for other dtypes than T's: refused, nothing committed */
    const ds_dtype_t wrong[TNCOLS] = {DS_INT64, DS_FLOAT64, DS_FLOAT64, DS_TEXT};
    b = fill_batch(s, "T", 4, 5);
    assert_non_null(b);
    ds_batch_ref(b, &ref);
    uint64_t v0, v1;
    CHECK_OK(ds_version(s, &v0));
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_append_begun(t, "T", TNCOLS, wrong, 1, &ref));
    assert_int_equal(ds_txn_commit(t, NULL), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "other dtypes"));
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_append_begun(t, "T", TNCOLS - 1, dts, 1, &ref));
    assert_int_equal(ds_txn_commit(t, NULL), FAM_EINVAL);
    CHECK_OK(ds_version(s, &v1));
    assert_int_equal(v1, v0);
    ds_batch_abort(b);
    /* a text column still needs its categories */
    ds_batch_t *nb;
    CHECK_OK(ds_batch_begin_dtypes(s, TNCOLS, dts, 2, &nb));
    ds_batch_ref(nb, &ref);
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_append_begun(t, "T", TNCOLS, dts, 1, &ref));
    assert_int_equal(ds_txn_commit(t, NULL), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "categories"));
    ds_batch_abort(nb);
    /* arguments */
    CHECK_OK(ds_txn_begin(s, &t));
    assert_int_equal(ds_txn_append_begun(t, "T", 0, dts, 1, &ref), FAM_EINVAL);
    const ds_dtype_t bad[1] = {(ds_dtype_t)99};
    assert_int_equal(ds_txn_append_begun(t, "T", 1, bad, 1, &ref), FAM_EINVAL);
    ds_txn_abort(t);
    ds_close(s);
}

/* ds_list_behind: the derived datasets whose progress differs from the
 * batches of the base at the root of their lineage, in creation order. */
static void derived_datasets_behind_their_root_are_listed(void **state)
{
    (void)state;
    ds_store_t *s = open_store("behind");
    make_T(s);
    for (int k = 0; k < 2; k++) {
        commit_filled(s, k, 5);
    }
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    struct { const char *name, *base; uint64_t done; } defs[] = {
        {"T.a", "T", 1},        /* behind: T has 2 */
        {"T.b", "T", 2},        /* current */
        {"T.b.c", "T.b", 1},    /* behind its root T, though its base is current */
        {"T.b.d", "T.b", 2},    /* current */
        {"orphan", "gone", 0},  /* no root: left out */
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        ds_dataset_def_t def = {.name = defs[i].name, .kind = DS_KIND_INDEX,
                                .base = defs[i].base, .expr = "x", .ncols = 1, .cols = ic};
        ds_txn_t *t;
        CHECK_OK(ds_txn_begin(s, &t));
        CHECK_OK(ds_txn_create(t, &def));
        CHECK_OK(ds_txn_set_progress(t, defs[i].name, defs[i].done));
        CHECK_OK(ds_txn_commit(t, NULL));
    }
    char **names;
    size_t n;
    CHECK_OK(ds_list_behind(s, 32, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "T.a");
    assert_string_equal(names[1], "T.b.c");
    ds_free_names(names, n);
    CHECK_OK(ds_list_behind(s, 0, &names, &n)); /* T.b.c's root is 2 bases away */
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "T.a");
    ds_free_names(names, n);
    ds_close(s);
}

/* Commit an index dataset `name` derived from `base` through handle s. */
static void create_index(ds_store_t *s, const char *name, const char *base)
{
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    ds_dataset_def_t def = {.name = name, .kind = DS_KIND_INDEX, .base = base, .expr = "x",
                            .ncols = 1, .cols = ic};
    ds_txn_t *t;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &def));
    CHECK_OK(ds_txn_commit(t, NULL));
}

/* ds_list_family of `name`, its names in order as one string ("a b c"). */
static void family_of(ds_store_t *s, const char *name, char *out, size_t max)
{
    char **names;
    size_t n;
    CHECK_OK(ds_list_family(s, name, &names, &n));
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), max - strlen(out), "%s%s", i ? " " : "", names[i]);
    ds_free_names(names, n);
}

/* ds_list_family: the datasets whose lineage tops out where one's does,
 * in creation order, whichever member is asked; a dataset whose base is
 * not in the store tops out at itself. */
static void a_family_is_listed_from_any_of_its_members(void **state)
{
    (void)state;
    ds_store_t *s = open_store("family");
    make_T(s);
    commit_filled(s, 0, 5);
    struct { const char *name, *base; } defs[] = {
        {"T.a", "T"}, {"orphan", "gone"}, {"T.b", "T"}, {"orphan.y", "orphan"},
        {"T.b.c", "T.b"}, {"T.b.d", "T.b"},
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        create_index(s, defs[i].name, defs[i].base);
    struct { const char *ask, *want; } cases[] = {
        {"T", "T T.a T.b T.b.c T.b.d"},
        {"T.b.d", "T T.a T.b T.b.c T.b.d"},
        {"orphan.y", "orphan orphan.y"},
        {"orphan", "orphan orphan.y"},
    };
    char got[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        family_of(s, cases[i].ask, got, sizeof got);
        assert_string_equal(got, cases[i].want);
    }
    /* T.b dropped (and what derives from it) */
    CHECK_OK(ds_drop(s, "T.b"));
    char **names;
    size_t n;
    assert_int_equal(ds_list_family(s, "T.b.c", &names, &n), FAM_ENOTFOUND);
    family_of(s, "T.a", got, sizeof got);
    assert_string_equal(got, "T T.a");
    /* another handle's commit is seen: the catalog is read, not kept */
    ds_store_t *other;
    CHECK_OK(ds_open(f, "family", 0, 0600, &other));
    create_index(other, "T.e", "T.a");
    ds_close(other);
    family_of(s, "T", got, sizeof got);
    assert_string_equal(got, "T T.a T.e");
    assert_int_equal(ds_list_family(s, "nobody", &names, &n), FAM_ENOTFOUND);
    assert_int_equal(ds_list_family(s, NULL, &names, &n), FAM_EINVAL);
    ds_close(s);
}

static void a_transaction_creates_appends_and_records_lineage_at_once(void **state)
{
    (void)state;
    ds_store_t *s = open_store("txn");
    make_T(s);
    commit_filled(s, 7, 10);
    /* a derived index dataset: created, one batch, progress, in one commit */
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    ds_dataset_def_t def = {.name = "T.v_gt_5", .kind = DS_KIND_INDEX, .base = "T",
                            .expr = "v gt 5", .ncols = 1, .cols = ic};
    ds_txn_t *t;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &def));
    uint64_t v;
    CHECK_OK(ds_txn_commit(t, &v));
    ds_batch_t *ib;
    CHECK_OK(ds_batch_begin(s, "T.v_gt_5", 4, &ib));
    int64_t idx[4] = {6, 7, 8, 9};
    CHECK_OK(fa_put(ds_batch_array(ib, 0), 0, 4, idx));
    ds_batch_ref_t ref;
    ds_batch_ref(ib, &ref);
    /* a stale expectation fails and changes nothing */
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_expect_batches(t, "T.v_gt_5", 1));
    CHECK_OK(ds_txn_append(t, "T.v_gt_5", 1, &ref));
    CHECK_OK(ds_txn_set_progress(t, "T.v_gt_5", 1));
    assert_int_equal(ds_txn_commit(t, NULL), FAM_EBUSY);
    uint64_t v2;
    CHECK_OK(ds_version(s, &v2));
    assert_int_equal(v2, v);
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_expect_batches(t, "T.v_gt_5", 0));
    CHECK_OK(ds_txn_append(t, "T.v_gt_5", 1, &ref));
    CHECK_OK(ds_txn_set_progress(t, "T.v_gt_5", 1));
    CHECK_OK(ds_txn_commit(t, &v2));
    assert_int_equal(v2, v + 1);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T.v_gt_5", &in));
    assert_int_equal(in->kind, DS_KIND_INDEX);
    assert_string_equal(in->base, "T");
    assert_string_equal(in->expr, "v gt 5");
    assert_int_equal(in->base_batches, 1);
    assert_int_equal(in->nbatches, 1);
    int64_t got[4];
    CHECK_OK(ds_read(s, in, 0, 0, 0, 4, got));
    assert_memory_equal(got, idx, sizeof idx);
    ds_free_info(in);
    ds_batch_close(ib);
    /* an ingest into a new dataset: batches begun by dtypes, the dataset
     * created and the batches appended in one commit */
    const ds_dtype_t dts[TNCOLS] = {DS_INT64, DS_INT64, DS_FLOAT64, DS_TEXT};
    ds_dataset_def_t nd = {.name = "New", .ncols = TNCOLS, .cols = tcols};
    ds_batch_t *nb;
    CHECK_OK(ds_batch_begin_dtypes(s, TNCOLS, dts, 3, &nb));
    ds_batch_ref_t nref;
    ds_batch_ref(nb, &nref);
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &nd));
    CHECK_OK(ds_txn_append(t, "New", 1, &nref));
    assert_int_equal(ds_txn_commit(t, NULL), FAM_EINVAL); /* no categories yet */
    assert_int_equal(ds_info(s, "New", &in), FAM_ENOTFOUND); /* not even empty */
    const char *one[] = {"only"};
    CHECK_OK(ds_batch_set_categories(nb, 3, 1, one));
    ds_batch_t *other;
    CHECK_OK(ds_batch_attach_dtypes(s, TNCOLS, dts, &nref, &other)); /* "another rank" */
    int64_t vals[3] = {5, 6, 7};
    CHECK_OK(fa_put(ds_batch_array(other, 1), 0, 3, vals));
    ds_batch_close(other);
    uint64_t before;
    CHECK_OK(ds_version(s, &before));
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &nd));
    CHECK_OK(ds_txn_append(t, "New", 1, &nref));
    CHECK_OK(ds_txn_commit(t, &v2));
    assert_int_equal(v2, before + 1);
    CHECK_OK(ds_info(s, "New", &in));
    assert_int_equal(in->nbatches, 1);
    assert_int_equal(in->batches[0].ncat[3], 1);
    CHECK_OK(ds_read(s, in, 0, 1, 0, 3, got));
    assert_memory_equal(got, vals, sizeof vals);
    ds_free_info(in);
    ds_batch_close(nb);
    const ds_dtype_t baddt[1] = {(ds_dtype_t)42};
    assert_int_equal(ds_batch_begin_dtypes(s, 1, baddt, 3, &nb), FAM_EINVAL);
    assert_int_equal(ds_batch_begin_dtypes(s, 0, dts, 3, &nb), FAM_EINVAL);
    /* definitions that are refused */
    CHECK_OK(ds_txn_begin(s, &t));
    ds_dataset_def_t nobase = def;
    nobase.base = NULL;
    assert_int_equal(ds_txn_create(t, &nobase), FAM_EINVAL);
    ds_dataset_def_t basewithexpr = {.name = "B", .expr = "x", .ncols = 1, .cols = ic};
    assert_int_equal(ds_txn_create(t, &basewithexpr), FAM_EINVAL);
    ds_txn_abort(t);
    /* a drop takes what is derived from the dropped dataset, down the
     * chain, and nothing else (lineage is by name: one left behind would
     * look current over a "T" made again) */
    const ds_column_def_t wc[] = {{"w", DS_FLOAT64}};
    ds_dataset_def_t chain = {.name = "T.v_gt_5.v_lt_9", .kind = DS_KIND_INDEX,
                              .base = "T.v_gt_5", .expr = "v lt 9", .ncols = 1, .cols = ic};
    ds_dataset_def_t col = {.name = "T.v_gt_5[w]", .kind = DS_KIND_COLUMN, .base = "T.v_gt_5",
                            .expr = "v * 2", .ncols = 1, .cols = wc};
    ds_dataset_def_t ofnew = {.name = "New[w]", .kind = DS_KIND_COLUMN, .base = "New",
                              .expr = "v * 2", .ncols = 1, .cols = wc};
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &chain));
    CHECK_OK(ds_txn_create(t, &col));
    CHECK_OK(ds_txn_create(t, &ofnew));
    CHECK_OK(ds_txn_commit(t, NULL));
    CHECK_OK(ds_drop(s, "T"));
    const char *gone[] = {"T", "T.v_gt_5", "T.v_gt_5.v_lt_9", "T.v_gt_5[w]"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        assert_int_equal(ds_info(s, gone[i], &in), FAM_ENOTFOUND);
    CHECK_OK(ds_info(s, "New", &in));
    ds_free_info(in);
    CHECK_OK(ds_info(s, "New[w]", &in));
    ds_free_info(in);
    assert_int_equal(ds_drop(s, "T.v_gt_5"), FAM_ENOTFOUND);
    ds_close(s);
}

/* ds_txn_stage: the handle answers ds_info as if the transaction were
 * committed (a derived dataset computed from another one's uncommitted
 * batches), nobody else sees it, and it goes with the transaction: on
 * abort nothing is left, on commit it is what everyone reads. */
static void a_staged_transaction_is_seen_by_its_handle_alone_until_it_ends(void **state)
{
    (void)state;
    ds_store_t *s = open_store("stage"), *s2 = open_store("stage");
    make_T(s);
    commit_filled(s, 7, 10);
    const ds_column_def_t ic[] = {{"index", DS_INT64}}, wc[] = {{"w", DS_FLOAT64}};
    ds_dataset_def_t def = {.name = "T.v_gt_5", .kind = DS_KIND_INDEX, .base = "T",
                            .expr = "v gt 5", .ncols = 1, .cols = ic};
    ds_dataset_def_t col = {.name = "T.v_gt_5[w]", .kind = DS_KIND_COLUMN, .base = "T.v_gt_5",
                            .expr = "v * 2", .ncols = 1, .cols = wc};
    ds_txn_t *t, *t2;
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_create(t, &def));
    uint64_t v0, v;
    CHECK_OK(ds_txn_commit(t, &v0));
    ds_batch_t *ib;
    CHECK_OK(ds_batch_begin(s, "T.v_gt_5", 4, &ib));
    int64_t idx[4] = {6, 7, 8, 9}, got[4];
    CHECK_OK(fa_put(ds_batch_array(ib, 0), 0, 4, idx));
    ds_batch_ref_t ref;
    ds_batch_ref(ib, &ref);
    ds_info_t *in;
    for (int end = 0; end < 2; end++) { /* 0: aborted, 1: committed */
        CHECK_OK(ds_txn_begin(s, &t));
        CHECK_OK(ds_txn_expect_batches(t, "T.v_gt_5", 0));
        CHECK_OK(ds_txn_append(t, "T.v_gt_5", 1, &ref));
        CHECK_OK(ds_txn_set_progress(t, "T.v_gt_5", 1));
        CHECK_OK(ds_txn_stage(t));
        CHECK_OK(ds_info(s, "T.v_gt_5", &in));
        assert_int_equal(in->nbatches, 1);
        assert_int_equal(in->base_batches, 1);
        assert_int_equal(in->rows, 4);
        memset(got, 0, sizeof got);
        CHECK_OK(ds_read(s, in, 0, 0, 0, 4, got)); /* through the staged info */
        assert_memory_equal(got, idx, sizeof idx);
        ds_free_info(in);
        assert_int_equal(ds_info(s, "T.v_gt_5[w]", &in), FAM_ENOTFOUND);
        /* more operations, staged again: shown too */
        CHECK_OK(ds_txn_create(t, &col));
        CHECK_OK(ds_txn_stage(t));
        CHECK_OK(ds_info(s, "T.v_gt_5[w]", &in));
        assert_string_equal(in->base, "T.v_gt_5");
        ds_free_info(in);
        /* another transaction may not show itself meanwhile */
        CHECK_OK(ds_txn_begin(s, &t2));
        CHECK_OK(ds_txn_set_progress(t2, "T.v_gt_5", 7));
        assert_int_equal(ds_txn_stage(t2), FAM_EBUSY);
        ds_txn_abort(t2);
        CHECK_OK(ds_info(s, "T.v_gt_5", &in));
        assert_int_equal(in->base_batches, 1);
        ds_free_info(in);
        CHECK_OK(ds_info(s, "T", &in));
        ds_free_info(in);
        /* nothing committed: the catalog and another handle are as they were */
        CHECK_OK(ds_version(s, &v));
        assert_int_equal(v, v0);
        CHECK_OK(ds_info(s2, "T.v_gt_5", &in));
        assert_int_equal(in->nbatches, 0);
        ds_free_info(in);
        assert_int_equal(ds_info(s2, "T.v_gt_5[w]", &in), FAM_ENOTFOUND);
        if (end == 0) {
            ds_txn_abort(t);
            CHECK_OK(ds_info(s, "T.v_gt_5", &in));
            assert_int_equal(in->nbatches, 0);
            assert_int_equal(in->base_batches, 0);
            ds_free_info(in);
            assert_int_equal(ds_info(s, "T.v_gt_5[w]", &in), FAM_ENOTFOUND);
        } else {
            CHECK_OK(ds_txn_commit(t, &v));
            assert_int_equal(v, v0 + 1);
            ds_store_t *hs[2] = {s, s2};
            for (int h = 0; h < 2; h++) {
                CHECK_OK(ds_info(hs[h], "T.v_gt_5", &in));
                assert_int_equal(in->nbatches, 1);
                assert_int_equal(in->base_batches, 1);
                ds_free_info(in);
                CHECK_OK(ds_info(hs[h], "T.v_gt_5[w]", &in));
                ds_free_info(in);
            }
        }
    }
    ds_batch_close(ib);
    /* an operation that fails against the catalog: refused, the handle
     * keeps answering from what is committed; and a drop is not staged */
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_set_progress(t, "T.v_gt_5", 9));
    CHECK_OK(ds_txn_expect_batches(t, "T.v_gt_5", 5));
    assert_int_equal(ds_txn_stage(t), FAM_EBUSY);
    CHECK_OK(ds_info(s, "T.v_gt_5", &in));
    assert_int_equal(in->nbatches, 1);
    assert_int_equal(in->base_batches, 1);
    ds_free_info(in);
    ds_txn_abort(t);
    CHECK_OK(ds_txn_begin(s, &t));
    CHECK_OK(ds_txn_drop(t, "T.v_gt_5[w]"));
    assert_int_equal(ds_txn_stage(t), FAM_EINVAL);
    ds_txn_abort(t);
    CHECK_OK(ds_info(s, "T.v_gt_5[w]", &in));
    ds_free_info(in);
    assert_int_equal(ds_txn_stage(NULL), FAM_EINVAL);
    ds_close(s2);
    ds_close(s);
}

/* Batches with their own category lists read as one categorical column:
 * the union sorted, each batch's codes mapped into it. */
static void per_batch_categories_unify_into_one_sorted_list(void **state)
{
    (void)state;
    ds_store_t *s = open_store("cats");
    const ds_column_def_t c[] = {{"n", DS_INT64}, {"zone", DS_TEXT}};
    CHECK_OK(ds_create_dataset(s, "Z", 2, c));
    const char *lists[3][4] = {{"Queens", "Bronx", "", NULL},
                               {"Staten Island", "Bronx", "Zzz", "Brooklyn"},
                               {NULL}};
    const size_t ns[3] = {3, 4, 0};
    ds_batch_t *b[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(ds_batch_begin(s, "Z", 2, &b[i]));
        CHECK_OK(ds_batch_set_categories(b[i], 1, ns[i], lists[i]));
    }
    CHECK_OK(ds_commit(s, "Z", 3, b));
    for (int i = 0; i < 3; i++) ds_batch_close(b[i]);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "Z", &in));
    ds_categories_t *u;
    CHECK_OK(ds_unify_categories(s, in, 1, &u));
    /* the expected union, computed here: every string once, sorted */
    const char *want[] = {"", "Bronx", "Brooklyn", "Queens", "Staten Island", "Zzz"};
    assert_int_equal(u->n, 6);
    for (size_t i = 0; i < 6; i++) assert_string_equal(u->cats[i], want[i]);
    assert_int_equal(u->nbatches, 3);
    for (int i = 0; i < 3; i++)
        for (size_t k = 0; k < ns[i]; k++)
            assert_string_equal(u->cats[u->maps[i][k]], lists[i][k]);
    assert_null(u->maps[2]);
    ds_free_categories(u);
    assert_int_equal(ds_unify_categories(s, in, 0, &u), FAM_EINVAL);
    assert_int_equal(ds_unify_categories(s, in, 2, &u), FAM_EOUTOFRANGE);
    ds_free_info(in);
    ds_close(s);
}

/* ---- many writers, one reader ---------------------------------------------------------- */

#define P 3  /* writer processes */
#define NPER 6 /* batches each */

static void writer(int p)
{
    fam_t *g = client(servers);
    if (!g) _exit(2);
    ds_store_t *s;
    if (ds_open(g, "conc", 0, 0, &s)) _exit(3);
    for (int i = 0; i < NPER; i++) {
        int64_t tag = p * 100 + i;
        ds_batch_t *b = fill_batch(s, "T", tag, 500 + (uint64_t)(tag % 7) * 300);
        if (!b) _exit(4);
        if (ds_commit(s, "T", 1, &b)) {
            fprintf(stderr, "writer %d: %s\n", p, ds_last_error());
            _exit(5);
        }
        ds_batch_close(b);
    }
    ds_close(s);
    _exit(fam_finalize(g) ? 6 : 0);
}

/* Until the dataset has P*NPER batches: every batch seen is complete. */
static void reader(void)
{
    fam_t *g = client(servers);
    if (!g) _exit(2);
    ds_store_t *s;
    if (ds_open(g, "conc", 0, 0, &s)) _exit(3);
    size_t seen = 0;
    time_t give_up = time(NULL) + 120;
    while (time(NULL) < give_up) {
        ds_info_t *in;
        if (ds_info(s, "T", &in)) {
            fprintf(stderr, "reader: %s\n", ds_last_error());
            _exit(4);
        }
        if (in->nbatches < seen) _exit(5); /* went back in time */
        seen = in->nbatches;
        for (size_t i = 0; i < in->nbatches; i++) {
            int64_t tag;
            const char *why = check_batch(s, in, i, &tag);
            if (why) {
                fprintf(stderr, "reader: batch %zu: %s\n", i, why);
                _exit(6);
            }
        }
        ds_free_info(in);
        if (seen == P * NPER) break;
    }
    ds_close(s);
    _exit(fam_finalize(g) || seen != P * NPER ? 7 : 0);
}

static void concurrent_appends_lose_nothing_and_readers_see_whole_batches(void **state)
{
    (void)state;
    ds_store_t *s = open_store("conc");
    make_T(s);
    uint64_t v0;
    CHECK_OK(ds_version(s, &v0));
    pid_t pids[P + 1];
    pids[P] = fork();
    if (pids[P] == 0) reader();
    for (int p = 0; p < P; p++)
        if ((pids[p] = fork()) == 0) writer(p);
    for (int p = 0; p <= P; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s %d ended with status %#x", p < P ? "writer" : "reader", p, st);
    }
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, P * NPER);
    assert_int_equal(in->version, v0 + P * NPER); /* one version per commit */
    int found[P][NPER] = {{0}};
    uint64_t rows = 0;
    int last[P];
    for (int p = 0; p < P; p++) last[p] = -1;
    for (size_t i = 0; i < in->nbatches; i++) {
        int64_t tag;
        const char *why = check_batch(s, in, i, &tag);
        if (why) fail_msg("batch %zu: %s", i, why);
        int p = (int)(tag / 100), k = (int)(tag % 100);
        assert_true(p >= 0 && p < P && k >= 0 && k < NPER);
        found[p][k]++;
        assert_true(k > last[p]); /* each writer's batches in its own order */
        last[p] = k;
        rows += in->batches[i].rows;
    }
    for (int p = 0; p < P; p++)
        for (int k = 0; k < NPER; k++) assert_int_equal(found[p][k], 1);
    assert_int_equal(in->rows, rows);
    ds_free_info(in);
    /* old snapshots are freed as commits go on: at most DS_KEEP behind */
    assert_true(count_items(s, "c.") <= 9);
    assert_true(count_items(s, "c.") >= 2);
    ds_close(s);
}

/* Several processes creating the same store and dataset at once: all
 * succeed, and there is one store with one dataset. */
static void concurrent_creators_of_one_store_all_succeed(void **state)
{
    (void)state;
    enum { NP = 4 };
    pid_t pids[NP];
    for (int p = 0; p < NP; p++)
        if ((pids[p] = fork()) == 0) {
            fam_t *g = client(servers);
            ds_store_t *gs;
            if (!g) _exit(2);
            if (ds_open(g, "race", DS_CREATE, 0600, &gs)) {
                fprintf(stderr, "creator %d: %s\n", p, ds_last_error());
                _exit(3);
            }
            if (ds_create_dataset(gs, "T", TNCOLS, tcols)) {
                fprintf(stderr, "creator %d: %s\n", p, ds_last_error());
                _exit(4);
            }
            ds_close(gs);
            _exit(fam_finalize(g) ? 5 : 0);
        }
    for (int p = 0; p < NP; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) fail_msg("creator %d: status %#x", p, st);
    }
    ds_store_t *s;
    CHECK_OK(ds_open(f, "race", 0, 0, &s));
    char **names;
    size_t n;
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 1);
    ds_free_names(names, n);
    uint64_t v;
    CHECK_OK(ds_version(s, &v));
    assert_int_equal(v, 1); /* one create; the others found it made */
    ds_close(s);
}

/* A mix at once: writers appending one to three batches per commit to
 * "T" while each also creates, fills and drops its own side dataset, and
 * a reader checking T. Every T batch lands exactly once; the side datasets
 * are gone with their arrays. */
#define MIXP 3
#define MIXN 5
static void mixed_writer(int p)
{
    fam_t *g = client(servers);
    ds_store_t *s;
    if (!g || ds_open(g, "mix", 0, 0, &s)) _exit(2);
    char side[32];
    snprintf(side, sizeof side, "Side%d", p);
    const ds_column_def_t c1[] = {{"x", DS_FLOAT64}};
    for (int i = 0; i < MIXN; i++) {
        int nb = 1 + (p + i) % 3;
        ds_batch_t *b[3];
        for (int k = 0; k < nb; k++)
            if (!(b[k] = fill_batch(s, "T", p * 100 + i * 10 + k, 100 + (uint64_t)k))) _exit(3);
        if (ds_commit(s, "T", (size_t)nb, b)) {
            fprintf(stderr, "mixed writer %d: %s\n", p, ds_last_error());
            _exit(4);
        }
        for (int k = 0; k < nb; k++) ds_batch_close(b[k]);
        ds_batch_t *sb;
        if (ds_create_dataset(s, side, 1, c1) || ds_batch_begin(s, side, 50, &sb) ||
            ds_commit(s, side, 1, &sb)) {
            fprintf(stderr, "mixed writer %d side: %s\n", p, ds_last_error());
            _exit(5);
        }
        ds_batch_close(sb);
        if (ds_drop(s, side)) _exit(6);
    }
    ds_close(s);
    _exit(fam_finalize(g) ? 7 : 0);
}

static void appends_creates_and_drops_at_once_keep_every_batch_once(void **state)
{
    (void)state;
    ds_store_t *s = open_store("mix");
    make_T(s);
    pid_t pids[MIXP + 1];
    if ((pids[MIXP] = fork()) == 0) { /* reader: every batch it sees is whole */
        fam_t *g = client(servers);
        ds_store_t *rs;
        if (!g || ds_open(g, "mix", 0, 0, &rs)) _exit(2);
        time_t give_up = time(NULL) + 120;
        size_t want = 0;
        for (int p = 0; p < MIXP; p++)
            for (int i = 0; i < MIXN; i++) want += (size_t)(1 + (p + i) % 3);
        size_t seen = 0;
        while (seen < want && time(NULL) < give_up) {
            ds_info_t *in;
            if (ds_info(rs, "T", &in)) _exit(3);
            for (size_t i = 0; i < in->nbatches; i++) {
                int64_t tag;
                const char *why = check_batch(rs, in, i, &tag);
                if (why) {
                    fprintf(stderr, "mix reader: batch %zu: %s\n", i, why);
                    _exit(4);
                }
            }
            seen = in->nbatches;
            ds_free_info(in);
        }
        ds_close(rs);
        _exit(fam_finalize(g) || seen != want ? 5 : 0);
    }
    for (int p = 0; p < MIXP; p++)
        if ((pids[p] = fork()) == 0) mixed_writer(p);
    for (int p = 0; p <= MIXP; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s %d ended with status %#x", p < MIXP ? "writer" : "reader", p, st);
    }
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    int found[MIXP][MIXN][3] = {{{0}}};
    size_t want = 0;
    for (size_t i = 0; i < in->nbatches; i++) {
        int64_t tag;
        const char *why = check_batch(s, in, i, &tag);
        if (why) fail_msg("batch %zu: %s", i, why);
        found[tag / 100][(tag % 100) / 10][tag % 10]++;
    }
    for (int p = 0; p < MIXP; p++)
        for (int i = 0; i < MIXN; i++)
            for (int k = 0; k < 3; k++) {
                int expect = k < 1 + (p + i) % 3;
                want += (size_t)expect;
                assert_int_equal(found[p][i][k], expect);
            }
    assert_int_equal(in->nbatches, want);
    /* the batches of T sit in T's commits: each commit's batches are
     * adjacent (one atomic change) */
    for (size_t i = 0; i < in->nbatches;) {
        int64_t tag;
        assert_null(check_batch(s, in, i, &tag));
        int p = (int)(tag / 100), it = (int)((tag % 100) / 10), nb = 1 + (p + it) % 3;
        assert_int_equal(tag % 10, 0);
        for (int k = 1; k < nb; k++) {
            int64_t t2;
            assert_null(check_batch(s, in, i + (size_t)k, &t2));
            assert_int_equal(t2, tag + k);
        }
        i += (size_t)nb;
    }
    ds_free_info(in);
    char **names;
    size_t n;
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 1); /* the side datasets are dropped */
    ds_free_names(names, n);
    /* and their arrays freed: only T's remain */
    assert_int_equal(count_items(s, "b."), want * TNCOLS);
    ds_close(s);
}

/* ---- crashes -------------------------------------------------------------------------- */

/* A child that appends a batch of tag `tag` and dies where `kill_at` says
 * (DS_TEST_KILL_AT), or, with kill_at "batch", in the middle of writing its
 * batch (killed by the parent). Returns when the child is dead. */
static void crashing_writer(const char *store, int64_t tag, const char *kill_at)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        fam_t *g = client(servers);
        ds_store_t *s;
        if (!g || ds_open(g, store, 0, 0, &s)) _exit(2);
        if (strcmp(kill_at, "batch") == 0) {
            ds_batch_t *b;
            if (ds_batch_begin(s, "T", 1000, &b)) _exit(3);
            int64_t v[100];
            for (int i = 0; i < 100; i++) v[i] = tag;
            if (fa_put(ds_batch_array(b, 0), 0, 100, v)) _exit(4);
            if (write(p[1], "x", 1) != 1) _exit(5);
            for (;;) pause(); /* half-written: killed here */
        }
        ds_batch_t *b = fill_batch(s, "T", tag, 300);
        if (!b) _exit(3);
        setenv("DS_TEST_KILL_AT", kill_at, 1);
        if (strncmp(kill_at, "drop", 4) == 0) ds_drop(s, "T");
        else ds_commit(s, "T", 1, &b);
        _exit(9); /* not reached: the kill point fires */
    }
    close(p[1]);
    if (strcmp(kill_at, "batch") == 0) {
        char c;
        assert_int_equal(read(p[0], &c, 1), 1);
        kill(pid, SIGKILL);
    }
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
        fail_msg("the writer ended with status %#x, not killed", st);
}

static void a_writer_killed_mid_batch_or_mid_commit_leaves_the_store_consistent(void **state)
{
    (void)state;
    ds_store_t *s = open_store("crash");
    make_T(s);
    ds_batch_t *b = fill_batch(s, "T", 1, 200);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
    uint64_t v0, v;
    CHECK_OK(ds_version(s, &v0));
    size_t snaps0 = count_items(s, "c.");

    /* killed while writing a batch: nothing visible, arrays orphaned */
    crashing_writer("crash", 2, "batch");
    CHECK_OK(ds_version(s, &v));
    assert_int_equal(v, v0);
    assert_int_equal(count_items(s, "b."), 2 * TNCOLS);
    /* killed after writing its snapshot, before swinging the head */
    crashing_writer("crash", 3, "publish:1");
    CHECK_OK(ds_version(s, &v));
    assert_int_equal(v, v0);
    assert_int_equal(count_items(s, "c."), snaps0 + 1);
    assert_int_equal(count_items(s, "b."), 3 * TNCOLS);
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 1);
    int64_t tag;
    assert_null(check_batch(s, in, 0, &tag));
    assert_int_equal(tag, 1);
    ds_free_info(in);

    /* the normal age keeps them (they are young: a live writer's) */
    ds_reclaim_stats_t st;
    CHECK_OK(ds_reclaim(s, DS_RECLAIM_AGE, &st));
    assert_int_equal(st.arrays + st.categories + st.snapshots, 0);
    assert_int_equal(st.kept_young, 2 * TNCOLS + 1 + 1); /* arrays, 1 category, 1 snapshot */
    assert_int_equal(count_items(s, "b."), 3 * TNCOLS);
    /* with age 0 (no writer running) the batches go, the committed one
     * stays; the snapshot above the head stays for DS_SNAPSHOT_GRACE (a
     * commit could be about to swing the head to it) */
    CHECK_OK(ds_reclaim(s, 0, &st));
    assert_int_equal(st.arrays, 2 * TNCOLS);
    assert_int_equal(st.categories, 1);
    assert_int_equal(st.snapshots, 0);
    assert_int_equal(st.kept_young, 1);
    assert_int_equal(count_items(s, "b."), TNCOLS);
    assert_int_equal(count_items(s, "k."), 1);
    assert_int_equal(count_items(s, "c."), snaps0 + 1);

    /* killed after swinging the head: the commit happened, whole; the
     * dead writer's snapshot of the same version can no longer become the
     * head, so reclaim frees it at once */
    crashing_writer("crash", 4, "publish:2");
    CHECK_OK(ds_version(s, &v));
    assert_int_equal(v, v0 + 1);
    CHECK_OK(ds_reclaim(s, 0, &st));
    assert_int_equal(st.snapshots, 1);
    assert_int_equal(st.arrays + st.categories + st.kept_young, 0);
    assert_int_equal(count_items(s, "c."), snaps0 + 1); /* one more kept behind the head */
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 2);
    assert_null(check_batch(s, in, 1, &tag));
    assert_int_equal(tag, 4);
    ds_free_info(in);

    /* the store checks out, arrays and codes */
    size_t checked;
    CHECK_OK(ds_verify(s, DS_VERIFY_CODES, &checked));
    assert_int_equal(checked, 2 * TNCOLS);
    /* later appends work */
    b = fill_batch(s, "T", 5, 20);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 3);
    assert_null(check_batch(s, in, 2, &tag));
    assert_int_equal(tag, 5);
    ds_free_info(in);

    /* a dropper killed between its commit and freeing the arrays: the
     * dataset is gone, reclaim frees what it held (and the dropper's
     * own uncommitted batch) */
    crashing_writer("crash", 6, "drop:1");
    assert_int_equal(ds_info(s, "T", &in), FAM_ENOTFOUND);
    assert_int_equal(count_items(s, "b."), 4 * TNCOLS);
    CHECK_OK(ds_reclaim(s, 0, &st));
    assert_int_equal(st.arrays, 4 * TNCOLS);
    assert_int_equal(count_items(s, "b."), 0);
    assert_int_equal(count_items(s, "k."), 0);
    ds_close(s);
}

/* Snapshots above the head that are older than DS_SNAPSHOT_GRACE (60 s):
 * an abandoned one is freed; one whose commit landed is the head, kept. */
static void old_snapshots_above_the_head_are_freed_unless_they_are_the_head(void **state)
{
    (void)state;
    ds_store_t *s = open_store("orph");
    make_T(s);
    fam_item_t *head;
    CHECK_OK(fam_lookup(f, "head", "ds.orph", &head));
    uint64_t h[2];
    CHECK_OK(fam_get_blocking(f, h, head, 0, 16));
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, "ds.orph", &r));
    /* an abandoned snapshot of the next version, "made" 1000 s ago */
    uint64_t old_nonce = ((uint64_t)(time(NULL) - 1000) << 32) | 7;
    char name[64];
    snprintf(name, sizeof name, "c.%016" PRIx64 ".%016" PRIx64, h[0] + 1, old_nonce);
    fam_item_t *it;
    CHECK_OK(fam_allocate(f, name, 64, 0600, r, &it));
    fam_release(it);
    ds_reclaim_stats_t st;
    CHECK_OK(ds_reclaim(s, 0, &st));
    assert_int_equal(st.snapshots, 1);
    assert_int_equal(fam_lookup(f, name, "ds.orph", &it), FAM_ENOTFOUND);
    /* a young one is kept (a commit may be in flight) */
    uint64_t young = ((uint64_t)time(NULL) << 32) | 9;
    snprintf(name, sizeof name, "c.%016" PRIx64 ".%016" PRIx64, h[0] + 1, young);
    CHECK_OK(fam_allocate(f, name, 64, 0600, r, &it));
    fam_release(it);
    CHECK_OK(ds_reclaim(s, 0, &st));
    assert_int_equal(st.snapshots, 0);
    assert_int_equal(st.kept_young, 1);
    fam_release_region(r);
    fam_release(head);
    /* a later commit passes it: then it goes at once */
    ds_batch_t *b = fill_batch(s, "T", 1, 3);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
    CHECK_OK(ds_reclaim(s, 0, &st));
    assert_int_equal(st.snapshots, 1);
    assert_int_equal(fam_lookup(f, name, "ds.orph", &it), FAM_ENOTFOUND);
    char **names;
    size_t n;
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 1);
    ds_free_names(names, n);
    ds_close(s);
}

/* ds_defer_cleanup: a commit leaves the snapshot it retires (the oldest
 * of those kept behind the head) for ds_cleanup, which deletes exactly
 * those; readers meanwhile read the new version; at most 8 wait (more are
 * deleted at once); turning it off, and ds_close, clean up. */
static void retired_snapshots_wait_for_ds_cleanup_when_deferred(void **state)
{
    (void)state;
    ds_store_t *s = open_store("defer");
    make_T(s);
    for (int i = 0; i < 10; i++) commit_filled(s, i, 3); /* every kept slot in use */
    size_t steady = count_items(s, "c.");
    commit_filled(s, 10, 3);
    assert_int_equal(count_items(s, "c."), steady); /* one made, one deleted */
    ds_defer_cleanup(s, 1);
    commit_filled(s, 11, 3);
    commit_filled(s, 12, 3);
    assert_int_equal(count_items(s, "c."), steady + 2);
    ds_store_t *s2 = open_store("defer");
    ds_info_t *in;
    CHECK_OK(ds_info(s2, "T", &in));
    assert_int_equal(in->nbatches, 13);
    ds_free_info(in);
    assert_int_equal(ds_cleanup(s), 2);
    assert_int_equal(count_items(s, "c."), steady);
    assert_int_equal(ds_cleanup(s), 0);
    for (int i = 0; i < 9; i++) commit_filled(s, 20 + i, 2);
    assert_int_equal(count_items(s, "c."), steady + 8); /* the ninth went at once */
    ds_defer_cleanup(s, 0);
    assert_int_equal(count_items(s, "c."), steady);
    ds_defer_cleanup(s, 1);
    commit_filled(s, 40, 2);
    assert_int_equal(count_items(s2, "c."), steady + 1);
    ds_close(s);
    assert_int_equal(count_items(s2, "c."), steady);
    CHECK_OK(ds_info(s2, "T", &in));
    assert_int_equal(in->nbatches, 23);
    ds_free_info(in);
    assert_int_equal(ds_cleanup(NULL), 0);
    ds_close(s2);
}

/* ---- damaged and hostile catalogs -------------------------------------------------------- */

/* Write a snapshot with this body (correct header and checksum) as the
 * next version and swing the head to it: a hostile writer's catalog. */
static void plant_catalog(ds_store_t *s, const char *body)
{
    fam_item_t *head;
    CHECK_OK(fam_lookup(f, "head", ds_store_region(s), &head));
    uint64_t h[2];
    CHECK_OK(fam_get_blocking(f, h, head, 0, 16));
    uint64_t v = h[0] + 1, nonce = 0x1234567800000000ull + v;
    char name[64];
    snprintf(name, sizeof name, "c.%016" PRIx64 ".%016" PRIx64, v, nonce);
    size_t len = strlen(body);
    uint8_t *buf = calloc(1, 64 + len);
    memcpy(buf, "KDDSCAT1", 8);
    memcpy(buf + 8, &v, 8);
    memcpy(buf + 16, &nonce, 8);
    uint64_t l = len;
    memcpy(buf + 24, &l, 8);
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)body, (uInt)len), fmt = 1;
    memcpy(buf + 32, &crc, 4);
    memcpy(buf + 36, &fmt, 4);
    memcpy(buf + 64, body, len);
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, ds_store_region(s), &r));
    fam_item_t *it;
    CHECK_OK(fam_allocate(f, name, 64 + len, 0600, r, &it));
    fam_release_region(r);
    CHECK_OK(fam_put_blocking(f, buf, it, 0, 64 + len));
    fam_release(it);
    free(buf);
    uint64_t want[2] = {v, nonce}, old[2];
    CHECK_OK(fam_compare_swap_int128(f, head, 0, h, want, old));
    assert_true(old[0] == h[0] && old[1] == h[1]);
    fam_release(head);
}

/* A process attaching now (a fresh handle: nothing cached) gets FAM_EIO
 * from everything that reads the catalog. */
static void expect_damaged(ds_store_t *s0, const char *what)
{
    ds_store_t *s;
    CHECK_OK(ds_open(f, ds_store_name(s0), 0, 0, &s));
    char **names;
    size_t n;
    int rc = ds_list(s, &names, &n);
    if (rc != FAM_EIO) fail_msg("%s: ds_list gave %d (%s), not FAM_EIO", what, rc, ds_last_error());
    assert_non_null(strstr(ds_last_error(), "dataset store 'bad'"));
    ds_info_t *in;
    assert_int_equal(ds_info(s, "T", &in), FAM_EIO);
    ds_batch_t *b;
    assert_int_equal(ds_batch_begin(s, "T", 1, &b), FAM_EIO);
    const ds_column_def_t c1[] = {{"a", DS_INT64}};
    assert_int_equal(ds_create_dataset(s, "U", 1, c1), FAM_EIO);
    ds_reclaim_stats_t st;
    assert_int_equal(ds_reclaim(s, 0, &st), FAM_EIO);
    ds_close(s);
}

static void damaged_or_hostile_catalogs_give_errors_not_crashes(void **state)
{
    (void)state;
    ds_store_t *s = open_store("bad");
    make_T(s);
    ds_batch_t *b = fill_batch(s, "T", 1, 10);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
    /* bytes of the current snapshot overwritten */
    fam_item_t *head;
    CHECK_OK(fam_lookup(f, "head", "ds.bad", &head));
    uint64_t h[2];
    CHECK_OK(fam_get_blocking(f, h, head, 0, 16));
    char name[64];
    snprintf(name, sizeof name, "c.%016" PRIx64 ".%016" PRIx64, h[0], h[1]);
    fam_item_t *snap;
    CHECK_OK(fam_lookup(f, name, "ds.bad", &snap));
    uint8_t keep[16], junk[16];
    memset(junk, 0x5a, sizeof junk);
    CHECK_OK(fam_get_blocking(f, keep, snap, 100, 16));
    CHECK_OK(fam_put_blocking(f, junk, snap, 100, 16));
    expect_damaged(s, "overwritten body");
    CHECK_OK(fam_put_blocking(f, keep, snap, 100, 16)); /* repaired: readable again */
    char **names;
    size_t n;
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 1);
    ds_free_names(names, n);
    /* a header claiming a huge body */
    uint64_t huge = UINT64_MAX - 5;
    CHECK_OK(fam_get_blocking(f, keep, snap, 24, 8));
    CHECK_OK(fam_put_blocking(f, &huge, snap, 24, 8));
    expect_damaged(s, "huge length");
    CHECK_OK(fam_put_blocking(f, keep, snap, 24, 8));
    fam_release(snap);
    /* a head naming a snapshot that does not exist */
    uint64_t bogus[2] = {h[0] + 1000, 42}, old[2];
    CHECK_OK(fam_compare_swap_int128(f, head, 0, h, bogus, old));
    expect_damaged(s, "head names nothing");
    CHECK_OK(fam_compare_swap_int128(f, head, 0, bogus, h, old));
    fam_release(head);
    CHECK_OK(ds_list(s, &names, &n));
    ds_free_names(names, n);

    /* well-formed snapshots with hostile content (each planted on top) */
    const char *hostile[] = {
        "[]",
        "{\"format\":1}",
        "{\"format\":2,\"version\":%V,\"history\":[],\"datasets\":[]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{}]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{\"name\":\"T\",\"kind\":\"base\","
        "\"base\":\"\",\"expr\":\"\",\"base_batches\":0,\"columns\":[{\"name\":\"a\",\"dtype\":\"int128\"}],"
        "\"batches\":[]}]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{\"name\":\"T\",\"kind\":\"base\","
        "\"base\":\"\",\"expr\":\"\",\"base_batches\":0,\"columns\":[{\"name\":\"a\",\"dtype\":\"int64\"}],"
        "\"batches\":[[\"00000000000000000000000g\",5]]}]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{\"name\":\"T\",\"kind\":\"base\","
        "\"base\":\"\",\"expr\":\"\",\"base_batches\":0,\"columns\":[{\"name\":\"a\",\"dtype\":\"int64\"}],"
        "\"batches\":[[\"000000000000000000000000\",-5]]}]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{\"name\":\"T\",\"kind\":\"base\","
        "\"base\":\"\",\"expr\":\"\",\"base_batches\":0,\"columns\":[{\"name\":\"a\",\"dtype\":\"int64\"},"
        "{\"name\":\"a\",\"dtype\":\"int64\"}],\"batches\":[]}]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{\"name\":\"T\",\"kind\":\"base\","
        "\"base\":\"\",\"expr\":\"\",\"base_batches\":0,\"columns\":[{\"name\":\"a\",\"dtype\":\"text\"}],"
        "\"batches\":[[\"000000000000000000000000\",5,[99999999999]]]}]}",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[{\"name\":\"T\\u0000x\",\"kind\":\"base\","
        "\"base\":\"\",\"expr\":\"\",\"base_batches\":0,\"columns\":[{\"name\":\"a\",\"dtype\":\"int64\"}],"
        "\"batches\":[]}]}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "{\"format\":1,\"version\":%V,\"history\":[],\"datasets\":[1,2,3]} trailing",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        fam_item_t *hd;
        CHECK_OK(fam_lookup(f, "head", "ds.bad", &hd));
        uint64_t cur[2];
        CHECK_OK(fam_get_blocking(f, cur, hd, 0, 16));
        fam_release(hd);
        char body[2048], ver[32];
        snprintf(ver, sizeof ver, "%" PRIu64, cur[0] + 1);
        const char *at = strstr(hostile[i], "%V");
        if (at)
            snprintf(body, sizeof body, "%.*s%s%s", (int)(at - hostile[i]), hostile[i], ver, at + 2);
        else
            snprintf(body, sizeof body, "%s", hostile[i]);
        plant_catalog(s, body);
        char what[32];
        snprintf(what, sizeof what, "hostile body %zu", i);
        expect_damaged(s, what);
    }
    /* a valid catalog planted last makes the store usable again */
    fam_item_t *hd;
    CHECK_OK(fam_lookup(f, "head", "ds.bad", &hd));
    uint64_t cur[2];
    CHECK_OK(fam_get_blocking(f, cur, hd, 0, 16));
    fam_release(hd);
    char body[256];
    snprintf(body, sizeof body, "{\"format\":1,\"version\":%" PRIu64 ",\"history\":[],"
             "\"datasets\":[]}", cur[0] + 1);
    plant_catalog(s, body);
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 0);
    make_T(s);
    /* damaged categories and an array swapped for one of another shape */
    ds_batch_t *cb = fill_batch(s, "T", 4, 10);
    assert_non_null(cb);
    CHECK_OK(ds_commit(s, "T", 1, &cb));
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    CHECK_OK(ds_verify(s, DS_VERIFY_CODES, NULL));
    assert_int_equal(ds_verify(s, 0, NULL), 0);
    {   /* a code past the batch's categories: only the code check sees it */
        fa_array_t *za;
        CHECK_OK(fa_open(f, "ds.bad", in->batches[0].arrays[3], &za));
        int64_t bad = 99, keep0;
        CHECK_OK(fa_get(za, 7, 1, &keep0));
        CHECK_OK(fa_put(za, 7, 1, &bad));
        CHECK_OK(ds_verify(s, 0, NULL));
        assert_int_equal(ds_verify(s, DS_VERIFY_CODES, NULL), FAM_EIO);
        assert_non_null(strstr(ds_last_error(), "row 7 has code 99"));
        CHECK_OK(fa_put(za, 7, 1, &keep0));
        fa_close(za);
    }
    char kname[64];
    snprintf(kname, sizeof kname, "k.%s.3", in->batches[0].id);
    fam_item_t *k;
    CHECK_OK(fam_lookup(f, kname, "ds.bad", &k));
    uint64_t big = 1ull << 40, was;
    CHECK_OK(fam_get_blocking(f, &was, k, 32, 8)); /* the first end offset */
    CHECK_OK(fam_put_blocking(f, &big, k, 32, 8));
    char **cats;
    size_t nc;
    assert_int_equal(ds_read_categories(s, in, 0, 3, &cats, &nc), FAM_EIO);
    assert_int_equal(ds_verify(s, 0, NULL), FAM_EIO);
    assert_non_null(strstr(ds_last_error(), kname));
    CHECK_OK(fam_put_blocking(f, &was, k, 32, 8));
    CHECK_OK(ds_read_categories(s, in, 0, 3, &cats, &nc));
    ds_free_names(cats, nc);
    fam_release(k);
    fa_array_t *a;
    CHECK_OK(fa_open(f, "ds.bad", in->batches[0].arrays[2], &a));
    CHECK_OK(fa_destroy(a));
    CHECK_OK(fa_create(f, "ds.bad", in->batches[0].arrays[2], FA_INT64, 10, 0600, &a));
    fa_close(a);
    ds_store_t *fresh;
    CHECK_OK(ds_open(f, "bad", 0, 0, &fresh));
    assert_int_equal(ds_verify(fresh, 0, NULL), FAM_EIO);
    assert_non_null(strstr(ds_last_error(), in->batches[0].arrays[2]));
    double xv[10];
    assert_int_equal(ds_read(fresh, in, 0, 2, 0, 10, xv), FAM_EIO);
    assert_non_null(strstr(ds_last_error(), "catalog"));
    ds_close(fresh);
    ds_free_info(in);
    ds_batch_close(cb);
    ds_close(s);
    /* a region that is not a store */
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "ds.notastore", 1 << 20, 0700, NULL, &r));
    fam_release_region(r);
    assert_int_equal(ds_open(f, "notastore", 0, 0, &s), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "not a dataset store"));
}

/* ---- snapshots and persistence -------------------------------------------------------- */

static void a_snapshot_reads_several_datasets_at_one_version(void **state)
{
    (void)state;
    ds_store_t *s = open_store("snap");
    make_T(s);
    const ds_column_def_t ic[] = {{"index", DS_INT64}};
    CHECK_OK(ds_create_dataset(s, "I", 1, ic));
    ds_batch_t *b = fill_batch(s, "T", 1, 10);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
    ds_snapshot_t *sn;
    CHECK_OK(ds_snapshot(s, &sn));
    uint64_t v = ds_snapshot_version(sn);
    /* changes after it: another batch, a drop, a new dataset */
    b = fill_batch(s, "T", 2, 10);
    CHECK_OK(ds_commit(s, "T", 1, &b));
    ds_batch_close(b);
    CHECK_OK(ds_drop(s, "I"));
    CHECK_OK(ds_create_dataset(s, "J", 1, ic));
    uint64_t now;
    CHECK_OK(ds_version(s, &now));
    assert_int_equal(now, v + 3);
    char **names;
    size_t n;
    CHECK_OK(ds_snapshot_list(sn, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "T");
    assert_string_equal(names[1], "I");
    ds_free_names(names, n);
    ds_info_t *in;
    CHECK_OK(ds_snapshot_info(sn, "T", &in));
    assert_int_equal(in->nbatches, 1);
    assert_int_equal(in->version, v);
    int64_t tag;
    assert_null(check_batch(s, in, 0, &tag));
    ds_free_info(in);
    CHECK_OK(ds_snapshot_info(sn, "I", &in));
    ds_free_info(in);
    assert_int_equal(ds_snapshot_info(sn, "J", &in), FAM_ENOTFOUND);
    ds_snapshot_free(sn);
    CHECK_OK(ds_list(s, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "T");
    assert_string_equal(names[1], "J");
    ds_free_names(names, n);
    ds_close(s);
}

static void a_store_outlives_kill9_and_restart_of_its_memory_servers(void **state)
{
    (void)state;
    struct famd_proc p[2];
    char list[200] = "";
    for (int i = 0; i < nsrv; i++) {
        char pool[300];
        snprintf(pool, sizeof pool, "%s/ds-pool%d", test_tmpdir(), i);
        assert_int_equal(famd_start(&p[i], 32 << 20, pool), 0);
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "," : "", p[i].addr);
    }
    fam_t *g = client(list);
    assert_non_null(g);
    ds_store_t *s;
    CHECK_OK(ds_open(g, "kept", DS_CREATE, 0600, &s));
    CHECK_OK(ds_create_dataset(s, "T", TNCOLS, tcols));
    ds_batch_t *b[2];
    assert_non_null(b[0] = fill_batch(s, "T", 11, 3000));
    assert_non_null(b[1] = fill_batch(s, "T", 12, 70000));
    CHECK_OK(ds_commit(s, "T", 2, b));
    ds_batch_close(b[0]);
    ds_batch_close(b[1]);
    ds_close(s);
    fam_finalize(g);
    for (int i = 0; i < nsrv; i++) famd_kill9(&p[i]);
    for (int i = 0; i < nsrv; i++) assert_int_equal(famd_restart(&p[i], 32 << 20), 0);
    g = client(list);
    assert_non_null(g);
    CHECK_OK(ds_open(g, "kept", 0, 0, &s));
    ds_info_t *in;
    CHECK_OK(ds_info(s, "T", &in));
    assert_int_equal(in->nbatches, 2);
    for (size_t i = 0; i < 2; i++) {
        int64_t tag;
        const char *why = check_batch(s, in, i, &tag);
        if (why) fail_msg("batch %zu after the restart: %s", i, why);
        assert_int_equal(tag, 11 + (int64_t)i);
    }
    ds_free_info(in);
    /* and it takes appends again */
    ds_batch_t *c = fill_batch(s, "T", 13, 10);
    assert_non_null(c);
    CHECK_OK(ds_commit(s, "T", 1, &c));
    ds_batch_close(c);
    ds_close(s);
    fam_finalize(g);
    for (int i = 0; i < nsrv; i++) famd_stop(&p[i]);
}

/* Random damage to a valid catalog (bytes changed, the checksum made to
 * match): every read is either right or FAM_EIO, never a crash (run under
 * AddressSanitizer by `make check-asan`). */
static void random_damage_to_a_catalog_is_an_error_or_harmless(void **state)
{
    (void)state;
    ds_store_t *s = open_store("fuzz");
    make_T(s);
    const ds_column_def_t c2[] = {{"a", DS_BOOL}, {"b", DS_UINT64}};
    CHECK_OK(ds_create_dataset(s, "Two", 2, c2));
    for (int i = 0; i < 3; i++) {
        ds_batch_t *b = fill_batch(s, "T", i, 5);
        assert_non_null(b);
        CHECK_OK(ds_commit(s, "T", 1, &b));
        ds_batch_close(b);
    }
    fam_item_t *head;
    CHECK_OK(fam_lookup(f, "head", "ds.fuzz", &head));
    uint64_t h[2];
    CHECK_OK(fam_get_blocking(f, h, head, 0, 16));
    fam_release(head);
    char name[64];
    snprintf(name, sizeof name, "c.%016" PRIx64 ".%016" PRIx64, h[0], h[1]);
    fam_item_t *snap;
    CHECK_OK(fam_lookup(f, name, "ds.fuzz", &snap));
    uint64_t size = fam_item_size(snap);
    char *orig = malloc(size + 1), *body = malloc(size + 64);
    CHECK_OK(fam_get_blocking(f, orig, snap, 0, size));
    fam_release(snap);
    uint64_t len;
    memcpy(&len, orig + 24, 8);
    assert_true(len + 64 <= size);
    orig[64 + len] = '\0';
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int errors = 0, fine = 0;
    for (int round = 0; round < 150; round++) {
        memcpy(body, orig + 64, len + 1);
        int nmut = 1 + round % 4;
        for (int m = 0; m < nmut; m++) {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            size_t at = (size_t)(seed % len);
            if (round % 3 == 0) { /* a number changed: counts, rows, dtypes stay JSON */
                while (at < len && (body[at] < '0' || body[at] > '9')) at++;
                if (at == len) continue;
                body[at] = (char)('0' + (seed >> 40) % 10);
                continue;
            }
            const char pick[] = "0123456789-\"{}[],:ae \\";
            body[at] = (seed >> 32) & 1 ? pick[(seed >> 40) % (sizeof pick - 1)]
                                        : (char)(seed >> 48);
            if (!body[at]) body[at] = '1';
        }
        /* keep the version in the body right half the time, so that the
         * checks after it are reached */
        char ver[64], *vp = strstr(body, "\"version\":");
        fam_item_t *hd;
        CHECK_OK(fam_lookup(f, "head", "ds.fuzz", &hd));
        uint64_t cur[2];
        CHECK_OK(fam_get_blocking(f, cur, hd, 0, 16));
        fam_release(hd);
        snprintf(ver, sizeof ver, "\"version\":%" PRIu64, cur[0] + 1);
        if (vp && round % 2 == 0) {
            char *end = vp + 10;
            while (*end >= '0' && *end <= '9') end++;
            char *tmp = malloc(len + 64);
            snprintf(tmp, len + 64, "%.*s%s%s", (int)(vp - body), body, ver, end);
            free(body);
            body = tmp;
        }
        plant_catalog(s, body);
        ds_store_t *r;
        CHECK_OK(ds_open(f, "fuzz", 0, 0, &r));
        char **names;
        size_t n;
        int rc = ds_list(r, &names, &n);
        if (rc == 0) {
            fine++;
            for (size_t i = 0; i < n; i++) {
                ds_info_t *in;
                int e = ds_info(r, names[i], &in);
                assert_int_equal(e, 0);
                ds_free_info(in);
            }
            ds_free_names(names, n);
        } else {
            if (rc != FAM_EIO) fail_msg("round %d: %d (%s)", round, rc, ds_last_error());
            errors++;
        }
        ds_close(r);
    }
    assert_true(errors > 0); /* the damage was seen */
    fprintf(stderr, "# random damage: %d catalogs refused, %d read\n", errors, fine);
    free(orig);
    free(body);
    ds_close(s);
}

/* ---- limits and argument errors -------------------------------------------------------- */

static void names_limits_and_arguments_are_checked(void **state)
{
    (void)state;
    ds_store_t *s;
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(ds_open(f, "", DS_CREATE, 0600, &s), FAM_EINVAL);
    assert_int_equal(ds_open(f, "a/b", DS_CREATE, 0600, &s), FAM_EINVAL);
    assert_int_equal(ds_open(f, longname, DS_CREATE, 0600, &s), FAM_EINVAL);
    assert_int_equal(ds_open(f, "nosuch", 0, 0, &s), FAM_ENOTFOUND);
    assert_non_null(strstr(ds_last_error(), "nosuch"));
    assert_int_equal(ds_open(f, "x", 0x40, 0600, &s), FAM_EINVAL);
    s = open_store("lim");
    const ds_column_def_t c1[] = {{"a", DS_INT64}};
    assert_int_equal(ds_create_dataset(s, longname, 1, c1), FAM_EINVAL);
    assert_int_equal(ds_create_dataset(s, "tab\there", 1, c1), FAM_EINVAL);
    assert_int_equal(ds_create_dataset(s, "z", 0, c1), FAM_EINVAL);
    const ds_column_def_t dup[] = {{"a", DS_INT64}, {"a", DS_FLOAT64}};
    assert_int_equal(ds_create_dataset(s, "z", 2, dup), FAM_EINVAL);
    assert_non_null(strstr(ds_last_error(), "two columns"));
    const ds_column_def_t baddt[] = {{"a", (ds_dtype_t)77}};
    assert_int_equal(ds_create_dataset(s, "z", 1, baddt), FAM_EINVAL);
    ds_column_def_t *many = calloc(DS_MAX_COLUMNS + 1, sizeof *many);
    char (*cn)[16] = calloc(DS_MAX_COLUMNS + 1, 16);
    for (int i = 0; i <= DS_MAX_COLUMNS; i++) {
        snprintf(cn[i], 16, "c%d", i);
        many[i].name = cn[i];
        many[i].dtype = DS_BOOL;
    }
    assert_int_equal(ds_create_dataset(s, "z", DS_MAX_COLUMNS + 1, many), FAM_EINVAL);
    free(many);
    free(cn);
    ds_batch_t *b;
    assert_int_equal(ds_batch_begin(s, "nosuch", 5, &b), FAM_ENOTFOUND);
    make_T(s);
    CHECK_OK(ds_batch_begin(s, "T", 5, &b));
    assert_null(ds_batch_array(b, TNCOLS));
    const char *cats[] = {"x"};
    assert_int_equal(ds_batch_set_categories(b, 0, 1, cats), FAM_EINVAL); /* not text */
    assert_int_equal(ds_batch_set_categories(b, 9, 1, cats), FAM_EOUTOFRANGE);
    CHECK_OK(ds_batch_set_categories(b, 3, 1, cats));
    assert_int_equal(ds_batch_set_categories(b, 3, 1, cats), FAM_EEXIST);
    /* a batch of another dataset's shape is refused */
    CHECK_OK(ds_create_dataset(s, "One", 1, c1));
    ds_batch_ref_t ref;
    ds_batch_ref(b, &ref);
    assert_int_equal(ds_commit_refs(s, "One", 1, &ref), FAM_EINVAL);
    assert_int_equal(ds_commit_refs(s, "nosuch", 1, &ref), FAM_ENOTFOUND);
    strcpy(ref.id, "not-an-id");
    assert_int_equal(ds_commit_refs(s, "T", 1, &ref), FAM_EINVAL);
    CHECK_OK(ds_batch_abort(b));
    assert_string_equal(ds_dtype_name(DS_TEXT), "text");
    ds_dtype_t t;
    CHECK_OK(ds_dtype_parse("category", &t));
    assert_int_equal(t, DS_TEXT);
    CHECK_OK(ds_dtype_parse("datetime64[s]", &t));
    assert_int_equal(ds_dtype_storage(t), FA_INT64);
    assert_int_equal(ds_dtype_parse("int32", &t), FAM_EINVAL);
    assert_null(ds_kind_name((ds_kind_t)9));
    ds_close(s);
}

/* ds_batch_begin makes a batch's arrays through the region descriptor the
 * store handle keeps (one lookup for every batch). When the store is
 * destroyed and made again under the same name (a new region), a handle
 * opened before still begins batches in the new region: its descriptor
 * fails (famd never reuses ids), is looked up again, and the arrays land
 * where the new store's readers find them. */
static void a_kept_region_descriptor_of_a_remade_store_is_looked_up_again(void **state)
{
    (void)state;
    ds_store_t *old, *s;
    ds_column_def_t col = {"x", DS_INT64};
    CHECK_OK(ds_open(f, "remade", DS_CREATE, 0600, &old));
    CHECK_OK(ds_create_dataset(old, "D", 1, &col));
    ds_batch_t *b;
    CHECK_OK(ds_batch_begin(old, "D", 4, &b)); /* the descriptor is kept from here */
    ds_batch_close(b);
    CHECK_OK(ds_check(old));
    CHECK_OK(ds_destroy_store(f, "remade"));
    assert_int_equal(ds_check(old), FAM_ENOTFOUND); /* at once, not after a timeout */
    assert_non_null(strstr(ds_last_error(), "was destroyed"));
    CHECK_OK(ds_open(f, "remade", DS_CREATE, 0600, &s));
    assert_int_equal(ds_check(old), FAM_ENOTFOUND); /* made again: still not old's */
    CHECK_OK(ds_check(s));
    CHECK_OK(ds_create_dataset(s, "D", 1, &col));
    ds_dtype_t t = DS_INT64;
    CHECK_OK(ds_batch_begin_dtypes(old, 1, &t, 4, &b)); /* old handle, stale descriptor */
    int64_t v[4] = {1, 2, 3, 4};
    CHECK_OK(fa_put(ds_batch_array(b, 0), 0, 4, v));
    ds_batch_ref_t ref;
    ds_batch_ref(b, &ref);
    ds_batch_close(b);
    ds_close(old);
    CHECK_OK(ds_commit_refs(s, "D", 1, &ref)); /* the arrays are in the new region */
    ds_info_t *in;
    CHECK_OK(ds_info(s, "D", &in));
    int64_t got[4] = {0};
    CHECK_OK(ds_read(s, in, 0, 0, 0, 4, got));
    assert_memory_equal(got, v, sizeof v);
    ds_free_info(in);
    CHECK_OK(ds_destroy_store(f, "remade"));
    ds_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_dtype_round_trips_through_create_append_info_read_drop),
        cmocka_unit_test(a_commit_with_one_bad_batch_changes_nothing),
        cmocka_unit_test(a_transaction_creates_appends_and_records_lineage_at_once),
        cmocka_unit_test(vouched_batches_commit_and_other_dtypes_are_refused),
        cmocka_unit_test(derived_datasets_behind_their_root_are_listed),
        cmocka_unit_test(a_family_is_listed_from_any_of_its_members),
        cmocka_unit_test(per_batch_categories_unify_into_one_sorted_list),
        cmocka_unit_test(concurrent_appends_lose_nothing_and_readers_see_whole_batches),
        cmocka_unit_test(concurrent_creators_of_one_store_all_succeed),
        cmocka_unit_test(appends_creates_and_drops_at_once_keep_every_batch_once),
        cmocka_unit_test(a_writer_killed_mid_batch_or_mid_commit_leaves_the_store_consistent),
        cmocka_unit_test(old_snapshots_above_the_head_are_freed_unless_they_are_the_head),
        cmocka_unit_test(damaged_or_hostile_catalogs_give_errors_not_crashes),
        cmocka_unit_test(random_damage_to_a_catalog_is_an_error_or_harmless),
        cmocka_unit_test(names_limits_and_arguments_are_checked),
        cmocka_unit_test(a_snapshot_reads_several_datasets_at_one_version),
        cmocka_unit_test(a_store_outlives_kill9_and_restart_of_its_memory_servers),
        cmocka_unit_test(a_kept_region_descriptor_of_a_remade_store_is_looked_up_again),
        cmocka_unit_test(a_committing_handle_keeps_what_a_fresh_one_reads),
        cmocka_unit_test(a_catalog_shared_between_handles_is_used_while_current),
        cmocka_unit_test(a_catalog_exported_to_another_handle_answers_as_the_exporter),
        cmocka_unit_test(a_staged_transaction_is_seen_by_its_handle_alone_until_it_ends),
        cmocka_unit_test(retired_snapshots_wait_for_ds_cleanup_when_deferred),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
