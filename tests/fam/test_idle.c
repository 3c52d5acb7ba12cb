/* SPDX-License-Identifier: Apache-2.0 */
/* test_idle.c — an idle famd sleeps, and everything works after it slept.
 *
 * famd used to poll its fabric every millisecond while idle over shm (about
 * 1000 wake-ups and 2-4% of a core each second with nothing to do). Now it
 * blocks in poll() with a slow safety tick, and clients wake it before
 * their first operation after an idle gap (WAKE_SYNC). This checks, with
 * two famds and a client that has done RMA with both:
 *   - famd's idle wake-ups (voluntary context switches of all its threads)
 *     and CPU over a few seconds, with generous bounds (the machine is
 *     shared; precise figures are in bench/idle_bench);
 *   - that after an idle gap put, get, every kind of atomic, an indexed
 *     gather and scatter, and a famd-to-famd copy all give the right
 *     result, each within a generous deadline;
 *   - that a copy no client waits for still finishes while the client
 *     sleeps (the destination famd must still drive its fabric). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"

#define STRIPE (64u << 10)
#define ITEM_BYTES (8u << 20)   /* 128 stripes, alternating between famds */
#define IDLE_GAP_S 1.5          /* famd's safety tick is ~50 ms by then */
#define OP_DEADLINE_S 1.0       /* generous: the goal is < 1 ms */

static struct famd_proc srv[2];
static fam_t *f;
static fam_region_t *region;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts)) {
    }
}

/* Times any thread of pid went to sleep of its own accord. */
static long long wakeups(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *dp = opendir(dir);
    if (!dp) fail_msg("cannot open %s", dir);
    long long sum = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char path[384], line[256];
        snprintf(path, sizeof path, "%s/%s/status", dir, e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp) continue; /* the thread ended */
        long long v;
        while (fgets(line, sizeof line, fp))
            if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1) sum += v;
        fclose(fp);
    }
    closedir(dp);
    return sum;
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (famd_start(&srv[i], 64ull << 20, NULL)) return -1;
    char both[200];
    snprintf(both, sizeof both, "%s,%s", srv[0].addr, srv[1].addr);
    if (!(f = client(both))) return -1;
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE,
                           .stripe_size = STRIPE};
    return fam_create_region(f, "idle", 48ull << 20, 0700, &a, &region) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&srv[0]);
    famd_stop(&srv[1]);
    return 0;
}

static fam_item_t *item(const char *name)
{
    fam_item_t *d;
    if (fam_allocate(f, name, ITEM_BYTES, 0600, region, &d))
        fail_msg("allocate %s: %s", name, fam_last_error());
    return d;
}

/* After a warm-up of RMA with both famds, an idle famd wakes at most a few
 * dozen times a second and uses well under 3% of a core (it woke ~1000
 * times a second polling every ms over shm before). */
static void test_idle_famd_sleeps(void **state)
{
    (void)state;
    fam_item_t *d = item("warm");
    uint64_t v = 7;
    for (uint64_t off = 0; off < ITEM_BYTES; off += STRIPE)
        CHECK_OK(fam_put_blocking(f, &v, d, off, sizeof v));
    sleep_s(0.3); /* past the spin window */
    const double secs = 3.0;
    long long w0[2], w1[2];
    double c0[2], c1[2];
    for (int i = 0; i < 2; i++) {
        w0[i] = wakeups(srv[i].pid);
        c0[i] = proc_cpu_s(srv[i].pid);
    }
    double t0 = now_s();
    sleep_s(secs);
    double el = now_s() - t0;
    for (int i = 0; i < 2; i++) {
        w1[i] = wakeups(srv[i].pid);
        c1[i] = proc_cpu_s(srv[i].pid);
        double per_s = (double)(w1[i] - w0[i]) / el;
        double core = 100.0 * (c1[i] - c0[i]) / el;
        printf("famd %d (%s) idle: %.1f wake-ups/s, %.2f%% of a core\n", i,
               test_provider(), per_s, core);
        if (per_s >= 50)
            fail_msg("idle famd %d woke %.0f times a second (want < 50)", i,
                     per_s);
        if (core >= 3.0)
            fail_msg("idle famd %d used %.2f%% of a core (want < 3%%)", i, core);
    }
    CHECK_OK(fam_deallocate(f, d));
}

/* Time one call; fail if it is past the deadline. */
#define TIMED(what, call)                                                    \
    do {                                                                     \
        double t_ = now_s();                                                 \
        CHECK_OK(call);                                                      \
        double e_ = now_s() - t_;                                            \
        printf("  %-28s %8.0f us after idle\n", what, e_ * 1e6);             \
        if (e_ > OP_DEADLINE_S)                                              \
            fail_msg("%s after %.1f s idle took %.3f s", what, IDLE_GAP_S,   \
                     e_);                                                    \
    } while (0)

/* Every kind of operation, each the first after an idle gap, on both
 * famds (offsets in stripe 0 and stripe 1), gives the right answer. */
static void test_operations_after_idle_are_right(void **state)
{
    (void)state;
    fam_item_t *d = item("ops");
    for (int s = 0; s < 2; s++) {
        uint64_t base = (uint64_t)s * STRIPE; /* stripe s: one famd each */
        int64_t v = 1000 + s, got = 0, old = 0;
        sleep_s(IDLE_GAP_S);
        TIMED("put", fam_put_blocking(f, &v, d, base, sizeof v));
        sleep_s(IDLE_GAP_S);
        TIMED("get", fam_get_blocking(f, &got, d, base, sizeof got));
        assert_int_equal(got, 1000 + s);
        sleep_s(IDLE_GAP_S);
        TIMED("fetch_add", fam_fetch_add_int64(f, d, base, 5, &old));
        assert_int_equal(old, 1000 + s);
        sleep_s(IDLE_GAP_S);
        TIMED("add (non-fetching)", fam_add_int64(f, d, base, 10));
        sleep_s(IDLE_GAP_S);
        TIMED("compare_swap", fam_compare_swap_int64(f, d, base, 1015 + s, 42,
                                                     &old));
        assert_int_equal(old, 1015 + s);
        sleep_s(IDLE_GAP_S);
        TIMED("fetch", fam_fetch_int64(f, d, base, &got));
        assert_int_equal(got, 42);
        sleep_s(IDLE_GAP_S);
        uint64_t x = 0;
        TIMED("fetch_or", fam_fetch_or_uint64(f, d, base + 8, 0x5, &x));
        assert_int_equal(x, 0);
        TIMED("fetch_xor", fam_fetch_xor_uint64(f, d, base + 8, 0x1, &x));
        assert_int_equal(x, 0x5);
        CHECK_OK(fam_fetch_uint64(f, d, base + 8, &x));
        assert_int_equal(x, 0x4);
    }
    /* bulk: a scatter and a gather over both famds, each after a gap */
    enum { N = 1000 };
    uint64_t idx[N];
    int64_t vals[N], back[N];
    for (int i = 0; i < N; i++) {
        idx[i] = 16 + (uint64_t)i * 1000; /* 8-byte elements over many stripes */
        vals[i] = (int64_t)i * 3 - 7;
    }
    sleep_s(IDLE_GAP_S);
    TIMED("scatter 1000 (index)", fam_scatter_blocking_index(f, vals, d, N,
                                                              idx, 8));
    sleep_s(IDLE_GAP_S);
    TIMED("gather 1000 (index)", fam_gather_blocking_index(f, back, d, N,
                                                            idx, 8));
    assert_memory_equal(vals, back, sizeof vals);
    sleep_s(IDLE_GAP_S);
    int64_t old[N], adds[N];
    for (int i = 0; i < N; i++) adds[i] = 1;
    TIMED("bulk fetch_add 1000", fam_atomic_index(f, d, FAM_AOP_ADD,
                                                  FAM_INT64, N, idx, adds,
                                                  old));
    assert_memory_equal(old, vals, sizeof vals);
    CHECK_OK(fam_gather_blocking_index(f, back, d, N, idx, 8));
    for (int i = 0; i < N; i++) assert_int_equal(back[i], vals[i] + 1);
    CHECK_OK(fam_deallocate(f, d));
}

/* Copies between famds after an idle gap, one waited for at once and one
 * that nobody waits for until long after: both complete, bytes right. */
static void test_copies_after_idle_finish(void **state)
{
    (void)state;
    fam_item_t *src = item("src"), *dst = item("dst"), *dst2 = item("dst2");
    uint8_t *ref = malloc(ITEM_BYTES), *got = malloc(ITEM_BYTES);
    for (uint32_t i = 0; i < ITEM_BYTES; i++) ref[i] = (uint8_t)(i * 2654435761u >> 13);
    CHECK_OK(fam_put_blocking(f, ref, src, 0, ITEM_BYTES));
    const uint64_t n = ITEM_BYTES - STRIPE;
    fam_copy_t *h;

    /* shifted by a stripe: every piece goes from one famd to the other */
    sleep_s(IDLE_GAP_S);
    double t = now_s();
    CHECK_OK(fam_copy(f, src, 0, dst, STRIPE, n, &h));
    CHECK_OK(fam_copy_wait(f, h));
    printf("  copy of %llu bytes after idle: %.0f us\n",
           (unsigned long long)n, (now_s() - t) * 1e6);
    CHECK_OK(fam_get_blocking(f, got, dst, STRIPE, n));
    assert_memory_equal(got, ref, n);

    /* started after a gap, then left alone while famd goes idle again;
     * 8 stripes, so that libfam posts every piece at once (it posts the
     * rest of a longer copy from fam_copy_wait) */
    const uint64_t n2 = 8 * STRIPE;
    sleep_s(IDLE_GAP_S);
    CHECK_OK(fam_copy(f, src, STRIPE, dst2, 0, n2, &h));
    sleep_s(3.0);
    /* the bytes are there before anyone waits (reading them wakes the
     * famds, but one get of the whole range cannot finish a copy) */
    CHECK_OK(fam_get_blocking(f, got, dst2, 0, n2));
    if (memcmp(got, ref + STRIPE, n2) != 0)
        fail_msg("a copy nobody waited for had not finished after 3 s");
    t = now_s();
    CHECK_OK(fam_copy_wait(f, h));
    double waited = now_s() - t;
    printf("  copy nobody waited for: wait took %.0f us\n", waited * 1e6);
    if (waited > OP_DEADLINE_S)
        fail_msg("a copy nobody waited for was still going after 3 s "
                 "(fam_copy_wait took %.2f s more)", waited);
    CHECK_OK(fam_get_blocking(f, got, dst2, 0, n2));
    assert_memory_equal(got, ref + STRIPE, n2);
    free(ref);
    free(got);
    CHECK_OK(fam_deallocate(f, src));
    CHECK_OK(fam_deallocate(f, dst));
    CHECK_OK(fam_deallocate(f, dst2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_famd_sleeps),
        cmocka_unit_test(test_operations_after_idle_are_right),
        cmocka_unit_test(test_copies_after_idle_finish),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
