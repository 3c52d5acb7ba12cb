/* SPDX-License-Identifier: Apache-2.0 */
/* test_recovery.c — a client that used a stale descriptor keeps working.
 *
 * Client B holds descriptors of items that client A then deallocates. B's
 * RMA with the revoked key fails (over shm it never completes and times
 * out; over tcp the provider answers with an error and closes the
 * connection). Either way the error must say the item is gone, and B's
 * later operations on other items — put, get, atomics, gather, allocate,
 * non-blocking transfers — must work with the right bytes: libfam rebuilds
 * its endpoint after such a failure. Other clients are never disturbed. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "fixture.h"

#define TIMEOUT_MS 1500
#define N 16384 /* four 4 KiB stripes over the two famds */

static struct famd_proc srv[2];
static char servers[200];
static fam_t *a, *b, *c; /* a owns the items; b goes stale; c looks on */
static fam_region_t *reg;

static fam_t *quick_client(void)
{
    fam_options_t o = {.servers = servers, .provider = test_provider(),
                       .timeout_ms = TIMEOUT_MS};
    fam_t *f = NULL;
    if (fam_initialize(&o, &f) != 0) {
        fprintf(stderr, "fam_initialize: %s\n", fam_last_error());
        return NULL;
    }
    return f;
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (famd_start(&srv[i], 64 << 20, NULL)) return -1;
    snprintf(servers, sizeof servers, "%s,%s", srv[0].addr, srv[1].addr);
    if (!(a = quick_client()) || !(b = quick_client()) || !(c = quick_client()))
        return -1;
    fam_region_attr_t attr = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 4096};
    return fam_create_region(a, "rec", 16 << 20, 0666, &attr, &reg) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(a);
    fam_finalize(b);
    fam_finalize(c);
    for (int i = 0; i < 2; i++) famd_stop(&srv[i]);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A's new item `name` of N bytes filled with `seed`, and B's descriptor. */
static fam_item_t *shared_item(const char *name, uint8_t seed, fam_item_t **in_b)
{
    fam_item_t *d;
    CHECK_OK(fam_allocate(a, name, N, 0666, reg, &d));
    uint8_t buf[N];
    for (int i = 0; i < N; i++) buf[i] = (uint8_t)(seed + i);
    CHECK_OK(fam_put_blocking(a, buf, d, 0, N));
    CHECK_OK(fam_lookup(b, name, "rec", in_b));
    return d;
}

/* B (and C) still move the right bytes, through every kind of call. */
static void b_still_works(const char *tag)
{
    char name[64];
    snprintf(name, sizeof name, "ok-%s", tag);
    fam_item_t *bd, *d = shared_item(name, 7, &bd);
    uint8_t got[N], put[N];
    CHECK_OK(fam_get_blocking(b, got, bd, 0, N));
    for (int i = 0; i < N; i++) assert_int_equal(got[i], (uint8_t)(7 + i));
    for (int i = 0; i < N; i++) put[i] = (uint8_t)(200 - i);
    CHECK_OK(fam_put_blocking(b, put, bd, 0, N)); /* spans both famds */
    CHECK_OK(fam_get_blocking(a, got, d, 0, N));
    assert_memory_equal(got, put, N);
    int64_t old;
    CHECK_OK(fam_set_int64(b, bd, 0, 40));
    CHECK_OK(fam_fetch_add_int64(b, bd, 0, 2, &old));
    assert_int_equal(old, 40);
    CHECK_OK(fam_fetch_int64(a, d, 0, &old));
    assert_int_equal(old, 42);
    uint64_t idx[3] = {0, 600, 1500}; /* on both famds */
    int64_t v[3], w[3];
    CHECK_OK(fam_gather_blocking_index(b, v, bd, 3, idx, 8));
    for (int i = 0; i < 3; i++) memcpy(&w[i], put + idx[i] * 8, 8);
    w[0] = 42;
    assert_memory_equal(v, w, sizeof v);
    CHECK_OK(fam_put_nonblocking(b, put, bd, 8, 64));
    CHECK_OK(fam_get_nonblocking(b, got, bd, 8192, 64));
    CHECK_OK(fam_quiet(b));
    fam_item_t *mine;
    snprintf(name, sizeof name, "b-%s", tag);
    CHECK_OK(fam_allocate(b, name, N, 0600, reg, &mine));
    CHECK_OK(fam_put_blocking(b, put, mine, 0, N));
    CHECK_OK(fam_get_blocking(b, got, mine, 0, N));
    assert_memory_equal(got, put, N);
    CHECK_OK(fam_deallocate(b, mine));
    fam_item_t *cd;
    snprintf(name, sizeof name, "ok-%s", tag);
    CHECK_OK(fam_lookup(c, name, "rec", &cd));
    uint8_t want[N];
    memcpy(want, put, N);
    int64_t v42 = 42;
    memcpy(want, &v42, 8);      /* B's atomics */
    memcpy(want + 8, put, 64);  /* B's non-blocking put */
    CHECK_OK(fam_get_blocking(c, got, cd, 0, N));
    assert_memory_equal(got, want, N);
    fam_release(cd);
    fam_release(bd);
    CHECK_OK(fam_deallocate(a, d));
}

static void stale_put_fails_with_not_found_and_b_keeps_working(void **state)
{
    (void)state;
    fam_item_t *bx, *x = shared_item("x1", 1, &bx);
    CHECK_OK(fam_deallocate(a, x));
    uint8_t buf[N] = {0};
    double t0 = now_s();
    int rc = fam_put_blocking(b, buf, bx, 0, N);
    assert_int_equal(rc, FAM_ENOTFOUND);
    assert_true(now_s() - t0 < 3.0 * TIMEOUT_MS / 1000.0);
    assert_non_null(strstr(fam_last_error(), "deallocated"));
    b_still_works("put");
    fam_release(bx);
}

static void stale_atomic_fails_and_b_keeps_working(void **state)
{
    (void)state;
    fam_item_t *bx, *x = shared_item("x2", 2, &bx);
    CHECK_OK(fam_deallocate(a, x));
    int64_t old;
    assert_int_equal(fam_fetch_add_int64(b, bx, 0, 1, &old), FAM_ENOTFOUND);
    b_still_works("atomic");
    fam_release(bx);
}

static void stale_nonblocking_get_fails_at_quiet_and_b_keeps_working(void **state)
{
    (void)state;
    fam_item_t *bx, *x = shared_item("x3", 3, &bx);
    CHECK_OK(fam_deallocate(a, x));
    uint8_t buf[N];
    int rc = fam_get_nonblocking(b, buf, bx, 0, N);
    if (rc == 0) rc = fam_quiet(b);
    assert_true(rc < 0);
    b_still_works("quiet");
    fam_release(bx);
}

/* With the default timeout (30 s), a stale RMA fails as soon as famd can
 * say the item is gone: after 0.1 s of waiting libfam asks it on the
 * control connection, instead of waiting out the timeout (over shm the RMA
 * never completes). A get, a put, an atomic and a non-blocking get (found
 * by fam_quiet), then the client works on. */
static void with_the_default_timeout_a_stale_rma_fails_within_a_second(void **state)
{
    (void)state;
    fam_options_t o = {.servers = servers, .provider = test_provider()};
    fam_t *keep = b, *slow = NULL;
    CHECK_OK(fam_initialize(&o, &slow));
    b = slow; /* shared_item and b_still_works use b */
    const char *names[4] = {"x4-get", "x4-put", "x4-atomic", "x4-quiet"};
    for (int k = 0; k < 4; k++) {
        fam_item_t *bx, *x = shared_item(names[k], 4, &bx);
        uint8_t buf[N];
        CHECK_OK(fam_get_blocking(b, buf, bx, 0, N)); /* it worked before */
        CHECK_OK(fam_deallocate(a, x));
        double t0 = now_s();
        int64_t old;
        int rc = k == 0 ? fam_get_blocking(b, buf, bx, 0, N)
               : k == 1 ? fam_put_blocking(b, buf, bx, 0, N)
               : k == 2 ? fam_fetch_add_int64(b, bx, 0, 1, &old)
                        : fam_get_nonblocking(b, buf, bx, 0, 64); /* posted: one piece */
        if (k == 3 && rc == 0) rc = fam_quiet(b);
        double took = now_s() - t0;
        printf("%s (%s) of a deallocated item failed after %.3f s: %s\n", names[k],
               test_provider(), took, fam_last_error());
        assert_int_equal(rc, FAM_ENOTFOUND);
        assert_non_null(strstr(fam_last_error(), "deallocated"));
        if (took > 1.0)
            fail_msg("%s of a deallocated item took %.3f s to fail (the timeout is 30 s; "
                     "famd answers at once)", names[k], took);
        fam_release(bx);
    }
    b_still_works("default-timeout");
    b = keep;
    fam_finalize(slow);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stale_put_fails_with_not_found_and_b_keeps_working),
        cmocka_unit_test(stale_atomic_fails_and_b_keeps_working),
        cmocka_unit_test(stale_nonblocking_get_fails_at_quiet_and_b_keeps_working),
        cmocka_unit_test(with_the_default_timeout_a_stale_rma_fails_within_a_second),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
