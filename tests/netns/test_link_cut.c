/* SPDX-License-Identifier: Apache-2.0 */
/* test_link_cut.c — a memory host's link cut in the middle of a scatter
 * (`ip link set eth0 down` in its namespace): the client gets an error
 * within its timeout (fam_options_t.timeout_ms; 30 s by default, 8 s
 * here) plus a little, never a hang; when the link comes back the same
 * client (same fam_t, same item descriptor) carries on, and what it then
 * writes and reads back matches a local array. Run by tests/netns/netns.py
 * (exits 77, ctest: skipped, otherwise). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"

enum { TIMEOUT_MS = 8000, N = 1 << 20 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void set_link(const char *ns, const char *state)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "/usr/sbin/ip -n %s link set eth0 %s", ns, state);
    assert_int_equal(system(cmd), 0);
}

static void link_cut_mid_scatter_errors_in_time_and_recovers(void **state)
{
    (void)state;
    struct famd_proc srv;
    assert_int_equal(famd_start(&srv, 128 << 20, NULL), 0);
    fam_options_t o = {.servers = srv.addr, .provider = test_provider(),
                       .timeout_ms = TIMEOUT_MS};
    fam_t *f = NULL;
    CHECK_OK(fam_initialize(&o, &f));
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "cut", 64 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "cells", (uint64_t)N * 8, 0600, r, &d));
    int64_t *val = malloc((size_t)N * 8), *back = malloc((size_t)N * 8);
    uint64_t *idx = malloc((size_t)N * 8);
    for (uint64_t i = 0; i < N; i++) {
        idx[i] = (i * 7919) % N; /* a permutation: N is a power of 2 */
        val[i] = (int64_t)(i * 3 + 1);
    }
    CHECK_OK(fam_scatter_blocking_index(f, val, d, N, idx, 8));

    /* cut the link a moment after the scatters start */
    pid_t cutter = fork();
    if (cutter == 0) {
        usleep(300000);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "/usr/sbin/ip -n %s link set eth0 down",
                 srv.ns);
        _exit(system(cmd) == 0 ? 0 : 1);
    }
    double t0 = now_s();
    int rc = 0, rounds = 0;
    while (rc == 0 && now_s() - t0 < 120) {
        rc = fam_scatter_blocking_index(f, val, d, N, idx, 8);
        rounds++;
    }
    double took = now_s() - t0;
    int st;
    waitpid(cutter, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("# link cut: error after %.1f s (%d scatters): %s\n", took, rounds,
           fam_last_error());
    assert_true(rc < 0);
    assert_true(took < TIMEOUT_MS / 1000.0 + 0.3 + 10.0);

    /* link back: the same client carries on (the first tries may still
     * fail while the connection is rebuilt) */
    set_link(srv.ns, "up");
    double t1 = now_s();
    int ok = 0;
    while (!ok && now_s() - t1 < 60) {
        for (uint64_t i = 0; i < N; i++) val[i] = -(int64_t)i;
        ok = fam_scatter_blocking_index(f, val, d, N, idx, 8) == 0;
        if (!ok) usleep(200000);
    }
    printf("# link back: carried on after %.1f s\n", now_s() - t1);
    assert_true(ok);
    memset(back, 0, (size_t)N * 8);
    CHECK_OK(fam_get_blocking(f, back, d, 0, (uint64_t)N * 8));
    for (uint64_t i = 0; i < N; i++) assert_true(back[idx[i]] == val[i]);
    CHECK_OK(fam_deallocate(f, d));
    CHECK_OK(fam_destroy_region(f, r));
    fam_finalize(f);
    /* SIGKILL, not SIGTERM: after such an outage famd sometimes crashes
     * in libfabric's fi_close of its tcp;ofi_rxm endpoint while stopping
     * (libfabric 1.17; reported, not fixed here), and famd_stop would fail
     * this test for what it does not test */
    famd_kill9(&srv);
    free(val);
    free(back);
    free(idx);
}

int main(void)
{
    if (!getenv("KDK_NETNS_HOSTS")) {
        printf("SKIP: run by tests/netns/netns.py (network-namespace hosts)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(link_cut_mid_scatter_errors_in_time_and_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
