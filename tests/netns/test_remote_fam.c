/* SPDX-License-Identifier: Apache-2.0 */
/* test_remote_fam.c — data moves between hosts: two famd on two other
 * network-namespace hosts (tests/netns/netns.py, tcp provider), a client
 * here. Proves the endpoint is not bound to loopback (issue 16: every
 * put, get and atomic failed with "could not be posted: Invalid argument"
 * while regions and items were created fine): put/get of every size,
 * atomics, an indexed scatter/gather and a striped item across both
 * servers, each checked against the same done to a local array. Exits 77
 * (ctest: skipped) when not run by netns.py. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fam_proto.h" /* famp_address_is_local */
#include "fixture.h"

static struct famd_proc srv[2];
static fam_t *f;
static fam_region_t *r;

static int setup(void **state)
{
    (void)state;
    char list[256];
    for (int i = 0; i < 2; i++)
        if (famd_start(&srv[i], 64 << 20, NULL) != 0) return -1;
    snprintf(list, sizeof list, "%s,%s", srv[0].addr, srv[1].addr);
    if (!(f = client(list))) return -1;
    return test_striped_region(f, "remote", 8 << 20, &r);
}

static int teardown(void **state)
{
    (void)state;
    test_teardown(f, r, srv, 2);
    return 0;
}

/* The famds are really elsewhere: on two hosts, neither of them ours. */
static void servers_are_on_other_hosts(void **state)
{
    (void)state;
    assert_string_not_equal(srv[0].host, srv[1].host);
    for (int i = 0; i < 2; i++) {
        struct in_addr a;
        assert_int_equal(inet_pton(AF_INET, srv[i].host, &a), 1);
        assert_false(famp_address_is_local(a.s_addr));
    }
    assert_int_equal(fam_num_servers(f), 2);
    assert_int_equal(fam_num_local_servers(f), 0);
}

static void put_get_every_size_on_both(void **state)
{
    (void)state;
    fam_item_t *d;
    enum { N = 1 << 20 };
    CHECK_OK(fam_allocate(f, "bytes", N, 0600, r, &d));
    unsigned char *src = malloc(N), *dst = malloc(N);
    for (size_t i = 0; i < N; i++) src[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 1; n <= N; n *= 4) {
        memset(dst, 0, n);
        CHECK_OK(fam_put_blocking(f, src, d, 0, n));
        CHECK_OK(fam_get_blocking(f, dst, d, 0, n));
        assert_memory_equal(src, dst, n);
    }
    CHECK_OK(fam_put_blocking(f, src, d, 0, N)); /* stripes on both hosts */
    memset(dst, 0, N);
    CHECK_OK(fam_get_blocking(f, dst, d, 0, N));
    assert_memory_equal(src, dst, N);
    free(src);
    free(dst);
    fam_deallocate(f, d);
}

static void atomics_and_indexed_scatter_gather(void **state)
{
    (void)state;
    enum { N = 4096 };
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "cells", N * 8, 0600, r, &d));
    int64_t local[N] = {0}, got[N];
    uint64_t idx[N / 2];
    int64_t val[N / 2];
    for (int i = 0; i < N / 2; i++) {
        idx[i] = (uint64_t)(i * 37 % N);
        val[i] = (int64_t)i * 1000 - 7;
        local[idx[i]] = val[i];
    }
    CHECK_OK(fam_scatter_blocking_index(f, val, d, N / 2, idx, 8));
    int64_t old;
    for (int k = 0; k < 100; k++) {
        uint64_t cell = (uint64_t)(k * 613 % N);
        CHECK_OK(fam_fetch_add_int64(f, d, cell * 8, k, &old));
        assert_true(old == local[cell]);
        local[cell] += k;
    }
    CHECK_OK(fam_get_blocking(f, got, d, 0, sizeof got));
    assert_memory_equal(local, got, sizeof got);
    int64_t back[N / 2];
    CHECK_OK(fam_gather_blocking_index(f, back, d, N / 2, idx, 8));
    for (int i = 0; i < N / 2; i++) assert_true(back[i] == local[idx[i]]);
    fam_deallocate(f, d);
}

/* "Own host" is proven, never guessed: the shm provider is refused for a
 * famd elsewhere, and the same-host fast path does not map the pool file
 * of a famd on another host, though that file is right there in our file
 * system (as it would be on a shared one): writes through such a mapping
 * would not reach famd's memory on a real cluster. */
static void shm_and_the_fast_path_stay_on_their_own_host(void **state)
{
    (void)state;
    fam_options_t o = {.servers = srv[0].addr, .provider = "shm",
                       .timeout_ms = 5000};
    fam_t *g = NULL;
    assert_int_equal(fam_initialize(&o, &g), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "is on another host"));
    assert_null(g);

    struct famd_proc p;
    char pool[300];
    snprintf(pool, sizeof pool, "%s/remote.pool", test_tmpdir());
    assert_int_equal(famd_start(&p, 16 << 20, pool), 0);
    o = (fam_options_t){.servers = p.addr, .provider = "tcp",
                        .timeout_ms = 5000, .model = "shared_memory"};
    CHECK_OK(fam_initialize(&o, &g));
    assert_int_equal(fam_num_local_servers(g), 0);
    fam_region_t *pr;
    fam_item_t *d;
    CHECK_OK(fam_create_region(g, "fp", 1 << 20, 0600, NULL, &pr));
    CHECK_OK(fam_allocate(g, "v", 4096, 0600, pr, &d));
    uint64_t v = 0x1234567890abcdefull, back = 0;
    CHECK_OK(fam_put_blocking(g, &v, d, 8, 8));
    CHECK_OK(fam_get_blocking(g, &back, d, 8, 8));
    assert_true(back == v);
    fam_destroy_region(g, pr);
    fam_finalize(g);
    famd_stop(&p);
}

int main(void)
{
    if (!getenv("KDK_NETNS_HOSTS")) {
        printf("SKIP: run by tests/netns/netns.py (network-namespace hosts)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(servers_are_on_other_hosts),
        cmocka_unit_test(put_get_every_size_on_both),
        cmocka_unit_test(atomics_and_indexed_scatter_gather),
        cmocka_unit_test(shm_and_the_fast_path_stay_on_their_own_host),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
