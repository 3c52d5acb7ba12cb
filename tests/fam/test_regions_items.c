/* SPDX-License-Identifier: Apache-2.0 */
/* test_regions_items.c — regions and data items: every call, its success
 * and its errors, against one real famd. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

static struct famd_proc srv;
static fam_t *f;

static int setup(void **state)
{
    (void)state;
    if (famd_start(&srv, 64 << 20, NULL) != 0) return -1;
    f = client(srv.addr);
    return f ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&srv);
    return 0;
}

static void region_create_lookup_stat_destroy(void **state)
{
    (void)state;
    fam_region_t *r, *r2;
    CHECK_OK(fam_create_region(f, "reg-a", 1 << 20, 0640, NULL, &r));
    CHECK_OK(fam_lookup_region(f, "reg-a", &r2));
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r2, &st));
    assert_string_equal(st.name, "reg-a");
    assert_int_equal(st.size, 1 << 20);
    assert_int_equal(st.perm, 0640);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.memory_type, FAM_MEMORY_VOLATILE); /* the pool's */
    fam_release_region(r2);
    CHECK_OK(fam_destroy_region(f, r));
    assert_int_equal(fam_lookup_region(f, "reg-a", &r2), FAM_ENOTFOUND);
    assert_non_null(strstr(fam_last_error(), "reg-a"));
}

static void region_errors(void **state)
{
    (void)state;
    fam_region_t *r, *r2;
    CHECK_OK(fam_create_region(f, "dup", 4096, 0600, NULL, &r));
    assert_int_equal(fam_create_region(f, "dup", 4096, 0600, NULL, &r2), FAM_EEXIST);
    assert_int_equal(fam_create_region(f, "", 4096, 0600, NULL, &r2), FAM_EINVAL);
    assert_int_equal(fam_create_region(f, NULL, 4096, 0600, NULL, &r2), FAM_EINVAL);
    assert_int_equal(fam_create_region(f, "zero", 0, 0600, NULL, &r2), FAM_EINVAL);
    assert_int_equal(fam_create_region(f, "bits", 4096, 01777, NULL, &r2), FAM_EINVAL);
    char longname[FAM_NAME_MAX + 2];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(fam_create_region(f, longname, 4096, 0600, NULL, &r2), FAM_EINVAL);
    longname[FAM_NAME_MAX] = '\0'; /* exactly the maximum is fine */
    CHECK_OK(fam_create_region(f, longname, 4096, 0600, NULL, &r2));
    CHECK_OK(fam_destroy_region(f, r2));
    fam_region_attr_t persist = {.memory_type = FAM_MEMORY_PERSISTENT};
    assert_int_equal(fam_create_region(f, "p", 4096, 0600, &persist, &r2),
                     FAM_ENOTSUP);
    assert_non_null(strstr(fam_last_error(), "volatile"));
    CHECK_OK(fam_destroy_region(f, r));
    /* the descriptor of a destroyed region is refused, not misused */
    fam_region_t *stale;
    CHECK_OK(fam_create_region(f, "stale", 4096, 0600, NULL, &stale));
    CHECK_OK(fam_lookup_region(f, "stale", &r));
    CHECK_OK(fam_destroy_region(f, r));
    fam_stat_t st;
    assert_int_equal(fam_stat_region(f, stale, &st), FAM_ENOTFOUND);
    fam_release_region(stale);
}

static void region_resize_and_chmod(void **state)
{
    (void)state;
    fam_region_t *r;
    fam_item_t *a;
    fam_stat_t st;
    CHECK_OK(fam_create_region(f, "grow", 8192, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "a", 8192, 0600, r, &a));
    fam_item_t *b;
    assert_int_equal(fam_allocate(f, "b", 1, 0600, r, &b), FAM_ENOSPACE);
    assert_int_equal(fam_resize_region(f, r, 4096), FAM_ENOSPACE); /* holds 8192 */
    CHECK_OK(fam_resize_region(f, r, 16384));
    CHECK_OK(fam_allocate(f, "b", 8192, 0600, r, &b));
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.size, 16384);
    assert_int_equal(st.used, 16384);
    CHECK_OK(fam_change_region_permissions(f, r, 0444));
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.perm, 0444);
    assert_int_equal(fam_change_region_permissions(f, r, 01000), FAM_EINVAL);
    fam_release(a);
    fam_release(b);
    CHECK_OK(fam_destroy_region(f, r));
}

static void item_allocate_lookup_stat_deallocate(void **state)
{
    (void)state;
    fam_region_t *r;
    fam_item_t *d, *d2, *u;
    fam_stat_t st;
    CHECK_OK(fam_create_region(f, "items", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "x", 1000, 0640, r, &d));
    assert_int_equal(fam_item_size(d), 1000);
    CHECK_OK(fam_lookup(f, "x", "items", &d2));
    CHECK_OK(fam_stat(f, d2, &st));
    assert_string_equal(st.name, "x");
    assert_int_equal(st.size, 1000);
    assert_int_equal(st.perm, 0640);
    assert_int_equal(st.uid, 0);
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.used, 1000);
    /* unnamed items are allocated but cannot be looked up */
    CHECK_OK(fam_allocate(f, NULL, 64, 0600, r, &u));
    assert_int_equal(fam_lookup(f, "", "items", &d2), FAM_EINVAL);
    CHECK_OK(fam_change_permissions(f, d, 0600));
    CHECK_OK(fam_stat(f, d, &st));
    assert_int_equal(st.perm, 0600);
    CHECK_OK(fam_deallocate(f, u));
    CHECK_OK(fam_deallocate(f, d));
    assert_int_equal(fam_lookup(f, "x", "items", &d), FAM_ENOTFOUND);
    /* d2 still names the freed item: refused */
    assert_int_equal(fam_stat(f, d2, &st), FAM_ENOTFOUND);
    char buf[8];
    assert_int_equal(fam_get_blocking(f, buf, d2, 0, 8), FAM_ENOTFOUND);
    fam_release(d2);
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.used, 0);
    CHECK_OK(fam_destroy_region(f, r));
}

static void item_errors(void **state)
{
    (void)state;
    fam_region_t *r;
    fam_item_t *d, *d2;
    CHECK_OK(fam_create_region(f, "ierr", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "same", 10, 0600, r, &d));
    assert_int_equal(fam_allocate(f, "same", 10, 0600, r, &d2), FAM_EEXIST);
    assert_int_equal(fam_allocate(f, "zero", 0, 0600, r, &d2), FAM_EINVAL);
    assert_int_equal(fam_allocate(f, "huge", 2 << 20, 0600, r, &d2), FAM_ENOSPACE);
    assert_int_equal(fam_lookup(f, "nope", "ierr", &d2), FAM_ENOTFOUND);
    assert_int_equal(fam_lookup(f, "same", "no-such-region", &d2), FAM_ENOTFOUND);
    assert_int_equal(fam_allocate(f, "x", 10, 0600, NULL, &d2), FAM_EINVAL);
    /* the same item name in another region is a different item */
    fam_region_t *r2;
    CHECK_OK(fam_create_region(f, "ierr2", 1 << 20, 0600, NULL, &r2));
    CHECK_OK(fam_allocate(f, "same", 20, 0600, r2, &d2));
    assert_int_equal(fam_item_size(d2), 20);
    fam_release(d);
    fam_release(d2);
    CHECK_OK(fam_destroy_region(f, r));
    CHECK_OK(fam_destroy_region(f, r2));
}

static void pool_full_is_an_error_and_space_comes_back(void **state)
{
    (void)state;
    fam_region_t *r;
    fam_item_t *big, *more;
    CHECK_OK(fam_create_region(f, "full", 1ull << 40, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "big", 40 << 20, 0600, r, &big));
    assert_int_equal(fam_allocate(f, "more", 40 << 20, 0600, r, &more), FAM_ENOSPACE);
    assert_non_null(strstr(fam_last_error(), "pool is full"));
    CHECK_OK(fam_deallocate(f, big));
    CHECK_OK(fam_allocate(f, "more", 40 << 20, 0600, r, &more));
    fam_release(more);
    CHECK_OK(fam_destroy_region(f, r)); /* frees the items too */
    CHECK_OK(fam_create_region(f, "full", 1ull << 40, 0600, NULL, &r));
    CHECK_OK(fam_allocate(f, "big", 40 << 20, 0600, r, &big));
    fam_release(big);
    CHECK_OK(fam_destroy_region(f, r));
}

/* ---- fam_list_items ------------------------------------------------------ */

static void expect_names(fam_region_t *r, const char *const *want, size_t nwant)
{
    char **names = (char **)1;
    size_t n = 99;
    CHECK_OK(fam_list_items(f, r, &names, &n));
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++) assert_string_equal(names[i], want[i]);
    if (n == 0) assert_null(names);
    fam_free_names(names, n);
}

static void list_items_gives_named_items_sorted(void **state)
{
    (void)state;
    fam_region_t *r, *other;
    fam_item_t *b, *a, *c, *u, *x;
    CHECK_OK(fam_create_region(f, "lst", 1 << 20, 0600, NULL, &r));
    CHECK_OK(fam_create_region(f, "lst-other", 1 << 20, 0600, NULL, &other));
    expect_names(r, NULL, 0); /* empty region: no names, NULL array */
    CHECK_OK(fam_allocate(f, "b", 100, 0600, r, &b));
    CHECK_OK(fam_allocate(f, "a", 100, 0600, r, &a));
    CHECK_OK(fam_allocate(f, NULL, 100, 0600, r, &u));    /* unnamed: not listed */
    CHECK_OK(fam_allocate(f, "c", 100, 0000, r, &c));     /* no access: listed */
    CHECK_OK(fam_allocate(f, "x", 100, 0600, other, &x)); /* other region */
    const char *abc[] = {"a", "b", "c"};
    expect_names(r, abc, 3);
    const char *xs[] = {"x"};
    expect_names(other, xs, 1);
    CHECK_OK(fam_deallocate(f, b));
    const char *ac[] = {"a", "c"};
    expect_names(r, ac, 2);
    fam_release(a);
    fam_release(c);
    fam_release(u);
    fam_release(x);
    CHECK_OK(fam_destroy_region(f, r));
    CHECK_OK(fam_destroy_region(f, other));
}

static void list_items_many_items_page_through(void **state)
{
    (void)state;
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "lst-many", 1 << 20, 0600, NULL, &r));
    enum { K = 150 };
    for (int i = K - 1; i >= 0; i--) {
        char name[16];
        fam_item_t *d;
        snprintf(name, sizeof name, "it%03d", i);
        CHECK_OK(fam_allocate(f, name, 8, 0600, r, &d));
        fam_release(d);
    }
    char **names;
    size_t n;
    CHECK_OK(fam_list_items(f, r, &names, &n));
    assert_int_equal(n, K);
    for (int i = 0; i < K; i++) {
        char name[16];
        snprintf(name, sizeof name, "it%03d", i);
        assert_string_equal(names[i], name);
    }
    fam_free_names(names, n);
    CHECK_OK(fam_destroy_region(f, r));
}

static void list_items_errors(void **state)
{
    (void)state;
    fam_region_t *r, *stale;
    char **names;
    size_t n;
    CHECK_OK(fam_create_region(f, "lst-err", 1 << 20, 0600, NULL, &r));
    assert_int_equal(fam_list_items(NULL, r, &names, &n), FAM_EINVAL);
    assert_int_equal(fam_list_items(f, NULL, &names, &n), FAM_EINVAL);
    assert_int_equal(fam_list_items(f, r, NULL, &n), FAM_EINVAL);
    assert_int_equal(fam_list_items(f, r, &names, NULL), FAM_EINVAL);
    CHECK_OK(fam_lookup_region(f, "lst-err", &stale));
    CHECK_OK(fam_destroy_region(f, r));
    /* a destroyed region is an error, not an empty list */
    assert_int_equal(fam_list_items(f, stale, &names, &n), FAM_ENOTFOUND);
    fam_release_region(stale);
    fam_free_names(NULL, 0); /* harmless */
}

/* Interleaved over two memory servers: a striped item has a part on each,
 * and is listed once; a one-stripe item lives on one server only. */
static void list_items_interleaved_lists_each_item_once(void **state)
{
    (void)state;
    struct famd_proc s2;
    assert_int_equal(famd_start(&s2, 64 << 20, NULL), 0);
    char both[200];
    snprintf(both, sizeof both, "%s,%s", srv.addr, s2.addr);
    fam_t *g = client(both);
    assert_non_null(g);
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 4096};
    fam_region_t *r, *r2;
    fam_item_t *big, *small, *mid;
    CHECK_OK(fam_create_region(g, "lst-il", 8 << 20, 0600, &at, &r));
    CHECK_OK(fam_allocate(g, "striped", 10 * 4096 + 5, 0600, r, &big));
    CHECK_OK(fam_allocate(g, "small", 100, 0600, r, &small));
    CHECK_OK(fam_allocate(g, "mid", 4096 + 1, 0600, r, &mid));
    fam_stat_t st;
    CHECK_OK(fam_stat(g, big, &st));
    assert_int_equal(st.num_servers, 2);
    const char *want[] = {"mid", "small", "striped"};
    char **names;
    size_t n;
    CHECK_OK(fam_list_items(g, r, &names, &n));
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) assert_string_equal(names[i], want[i]);
    fam_free_names(names, n);
    /* a descriptor from a lookup lists the same */
    CHECK_OK(fam_lookup_region(g, "lst-il", &r2));
    CHECK_OK(fam_deallocate(g, big));
    CHECK_OK(fam_list_items(g, r2, &names, &n));
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "mid");
    assert_string_equal(names[1], "small");
    fam_free_names(names, n);
    fam_release(small);
    fam_release(mid);
    fam_release_region(r2);
    CHECK_OK(fam_destroy_region(g, r));
    fam_finalize(g);
    famd_stop(&s2);
}

static void bad_initialize_arguments(void **state)
{
    (void)state;
    fam_t *g;
    fam_options_t o = {.servers = "no-port-here"};
    assert_int_equal(fam_initialize(&o, &g), FAM_EINVAL);
    o.servers = "127.0.0.1:1"; /* nothing listens there */
    o.provider = test_provider();
    assert_int_equal(fam_initialize(&o, &g), FAM_EUNREACHABLE);
    assert_non_null(strstr(fam_last_error(), "127.0.0.1:1"));
    o.servers = srv.addr;
    o.provider = "carrier-pigeon";
    assert_int_equal(fam_initialize(&o, &g), FAM_EINVAL);
    /* a client asking for the other provider is told which one famd has */
    o.provider = strcmp(test_provider(), "shm") == 0 ? "tcp" : "shm";
    assert_true(fam_initialize(&o, &g) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(region_create_lookup_stat_destroy),
        cmocka_unit_test(region_errors),
        cmocka_unit_test(region_resize_and_chmod),
        cmocka_unit_test(item_allocate_lookup_stat_deallocate),
        cmocka_unit_test(item_errors),
        cmocka_unit_test(pool_full_is_an_error_and_space_comes_back),
        cmocka_unit_test(list_items_gives_named_items_sorted),
        cmocka_unit_test(list_items_many_items_page_through),
        cmocka_unit_test(list_items_errors),
        cmocka_unit_test(list_items_interleaved_lists_each_item_once),
        cmocka_unit_test(bad_initialize_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
