/* SPDX-License-Identifier: Apache-2.0 */
/* test_identity.c — famd takes a client's identity only from what the
 * kernel guarantees for the whole connection, and libfam says why a
 * connection failed.
 *
 * - On famd's Unix socket the uid famd assigns (and reports in the HELLO
 *   reply) is the connecting process's own: root is 0, a child that
 *   dropped to 65534 is 65534; over TCP, loopback included, everyone is
 *   nobody (65534), also root.
 * - The attack that made a local user root: as uid 65534, connect over TCP
 *   loopback, send HELLO and chmod/lookup requests for root's 0600 region
 *   and item, and close at once, 300 times. famd used to read the owner of
 *   the client's socket from /proc/net/tcp, where a socket already closed
 *   is listed as uid 0, and ran the requests as root. Root's objects must
 *   keep mode 0600.
 * - libfam uses the Unix socket for a famd on this host unless
 *   FAM_CONTROL=tcp, and a refused connection is reported as refused (it
 *   said "Operation now in progress"). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
/* the wire format, and the uid famd reported to libfam (struct fam) */
#include "../../src/fam/fam_internal.h"

#define NOBODY 65534u
#define ROUNDS 300

static struct famd_proc srv;
static fam_t *f;                       /* root's client */
static uint64_t vault_id, secret_id;   /* root's 0600 region and item */

static int setup(void **state)
{
    (void)state;
    if (getuid() != 0) {
        fprintf(stderr, "test_identity must run as root\n");
        return -1;
    }
    unsetenv("FAM_CONTROL");
    if (famd_start(&srv, 64 << 20, NULL) != 0 || !(f = client(srv.addr)))
        return -1;
    uint8_t a[FAMP_ADDR_MAX];
    test_fabric_addr(a, sizeof a, 0); /* before the forks (fixture.h) */
    fam_region_t *r;
    fam_item_t *d;
    fam_stat_t st;
    fam_item_t *g;
    if (fam_create_region(f, "vault", 1 << 20, 0600, NULL, &r) ||
        fam_allocate(f, "secret", 4096, 0600, r, &d) || fam_stat(f, d, &st) ||
        fam_allocate(f, "grouped", 4096, 0640, r, &g)) /* group 0 may read */
        return -1;
    fam_release(g);
    vault_id = st.region_id;
    secret_id = st.id;
    fam_release(d);
    fam_release_region(r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_finalize(f);
    famd_stop(&srv);
    return 0;
}

/* ---- raw connections ------------------------------------------------------ */

static int tcp_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    return fd;
}

static int unix_open(int port)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un a;
    socklen_t al = famp_unix_addr(&a, port);
    if (connect(fd, (struct sockaddr *)&a, al) != 0) { close(fd); return -1; }
    return fd;
}

/* Append one request to buf at *n. */
static void put_req(uint8_t *buf, size_t *n, uint16_t op, uint32_t seq,
                    const struct famp_req *q)
{
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, op, seq, 0, sizeof *q};
    memcpy(buf + *n, &h, sizeof h);
    memcpy(buf + *n + sizeof h, q, sizeof *q);
    *n += sizeof h + sizeof *q;
}

/* A HELLO with a fabric address famd can record (it sends to it only for
 * bulk requests, never made here). */
static void hello_req(struct famp_req *q, unsigned n)
{
    memset(q, 0, sizeof *q);
    snprintf(q->provider, sizeof q->provider, "%s", test_provider());
    q->addrlen = test_fabric_addr(q->addr, sizeof q->addr, n);
}

static int io_all(int fd, void *p, size_t n, int sending)
{
    uint8_t *b = p;
    while (n) {
        struct pollfd pf = {fd, sending ? POLLOUT : POLLIN, 0};
        if (poll(&pf, 1, 10000) != 1) return -1;
        ssize_t k = sending ? send(fd, b, n, MSG_NOSIGNAL) : recv(fd, b, n, 0);
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Say HELLO on fd and read the reply: its status; *o holds the body of a
 * success. 1 if the connection failed. */
static int say_hello(int fd, unsigned n, struct famp_info *o)
{
    struct famp_req q;
    uint8_t buf[sizeof(struct famp_hdr) + sizeof q];
    size_t len = 0;
    hello_req(&q, n);
    put_req(buf, &len, FAMP_HELLO, 1, &q);
    struct famp_hdr r;
    if (io_all(fd, buf, len, 1) || io_all(fd, &r, sizeof r, 0)) return 1;
    static uint8_t body[FAMP_MAX_ERRMSG + sizeof(struct famp_info)];
    if (r.magic != FAMP_MAGIC || r.len > sizeof body || io_all(fd, body, r.len, 0))
        return 1;
    if (r.status == 0) {
        if (r.len != sizeof *o) return 1;
        memcpy(o, body, sizeof *o);
    }
    return r.status;
}

/* ---- as another user ------------------------------------------------------- */

/* Run fn as uid/gid 65534 without supplementary groups in a child that
 * drops root first; fn returns 0 or a line number. Fails the test with it. */
static void in_child(int (*fn)(void), int drop)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (drop && (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
                     setresuid(NOBODY, NOBODY, NOBODY) || setuid(0) == 0))
            _exit(2);
        _exit(fn()); /* _exit: root's libfam state is not ours to tear down */
    }
    int st;
    for (int i = 0; i < 1200; i++) { /* 60 s */
        if (waitpid(pid, &st, WNOHANG) == pid) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("as uid %u: failed at line %d mod 256 (status 0x%x)", NOBODY,
                         WIFEXITED(st) ? WEXITSTATUS(st) : -1, st);
            return;
        }
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the other user's part did not finish within 60 s");
}

static void as_nobody(int (*fn)(void)) { in_child(fn, 1); }

/* In the child: a failed check exits with its line number (mod 256). */
#define CHILD_CHECK(cond) do { if (!(cond)) return __LINE__ % 256 ? __LINE__ % 256 : 1; } while (0)

/* ITEM_LOOKUP of root's "grouped" (0640, group 0) on the Unix socket as
 * 65534, with group 0 as a supplementary group or without. */
static int lookup_grouped(int with_group0)
{
    gid_t zero = 0;
    if (setgroups(with_group0 ? 1 : 0, &zero) || setresgid(NOBODY, NOBODY, NOBODY) ||
        setresuid(NOBODY, NOBODY, NOBODY))
        return 2;
    int fd = unix_open(srv.port);
    struct famp_info o;
    CHILD_CHECK(fd >= 0 && say_hello(fd, 5, &o) == 0 && o.uid == NOBODY);
    struct famp_req q = {0};
    snprintf(q.name, sizeof q.name, "grouped");
    snprintf(q.name2, sizeof q.name2, "vault");
    uint8_t buf[sizeof(struct famp_hdr) + sizeof q];
    size_t n = 0;
    put_req(buf, &n, FAMP_ITEM_LOOKUP, 2, &q);
    struct famp_hdr r;
    static uint8_t body[FAMP_MAX_ERRMSG + sizeof(struct famp_info)];
    CHILD_CHECK(io_all(fd, buf, n, 1) == 0 && io_all(fd, &r, sizeof r, 0) == 0);
    CHILD_CHECK(r.len <= sizeof body && io_all(fd, body, r.len, 0) == 0);
    if (with_group0) CHILD_CHECK(r.status == 0);
    else CHILD_CHECK(r.status == FAM_EPERM);
    close(fd);
    return 0;
}

static int grouped_with_group0(void) { return lookup_grouped(1); }
static int grouped_without_group0(void) { return lookup_grouped(0); }

/* The attack: TCP, HELLO + chmod + chmod + lookup, close at once. */
static int attack_over_tcp(void)
{
    for (unsigned i = 0; i < ROUNDS; i++) {
        int fd = tcp_open(srv.port);
        CHILD_CHECK(fd >= 0);
        static uint8_t buf[4 * (sizeof(struct famp_hdr) + sizeof(struct famp_req))];
        size_t n = 0;
        struct famp_req q;
        hello_req(&q, i);
        put_req(buf, &n, FAMP_HELLO, 1, &q);
        memset(&q, 0, sizeof q);
        q.id = vault_id;
        q.mode = 0666;
        put_req(buf, &n, FAMP_REGION_CHMOD, 2, &q);
        q.id = secret_id;
        put_req(buf, &n, FAMP_ITEM_CHMOD, 3, &q);
        memset(&q, 0, sizeof q);
        snprintf(q.name, sizeof q.name, "secret");
        snprintf(q.name2, sizeof q.name2, "vault");
        put_req(buf, &n, FAMP_ITEM_LOOKUP, 4, &q);
        CHILD_CHECK(send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n);
        close(fd); /* at once */
    }
    /* one more connection, answered: famd takes connections in order and
     * had every byte above before this one existed, so by this reply it
     * has handled all of them. Under load famd may not have seen all the
     * closes yet, and refuses a connection over its per-host cap (256)
     * until it has: try again for up to 10 s */
    struct famp_info o;
    int said = -1;
    for (int tries = 0; tries < 200 && said != 0; tries++) {
        int fd = tcp_open(srv.port);
        said = fd >= 0 ? say_hello(fd, 9999, &o) : -1;
        if (fd >= 0)
            close(fd);
        if (said != 0)
            usleep(50000);
    }
    CHILD_CHECK(said == 0);
    CHILD_CHECK(o.uid == NOBODY);
    return 0;
}

static void a_tcp_client_that_closes_at_once_never_acts_as_root(void **state)
{
    (void)state;
    as_nobody(attack_over_tcp);
    fam_region_t *r;
    fam_item_t *d;
    fam_stat_t st;
    CHECK_OK(fam_lookup_region(f, "vault", &r));
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.perm, 0600);
    CHECK_OK(fam_lookup(f, "secret", "vault", &d));
    CHECK_OK(fam_stat(f, d, &st));
    assert_int_equal(st.perm, 0600);
    fam_release(d);
    fam_release_region(r);
}

/* HELLO on the Unix socket as 65534: famd says 65534, and refuses the
 * chmod of root's region; over TCP nobody too. */
static int hello_as_nobody(void)
{
    struct famp_info o;
    int fd = unix_open(srv.port);
    CHILD_CHECK(fd >= 0 && say_hello(fd, 1, &o) == 0);
    CHILD_CHECK(o.uid == NOBODY && o.gid == NOBODY);
    close(fd);
    fd = tcp_open(srv.port);
    CHILD_CHECK(fd >= 0 && say_hello(fd, 2, &o) == 0);
    CHILD_CHECK(o.uid == NOBODY && o.gid == NOBODY);
    close(fd);
    return 0;
}

static void the_uid_in_hello_is_the_kernels_on_the_unix_socket_and_nobody_over_tcp(void **state)
{
    (void)state;
    struct famp_info o;
    int fd = unix_open(srv.port);
    assert_true(fd >= 0);
    assert_int_equal(say_hello(fd, 3, &o), 0);
    assert_int_equal(o.uid, 0);
    assert_int_equal(o.gid, 0);
    close(fd);
    fd = tcp_open(srv.port); /* root, but over TCP: unauthenticated */
    assert_true(fd >= 0);
    assert_int_equal(say_hello(fd, 4, &o), 0);
    assert_int_equal(o.uid, NOBODY);
    close(fd);
    as_nobody(hello_as_nobody);
}

/* Groups are the connecting process's own, as the kernel recorded them at
 * connect() (SO_PEERGROUPS), not the passwd entry's. */
static void supplementary_groups_are_the_connecting_processs(void **state)
{
    (void)state;
    in_child(grouped_with_group0, 0);    /* drops to 65534 itself */
    in_child(grouped_without_group0, 0);
}

/* libfam picks the Unix socket for a famd on this host (famd says root),
 * TCP when told to (famd says nobody). */
static void libfam_uses_the_unix_socket_unless_told_tcp(void **state)
{
    (void)state;
    assert_int_equal(f->srv[0].uid, 0);
    setenv("FAM_CONTROL", "tcp", 1);
    fam_t *g = client(srv.addr);
    unsetenv("FAM_CONTROL");
    assert_non_null(g);
    assert_int_equal(g->srv[0].uid, NOBODY);
    /* as nobody it cannot look up root's 0600 item */
    fam_item_t *d;
    assert_int_equal(fam_lookup(g, "secret", "vault", &d), FAM_EPERM);
    fam_finalize(g);
    setenv("FAM_CONTROL", "unix", 1);
    g = client(srv.addr);
    unsetenv("FAM_CONTROL");
    assert_non_null(g);
    assert_int_equal(g->srv[0].uid, 0);
    fam_finalize(g);
}

/* ---- connect errors ---------------------------------------------------------- */

/* A loopback port nothing listens on (bound, so nobody else takes it). */
static int dead_port(int *hold)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    *hold = fd;
    return ntohs(a.sin_port);
}

static void expect_refused(const char *servers, const char *control)
{
    if (control) setenv("FAM_CONTROL", control, 1);
    fam_options_t o = {.servers = servers, .provider = test_provider(),
                       .timeout_ms = 5000};
    fam_t *g = NULL;
    int rc = fam_initialize(&o, &g);
    unsetenv("FAM_CONTROL");
    assert_int_equal(rc, FAM_EUNREACHABLE);
    assert_null(g);
    const char *msg = fam_last_error();
    if (!strstr(msg, "Connection refused") || strstr(msg, "in progress"))
        fail_msg("FAM_CONTROL=%s: '%s' does not say the connection was "
                 "refused", control ? control : "(unset)", msg);
}

static void a_refused_connection_is_reported_as_refused(void **state)
{
    (void)state;
    int hold, port = dead_port(&hold);
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
    expect_refused(servers, NULL);
    expect_refused(servers, "tcp");
    expect_refused(servers, "unix");
    close(hold);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_tcp_client_that_closes_at_once_never_acts_as_root),
        cmocka_unit_test(the_uid_in_hello_is_the_kernels_on_the_unix_socket_and_nobody_over_tcp),
        cmocka_unit_test(supplementary_groups_are_the_connecting_processs),
        cmocka_unit_test(libfam_uses_the_unix_socket_unless_told_tcp),
        cmocka_unit_test(a_refused_connection_is_reported_as_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
