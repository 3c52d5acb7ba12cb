/* SPDX-License-Identifier: Apache-2.0 */
/* test_data.c — put/get (blocking and not), quiet/fence/progress, gather
 * and scatter against a local reference array, and their errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

static struct famd_proc srv;
static fam_t *f;
static fam_region_t *r;

static int setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 128 << 20, NULL) != 0) return -1;
    if (!(f = client(srv.addr))) return -1;
    return fam_create_region(f, "data", 100 << 20, 0600, NULL, &r);
}

static int teardown(void **state)
{
    (void)state;
    fam_destroy_region(f, r);
    fam_finalize(f);
    famd_stop(&srv);
    return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rand();
}

static void new_items_read_as_zeros(void **state)
{
    (void)state;
    fam_item_t *d;
    uint8_t buf[8192];
    /* allocate, dirty, free, allocate again: the reused space is zero */
    CHECK_OK(fam_allocate(f, "z", sizeof buf, 0600, r, &d));
    memset(buf, 0xab, sizeof buf);
    CHECK_OK(fam_put_blocking(f, buf, d, 0, sizeof buf));
    CHECK_OK(fam_deallocate(f, d));
    CHECK_OK(fam_allocate(f, "z", sizeof buf, 0600, r, &d));
    CHECK_OK(fam_get_blocking(f, buf, d, 0, sizeof buf));
    for (size_t i = 0; i < sizeof buf; i++) assert_int_equal(buf[i], 0);
    CHECK_OK(fam_deallocate(f, d));
    /* large: famd gives whole huge pages back and zeroes the ends by hand */
    size_t big = (7u << 20) + 12345;
    uint8_t *p = malloc(big);
    assert_non_null(p);
    CHECK_OK(fam_allocate(f, "zbig", big, 0600, r, &d));
    memset(p, 0xcd, big);
    CHECK_OK(fam_put_blocking(f, p, d, 0, big));
    CHECK_OK(fam_deallocate(f, d));
    CHECK_OK(fam_allocate(f, "zbig", big, 0600, r, &d));
    CHECK_OK(fam_get_blocking(f, p, d, 0, big));
    size_t nonzero = 0;
    for (size_t i = 0; i < big; i++) nonzero += p[i] != 0;
    assert_int_equal(nonzero, 0);
    CHECK_OK(fam_deallocate(f, d));
    free(p);
}

static void put_get_roundtrip_every_size(void **state)
{
    (void)state;
    size_t max = 9 << 20; /* crosses several internal chunk sizes */
    uint8_t *src = malloc(max), *dst = malloc(max);
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "rt", max + 100, 0600, r, &d));
    for (size_t n = 1; n <= max; n = n * 4 + 3) {
        fill(src, n, (unsigned)n);
        memset(dst, 0, n);
        uint64_t off = n % 97; /* unaligned offsets too */
        CHECK_OK(fam_put_blocking(f, src, d, off, n));
        CHECK_OK(fam_get_blocking(f, dst, d, off, n));
        assert_memory_equal(src, dst, n);
    }
    free(src);
    free(dst);
    CHECK_OK(fam_deallocate(f, d));
}

static void nonblocking_puts_are_all_there_after_quiet(void **state)
{
    (void)state;
    enum { N = 1000, SZ = 4096 };
    uint8_t *src = malloc((size_t)N * SZ), *dst = malloc((size_t)N * SZ);
    fill(src, (size_t)N * SZ, 7);
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "nb", (uint64_t)N * SZ, 0600, r, &d));
    for (int i = 0; i < N; i++)
        CHECK_OK(fam_put_nonblocking(f, src + (size_t)i * SZ, d, (uint64_t)i * SZ, SZ));
    assert_true(fam_progress(f) >= 0);
    CHECK_OK(fam_quiet(f));
    assert_int_equal(fam_progress(f), 0);
    for (int i = 0; i < N; i++)
        CHECK_OK(fam_get_nonblocking(f, dst + (size_t)i * SZ, d, (uint64_t)i * SZ, SZ));
    CHECK_OK(fam_fence(f));
    CHECK_OK(fam_quiet(f));
    assert_memory_equal(src, dst, (size_t)N * SZ);
    free(src);
    free(dst);
    CHECK_OK(fam_deallocate(f, d));
}

static void out_of_range_is_refused_and_nothing_written(void **state)
{
    (void)state;
    fam_item_t *d;
    uint8_t buf[64] = {0}, back[64];
    memset(buf, 0x5a, sizeof buf);
    CHECK_OK(fam_allocate(f, "oor", 100, 0600, r, &d));
    assert_int_equal(fam_put_blocking(f, buf, d, 50, 64), FAM_EOUTOFRANGE);
    assert_int_equal(fam_put_blocking(f, buf, d, UINT64_MAX - 10, 20), FAM_EOUTOFRANGE);
    assert_int_equal(fam_get_blocking(f, back, d, 101, 0), FAM_EOUTOFRANGE);
    assert_int_equal(fam_put_nonblocking(f, buf, d, 99, 2), FAM_EOUTOFRANGE);
    assert_int_equal(fam_put_blocking(f, NULL, d, 0, 8), FAM_EINVAL);
    CHECK_OK(fam_get_blocking(f, back, d, 36, 64)); /* the last 64 bytes */
    for (int i = 0; i < 64; i++) assert_int_equal(back[i], 0);
    CHECK_OK(fam_put_blocking(f, buf, d, 100, 0)); /* empty at the end is fine */
    CHECK_OK(fam_deallocate(f, d));
}

static void strided_gather_and_scatter_match_a_local_array(void **state)
{
    (void)state;
    enum { COUNT = 10000 };
    int64_t *ref = calloc(COUNT, 8), *got = calloc(COUNT, 8), vals[300];
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "stride", COUNT * 8, 0600, r, &d));
    for (int i = 0; i < 300; i++) vals[i] = 1000 + i;
    CHECK_OK(fam_scatter_blocking_stride(f, vals, d, 300, 17, 31, 8));
    for (int i = 0; i < 300; i++) ref[17 + i * 31] = vals[i];
    CHECK_OK(fam_get_blocking(f, got, d, 0, COUNT * 8));
    assert_memory_equal(ref, got, COUNT * 8);
    int64_t g[300];
    CHECK_OK(fam_gather_blocking_stride(f, g, d, 300, 17, 31, 8));
    assert_memory_equal(g, vals, sizeof g);
    /* contiguous (stride 1) and non-blocking forms */
    CHECK_OK(fam_gather_nonblocking_stride(f, g, d, 100, 0, 1, 8));
    CHECK_OK(fam_quiet(f));
    assert_memory_equal(g, ref, 100 * 8);
    /* last element exactly at the end works; one past does not */
    CHECK_OK(fam_gather_blocking_stride(f, g, d, 2, 0, COUNT - 1, 8));
    assert_int_equal(g[1], ref[COUNT - 1]);
    assert_int_equal(fam_gather_blocking_stride(f, g, d, 2, 1, COUNT - 1, 8), FAM_EOUTOFRANGE);
    assert_int_equal(fam_gather_blocking_stride(f, g, d, 2, 0, 0, 8), FAM_EINVAL);
    assert_int_equal(fam_gather_blocking_stride(f, g, d, 1, 0, 1, 0), FAM_EINVAL);
    free(ref);
    free(got);
    CHECK_OK(fam_deallocate(f, d));
}

static void indexed_scatter_with_duplicates_keeps_one_value(void **state)
{
    (void)state;
    enum { COUNT = 5000, N = 2000 };
    int64_t *ref = calloc(COUNT, 8), *got = calloc(COUNT, 8);
    uint64_t idx[N];
    int64_t vals[N], g[N];
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "index", COUNT * 8, 0600, r, &d));
    srand(3);
    for (int i = 0; i < N; i++) {
        idx[i] = (uint64_t)rand() % (COUNT / 4); /* many duplicates */
        vals[i] = i + 1;
    }
    CHECK_OK(fam_scatter_blocking_index(f, vals, d, N, idx, 8));
    CHECK_OK(fam_get_blocking(f, got, d, 0, COUNT * 8));
    for (int i = 0; i < N; i++) { /* the value there was written to it */
        int ok = 0;
        for (int j = 0; j < N && !ok; j++)
            ok = idx[j] == idx[i] && vals[j] == got[idx[i]];
        assert_true(ok);
    }
    for (int i = 0; i < N; i++) ref[idx[i]] = 1;
    for (int k = 0; k < COUNT; k++)
        if (!ref[k]) assert_int_equal(got[k], 0);
    CHECK_OK(fam_gather_blocking_index(f, g, d, N, idx, 8));
    for (int i = 0; i < N; i++) assert_int_equal(g[i], got[idx[i]]);
    /* one bad index anywhere: the whole call fails, nothing written */
    idx[N - 1] = COUNT;
    int64_t before[COUNT];
    memcpy(before, got, sizeof before);
    assert_int_equal(fam_scatter_blocking_index(f, vals, d, N, idx, 8), FAM_EOUTOFRANGE);
    CHECK_OK(fam_get_blocking(f, got, d, 0, COUNT * 8));
    assert_memory_equal(before, got, sizeof before);
    CHECK_OK(fam_scatter_blocking_index(f, vals, d, 0, idx, 8)); /* empty */
    free(ref);
    free(got);
    CHECK_OK(fam_deallocate(f, d));
}

static void copy_between_items(void **state)
{
    (void)state;
    enum { N = 3 << 20 };
    uint8_t *src = malloc(N), *dst = malloc(N);
    fill(src, N, 11);
    fam_item_t *a, *b;
    fam_copy_t *h;
    CHECK_OK(fam_allocate(f, "ca", N, 0600, r, &a));
    CHECK_OK(fam_allocate(f, "cb", N + 10, 0600, r, &b));
    CHECK_OK(fam_put_blocking(f, src, a, 0, N));
    CHECK_OK(fam_copy(f, a, 0, b, 10, N, &h));
    CHECK_OK(fam_copy_wait(f, h));
    CHECK_OK(fam_get_blocking(f, dst, b, 10, N));
    assert_memory_equal(src, dst, N);
    assert_int_equal(fam_copy(f, a, 1, b, 0, N, &h), FAM_EOUTOFRANGE);
    assert_int_equal(fam_copy(f, a, 0, b, 11, N, &h), FAM_EOUTOFRANGE);
    free(src);
    free(dst);
    CHECK_OK(fam_deallocate(f, a));
    CHECK_OK(fam_deallocate(f, b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_items_read_as_zeros),
        cmocka_unit_test(put_get_roundtrip_every_size),
        cmocka_unit_test(nonblocking_puts_are_all_there_after_quiet),
        cmocka_unit_test(out_of_range_is_refused_and_nothing_written),
        cmocka_unit_test(strided_gather_and_scatter_match_a_local_array),
        cmocka_unit_test(indexed_scatter_with_duplicates_keeps_one_value),
        cmocka_unit_test(copy_between_items),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
