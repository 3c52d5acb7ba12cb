/* SPDX-License-Identifier: Apache-2.0 */
/* test_bulk.c — indexed and strided gather/scatter and bulk atomics, done
 * by the memory server, give the same result as the same operation on a
 * local array: random index lists with duplicates, unsorted, empty, one
 * element, several request chunks, odd element sizes; bulk atomics of every
 * type and operation, with duplicates and from several processes at once;
 * and every error leaves the item unchanged. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"

static struct famd_proc srv;
static fam_t *f;
static fam_region_t *region;

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 512ull << 20, NULL)) return -1;
    if (!(f = client(srv.addr))) return -1;
    return fam_create_region(f, "bulk", 256ull << 20, 0700, NULL, &region) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&srv);
    return 0;
}

/* An item of `bytes` filled with random bytes, and the same bytes locally. */
static fam_item_t *random_item(const char *name, uint64_t bytes, uint8_t **ref)
{
    fam_item_t *d;
    if (fam_allocate(f, name, bytes, 0600, region, &d)) fail_msg("%s", fam_last_error());
    *ref = malloc(bytes);
    for (uint64_t i = 0; i < bytes; i++) (*ref)[i] = (uint8_t)next_rand();
    CHECK_OK(fam_put_blocking(f, *ref, d, 0, bytes));
    return d;
}

static void assert_item_equals(fam_item_t *d, const uint8_t *ref, uint64_t bytes)
{
    uint8_t *got = malloc(bytes);
    CHECK_OK(fam_get_blocking(f, got, d, 0, bytes));
    assert_memory_equal(got, ref, bytes);
    free(got);
}

static void gather_scatter_match_local_array_for(uint64_t esize, uint64_t count,
                                                 uint64_t n)
{
    uint8_t *ref;
    char name[64];
    snprintf(name, sizeof name, "gs%llu_%llu", (unsigned long long)esize,
             (unsigned long long)n);
    fam_item_t *d = random_item(name, esize * count, &ref);
    uint64_t *idx = malloc((n ? n : 1) * 8);
    for (uint64_t i = 0; i < n; i++)
        idx[i] = i % 7 == 3 && i ? idx[i - 1] : next_rand() % count; /* duplicates */
    uint8_t *got = malloc(n * esize + 1), *want = malloc(n * esize + 1);
    for (uint64_t i = 0; i < n; i++) memcpy(want + i * esize, ref + idx[i] * esize, esize);
    CHECK_OK(fam_gather_blocking_index(f, got, d, n, idx, esize));
    assert_memory_equal(got, want, n * esize);

    /* scatter new values; with duplicates one of the values wins: here,
     * as in a sequential loop (and NumPy), the last one */
    uint8_t *vals = malloc(n * esize + 1);
    for (uint64_t i = 0; i < n * esize; i++) vals[i] = (uint8_t)next_rand();
    CHECK_OK(fam_scatter_blocking_index(f, vals, d, n, idx, esize));
    uint8_t *after = malloc(esize * count);
    CHECK_OK(fam_get_blocking(f, after, d, 0, esize * count));
    /* the last write to each element wins, as in a sequential loop */
    uint8_t *seq = malloc(esize * count);
    memcpy(seq, ref, esize * count);
    for (uint64_t i = 0; i < n; i++) memcpy(seq + idx[i] * esize, vals + i * esize, esize);
    assert_memory_equal(after, seq, esize * count);
    free(seq); free(after); free(vals); free(got); free(want);
    free(idx); free(ref);
    CHECK_OK(fam_deallocate(f, d));
}

static void test_gather_scatter_8_byte_elements_many_chunks(void **state)
{
    (void)state;
    /* 1.2 M indices: several 4 MiB requests in flight */
    gather_scatter_match_local_array_for(8, 1 << 20, 1200000);
}

static void test_gather_scatter_odd_element_sizes(void **state)
{
    (void)state;
    gather_scatter_match_local_array_for(1, 5000, 20000);
    gather_scatter_match_local_array_for(4, 3000, 9000);
    gather_scatter_match_local_array_for(12, 1000, 3000);
    gather_scatter_match_local_array_for(100, 1000, 500);
    gather_scatter_match_local_array_for(70000, 20, 30); /* beyond the bulk size */
}

static void test_empty_and_single_element(void **state)
{
    (void)state;
    gather_scatter_match_local_array_for(8, 100, 0);
    gather_scatter_match_local_array_for(8, 100, 1);
    gather_scatter_match_local_array_for(8, 1, 1);
}

static void test_strided_gather_scatter(void **state)
{
    (void)state;
    uint8_t *ref;
    const uint64_t count = 100000;
    fam_item_t *d = random_item("strided", count * 8, &ref);
    uint64_t n = 33331, first = 5, stride = 3; /* last: 99995 */
    uint64_t *got = malloc(n * 8), *vals = malloc(n * 8);
    CHECK_OK(fam_gather_blocking_stride(f, got, d, n, first, stride, 8));
    for (uint64_t i = 0; i < n; i++)
        assert_memory_equal(&got[i], ref + (first + i * stride) * 8, 8);
    for (uint64_t i = 0; i < n; i++) vals[i] = next_rand();
    CHECK_OK(fam_scatter_nonblocking_stride(f, vals, d, n, first, stride, 8));
    CHECK_OK(fam_quiet(f));
    for (uint64_t i = 0; i < n; i++) memcpy(ref + (first + i * stride) * 8, &vals[i], 8);
    assert_item_equals(d, ref, count * 8);
    free(got); free(vals); free(ref);
    CHECK_OK(fam_deallocate(f, d));
}

static void test_errors_change_nothing(void **state)
{
    (void)state;
    uint8_t *ref;
    fam_item_t *d = random_item("errs", 8000, &ref);
    uint64_t idx[3] = {1, 999, 1000}; /* 1000 is one past the end */
    uint64_t vals[3] = {1, 2, 3};
    assert_int_equal(fam_scatter_blocking_index(f, vals, d, 3, idx, 8), FAM_EOUTOFRANGE);
    assert_non_null(strstr(fam_last_error(), "out of range"));
    assert_int_equal(fam_gather_blocking_index(f, vals, d, 3, idx, 8), FAM_EOUTOFRANGE);
    assert_int_equal(fam_scatter_blocking_stride(f, vals, d, 3, 998, 1, 8), FAM_EOUTOFRANGE);
    assert_int_equal(fam_scatter_blocking_stride(f, vals, d, 3, 0, 500, 8), FAM_EOUTOFRANGE);
    assert_int_equal(fam_scatter_blocking_index(f, vals, d, 3, idx, 0), FAM_EINVAL);
    assert_int_equal(fam_gather_blocking_index(f, vals, d, 1, idx, 8001), FAM_EINVAL);
    assert_int_equal(fam_atomic_index(f, d, FAM_AOP_ADD, FAM_INT64, 3, idx, vals, NULL),
                     FAM_EOUTOFRANGE);
    assert_int_equal(fam_atomic_index(f, d, FAM_AOP_XOR, FAM_DOUBLE, 2, idx, vals, NULL),
                     FAM_EINVAL);
    assert_int_equal(fam_atomic_index(f, d, 99, FAM_INT64, 2, idx, vals, NULL), FAM_EINVAL);
    assert_int_equal(fam_atomic_index(f, d, FAM_AOP_ADD, 0, 2, idx, vals, NULL), FAM_EINVAL);
    assert_item_equals(d, ref, 8000);

    /* a read-only descriptor gathers but does not scatter or update */
    CHECK_OK(fam_change_permissions(f, d, 0644));
    pid_t pid = fork();
    if (pid == 0) { /* a non-owner gets the item read-only */
        if (setgid(65534) || setuid(65534)) _exit(10);
        fam_t *g = client(srv.addr);
        fam_item_t *ro;
        /* shm connects only processes of one user (docs/SECURITY.md) */
        if (!strcmp(test_provider(), "shm"))
            _exit(!g && strstr(fam_last_error(), "use the tcp provider") ? 0 : 16);
        if (!g || fam_lookup(g, "errs", "bulk", &ro)) {
            fprintf(stderr, "child: %s\n", fam_last_error());
            _exit(11);
        }
        uint64_t i2[2] = {3, 7}, v2[2] = {0, 0};
        if (fam_gather_blocking_index(g, v2, ro, 2, i2, 8)) _exit(12);
        if (memcmp(&v2[0], ref + 24, 8) || memcmp(&v2[1], ref + 56, 8)) _exit(13);
        if (fam_scatter_blocking_index(g, v2, ro, 2, i2, 8) != FAM_EPERM) _exit(14);
        if (fam_atomic_index(g, ro, FAM_AOP_ADD, FAM_INT64, 2, i2, v2, NULL) != FAM_EPERM)
            _exit(15);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_item_equals(d, ref, 8000);
    free(ref);
    CHECK_OK(fam_deallocate(f, d));
}

/* Apply op to a local array, element by element, as famd must. */
#define LOCAL_AOP(T, arr, idx, vals, old, n, op)                              \
    for (uint64_t i = 0; i < (n); i++) {                                      \
        T *p = &((T *)(arr))[(idx)[i]], v = ((const T *)(vals))[i];          \
        ((T *)(old))[i] = *p;                                                 \
        switch (op) {                                                         \
        case FAM_AOP_SET: *p = v; break;                                      \
        case FAM_AOP_ADD: *p = (T)(*p + v); break;                            \
        case FAM_AOP_MIN: if (v < *p) *p = v; break;                          \
        case FAM_AOP_MAX: if (v > *p) *p = v; break;                          \
        default: break;                                                       \
        }                                                                     \
    }
#define LOCAL_BITOP(T, arr, idx, vals, old, n, op)                            \
    for (uint64_t i = 0; i < (n); i++) {                                      \
        T *p = &((T *)(arr))[(idx)[i]], v = ((const T *)(vals))[i];          \
        ((T *)(old))[i] = *p;                                                 \
        if ((op) == FAM_AOP_AND) *p &= v;                                     \
        else if ((op) == FAM_AOP_OR) *p |= v;                                 \
        else if ((op) == FAM_AOP_XOR) *p ^= v;                                \
    }

static void test_bulk_atomics_match_sequential_local_updates(void **state)
{
    (void)state;
    const uint64_t count = 5000, n = 20000; /* every element hit ~4 times */
    fam_dtype_t types[] = {FAM_INT32, FAM_INT64, FAM_UINT32, FAM_UINT64, FAM_FLOAT, FAM_DOUBLE};
    for (int t = 0; t < 6; t++) {
        for (int op = FAM_AOP_SET; op <= FAM_AOP_XOR; op++) {
            int is_float = types[t] == FAM_FLOAT || types[t] == FAM_DOUBLE;
            if (is_float && op >= FAM_AOP_AND) continue;
            uint64_t es = fam_dtype_size(types[t]);
            char name[32];
            snprintf(name, sizeof name, "atom%d_%d", t, op);
            uint8_t *ref;
            fam_item_t *d = random_item(name, count * es, &ref);
            if (is_float) { /* small integers: sums stay exact */
                for (uint64_t i = 0; i < count; i++) {
                    if (es == 4) ((float *)(void *)ref)[i] = (float)(next_rand() % 1000);
                    else ((double *)(void *)ref)[i] = (double)(next_rand() % 1000) - 500;
                }
                CHECK_OK(fam_put_blocking(f, ref, d, 0, count * es));
            }
            uint64_t *idx = malloc(n * 8);
            uint8_t *vals = malloc(n * es), *old = malloc(n * es), *want_old = malloc(n * es);
            for (uint64_t i = 0; i < n; i++) idx[i] = next_rand() % count;
            for (uint64_t i = 0; i < n; i++) {
                if (types[t] == FAM_FLOAT) ((float *)(void *)vals)[i] = (float)(next_rand() % 100) - 50;
                else if (types[t] == FAM_DOUBLE) ((double *)(void *)vals)[i] = (double)(next_rand() % 100) - 50;
                else if (es == 4) ((uint32_t *)(void *)vals)[i] = (uint32_t)next_rand();
                else ((uint64_t *)(void *)vals)[i] = next_rand();
            }
            CHECK_OK(fam_atomic_index(f, d, op, types[t], n, idx, vals, old));
            switch (types[t]) {
            case FAM_INT32:
                if (op >= FAM_AOP_AND) { LOCAL_BITOP(int32_t, ref, idx, vals, want_old, n, op) }
                else if (op == FAM_AOP_ADD) { LOCAL_AOP(uint32_t, ref, idx, vals, want_old, n, op) }
                else { LOCAL_AOP(int32_t, ref, idx, vals, want_old, n, op) }
                break;
            case FAM_INT64:
                if (op >= FAM_AOP_AND) { LOCAL_BITOP(int64_t, ref, idx, vals, want_old, n, op) }
                else if (op == FAM_AOP_ADD) { LOCAL_AOP(uint64_t, ref, idx, vals, want_old, n, op) }
                else { LOCAL_AOP(int64_t, ref, idx, vals, want_old, n, op) }
                break;
            case FAM_UINT32:
                if (op >= FAM_AOP_AND) { LOCAL_BITOP(uint32_t, ref, idx, vals, want_old, n, op) }
                else { LOCAL_AOP(uint32_t, ref, idx, vals, want_old, n, op) }
                break;
            case FAM_UINT64:
                if (op >= FAM_AOP_AND) { LOCAL_BITOP(uint64_t, ref, idx, vals, want_old, n, op) }
                else { LOCAL_AOP(uint64_t, ref, idx, vals, want_old, n, op) }
                break;
            case FAM_FLOAT: LOCAL_AOP(float, ref, idx, vals, want_old, n, op) break;
            case FAM_DOUBLE: LOCAL_AOP(double, ref, idx, vals, want_old, n, op) break;
            }
            /* one request runs its elements in order, so even the old
             * values of duplicate indices match the sequential loop */
            if (memcmp(old, want_old, n * es)) fail_msg("type %d op %d: old values differ", t, op);
            assert_item_equals(d, ref, count * es);
            free(idx); free(vals); free(old); free(want_old); free(ref);
            CHECK_OK(fam_deallocate(f, d));
        }
    }
}

static void test_concurrent_bulk_adds_from_four_processes_are_exact(void **state)
{
    (void)state;
    const uint64_t count = 1000, n = 200000;
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "hist", count * 8, 0600, region, &d));
    pid_t pids[4];
    for (int p = 0; p < 4; p++) {
        if ((pids[p] = fork()) == 0) {
            fam_t *g = client(srv.addr);
            fam_item_t *e;
            if (!g || fam_lookup(g, "hist", "bulk", &e)) _exit(1);
            uint64_t *idx = malloc(n * 8);
            int64_t *ones = malloc(n * 8);
            for (uint64_t i = 0; i < n; i++) {
                idx[i] = (i * 7919 + (uint64_t)p) % count;
                ones[i] = 1;
            }
            int rc = fam_atomic_index(g, e, FAM_AOP_ADD, FAM_INT64, n, idx, ones, NULL);
            fam_finalize(g);
            _exit(rc ? 2 : 0);
        }
    }
    for (int p = 0; p < 4; p++) {
        int st;
        waitpid(pids[p], &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int64_t want[1000] = {0}, got[1000];
    for (int p = 0; p < 4; p++)
        for (uint64_t i = 0; i < n; i++) want[(i * 7919 + (uint64_t)p) % count]++;
    CHECK_OK(fam_get_blocking(f, got, d, 0, sizeof got));
    assert_memory_equal(got, want, sizeof want);
    CHECK_OK(fam_deallocate(f, d));
}

/* libfam's promise (fam.h): an indexed scatter writes in index order, so
 * of repeated indices the last value wins, also when the repeats fall in
 * different bulk messages to one server (4 MiB each: ~260 k elements of 8
 * bytes) and for elements big enough to go one RMA each. */
static void test_scatter_repeats_in_many_messages_last_value_wins(void **state)
{
    (void)state;
    const uint64_t count = 1000, n = 900000; /* over 3 messages, every index in each */
    fam_item_t *d;
    if (fam_allocate(f, "repeats", count * 8, 0600, region, &d)) fail_msg("%s", fam_last_error());
    uint64_t *idx = malloc(n * 8), *vals = malloc(n * 8), want[1000], got[1000];
    for (uint64_t i = 0; i < n; i++) {
        idx[i] = (i * 7919) % count;
        vals[i] = i;
        want[idx[i]] = i;
    }
    CHECK_OK(fam_scatter_blocking_index(f, vals, d, n, idx, 8));
    CHECK_OK(fam_get_blocking(f, got, d, 0, sizeof got));
    assert_memory_equal(got, want, sizeof want);
    CHECK_OK(fam_deallocate(f, d));
    free(idx);
    free(vals);

    /* 80 KiB elements: one RMA each */
    const uint64_t es = 80u << 10, m = 12;
    if (fam_allocate(f, "bigrep", 3 * es, 0600, region, &d)) fail_msg("%s", fam_last_error());
    uint8_t *big = malloc(m * es), *after = malloc(3 * es), *expect = malloc(3 * es);
    uint64_t bidx[12];
    for (uint64_t i = 0; i < m; i++) {
        bidx[i] = i % 3;
        memset(big + i * es, (int)(i + 1), es);
        memset(expect + bidx[i] * es, (int)(i + 1), es);
    }
    CHECK_OK(fam_scatter_blocking_index(f, big, d, m, bidx, es));
    CHECK_OK(fam_get_blocking(f, after, d, 0, 3 * es));
    assert_memory_equal(after, expect, 3 * es);
    CHECK_OK(fam_deallocate(f, d));
    free(big);
    free(after);
    free(expect);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gather_scatter_8_byte_elements_many_chunks),
        cmocka_unit_test(test_gather_scatter_odd_element_sizes),
        cmocka_unit_test(test_empty_and_single_element),
        cmocka_unit_test(test_strided_gather_scatter),
        cmocka_unit_test(test_errors_change_nothing),
        cmocka_unit_test(test_bulk_atomics_match_sequential_local_updates),
        cmocka_unit_test(test_concurrent_bulk_adds_from_four_processes_are_exact),
        cmocka_unit_test(test_scatter_repeats_in_many_messages_last_value_wins),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
