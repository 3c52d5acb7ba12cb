/* SPDX-License-Identifier: Apache-2.0 */
/* test_persistence.c — a pool file keeps regions, items, names,
 * permissions and contents across a clean stop and across kill -9; a
 * volatile pool (or a volatile region) is empty after a restart; a client
 * kept open across a restart carries on with its old descriptors; a file
 * that is not a pool is refused, not overwritten. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rand();
}

static void write_kill_restart(int hard)
{
    struct famd_proc srv;
    char path[300];
    snprintf(path, sizeof path, "%s/pool-%d", test_tmpdir(), hard);
    assert_int_equal(famd_start(&srv, 64 << 20, path), 0);
    fam_t *f = client(srv.addr);
    assert_non_null(f);
    fam_region_t *r;
    fam_item_t *a, *b;
    enum { N = 1 << 20 };
    uint8_t *data = malloc(N), *back = malloc(N);
    fill(data, N, 42);
    CHECK_OK(fam_create_region(f, "keep", 8 << 20, 0640, NULL, &r));
    CHECK_OK(fam_allocate(f, "a", N, 0604, r, &a));
    CHECK_OK(fam_allocate(f, "b", 100, 0600, r, &b));
    CHECK_OK(fam_put_blocking(f, data, a, 0, N));
    CHECK_OK(fam_add_int64(f, b, 8, 12345));
    CHECK_OK(fam_deallocate(f, b)); /* a deleted item stays deleted */
    fam_release(a);
    fam_release_region(r);
    fam_finalize(f);

    if (hard) famd_kill9(&srv); else famd_stop(&srv);
    assert_int_equal(famd_restart(&srv, 64 << 20), 0);

    f = client(srv.addr);
    assert_non_null(f);
    CHECK_OK(fam_lookup_region(f, "keep", &r));
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.size, 8 << 20);
    assert_int_equal(st.perm, 0640);
    assert_int_equal(st.used, N);
    assert_int_equal(st.memory_type, FAM_MEMORY_PERSISTENT);
    CHECK_OK(fam_lookup(f, "a", "keep", &a));
    CHECK_OK(fam_stat(f, a, &st));
    assert_int_equal(st.size, N);
    assert_int_equal(st.perm, 0604);
    CHECK_OK(fam_get_blocking(f, back, a, 0, N));
    assert_memory_equal(data, back, N);
    assert_int_equal(fam_lookup(f, "b", "keep", &b), FAM_ENOTFOUND);
    /* the restarted server still allocates, without overlapping a */
    CHECK_OK(fam_allocate(f, "c", N, 0600, r, &b));
    memset(back, 0xee, N);
    CHECK_OK(fam_put_blocking(f, back, b, 0, N));
    CHECK_OK(fam_get_blocking(f, back, a, 0, N));
    assert_memory_equal(data, back, N);
    fam_release(a);
    fam_release(b);
    CHECK_OK(fam_destroy_region(f, r));
    fam_finalize(f);
    famd_stop(&srv);
    free(data);
    free(back);
}

/* One client, kept open across a kill -9 and restart of its famd: its
 * descriptors from before still work (libfam reconnects, and refreshes the
 * keys the new famd handed out), through control calls first or data
 * calls first. */
static void one_client_outlives_a_famd_restart(int data_first)
{
    struct famd_proc srv;
    char path[300];
    snprintf(path, sizeof path, "%s/pool-same-%d", test_tmpdir(), data_first);
    assert_int_equal(famd_start(&srv, 64 << 20, path), 0);
    fam_options_t o = {.servers = srv.addr, .provider = test_provider(),
                       .timeout_ms = 2000};
    fam_t *f;
    CHECK_OK(fam_initialize(&o, &f));
    enum { N = 256 << 10 };
    uint8_t *data = malloc(N), *back = malloc(N);
    fill(data, N, 7 + data_first);
    fam_region_t *r;
    fam_item_t *a;
    CHECK_OK(fam_create_region(f, "same", 8 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "a", N, 0600, r, &a));
    CHECK_OK(fam_put_blocking(f, data, a, 0, N));
    CHECK_OK(fam_set_int64(f, a, 0, 1000));
    memcpy(data, &(int64_t){1000}, 8);

    famd_kill9(&srv);
    assert_int_equal(famd_restart(&srv, 64 << 20), 0);

    int64_t old = 0;
    int tries = 0, rc;
    if (data_first) {
        /* the first data call may report the lost connection; the next
         * ones must work */
        while ((rc = fam_get_blocking(f, back, a, 0, N)) != 0 && ++tries < 3) {}
        CHECK_OK(rc);
    } else {
        fam_stat_t st;
        while ((rc = fam_stat_region(f, r, &st)) != 0 && ++tries < 3) {}
        CHECK_OK(rc);
        assert_int_equal(st.size, 8 << 20);
        CHECK_OK(fam_get_blocking(f, back, a, 0, N));
    }
    assert_memory_equal(data, back, N);
    CHECK_OK(fam_fetch_add_int64(f, a, 0, 5, &old));
    assert_int_equal(old, 1000);
    memset(data + 8, 0x3c, 4096);
    CHECK_OK(fam_put_blocking(f, data + 8, a, 8, 4096));
    CHECK_OK(fam_get_blocking(f, back, a, 0, N));
    memcpy(data, &(int64_t){1005}, 8);
    assert_memory_equal(data, back, N);
    fam_item_t *b;
    CHECK_OK(fam_lookup(f, "a", "same", &b)); /* names are served again */
    fam_release(b);
    fam_release(a);
    CHECK_OK(fam_destroy_region(f, r));
    fam_finalize(f);
    famd_stop(&srv);
    free(data);
    free(back);
}

static void one_client_outlives_a_restart_control_call_first(void **state)
{
    (void)state;
    one_client_outlives_a_famd_restart(0);
}

static void one_client_outlives_a_restart_data_call_first(void **state)
{
    (void)state;
    one_client_outlives_a_famd_restart(1);
}

static void data_survives_a_clean_restart(void **state)
{
    (void)state;
    write_kill_restart(0);
}

static void data_survives_kill_9(void **state)
{
    (void)state;
    write_kill_restart(1);
}

static void volatile_pool_is_empty_after_restart(void **state)
{
    (void)state;
    struct famd_proc srv;
    assert_int_equal(famd_start(&srv, 32 << 20, NULL), 0);
    fam_t *f = client(srv.addr);
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "gone", 1 << 20, 0600, NULL, &r));
    fam_release_region(r);
    fam_finalize(f);
    famd_kill9(&srv);
    assert_int_equal(famd_restart(&srv, 32 << 20), 0);
    f = client(srv.addr);
    assert_int_equal(fam_lookup_region(f, "gone", &r), FAM_ENOTFOUND);
    fam_finalize(f);
    famd_stop(&srv);
}

static void volatile_region_on_a_persistent_pool_goes_away(void **state)
{
    (void)state;
    struct famd_proc srv;
    char path[300];
    snprintf(path, sizeof path, "%s/pool-mixed", test_tmpdir());
    assert_int_equal(famd_start(&srv, 32 << 20, path), 0);
    fam_t *f = client(srv.addr);
    fam_region_t *r;
    fam_item_t *d;
    fam_region_attr_t vol = {.memory_type = FAM_MEMORY_VOLATILE};
    CHECK_OK(fam_create_region(f, "scratch", 1 << 20, 0600, &vol, &r));
    CHECK_OK(fam_allocate(f, "tmp", 4096, 0600, r, &d));
    fam_release(d);
    fam_release_region(r);
    CHECK_OK(fam_create_region(f, "stays", 1 << 20, 0600, NULL, &r));
    fam_release_region(r);
    fam_finalize(f);
    famd_stop(&srv);
    assert_int_equal(famd_restart(&srv, 32 << 20), 0);
    f = client(srv.addr);
    assert_int_equal(fam_lookup_region(f, "scratch", &r), FAM_ENOTFOUND);
    CHECK_OK(fam_lookup_region(f, "stays", &r));
    fam_release_region(r);
    fam_finalize(f);
    famd_stop(&srv);
}

static void a_file_that_is_not_a_pool_is_refused(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/not-a-pool", test_tmpdir());
    FILE *fp = fopen(path, "w");
    fputs("precious user data\n", fp);
    fclose(fp);
    struct famd_proc srv;
    assert_int_not_equal(famd_start(&srv, 32 << 20, path), 0);
    fp = fopen(path, "r");
    char line[64] = "";
    assert_non_null(fgets(line, sizeof line, fp));
    fclose(fp);
    assert_string_equal(line, "precious user data\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_survives_a_clean_restart),
        cmocka_unit_test(data_survives_kill_9),
        cmocka_unit_test(one_client_outlives_a_restart_control_call_first),
        cmocka_unit_test(one_client_outlives_a_restart_data_call_first),
        cmocka_unit_test(volatile_pool_is_empty_after_restart),
        cmocka_unit_test(volatile_region_on_a_persistent_pool_goes_away),
        cmocka_unit_test(a_file_that_is_not_a_pool_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
