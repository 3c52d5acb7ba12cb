/* SPDX-License-Identifier: Apache-2.0 */
/* test_mixed_providers.c — one client, two providers at once (issue 16):
 * run by tests/netns/netns.py on namespace host 0, which runs one famd
 * itself (shm) and reaches a second famd on host 1 (tcp). With no provider
 * forced, libfam must pick shm for its own host's famd and tcp for the
 * other, and a FAM item striped over both must behave as one: put/get,
 * strided and indexed gather/scatter, single and bulk atomics, each
 * checked against the same done to a local C array. Forcing shm with the
 * remote famd listed is a clear error. Exits 77 (ctest: skipped) when not
 * run by netns.py. */
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

static struct famd_proc srv[2]; /* 0: on this host (shm), 1: on host 1 (tcp) */
static char list[256];          /* both, as a client lists them */
static fam_t *f;
static fam_region_t *r;

/* Host i of KDK_NETNS_HOSTS ("ns0=addr0,ns1=addr1,..."): its namespace
 * and address. */
static int netns_host(int i, char *ns, size_t nslen, char *addr, size_t alen)
{
    const char *env = getenv("KDK_NETNS_HOSTS");
    char copy[1024], *save = NULL;
    snprintf(copy, sizeof copy, "%s", env ? env : "");
    int k = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save), k++) {
        char *eq = strchr(t, '=');
        if (k != i || !eq) continue;
        *eq = '\0';
        snprintf(ns, nslen, "%s", t);
        snprintf(addr, alen, "%s", eq + 1);
        return 0;
    }
    return -1;
}

static int setup(void **state)
{
    (void)state;
    char ns0[64], a0[32], ns1[64], a1[32], pool[300];
    unsetenv("FAM_PROVIDER"); /* the choice under test is libfam's own */
    if (netns_host(0, ns0, sizeof ns0, a0, sizeof a0) ||
        netns_host(1, ns1, sizeof ns1, a1, sizeof a1)) {
        fprintf(stderr, "need two hosts in KDK_NETNS_HOSTS\n");
        return -1;
    }
    snprintf(pool, sizeof pool, "%s/here.pool", test_tmpdir());
    /* this host's famd serves on this host's bridge address, as on a
     * cluster node; a pool file, so that a shared_memory client maps it */
    if (famd_start_at(&srv[0], 32 << 20, pool, NULL, a0, "shm") ||
        famd_start_at(&srv[1], 32 << 20, NULL, ns1, a1, "tcp"))
        return -1;
    snprintf(list, sizeof list, "%s,%s", srv[1].addr, srv[0].addr);
    fam_options_t o = {.servers = list, .timeout_ms = 10000};
    if (fam_initialize(&o, &f)) {
        fprintf(stderr, "fam_initialize(%s): %s\n", list, fam_last_error());
        return -1;
    }
    return test_striped_region(f, "mixed", 8 << 20, &r);
}

static int teardown(void **state)
{
    (void)state;
    test_teardown(f, r, srv, 2);
    return 0;
}

/* Which of f's servers (numbered by libfam) is famd p. */
static int index_of(fam_t *g, const struct famd_proc *p)
{
    for (int i = 0; i < fam_num_servers(g); i++) {
        fam_server_info_t si;
        CHECK_OK(fam_server_info(g, i, &si));
        char a[300];
        snprintf(a, sizeof a, "%s:%d", si.host, si.port);
        if (strcmp(a, p->addr) == 0) return i;
    }
    fail_msg("%s is not among the client's servers", p->addr);
    return -1;
}

static void shm_here_tcp_there(void **state)
{
    (void)state;
    assert_int_equal(fam_num_servers(f), 2);
    fam_server_info_t here, there;
    CHECK_OK(fam_server_info(f, index_of(f, &srv[0]), &here));
    CHECK_OK(fam_server_info(f, index_of(f, &srv[1]), &there));
    assert_string_equal(here.provider, "shm");
    assert_int_equal(here.local, 1);
    assert_int_equal(here.mapped, 0); /* memory_server model: no mapping */
    assert_string_equal(there.provider, "tcp");
    assert_int_equal(there.local, 0);
    assert_int_equal(there.mapped, 0);
    assert_string_equal(fam_server_provider(f, index_of(f, &srv[0])), "shm");
    assert_string_equal(fam_server_provider(f, index_of(f, &srv[1])), "tcp");
    assert_null(fam_server_provider(f, 2));
    assert_int_equal(fam_server_info(f, 2, &here), FAM_EINVAL);
}

/* An item striped over both servers (4 KiB stripes: every other stripe on
 * the other host) behaves as one array: each operation is done on a local
 * copy too and the two compared. */
static void striped_item_over_both(void **state)
{
    (void)state;
    enum { N = 1 << 16 }; /* int64 elements: 512 KiB, 128 stripes */
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "arr", N * 8, 0600, r, &d));
    int64_t *ref = malloc(N * 8), *got = malloc(N * 8);
    assert_non_null(ref);
    assert_non_null(got);
    for (int64_t i = 0; i < N; i++) ref[i] = i * 3 - 1000;
    CHECK_OK(fam_put_blocking(f, ref, d, 0, N * 8));

    /* strided: every 5th element from 3, read then rewritten */
    enum { NS = (N - 3) / 5 };
    static int64_t st[NS];
    CHECK_OK(fam_gather_blocking_stride(f, st, d, NS, 3, 5, 8));
    for (int i = 0; i < NS; i++) assert_true(st[i] == ref[3 + 5 * i]);
    for (int i = 0; i < NS; i++) st[i] = -(int64_t)i;
    CHECK_OK(fam_scatter_blocking_stride(f, st, d, NS, 3, 5, 8));
    for (int i = 0; i < NS; i++) ref[3 + 5 * i] = -(int64_t)i;

    /* indexed, with duplicates: the last value of an index wins */
    enum { NI = 5000 };
    static uint64_t idx[NI];
    static int64_t v[NI], back[NI];
    for (int i = 0; i < NI; i++) {
        idx[i] = (uint64_t)((i * 7919) % 3000) * 17 % N;
        v[i] = 1000000 + i;
    }
    CHECK_OK(fam_scatter_blocking_index(f, v, d, NI, idx, 8));
    for (int i = 0; i < NI; i++) ref[idx[i]] = v[i];
    CHECK_OK(fam_gather_blocking_index(f, back, d, NI, idx, 8));
    for (int i = 0; i < NI; i++) assert_true(back[i] == ref[idx[i]]);

    /* bulk atomics with duplicates, old values for the first of each */
    static int64_t add[NI], old[NI];
    for (int i = 0; i < NI; i++) add[i] = i % 13 - 6;
    CHECK_OK(fam_atomic_index(f, d, FAM_AOP_ADD, FAM_INT64, NI, idx, add, old));
    for (int i = 0; i < NI; i++) ref[idx[i]] += add[i];
    CHECK_OK(fam_atomic_index(f, d, FAM_AOP_MAX, FAM_INT64, NI, idx, v, NULL));
    for (int i = 0; i < NI; i++)
        if (v[i] > ref[idx[i]]) ref[idx[i]] = v[i];

    /* single atomics on cells of both servers' stripes */
    for (int k = 0; k < 64; k++) {
        uint64_t cell = (uint64_t)k * 512 + (uint64_t)k; /* stripe k */
        int64_t o;
        CHECK_OK(fam_fetch_add_int64(f, d, cell * 8, k + 1, &o));
        assert_true(o == ref[cell]);
        ref[cell] += k + 1;
        CHECK_OK(fam_compare_swap_int64(f, d, cell * 8, ref[cell], -k, &o));
        assert_true(o == ref[cell]);
        ref[cell] = -k;
    }

    /* non-blocking pieces on both hosts, then one quiet */
    for (int64_t i = 0; i < 4096; i++) ref[N - 4096 + i] = i * i;
    for (int p = 0; p < 8; p++)
        CHECK_OK(fam_put_nonblocking(f, ref + N - 4096 + p * 512, d,
                                     (uint64_t)(N - 4096 + p * 512) * 8, 4096));
    CHECK_OK(fam_quiet(f));

    memset(got, 0, N * 8);
    CHECK_OK(fam_get_blocking(f, got, d, 0, N * 8));
    assert_memory_equal(ref, got, N * 8);

    /* the item really is on both: each server holds half the stripes */
    fam_stat_t s;
    CHECK_OK(fam_stat(f, d, &s));
    assert_int_equal(s.num_servers, 2);
    free(ref);
    free(got);
    fam_deallocate(f, d);
}

/* A second client in the shared_memory model maps this host's pool (the
 * fast path) and still reaches the other over tcp; it sees what the first
 * wrote, and the first sees what it writes through the mapping. */
static void fast_path_here_tcp_there(void **state)
{
    (void)state;
    fam_item_t *d, *e;
    enum { N = 8192 };
    static uint32_t a[N], b[N];
    CHECK_OK(fam_allocate(f, "shared", N * 4, 0600, r, &d));
    for (uint32_t i = 0; i < N; i++) a[i] = i * 2654435761u;
    CHECK_OK(fam_put_blocking(f, a, d, 0, sizeof a));

    fam_options_t o = {.servers = list, .timeout_ms = 10000,
                       .model = "shared_memory"};
    fam_t *g = NULL;
    CHECK_OK(fam_initialize(&o, &g));
    fam_server_info_t here, there;
    CHECK_OK(fam_server_info(g, index_of(g, &srv[0]), &here));
    CHECK_OK(fam_server_info(g, index_of(g, &srv[1]), &there));
    assert_int_equal(here.mapped, 1);
    assert_string_equal(here.provider, "shm");
    assert_int_equal(there.mapped, 0);
    assert_string_equal(there.provider, "tcp");
    assert_int_equal(fam_num_local_servers(g), 1);

    CHECK_OK(fam_lookup(g, "shared", "mixed", &e));
    CHECK_OK(fam_get_blocking(g, b, e, 0, sizeof b));
    assert_memory_equal(a, b, sizeof a);
    for (uint32_t i = 0; i < N; i += 3) {
        CHECK_OK(fam_add_uint32(g, e, i * 4, 5));
        a[i] += 5;
    }
    CHECK_OK(fam_get_blocking(f, b, d, 0, sizeof b));
    assert_memory_equal(a, b, sizeof a);
    fam_release(e);
    fam_finalize(g);
    fam_deallocate(f, d);
}

/* A forced provider is used for every server: shm with a server on
 * another host is refused, naming it; tcp with this host's famd, which
 * serves shm only, is refused by famd, naming the providers. */
static void forcing_a_provider(void **state)
{
    (void)state;
    fam_options_t o = {.servers = list, .provider = "shm", .timeout_ms = 5000};
    fam_t *g = NULL;
    assert_int_equal(fam_initialize(&o, &g), FAM_EINVAL);
    assert_null(g);
    assert_non_null(strstr(fam_last_error(), "is on another host"));
    assert_non_null(strstr(fam_last_error(), srv[1].host));

    o.provider = "tcp";
    assert_int_equal(fam_initialize(&o, &g), FAM_ENOTSUP);
    assert_null(g);
    assert_non_null(strstr(fam_last_error(), "'shm' provider"));

    o.servers = srv[1].addr; /* tcp alone to the other host: fine */
    CHECK_OK(fam_initialize(&o, &g));
    assert_string_equal(fam_server_provider(g, 0), "tcp");
    fam_finalize(g);
}

int main(void)
{
    if (!getenv("KDK_NETNS_HOSTS")) {
        printf("SKIP: run by tests/netns/netns.py (network-namespace hosts)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shm_here_tcp_there),
        cmocka_unit_test(striped_item_over_both),
        cmocka_unit_test(fast_path_here_tcp_there),
        cmocka_unit_test(forcing_a_provider),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
