/* SPDX-License-Identifier: Apache-2.0 */
/* test_famarray.c — libfamarray against two real famd processes, with the
 * arrays in a region interleaved over both (stripes of 256 KiB, so arrays
 * of a few hundred thousand elements cross many stripe ends). Every call:
 * its results checked against a plain C array that plays the same
 * operations, and its errors, each of which must leave the array as it was.
 * Also: three processes adding at once, and an array that outlives a
 * restart of both memory servers. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "kodiak/famarray.h"

static struct famd_proc s1, s2;
static char both[200];
static fam_t *f;

#define REG "fa"        /* interleaved over both servers */
#define N 300000u       /* elements: 2.4 MiB of int64, ~10 stripes */
#define STRIPE_ELEMS ((256u << 10) / 8) /* int64 elements per stripe */

static int setup(void **state)
{
    (void)state;
    if (famd_start(&s1, 96 << 20, NULL) || famd_start(&s2, 96 << 20, NULL)) return -1;
    snprintf(both, sizeof both, "%s,%s", s1.addr, s2.addr);
    if (!(f = client(both))) return -1;
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE};
    fam_region_t *r;
    if (fam_create_region(f, REG, 128 << 20, 0755, &at, &r)) return -1;
    fam_release_region(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&s1);
    famd_stop(&s2);
    return 0;
}

/* A reproducible pseudo-random stream (xorshift). */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static fa_array_t *mk(const char *name, fa_dtype_t t, uint64_t n)
{
    fa_array_t *a = NULL;
    CHECK_OK(fa_create(f, REG, name, t, n, 0644, &a));
    return a;
}

/* The whole array, read back. */
static int64_t *all_i64(fa_array_t *a)
{
    int64_t *v = malloc(fa_size(a) * 8 + 8);
    assert_non_null(v);
    CHECK_OK(fa_get(a, 0, fa_size(a), v));
    return v;
}

/* ---- dtypes --------------------------------------------------------------- */

static void dtype_names_parse_and_sizes(void **state)
{
    (void)state;
    const char *names[] = {"int64", "uint64", "float64", "bool"};
    const fa_dtype_t types[] = {FA_INT64, FA_UINT64, FA_FLOAT64, FA_BOOL};
    const uint64_t sizes[] = {8, 8, 8, 1};
    for (int i = 0; i < 4; i++) {
        fa_dtype_t t;
        assert_string_equal(fa_dtype_name(types[i]), names[i]);
        CHECK_OK(fa_dtype_parse(names[i], &t));
        assert_int_equal(t, types[i]);
        assert_int_equal(fa_dtype_size(types[i]), sizes[i]);
    }
    fa_dtype_t t;
    assert_int_equal(fa_dtype_parse("int32", &t), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "int32"));
    assert_int_equal(fa_dtype_parse(NULL, &t), FAM_EINVAL);
    assert_null(fa_dtype_name((fa_dtype_t)0));
    assert_null(fa_dtype_name((fa_dtype_t)99));
    assert_int_equal(fa_dtype_size((fa_dtype_t)99), 0);
}

/* ---- create, open, put, get ------------------------------------------------ */

static void create_is_zero_filled_and_put_get_round_trip(void **state)
{
    (void)state;
    fa_array_t *a = mk("rt", FA_INT64, N);
    assert_int_equal(fa_dtype(a), FA_INT64);
    assert_int_equal(fa_size(a), N);
    assert_string_equal(fa_name(a), "rt");
    assert_string_equal(fa_region(a), REG);
    assert_non_null(fa_item(a));
    assert_int_equal(fam_item_size(fa_item(a)), FA_HEADER_BYTES + N * 8);
    int64_t *got = all_i64(a);
    for (uint64_t i = 0; i < N; i++) assert_int_equal(got[i], 0);
    int64_t *want = malloc(N * 8);
    for (uint64_t i = 0; i < N; i++) want[i] = (int64_t)(i * 3) - 7;
    CHECK_OK(fa_put(a, 0, N, want));
    /* another handle, from a lookup by name, sees the same */
    fa_array_t *b;
    CHECK_OK(fa_open(f, REG, "rt", &b));
    assert_int_equal(fa_dtype(b), FA_INT64);
    assert_int_equal(fa_size(b), N);
    free(got);
    got = all_i64(b);
    assert_memory_equal(got, want, N * 8);
    /* ranges that cross stripe ends: element e is at byte 4096 + 8e, so the
     * first stripe end (byte 256 Ki) falls inside element range [32256..) */
    uint64_t cross = (STRIPE_ELEMS * 8 - FA_HEADER_BYTES) / 8;
    int64_t part[3 * STRIPE_ELEMS];
    uint64_t starts[] = {cross - 5, cross - 1, cross, 3 * cross + 17, N - 10};
    for (size_t s = 0; s < sizeof starts / sizeof starts[0]; s++) {
        uint64_t st = starts[s], cnt = N - st < 2 * STRIPE_ELEMS + 9 ?
                                       N - st : 2 * STRIPE_ELEMS + 9;
        CHECK_OK(fa_get(b, st, cnt, part));
        assert_memory_equal(part, want + st, cnt * 8);
        for (uint64_t i = 0; i < cnt; i++) part[i] = -(int64_t)(st + i);
        CHECK_OK(fa_put(a, st, cnt, part));
        for (uint64_t i = 0; i < cnt; i++) want[st + i] = -(int64_t)(st + i);
    }
    free(got);
    got = all_i64(b);
    assert_memory_equal(got, want, N * 8);
    /* count 0 is fine anywhere up to the end */
    CHECK_OK(fa_put(a, N, 0, NULL));
    CHECK_OK(fa_get(a, 0, 0, NULL));
    free(got);
    free(want);
    fa_close(b);
    CHECK_OK(fa_destroy(a));
}

static void every_dtype_round_trips(void **state)
{
    (void)state;
    enum { M = 70000 }; /* bool: 70 KB, in one stripe after the header */
    fa_array_t *u = mk("u64", FA_UINT64, M), *d = mk("f64", FA_FLOAT64, M),
               *b = mk("b", FA_BOOL, 3 * (256u << 10)); /* bools over 4 stripes */
    uint64_t *uv = malloc(M * 8), *ug = malloc(M * 8);
    double *dv = malloc(M * 8), *dg = malloc(M * 8);
    for (uint64_t i = 0; i < M; i++) {
        uv[i] = UINT64_MAX - i * 977;
        dv[i] = (double)i / 7.0 - 1e300 * (i % 3 == 0);
    }
    CHECK_OK(fa_put(u, 0, M, uv));
    CHECK_OK(fa_put(d, 0, M, dv));
    CHECK_OK(fa_get(u, 0, M, ug));
    CHECK_OK(fa_get(d, 0, M, dg));
    assert_memory_equal(uv, ug, M * 8);
    assert_memory_equal(dv, dg, M * 8);
    uint64_t nb = fa_size(b);
    uint8_t *bv = malloc(nb), *bg = malloc(nb);
    for (uint64_t i = 0; i < nb; i++) bv[i] = (i % 3 == 0) ^ (i % 7 == 0);
    CHECK_OK(fa_put(b, 0, nb, bv));
    CHECK_OK(fa_get(b, 0, nb, bg));
    assert_memory_equal(bv, bg, nb);
    /* indexed on 1-byte elements across stripe ends */
    uint64_t idx[] = {0, 258047, 258048, 258049, nb - 1, 5, 258048};
    uint8_t vals[] = {1, 1, 0, 1, 1, 1, 1};
    CHECK_OK(fa_scatter(b, 7, idx, vals));
    for (int i = 0; i < 7; i++) bv[idx[i]] = vals[i];
    uint8_t g7[7];
    CHECK_OK(fa_gather(b, 7, idx, g7));
    for (int i = 0; i < 7; i++) assert_int_equal(g7[i], bv[idx[i]]);
    CHECK_OK(fa_get(b, 0, nb, bg));
    assert_memory_equal(bv, bg, nb);
    free(uv); free(ug); free(dv); free(dg); free(bv); free(bg);
    CHECK_OK(fa_destroy(u));
    CHECK_OK(fa_destroy(d));
    CHECK_OK(fa_destroy(b));
}

static void empty_array_works(void **state)
{
    (void)state;
    fa_array_t *a = mk("empty", FA_FLOAT64, 0), *b;
    assert_int_equal(fa_size(a), 0);
    CHECK_OK(fa_open(f, REG, "empty", &b));
    assert_int_equal(fa_size(b), 0);
    assert_int_equal(fa_dtype(b), FA_FLOAT64);
    CHECK_OK(fa_get(b, 0, 0, NULL));
    CHECK_OK(fa_scatter(b, 0, NULL, NULL));
    uint64_t i0 = 0;
    double v = 1;
    assert_int_equal(fa_scatter(b, 1, &i0, &v), FAM_EOUTOFRANGE);
    fa_close(b);
    CHECK_OK(fa_destroy(a));
}

static void create_errors_leave_nothing_behind(void **state)
{
    (void)state;
    fa_array_t *a, *b;
    assert_int_equal(fa_create(f, REG, "x", (fa_dtype_t)0, 10, 0600, &a), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "dtype"));
    assert_int_equal(fa_create(f, REG, "x", (fa_dtype_t)99, 10, 0600, &a), FAM_EINVAL);
    assert_int_equal(fa_create(f, REG, "x", FA_INT64, UINT64_MAX / 4, 0600, &a),
                     FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "overflows"));
    assert_int_equal(fa_create(f, REG, "x", FA_INT64, 10, 01000, &a), FAM_EINVAL);
    assert_int_equal(fa_create(f, REG, "", FA_INT64, 10, 0600, &a), FAM_EINVAL);
    assert_int_equal(fa_create(f, REG, NULL, FA_INT64, 10, 0600, &a), FAM_EINVAL);
    assert_int_equal(fa_create(f, NULL, "x", FA_INT64, 10, 0600, &a), FAM_EINVAL);
    assert_int_equal(fa_create(NULL, REG, "x", FA_INT64, 10, 0600, &a), FAM_EINVAL);
    assert_int_equal(fa_create(f, REG, "x", FA_INT64, 10, 0600, NULL), FAM_EINVAL);
    assert_int_equal(fa_create(f, "no-such-region", "x", FA_INT64, 10, 0600, &a),
                     FAM_ENOTFOUND);
    assert_non_null(strstr(fam_last_error(), "no-such-region"));
    /* name taken */
    a = mk("taken", FA_INT64, 100);
    int64_t v = 42;
    uint64_t i7 = 7;
    CHECK_OK(fa_scatter(a, 1, &i7, &v));
    assert_int_equal(fa_create(f, REG, "taken", FA_FLOAT64, 5, 0600, &b), FAM_EEXIST);
    assert_non_null(strstr(fam_last_error(), "taken"));
    CHECK_OK(fa_open(f, REG, "taken", &b)); /* untouched */
    assert_int_equal(fa_dtype(b), FA_INT64);
    assert_int_equal(fa_size(b), 100);
    int64_t got;
    CHECK_OK(fa_gather(b, 1, &i7, &got));
    assert_int_equal(got, 42);
    fa_close(b);
    /* region full: a small interleaved region */
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE};
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "tiny", 1 << 20, 0700, &at, &r));
    assert_int_equal(fa_create(f, "tiny", "big", FA_INT64, 1u << 20, 0600, &b),
                     FAM_ENOSPACE);
    assert_non_null(strstr(fam_last_error(), "big"));
    char **names;
    size_t n;
    CHECK_OK(fa_list(f, "tiny", &names, &n));
    assert_int_equal(n, 0);
    CHECK_OK(fa_create(f, "tiny", "fits", FA_INT64, 1000, 0600, &b));
    fa_close(b);
    CHECK_OK(fam_destroy_region(f, r));
    CHECK_OK(fa_destroy(a));
}

static void open_errors(void **state)
{
    (void)state;
    fa_array_t *a;
    assert_int_equal(fa_open(f, REG, "never-made", &a), FAM_ENOTFOUND);
    assert_non_null(strstr(fam_last_error(), "never-made"));
    assert_int_equal(fa_open(f, "no-such-region", "x", &a), FAM_ENOTFOUND);
    assert_int_equal(fa_open(f, REG, "", &a), FAM_EINVAL);
    assert_int_equal(fa_open(NULL, REG, "x", &a), FAM_EINVAL);
    assert_int_equal(fa_open(f, REG, "x", NULL), FAM_EINVAL);
    /* plain data items are not FAM arrays: too short, no header, or a
     * header that does not match the item's length */
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, REG, &r));
    fam_item_t *shortitem, *plain, *liar;
    CHECK_OK(fam_allocate(f, "short", 100, 0600, r, &shortitem));
    CHECK_OK(fam_allocate(f, "plain", 4096 + 800, 0600, r, &plain));
    uint8_t junk[64];
    memset(junk, 0xab, sizeof junk);
    CHECK_OK(fam_put_blocking(f, junk, plain, 0, sizeof junk));
    assert_int_equal(fa_open(f, REG, "short", &a), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "not a FAM array"));
    assert_int_equal(fa_open(f, REG, "plain", &a), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "not a FAM array"));
    /* a real array's header copied into an item of another length */
    fa_array_t *real = mk("real", FA_INT64, 100);
    uint8_t hdr[32];
    CHECK_OK(fam_get_blocking(f, hdr, fa_item(real), 0, 32));
    CHECK_OK(fam_allocate(f, "liar", 4096 + 808, 0600, r, &liar));
    CHECK_OK(fam_put_blocking(f, hdr, liar, 0, 32));
    assert_int_equal(fa_open(f, REG, "liar", &a), FAM_EINVAL);
    /* the same header in an item of the right length is an array */
    fam_item_t *twin;
    CHECK_OK(fam_allocate(f, "twin", 4096 + 800, 0600, r, &twin));
    CHECK_OK(fam_put_blocking(f, hdr, twin, 0, 32));
    CHECK_OK(fa_open(f, REG, "twin", &a));
    assert_int_equal(fa_size(a), 100);
    fa_close(a);
    /* fa_list: only the arrays, sorted */
    char **names;
    size_t n;
    CHECK_OK(fa_list(f, REG, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "real");
    assert_string_equal(names[1], "twin");
    fa_free_names(names, n);
    CHECK_OK(fam_deallocate(f, shortitem));
    CHECK_OK(fam_deallocate(f, plain));
    CHECK_OK(fam_deallocate(f, liar));
    CHECK_OK(fam_deallocate(f, twin));
    fam_release_region(r);
    CHECK_OK(fa_destroy(real));
}

static void list_and_destroy(void **state)
{
    (void)state;
    char **names;
    size_t n;
    CHECK_OK(fa_list(f, REG, &names, &n)); /* the other tests clean up */
    assert_int_equal(n, 0);
    assert_null(names);
    fa_array_t *c = mk("c", FA_BOOL, 5), *a = mk("a", FA_INT64, N),
               *b = mk("b", FA_FLOAT64, 1);
    CHECK_OK(fa_list(f, REG, &names, &n));
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_string_equal(names[2], "c");
    fa_free_names(names, n);
    CHECK_OK(fa_destroy(b));
    assert_int_equal(fa_open(f, REG, "b", &b), FAM_ENOTFOUND);
    CHECK_OK(fa_list(f, REG, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "c");
    fa_free_names(names, n);
    assert_int_equal(fa_list(f, "no-such-region", &names, &n), FAM_ENOTFOUND);
    assert_int_equal(fa_list(f, REG, NULL, &n), FAM_EINVAL);
    assert_int_equal(fa_destroy(NULL), FAM_EINVAL);
    fa_close(NULL);
    /* a new array in a destroyed one's place starts as zeros */
    int64_t *ones = malloc(N * 8);
    for (uint64_t i = 0; i < N; i++) ones[i] = 1;
    CHECK_OK(fa_put(a, 0, N, ones));
    CHECK_OK(fa_destroy(a));
    a = mk("a", FA_INT64, N);
    int64_t *got = all_i64(a);
    for (uint64_t i = 0; i < N; i++) assert_int_equal(got[i], 0);
    free(got);
    free(ones);
    CHECK_OK(fa_destroy(a));
    CHECK_OK(fa_destroy(c));
}

static void out_of_range_writes_nothing(void **state)
{
    (void)state;
    enum { M = 1000 };
    fa_array_t *a = mk("oor", FA_INT64, M);
    int64_t want[M], got[M], buf[M + 1];
    for (int i = 0; i < M; i++) want[i] = i + 1;
    CHECK_OK(fa_put(a, 0, M, want));
    for (int i = 0; i <= M; i++) buf[i] = -1;
    assert_int_equal(fa_put(a, 1, M, buf), FAM_EOUTOFRANGE);
    assert_non_null(strstr(fam_last_error(), "oor"));
    assert_int_equal(fa_put(a, M + 1, 0, buf), FAM_EOUTOFRANGE);
    assert_int_equal(fa_put(a, 5, UINT64_MAX, buf), FAM_EOUTOFRANGE);
    assert_int_equal(fa_put(a, UINT64_MAX, 2, buf), FAM_EOUTOFRANGE);
    assert_int_equal(fa_get(a, M - 1, 2, buf), FAM_EOUTOFRANGE);
    assert_int_equal(fa_get(a, 0, M, NULL), FAM_EINVAL);
    uint64_t idx[] = {0, 1, 2, M}; /* the last one is out */
    int64_t vals[] = {-1, -1, -1, -1};
    assert_int_equal(fa_scatter(a, 4, idx, vals), FAM_EOUTOFRANGE);
    assert_non_null(strstr(fam_last_error(), "position 3"));
    assert_int_equal(fa_add(a, 4, idx, vals), FAM_EOUTOFRANGE);
    assert_int_equal(fa_fetch_add(a, 4, idx, vals, buf), FAM_EOUTOFRANGE);
    assert_int_equal(fa_gather(a, 4, idx, buf), FAM_EOUTOFRANGE);
    uint64_t huge = UINT64_MAX; /* would wrap when shifted past the header */
    assert_int_equal(fa_scatter(a, 1, &huge, vals), FAM_EOUTOFRANGE);
    assert_int_equal(fa_scatter(a, 3, NULL, vals), FAM_EINVAL);
    assert_int_equal(fa_scatter(a, 3, idx, NULL), FAM_EINVAL);
    assert_int_equal(fa_fetch_add(a, 3, idx, vals, NULL), FAM_EINVAL);
    CHECK_OK(fa_get(a, 0, M, got));
    assert_memory_equal(got, want, sizeof want);
    CHECK_OK(fa_destroy(a));
}

/* ---- indexed -------------------------------------------------------------- */

/* Scatter with duplicates: the last occurrence in index order wins, also
 * when its twin is in another chunk of the call (160 k indices). */
static void scatter_gather_random_with_duplicates(void **state)
{
    (void)state;
    enum { K = 160000 };
    fa_array_t *a = mk("sg", FA_INT64, N);
    int64_t *ref = calloc(N, 8), *vals = malloc(K * 8), *got = malloc(K * 8);
    uint64_t *idx = malloc(K * 8), s = 88172645463325252ull;
    for (uint64_t i = 0; i < K; i++) {
        /* half the indices fall in a small hot set: many duplicates, some
         * far apart (different chunks), some in a row */
        idx[i] = i % 2 ? rnd(&s) % N : rnd(&s) % 512 * 577;
        if (i % 1000 == 999) idx[i] = idx[i - 1];
        vals[i] = (int64_t)(i + 1) * (i % 2 ? 1 : -1);
    }
    idx[K - 1] = idx[0]; /* first and last of the call */
    for (uint64_t i = 0; i < K; i++) ref[idx[i]] = vals[i];
    CHECK_OK(fa_scatter(a, K, idx, vals));
    int64_t *whole = all_i64(a);
    for (uint64_t i = 0; i < N; i++)
        if (whole[i] != ref[i])
            fail_msg("element %llu is %lld, want %lld", (unsigned long long)i,
                     (long long)whole[i], (long long)ref[i]);
    /* gather in another random order, duplicates included */
    for (uint64_t i = 0; i < K; i++) idx[i] = rnd(&s) % N;
    CHECK_OK(fa_gather(a, K, idx, got));
    for (uint64_t i = 0; i < K; i++) assert_int_equal(got[i], ref[idx[i]]);
    free(ref); free(vals); free(got); free(idx); free(whole);
    CHECK_OK(fa_destroy(a));
}

static void add_and_fetch_add_with_duplicates(void **state)
{
    (void)state;
    enum { K = 100000, M = 1000 };
    fa_array_t *a = mk("add", FA_INT64, N);
    int64_t *ref = calloc(N, 8), *vals = malloc(K * 8), *old = malloc(K * 8);
    uint64_t *idx = malloc(K * 8), s = 12345;
    for (uint64_t i = 0; i < K; i++) {
        idx[i] = i % 3 ? rnd(&s) % M : rnd(&s) % N; /* many duplicates */
        vals[i] = (int64_t)(rnd(&s) % 2001) - 1000;
    }
    CHECK_OK(fa_add(a, K, idx, vals));
    for (uint64_t i = 0; i < K; i++) ref[idx[i]] += vals[i];
    int64_t *whole = all_i64(a);
    assert_memory_equal(whole, ref, N * 8);
    /* fetch_add: each old value is the element just before its own update,
     * applied in index order by this one caller */
    CHECK_OK(fa_fetch_add(a, K, idx, vals, old));
    for (uint64_t i = 0; i < K; i++) {
        if (old[i] != ref[idx[i]])
            fail_msg("old[%llu] = %lld, want %lld", (unsigned long long)i,
                     (long long)old[i], (long long)ref[idx[i]]);
        ref[idx[i]] += vals[i];
    }
    free(whole);
    whole = all_i64(a);
    assert_memory_equal(whole, ref, N * 8);
    free(whole); free(ref); free(vals); free(old); free(idx);
    CHECK_OK(fa_destroy(a));
}

static void add_on_uint64_float64_and_bool(void **state)
{
    (void)state;
    fa_array_t *u = mk("au", FA_UINT64, 10), *d = mk("ad", FA_FLOAT64, 10),
               *b = mk("ab", FA_BOOL, 10);
    uint64_t idx[] = {3, 3, 9};
    uint64_t uv[] = {UINT64_MAX, 2, 5}, uold[3], ug[10];
    CHECK_OK(fa_fetch_add(u, 3, idx, uv, uold));
    assert_int_equal(uold[0], 0);
    assert_int_equal(uold[1], UINT64_MAX);
    assert_int_equal(uold[2], 0);
    CHECK_OK(fa_get(u, 0, 10, ug));
    assert_int_equal(ug[3], 1); /* wraps as uint64 does */
    assert_int_equal(ug[9], 5);
    double dv[] = {0.5, 0.25, -1.5}, dg[10];
    CHECK_OK(fa_add(d, 3, idx, dv));
    CHECK_OK(fa_get(d, 0, 10, dg));
    assert_true(dg[3] == 0.75 && dg[9] == -1.5 && dg[0] == 0.0);
    uint8_t bv[] = {1, 1, 1};
    assert_int_equal(fa_add(b, 3, idx, bv), FAM_ENOTSUP);
    assert_non_null(strstr(fam_last_error(), "bool"));
    uint8_t bold[3];
    assert_int_equal(fa_fetch_add(b, 3, idx, bv, bold), FAM_ENOTSUP);
    uint8_t bg[10];
    CHECK_OK(fa_get(b, 0, 10, bg));
    for (int i = 0; i < 10; i++) assert_int_equal(bg[i], 0);
    CHECK_OK(fa_add(u, 0, NULL, NULL)); /* nothing to do */
    CHECK_OK(fa_destroy(u));
    CHECK_OK(fa_destroy(d));
    CHECK_OK(fa_destroy(b));
}

/* Three processes add at once, each with duplicates inside its own calls:
 * every total is exact. */
static void adds_from_three_processes_are_exact(void **state)
{
    (void)state;
    enum { P = 3, K = 30000, M = 777, ROUNDS = 4 };
    fa_array_t *a = mk("conc", FA_INT64, M);
    for (int p = 0; p < P; p++) {
        if (fork() == 0) {
            fam_t *g = client(both);
            fa_array_t *c;
            if (!g || fa_open(g, REG, "conc", &c)) _exit(2);
            uint64_t *idx = malloc(K * 8);
            int64_t *v = malloc(K * 8);
            for (int r = 0; r < ROUNDS; r++) {
                for (uint64_t i = 0; i < K; i++) {
                    idx[i] = (i * 31 + (uint64_t)p) % M;
                    v[i] = (int64_t)(p + 1);
                }
                if (fa_add(c, K, idx, v)) _exit(3);
            }
            fa_close(c);
            _exit(fam_finalize(g) ? 4 : 0);
        }
    }
    for (int p = 0; p < P; p++) {
        int st;
        assert_true(wait(&st) > 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int64_t want[M] = {0}, got[M];
    for (int p = 0; p < P; p++)
        for (int r = 0; r < ROUNDS; r++)
            for (uint64_t i = 0; i < K; i++) want[(i * 31 + (uint64_t)p) % M] += p + 1;
    CHECK_OK(fa_get(a, 0, M, got));
    assert_memory_equal(got, want, sizeof want);
    CHECK_OK(fa_destroy(a));
}

/* ---- permissions (tcp: another uid can run libfam there) ------------------- */

static void another_user_gets_what_the_bits_allow(void **state)
{
    (void)state;
    if (strcmp(test_provider(), "tcp") != 0 || getuid() != 0) {
        skip(); /* shm refuses another uid's client outright (test_permissions) */
    }
    fa_array_t *priv = mk("private", FA_INT64, 10), *pub = mk("public", FA_INT64, 10);
    CHECK_OK(fam_change_permissions(f, fa_item(priv), 0600));
    int64_t v[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    CHECK_OK(fa_put(pub, 0, 10, v));
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) _exit(10);
        fam_t *g = client(both);
        fa_array_t *a;
        int64_t got[10];
        if (!g) _exit(11);
        if (fa_open(g, REG, "private", &a) != FAM_EPERM) _exit(12);
        if (fa_open(g, REG, "public", &a)) _exit(13);
        if (fa_get(a, 0, 10, got) || got[9] != 10) _exit(14);
        if (fa_put(a, 0, 1, got) != FAM_EPERM) _exit(15);
        uint64_t i0 = 0;
        if (fa_add(a, 1, &i0, got) != FAM_EPERM) _exit(16);
        if (fa_destroy(a) != FAM_EPERM) _exit(17);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("as uid 65534: check %d failed", WEXITSTATUS(st));
    int64_t got[10];
    CHECK_OK(fa_get(pub, 0, 10, got)); /* untouched */
    assert_memory_equal(got, v, sizeof v);
    CHECK_OK(fa_destroy(priv));
    CHECK_OK(fa_destroy(pub));
}

/* ---- persistence ---------------------------------------------------------- */

static void array_survives_a_restart_of_both_servers(void **state)
{
    (void)state;
    struct famd_proc p1, p2;
    char f1[300], f2[300], list[200];
    snprintf(f1, sizeof f1, "%s/pool1", test_tmpdir());
    snprintf(f2, sizeof f2, "%s/pool2", test_tmpdir());
    assert_int_equal(famd_start(&p1, 32 << 20, f1), 0);
    assert_int_equal(famd_start(&p2, 32 << 20, f2), 0);
    snprintf(list, sizeof list, "%s,%s", p1.addr, p2.addr);
    fam_t *g = client(list);
    assert_non_null(g);
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE,
                            .memory_type = FAM_MEMORY_PERSISTENT};
    fam_region_t *r;
    CHECK_OK(fam_create_region(g, "keep", 16 << 20, 0700, &at, &r));
    fam_release_region(r);
    fa_array_t *a;
    CHECK_OK(fa_create(g, "keep", "kept", FA_FLOAT64, N, 0600, &a));
    double *v = malloc(N * 8), *got = malloc(N * 8);
    for (uint64_t i = 0; i < N; i++) v[i] = (double)i * 0.5 - 3.0;
    CHECK_OK(fa_put(a, 0, N, v));
    fa_close(a);
    fam_finalize(g);
    famd_stop(&p1);
    famd_stop(&p2);
    assert_int_equal(famd_restart(&p1, 32 << 20), 0);
    assert_int_equal(famd_restart(&p2, 32 << 20), 0);
    snprintf(list, sizeof list, "%s,%s", p1.addr, p2.addr);
    g = client(list);
    assert_non_null(g);
    CHECK_OK(fa_open(g, "keep", "kept", &a));
    assert_int_equal(fa_dtype(a), FA_FLOAT64);
    assert_int_equal(fa_size(a), N);
    CHECK_OK(fa_get(a, 0, N, got));
    assert_memory_equal(got, v, N * 8);
    char **names;
    size_t n;
    CHECK_OK(fa_list(g, "keep", &names, &n));
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "kept");
    fa_free_names(names, n);
    free(v);
    free(got);
    fa_close(a);
    fam_finalize(g);
    famd_stop(&p1);
    famd_stop(&p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dtype_names_parse_and_sizes),
        cmocka_unit_test(create_is_zero_filled_and_put_get_round_trip),
        cmocka_unit_test(every_dtype_round_trips),
        cmocka_unit_test(empty_array_works),
        cmocka_unit_test(create_errors_leave_nothing_behind),
        cmocka_unit_test(open_errors),
        cmocka_unit_test(list_and_destroy),
        cmocka_unit_test(out_of_range_writes_nothing),
        cmocka_unit_test(scatter_gather_random_with_duplicates),
        cmocka_unit_test(add_and_fetch_add_with_duplicates),
        cmocka_unit_test(add_on_uint64_float64_and_bool),
        cmocka_unit_test(adds_from_three_processes_are_exact),
        cmocka_unit_test(another_user_gets_what_the_bits_allow),
        cmocka_unit_test(array_survives_a_restart_of_both_servers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
