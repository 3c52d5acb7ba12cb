/* SPDX-License-Identifier: Apache-2.0 */
/* test_provider_choice.c — which libfabric provider libfam takes for each
 * memory server, on loopback only (the many-hosts case is
 * tests/netns/test_mixed_providers.c). With no provider given, a famd on
 * this host is reached over shm; a famd here that serves tcp only is
 * reached over tcp; with one of each, one client uses both at once and an
 * item striped over them behaves as one array (checked against a local C
 * copy). A forced provider is used for every server, and famd refuses one
 * it does not serve, naming both. */
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

static struct famd_proc shm_famd, tcp_famd;

static int setup(void **state)
{
    (void)state;
    unsetenv("FAM_PROVIDER"); /* the choice under test is libfam's own */
    return famd_start_at(&shm_famd, 16 << 20, NULL, NULL, NULL, "shm") ||
           famd_start_at(&tcp_famd, 16 << 20, NULL, NULL, NULL, "tcp");
}

static int teardown(void **state)
{
    (void)state;
    famd_stop(&shm_famd);
    famd_stop(&tcp_famd);
    return 0;
}

static fam_t *connect_with(const char *servers, const char *provider)
{
    fam_options_t o = {.servers = servers, .provider = provider,
                       .timeout_ms = 10000};
    fam_t *f = NULL;
    if (fam_initialize(&o, &f))
        fail_msg("fam_initialize(%s, %s): %s", servers,
                 provider ? provider : "(default)", fam_last_error());
    return f;
}

static void local_famd_is_reached_over_shm_by_default(void **state)
{
    (void)state;
    fam_t *f = connect_with(shm_famd.addr, NULL);
    fam_server_info_t si;
    CHECK_OK(fam_server_info(f, 0, &si));
    assert_string_equal(si.provider, "shm");
    assert_int_equal(si.local, 1);
    assert_int_equal(si.port, shm_famd.port);
    assert_string_equal(fam_server_provider(f, 0), "shm");
    assert_null(fam_server_provider(f, 1));
    assert_null(fam_server_provider(NULL, 0));
    assert_int_equal(fam_server_info(f, -1, &si), FAM_EINVAL);
    assert_int_equal(fam_server_info(f, 0, NULL), FAM_EINVAL);
    fam_finalize(f);

    setenv("FAM_PROVIDER", "auto", 1); /* the same, asked for by name */
    f = connect_with(shm_famd.addr, NULL);
    assert_string_equal(fam_server_provider(f, 0), "shm");
    fam_finalize(f);
    unsetenv("FAM_PROVIDER");
}

static void local_famd_serving_tcp_is_reached_over_tcp(void **state)
{
    (void)state;
    fam_t *f = connect_with(tcp_famd.addr, NULL);
    fam_server_info_t si;
    CHECK_OK(fam_server_info(f, 0, &si));
    assert_string_equal(si.provider, "tcp");
    assert_int_equal(si.local, 1);
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "t1", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "x", 4096, 0600, r, &d));
    uint64_t v = 0xfeedface12345678ull, back = 0;
    CHECK_OK(fam_put_blocking(f, &v, d, 64, 8));
    CHECK_OK(fam_get_blocking(f, &back, d, 64, 8));
    assert_true(back == v);
    fam_destroy_region(f, r);
    fam_finalize(f);
}

/* One client, an shm famd and a tcp famd: both endpoints at once, and an
 * item striped over the two (4 KiB stripes). */
static void one_client_both_providers(void **state)
{
    (void)state;
    char list[256];
    snprintf(list, sizeof list, "%s,%s", shm_famd.addr, tcp_famd.addr);
    fam_t *f = connect_with(list, NULL);
    assert_int_equal(fam_num_servers(f), 2);
    int nshm = 0, ntcp = 0;
    for (int i = 0; i < 2; i++) {
        fam_server_info_t si;
        CHECK_OK(fam_server_info(f, i, &si));
        const struct famd_proc *p = si.port == shm_famd.port ? &shm_famd : &tcp_famd;
        assert_string_equal(si.provider, p->provider);
        nshm += !strcmp(si.provider, "shm");
        ntcp += !strcmp(si.provider, "tcp");
    }
    assert_int_equal(nshm, 1);
    assert_int_equal(ntcp, 1);

    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE,
                            .stripe_size = 4096};
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "both", 4 << 20, 0600, &at, &r));
    enum { N = 1 << 15 };
    CHECK_OK(fam_allocate(f, "arr", N * 8, 0600, r, &d));
    fam_stat_t st;
    CHECK_OK(fam_stat(f, d, &st));
    assert_int_equal(st.num_servers, 2);
    static double ref[N], got[N];
    for (int i = 0; i < N; i++) ref[i] = i * 0.5;
    CHECK_OK(fam_put_blocking(f, ref, d, 0, sizeof ref));

    enum { NI = 3000 };
    static uint64_t idx[NI];
    static double v[NI], back[NI], old[NI];
    for (int i = 0; i < NI; i++) {
        idx[i] = (uint64_t)(i * 104729) % 2000 * 13 % N; /* duplicates */
        v[i] = -1.0 - i;
    }
    CHECK_OK(fam_scatter_blocking_index(f, v, d, NI, idx, 8));
    for (int i = 0; i < NI; i++) ref[idx[i]] = v[i];
    CHECK_OK(fam_gather_blocking_index(f, back, d, NI, idx, 8));
    for (int i = 0; i < NI; i++) assert_true(back[i] == ref[idx[i]]);
    for (int i = 0; i < NI; i++) v[i] = (double)(i % 7);
    CHECK_OK(fam_atomic_index(f, d, FAM_AOP_ADD, FAM_DOUBLE, NI, idx, v, old));
    for (int i = 0; i < NI; i++) ref[idx[i]] += v[i];

    enum { NS = N / 3 };
    static double s[NS];
    CHECK_OK(fam_gather_blocking_stride(f, s, d, NS, 1, 3, 8));
    for (int i = 0; i < NS; i++) assert_true(s[i] == ref[1 + 3 * i]);
    for (int k = 0; k < 32; k++) { /* a cell in each of 32 stripes */
        uint64_t cell = (uint64_t)k * 512 + 5;
        double o;
        CHECK_OK(fam_fetch_add_double(f, d, cell * 8, 2.5, &o));
        assert_true(o == ref[cell]);
        ref[cell] += 2.5;
    }
    CHECK_OK(fam_get_nonblocking(f, got, d, 0, sizeof got));
    CHECK_OK(fam_quiet(f));
    assert_memory_equal(ref, got, sizeof ref);
    fam_destroy_region(f, r);
    fam_finalize(f);
}

static void forced_provider_is_used_for_every_server(void **state)
{
    (void)state;
    char list[256];
    snprintf(list, sizeof list, "%s,%s", shm_famd.addr, tcp_famd.addr);
    fam_options_t o = {.servers = list, .provider = "shm", .timeout_ms = 5000};
    fam_t *f = NULL;
    assert_int_equal(fam_initialize(&o, &f), FAM_ENOTSUP);
    assert_null(f);
    assert_non_null(strstr(fam_last_error(), "the client asked for 'shm'"));

    setenv("FAM_PROVIDER", "tcp", 1); /* the environment forces it too */
    o.provider = NULL;
    assert_int_equal(fam_initialize(&o, &f), FAM_ENOTSUP);
    assert_non_null(strstr(fam_last_error(), "the client asked for 'tcp'"));
    o.servers = tcp_famd.addr;
    CHECK_OK(fam_initialize(&o, &f));
    assert_string_equal(fam_server_provider(f, 0), "tcp");
    fam_finalize(f);

    setenv("FAM_PROVIDER", "verbs-or-so", 1);
    assert_int_equal(fam_initialize(&o, &f), FAM_EINVAL);
    assert_non_null(strstr(fam_last_error(), "unknown provider 'verbs-or-so'"));
    unsetenv("FAM_PROVIDER");
}

/* Both endpoints survive a famd restart: with an item striped over a
 * persistent shm famd and a persistent tcp famd, each famd in turn is
 * killed (kill -9) mid-use and restarted on its port and pool; the same
 * client and descriptor carry on (the first call after may report the
 * loss), over the same provider for each, with the data intact. */
static void both_endpoints_outlive_a_famd_restart(void **state)
{
    (void)state;
    struct famd_proc a, b;
    char pa[300], pb[300], list[256];
    snprintf(pa, sizeof pa, "%s/restart-shm.pool", test_tmpdir());
    snprintf(pb, sizeof pb, "%s/restart-tcp.pool", test_tmpdir());
    assert_int_equal(famd_start_at(&a, 16 << 20, pa, NULL, NULL, "shm"), 0);
    assert_int_equal(famd_start_at(&b, 16 << 20, pb, NULL, NULL, "tcp"), 0);
    snprintf(list, sizeof list, "%s,%s", a.addr, b.addr);
    fam_options_t o = {.servers = list, .timeout_ms = 3000};
    fam_t *f = NULL;
    CHECK_OK(fam_initialize(&o, &f));
    fam_region_attr_t at = {.memory_type = FAM_MEMORY_PERSISTENT,
                            .interleave = FAM_INTERLEAVE_ENABLE,
                            .stripe_size = 4096};
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "again", 4 << 20, 0600, &at, &r));
    enum { N = 1 << 14 }; /* int64: 128 KiB, 32 stripes */
    static int64_t ref[N], got[N];
    for (int i = 0; i < N; i++) ref[i] = 7 * (int64_t)i - 3;
    CHECK_OK(fam_allocate(f, "v", sizeof ref, 0600, r, &d));
    CHECK_OK(fam_put_blocking(f, ref, d, 0, sizeof ref));
    struct famd_proc *which[2] = {&b, &a};
    for (int k = 0; k < 2; k++) {
        famd_kill9(which[k]);
        assert_int_equal(famd_restart(which[k], 16 << 20), 0);
        int rc, tries = 0;
        while ((rc = fam_get_blocking(f, got, d, 0, sizeof got)) != 0 && ++tries < 3) {}
        CHECK_OK(rc);
        assert_memory_equal(ref, got, sizeof ref);
        uint64_t idx[4] = {1, 513, 1025, 1537}; /* stripes 0..3: both famds */
        int64_t add[4] = {10, 20, 30, 40};
        CHECK_OK(fam_atomic_index(f, d, FAM_AOP_ADD, FAM_INT64, 4, idx, add, NULL));
        for (int i = 0; i < 4; i++) ref[idx[i]] += add[i];
        CHECK_OK(fam_get_blocking(f, got, d, 0, sizeof got));
        assert_memory_equal(ref, got, sizeof ref);
        for (int i = 0; i < 2; i++) {
            fam_server_info_t si;
            CHECK_OK(fam_server_info(f, i, &si));
            assert_string_equal(si.provider, si.port == a.port ? "shm" : "tcp");
        }
    }
    fam_release(d);
    fam_destroy_region(f, r);
    fam_finalize(f);
    famd_stop(&a);
    famd_stop(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_famd_is_reached_over_shm_by_default),
        cmocka_unit_test(local_famd_serving_tcp_is_reached_over_tcp),
        cmocka_unit_test(one_client_both_providers),
        cmocka_unit_test(forced_provider_is_used_for_every_server),
        cmocka_unit_test(both_endpoints_outlive_a_famd_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
