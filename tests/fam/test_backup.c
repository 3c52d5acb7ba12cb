/* SPDX-License-Identifier: Apache-2.0 */
/* test_backup.c — backups kept by the memory servers: backup -> destroy ->
 * restore gives identical bytes and metadata, also across a famd restart,
 * into an item on another server, and for an item striped over three
 * servers; a damaged backup file is an error and leaves the destination
 * untouched; names, listing, deletion and permissions behave; the OpenFAM
 * C calls do the same. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fixture.h"
#include "fam/fam_c.h"

#define NSRV 3
static struct famd_proc srv[NSRV];
static char dirs[NSRV][300];
static char all[400];
static fam_t *f;     /* knows all three servers */
static fam_t *one;   /* knows only server 0 */

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint8_t next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)rng;
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < NSRV; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/backups%d", test_tmpdir(), i);
        if (famd_start_dir(&srv[i], 64 << 20, NULL, dirs[i])) return -1;
    }
    snprintf(all, sizeof all, "%s,%s,%s", srv[0].addr, srv[1].addr, srv[2].addr);
    f = client(all);
    one = client(srv[0].addr);
    return f && one ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    fam_finalize(one);
    for (int i = 0; i < NSRV; i++) famd_stop(&srv[i]);
    return 0;
}

static fam_item_t *filled(fam_t *c, fam_region_t *r, const char *name, uint64_t n,
                          mode_t perm, uint8_t **bytes)
{
    fam_item_t *d;
    if (fam_allocate(c, name, n, perm, r, &d)) fail_msg("%s", fam_last_error());
    *bytes = malloc(n);
    for (uint64_t i = 0; i < n; i++) (*bytes)[i] = next_byte();
    CHECK_OK(fam_put_blocking(c, *bytes, d, 0, n));
    return d;
}

static void assert_bytes(fam_t *c, fam_item_t *d, const uint8_t *want, uint64_t n)
{
    uint8_t *got = malloc(n);
    CHECK_OK(fam_get_blocking(c, got, d, 0, n));
    assert_memory_equal(got, want, n);
    free(got);
}

static void test_backup_destroy_restore_gives_identical_bytes_and_metadata(void **state)
{
    (void)state;
    fam_region_t *r;
    CHECK_OK(fam_create_region(one, "b1", 16 << 20, 0777, NULL, &r));
    uint8_t *bytes;
    const uint64_t n = 3 * 1024 * 1024 + 17;
    fam_item_t *d = filled(one, r, "precious", n, 0640, &bytes);
    CHECK_OK(fam_backup(one, d, "precious.v1"));
    fam_backup_info_t info;
    CHECK_OK(fam_stat_backup(one, "precious.v1", &info));
    assert_int_equal(info.size, n);
    assert_int_equal(info.perm & 0777, 0640);
    assert_int_equal(info.uid, getuid());
    assert_int_equal(info.num_servers, 1);
    assert_true(info.time > 1700000000u);

    /* overwrite, restore in place */
    uint8_t *junk = calloc(n, 1);
    CHECK_OK(fam_put_blocking(one, junk, d, 0, n));
    CHECK_OK(fam_restore(one, "precious.v1", d));
    assert_bytes(one, d, bytes, n);

    /* destroy the item, restore as a new one */
    CHECK_OK(fam_deallocate(one, d));
    fam_item_t *back;
    CHECK_OK(fam_restore_new(one, "precious.v1", r, "precious", 0640, &back));
    assert_bytes(one, back, bytes, n);
    fam_stat_t st;
    CHECK_OK(fam_stat(one, back, &st));
    assert_int_equal(st.size, n);
    assert_int_equal(st.perm & 0777, 0640);
    assert_string_equal(st.name, "precious");

    /* a size mismatch is refused and changes nothing */
    fam_item_t *other = filled(one, r, "other", 1000, 0600, &junk);
    assert_int_equal(fam_restore(one, "precious.v1", other), FAM_EINVAL);
    assert_bytes(one, other, junk, 1000);
    free(junk);
    free(bytes);
    CHECK_OK(fam_delete_backup(one, "precious.v1"));
    assert_int_equal(fam_stat_backup(one, "precious.v1", &info), FAM_ENOTFOUND);
    CHECK_OK(fam_destroy_region(one, r));
}

/* Flip one byte of backup file `name` on server i at `where` bytes from
 * its end (or truncate it when where is 0). */
static void damage(int i, const char *name, long where)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.fambak", dirs[i], name);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    off_t end = lseek(fd, 0, SEEK_END);
    if (where == 0) {
        assert_int_equal(ftruncate(fd, end - 1), 0);
    } else {
        uint8_t b;
        assert_int_equal(pread(fd, &b, 1, end - where), 1);
        b ^= 0x40;
        assert_int_equal(pwrite(fd, &b, 1, end - where), 1);
    }
    close(fd);
}

static void test_damaged_backup_is_an_error_and_changes_nothing(void **state)
{
    (void)state;
    fam_region_t *r;
    CHECK_OK(fam_create_region(one, "b2", 16 << 20, 0777, NULL, &r));
    uint8_t *bytes, *now;
    fam_item_t *d = filled(one, r, "x", 100000, 0600, &bytes);
    const char *names[3] = {"flip-data", "truncated", "flip-header"};
    long where[3] = {5000, 0, 100000 + 8};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(fam_backup(one, d, names[k]));
        damage(0, names[k], where[k]);
        now = malloc(100000);
        for (int i = 0; i < 100000; i++) now[i] = next_byte();
        CHECK_OK(fam_put_blocking(one, now, d, 0, 100000));
        assert_int_equal(fam_restore(one, names[k], d), FAM_EIO);
        assert_non_null(strstr(fam_last_error(), "damaged"));
        assert_bytes(one, d, now, 100000);
        fam_item_t *nd;
        assert_int_equal(fam_restore_new(one, names[k], r, "y", 0600, &nd),
                         FAM_EIO);
        fam_item_t *gone;
        assert_int_equal(fam_lookup(one, "y", "b2", &gone), FAM_ENOTFOUND);
        free(now);
        CHECK_OK(fam_delete_backup(one, names[k])); /* damaged ones too (root) */
    }
    free(bytes);
    CHECK_OK(fam_destroy_region(one, r));
}

static void test_backups_survive_a_restart_and_are_listed(void **state)
{
    (void)state;
    fam_region_t *r;
    CHECK_OK(fam_create_region(one, "b3", 16 << 20, 0777, NULL, &r));
    uint8_t *b1, *b2;
    fam_item_t *d1 = filled(one, r, "i1", 5000, 0600, &b1);
    fam_item_t *d2 = filled(one, r, "i2", 7000, 0644, &b2);
    CHECK_OK(fam_backup(one, d1, "keep-1"));
    CHECK_OK(fam_backup(one, d2, "keep-2"));
    fam_release(d1);
    fam_release(d2);
    fam_release_region(r);
    /* restart server 0 (volatile pool: items gone, backups kept) */
    fam_finalize(one);
    fam_finalize(f);
    famd_stop(&srv[0]);
    assert_int_equal(famd_restart(&srv[0], 64 << 20), 0);
    one = client(srv[0].addr);
    f = client(all);
    assert_non_null(one);
    assert_non_null(f);
    fam_backup_info_t *list;
    size_t n;
    CHECK_OK(fam_list_backups(one, &list, &n));
    int seen1 = 0, seen2 = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(list[i].name, "keep-1")) seen1 = list[i].size == 5000;
        if (!strcmp(list[i].name, "keep-2")) seen2 = list[i].size == 7000;
    }
    free(list);
    assert_true(seen1 && seen2);
    CHECK_OK(fam_create_region(one, "b3", 16 << 20, 0777, NULL, &r));
    fam_item_t *x;
    CHECK_OK(fam_restore_new(one, "keep-2", r, "i2", 0644, &x));
    assert_bytes(one, x, b2, 7000);
    CHECK_OK(fam_delete_backup(one, "keep-1"));
    CHECK_OK(fam_delete_backup(one, "keep-2"));
    assert_int_equal(fam_delete_backup(one, "keep-2"), FAM_ENOTFOUND);
    CHECK_OK(fam_list_backups(one, &list, &n));
    for (size_t i = 0; i < n; i++) assert_true(strncmp(list[i].name, "keep-", 5));
    free(list);
    free(b1);
    free(b2);
    CHECK_OK(fam_destroy_region(one, r));
}

static void test_bad_names_and_missing_backups(void **state)
{
    (void)state;
    fam_region_t *r;
    CHECK_OK(fam_create_region(one, "b4", 1 << 20, 0777, NULL, &r));
    fam_item_t *d;
    CHECK_OK(fam_allocate(one, "x", 100, 0600, r, &d));
    const char *bad[] = {"../escape", "a/b", ".hidden", "sp ace", ""};
    for (int i = 0; i < 5; i++)
        assert_int_equal(fam_backup(one, d, bad[i]), FAM_EINVAL);
    assert_int_equal(fam_restore(one, "never-made", d), FAM_ENOTFOUND);
    /* a famd without --data-dir keeps no backups */
    struct famd_proc plain;
    assert_int_equal(famd_start(&plain, 16 << 20, NULL), 0);
    fam_t *p = client(plain.addr);
    fam_region_t *pr;
    fam_item_t *pd;
    CHECK_OK(fam_create_region(p, "r", 1 << 20, 0777, NULL, &pr));
    CHECK_OK(fam_allocate(p, "x", 100, 0600, pr, &pd));
    assert_int_equal(fam_backup(p, pd, "nowhere"), FAM_ENOTSUP);
    assert_non_null(strstr(fam_last_error(), "--data-dir"));
    fam_finalize(p);
    famd_stop(&plain);
    CHECK_OK(fam_destroy_region(one, r));
}

static void test_restore_into_an_item_on_another_server(void **state)
{
    (void)state;
    /* plain regions with different homes: find two names that differ */
    fam_region_t *ra = NULL, *rb = NULL;
    char na[32], nb[32];
    fam_stat_t st;
    for (int i = 0; i < 100 && !rb; i++) {
        fam_region_t *r;
        char name[32];
        snprintf(name, sizeof name, "xs%d", i);
        CHECK_OK(fam_create_region(f, name, 8 << 20, 0777, NULL, &r));
        if (!ra) { ra = r; snprintf(na, sizeof na, "%s", name); continue; }
        /* different home if a 1-server client of ra's home cannot see it */
        fam_region_t *probe;
        int same = 0;
        for (int s = 0; s < NSRV; s++) {
            fam_t *c = client(srv[s].addr);
            fam_region_t *pa, *pb;
            int a = fam_lookup_region(c, na, &pa) == 0;
            int b = fam_lookup_region(c, name, &pb) == 0;
            if (a) fam_release_region(pa);
            if (b) fam_release_region(pb);
            if (a && b) same = 1;
            fam_finalize(c);
        }
        (void)probe;
        if (same) CHECK_OK(fam_destroy_region(f, r));
        else { rb = r; snprintf(nb, sizeof nb, "%s", name); }
    }
    assert_non_null(rb);
    uint8_t *bytes;
    fam_item_t *d = filled(f, ra, "src", 3 << 20, 0600, &bytes);
    CHECK_OK(fam_backup(f, d, "travels"));
    fam_item_t *e;
    CHECK_OK(fam_restore_new(f, "travels", rb, "dst", 0600, &e));
    assert_bytes(f, e, bytes, 3 << 20);
    CHECK_OK(fam_stat(f, e, &st));
    assert_int_equal(st.size, 3 << 20);
    free(bytes);
    CHECK_OK(fam_delete_backup(f, "travels"));
    CHECK_OK(fam_destroy_region(f, ra));
    CHECK_OK(fam_destroy_region(f, rb));
}

static void test_striped_item_backup_and_restore(void **state)
{
    (void)state;
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = 65536};
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "bs", 32 << 20, 0777, &a, &r));
    uint8_t *bytes;
    const uint64_t n = 1000000; /* 16 stripes over 3 servers */
    fam_item_t *d = filled(f, r, "big", n, 0600, &bytes);
    CHECK_OK(fam_backup(f, d, "big.bak"));
    fam_backup_info_t info;
    CHECK_OK(fam_stat_backup(f, "big.bak", &info));
    assert_int_equal(info.num_servers, NSRV);
    assert_int_equal(info.stripe_size, 65536);
    assert_int_equal(info.size, n);
    CHECK_OK(fam_destroy_region(f, r));
    CHECK_OK(fam_create_region(f, "bs", 32 << 20, 0777, &a, &r));
    fam_item_t *e;
    CHECK_OK(fam_restore_new(f, "big.bak", r, "big", 0600, &e));
    assert_bytes(f, e, bytes, n);
    /* a part lost on one server: the backup is incomplete */
    char path[600];
    snprintf(path, sizeof path, "%s/big.bak.fambak", dirs[1]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(fam_restore(f, "big.bak", e), FAM_EIO);
    assert_non_null(strstr(fam_last_error(), "incomplete"));
    assert_bytes(f, e, bytes, n);
    /* a layout mismatch is refused */
    CHECK_OK(fam_backup(f, e, "big2"));
    fam_region_t *plain;
    CHECK_OK(fam_create_region(f, "bsplain", 8 << 20, 0777, NULL, &plain));
    fam_item_t *pd;
    CHECK_OK(fam_allocate(f, "p", n, 0600, plain, &pd));
    assert_int_equal(fam_restore(f, "big2", pd), FAM_EINVAL);
    free(bytes);
    CHECK_OK(fam_delete_backup(f, "big2"));
    assert_int_equal(fam_delete_backup(f, "big.bak"), 0); /* the parts left */
    CHECK_OK(fam_destroy_region(f, r));
    CHECK_OK(fam_destroy_region(f, plain));
}

static void test_other_users_cannot_restore_a_private_backup(void **state)
{
    (void)state;
    if (strcmp(test_provider(), "tcp")) {
        /* shm connects only one user's processes: the refusal comes from
         * the provider before famd is asked (docs/SECURITY.md) */
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) || setuid(65534)) _exit(10);
            fam_t *g = client(srv[0].addr);
            _exit(g == NULL && strstr(fam_last_error(), "tcp provider") ? 0 : 11);
        }
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        return;
    }
    fam_region_t *r;
    CHECK_OK(fam_create_region(one, "b5", 1 << 20, 0777, NULL, &r));
    uint8_t *bytes;
    fam_item_t *d = filled(one, r, "secret", 4096, 0600, &bytes);
    CHECK_OK(fam_backup(one, d, "secret.bak"));
    fam_item_t *pub;
    CHECK_OK(fam_allocate(one, "public", 4096, 0666, r, &pub));
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) || setuid(65534)) _exit(10);
        fam_t *g = client(srv[0].addr);
        fam_item_t *p;
        if (!g || fam_lookup(g, "public", "b5", &p)) _exit(11);
        if (fam_restore(g, "secret.bak", p) != FAM_EPERM) _exit(12);
        if (fam_delete_backup(g, "secret.bak") != FAM_EPERM) _exit(13);
        fam_backup_info_t *list;
        size_t n;
        if (fam_list_backups(g, &list, &n)) _exit(14);
        for (size_t i = 0; i < n; i++)
            if (!strcmp(list[i].name, "secret.bak")) _exit(15);
        free(list);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    uint8_t zero[4096] = {0};
    assert_bytes(one, pub, zero, 4096);
    free(bytes);
    CHECK_OK(fam_delete_backup(one, "secret.bak"));
    CHECK_OK(fam_destroy_region(one, r));
}

static void test_openfam_c_backup_calls(void **state)
{
    (void)state;
    setenv("FAM_SERVERS", srv[0].addr, 1);
    setenv("FAM_PROVIDER", test_provider(), 1);
    Fam_Options opts;
    memset(&opts, 0, sizeof opts);
    c_fam *c = c_fam_create();
    assert_int_equal(c_fam_initialize(c, "g", &opts), 0);
    Fam_Region_Attributes attr = {0};
    c_fam_region_desc *r = c_fam_create_region(c, "cb", 1 << 20, 0777, &attr);
    assert_non_null(r);
    c_fam_desc *d = c_fam_allocate_named(c, "item", 4096, 0600, r);
    char out[4096], in[4096];
    for (int i = 0; i < 4096; i++) out[i] = (char)next_byte();
    assert_int_equal(c_fam_put_blocking(c, out, d, 0, sizeof out), 0);
    void *w = c_fam_backup(c, d, "cbak", NULL);
    assert_non_null(w);
    assert_int_equal(c_fam_backup_wait(c, w), 0);
    assert_int_equal(c_fam_deallocate(c, d), 0);
    c_fam_desc *nd = NULL;
    w = c_fam_restore_region(c, "cbak", r, "item", 0600, &nd);
    assert_non_null(w);
    assert_int_equal(c_fam_restore_wait(c, w), 0);
    assert_non_null(nd);
    assert_int_equal(c_fam_get_blocking(c, in, nd, 0, sizeof in), 0);
    assert_memory_equal(in, out, sizeof in);
    assert_null(c_fam_restore(c, "no-such-backup", nd));
    assert_int_equal(c_fam_error(), FAM_BACKUP_NOTFOUND);
    w = c_fam_delete_backup(c, "cbak");
    assert_non_null(w);
    assert_int_equal(c_fam_delete_backup_wait(c, w), 0);
    assert_int_equal(c_fam_destroy_region(c, r), 0);
    c_fam_finalize(c, "g");
    c_fam_delete(c);
}

/* A listing is one request per backup; famd keeps the listing it made
 * between them (until it changes the directory itself). Whatever changed
 * between two listings, the next one is exactly the backups there are, in
 * name order. */
static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void assert_listed(fam_t *c, char **want, size_t nwant)
{
    fam_backup_info_t *list;
    size_t n, k = 0;
    CHECK_OK(fam_list_backups(c, &list, &n));
    qsort(want, nwant, sizeof *want, names_cmp);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(list[i].name, "lst-", 4)) continue; /* other tests' */
        assert_true(k < nwant);
        assert_string_equal(list[i].name, want[k]);
        assert_int_equal(list[i].size, 100 + (strtol(list[i].name + 4, NULL, 10) % 7));
        k++;
    }
    assert_int_equal(k, nwant);
    free(list);
}

static void test_a_listing_follows_every_change(void **state)
{
    (void)state;
    static char names[80][16];
    char *want[80];
    size_t n = 0;
    fam_region_t *r;
    CHECK_OK(fam_create_region(one, "blst", 1 << 20, 0777, NULL, &r));
    fam_item_t *d[7];
    for (int s = 0; s < 7; s++) {
        char nm[16];
        uint8_t *bytes;
        snprintf(nm, sizeof nm, "lsrc%d", s);
        d[s] = filled(one, r, nm, 100 + (uint64_t)s, 0600, &bytes);
        free(bytes);
    }
    for (int i = 0; i < 40; i++) { /* made out of name order */
        int k = (i * 17) % 40;
        snprintf(names[k], sizeof names[k], "lst-%02d", k);
        CHECK_OK(fam_backup(one, d[k % 7], names[k]));
    }
    for (int k = 0; k < 40; k++) want[n++] = names[k];
    assert_listed(one, want, n);
    assert_listed(one, want, n); /* again, nothing changed */
    for (int k = 0; k < 40; k += 8) CHECK_OK(fam_delete_backup(one, names[k]));
    n = 0;
    for (int k = 0; k < 40; k++)
        if (k % 8) want[n++] = names[k];
    for (int k = 40; k < 43; k++) {
        snprintf(names[k], sizeof names[k], "lst-%02d", k);
        CHECK_OK(fam_backup(one, d[k % 7], names[k]));
        want[n++] = names[k];
    }
    assert_listed(one, want, n);
    for (size_t i = 0; i < n; i++) CHECK_OK(fam_delete_backup(one, want[i]));
    assert_listed(one, want, 0);
    for (int s = 0; s < 7; s++) CHECK_OK(fam_deallocate(one, d[s]));
    CHECK_OK(fam_destroy_region(one, r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_destroy_restore_gives_identical_bytes_and_metadata),
        cmocka_unit_test(test_damaged_backup_is_an_error_and_changes_nothing),
        cmocka_unit_test(test_backups_survive_a_restart_and_are_listed),
        cmocka_unit_test(test_a_listing_follows_every_change),
        cmocka_unit_test(test_bad_names_and_missing_backups),
        cmocka_unit_test(test_restore_into_an_item_on_another_server),
        cmocka_unit_test(test_striped_item_backup_and_restore),
        cmocka_unit_test(test_other_users_cannot_restore_a_private_backup),
        cmocka_unit_test(test_openfam_c_backup_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
