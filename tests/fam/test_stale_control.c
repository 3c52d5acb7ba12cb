/* SPDX-License-Identifier: Apache-2.0 */
/* test_stale_control.c — a control connection that famd closed while the
 * client was idle is connected again before the next request, and error
 * messages built from an earlier one do not repeat themselves.
 *
 * A client keeps its control connection to famd between calls. When famd
 * stops and starts again on the same port and pool file, that connection
 * is dead: libfam used to send the next request on it, fail it ("closed
 * the connection") and reconnect only for the one after. Now it sees the
 * close before sending, so the very first call after the restart works:
 * for a clean stop and for kill -9, for lookups, stats, allocations and
 * then data.
 *
 * fam_fail(..., "...: %s", fam_last_error()) formatted the thread's error
 * buffer into itself (undefined; seen as a message repeated three times).
 * With one of two famds of an interleaved region down, the lookup error
 * names the missing server's failure exactly once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

enum { N = 64 << 10 };

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed + i * 7);
}

/* famd on a pool file; a client writes; famd restarts (hard: kill -9);
 * every first call afterwards works, with no retry. */
static void first_call_after_restart_works(int hard, int data_first)
{
    struct famd_proc srv;
    char path[300];
    snprintf(path, sizeof path, "%s/pool-stale-%d-%d", test_tmpdir(), hard, data_first);
    assert_int_equal(famd_start(&srv, 64 << 20, path), 0);
    fam_t *f = client(srv.addr);
    assert_non_null(f);
    uint8_t *data = malloc(N), *back = malloc(N);
    fill(data, N, 3 + (unsigned)hard);
    fam_region_t *r;
    fam_item_t *a;
    CHECK_OK(fam_create_region(f, "stale", 8 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "a", N, 0600, r, &a));
    CHECK_OK(fam_put_blocking(f, data, a, 0, N));

    if (hard) famd_kill9(&srv); else famd_stop(&srv);
    assert_int_equal(famd_restart(&srv, 64 << 20), 0);

    if (data_first) {
        /* a data call first, on the descriptor from before the restart */
        memset(back, 0, N);
        if (fam_get_blocking(f, back, a, 0, N) != 0)
            fail_msg("first data call after a famd restart failed: %s", fam_last_error());
        assert_memory_equal(data, back, N);
    }

    /* the very first request goes on a new connection */
    fam_region_t *r2;
    if (fam_lookup_region(f, "stale", &r2) != 0)
        fail_msg("first call after a famd restart failed: %s", fam_last_error());
    fam_item_t *b;
    CHECK_OK(fam_lookup(f, "a", "stale", &b));
    fam_stat_t st;
    CHECK_OK(fam_stat(f, b, &st));
    assert_int_equal(st.size, N);
    CHECK_OK(fam_get_blocking(f, back, b, 0, N));
    assert_memory_equal(data, back, N);
    fam_item_t *c;
    CHECK_OK(fam_allocate(f, "c", 4096, 0600, r2, &c));
    CHECK_OK(fam_set_int64(f, c, 0, 77));
    int64_t v = 0;
    CHECK_OK(fam_fetch_add_int64(f, c, 0, 1, &v));
    assert_int_equal(v, 77);

    /* and once more: a second restart, a second first call */
    famd_stop(&srv);
    assert_int_equal(famd_restart(&srv, 64 << 20), 0);
    if (fam_stat_region(f, r2, &st) != 0)
        fail_msg("first call after a second restart failed: %s", fam_last_error());
    assert_int_equal(st.size, 8 << 20);

    fam_release(a);
    fam_release(b);
    fam_release(c);
    fam_release_region(r2);
    CHECK_OK(fam_destroy_region(f, r));
    fam_finalize(f);
    famd_stop(&srv);
    free(data);
    free(back);
}

static void first_call_after_a_clean_restart_works(void **state)
{
    (void)state;
    first_call_after_restart_works(0, 0);
}

static void first_call_after_a_kill9_restart_works(void **state)
{
    (void)state;
    first_call_after_restart_works(1, 0);
}

static void first_data_call_after_a_restart_works(void **state)
{
    (void)state;
    first_call_after_restart_works(1, 1);
}

/* The error of a lookup that meets a famd that is down says why once. */
static void errors_built_from_errors_do_not_repeat(void **state)
{
    (void)state;
    struct famd_proc srv[2];
    for (int i = 0; i < 2; i++) assert_int_equal(famd_start(&srv[i], 64 << 20, NULL), 0);
    char servers[200];
    snprintf(servers, sizeof servers, "%s,%s", srv[0].addr, srv[1].addr);
    fam_t *f = client(servers);
    assert_non_null(f);
    fam_region_attr_t attr = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 4096};
    /* regions hash to a home server: make some with each home, then stop
     * famd #1, and look each one up: one of them has its home on #0, and
     * its lookup fails at #1's part */
    int fails = 0;
    char name[32];
    for (int k = 0; k < 8; k++) {
        fam_region_t *r;
        snprintf(name, sizeof name, "rep%d", k);
        CHECK_OK(fam_create_region(f, name, 1 << 20, 0600, &attr, &r));
        fam_release_region(r);
    }
    famd_stop(&srv[1]);
    for (int k = 0; k < 8; k++) {
        fam_region_t *r;
        snprintf(name, sizeof name, "rep%d", k);
        int rc = fam_lookup_region(f, name, &r);
        assert_int_not_equal(rc, 0);
        const char *msg = fam_last_error();
        char port[16];
        snprintf(port, sizeof port, ":%d", srv[1].port);
        if (count(msg, "cannot connect to memory server") != 1 ||
            count(msg, "interleaved region") > 1 || strlen(msg) > 400 ||
            !strstr(msg, port))
            fail_msg("lookup of '%s' with famd #1 down: bad message '%s'", name, msg);
        fails += count(msg, "has no part on memory server") == 1;
    }
    assert_true(fails > 0); /* some went through lookup_parts */
    fam_finalize(f);
    famd_stop(&srv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_call_after_a_clean_restart_works),
        cmocka_unit_test(first_call_after_a_kill9_restart_works),
        cmocka_unit_test(first_data_call_after_a_restart_works),
        cmocka_unit_test(errors_built_from_errors_do_not_repeat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
