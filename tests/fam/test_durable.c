/* SPDX-License-Identifier: Apache-2.0 */
/* test_durable.c — data that must not be lost or stuck (issue 11):
 *  - replacing a striped backup that fails part-way (one server's disk is
 *    full) leaves the old backup whole and restorable, byte for byte;
 *  - backup temporaries a killed famd left are removed when famd starts,
 *    and at stop;
 *  - a client killed (-9) at every step of a striped fam_allocate or an
 *    interleaved fam_create_region leaves a name that can be created
 *    again, looked up, listed once and deallocated; fam_cleanup removes
 *    what is left over; the same when both famds are killed -9 and
 *    restarted on their pool files while the client is stopped mid-way;
 *  - per-uid quotas: uid 65534 is stopped by its quota of records and of
 *    bytes with a message naming the quota, root can still create, and
 *    freeing gives the quota back, with the default shares and with
 *    --quota-objects / --quota-bytes (tcp: another uid cannot use libfam
 *    over shm, see test_permissions.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

/* Entries of dir whose name contains `part`. */
static int count_files(const char *dir, const char *part)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

/* ---- 1. a striped backup replaced while one server's disk is full ------- */

static char tmpfs_dir[200];
static int tmpfs_mounted;

static void unmount_tmpfs(void)
{
    if (tmpfs_mounted && umount2(tmpfs_dir, MNT_DETACH) == 0) tmpfs_mounted = 0;
}

static void a_striped_backup_that_does_not_fit_leaves_the_old_one_whole(void **state)
{
    (void)state;
    char dir0[200];
    snprintf(dir0, sizeof dir0, "%s/bak-big", test_tmpdir());
    snprintf(tmpfs_dir, sizeof tmpfs_dir, "%s/bak-small", test_tmpdir());
    assert_int_equal(mkdir(tmpfs_dir, 0700), 0);
    if (mount("tmpfs", tmpfs_dir, "tmpfs", 0, "size=1m,mode=0700") != 0) {
        print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
        skip();
    }
    tmpfs_mounted = 1;
    atexit(unmount_tmpfs); /* even when an assertion below fails */
    /* the tmpfs must be the server of part 1 (written after part 0): the
     * client numbers servers by host:port, so give it the larger port */
    struct famd_proc a, b;
    assert_int_equal(famd_start_dir(&a, 64 << 20, NULL, dir0), 0);
    assert_int_equal(famd_start_dir(&b, 64 << 20, NULL, dir0), 0);
    struct famd_proc *big = a.port < b.port ? &a : &b;
    struct famd_proc *small = a.port < b.port ? &b : &a;
    famd_stop(small);
    snprintf(small->data_dir, sizeof small->data_dir, "%s", tmpfs_dir);
    assert_int_equal(famd_restart(small, 64 << 20), 0);
    char all[300];
    snprintf(all, sizeof all, "%s,%s", a.addr, b.addr);
    fam_t *f = client(all);
    assert_non_null(f);
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE,
                            .stripe_size = 64 << 10};
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "bk", 32 << 20, 0700, &at, &r));

    /* the old backup: 512 KiB, 256 KiB per server, fits the 1 MiB tmpfs */
    const size_t n_old = 512 << 10, n_new = 4 << 20;
    uint8_t *old = malloc(n_old), *nu = malloc(n_new), *got = malloc(n_old);
    fill(old, n_old, 1);
    fill(nu, n_new, 2);
    fam_item_t *d_old, *d_new, *back;
    CHECK_OK(fam_allocate(f, "small", n_old, 0600, r, &d_old));
    CHECK_OK(fam_put_blocking(f, old, d_old, 0, n_old));
    CHECK_OK(fam_backup(f, d_old, "keep"));

    /* the new one: 2 MiB per server, cannot fit there */
    CHECK_OK(fam_allocate(f, "large", n_new, 0600, r, &d_new));
    CHECK_OK(fam_put_blocking(f, nu, d_new, 0, n_new));
    int rc = fam_backup(f, d_new, "keep");
    assert_int_not_equal(rc, 0);
    const char *msg = fam_last_error();
    assert_non_null(strstr(msg, "keep"));
    assert_non_null(strstr(msg, "No space left on device"));
    assert_non_null(strstr(msg, "unchanged"));

    /* the old backup is whole: it says so and restores byte for byte */
    fam_backup_info_t info;
    CHECK_OK(fam_stat_backup(f, "keep", &info));
    assert_int_equal(info.size, n_old);
    assert_int_equal(info.num_servers, 2);
    CHECK_OK(fam_allocate(f, "restored", n_old, 0600, r, &back));
    CHECK_OK(fam_restore(f, "keep", back));
    CHECK_OK(fam_get_blocking(f, got, back, 0, n_old));
    assert_memory_equal(got, old, n_old);
    /* and no temporary file stayed behind on either server */
    assert_int_equal(count_files(dir0, "tmp"), 0);
    assert_int_equal(count_files(tmpfs_dir, "tmp"), 0);
    (void)big;

    CHECK_OK(fam_delete_backup(f, "keep"));
    CHECK_OK(fam_destroy_region(f, r));
    free(d_old);
    free(d_new);
    free(back);
    free(old);
    free(nu);
    free(got);
    fam_finalize(f);
    famd_stop(&a);
    famd_stop(&b);
    unmount_tmpfs();
    assert_int_equal(tmpfs_mounted, 0);
}

/* ---- 2. backup temporaries a crash left are removed ---------------------- */

static void touch(const char *dir, const char *name, size_t bytes)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)bytes), 0);
    close(fd);
}

static void backup_leftovers_are_removed_at_start_and_stop(void **state)
{
    (void)state;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/bak-left", test_tmpdir());
    struct famd_proc p;
    assert_int_equal(famd_start_dir(&p, 32 << 20, NULL, dir), 0);
    fam_t *f = client(p.addr);
    fam_region_t *r;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "left", 4 << 20, 0700, NULL, &r));
    CHECK_OK(fam_allocate(f, "it", 4096, 0600, r, &d));
    CHECK_OK(fam_backup(f, d, "good"));
    fam_finalize(f);
    famd_kill9(&p);
    /* what a famd killed while writing backups leaves: today's staged
     * parts and temporaries, and the names older famds used */
    touch(dir, ".good.4242-7.fambak-tmp", 300 << 20); /* sparse */
    touch(dir, ".other.4242-8.fambak-tmp", 4096);
    touch(dir, "good.fambak.tmp4242", 4096);
    touch(dir, "unrelated.txt", 10);
    assert_int_equal(famd_restart(&p, 32 << 20), 0);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "good.fambak"), 1);
    assert_int_equal(count_files(dir, "unrelated.txt"), 1);
    /* at stop too */
    touch(dir, ".late.1-1.fambak-tmp", 4096);
    famd_stop(&p);
    assert_int_equal(count_files(dir, "tmp"), 0);
    assert_int_equal(count_files(dir, "good.fambak"), 1);
    free(d);
    free(r);
}

/* ---- 3. clients and famds that die in the middle of a multi-server create */

static struct famd_proc srv[2];
static char pools[2][300], all[300];

static void start_pair(void)
{
    for (int i = 0; i < 2; i++) {
        snprintf(pools[i], sizeof pools[i], "%s/pool%d", test_tmpdir(), i);
        unlink(pools[i]);
        assert_int_equal(famd_start(&srv[i], 64 << 20, pools[i]), 0);
    }
    snprintf(all, sizeof all, "%s,%s", srv[0].addr, srv[1].addr);
}

static void stop_pair(void)
{
    for (int i = 0; i < 2; i++) famd_stop(&srv[i]);
}

/* A child that runs `op` ("allocate" or "create_region") with the test
 * hook set to die (or stop) at step k. Returns its pid once it is dead
 * (SIGKILL) or stopped. */
static pid_t child_at(const char *op, int k, int stop)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char at[64];
        snprintf(at, sizeof at, "%s:%d%s", op, k, stop ? ":stop" : "");
        fam_t *g = client(all);
        if (!g) _exit(3);
        setenv("FAM_TEST_KILL_AT", at, 1);
        if (!strcmp(op, "allocate")) {
            fam_region_t *r;
            fam_item_t *d;
            if (fam_lookup_region(g, "crash", &r)) _exit(4);
            fam_allocate(g, "x", 1 << 20, 0600, r, &d);
        } else {
            fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE};
            fam_region_t *r;
            fam_create_region(g, "crashreg", 8 << 20, 0700, &a, &r);
        }
        _exit(5); /* the hook did not fire */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, stop ? WUNTRACED : 0), pid);
    if (stop) {
        if (!WIFSTOPPED(st)) fail_msg("child did not stop at %s:%d (0x%x)", op, k, st);
    } else if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
        fail_msg("child did not die at %s:%d (status 0x%x)", op, k, st);
    }
    return pid;
}

static int count_names(fam_t *f, fam_region_t *r, const char *name)
{
    char **names;
    size_t n;
    CHECK_OK(fam_list_items(f, r, &names, &n));
    int c = 0;
    for (size_t i = 0; i < n; i++) c += strcmp(names[i], name) == 0;
    fam_free_names(names, n);
    return c;
}

/* After a death at step k of a striped allocate of "x" (complete: all
 * steps done): "x" is either whole or absent, never half; it can be made
 * again, looked up, listed once, used and deallocated; fam_cleanup then
 * removes `orphans` parts and the region holds nothing. */
static void check_item_recovers(fam_t *f, int complete, size_t orphans)
{
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, "crash", &r));
    fam_item_t *d = NULL;
    int rc = fam_lookup(f, "x", "crash", &d);
    if (complete) {
        CHECK_OK(rc);
        assert_int_equal(count_names(f, r, "x"), 1);
    } else {
        /* famd rolls back when it sees the connection close: wait for it */
        uint64_t until = now_ms() + 10000;
        while ((rc = fam_allocate(f, "x", 1 << 20, 0600, r, &d)) == FAM_EEXIST &&
               strstr(fam_last_error(), "being created") && now_ms() < until)
            usleep(2000);
        if (rc) fail_msg("allocate again: %d %s", rc, fam_last_error());
        fam_release(d);
        CHECK_OK(fam_lookup(f, "x", "crash", &d));
        assert_int_equal(count_names(f, r, "x"), 1);
    }
    uint8_t in[4096], out[4096];
    fill(in, sizeof in, 7);
    CHECK_OK(fam_put_blocking(f, in, d, (1 << 20) - sizeof in, sizeof in));
    CHECK_OK(fam_get_blocking(f, out, d, (1 << 20) - sizeof in, sizeof out));
    assert_memory_equal(in, out, sizeof in);
    CHECK_OK(fam_deallocate(f, d));
    assert_int_equal(count_names(f, r, "x"), 0);
    assert_int_equal(fam_lookup(f, "x", "crash", &d), FAM_ENOTFOUND);
    size_t removed = 99;
    CHECK_OK(fam_cleanup(f, &removed));
    assert_int_equal(removed, orphans);
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.used, 0); /* nothing of "x" is left anywhere */
    free(r);
}

static void check_region_recovers(fam_t *f, int complete, size_t orphans)
{
    fam_region_t *r = NULL;
    int rc = fam_lookup_region(f, "crashreg", &r);
    if (complete) {
        CHECK_OK(rc);
    } else {
        assert_int_equal(rc, FAM_ENOTFOUND); /* never half there */
        fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE};
        uint64_t until = now_ms() + 10000;
        while ((rc = fam_create_region(f, "crashreg", 8 << 20, 0700, &a, &r)) ==
                   FAM_EEXIST && strstr(fam_last_error(), "being created") &&
               now_ms() < until)
            usleep(2000);
        if (rc) fail_msg("create again: %d %s", rc, fam_last_error());
        free(r);
        CHECK_OK(fam_lookup_region(f, "crashreg", &r));
    }
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.num_servers, 2);
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "y", 1 << 20, 0600, r, &d));
    CHECK_OK(fam_deallocate(f, d));
    CHECK_OK(fam_destroy_region(f, r));
    assert_int_equal(fam_lookup_region(f, "crashreg", &r), FAM_ENOTFOUND);
    size_t removed = 99;
    CHECK_OK(fam_cleanup(f, &removed));
    assert_int_equal(removed, orphans);
}

/* Steps of a create over two servers: 1 home part made (pending), 2 the
 * other part made (pending), 3 the other part committed, 4 the home part
 * committed (done). Only a death between 3 and 4 leaves an orphan part,
 * invisible and harmless until fam_cleanup removes it. */
static void a_client_killed_at_each_step_of_a_striped_allocate(void **state)
{
    (void)state;
    start_pair();
    fam_t *f = client(all);
    assert_non_null(f);
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE};
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "crash", 16 << 20, 0777, &a, &r));
    for (int k = 1; k <= 4; k++) {
        child_at("allocate", k, 0);
        check_item_recovers(f, k == 4, k == 3);
    }
    CHECK_OK(fam_destroy_region(f, r));
    fam_finalize(f);
    stop_pair();
}

static void a_client_killed_at_each_step_of_an_interleaved_region_create(void **state)
{
    (void)state;
    start_pair();
    fam_t *f = client(all);
    assert_non_null(f);
    for (int k = 1; k <= 4; k++) {
        child_at("create_region", k, 0);
        check_region_recovers(f, k == 4, k == 3);
    }
    fam_finalize(f);
    stop_pair();
}

/* The client stops at step k with its connections open; both famds are
 * killed -9 and restarted on their pool files: what was pending is gone
 * (famd drops it at start), what was committed stays. */
static void famds_killed_while_a_create_is_half_done(void **state)
{
    (void)state;
    start_pair();
    fam_t *f = client(all);
    assert_non_null(f);
    fam_region_attr_t a = {.interleave = FAM_INTERLEAVE_ENABLE};
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, "crash", 16 << 20, 0777, &a, &r));
    free(r);
    fam_finalize(f);
    for (int k = 1; k <= 4; k++) {
        for (int op = 0; op < 2; op++) {
            pid_t pid = child_at(op ? "create_region" : "allocate", k, 1);
            for (int i = 0; i < 2; i++) famd_kill9(&srv[i]);
            for (int i = 0; i < 2; i++)
                assert_int_equal(famd_restart(&srv[i], 64 << 20), 0);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            f = client(all);
            assert_non_null(f);
            if (op) check_region_recovers(f, k == 4, k == 3);
            else check_item_recovers(f, k == 4, k == 3);
            fam_finalize(f);
        }
    }
    stop_pair();
}

/* ---- 4. per-uid quotas ---------------------------------------------------- */

#define NOBODY 65534u

/* Runs in a child as uid 65534: fills its quota of records, then of
 * bytes, checking the messages, and that freeing gives the quota back.
 * Exit status: 0 ok, else the line that failed (message on stderr). */
#define CEXPECT(c)                                                        \
    do {                                                                  \
        if (!(c)) {                                                       \
            fprintf(stderr, "as uid 65534, line %d: %s (%s)\n", __LINE__, #c, \
                    fam_last_error());                                    \
            _exit(10);                                                    \
        }                                                                 \
    } while (0)

/* Run checks(addr) in a child as uid 65534; it must exit 0. */
static void as_nobody(void (*checks)(const char *addr), const char *addr)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
            setresuid(NOBODY, NOBODY, NOBODY))
            _exit(2);
        checks(addr);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the other user's checks failed (status 0x%x)", st);
}

/* a 64 MiB pool has 2048 metadata slots: half is 1024 for one uid */
static void nobody_fills_its_quota(const char *addr)
{
    const int expect_objects = 1024;
    fam_t *g = client(addr);
    CEXPECT(g != NULL);
    static fam_region_t *regs[4096];
    int n = 0, rc;
    char name[64];
    for (;;) {
        snprintf(name, sizeof name, "q%d", n);
        if ((rc = fam_create_region(g, name, 1 << 20, 0700, NULL, &regs[n]))) break;
        CEXPECT(++n < 4096);
    }
    CEXPECT(rc == FAM_ENOSPACE);
    CEXPECT(strstr(fam_last_error(), "quota") != NULL);
    CEXPECT(strstr(fam_last_error(), "uid 65534") != NULL);
    CEXPECT(n == expect_objects);
    CEXPECT(fam_destroy_region(g, regs[--n]) == 0); /* gives one back */
    CEXPECT(fam_create_region(g, "again", 1 << 20, 0700, NULL, &regs[n]) == 0);
    n++;
    for (int i = 0; i < n; i++) CEXPECT(fam_destroy_region(g, regs[i]) == 0);
    /* bytes: 1 MiB items in root's open region until the byte quota */
    fam_region_t *pub;
    CEXPECT(fam_lookup_region(g, "pub", &pub) == 0);
    static fam_item_t *items[256];
    int k = 0;
    for (;;) {
        snprintf(name, sizeof name, "i%d", k);
        if ((rc = fam_allocate(g, name, 1 << 20, 0600, pub, &items[k]))) break;
        CEXPECT(++k < 256);
    }
    CEXPECT(rc == FAM_ENOSPACE);
    CEXPECT(strstr(fam_last_error(), "quota") != NULL);
    CEXPECT(k >= 8 && k <= 40); /* about half of a 64 MiB pool */
    CEXPECT(fam_deallocate(g, items[--k]) == 0);
    CEXPECT(fam_allocate(g, "back", 1 << 20, 0600, pub, &items[k]) == 0);
    fam_finalize(g); /* keeps its items: root checks it can still create */
    _exit(0);
}

static void per_uid_quotas_stop_one_user_and_not_the_others(void **state)
{
    (void)state;
    if (strcmp(test_provider(), "tcp") != 0) {
        print_message("another uid cannot use libfam over shm: tcp only\n");
        skip();
    }
    struct famd_proc p;
    assert_int_equal(famd_start(&p, 64 << 20, NULL), 0);
    fam_t *f = client(p.addr);
    assert_non_null(f);
    fam_region_t *pub;
    CHECK_OK(fam_create_region(f, "pub", 60 << 20, 0777, NULL, &pub));
    as_nobody(nobody_fills_its_quota, p.addr);
    /* root is not held to quotas: it can still create regions and items */
    fam_region_t *mine;
    fam_item_t *d;
    CHECK_OK(fam_create_region(f, "roots", 4 << 20, 0700, NULL, &mine));
    CHECK_OK(fam_allocate(f, "rootitem", 2 << 20, 0600, mine, &d));
    CHECK_OK(fam_deallocate(f, d));
    CHECK_OK(fam_destroy_region(f, mine));
    CHECK_OK(fam_destroy_region(f, pub));
    fam_finalize(f);
    famd_stop(&p);
}

/* famd with quota options (the fixture starts famd with defaults only):
 * returns its pid, fills addr. */
static pid_t spawn_with(const char *opt1, const char *opt2, char *addr, size_t n)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, even failed */
        dup2(fds[1], 1);
        close(fds[0]);
        execl(FAMD_BIN, FAMD_BIN, "--port", "0", "--pool-size", "64M",
              "--provider", test_provider(), opt1, opt2, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *fp = fdopen(fds[0], "r");
    char line[256] = "", host[64];
    int port;
    if (!fgets(line, sizeof line, fp) ||
        sscanf(line, "famd ready %63[^:]:%d", host, &port) != 2) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("famd %s %s did not start: %s", opt1, opt2, line);
    }
    fclose(fp);
    snprintf(addr, n, "%s:%d", host, port);
    return pid;
}

/* A famd started with opt1 and opt2, root's open region "pub" (32 MiB) in
 * it, and `checks` run in a child as uid 65534 (which must exit 0); root's
 * client and region for what follows. Returns famd's pid. */
static pid_t nobody_on_famd_with(const char *opt1, const char *opt2, char *addr, size_t n,
                                 void (*checks)(const char *addr), fam_t **f,
                                 fam_region_t **pub)
{
    pid_t famd = spawn_with(opt1, opt2, addr, n);
    *f = client(addr);
    assert_non_null(*f);
    CHECK_OK(fam_create_region(*f, "pub", 32 << 20, 0777, NULL, pub));
    as_nobody(checks, addr);
    return famd;
}

static void nobody_hits_explicit_quotas(const char *addr)
{
    fam_t *g = client(addr);
    CEXPECT(g != NULL);
    fam_region_t *pub, *mine;
    fam_item_t *d[8];
    CEXPECT(fam_lookup_region(g, "pub", &pub) == 0);
    /* 3 MiB of bytes: three 1 MiB items, not a fourth */
    for (int i = 0; i < 3; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "b%d", i);
        CEXPECT(fam_allocate(g, nm, 1 << 20, 0600, pub, &d[i]) == 0);
    }
    CEXPECT(fam_allocate(g, "b3", 1 << 20, 0600, pub, &d[3]) == FAM_ENOSPACE);
    CEXPECT(strstr(fam_last_error(), "--quota-bytes") != NULL);
    CEXPECT(fam_allocate(g, "b3", 4096, 0600, pub, &d[3]) == FAM_ENOSPACE);
    CEXPECT(fam_deallocate(g, d[2]) == 0); /* gives 1 MiB back */
    CEXPECT(fam_allocate(g, "b2", 1 << 20, 0600, pub, &d[2]) == 0);
    /* 5 records: 3 items + 2 regions, not a third */
    CEXPECT(fam_create_region(g, "n1", 1 << 20, 0700, NULL, &mine) == 0);
    CEXPECT(fam_create_region(g, "n2", 1 << 20, 0700, NULL, &mine) == 0);
    CEXPECT(fam_create_region(g, "n3", 1 << 20, 0700, NULL, &mine) == FAM_ENOSPACE);
    CEXPECT(strstr(fam_last_error(), "--quota-objects 5") != NULL);
    _exit(0);
}

static void quotas_set_on_the_command_line_are_exact(void **state)
{
    (void)state;
    if (strcmp(test_provider(), "tcp") != 0) {
        print_message("another uid cannot use libfam over shm: tcp only\n");
        skip();
    }
    char addr[96];
    fam_t *f;
    fam_region_t *pub;
    pid_t famd = nobody_on_famd_with("--quota-objects=5", "--quota-bytes=3M", addr,
                                     sizeof addr, nobody_hits_explicit_quotas, &f, &pub);
    int st;
    /* root: past both quotas */
    fam_item_t *d[6];
    for (int i = 0; i < 6; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "r%d", i);
        CHECK_OK(fam_allocate(f, nm, 1 << 20, 0600, pub, &d[i]));
    }
    for (int i = 0; i < 6; i++) CHECK_OK(fam_deallocate(f, d[i]));
    fam_finalize(f);
    kill(famd, SIGTERM);
    assert_int_equal(waitpid(famd, &st, 0), famd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* --quota-backup-bytes: uid 65534 may keep 3 MiB of backups (two of a
 * 1 MiB item, with their headers, and not a third); writing one of them
 * again is no more; deleting one gives room back; root is not held. */
static void nobody_hits_the_backup_quota(const char *addr)
{
    fam_t *g = client(addr);
    CEXPECT(g != NULL);
    fam_region_t *pub;
    fam_item_t *d;
    fam_backup_info_t info;
    CEXPECT(fam_lookup_region(g, "pub", &pub) == 0);
    CEXPECT(fam_allocate(g, "src", 1 << 20, 0600, pub, &d) == 0);
    static char buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    CEXPECT(fam_put_blocking(g, buf, d, 0, sizeof buf) == 0);
    CEXPECT(fam_backup(g, d, "n0") == 0);
    CEXPECT(fam_backup(g, d, "n1") == 0);
    CEXPECT(fam_backup(g, d, "n2") == FAM_ENOSPACE);
    CEXPECT(strstr(fam_last_error(), "--quota-backup-bytes") != NULL);
    CEXPECT(strstr(fam_last_error(), "uid 65534") != NULL);
    CEXPECT(fam_stat_backup(g, "n2", &info) == FAM_ENOTFOUND); /* nothing left behind */
    CEXPECT(fam_backup(g, d, "n1") == 0);                   /* replacing: no more bytes */
    CEXPECT(fam_delete_backup(g, "n0") == 0);               /* gives room back */
    CEXPECT(fam_backup(g, d, "n2") == 0);
    CEXPECT(fam_backup(g, d, "n3") == FAM_ENOSPACE);
    CEXPECT(fam_stat_backup(g, "n1", &info) == 0 && info.size == 1 << 20);
    _exit(0);
}

static void backups_stop_at_the_uid_backup_quota(void **state)
{
    (void)state;
    if (strcmp(test_provider(), "tcp") != 0) {
        print_message("another uid cannot use libfam over shm: tcp only\n");
        skip();
    }
    char dir[] = "/tmp/kodiak-bakquota-XXXXXX", opt[96], addr[96];
    assert_non_null(mkdtemp(dir));
    snprintf(opt, sizeof opt, "--data-dir=%s", dir);
    fam_t *f;
    fam_region_t *pub;
    pid_t famd = nobody_on_famd_with(opt, "--quota-backup-bytes=3M", addr, sizeof addr,
                                     nobody_hits_the_backup_quota, &f, &pub);
    int st;
    /* root: four backups of 1 MiB, past the quota */
    fam_item_t *d;
    CHECK_OK(fam_allocate(f, "rootsrc", 1 << 20, 0600, pub, &d));
    for (int i = 0; i < 4; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "r%d", i);
        CHECK_OK(fam_backup(f, d, nm));
    }
    const char *left[] = {"n1", "n2", "r0", "r1", "r2", "r3"};
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) CHECK_OK(fam_delete_backup(f, left[i]));
    fam_finalize(f);
    kill(famd, SIGTERM);
    assert_int_equal(waitpid(famd, &st, 0), famd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(rmdir(dir), 0); /* every backup file was deleted */
}

int main(void)
{
    if (getuid() != 0) {
        fprintf(stderr, "test_durable must run as root (tmpfs, other uid)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_striped_backup_that_does_not_fit_leaves_the_old_one_whole),
        cmocka_unit_test(backup_leftovers_are_removed_at_start_and_stop),
        cmocka_unit_test(a_client_killed_at_each_step_of_a_striped_allocate),
        cmocka_unit_test(a_client_killed_at_each_step_of_an_interleaved_region_create),
        cmocka_unit_test(famds_killed_while_a_create_is_half_done),
        cmocka_unit_test(per_uid_quotas_stop_one_user_and_not_the_others),
        cmocka_unit_test(quotas_set_on_the_command_line_are_exact),
        cmocka_unit_test(backups_stop_at_the_uid_backup_quota),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    unmount_tmpfs();
    return rc;
}
