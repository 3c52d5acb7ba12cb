/* SPDX-License-Identifier: Apache-2.0 */
/* test_atomics.c — every atomic on every type, checked against the same
 * operation done on a local variable; 128-bit compare-and-swap; errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

static struct famd_proc srv;
static fam_t *f;
static fam_region_t *r;
static fam_item_t *d;

static int setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 64 << 20, NULL) != 0) return -1;
    if (!(f = client(srv.addr))) return -1;
    if (fam_create_region(f, "atomics", 1 << 20, 0600, NULL, &r)) return -1;
    return fam_allocate(f, "cells", 4096, 0600, r, &d);
}

static int teardown(void **state)
{
    (void)state;
    fam_destroy_region(f, r);
    fam_finalize(f);
    famd_stop(&srv);
    return 0;
}

/* For one type: start from `init`, apply each operation in FAM and to a
 * local copy, and compare both the returned old values and the results. */
#define ARITH_TEST(T, N, init, a, b)                                           \
    static void arith_##N(void **state)                                        \
    {                                                                          \
        (void)state;                                                           \
        uint64_t off = 64;                                                     \
        T local = (init), got, old;                                            \
        CHECK_OK(fam_set_##N(f, d, off, local));                               \
        CHECK_OK(fam_add_##N(f, d, off, (a))); local += (a);                   \
        CHECK_OK(fam_subtract_##N(f, d, off, (b))); local -= (b);              \
        CHECK_OK(fam_fetch_##N(f, d, off, &got));                              \
        assert_true(got == local);                                             \
        CHECK_OK(fam_min_##N(f, d, off, (b))); if ((b) < local) local = (b);   \
        CHECK_OK(fam_max_##N(f, d, off, (a))); if ((a) > local) local = (a);   \
        CHECK_OK(fam_fetch_##N(f, d, off, &got));                              \
        assert_true(got == local);                                             \
        CHECK_OK(fam_fetch_add_##N(f, d, off, (b), &old));                     \
        assert_true(old == local); local += (b);                               \
        CHECK_OK(fam_fetch_subtract_##N(f, d, off, (a), &old));                \
        assert_true(old == local); local -= (a);                               \
        CHECK_OK(fam_fetch_min_##N(f, d, off, (a), &old));                     \
        assert_true(old == local); if ((a) < local) local = (a);               \
        CHECK_OK(fam_fetch_max_##N(f, d, off, (b), &old));                     \
        assert_true(old == local); if ((b) > local) local = (b);               \
        CHECK_OK(fam_swap_##N(f, d, off, (a), &old));                          \
        assert_true(old == local); local = (a);                                \
        CHECK_OK(fam_compare_swap_##N(f, d, off, (b), (init), &old));          \
        assert_true(old == local); /* (b) != local: no swap */                 \
        CHECK_OK(fam_compare_swap_##N(f, d, off, local, (init), &old));        \
        assert_true(old == local); local = (init);                             \
        CHECK_OK(fam_get_blocking(f, &got, d, off, sizeof got));               \
        assert_true(got == local);                                             \
    }

#define BITS_TEST(T, N, init, m)                                               \
    static void bits_##N(void **state)                                         \
    {                                                                          \
        (void)state;                                                           \
        uint64_t off = 128;                                                    \
        T local = (init), got, old;                                            \
        CHECK_OK(fam_set_##N(f, d, off, local));                               \
        CHECK_OK(fam_and_##N(f, d, off, (m))); local &= (m);                   \
        CHECK_OK(fam_or_##N(f, d, off, (T)~(m))); local |= (T)~(m);            \
        CHECK_OK(fam_xor_##N(f, d, off, (m))); local ^= (m);                   \
        CHECK_OK(fam_fetch_and_##N(f, d, off, (T)((m) >> 3), &old));           \
        assert_true(old == local); local &= (T)((m) >> 3);                     \
        CHECK_OK(fam_fetch_or_##N(f, d, off, (init), &old));                   \
        assert_true(old == local); local |= (init);                            \
        CHECK_OK(fam_fetch_xor_##N(f, d, off, (m), &old));                     \
        assert_true(old == local); local ^= (m);                               \
        CHECK_OK(fam_fetch_##N(f, d, off, &got));                              \
        assert_true(got == local);                                             \
    }

ARITH_TEST(int32_t, int32, -12345, 1000, -70000)
ARITH_TEST(int64_t, int64, -5000000000ll, 7000000000ll, -3)
ARITH_TEST(uint32_t, uint32, 4000000000u, 5u, 3u) /* wraps on subtract? no */
ARITH_TEST(uint64_t, uint64, 3u, 10u, 20u)        /* 3+10-20 wraps */
ARITH_TEST(float, float, 1.5f, 2.25f, -0.5f)
ARITH_TEST(double, double, -1e10, 3.5e9, 0.125)
BITS_TEST(int32_t, int32, 0x12345678, 0x0f0f0f0f)
BITS_TEST(int64_t, int64, 0x1234567890abcdefll, 0x00ff00ff00ff00ffll)
BITS_TEST(uint32_t, uint32, 0xdeadbeefu, 0xf0f0f0f0u)
BITS_TEST(uint64_t, uint64, 0xfeedfacecafebeefull, 0x0ff00ff00ff00ff0ull)

static void compare_swap_128(void **state)
{
    (void)state;
    uint64_t zero[2] = {0, 0}, a[2] = {0x1111, 0x2222}, b[2] = {~0ull, 7}, old[2];
    CHECK_OK(fam_compare_swap_int128(f, d, 256, zero, a, old));
    assert_true(old[0] == 0 && old[1] == 0);
    CHECK_OK(fam_compare_swap_int128(f, d, 256, zero, b, old)); /* fails */
    assert_true(old[0] == a[0] && old[1] == a[1]);
    CHECK_OK(fam_compare_swap_int128(f, d, 256, a, b, old));    /* swaps */
    uint64_t mem[2];
    CHECK_OK(fam_get_blocking(f, mem, d, 256, 16));
    assert_true(mem[0] == b[0] && mem[1] == b[1]);
    assert_int_equal(fam_compare_swap_int128(f, d, 8, a, b, old), FAM_EINVAL);
    assert_int_equal(fam_compare_swap_int128(f, d, 4096, a, b, old), FAM_EOUTOFRANGE);
}

static void atomic_errors(void **state)
{
    (void)state;
    int64_t old;
    assert_int_equal(fam_add_int64(f, d, 4096, 1), FAM_EOUTOFRANGE);
    assert_int_equal(fam_add_int64(f, d, 4092, 1), FAM_EOUTOFRANGE);
    assert_int_equal(fam_add_int64(f, d, 3, 1), FAM_EINVAL); /* misaligned */
    assert_int_equal(fam_fetch_add_int64(f, d, 0, 1, NULL), FAM_EINVAL);
    assert_int_equal(fam_add_int64(f, NULL, 0, 1), FAM_EINVAL);
    /* nothing above changed cell 0 */
    CHECK_OK(fam_fetch_int64(f, d, 0, &old));
    assert_int_equal(old, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arith_int32), cmocka_unit_test(arith_int64),
        cmocka_unit_test(arith_uint32), cmocka_unit_test(arith_uint64),
        cmocka_unit_test(arith_float), cmocka_unit_test(arith_double),
        cmocka_unit_test(bits_int32), cmocka_unit_test(bits_int64),
        cmocka_unit_test(bits_uint32), cmocka_unit_test(bits_uint64),
        cmocka_unit_test(compare_swap_128), cmocka_unit_test(atomic_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
