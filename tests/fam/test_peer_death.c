/* SPDX-License-Identifier: Apache-2.0 */
/* test_peer_death.c — famd outlives clients killed with SIGKILL in the
 * middle of atomics, and keeps its data.
 *
 * Seen before the fix: over shm, famd died (SIGSEGV inside libfabric, in
 * famd's reply sending and in its progress loop) within 10 rounds of 4
 * clients killed with -9 while they ran atomics, and a famd with a
 * volatile pool lost everything. Here 40 rounds: each round starts 4
 * client processes that hammer one item with one-sided fetching and
 * non-fetching atomics and with bulk (indexed) atomics, whose replies famd
 * sends back over the fabric; once every client is in full swing (and
 * after a random few milliseconds more), all 4 are killed with SIGKILL at
 * once. famd must be alive after every round, a new client must connect
 * and do atomics every 10 rounds, and at the end an item holding a known
 * pattern, written before the first round, must read back unchanged.
 *
 * The clients are this program run again (argv[1] = "--hammer"), so that
 * nothing of the parent's libfabric state is inherited by a fork. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

#define ROUNDS 40 /* 4x the rounds the bug needed; 100 took 65-70 s of the suite */
#define CLIENTS 4
#define PSIZE (1u << 20) /* the pattern item */
#define CSIZE 4096u      /* the counters the clients hammer */

static struct famd_proc srv;
static char self[4096]; /* this program, for the clients */

static uint8_t pattern_byte(size_t i) { return (uint8_t)((i * 131u) ^ (i >> 9)); }

/* ---- a client: atomics until killed ---------------------------------------- */

static int hammer(const char *addr, int ready_fd)
{
    fam_t *f = client(addr);
    if (!f) return 1;
    fam_item_t *d;
    if (fam_lookup(f, "ctr", "death", &d)) {
        fprintf(stderr, "hammer: %s\n", fam_last_error());
        return 1;
    }
    uint64_t idx[64], vals[64], old[64];
    for (int i = 0; i < 64; i++) {
        idx[i] = (uint64_t)(i * 7) % (CSIZE / 8);
        vals[i] = 1;
    }
    for (uint64_t k = 0;; k++) {
        uint64_t o;
        int rc = fam_fetch_add_uint64(f, d, 8 * (k % 64), 1, &o);
        if (!rc) rc = fam_add_uint64(f, d, 8 * ((k + 5) % 64), 1);
        if (!rc) rc = fam_compare_swap_uint64(f, d, 8 * 100, o, o + 1, &o);
        /* bulk: famd answers each with messages sent to us */
        if (!rc) rc = fam_atomic_index(f, d, FAM_AOP_ADD, FAM_UINT64, 64, idx,
                                       vals, (k & 1) ? old : NULL);
        if (rc) {
            fprintf(stderr, "hammer: %s\n", fam_last_error());
            return 1;
        }
        if (k == 3 && write(ready_fd, "r", 1) != 1) return 1;
    }
}

/* ---- the test ---------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 64 << 20, NULL) != 0) return -1;
    fam_t *f = client(srv.addr);
    if (!f) return -1;
    fam_region_t *r;
    fam_item_t *p, *c;
    uint8_t *buf = malloc(PSIZE);
    for (size_t i = 0; i < PSIZE; i++) buf[i] = pattern_byte(i);
    int rc = !buf || fam_create_region(f, "death", 8 << 20, 0600, NULL, &r) ||
             fam_allocate(f, "pattern", PSIZE, 0600, r, &p) ||
             fam_put_blocking(f, buf, p, 0, PSIZE) ||
             fam_allocate(f, "ctr", CSIZE, 0600, r, &c);
    if (rc) fprintf(stderr, "setup: %s\n", fam_last_error());
    free(buf);
    fam_release(p);
    fam_release(c);
    fam_release_region(r);
    fam_finalize(f);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    famd_stop(&srv); /* fails the program unless famd exits cleanly */
    return 0;
}

static void assert_famd_alive(int round)
{
    int st;
    pid_t w = waitpid(srv.pid, &st, WNOHANG);
    if (w == srv.pid)
        fail_msg("famd died in round %d: %s %d", round,
                 WIFSIGNALED(st) ? "signal" : "exit status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    assert_int_equal(w, 0);
}

/* A new client connects, runs atomics, and finds the pattern intact. */
static void assert_famd_serves(int round, int check_pattern)
{
    fam_t *f = client(srv.addr);
    if (!f) fail_msg("round %d: no client: %s", round, fam_last_error());
    fam_item_t *c, *p;
    CHECK_OK(fam_lookup(f, "ctr", "death", &c));
    uint64_t before, after;
    CHECK_OK(fam_fetch_add_uint64(f, c, 8 * 200, 5, &before));
    uint64_t idx = 200, v = 2;
    CHECK_OK(fam_atomic_index(f, c, FAM_AOP_ADD, FAM_UINT64, 1, &idx, &v, NULL));
    CHECK_OK(fam_fetch_uint64(f, c, 8 * 200, &after));
    assert_true(after == before + 7); /* slot 200 is the checker's alone */
    if (check_pattern) {
        uint8_t *buf = malloc(PSIZE);
        assert_non_null(buf);
        CHECK_OK(fam_lookup(f, "pattern", "death", &p));
        CHECK_OK(fam_get_blocking(f, buf, p, 0, PSIZE));
        for (size_t i = 0; i < PSIZE; i++)
            if (buf[i] != pattern_byte(i))
                fail_msg("round %d: pattern byte %zu is %u, was %u", round, i,
                         buf[i], pattern_byte(i));
        free(buf);
        fam_release(p);
    }
    fam_release(c);
    fam_finalize(f);
}

/* FAM_TEST_PAUSE=1: on a failure, wait a minute for a look with gdb */
static void pause_to_look(const pid_t *pid)
{
    if (!getenv("FAM_TEST_PAUSE")) return;
    fprintf(stderr, "famd %d, clients %d %d %d %d\n", (int)srv.pid,
            (int)pid[0], (int)pid[1], (int)pid[2], (int)pid[3]);
    sleep(60);
}

static void clients_killed_during_atomics_leave_famd_and_its_data(void **state)
{
    (void)state;
    unsigned seed = (unsigned)time(NULL);
    const char *s = getenv("FAM_TEST_SEED");
    if (s && *s) seed = (unsigned)strtoul(s, NULL, 0);
    srand(seed);
    print_message("seed %u (FAM_TEST_SEED replays it)\n", seed);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 1; round <= ROUNDS; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid[CLIENTS];
        for (int i = 0; i < CLIENTS; i++) {
            pid[i] = fork();
            assert_true(pid[i] >= 0);
            if (pid[i] == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(fds[0]);
                char fd[16];
                snprintf(fd, sizeof fd, "%d", fds[1]);
                execl(self, self, "--hammer", srv.addr, fd, (char *)NULL);
                _exit(127);
            }
        }
        close(fds[1]);
        /* every client is doing atomics (or one failed: the pipe closes) */
        int ready = 0;
        while (ready < CLIENTS) {
            struct pollfd p = {fds[0], POLLIN, 0};
            if (poll(&p, 1, 20000) != 1) {
                pause_to_look(pid);
                fail_msg("round %d: clients hang", round);
            }
            char c;
            if (read(fds[0], &c, 1) != 1) break;
            ready++;
        }
        close(fds[0]);
        if (ready < CLIENTS) {
            pause_to_look(pid);
            for (int i = 0; i < CLIENTS; i++) kill(pid[i], SIGKILL);
            fail_msg("round %d: a client failed before it was killed", round);
        }
        usleep((useconds_t)(rand() % 5000));
        for (int i = 0; i < CLIENTS; i++) kill(pid[i], SIGKILL);
        for (int i = 0; i < CLIENTS; i++) {
            int st;
            assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
            if (!WIFSIGNALED(st))
                fail_msg("round %d: client %d ended by itself (status 0x%x)",
                         round, i, st);
        }
        assert_famd_alive(round);
        if (round % 10 == 0) assert_famd_serves(round, round == ROUNDS);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("%d rounds of %d clients killed in %.1f s\n", ROUNDS, CLIENTS,
                  (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    assert_famd_alive(ROUNDS);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--hammer") == 0)
        return hammer(argv[2], atoi(argv[3]));
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clients_killed_during_atomics_leave_famd_and_its_data),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
