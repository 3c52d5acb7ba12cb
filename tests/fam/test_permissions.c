/* SPDX-License-Identifier: Apache-2.0 */
/* test_permissions.c — famd enforces owner, group and mode bits against the
 * uid the kernel reports for a client, on every request: another user
 * (uid/gid 65534, a forked child that drops root before it connects) gets
 * exactly what the bits allow, and whatever it is refused leaves the
 * objects byte for byte as root made them (root checks afterwards).
 *
 * With the tcp provider the other user runs libfam, and also sends control
 * requests raw (by id, skipping libfam's own checks): famd is the guard.
 * With shm it cannot run libfam against root's famd at all: libfabric's
 * shm provider creates every endpoint's shared-memory region mode 0600,
 * and widening famd's would let any local user forge the commands famd
 * acts on (docs/SECURITY.md). There the test proves that refusal, and
 * sends the same control requests raw; famd must judge them alike. The
 * data path of another user (get, put, RMA atomics) is checked on tcp.
 *
 * The same runs with famd on another (namespace) host and --auth munge
 * (ctest netns.munge.test_permissions, FAM_TEST_AUTH=munge): the raw
 * connections then reach famd at its address and present a MUNGE
 * credential (from the munged at $FAM_MUNGE_SOCKET) before anything else,
 * and famd must take root for root and the other user for 65534. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "fam/fam_c.h"
/* the wire format, to send requests libfam would never send, and the
 * descriptor layout, to play a client that ignores its read-only flag */
#include "../../src/fam/fam_internal.h"
#include <munge.h>

#define NOBODY 65534u

static struct famd_proc srv;
static fam_t *f; /* root's client */

static int is_tcp(void) { return strcmp(test_provider(), "tcp") == 0; }

static int setup(void **state)
{
    (void)state;
    if (getuid() != 0) {
        fprintf(stderr, "test_permissions must run as root\n");
        return -1;
    }
    if (famd_start(&srv, 64 << 20, NULL) != 0) return -1;
    f = client(srv.addr);
    if (!f) return -1;
    uint8_t a[FAMP_ADDR_MAX];
    test_fabric_addr(a, sizeof a, 0); /* names f's endpoint, before forks */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&srv);
    return 0;
}

/* ---- root's side ---------------------------------------------------------- */

#define ISIZE 4096

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static fam_region_t *mkregion(const char *name, mode_t mode)
{
    fam_region_t *r;
    CHECK_OK(fam_create_region(f, name, 1 << 20, mode, NULL, &r));
    return r;
}

/* An item of ISIZE bytes holding pattern(seed). */
static fam_item_t *mkitem(fam_region_t *r, const char *name, mode_t mode,
                          unsigned seed)
{
    fam_item_t *d;
    uint8_t b[ISIZE];
    pattern(b, sizeof b, seed);
    CHECK_OK(fam_allocate(f, name, ISIZE, mode, r, &d));
    CHECK_OK(fam_put_blocking(f, b, d, 0, ISIZE));
    return d;
}

static void assert_pattern(fam_item_t *d, unsigned seed)
{
    uint8_t want[ISIZE], got[ISIZE];
    pattern(want, sizeof want, seed);
    CHECK_OK(fam_get_blocking(f, got, d, 0, ISIZE));
    assert_memory_equal(got, want, ISIZE);
}

static uint64_t id_of(fam_item_t *d)
{
    fam_stat_t st;
    CHECK_OK(fam_stat(f, d, &st));
    return st.id;
}

static fam_stat_t stat_item(fam_item_t *d)
{
    fam_stat_t st;
    CHECK_OK(fam_stat(f, d, &st));
    return st;
}

static fam_stat_t stat_region(fam_region_t *r)
{
    fam_stat_t st;
    CHECK_OK(fam_stat_region(f, r, &st));
    return st;
}

/* ---- the other user ------------------------------------------------------- */

static int report_fd = -1; /* child: where a failed check is described */

/* In the child: a failed check reports its line and exits. No cmocka here:
 * its state belongs to the parent. */
#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            dprintf(report_fd, "line %d: %s (last libfam error: %s)",         \
                    __LINE__, #cond, fam_last_error());                       \
            _exit(1);                                                         \
        }                                                                     \
    } while (0)

/* What root tells the child (the child has its own copy after fork). */
struct ctx {
    const char *region, *item;
    uint64_t region_id, item_id;
    unsigned seed;
};

/* Run fn as uid/gid 65534 with no supplementary groups, in a child that
 * drops root before it opens any connection; fail with its report. */
static void as_nobody(void (*fn)(const struct ctx *), const struct ctx *c)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        report_fd = p[1];
        EXPECT(setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 &&
               setuid(NOBODY) == 0);
        EXPECT(getuid() == NOBODY && geteuid() == NOBODY && getgid() == NOBODY);
        EXPECT(setuid(0) != 0); /* really dropped */
        fn(c);
        _exit(0); /* _exit: the parent's libfabric state is not ours to tear down */
    }
    close(p[1]);
    char msg[1024] = "";
    size_t got = 0;
    struct pollfd pf = {p[0], POLLIN, 0};
    for (;;) {
        int n = poll(&pf, 1, 60000);
        if (n <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(p[0]);
            fail_msg("the other user's checks did not finish within 60 s");
        }
        ssize_t k = read(p[0], msg + got, sizeof msg - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    msg[got] = '\0';
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("as uid %u: %s (status 0x%x)", NOBODY,
                 got ? msg : "died without a report", st);
}

/* libfam as the other user: works on tcp; on shm it must be refused by the
 * provider, with the message that says why. */
static fam_t *nobody_client(void)
{
    fam_t *g = client(srv.addr);
    if (is_tcp()) {
        EXPECT(g != NULL);
    } else {
        EXPECT(g == NULL);
        EXPECT(strstr(fam_last_error(), "use the tcp provider") != NULL);
    }
    return g;
}

/* Raw control requests: a connection that says HELLO with a fabric
 * address famd can record (famd only sends to it for bulk requests, which
 * these connections never make). */
static int raw_io(int fd, void *p, size_t n, int sending)
{
    uint8_t *b = p;
    while (n) {
        ssize_t k = sending ? send(fd, b, n, MSG_NOSIGNAL) : recv(fd, b, n, 0);
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* One request; returns the reply's status (0 or FAM_E*), or 1 if the
 * connection failed. */
static uint32_t seq; /* of the raw requests */

static int raw_req(int fd, uint16_t op, const struct famp_req *q,
                   struct famp_info *o)
{
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, op, ++seq, 0, sizeof *q};
    struct famp_hdr r;
    if (raw_io(fd, &h, sizeof h, 1) || raw_io(fd, (void *)q, sizeof *q, 1) ||
        raw_io(fd, &r, sizeof r, 0) || r.magic != FAMP_MAGIC || r.seq != seq)
        return 1;
    static uint8_t body[FAMP_MAX_ERRMSG + sizeof(struct famp_info)];
    if (r.len > sizeof body || raw_io(fd, body, r.len, 0)) return 1;
    if (r.status == 0) {
        if (r.len != sizeof *o) return 1;
        memcpy(o, body, sizeof *o);
    }
    return r.status;
}

/* famd --auth munge answered HELLO with o: send AUTH with a credential of
 * ours for this connection's nonce; famd's answer says who we are now. */
static int raw_auth(int fd, const struct famp_info *o, struct famp_info *who)
{
    char ident[FAM_NAME_MAX + 1], payload[512], *cred = NULL;
    memcpy(ident, o->name, sizeof ident);
    ident[FAM_NAME_MAX] = '\0';
    uint64_t nonce[2] = {o->arg[0], o->arg[1]};
    famp_auth_payload(payload, sizeof payload, ident, nonce);
    munge_ctx_t ctx = munge_ctx_create();
    if (!ctx) return 1;
    const char *sock = getenv("FAM_MUNGE_SOCKET");
    munge_err_t e = sock && *sock ? munge_ctx_set(ctx, MUNGE_OPT_SOCKET, sock)
                                  : EMUNGE_SUCCESS;
    if (e == EMUNGE_SUCCESS) e = munge_encode(&cred, ctx, payload, (int)strlen(payload));
    munge_ctx_destroy(ctx);
    if (e != EMUNGE_SUCCESS) return 1;
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_AUTH, ++seq, 0, strlen(cred)};
    struct famp_hdr r;
    int rc = raw_io(fd, &h, sizeof h, 1) || raw_io(fd, cred, strlen(cred), 1) ||
             raw_io(fd, &r, sizeof r, 0) || r.status != 0 || r.len != sizeof *who ||
             raw_io(fd, who, sizeof *who, 0);
    free(cred);
    return rc;
}

static int raw_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (srv.host[0]) EXPECT(inet_pton(AF_INET, srv.host, &a.sin_addr) == 1); /* many hosts */
    EXPECT(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.provider, sizeof q.provider, "%s", test_provider());
    q.addrlen = test_fabric_addr(q.addr, sizeof q.addr, 9); /* fixture.h */
    EXPECT(raw_req(fd, FAMP_HELLO, &q, &o) == 0);
    if (o.flags & FAMP_F_AUTH) { /* famd --auth munge: who we are, by credential */
        EXPECT(getenv("FAM_TEST_AUTH") && !strcmp(getenv("FAM_TEST_AUTH"), "munge"));
        struct famp_info who;
        EXPECT(raw_auth(fd, &o, &who) == 0);
        EXPECT(who.uid == NOBODY && who.gid == NOBODY);
        EXPECT(raw_req(fd, FAMP_HELLO, &q, &o) == 0); /* then HELLO, as libfam does */
    }
    EXPECT(o.uid == NOBODY && o.gid == NOBODY); /* famd knows who we are */
    return fd;
}

static int raw_by_id(int fd, uint16_t op, uint64_t id, uint32_t mode)
{
    struct famp_req q = {0};
    struct famp_info o;
    q.id = id;
    q.mode = mode;
    q.size = 1 << 20;
    q.off = 0;
    return raw_req(fd, op, &q, &o);
}

static int raw_lookup(int fd, const char *item, const char *region,
                      struct famp_info *o)
{
    struct famp_req q = {0};
    snprintf(q.name, sizeof q.name, "%s", item);
    snprintf(q.name2, sizeof q.name2, "%s", region);
    return raw_req(fd, FAMP_ITEM_LOOKUP, &q, o);
}

static int raw_cas(int fd, uint64_t id, const uint64_t exp[2],
                   const uint64_t des[2], uint64_t old[2])
{
    struct famp_req q = {0};
    struct famp_info o;
    q.id = id;
    q.arg[0] = exp[0];
    q.arg[1] = exp[1];
    q.arg[2] = des[0];
    q.arg[3] = des[1];
    int rc = raw_req(fd, FAMP_CAS128, &q, &o);
    if (rc == 0) {
        old[0] = o.arg[0];
        old[1] = o.arg[1];
    }
    return rc;
}

/* ---- tests ------------------------------------------------------------------ */

static void kernel_uid_child(const struct ctx *c)
{
    int fd = raw_open(); /* checks HELLO's answer: uid and gid 65534 */
    struct famp_req q = {0};
    struct famp_info o;
    q.region_id = c->region_id;
    q.size = 100;
    q.mode = 0640;
    snprintf(q.name, sizeof q.name, "mine");
    EXPECT(raw_req(fd, FAMP_ITEM_ALLOC, &q, &o) == 0);
    EXPECT(o.uid == NOBODY && o.gid == NOBODY && o.mode == 0640);
    fam_t *g = nobody_client();
    if (g) {
        fam_item_t *d;
        fam_stat_t st;
        EXPECT(fam_lookup(g, "mine", c->region, &d) == 0);
        EXPECT(fam_stat(g, d, &st) == 0 && st.uid == NOBODY);
        fam_release(d);
        fam_finalize(g);
    }
    close(fd);
}

static void the_other_user_is_the_uid_the_kernel_reports(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-open", 0777);
    struct ctx c = {.region = "p-open", .region_id = stat_region(r).id};
    as_nobody(kernel_uid_child, &c);
    fam_item_t *d;
    CHECK_OK(fam_lookup(f, "mine", "p-open", &d));
    fam_stat_t st = stat_item(d);
    assert_int_equal(st.uid, NOBODY);
    assert_int_equal(st.gid, NOBODY);
    assert_int_equal(st.perm, 0640);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void private_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (g) {
        fam_item_t *d = NULL;
        EXPECT(fam_lookup(g, c->item, c->region, &d) == FAM_EPERM);
        EXPECT(d == NULL);
        fam_finalize(g);
    }
    /* asking by name or guessing the id is no better than libfam */
    int fd = raw_open();
    struct famp_info o;
    EXPECT(raw_lookup(fd, c->item, c->region, &o) == FAM_EPERM);
    EXPECT(raw_by_id(fd, FAMP_ITEM_STAT, c->item_id, 0) == FAM_EPERM);
    uint64_t z[2] = {0, 0}, old[2];
    EXPECT(raw_cas(fd, c->item_id, z, z, old) == FAM_EPERM);
    close(fd);
}

static void a_0600_item_is_refused_to_others(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-600", 0777);
    fam_item_t *d = mkitem(r, "secret", 0600, 1);
    struct ctx c = {.region = "p-600", .item = "secret", .item_id = id_of(d)};
    as_nobody(private_child, &c);
    assert_pattern(d, 1);
    assert_int_equal(stat_item(d).perm, 0600);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void read_only_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (g) {
        fam_item_t *d;
        uint8_t want[ISIZE], got[ISIZE], mine[ISIZE];
        pattern(want, ISIZE, c->seed);
        memset(mine, 0xee, sizeof mine);
        EXPECT(fam_lookup(g, c->item, c->region, &d) == 0);
        EXPECT(fam_get_blocking(g, got, d, 0, ISIZE) == 0);
        EXPECT(memcmp(got, want, ISIZE) == 0);
        EXPECT(fam_put_blocking(g, mine, d, 0, 64) == FAM_EPERM);
        EXPECT(fam_add_uint64(g, d, 0, 1) == FAM_EPERM);
        EXPECT(fam_swap_int32(g, d, 8, 7, (int32_t *)(void *)got) == FAM_EPERM);
        uint64_t idx[1] = {3};
        EXPECT(fam_scatter_blocking_index(g, mine, d, 1, idx, 8) == FAM_EPERM);
        uint64_t z[2] = {0, 0}, old[2];
        EXPECT(fam_compare_swap_int128(g, d, 0, z, z, old) == FAM_EPERM);
        /* reading atomics are allowed */
        uint64_t v;
        EXPECT(fam_fetch_uint64(g, d, 16, &v) == 0 && memcmp(&v, want + 16, 8) == 0);
        fam_release(d);
        fam_finalize(g);
        /* OpenFAM's c_fam_fetch_int128 is a read too */
        setenv("FAM_SERVERS", srv.addr, 1);
        setenv("FAM_PROVIDER", test_provider(), 1);
        c_fam *cf = c_fam_create();
        Fam_Options opts;
        memset(&opts, 0, sizeof opts);
        EXPECT(c_fam_initialize(cf, "g", &opts) == 0);
        c_fam_desc *cd = c_fam_lookup(cf, c->item, c->region);
        EXPECT(cd != NULL);
        int128_t v128 = 0;
        EXPECT(cd && c_fam_fetch_int128(cf, cd, 0, &v128) == 0 &&
               memcmp(&v128, want, 16) == 0);
        c_fam_finalize(cf, "g");
        c_fam_delete(cf);
    }
    int fd = raw_open();
    struct famp_info o;
    EXPECT(raw_lookup(fd, c->item, c->region, &o) == 0);
    EXPECT(o.key != 0 && !(o.flags & FAMP_F_WRITABLE)); /* a read-only key */
    uint64_t z[2] = {0, 0}, old[2];
    EXPECT(raw_cas(fd, c->item_id, z, z, old) == FAM_EPERM);
    close(fd);
}

static void a_0644_item_is_read_only_to_others(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-644", 0777);
    fam_item_t *d = mkitem(r, "ro", 0644, 2);
    struct ctx c = {.region = "p-644", .item = "ro", .item_id = id_of(d), .seed = 2};
    as_nobody(read_only_child, &c);
    assert_pattern(d, 2);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void forged_writable_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (!g) return; /* shm: no data path for another user at all */
    fam_item_t *d;
    EXPECT(fam_lookup(g, c->item, c->region, &d) == 0);
    EXPECT(!d->writable);
    /* a client that ignores what famd said and writes with the read-only
     * key: the provider checks the key against famd's registration and
     * fails the operation (tcp drops the connection) */
    d->writable = d->part[0].writable = 1;
    uint8_t mine[64];
    memset(mine, 0xee, sizeof mine);
    EXPECT(fam_put_blocking(g, mine, d, 0, sizeof mine) == FAM_EFABRIC);
    d->writable = d->part[0].writable = 1; /* the failed put refreshed them */
    EXPECT(fam_add_uint64(g, d, 64, 1) == FAM_EFABRIC);
    fam_release(d);
    fam_finalize(g);
}

static void a_read_only_key_cannot_write_even_if_the_client_ignores_it(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-forge", 0777);
    fam_item_t *d = mkitem(r, "ro", 0644, 3);
    struct ctx c = {.region = "p-forge", .item = "ro", .item_id = id_of(d)};
    as_nobody(forged_writable_child, &c);
    assert_pattern(d, 3);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void writable_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (g) {
        fam_item_t *d;
        uint8_t mine[ISIZE];
        pattern(mine, ISIZE, c->seed + 100);
        EXPECT(fam_lookup(g, c->item, c->region, &d) == 0);
        EXPECT(fam_put_blocking(g, mine, d, 0, ISIZE) == 0);
        fam_release(d);
        fam_finalize(g);
    }
    int fd = raw_open();
    struct famp_info o;
    EXPECT(raw_lookup(fd, c->item, c->region, &o) == 0);
    EXPECT(o.key != 0 && (o.flags & FAMP_F_WRITABLE)); /* a read-write key */
    /* a 128-bit compare-and-swap is done by famd itself: a write on shm too */
    uint8_t cur[ISIZE]; /* what the item holds now: our bytes on tcp */
    pattern(cur, ISIZE, is_tcp() ? c->seed + 100 : c->seed);
    uint64_t exp[2], des[2] = {0x1111111111111111ull, 0x2222222222222222ull}, old[2];
    memcpy(exp, cur, 16);
    EXPECT(raw_cas(fd, c->item_id, exp, des, old) == 0);
    EXPECT(old[0] == exp[0] && old[1] == exp[1]);
    close(fd);
}

static void a_0666_item_is_writable_by_others(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-666", 0777);
    fam_item_t *d = mkitem(r, "rw", 0666, 4);
    struct ctx c = {.region = "p-666", .item = "rw", .item_id = id_of(d), .seed = 4};
    as_nobody(writable_child, &c);
    uint8_t want[ISIZE], got[ISIZE];
    pattern(want, ISIZE, is_tcp() ? 104 : 4);
    uint64_t des[2] = {0x1111111111111111ull, 0x2222222222222222ull};
    memcpy(want, des, 16);
    CHECK_OK(fam_get_blocking(f, got, d, 0, ISIZE));
    assert_memory_equal(got, want, ISIZE);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void chmod_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (g) {
        fam_item_t *d;
        fam_region_t *r;
        EXPECT(fam_lookup(g, c->item, c->region, &d) == 0);
        EXPECT(fam_change_permissions(g, d, 0777) == FAM_EPERM);
        EXPECT(fam_lookup_region(g, c->region, &r) == 0);
        EXPECT(fam_change_region_permissions(g, r, 0777) == FAM_EPERM);
        fam_release(d);
        fam_release_region(r);
        fam_finalize(g);
    }
    int fd = raw_open();
    EXPECT(raw_by_id(fd, FAMP_ITEM_CHMOD, c->item_id, 0777) == FAM_EPERM);
    EXPECT(raw_by_id(fd, FAMP_REGION_CHMOD, c->region_id, 0777) == FAM_EPERM);
    close(fd);
}

static void only_the_owner_changes_permissions(void **state)
{
    (void)state;
    /* even write permission on the item and region is not ownership */
    fam_region_t *r = mkregion("p-chmod", 0777);
    fam_item_t *d = mkitem(r, "rw", 0666, 5);
    struct ctx c = {.region = "p-chmod", .item = "rw", .item_id = id_of(d),
                    .region_id = stat_region(r).id};
    as_nobody(chmod_child, &c);
    assert_int_equal(stat_item(d).perm, 0666);
    assert_int_equal(stat_region(r).perm, 0777);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void destroy_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (g) {
        fam_item_t *d;
        fam_region_t *r;
        EXPECT(fam_lookup(g, c->item, c->region, &d) == 0);
        EXPECT(fam_deallocate(g, d) == FAM_EPERM);
        EXPECT(fam_lookup_region(g, c->region, &r) == 0);
        EXPECT(fam_destroy_region(g, r) == FAM_EPERM);
        EXPECT(fam_resize_region(g, r, 1 << 21) == FAM_EPERM);
        fam_item_t *n;
        EXPECT(fam_allocate(g, "new", 64, 0666, r, &n) == FAM_EPERM);
        fam_release(d); /* the failed calls kept the descriptors */
        fam_release_region(r);
        fam_finalize(g);
    }
    int fd = raw_open();
    EXPECT(raw_by_id(fd, FAMP_ITEM_FREE, c->item_id, 0) == FAM_EPERM);
    EXPECT(raw_by_id(fd, FAMP_REGION_DESTROY, c->region_id, 0) == FAM_EPERM);
    EXPECT(raw_by_id(fd, FAMP_REGION_RESIZE, c->region_id, 0) == FAM_EPERM);
    struct famp_req q = {0};
    struct famp_info o;
    q.region_id = c->region_id;
    q.size = 64;
    q.mode = 0666;
    snprintf(q.name, sizeof q.name, "new");
    EXPECT(raw_req(fd, FAMP_ITEM_ALLOC, &q, &o) == FAM_EPERM);
    close(fd);
}

static void without_write_permission_others_cannot_free_destroy_or_allocate(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-keep", 0755);
    fam_item_t *d = mkitem(r, "keep", 0644, 6);
    struct ctx c = {.region = "p-keep", .item = "keep", .item_id = id_of(d),
                    .region_id = stat_region(r).id};
    as_nobody(destroy_child, &c);
    /* everything is still there, unchanged */
    fam_region_t *r2;
    fam_item_t *d2, *n;
    CHECK_OK(fam_lookup_region(f, "p-keep", &r2));
    CHECK_OK(fam_lookup(f, "keep", "p-keep", &d2));
    assert_pattern(d2, 6);
    fam_stat_t rs = stat_region(r2);
    assert_int_equal(rs.size, 1 << 20);
    assert_int_equal(rs.used, ISIZE);
    assert_int_equal(fam_lookup(f, "new", "p-keep", &n), FAM_ENOTFOUND);
    fam_release(d);
    fam_release(d2);
    fam_release_region(r2);
    CHECK_OK(fam_destroy_region(f, r));
}

static void closed_region_child(const struct ctx *c)
{
    fam_t *g = nobody_client();
    if (g) {
        fam_region_t *r = NULL;
        fam_stat_t st;
        EXPECT(fam_lookup_region(g, c->region, &r) == FAM_EPERM);
        EXPECT(r == NULL);
        /* as in OpenFAM, an item is judged by its own bits: the region's
         * do not hide a 0644 item from a user who knows its name */
        fam_item_t *d;
        EXPECT(fam_lookup(g, c->item, c->region, &d) == 0);
        EXPECT(fam_stat(g, d, &st) == 0 && st.perm == 0644);
        fam_release(d);
        fam_finalize(g);
    }
    int fd = raw_open();
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.name, sizeof q.name, "%s", c->region);
    EXPECT(raw_req(fd, FAMP_REGION_LOOKUP, &q, &o) == FAM_EPERM);
    EXPECT(raw_by_id(fd, FAMP_REGION_STAT, c->region_id, 0) == FAM_EPERM);
    memset(&q, 0, sizeof q);
    q.region_id = c->region_id;
    q.size = 64;
    q.mode = 0666;
    snprintf(q.name, sizeof q.name, "new");
    EXPECT(raw_req(fd, FAMP_ITEM_ALLOC, &q, &o) == FAM_EPERM);
    close(fd);
}

/* Listing names is reading the region: refused on a 0700 region; on an
 * open one the other user sees every name (a 0600 item's too, as `ls`
 * shows files it cannot open) and gets no key with them. */
static void list_child(const struct ctx *c)
{
    int fd = raw_open();
    struct famp_req q = {0};
    struct famp_info o;
    q.id = c->region_id; /* the 0700 region */
    EXPECT(raw_req(fd, FAMP_ITEM_LIST, &q, &o) == FAM_EPERM);
    q.id = c->item_id;   /* the 0755 region */
    EXPECT(raw_req(fd, FAMP_ITEM_LIST, &q, &o) == 0);
    EXPECT(strcmp(o.name, "listed") == 0 && o.key == 0);
    q.off = o.arg[0] + 1;
    EXPECT(raw_req(fd, FAMP_ITEM_LIST, &q, &o) == FAM_ENOTFOUND);
    close(fd);
    fam_t *g = nobody_client();
    if (g) {
        fam_region_t *r;
        char **names;
        size_t n;
        EXPECT(fam_lookup_region(g, "p-list-open", &r) == 0);
        EXPECT(fam_list_items(g, r, &names, &n) == 0 && n == 1 &&
               strcmp(names[0], "listed") == 0);
        fam_free_names(names, n);
        fam_release_region(r);
        fam_finalize(g);
    }
}

static void listing_items_needs_read_permission_on_the_region(void **state)
{
    (void)state;
    fam_region_t *closed = mkregion("p-list", 0700), *open = mkregion("p-list-open", 0755);
    fam_item_t *a = mkitem(closed, "hidden", 0644, 1), *b = mkitem(open, "listed", 0600, 2);
    struct ctx c = {.region_id = stat_region(closed).id,
                    .item_id = stat_region(open).id};
    as_nobody(list_child, &c);
    fam_release(a);
    fam_release(b);
    CHECK_OK(fam_destroy_region(f, closed));
    CHECK_OK(fam_destroy_region(f, open));
}

static void a_0700_region_cannot_be_read_or_allocated_in_by_others(void **state)
{
    (void)state;
    fam_region_t *r = mkregion("p-700", 0700);
    fam_item_t *d = mkitem(r, "inside", 0644, 7);
    struct ctx c = {.region = "p-700", .item = "inside", .item_id = id_of(d),
                    .region_id = stat_region(r).id};
    as_nobody(closed_region_child, &c);
    fam_stat_t rs = stat_region(r);
    assert_int_equal(rs.used, ISIZE); /* nothing was allocated */
    assert_int_equal(rs.perm, 0700);
    assert_pattern(d, 7);
    fam_release(d);
    CHECK_OK(fam_destroy_region(f, r));
}

static void wide_child(const struct ctx *c)
{
    fam_t *g = client(c->region); /* both servers */
    if (!is_tcp()) {
        EXPECT(g == NULL);
        return;
    }
    EXPECT(g != NULL);
    static const char *regions[] = {"p-wide-a", "p-wide-b"}; /* homes 1, 0 */
    static const char *items[] = {"one", "three"};           /* 1, 3 stripes */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            fam_region_t *r = NULL;
            fam_item_t *d;
            uint8_t want[3 * ISIZE], got[3 * ISIZE];
            uint64_t n = j ? 3 * ISIZE : ISIZE;
            pattern(want, n, (unsigned)(10 + i * 2 + j));
            EXPECT(fam_lookup_region(g, regions[i], &r) == FAM_EPERM);
            EXPECT(fam_lookup(g, items[j], regions[i], &d) == 0);
            EXPECT(fam_item_size(d) == n);
            EXPECT(fam_get_blocking(g, got, d, 0, n) == 0);
            EXPECT(memcmp(got, want, n) == 0);
            EXPECT(fam_put_blocking(g, got, d, 0, 8) == FAM_EPERM);
            fam_release(d);
            EXPECT(fam_lookup(g, "none", regions[i], &d) == FAM_ENOTFOUND);
        }
    fam_finalize(g);
}

static void items_of_a_closed_interleaved_region_are_found_by_their_own_bits(void **state)
{
    (void)state;
    struct famd_proc s2;
    assert_int_equal(famd_start(&s2, 16 << 20, NULL), 0);
    char both[200];
    snprintf(both, sizeof both, "%s,%s", srv.addr, s2.addr);
    fam_t *w = client(both);
    assert_non_null(w);
    fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE, .stripe_size = ISIZE};
    const char *regions[] = {"p-wide-a", "p-wide-b"};
    fam_region_t *r[2];
    for (int i = 0; i < 2; i++) {
        CHECK_OK(fam_create_region(w, regions[i], 1 << 20, 0700, &at, &r[i]));
        for (int j = 0; j < 2; j++) {
            uint8_t b[3 * ISIZE];
            uint64_t n = j ? 3 * ISIZE : ISIZE;
            fam_item_t *d;
            pattern(b, n, (unsigned)(10 + i * 2 + j));
            CHECK_OK(fam_allocate(w, j ? "three" : "one", n, 0644, r[i], &d));
            CHECK_OK(fam_put_blocking(w, b, d, 0, n));
            fam_release(d);
        }
    }
    struct ctx c = {.region = both};
    as_nobody(wide_child, &c);
    for (int i = 0; i < 2; i++) CHECK_OK(fam_destroy_region(w, r[i]));
    fam_finalize(w);
    famd_stop(&s2);
}

static void pool_file_child(const struct ctx *c)
{
    EXPECT(open(c->item, O_RDONLY) < 0 && errno == EACCES);
    fam_options_t o = {.servers = c->region, .provider = test_provider(),
                       .timeout_ms = 5000, .model = "shared_memory"};
    fam_t *g = NULL;
    int rc = fam_initialize(&o, &g);
    if (is_tcp()) {
        EXPECT(rc == 0 && fam_num_local_servers(g) == 0); /* on the fabric */
        fam_finalize(g);
    } else {
        EXPECT(rc < 0);
    }
}

static void other_users_cannot_map_the_pool_file(void **state)
{
    (void)state;
    /* a directory others may enter, so that only the file's mode decides */
    char dir[300], pool[320];
    snprintf(dir, sizeof dir, "%s/open", test_tmpdir());
    assert_int_equal(chmod(test_tmpdir(), 0711), 0);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(pool, sizeof pool, "%s/pool", dir);
    struct famd_proc p;
    assert_int_equal(famd_start(&p, 16 << 20, pool), 0);
    struct stat st;
    assert_int_equal(stat(pool, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    struct ctx c = {.region = p.addr, .item = pool};
    as_nobody(pool_file_child, &c);
    famd_stop(&p);
}

static void libfam_child(const struct ctx *c)
{
    (void)c;
    fam_t *g = nobody_client(); /* tcp: connects; shm: refused, saying why */
    if (g) fam_finalize(g);
}

static void libfam_serves_other_users_on_tcp_and_shm_refuses_them(void **state)
{
    (void)state;
    struct ctx c = {0};
    as_nobody(libfam_child, &c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_other_user_is_the_uid_the_kernel_reports),
        cmocka_unit_test(a_0600_item_is_refused_to_others),
        cmocka_unit_test(a_0644_item_is_read_only_to_others),
        cmocka_unit_test(a_read_only_key_cannot_write_even_if_the_client_ignores_it),
        cmocka_unit_test(a_0666_item_is_writable_by_others),
        cmocka_unit_test(only_the_owner_changes_permissions),
        cmocka_unit_test(without_write_permission_others_cannot_free_destroy_or_allocate),
        cmocka_unit_test(a_0700_region_cannot_be_read_or_allocated_in_by_others),
        cmocka_unit_test(listing_items_needs_read_permission_on_the_region),
        cmocka_unit_test(items_of_a_closed_interleaved_region_are_found_by_their_own_bits),
        cmocka_unit_test(other_users_cannot_map_the_pool_file),
        cmocka_unit_test(libfam_serves_other_users_on_tcp_and_shm_refuses_them),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
