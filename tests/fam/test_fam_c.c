/* SPDX-License-Identifier: Apache-2.0 */
/* test_fam_c.c — a program written the way OpenFAM's C API is used runs
 * unchanged against libfam: zeroed Fam_Options with $FAM_SERVERS, region
 * attributes left uninitialised, named items, put/get, atomics including
 * 128-bit ones, contexts, gather/scatter, copy, and errors reported through
 * c_fam_error() / c_fam_error_msg(). Only fam_c.h is used below the fixture. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"
#include "fam/fam_c.h"

static struct famd_proc srv;

/* An initialised c_fam for one test, with one region of 8 MiB. */
struct world {
    c_fam *fam;
    c_fam_region_desc *region;
    char region_name[64];
};

static int group_setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 64 << 20, NULL) != 0) return -1;
    setenv("FAM_SERVERS", srv.addr, 1);
    setenv("FAM_PROVIDER", test_provider(), 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    famd_stop(&srv);
    return 0;
}

static int setup(void **state)
{
    static int n;
    struct world *w = calloc(1, sizeof *w);
    Fam_Options opts;
    memset(&opts, 0, sizeof opts); /* as OpenFAM programs do */
    w->fam = c_fam_create();
    if (!w->fam || c_fam_initialize(w->fam, "test", &opts) != 0) {
        fprintf(stderr, "c_fam_initialize: %s\n", c_fam_error_msg());
        return -1;
    }
    /* OpenFAM's own tests pass attributes they never set: any value of an
     * enumerator it does not know must be taken as the default. */
    Fam_Region_Attributes attr;
    memset(&attr, 0x5a, sizeof attr);
    snprintf(w->region_name, sizeof w->region_name, "creg%d", n++);
    w->region = c_fam_create_region(w->fam, w->region_name, 8 << 20, 0777, &attr);
    if (!w->region) {
        fprintf(stderr, "c_fam_create_region: %s\n", c_fam_error_msg());
        return -1;
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    if (w->region) c_fam_destroy_region(w->fam, w->region);
    c_fam_finalize(w->fam, "test");
    c_fam_delete(w->fam);
    free(w);
    return 0;
}

static void test_initialize_without_servers_reports_empty_server_list(void **state)
{
    (void)state;
    char *saved = strdup(getenv("FAM_SERVERS"));
    unsetenv("FAM_SERVERS");
    c_fam *f = c_fam_create();
    Fam_Options opts;
    memset(&opts, 0, sizeof opts);
    assert_int_equal(c_fam_initialize(f, "g", &opts), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_MEMSERV_LIST_EMPTY);
    assert_non_null(strstr(c_fam_error_msg(), "FAM_SERVERS"));
    /* calls on a handle that never connected fail, they do not crash */
    assert_null(c_fam_lookup_region(f, "x"));
    assert_int_equal(c_fam_error(), FAM_ERR_NOT_CREATED);
    c_fam_delete(f);
    setenv("FAM_SERVERS", saved, 1);
    free(saved);
}

static void test_options_report_provider_and_servers(void **state)
{
    struct world *w = *state;
    const char **names = c_fam_list_options(w->fam);
    assert_non_null(names);
    int found = 0;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], "LIBFABRIC_PROVIDER") == 0) found = 1;
    assert_true(found);
    free(names);
    char *prov = (char *)c_fam_get_option(w->fam, "LIBFABRIC_PROVIDER");
    assert_non_null(prov);
    assert_string_equal(prov, test_provider());
    free(prov);
    char *servers = (char *)c_fam_get_option(w->fam, "MEMORY_SERVERS");
    assert_string_equal(servers, srv.addr);
    free(servers);
    assert_null(c_fam_get_option(w->fam, "NO_SUCH_OPTION"));
    assert_int_equal(c_fam_error(), FAM_ERR_INVALID);
}

static void test_options_are_listed_in_openfams_order_and_each_has_a_value(void **state)
{
    struct world *w = *state;
    const char **names = c_fam_list_options(w->fam);
    assert_non_null(names);
    assert_string_equal(names[0], "VERSION");
    assert_string_equal(names[1], "DEFAULT_REGION_NAME");
    for (int i = 0; names[i]; i++) {
        void *v = (void *)c_fam_get_option(w->fam, names[i]);
        assert_non_null(v);
        free(v);
    }
    free(names);
    int *id = (int *)c_fam_get_option(w->fam, "PE_ID");
    int *count = (int *)c_fam_get_option(w->fam, "PE_COUNT");
    assert_non_null(id);
    assert_non_null(count);
    assert_true(*id >= 0 && *id < *count);
    free(id);
    free(count);
}

static void test_the_sockets_provider_of_openfams_defaults_reaches_the_servers(void **state)
{
    (void)state;
    c_fam *f = c_fam_create();
    Fam_Options opts;
    memset(&opts, 0, sizeof opts);
    opts.libfabricProvider = (char *)"sockets";
    setenv("FAM_PROVIDER", test_provider(), 1);
    assert_int_equal(c_fam_initialize(f, "g", &opts), 0);
    c_fam_region_desc *r = c_fam_create_region(f, "sockets_reg", 1 << 20, 0700, NULL);
    assert_non_null(r);
    c_fam_desc *d = c_fam_allocate_named(f, "x", 8, 0600, r);
    assert_non_null(d);
    int64_t v = 41, got = 0, old = 0;
    assert_int_equal(c_fam_put_blocking(f, &v, d, 0, 8), 0);
    assert_int_equal(c_fam_fetch_add_int64(f, d, 0, 1, &old), 0);
    assert_int_equal(old, 41);
    assert_int_equal(c_fam_get_blocking(f, &got, d, 0, 8), 0);
    assert_int_equal(got, 42);
    assert_int_equal(c_fam_destroy_region(f, r), 0);
    c_fam_finalize(f, "g");
    c_fam_delete(f);
}

static void test_region_lookup_stat_resize_and_errors(void **state)
{
    struct world *w = *state;
    c_fam_region_desc *r = c_fam_lookup_region(w->fam, w->region_name);
    assert_non_null(r);
    Fam_Stat st;
    memset(&st, 0, sizeof st);
    assert_int_equal(c_fam_stat_region(w->fam, r, &st), 0);
    assert_int_equal(st.size, 8 << 20);
    assert_int_equal(st.perm & 0777, 0777);
    assert_string_equal(st.name, w->region_name);
    assert_int_equal(st.num_memservers, 1);
    assert_int_equal(c_fam_resize_region(w->fam, r, 16 << 20), 0);
    assert_int_equal(c_fam_stat_region(w->fam, w->region, &st), 0);
    assert_int_equal(st.size, 16 << 20);
    assert_int_equal(c_fam_change_permissions_region(w->fam, r, 0755), 0);
    assert_int_equal(c_fam_stat_region(w->fam, r, &st), 0);
    assert_int_equal(st.perm & 0777, 0755);

    assert_null(c_fam_lookup_region(w->fam, "no-such-region"));
    assert_int_equal(c_fam_error(), FAM_ERR_NOTFOUND);
    Fam_Region_Attributes attr = {0};
    assert_null(c_fam_create_region(w->fam, w->region_name, 1 << 20, 0777, &attr));
    assert_int_equal(c_fam_error(), FAM_ERR_ALREADYEXIST);
    char longname[1024];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_null(c_fam_create_region(w->fam, longname, 1 << 20, 0777, &attr));
    assert_int_equal(c_fam_error(), FAM_ERR_NAME_TOO_LONG);
    /* the error stays readable after later successful calls, as OpenFAM's */
    assert_non_null(c_fam_lookup_region(w->fam, w->region_name));
    assert_int_equal(c_fam_error(), FAM_ERR_NAME_TOO_LONG);
}

static void test_named_item_put_get_stat_lookup(void **state)
{
    struct world *w = *state;
    c_fam_desc *d = c_fam_allocate_named(w->fam, "item", 4096, 0640, w->region);
    assert_non_null(d);
    char out[4096], in[4096];
    for (int i = 0; i < 4096; i++) out[i] = (char)(i * 7 + 3);
    assert_int_equal(c_fam_put_blocking(w->fam, out, d, 0, sizeof out), 0);
    c_fam_desc *l = c_fam_lookup(w->fam, "item", w->region_name);
    assert_non_null(l);
    memset(in, 0, sizeof in);
    assert_int_equal(c_fam_get_blocking(w->fam, in, l, 0, sizeof in), 0);
    assert_memory_equal(in, out, sizeof in);

    Fam_Stat st;
    assert_int_equal(c_fam_stat_data(w->fam, l, &st), 0);
    assert_int_equal(st.size, 4096);
    assert_int_equal(st.perm & 0777, 0640);
    assert_string_equal(st.name, "item");
    assert_int_equal(st.uid, getuid());
    assert_int_equal(c_fam_change_permissions_data(w->fam, d, 0600), 0);
    assert_int_equal(c_fam_stat_data(w->fam, d, &st), 0);
    assert_int_equal(st.perm & 0777, 0600);

    /* non-blocking puts land by c_fam_quiet */
    int64_t v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = 1000 + i;
        assert_int_equal(c_fam_put_nonblocking(w->fam, &v[i], d, 8 * (uint64_t)i, 8), 0);
    }
    assert_int_equal(c_fam_quiet(w->fam), 0);
    int64_t back[64] = {0};
    assert_int_equal(c_fam_get_nonblocking(w->fam, back, d, 0, sizeof back), 0);
    assert_int_equal(c_fam_quiet(w->fam), 0);
    assert_memory_equal(back, v, sizeof v);
    assert_int_equal(c_fam_fence(w->fam), 0);
    uint64_t pending = 99;
    assert_int_equal(c_fam_progress(w->fam, &pending), 0);
    assert_int_equal(pending, 0);
    c_fam_close(w->fam, l);
    assert_int_equal(c_fam_deallocate(w->fam, d), 0);
}

static void test_item_errors_set_fam_error(void **state)
{
    struct world *w = *state;
    c_fam_desc *d = c_fam_allocate_named(w->fam, "small", 64, 0600, w->region);
    assert_non_null(d);
    char buf[128] = {0};
    assert_int_equal(c_fam_get_blocking(w->fam, buf, d, 32, 64), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_OUTOFRANGE);
    assert_non_null(c_fam_error_msg());
    assert_true(strlen(c_fam_error_msg()) > 0);
    assert_int_equal(c_fam_put_blocking(w->fam, buf, d, 65, 1), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_OUTOFRANGE);
    assert_null(c_fam_allocate_named(w->fam, "small", 64, 0600, w->region));
    assert_int_equal(c_fam_error(), FAM_ERR_ALREADYEXIST);
    assert_null(c_fam_lookup(w->fam, "missing", w->region_name));
    assert_int_equal(c_fam_error(), FAM_ERR_NOTFOUND);
    assert_null(c_fam_lookup(w->fam, "small", "no-such-region"));
    assert_int_equal(c_fam_error(), FAM_ERR_NOTFOUND);
    assert_null(c_fam_allocate(w->fam, (size_t)1 << 40, 0600, w->region));
    assert_int_equal(c_fam_error(), FAM_ERR_NO_SPACE);
    assert_int_equal(c_fam_fetch_add_int64(w->fam, d, 3, 1, &(int64_t){0}), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_INVALID);
    assert_int_equal(c_fam_put_blocking(w->fam, buf, NULL, 0, 1), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_INVALID);

    /* a deallocated item is gone for everyone */
    assert_int_equal(c_fam_deallocate(w->fam, d), 0);
    assert_null(c_fam_lookup(w->fam, "small", w->region_name));
    assert_int_equal(c_fam_error(), FAM_ERR_NOTFOUND);
}

static void test_atomics_all_types(void **state)
{
    struct world *w = *state;
    c_fam_desc *d = c_fam_allocate(w->fam, 256, 0600, w->region);
    assert_non_null(d);

    int32_t i32;
    assert_int_equal(c_fam_set_int32(w->fam, d, 0, -5), 0);
    assert_int_equal(c_fam_add_int32(w->fam, d, 0, 12), 0);
    assert_int_equal(c_fam_fetch_subtract_int32(w->fam, d, 0, 2, &i32), 0);
    assert_int_equal(i32, 7);
    assert_int_equal(c_fam_fetch_int32(w->fam, d, 0, &i32), 0);
    assert_int_equal(i32, 5);
    assert_int_equal(c_fam_compare_swap_int32(w->fam, d, 0, 5, 9, &i32), 0);
    assert_int_equal(i32, 5);
    assert_int_equal(c_fam_min_int32(w->fam, d, 0, -100), 0);
    assert_int_equal(c_fam_fetch_int32(w->fam, d, 0, &i32), 0);
    assert_int_equal(i32, -100);

    int64_t i64;
    assert_int_equal(c_fam_set_int64(w->fam, d, 8, INT64_MAX - 10), 0);
    assert_int_equal(c_fam_fetch_add_int64(w->fam, d, 8, 4, &i64), 0);
    assert_true(i64 == INT64_MAX - 10);
    assert_int_equal(c_fam_max_int64(w->fam, d, 8, 3), 0);
    assert_int_equal(c_fam_swap_int64(w->fam, d, 8, 42, &i64), 0);
    assert_true(i64 == INT64_MAX - 6);

    uint32_t u32;
    assert_int_equal(c_fam_set_uint32(w->fam, d, 16, 0xf0f0f0f0u), 0);
    assert_int_equal(c_fam_and_uint32(w->fam, d, 16, 0x0ff00ff0u), 0);
    assert_int_equal(c_fam_fetch_or_uint32(w->fam, d, 16, 1u, &u32), 0);
    assert_int_equal(u32, 0x00f000f0u);
    assert_int_equal(c_fam_fetch_xor_uint32(w->fam, d, 16, 0xffffffffu, &u32), 0);
    assert_int_equal(u32, 0x00f000f1u);
    assert_int_equal(c_fam_fetch_uint32(w->fam, d, 16, &u32), 0);
    assert_int_equal(u32, ~0x00f000f1u);

    uint64_t u64;
    assert_int_equal(c_fam_set_uint64(w->fam, d, 24, 10), 0);
    assert_int_equal(c_fam_fetch_subtract_uint64(w->fam, d, 24, 11, &u64), 0);
    assert_int_equal(u64, 10);
    assert_int_equal(c_fam_fetch_uint64(w->fam, d, 24, &u64), 0);
    assert_true(u64 == UINT64_MAX); /* unsigned wrap-around, as C */
    assert_int_equal(c_fam_xor_uint64(w->fam, d, 24, UINT64_MAX), 0);
    assert_int_equal(c_fam_fetch_and_uint64(w->fam, d, 24, 0, &u64), 0);
    assert_int_equal(u64, 0);

    float fl;
    double db;
    assert_int_equal(c_fam_set_float(w->fam, d, 32, 1.5f), 0);
    assert_int_equal(c_fam_fetch_add_float(w->fam, d, 32, 2.25f, &fl), 0);
    assert_true(fl == 1.5f);
    assert_int_equal(c_fam_fetch_float(w->fam, d, 32, &fl), 0);
    assert_true(fl == 3.75f);
    assert_int_equal(c_fam_set_double(w->fam, d, 40, -0.5), 0);
    assert_int_equal(c_fam_fetch_min_double(w->fam, d, 40, -8.0, &db), 0);
    assert_true(db == -0.5);
    assert_int_equal(c_fam_fetch_double(w->fam, d, 40, &db), 0);
    assert_true(db == -8.0);

    /* 128-bit: set, fetch and compare_swap of a value using both halves */
    int128_t big = ((int128_t)0x0123456789abcdefLL << 64) | (int128_t)0x0fedcba987654321LL;
    int128_t got = 0;
    assert_int_equal(c_fam_set_int128(w->fam, d, 64, big), 0);
    assert_int_equal(c_fam_fetch_int128(w->fam, d, 64, &got), 0);
    assert_true(got == big);
    int128_t other = -big;
    assert_int_equal(c_fam_compare_swap_int128(w->fam, d, 64, other, 7, &got), 0);
    assert_true(got == big); /* mismatch: unchanged */
    assert_int_equal(c_fam_compare_swap_int128(w->fam, d, 64, big, other, &got), 0);
    assert_true(got == big);
    assert_int_equal(c_fam_fetch_int128(w->fam, d, 64, &got), 0);
    assert_true(got == other);
    assert_int_equal(c_fam_compare_swap_int128(w->fam, d, 72, big, other, &got), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_INVALID); /* not 16-byte aligned */
    assert_int_equal(c_fam_compare_swap_int128(w->fam, d, 256, big, other, &got), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_OUTOFRANGE);
    assert_int_equal(c_fam_deallocate(w->fam, d), 0);
}

static void test_context_and_gather_scatter(void **state)
{
    struct world *w = *state;
    enum { N = 1000 };
    c_fam_desc *d = c_fam_allocate_named(w->fam, "gs", N * 8, 0600, w->region);
    assert_non_null(d);
    c_fam_context *ctx = c_fam_context_open(w->fam);
    assert_non_null(ctx);

    int64_t ref[N], zero[N];
    memset(ref, 0, sizeof ref);
    memset(zero, 0, sizeof zero);
    assert_int_equal(c_fam_put_blocking(ctx, zero, d, 0, sizeof zero), 0);

    /* scatter by index through the context, duplicates-free random order */
    uint64_t idx[300];
    int64_t vals[300];
    srand(7);
    for (int i = 0; i < 300; i++) {
        idx[i] = (uint64_t)((i * 337 + 11) % N); /* 337 is coprime with 1000 */
        vals[i] = rand();
        ref[idx[i]] = vals[i];
    }
    assert_int_equal(c_fam_scatter_blocking_index(ctx, vals, d, 300, idx, 8), 0);
    /* scatter with a stride: elements 1, 4, 7, ... */
    int64_t sv[100];
    for (int i = 0; i < 100; i++) {
        sv[i] = -i - 1;
        ref[1 + 3 * i] = sv[i];
    }
    assert_int_equal(c_fam_scatter_nonblocking_stride(ctx, sv, d, 100, 1, 3, 8), 0);
    assert_int_equal(c_fam_quiet(ctx), 0);

    int64_t all[N];
    assert_int_equal(c_fam_get_blocking(w->fam, all, d, 0, sizeof all), 0);
    assert_memory_equal(all, ref, sizeof ref);

    int64_t g[300];
    assert_int_equal(c_fam_gather_blocking_index(w->fam, g, d, 300, idx, 8), 0);
    for (int i = 0; i < 300; i++) assert_true(g[i] == ref[idx[i]]);
    int64_t gs[50];
    assert_int_equal(c_fam_gather_nonblocking_stride(w->fam, gs, d, 50, 5, 19, 8), 0);
    assert_int_equal(c_fam_quiet(w->fam), 0);
    for (int i = 0; i < 50; i++) assert_true(gs[i] == ref[5 + 19 * i]);

    /* one index out of range: the call fails and writes nothing */
    idx[150] = N;
    assert_int_equal(c_fam_scatter_blocking_index(ctx, vals, d, 300, idx, 8), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_OUTOFRANGE);
    assert_int_equal(c_fam_gather_blocking_stride(w->fam, gs, d, 50, 5, 21, 8), -1);
    assert_int_equal(c_fam_error(), FAM_ERR_OUTOFRANGE);
    assert_int_equal(c_fam_get_blocking(w->fam, all, d, 0, sizeof all), 0);
    assert_memory_equal(all, ref, sizeof ref);

    assert_int_equal(c_fam_context_close(w->fam, ctx), 0);
    assert_int_equal(c_fam_deallocate(w->fam, d), 0);
}

static void test_copy_between_items(void **state)
{
    struct world *w = *state;
    c_fam_desc *a = c_fam_allocate_named(w->fam, "src", 1 << 20, 0600, w->region);
    c_fam_desc *b = c_fam_allocate_named(w->fam, "dst", 1 << 20, 0600, w->region);
    assert_non_null(a);
    assert_non_null(b);
    unsigned char *buf = malloc(1 << 20), *back = malloc(1 << 20);
    for (int i = 0; i < (1 << 20); i++) buf[i] = (unsigned char)(i * 31 + i / 251);
    assert_int_equal(c_fam_put_blocking(w->fam, buf, a, 0, 1 << 20), 0);
    memset(back, 0, 1 << 20);
    assert_int_equal(c_fam_put_blocking(w->fam, back, b, 0, 1 << 20), 0);
    void *wait = c_fam_copy(w->fam, a, 4096, b, 100, 500000);
    assert_non_null(wait);
    assert_int_equal(c_fam_copy_wait(w->fam, wait), 0);
    assert_int_equal(c_fam_get_blocking(w->fam, back, b, 0, 1 << 20), 0);
    for (int i = 0; i < 100; i++) assert_int_equal(back[i], 0);
    assert_memory_equal(back + 100, buf + 4096, 500000);
    assert_int_equal(back[100 + 500000], 0);
    assert_null(c_fam_copy(w->fam, a, (1 << 20) - 10, b, 0, 11));
    assert_int_equal(c_fam_error(), FAM_ERR_OUTOFRANGE);
    free(buf);
    free(back);
    c_fam_deallocate(w->fam, a);
    c_fam_deallocate(w->fam, b);
}

static void test_destroyed_region_is_gone(void **state)
{
    struct world *w = *state;
    assert_non_null(c_fam_allocate_named(w->fam, "x", 64, 0600, w->region));
    assert_int_equal(c_fam_destroy_region(w->fam, w->region), 0);
    w->region = NULL;
    assert_null(c_fam_lookup_region(w->fam, w->region_name));
    assert_int_equal(c_fam_error(), FAM_ERR_NOTFOUND);
    assert_null(c_fam_lookup(w->fam, "x", w->region_name));
    assert_int_equal(c_fam_error(), FAM_ERR_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initialize_without_servers_reports_empty_server_list),
        cmocka_unit_test_setup_teardown(test_options_report_provider_and_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options_are_listed_in_openfams_order_and_each_has_a_value, setup, teardown),
        cmocka_unit_test(test_the_sockets_provider_of_openfams_defaults_reaches_the_servers),
        cmocka_unit_test_setup_teardown(test_region_lookup_stat_resize_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_item_put_get_stat_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_item_errors_set_fam_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomics_all_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_and_gather_scatter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_between_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroyed_region_is_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
