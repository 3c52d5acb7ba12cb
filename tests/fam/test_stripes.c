/* SPDX-License-Identifier: Apache-2.0 */
/* test_stripes.c — many memory servers. With three famd running, an
 * interleaved region stripes every item over all of them, and put/get
 * across stripe boundaries, gather/scatter, atomics, bulk atomics and
 * 128-bit compare-and-swap give the same results as on a local array.
 * Regions and names are found by every client, whatever order it lists the
 * servers in; a client that knows a different set of servers is told so. */
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

#define NSRV 3
static struct famd_proc srv[NSRV];
static char all[400], reversed[400];
static fam_t *f;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
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
    for (int i = 0; i < NSRV; i++)
        if (famd_start(&srv[i], 64 << 20, NULL)) return -1;
    snprintf(all, sizeof all, "%s,%s,%s", srv[0].addr, srv[1].addr, srv[2].addr);
    snprintf(reversed, sizeof reversed, "%s,%s,%s", srv[2].addr, srv[1].addr, srv[0].addr);
    return (f = client(all)) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    for (int i = 0; i < NSRV; i++) famd_stop(&srv[i]);
    return 0;
}

static fam_region_t *interleaved(const char *name, uint64_t size, uint64_t stripe)
{
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = stripe};
    fam_region_t *r;
    if (fam_create_region(f, name, size, 0700, &a, &r)) fail_msg("%s", fam_last_error());
    return r;
}

static void test_region_and_item_stat_report_the_stripes(void **state)
{
    (void)state;
    fam_region_t *r = interleaved("st", 8 << 20, 4096);
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.num_servers, NSRV);
    assert_int_equal(st.stripe_size, 4096);
    assert_int_equal(st.size, 8 << 20);
    assert_int_equal(st.interleave, FAM_INTERLEAVE_ENABLE);
    fam_item_t *big, *small;
    CHECK_OK(fam_allocate(f, "big", 100000, 0600, r, &big));
    CHECK_OK(fam_allocate(f, "small", 100, 0600, r, &small));
    CHECK_OK(fam_stat(f, big, &st));
    assert_int_equal(st.size, 100000);
    assert_int_equal(st.num_servers, NSRV);
    assert_int_equal(st.stripe_size, 4096);
    CHECK_OK(fam_stat(f, small, &st)); /* one stripe: one server */
    assert_int_equal(st.size, 100);
    assert_int_equal(st.num_servers, 1);
    /* the region's bytes are spread: it reports what all parts hold */
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_true(st.used >= 100000 + 100);
    CHECK_OK(fam_destroy_region(f, r));
}

static void test_put_get_across_stripes_match_local_bytes(void **state)
{
    (void)state;
    fam_region_t *r = interleaved("pg", 8 << 20, 4096);
    const uint64_t size = 3 * 4096 * 7 + 1234; /* ends in a partial stripe */
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "pg_item", size, 0600, r, &d));
    uint8_t *ref = calloc(size, 1), *got = malloc(size);
    for (int round = 0; round < 200; round++) {
        uint64_t off = next_rand() % size, n = next_rand() % (size - off + 1);
        if (round % 4 == 0) n = n % 64; /* short ones at stripe edges too */
        uint8_t *buf = malloc(n + 1);
        for (uint64_t i = 0; i < n; i++) buf[i] = (uint8_t)next_rand();
        if (round % 2) CHECK_OK(fam_put_blocking(f, buf, d, off, n));
        else {
            CHECK_OK(fam_put_nonblocking(f, buf, d, off, n));
            CHECK_OK(fam_quiet(f));
        }
        memcpy(ref + off, buf, n);
        free(buf);
    }
    CHECK_OK(fam_get_blocking(f, got, d, 0, size));
    assert_memory_equal(got, ref, size);
    /* reading piecewise across boundaries gives the same */
    for (uint64_t off = 4090; off + 20 <= size; off += 4096) {
        uint8_t b[20];
        CHECK_OK(fam_get_blocking(f, b, d, off, 20));
        assert_memory_equal(b, ref + off, 20);
    }
    assert_int_equal(fam_get_blocking(f, got, d, size - 10, 11), FAM_EOUTOFRANGE);
    free(ref);
    free(got);
    CHECK_OK(fam_destroy_region(f, r));
}

static void gather_scatter_case(fam_region_t *r, const char *name, uint64_t esize,
                                uint64_t count, uint64_t n)
{
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, name, esize * count, 0600, r, &d));
    uint8_t *ref = malloc(esize * count);
    for (uint64_t i = 0; i < esize * count; i++) ref[i] = (uint8_t)next_rand();
    CHECK_OK(fam_put_blocking(f, ref, d, 0, esize * count));
    uint64_t *idx = malloc((n + 1) * 8);
    for (uint64_t i = 0; i < n; i++)
        idx[i] = i % 5 == 2 && i ? idx[i - 1] : next_rand() % count;
    uint8_t *got = malloc(n * esize + 1), *vals = malloc(n * esize + 1);
    CHECK_OK(fam_gather_blocking_index(f, got, d, n, idx, esize));
    for (uint64_t i = 0; i < n; i++)
        if (memcmp(got + i * esize, ref + idx[i] * esize, esize))
            fail_msg("%s: gathered element %llu differs", name, (unsigned long long)i);
    for (uint64_t i = 0; i < n * esize; i++) vals[i] = (uint8_t)next_rand();
    CHECK_OK(fam_scatter_blocking_index(f, vals, d, n, idx, esize));
    for (uint64_t i = 0; i < n; i++) memcpy(ref + idx[i] * esize, vals + i * esize, esize);
    uint8_t *all_bytes = malloc(esize * count);
    CHECK_OK(fam_get_blocking(f, all_bytes, d, 0, esize * count));
    assert_memory_equal(all_bytes, ref, esize * count);
    free(all_bytes); free(got); free(vals); free(idx); free(ref);
    CHECK_OK(fam_deallocate(f, d));
}

static void test_gather_scatter_over_three_servers(void **state)
{
    (void)state;
    fam_region_t *r = interleaved("gs", 32 << 20, 4096);
    gather_scatter_case(r, "g8", 8, 300000, 700000);   /* several chunks per server */
    gather_scatter_case(r, "g16", 16, 5000, 3000);
    gather_scatter_case(r, "g8one", 8, 1000, 1);
    gather_scatter_case(r, "g8none", 8, 1000, 0);
    gather_scatter_case(r, "g8tiny", 8, 3, 10);         /* one stripe only */

    /* strided, crossing stripes */
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "strided", 80000, 0600, r, &d));
    uint64_t v[1000], back[1000];
    for (int i = 0; i < 1000; i++) v[i] = next_rand();
    CHECK_OK(fam_scatter_blocking_stride(f, v, d, 1000, 3, 7, 8));
    for (int i = 0; i < 1000; i++) {
        uint64_t x;
        CHECK_OK(fam_get_blocking(f, &x, d, (3 + 7 * (uint64_t)i) * 8, 8));
        assert_true(x == v[i]);
    }
    CHECK_OK(fam_gather_blocking_stride(f, back, d, 1000, 3, 7, 8));
    assert_memory_equal(back, v, sizeof v);

    /* an element size that does not divide the stripe is refused */
    uint64_t idx[1] = {0};
    uint8_t buf[12];
    assert_int_equal(fam_gather_blocking_index(f, buf, d, 1, idx, 12), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "stripe"));
    CHECK_OK(fam_destroy_region(f, r));
}

static void test_atomics_on_every_server(void **state)
{
    (void)state;
    fam_region_t *r = interleaved("at", 8 << 20, 4096);
    fam_item_t *d;
    const uint64_t count = 4096; /* 8 stripes of int64 */
    CHECK_OK(fam_allocate(f, "ctr", count * 8, 0600, r, &d));
    int64_t ref[4096] = {0};
    for (uint64_t e = 0; e < count; e += 97) {
        int64_t old;
        CHECK_OK(fam_fetch_add_int64(f, d, e * 8, (int64_t)e, &old));
        assert_true(old == ref[e]);
        ref[e] += (int64_t)e;
    }
    uint64_t *idx = malloc(50000 * 8);
    int64_t *vals = malloc(50000 * 8), *old = malloc(50000 * 8);
    for (int i = 0; i < 50000; i++) {
        idx[i] = next_rand() % count;
        vals[i] = (int64_t)(next_rand() % 1000);
    }
    CHECK_OK(fam_atomic_index(f, d, FAM_AOP_ADD, FAM_INT64, 50000, idx, vals, old));
    for (int i = 0; i < 50000; i++) {
        if (old[i] != ref[idx[i]]) fail_msg("old value %d differs", i);
        ref[idx[i]] += vals[i];
    }
    int64_t got[4096];
    CHECK_OK(fam_get_blocking(f, got, d, 0, sizeof got));
    assert_memory_equal(got, ref, sizeof ref);

    /* 128-bit compare-and-swap in the second and third stripe */
    uint64_t exp[2], des[2] = {11, 22}, o[2];
    for (uint64_t off = 4096; off <= 8192; off += 4096) {
        memcpy(exp, (uint8_t *)ref + off, 16);
        CHECK_OK(fam_compare_swap_int128(f, d, off, exp, des, o));
        assert_memory_equal(o, exp, 16);
        CHECK_OK(fam_get_blocking(f, o, d, off, 16));
        assert_true(o[0] == 11 && o[1] == 22);
    }
    free(idx); free(vals); free(old);
    CHECK_OK(fam_destroy_region(f, r));
}

static void test_other_client_finds_everything_whatever_the_server_order(void **state)
{
    (void)state;
    fam_region_t *r = interleaved("shared", 8 << 20, 8192);
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "data", 50000, 0600, r, &d));
    uint8_t buf[50000], back[50000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 13);
    CHECK_OK(fam_put_blocking(f, buf, d, 0, sizeof buf));
    /* plain regions land on different home servers by name */
    fam_region_t *plain[8];
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "plain%d", i);
        CHECK_OK(fam_create_region(f, name, 1 << 20, 0700, NULL, &plain[i]));
        fam_item_t *x;
        CHECK_OK(fam_allocate(f, "x", 8, 0600, plain[i], &x));
        int64_t v = i;
        CHECK_OK(fam_put_blocking(f, &v, x, 0, 8));
        fam_release(x);
    }

    fam_t *g = client(reversed);
    assert_non_null(g);
    fam_item_t *e;
    CHECK_OK(fam_lookup(g, "data", "shared", &e));
    CHECK_OK(fam_get_blocking(g, back, e, 0, sizeof back));
    assert_memory_equal(back, buf, sizeof buf);
    for (int i = 0; i < 8; i++) {
        char name[16];
        snprintf(name, sizeof name, "plain%d", i);
        fam_item_t *x;
        CHECK_OK(fam_lookup(g, "x", name, &x));
        int64_t v;
        CHECK_OK(fam_get_blocking(g, &v, x, 0, 8));
        assert_true(v == i);
        fam_release(x);
        CHECK_OK(fam_destroy_region(f, plain[i]));
    }
    fam_release(e);
    fam_finalize(g);

    /* a client that knows only some of the servers is told, not misled */
    fam_t *h = client(srv[0].addr);
    fam_region_t *r2;
    int rc = fam_lookup_region(h, "shared", &r2);
    if (rc == 0) { /* the name's home may be another server: then NOTFOUND */
        fail_msg("a 1-server client opened a 3-server region");
    }
    assert_true(rc == FAM_EINVAL || rc == FAM_ENOTFOUND);
    fam_finalize(h);

    /* destroying removes every part: the name can be used again */
    CHECK_OK(fam_destroy_region(f, r));
    fam_region_t *again;
    assert_int_equal(fam_lookup_region(f, "shared", &again), FAM_ENOTFOUND);
    again = interleaved("shared", 1 << 20, 4096);
    CHECK_OK(fam_destroy_region(f, again));
}

static void test_bad_stripe_sizes_are_refused(void **state)
{
    (void)state;
    fam_region_t *r;
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 5000};
    assert_int_equal(fam_create_region(f, "bad", 1 << 20, 0700, &a, &r), FAM_EINVAL);
    a.stripe_size = 2048;
    assert_int_equal(fam_create_region(f, "bad", 1 << 20, 0700, &a, &r), FAM_EINVAL);
    /* nothing was left behind on any server */
    a.stripe_size = 0; /* default */
    CHECK_OK(fam_create_region(f, "bad", 1 << 20, 0700, &a, &r));
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_true(st.stripe_size >= 4096);
    CHECK_OK(fam_destroy_region(f, r));
}

static void copy_case(fam_item_t *a, fam_item_t *b, uint64_t aoff, uint64_t boff,
                      uint64_t n)
{
    uint64_t asz = fam_item_size(a), bsz = fam_item_size(b);
    uint8_t *abytes = malloc(asz), *bbytes = malloc(bsz), *got = malloc(bsz);
    for (uint64_t i = 0; i < asz; i++) abytes[i] = (uint8_t)next_rand();
    for (uint64_t i = 0; i < bsz; i++) bbytes[i] = (uint8_t)next_rand();
    CHECK_OK(fam_put_blocking(f, abytes, a, 0, asz));
    if (a == b) memcpy(bbytes, abytes, asz); /* a copy inside one item */
    else CHECK_OK(fam_put_blocking(f, bbytes, b, 0, bsz));
    fam_copy_t *h;
    CHECK_OK(fam_copy(f, a, aoff, b, boff, n, &h));
    CHECK_OK(fam_copy_wait(f, h));
    memcpy(bbytes + boff, abytes + aoff, n);
    CHECK_OK(fam_get_blocking(f, got, b, 0, bsz));
    assert_memory_equal(got, bbytes, bsz);
    free(abytes); free(bbytes); free(got);
}

/* The name of a region whose home is server `want` (of this client's
 * sorted list), found by trying names. */
static fam_region_t *plain_on(int want, const char *prefix, fam_item_t **item,
                              uint64_t size)
{
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        fam_region_t *r;
        CHECK_OK(fam_create_region(f, name, 16 << 20, 0700, NULL, &r));
        fam_stat_t st;
        CHECK_OK(fam_allocate(f, "it", size, 0600, r, item));
        CHECK_OK(fam_stat(f, *item, &st));
        /* ids carry no server; ask which server answers a lookup */
        fam_t *one = client(srv[want].addr);
        fam_region_t *probe;
        int found = fam_lookup_region(one, name, &probe) == 0;
        if (found) fam_release_region(probe);
        fam_finalize(one);
        if (found) return r;
        CHECK_OK(fam_destroy_region(f, r));
    }
    fail_msg("no region name lands on server %d", want);
    return NULL;
}

static void test_copy_moves_bytes_between_servers(void **state)
{
    (void)state;
    /* striped to striped, with different stripe sizes, at odd offsets */
    fam_region_t *r1 = interleaved("c1", 16 << 20, 4096);
    fam_region_t *r2 = interleaved("c2", 16 << 20, 16384);
    fam_item_t *a, *b;
    CHECK_OK(fam_allocate(f, "a", 300000, 0600, r1, &a));
    CHECK_OK(fam_allocate(f, "b", 200000, 0600, r2, &b));
    copy_case(a, b, 1234, 777, 150000);
    copy_case(a, a, 0, 150000, 100000); /* within one item, across servers */
    copy_case(b, a, 0, 0, 200000);
    /* plain items on two different servers, and on the same one */
    fam_item_t *p0, *p1, *p0b;
    fam_region_t *q0 = plain_on(0, "cp0_", &p0, 5 << 20);
    fam_region_t *q1 = plain_on(1, "cp1_", &p1, 5 << 20);
    CHECK_OK(fam_allocate(f, "second", 1 << 20, 0600, q0, &p0b));
    copy_case(p0, p1, 10, 20, (5 << 20) - 20);  /* several RMA writes */
    copy_case(p1, p0, 0, 0, 4096);
    copy_case(p0, p0b, 100, 0, 1 << 20);        /* same server: memmove */
    copy_case(p0, b, 0, 0, 200000);             /* plain to striped */
    /* errors: out of range at either end */
    fam_copy_t *h;
    assert_int_equal(fam_copy(f, a, 299999, b, 0, 2, &h), FAM_EOUTOFRANGE);
    assert_int_equal(fam_copy(f, a, 0, b, 199999, 2, &h), FAM_EOUTOFRANGE);
    CHECK_OK(fam_destroy_region(f, r1));
    CHECK_OK(fam_destroy_region(f, r2));
    CHECK_OK(fam_destroy_region(f, q0));
    CHECK_OK(fam_destroy_region(f, q1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_region_and_item_stat_report_the_stripes),
        cmocka_unit_test(test_put_get_across_stripes_match_local_bytes),
        cmocka_unit_test(test_gather_scatter_over_three_servers),
        cmocka_unit_test(test_atomics_on_every_server),
        cmocka_unit_test(test_other_client_finds_everything_whatever_the_server_order),
        cmocka_unit_test(test_bad_stripe_sizes_are_refused),
        cmocka_unit_test(test_copy_moves_bytes_between_servers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
