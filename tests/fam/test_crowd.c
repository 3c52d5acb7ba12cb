/* SPDX-License-Identifier: Apache-2.0 */
/* test_crowd.c — fam_crowd.h, which tells libfam's waiters and famd's
 * polling loop whether to give their core away: the /proc/loadavg parser
 * on good and bad text, and the live reading on a machine made crowded on
 * purpose (more busy child processes than cores). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fam_crowd.h"

static void parse_counts_runnable_tasks_against_cores(void **state)
{
    (void)state;
    assert_int_equal(fam_crowd_parse("0.82 1.50 1.56 3/180 12345\n", 2), 1);
    assert_int_equal(fam_crowd_parse("0.82 1.50 1.56 2/180 12345\n", 2), 0);
    assert_int_equal(fam_crowd_parse("0.00 0.00 0.00 1/86 14795\n", 2), 0);
    assert_int_equal(fam_crowd_parse("9.00 9.00 9.00 17/300 1\n", 16), 1);
    assert_int_equal(fam_crowd_parse("9.00 9.00 9.00 16/300 1\n", 16), 0);
}

static void parse_of_bad_text_says_crowded(void **state)
{
    (void)state;
    assert_int_equal(fam_crowd_parse("", 2), 1);
    assert_int_equal(fam_crowd_parse("0.82 1.50 1.56", 2), 1);
    assert_int_equal(fam_crowd_parse("0.82 1.50 1.56 x/180 1", 2), 1);
    assert_int_equal(fam_crowd_parse("0.82 1.50 1.56 3 1", 2), 1);
    assert_int_equal(fam_crowd_parse("0.82 1.50 1.56 -1/180 1", 2), 1);
    /* no core count known: one core */
    assert_int_equal(fam_crowd_parse("0 0 0 1/10 1", 0), 0);
    assert_int_equal(fam_crowd_parse("0 0 0 2/10 1", 0), 1);
}

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void busy_children_make_the_machine_crowded(void **state)
{
    (void)state;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nkids = (int)(2 * ncpu + 2);
    /* the first look opens /proc/loadavg and keeps it open: the looks
     * below read the kept file again, and must see the busy children */
    (void)fam_crowd_read();
    pid_t kids[nkids];
    for (int i = 0; i < nkids; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            alarm(20); /* never outlive the test */
            for (volatile unsigned long x = 0;; x++) {}
        }
    }
    usleep(100000);
    /* the count is a snapshot: ask a few times, a millisecond apart */
    struct fam_crowd c = {0};
    int seen = 0;
    for (int i = 0; i < 50 && !seen; i++) {
        seen = fam_crowd_read();
        usleep(1000);
    }
    /* fam_crowded keeps its answer for a millisecond, then reads again */
    (void)fam_crowded(&c, now_us());
    uint64_t checked = c.checked_us;
    (void)fam_crowded(&c, checked + 10);
    assert_int_equal(c.checked_us, checked);
    (void)fam_crowded(&c, checked + 1000);
    assert_int_equal(c.checked_us, checked + 1000);
    for (int i = 0; i < nkids; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    assert_int_equal(seen, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_counts_runnable_tasks_against_cores),
        cmocka_unit_test(parse_of_bad_text_says_crowded),
        cmocka_unit_test(busy_children_make_the_machine_crowded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
