/* SPDX-License-Identifier: Apache-2.0 */
/* test_rest.c — fam_rest: a client that will do no RMA for a while lets
 * famd stop polling at once, unless another client still counts on it.
 *
 * famd polls its fabric for --spin-us after a client's WAKE (over shm it
 * cannot be woken by the fabric, so a client that woke it recently skips
 * WAKE_SYNC and counts on it polling). Here famd runs with a spin of
 * 400 ms, so its CPU time over 0.3 s tells polling (~0.3 s) from sleeping
 * (~0) apart:
 *   - after RMA, famd polls; after the same RMA and fam_rest it sleeps,
 *     and the next operations (which wake it first) give the right data;
 *   - a REST from one client while another woke famd within the spin
 *     leaves famd polling, and the other client's data path works.
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

/* famd's CPU seconds over the next `secs` seconds. */
static double famd_cpu_over(double secs)
{
    double c0 = proc_cpu_s(srv.pid);
    sleep_s(secs);
    return proc_cpu_s(srv.pid) - c0;
}

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
    fam_release(db);
    fam_deallocate(a, da);
    fam_destroy_region(a, region);
    fam_finalize(b);
    fam_finalize(a);
    famd_stop(&srv);
    return 0;
}

static void test_a_rest_lets_famd_sleep_at_once(void **state)
{
    (void)state;
    rma(a, da, 1);
    double polling = famd_cpu_over(0.3);
    rma(a, da, 2);
    CHECK_OK(fam_rest(a));
    double resting = famd_cpu_over(0.3);
    printf("famd CPU over 0.3 s after RMA: %.2f s; after RMA and fam_rest: %.2f s\n",
           polling, resting);
    if (polling < 0.15)
        fail_msg("famd used %.2f s of CPU in the 0.3 s after a client's RMA: it should "
                 "poll for its 400 ms spin (the test cannot tell resting apart)", polling);
    if (resting > 0.05)
        fail_msg("famd used %.2f s of CPU in the 0.3 s after fam_rest: it kept polling",
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
    rma(b, db, 5); /* b woke famd: famd owes it 400 ms of polling */
    rma(a, da, 6);
    CHECK_OK(fam_rest(a));
    double owed = famd_cpu_over(0.15);
    printf("famd CPU over 0.15 s after a's fam_rest, b awake: %.2f s\n", owed);
    if (owed < 0.07)
        fail_msg("famd used only %.2f s of CPU in the 0.15 s after one client's REST "
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_rest_lets_famd_sleep_at_once),
        cmocka_unit_test(test_a_rest_leaves_famd_polling_for_another_client),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
