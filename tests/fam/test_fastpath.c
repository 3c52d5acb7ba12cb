/* SPDX-License-Identifier: Apache-2.0 */
/* test_fastpath.c — the same-host fast path (model "shared_memory") gives
 * the same results as the fabric path: one client maps the pools of two
 * famd (pool files on this host), another goes over the fabric, both run
 * the same random sequence of puts, gets, gathers, scatters, atomics, bulk
 * atomics, copies and 128-bit compare-and-swaps on twin items, and every
 * returned value and every final byte must agree. Writes by one are seen
 * by the other at once. Pools that are not files stay on the fabric. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

static struct famd_proc srv[2];
static char both[300];
static fam_t *fast, *fabric;

static int setup(void **state)
{
    (void)state;
    char p0[300], p1[300];
    snprintf(p0, sizeof p0, "%s/pool0", test_tmpdir());
    snprintf(p1, sizeof p1, "%s/pool1", test_tmpdir());
    if (famd_start(&srv[0], 64 << 20, p0) || famd_start(&srv[1], 64 << 20, p1))
        return -1;
    snprintf(both, sizeof both, "%s,%s", srv[0].addr, srv[1].addr);
    fam_options_t o = {.servers = both, .provider = test_provider(),
                       .timeout_ms = 5000, .model = "shared_memory"};
    if (fam_initialize(&o, &fast)) return -1;
    fabric = client(both);
    return fabric ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(fast);
    fam_finalize(fabric);
    famd_stop(&srv[0]);
    famd_stop(&srv[1]);
    return 0;
}

static void test_fast_client_maps_both_pools_and_the_other_none(void **state)
{
    (void)state;
    assert_int_equal(fam_num_local_servers(fast), 2);
    assert_int_equal(fam_num_local_servers(fabric), 0);
    /* a volatile pool has no file to map: that server stays on the fabric */
    struct famd_proc v;
    assert_int_equal(famd_start(&v, 16 << 20, NULL), 0);
    fam_options_t o = {.servers = v.addr, .provider = test_provider(),
                       .model = "shared_memory"};
    fam_t *g;
    CHECK_OK(fam_initialize(&o, &g));
    assert_int_equal(fam_num_local_servers(g), 0);
    fam_finalize(g);
    /* the model may come from the environment; a wrong one is refused */
    setenv("FAM_MODEL", "shared_memory", 1);
    fam_options_t e = {.servers = srv[0].addr, .provider = test_provider()};
    CHECK_OK(fam_initialize(&e, &g));
    assert_int_equal(fam_num_local_servers(g), 1);
    fam_finalize(g);
    setenv("FAM_MODEL", "telepathy", 1);
    assert_int_equal(fam_initialize(&e, &g), FAM_EINVAL);
    unsetenv("FAM_MODEL");
    famd_stop(&v);
}

static uint64_t rng = 0x1234567887654321ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* One random operation, done by client c on item d; everything it returns
 * is appended to `log` so the two runs can be compared. */
static void one_op(fam_t *c, fam_item_t *d, uint64_t count, int kind, uint64_t seed,
                   uint8_t *log, size_t *loglen)
{
    uint64_t s = seed;
#define R() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, s)
    uint64_t size = count * 8;
    switch (kind) {
    case 0: { /* put a random range */
        uint64_t off = R() % size, n = R() % (size - off) + 1;
        if (n > 70000) n = 70000;
        uint8_t *b = malloc(n);
        for (uint64_t i = 0; i < n; i++) b[i] = (uint8_t)R();
        CHECK_OK(fam_put_blocking(c, b, d, off, n));
        free(b);
        break;
    }
    case 1: { /* get a random range */
        uint64_t off = R() % size, n = R() % (size - off) + 1;
        if (n > 4096) n = 4096;
        CHECK_OK(fam_get_blocking(c, log + *loglen, d, off, n));
        *loglen += n;
        break;
    }
    case 2: { /* gather and scatter with duplicates */
        uint64_t n = R() % 3000 + 1;
        uint64_t *idx = malloc(n * 8), *v = malloc(n * 8);
        for (uint64_t i = 0; i < n; i++) { idx[i] = R() % count; v[i] = R(); }
        CHECK_OK(fam_gather_blocking_index(c, log + *loglen, d, n, idx, 8));
        *loglen += n * 8;
        CHECK_OK(fam_scatter_blocking_index(c, v, d, n, idx, 8));
        free(idx);
        free(v);
        break;
    }
    case 3: { /* single atomics */
        uint64_t e = R() % count;
        int64_t old;
        CHECK_OK(fam_fetch_add_int64(c, d, e * 8, (int64_t)(R() % 1000), &old));
        memcpy(log + *loglen, &old, 8); *loglen += 8;
        CHECK_OK(fam_fetch_min_int64(c, d, ((e + 1) % count) * 8, (int64_t)R(), &old));
        memcpy(log + *loglen, &old, 8); *loglen += 8;
        uint64_t u;
        CHECK_OK(fam_fetch_xor_uint64(c, d, ((e + 2) % count) * 8, R(), &u));
        memcpy(log + *loglen, &u, 8); *loglen += 8;
        CHECK_OK(fam_fetch_uint64(c, d, e * 8, &u));
        CHECK_OK(fam_compare_swap_uint64(c, d, e * 8, u, R(), &u));
        memcpy(log + *loglen, &u, 8); *loglen += 8;
        double dv;
        CHECK_OK(fam_set_double(c, d, ((e + 3) % count) * 8, 1.5));
        CHECK_OK(fam_fetch_add_double(c, d, ((e + 3) % count) * 8, 2.25, &dv));
        memcpy(log + *loglen, &dv, 8); *loglen += 8;
        break;
    }
    case 4: { /* bulk atomics with duplicates, old values kept */
        uint64_t n = R() % 2000 + 1;
        uint64_t *idx = malloc(n * 8), *v = malloc(n * 8);
        for (uint64_t i = 0; i < n; i++) { idx[i] = R() % 64; v[i] = R() % 100; }
        CHECK_OK(fam_atomic_index(c, d, FAM_AOP_ADD, FAM_INT64, n, idx, v,
                                  log + *loglen));
        *loglen += n * 8;
        CHECK_OK(fam_atomic_index(c, d, FAM_AOP_XOR, FAM_UINT64, n, idx, v, NULL));
        free(idx);
        free(v);
        break;
    }
    case 5: { /* copy inside the item, across the two servers' parts */
        uint64_t n = R() % (size / 2);
        /* ranges that do not overlap (an overlapping copy is undefined) */
        uint64_t a = R() % (size / 2 - n + 1), b = size / 2 + R() % (size / 2 - n + 1);
        fam_copy_t *h;
        CHECK_OK(fam_copy(c, d, a, d, b, n, &h));
        CHECK_OK(fam_copy_wait(c, h));
        break;
    }
    case 6: { /* 128-bit compare-and-swap */
        uint64_t off = (R() % (count / 2)) * 16, exp[2], des[2] = {R(), R()}, o[2];
        CHECK_OK(fam_get_blocking(c, exp, d, off, 16));
        if (R() & 1) exp[0] ^= 1; /* sometimes a mismatch */
        CHECK_OK(fam_compare_swap_int128(c, d, off, exp, des, o));
        memcpy(log + *loglen, o, 16); *loglen += 16;
        break;
    }
    }
#undef R
}

static void test_same_operations_same_results_on_both_paths(void **state)
{
    (void)state;
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 4096};
    fam_region_t *r;
    CHECK_OK(fam_create_region(fabric, "fp", 16 << 20, 0777, &a, &r));
    const uint64_t count = 40000; /* 320 KB: 79 stripes over 2 servers */
    fam_item_t *df, *ds, *dfast;
    CHECK_OK(fam_allocate(fabric, "via_fabric", count * 8, 0600, r, &df));
    CHECK_OK(fam_allocate(fabric, "via_fast", count * 8, 0600, r, &ds));
    CHECK_OK(fam_lookup(fast, "via_fast", "fp", &dfast));
    size_t cap = 64 << 20, lf = 0, ls = 0;
    uint8_t *logf = malloc(cap), *logs = malloc(cap);
    for (int i = 0; i < 300; i++) {
        int kind = (int)(rnd() % 7);
        uint64_t seed = rnd() | 1;
        one_op(fabric, df, count, kind, seed, logf, &lf);
        size_t before = ls;
        one_op(fast, dfast, count, kind, seed, logs, &ls);
        if (lf != ls || memcmp(logf + before, logs + before, ls - before))
            fail_msg("operation %d (kind %d) differs between the paths", i, kind);
    }
    assert_int_equal(lf, ls);
    assert_memory_equal(logf, logs, lf);
    uint8_t *bf = malloc(count * 8), *bs = malloc(count * 8);
    CHECK_OK(fam_get_blocking(fabric, bf, df, 0, count * 8));
    CHECK_OK(fam_get_blocking(fabric, bs, ds, 0, count * 8)); /* read over the fabric */
    assert_memory_equal(bf, bs, count * 8);
    free(bf); free(bs); free(logf); free(logs);
    fam_release(dfast);
    CHECK_OK(fam_destroy_region(fabric, r));
}

static void test_writes_are_seen_across_paths_at_once(void **state)
{
    (void)state;
    fam_region_t *r;
    CHECK_OK(fam_create_region(fabric, "seen", 1 << 20, 0777, NULL, &r));
    fam_item_t *d, *e;
    CHECK_OK(fam_allocate(fabric, "x", 4096, 0600, r, &d));
    CHECK_OK(fam_lookup(fast, "x", "seen", &e));
    for (int64_t i = 0; i < 1000; i++) {
        int64_t got;
        CHECK_OK(fam_set_int64(fast, e, 8, i));          /* memory */
        CHECK_OK(fam_get_blocking(fabric, &got, d, 8, 8)); /* fabric */
        assert_true(got == i);
        CHECK_OK(fam_add_int64(fabric, d, 16, 1));        /* famd's provider */
        CHECK_OK(fam_fetch_int64(fast, e, 16, &got));
        assert_true(got == i + 1);
    }
    fam_release(e);
    CHECK_OK(fam_destroy_region(fabric, r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_client_maps_both_pools_and_the_other_none),
        cmocka_unit_test(test_same_operations_same_results_on_both_paths),
        cmocka_unit_test(test_writes_are_seen_across_paths_at_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
