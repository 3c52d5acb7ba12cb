/* SPDX-License-Identifier: Apache-2.0 */
/* test_concurrency.c — many processes and threads on the same items:
 * fetch_add gives the exact total, a compare_swap spin lock protects a
 * plain read-modify-write, and a shared fam_t is safe across threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"

static struct famd_proc srv;

static int setup(void **state)
{
    (void)state;
    return famd_start(&srv, 64 << 20, NULL);
}

static int teardown(void **state)
{
    (void)state;
    famd_stop(&srv);
    return 0;
}

/* Run `body(id)` in `n` child processes, each with its own connection;
 * returns the number of children that failed. */
static int in_processes(int n, void (*body)(fam_t *, int))
{
    for (int i = 0; i < n; i++) {
        if (fork() == 0) {
            fam_t *f = client(srv.addr);
            if (!f) _exit(2);
            body(f, i);
            _exit(fam_finalize(f) == 0 ? 0 : 3);
        }
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int st;
        wait(&st);
        bad += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    return bad;
}

enum { PROCS = 4, ADDS = 100000, LOCKED = 2000 };

static void adder(fam_t *f, int id)
{
    (void)id;
    fam_item_t *c;
    if (fam_lookup(f, "counter", "conc", &c)) _exit(4);
    for (int i = 0; i < ADDS; i++) {
        int64_t old;
        if (fam_fetch_add_int64(f, c, 0, 1, &old)) _exit(5);
    }
    fam_release(c);
}

static void four_processes_fetch_add_give_the_exact_total(void **state)
{
    (void)state;
    fam_t *f = client(srv.addr);
    fam_region_t *r;
    fam_item_t *c;
    CHECK_OK(fam_create_region(f, "conc", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "counter", 8, 0600, r, &c));
    assert_int_equal(in_processes(PROCS, adder), 0);
    int64_t total;
    CHECK_OK(fam_fetch_int64(f, c, 0, &total));
    assert_int_equal(total, (int64_t)PROCS * ADDS);
    CHECK_OK(fam_destroy_region(f, r));
    fam_release(c);
    fam_finalize(f);
}

/* Non-fetching atomics (add, set, ...) from several processes at once: a
 * shared int64, int32 and double counter, and each process's own word set
 * and added to and read back. (libfabric 1.17's shm lost and garbled plain
 * fi_atomic updates from two or more processes, and could crash famd.) */
enum { PLAIN = 5000 };

static void plain_updater(fam_t *f, int id)
{
    fam_item_t *c;
    if (fam_lookup(f, "plain", "plainr", &c)) _exit(4);
    uint64_t own = 64 + 8 * (uint64_t)id;
    for (int i = 0; i < PLAIN; i++) {
        int64_t back;
        if (fam_add_int64(f, c, 0, 1) || fam_add_int32(f, c, 8, 2) ||
            fam_add_double(f, c, 16, 0.5) || fam_set_int64(f, c, own, i) ||
            fam_add_int64(f, c, own, 3) || fam_fetch_int64(f, c, own, &back))
            _exit(5);
        if (back != i + 3) _exit(6);
    }
    fam_release(c);
}

static void processes_doing_plain_atomics_lose_no_update(void **state)
{
    (void)state;
    fam_t *f = client(srv.addr);
    fam_region_t *r;
    fam_item_t *c;
    CHECK_OK(fam_create_region(f, "plainr", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "plain", 64 + 8 * PROCS, 0600, r, &c));
    assert_int_equal(in_processes(PROCS, plain_updater), 0);
    int64_t total;
    int32_t total32;
    double totald;
    CHECK_OK(fam_fetch_int64(f, c, 0, &total));
    CHECK_OK(fam_fetch_int32(f, c, 8, &total32));
    CHECK_OK(fam_fetch_double(f, c, 16, &totald));
    assert_int_equal(total, (int64_t)PROCS * PLAIN);
    assert_int_equal(total32, 2 * PROCS * PLAIN);
    assert_true(totald == 0.5 * PROCS * PLAIN);
    CHECK_OK(fam_destroy_region(f, r));
    fam_release(c);
    fam_finalize(f);
}

/* Lock word at offset 0, a sum at offset 8 updated with plain get/put:
 * only the lock keeps increments from being lost. */
static void locker(fam_t *f, int id)
{
    fam_item_t *d;
    if (fam_lookup(f, "guarded", "lock", &d)) _exit(4);
    for (int i = 0; i < LOCKED; i++) {
        int64_t old;
        do {
            if (fam_compare_swap_int64(f, d, 0, 0, id + 1, &old)) _exit(5);
        } while (old != 0);
        int64_t sum;
        if (fam_get_blocking(f, &sum, d, 8, 8)) _exit(6);
        sum += 1;
        if (fam_put_blocking(f, &sum, d, 8, 8)) _exit(7);
        if (fam_compare_swap_int64(f, d, 0, id + 1, 0, &old) || old != id + 1) _exit(8);
    }
    fam_release(d);
}

static void compare_swap_spin_lock_protects_a_shared_sum(void **state)
{
    (void)state;
    fam_t *f = client(srv.addr);
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "lock", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "guarded", 16, 0600, r, &d));
    assert_int_equal(in_processes(PROCS, locker), 0);
    int64_t v[2];
    CHECK_OK(fam_get_blocking(f, v, d, 0, 16));
    assert_int_equal(v[0], 0);
    assert_int_equal(v[1], (int64_t)PROCS * LOCKED);
    CHECK_OK(fam_destroy_region(f, r));
    fam_release(d);
    fam_finalize(f);
}

struct thr { fam_t *f; fam_item_t *d; int id; int bad; };

static void *thread_body(void *p)
{
    struct thr *t = p;
    int64_t mine[512];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 512; i++) mine[i] = t->id * 1000000 + round * 1000 + i;
        uint64_t off = (uint64_t)t->id * sizeof mine;
        if (fam_put_blocking(t->f, mine, t->d, off, sizeof mine)) t->bad++;
        int64_t back[512];
        if (fam_get_blocking(t->f, back, t->d, off, sizeof back)) t->bad++;
        if (memcmp(back, mine, sizeof mine)) t->bad++;
        int64_t old;
        if (fam_fetch_add_int64(t->f, t->d, 8 * 512 * 8, 1, &old)) t->bad++;
    }
    return NULL;
}

static void threads_share_one_connection_safely(void **state)
{
    (void)state;
    fam_t *f = client(srv.addr);
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "threads", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "t", 8 * 512 * 8 + 8, 0600, r, &d));
    pthread_t th[8];
    struct thr t[8];
    for (int i = 0; i < 8; i++) {
        t[i] = (struct thr){f, d, i, 0};
        pthread_create(&th[i], NULL, thread_body, &t[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].bad, 0);
    }
    int64_t n;
    CHECK_OK(fam_fetch_int64(f, d, 8 * 512 * 8, &n));
    assert_int_equal(n, 8 * 50);
    CHECK_OK(fam_destroy_region(f, r));
    fam_release(d);
    fam_finalize(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(processes_doing_plain_atomics_lose_no_update),
        cmocka_unit_test(four_processes_fetch_add_give_the_exact_total),
        cmocka_unit_test(compare_swap_spin_lock_protects_a_shared_sum),
        cmocka_unit_test(threads_share_one_connection_safely),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
