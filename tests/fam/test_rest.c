/* SPDX-License-Identifier: Apache-2.0 */
/* test_rest.c — fam_rest: a client that will do no RMA for a while lets
 * famd stop polling at once, unless another client still counts on it.
 *
 * famd polls its fabric for --spin-us after a client's WAKE (over shm it
 * cannot be woken by the fabric, so a client that woke it recently skips
 * WAKE_SYNC and counts on it polling). Here famd runs with a spin of
 * 400 ms. Whether it polls is read from its state, sampled every ms: a
 * polling famd is running or waiting for a core (R), a resting one is
 * asleep (S). Its CPU time would tell too, but only on a machine with a
 * core to spare (CI runs tests side by side):
 *   - after RMA, famd polls; after the same RMA and fam_rest it sleeps,
 *     and the next operations (which wake it first) give the right data;
 *   - a REST from one client while another woke famd within the spin
 *     leaves famd polling, and the other client's data path works.
 *   - a client may ask for a shorter spin (FAM_SPIN_US), never a longer
 *     one; famd polls for the longest any connected client asked for.
 * shm only (CMake sets the provider and the spin): a tcp client never
 * makes famd that promise, and fam_rest sends nothing for it. */
#define _GNU_SOURCE
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

#define BYTES (1u << 20)

static struct famd_proc srv;
static fam_t *a, *b;     /* two clients of the one famd */
static fam_region_t *region;
static fam_item_t *da, *db; /* a's and b's items (the same item) */
static uint8_t buf[BYTES], back[BYTES];

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts)) {
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The share of famd's states, sampled every ms over the next `secs`
 * seconds, that were R (polling) rather than asleep. Samples after `by`
 * (a now_s() time: where famd's spin would end) do not count; -1 when
 * this process was kept off its core so long that fewer than 20 did. */
static double famd_polling(double secs, double by)
{
    int n = 0, r = 0;
    double end = now_s() + secs;
    for (double t = now_s(); t < end && t < by; t = now_s()) {
        n++;
        r += proc_state(srv.pid) == 'R';
        sleep_s(0.001);
    }
    return n >= 20 ? (double)r / n : -1;
}

#define TRIES 5 /* rounds a test runs again when famd_polling gave -1 */
#define NEVER 1e300

static void rma(fam_t *f, fam_item_t *d, uint8_t seed)
{
    for (size_t i = 0; i < BYTES; i++) buf[i] = (uint8_t)(i * 31 + seed);
    CHECK_OK(fam_put_blocking(f, buf, d, 0, BYTES));
    memset(back, 0, BYTES);
    CHECK_OK(fam_get_blocking(f, back, d, 0, BYTES));
    assert_memory_equal(back, buf, BYTES);
}

static int setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 64ull << 20, NULL)) return -1;
    if (!(a = client(srv.addr)) || !(b = client(srv.addr))) return -1;
    if (fam_create_region(a, "rest", 16ull << 20, 0700, NULL, &region)) return -1;
    if (fam_allocate(a, "x", BYTES, 0600, region, &da)) return -1;
    return fam_lookup(b, "x", "rest", &db) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    if (db) fam_release(db); /* the last test leaves none of them */
    if (a && da) fam_deallocate(a, da);
    if (a && region) fam_destroy_region(a, region);
    fam_finalize(b);
    fam_finalize(a);
    famd_stop(&srv);
    return 0;
}

static void test_a_rest_lets_famd_sleep_at_once(void **state)
{
    (void)state;
    double polling = -1, resting = -1;
    for (int k = 0; k < TRIES && (polling < 0 || resting < 0); k++) {
        rma(a, da, 1);
        polling = famd_polling(0.3, now_s() + 0.35);
        rma(a, da, 2);
        CHECK_OK(fam_rest(a));
        resting = famd_polling(0.3, NEVER);
    }
    printf("famd polling in the 0.3 s after RMA: %.2f of the time; after RMA and "
           "fam_rest: %.2f\n", polling, resting);
    if (polling < 0.7)
        fail_msg("famd polled %.2f of the 0.3 s after a client's RMA: it should "
                 "poll for its 400 ms spin (the test cannot tell resting apart)",
                 polling);
    if (resting > 0.3)
        fail_msg("famd polled %.2f of the 0.3 s after fam_rest: it kept polling",
                 resting);
    /* the next operations wake it first, and see the data */
    memset(back, 0, BYTES);
    CHECK_OK(fam_get_blocking(a, back, da, 0, BYTES));
    assert_memory_equal(back, buf, BYTES);
    rma(a, da, 3);
    CHECK_OK(fam_rest(a));
    CHECK_OK(fam_rest(a)); /* twice: nothing more to say */
    rma(b, db, 4);         /* another client, after a's REST */
    CHECK_OK(fam_rest(b));
}

static void test_a_rest_leaves_famd_polling_for_another_client(void **state)
{
    (void)state;
    double owed = -1;
    for (int k = 0; k < TRIES && owed < 0; k++) {
        rma(b, db, 5); /* b woke famd: famd owes it 400 ms of polling */
        double by = now_s() + 0.35;
        rma(a, da, 6);
        CHECK_OK(fam_rest(a));
        owed = famd_polling(0.15, by);
    }
    printf("famd polling in the 0.15 s after a's fam_rest, b awake: %.2f of the "
           "time\n", owed);
    if (owed < 0.7)
        fail_msg("famd polled only %.2f of the 0.15 s after one client's REST "
                 "while another had woken it: it stopped polling", owed);
    /* b, within its spin (no WAKE_SYNC), still reads and writes */
    rma(b, db, 7);
    memset(back, 0, BYTES);
    CHECK_OK(fam_get_blocking(a, back, da, 0, BYTES));
    assert_memory_equal(back, buf, BYTES);
    CHECK_OK(fam_rest(b));
    CHECK_OK(fam_rest(a));
    assert_int_equal(fam_rest(NULL), FAM_EINVAL);
}

/* A client of srv asking FAM_SPIN_US=ask (NULL: unset); the spin famd
 * granted it in *granted. */
static fam_t *client_asking(const char *ask, unsigned *granted)
{
    if (ask)
        setenv("FAM_SPIN_US", ask, 1);
    else
        unsetenv("FAM_SPIN_US");
    fam_t *f = client(srv.addr);
    unsetenv("FAM_SPIN_US");
    assert_non_null(f);
    fam_server_info_t si;
    CHECK_OK(fam_server_info(f, 0, &si));
    *granted = si.spin_us;
    return f;
}

static void test_a_client_may_ask_famd_to_poll_for_less(void **state)
{
    (void)state;
    /* a and b (famd's 400 ms) go: famd polls for what the clients left ask */
    fam_release(db);
    db = NULL;
    fam_finalize(b);
    b = NULL;
    CHECK_OK(fam_rest(a));
    unsigned got;
    fam_t *quick = client_asking("20000", &got);
    assert_int_equal(got, 20000);
    fam_t *greedy = client_asking("10000000", &got);
    assert_int_equal(got, 400000); /* never more than --spin-us */
    fam_finalize(greedy);
    fam_t *plain = client_asking(NULL, &got);
    assert_int_equal(got, 400000);
    fam_finalize(plain);
    plain = client_asking("0", &got);
    assert_int_equal(got, 400000);
    fam_finalize(plain);
    plain = client_asking("nonsense", &got);
    assert_int_equal(got, 400000);
    fam_finalize(plain);
    /* only a (400 ms) and quick (20 ms) are left: a's promise holds */
    fam_item_t *dq;
    CHECK_OK(fam_lookup(quick, "x", "rest", &dq));
    double with_a = -1;
    for (int k = 0; k < TRIES && with_a < 0; k++) {
        rma(quick, dq, 8);
        with_a = famd_polling(0.3, now_s() + 0.35);
    }
    /* a gone: famd polls 20 ms after quick's RMA, and the data path works */
    fam_deallocate(a, da);
    da = NULL;
    fam_destroy_region(a, region);
    region = NULL;
    fam_finalize(a);
    a = NULL;
    CHECK_OK(fam_create_region(quick, "rest2", 16ull << 20, 0700, NULL, &region));
    CHECK_OK(fam_allocate(quick, "y", BYTES, 0600, region, &da));
    double alone = -1;
    for (int k = 0; k < TRIES && alone < 0; k++) {
        rma(quick, da, 9);
        alone = famd_polling(0.3, NEVER);
    }
    printf("famd polling in the 0.3 s after RMA of a client asking 20 ms: %.2f of "
           "the time with a 400 ms client connected, %.2f alone\n", with_a, alone);
    if (with_a < 0.7)
        fail_msg("famd polled %.2f of the 0.3 s after RMA while a client that asked "
                 "for its 400 ms spin was connected: it should poll", with_a);
    if (alone > 0.45)
        fail_msg("famd polled %.2f of the 0.3 s after RMA of its only client, which "
                 "asked for a 20 ms spin", alone);
    rma(quick, da, 10); /* after the gap: woken first, right data */
    fam_release(dq);
    fam_deallocate(quick, da);
    fam_destroy_region(quick, region);
    fam_finalize(quick);
    da = NULL;
    region = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_rest_lets_famd_sleep_at_once),
        cmocka_unit_test(test_a_rest_leaves_famd_polling_for_another_client),
        cmocka_unit_test(test_a_client_may_ask_famd_to_poll_for_less),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
