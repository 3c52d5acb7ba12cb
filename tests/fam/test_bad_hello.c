/* SPDX-License-Identifier: Apache-2.0 */
/* test_bad_hello.c — a malformed fabric address in HELLO fails that one
 * connection, never famd.
 *
 * famd puts the address a client gives in HELLO into its libfabric address
 * vector; before it checked the address, one HELLO with a malformed one
 * (seen over tcp: "cannot add the client's fabric address" for every later
 * client, root included, until famd restarted) stopped famd serving
 * everyone. Here raw connections send HELLOs with addresses of the wrong
 * length, of the wrong family, with a zero port, with garbage bytes, names
 * without a terminator, names that are not a Kodiak shm endpoint's, ...;
 * each must get a clear error that names the fabric address (not success,
 * not a hang, not a crash), and after each one a normal libfam client, as
 * root, must still connect and read back known bytes. The same for a
 * burst of hundreds of bad HELLOs (nothing of them may pile up in famd),
 * from the Unix socket (root) and over TCP (nobody). A copy request naming
 * a malformed destination famd address is refused the same way. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "../../src/fam/fam_internal.h" /* the wire format; a client's token */

#define KSIZE 4096u

static struct famd_proc srv;
static uint8_t kref[KSIZE];

static int is_tcp(void) { return strcmp(test_provider(), "tcp") == 0; }

/* A raw control connection: the Unix socket (root) or TCP (nobody). */
static int raw_connect(int over_tcp)
{
    int fd;
    if (over_tcp) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)srv.port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    } else {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un a;
        socklen_t al = famp_unix_addr(&a, srv.port);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&a, al), 0);
    }
    return fd;
}

static void recv_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) != 1) fail_msg("famd did not answer HELLO");
        ssize_t k = recv(fd, b, n, 0);
        if (k <= 0) fail_msg("famd closed the connection without an answer");
        b += k;
        n -= (size_t)k;
    }
}

/* Send HELLO with this address; returns famd's status, and its message
 * in msg (for an error). */
static int hello_with(int fd, const void *addr, uint32_t len, char *msg,
                      size_t msglen)
{
    struct {
        struct famp_hdr h;
        struct famp_req q;
    } m;
    memset(&m, 0, sizeof m);
    m.h = (struct famp_hdr){FAMP_MAGIC, FAMP_VERSION, FAMP_HELLO, 7, 0,
                            sizeof m.q};
    snprintf(m.q.provider, sizeof m.q.provider, "%s", test_provider());
    m.q.addrlen = len;
    memcpy(m.q.addr, addr, len < sizeof m.q.addr ? len : sizeof m.q.addr);
    assert_int_equal(send(fd, &m, sizeof m, MSG_NOSIGNAL), (ssize_t)sizeof m);
    struct famp_hdr r;
    recv_all(fd, &r, sizeof r);
    assert_int_equal(r.magic, FAMP_MAGIC);
    assert_true(r.len <= sizeof(struct famp_info));
    uint8_t body[sizeof(struct famp_info)];
    recv_all(fd, body, r.len);
    if (r.status < 0) {
        size_t n = r.len < msglen - 1 ? r.len : msglen - 1;
        memcpy(msg, body, n);
        msg[n] = '\0';
    } else {
        assert_int_equal(r.len, sizeof(struct famp_info));
        msg[0] = '\0';
    }
    return r.status;
}

/* A normal client (root, on the Unix socket) connects and reads the known
 * bytes: famd still serves everyone. */
static void assert_famd_serves(void)
{
    int st;
    assert_int_equal(waitpid(srv.pid, &st, WNOHANG), 0);
    fam_t *g = client(srv.addr);
    if (!g) fail_msg("a normal client cannot connect: %s", fam_last_error());
    fam_item_t *d;
    uint8_t got[KSIZE];
    CHECK_OK(fam_lookup(g, "known", "hello", &d));
    CHECK_OK(fam_get_blocking(g, got, d, 0, KSIZE));
    assert_memory_equal(got, kref, KSIZE);
    /* bulk traffic goes to the address famd holds for this client */
    uint64_t idx[2] = {0, 5}, v[2];
    CHECK_OK(fam_gather_blocking_index(g, v, d, 2, idx, 8));
    assert_memory_equal(&v[0], kref, 8);
    assert_memory_equal(&v[1], kref + 40, 8);
    fam_release(d);
    fam_finalize(g);
}

/* One malformed address. */
struct bad {
    const char *what;
    uint8_t addr[FAMP_ADDR_MAX];
    uint32_t len;
};

static size_t bad_addresses(struct bad *b, size_t max)
{
    size_t n = 0;
    memset(b, 0, max * sizeof *b);
#define ADD(w) (assert_true(n < max), b[n].what = (w), &b[n++])
    struct bad *x;
    if (is_tcp()) {
        struct sockaddr_in good = {.sin_family = AF_INET, .sin_port = htons(40000)};
        good.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        x = ADD("3 bytes");
        memcpy(x->addr, &good, 3);
        x->len = 3;
        x = ADD("a sockaddr_in cut short");
        memcpy(x->addr, &good, sizeof good - 1);
        x->len = sizeof good - 1;
        x = ADD("a sockaddr_in with bytes after it");
        memcpy(x->addr, &good, sizeof good);
        x->len = sizeof good + 8;
        x = ADD("all zero");
        x->len = sizeof good;
        x = ADD("an unknown address family");
        memcpy(x->addr, &good, sizeof good);
        x->addr[0] = 0xcd; x->addr[1] = 0xab;
        x->len = sizeof good;
        x = ADD("AF_UNIX");
        memcpy(x->addr, &good, sizeof good);
        x->addr[0] = AF_UNIX; x->addr[1] = 0;
        x->len = sizeof good;
        x = ADD("port 0");
        struct sockaddr_in p0 = good;
        p0.sin_port = 0;
        memcpy(x->addr, &p0, sizeof p0);
        x->len = sizeof p0;
        x = ADD("address 0.0.0.0");
        struct sockaddr_in a0 = good;
        a0.sin_addr.s_addr = 0;
        memcpy(x->addr, &a0, sizeof a0);
        x->len = sizeof a0;
        x = ADD("an IPv6 address");
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
        s6.sin6_addr = in6addr_loopback;
        memcpy(x->addr, &s6, sizeof s6);
        x->len = sizeof s6;
        x = ADD("256 bytes of 0xff");
        memset(x->addr, 0xff, FAMP_ADDR_MAX);
        x->len = FAMP_ADDR_MAX;
    } else {
        x = ADD("no terminator");
        memset(x->addr, 'k', 40);
        x->len = 40;
        x = ADD("an empty name");
        x->len = 1;
        x = ADD("a name ending early");
        memcpy(x->addr, "kodiak-1-0123456789abcdef\0junk", 30);
        x->len = 30;
        x = ADD("not a Kodiak endpoint name");
        x->len = (uint32_t)snprintf((char *)x->addr, FAMP_ADDR_MAX,
                                    "someone-else") + 1;
        x = ADD("a path");
        x->len = (uint32_t)snprintf((char *)x->addr, FAMP_ADDR_MAX,
                                    "../../etc/passwd") + 1;
        x = ADD("a name with a slash");
        x->len = (uint32_t)snprintf((char *)x->addr, FAMP_ADDR_MAX,
                                    "kodiak-1-0123456789abcdef/x") + 1;
        x = ADD("a name of 255 bytes");
        memset(x->addr, 'k', 255);
        memcpy(x->addr, "kodiak-1-", 9);
        x->len = 256;
        x = ADD("control bytes");
        x->len = (uint32_t)snprintf((char *)x->addr, FAMP_ADDR_MAX,
                                    "kodiak-1-\x01\x02\x03") + 1;
        x = ADD("256 bytes of 0xff");
        memset(x->addr, 0xff, FAMP_ADDR_MAX);
        x->len = FAMP_ADDR_MAX;
    }
#undef ADD
    return n;
}

static int setup(void **state)
{
    (void)state;
    unsetenv("FAM_CONTROL");
    if (famd_start(&srv, 64 << 20, NULL) != 0) return -1;
    fam_t *f = client(srv.addr);
    if (!f) return -1;
    fam_region_t *r;
    fam_item_t *d;
    for (size_t i = 0; i < KSIZE; i++) kref[i] = (uint8_t)(i * 7 + 3);
    int rc = fam_create_region(f, "hello", 1 << 20, 0600, NULL, &r) ||
             fam_allocate(f, "known", KSIZE, 0600, r, &d) ||
             fam_put_blocking(f, kref, d, 0, KSIZE);
    fam_release(d);
    fam_release_region(r);
    fam_finalize(f);
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    famd_stop(&srv); /* fails the program unless famd exits cleanly */
    return 0;
}

static void each_malformed_address_fails_only_its_connection(void **state)
{
    (void)state;
    struct bad b[16];
    size_t n = bad_addresses(b, 16);
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < n; i++) {
            int fd = raw_connect(tcp);
            char msg[FAMP_MAX_ERRMSG + 1];
            int st = hello_with(fd, b[i].addr, b[i].len, msg, sizeof msg);
            if (st == 0)
                fail_msg("HELLO with %s (%u bytes) was accepted", b[i].what,
                         b[i].len);
            assert_int_equal(st, FAM_EINVAL);
            if (!strstr(msg, "fabric address"))
                fail_msg("HELLO with %s: the error does not say what was "
                         "wrong: '%s'", b[i].what, msg);
            /* the connection stays usable: a good HELLO would follow */
            close(fd);
            assert_famd_serves();
        }
}

static void hundreds_of_bad_hellos_leave_nothing_behind(void **state)
{
    (void)state;
    struct bad b[16];
    size_t n = bad_addresses(b, 16);
    for (int k = 0; k < 400; k++) {
        int fd = raw_connect(k & 1);
        char msg[FAMP_MAX_ERRMSG + 1];
        /* several on one connection, too */
        for (int j = 0; j < 3; j++) {
            struct bad *x = &b[(size_t)(k * 3 + j) % n];
            assert_int_equal(hello_with(fd, x->addr, x->len, msg, sizeof msg),
                             FAM_EINVAL);
        }
        close(fd);
    }
    assert_famd_serves();
}

/* HELLO asking famd (arg[0], FAM_SPIN_US) to poll for `ask` us after this
 * connection's activity, with a good address; returns the spin granted. */
static uint32_t hello_asking(int fd, const void *addr, uint32_t len, uint64_t ask)
{
    struct {
        struct famp_hdr h;
        struct famp_req q;
    } m;
    memset(&m, 0, sizeof m);
    m.h = (struct famp_hdr){FAMP_MAGIC, FAMP_VERSION, FAMP_HELLO, 9, 0, sizeof m.q};
    snprintf(m.q.provider, sizeof m.q.provider, "%s", test_provider());
    m.q.addrlen = len;
    memcpy(m.q.addr, addr, len);
    m.q.arg[0] = ask;
    assert_int_equal(send(fd, &m, sizeof m, MSG_NOSIGNAL), (ssize_t)sizeof m);
    struct famp_hdr r;
    recv_all(fd, &r, sizeof r);
    assert_int_equal(r.magic, FAMP_MAGIC);
    assert_true(r.len <= sizeof(struct famp_info));
    struct famp_info o;
    memset(&o, 0, sizeof o);
    recv_all(fd, &o, r.len);
    if (r.status != 0)
        fail_msg("HELLO asking a spin of %llu us failed (%d): %.200s",
                 (unsigned long long)ask, r.status, (const char *)&o);
    assert_int_equal(r.len, sizeof o);
    return o.spin_us;
}

/* Whatever a raw client asks in HELLO's arg[0] (the largest number, one
 * past 32 bits, 1, 0), famd grants at most its own --spin-us (2000 us
 * here), says so, and serves on. */
static void any_spin_asked_in_hello_is_granted_within_famds_own(void **state)
{
    (void)state;
    fam_t *g = client(srv.addr); /* an endpoint for test_fabric_addr */
    assert_non_null(g);
    uint8_t addr[FAMP_ADDR_MAX];
    uint32_t len = test_fabric_addr(addr, sizeof addr, 3);
    const struct { uint64_t ask; uint32_t want; } cases[] = {
        {UINT64_MAX, 2000}, {(1ull << 32) + 5, 2000}, {2001, 2000}, {1999, 1999},
        {1, 1}, {0, 2000},
    };
    for (int tcp = 0; tcp < 2; tcp++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            int fd = raw_connect(tcp);
            uint32_t got = hello_asking(fd, addr, len, cases[i].ask);
            if (got != cases[i].want)
                fail_msg("asked %llu us over %s: granted %u, not %u",
                         (unsigned long long)cases[i].ask, tcp ? "tcp" : "unix", got,
                         cases[i].want);
            close(fd);
        }
    fam_finalize(g);
    assert_famd_serves();
}

/* A copy request's destination famd address is checked the same way:
 * famd refuses the copy, and serves on. */
static void a_copy_to_a_malformed_server_address_is_refused(void **state)
{
    (void)state;
    struct bad b[16];
    size_t n = bad_addresses(b, 16);
    fam_t *g = client(srv.addr);
    assert_non_null(g);
    fam_item_t *d;
    CHECK_OK(fam_lookup(g, "known", "hello", &d));
    for (size_t i = 0; i < n; i++) {
        uint8_t *msg = calloc(1, sizeof(struct famp_bulk));
        assert_non_null(msg);
        struct famp_bulk *q = (struct famp_bulk *)(void *)msg;
        q->op = FAMP_B_COPY;
        q->id = d->part[0].id;
        q->key = d->part[0].key;
        q->len = 8;
        q->dst_key = 1;
        q->dst_addrlen = b[i].len;
        memcpy(q->dst_addr, b[i].addr, b[i].len);
        struct breq r;
        pthread_mutex_lock(&g->flock);
        int rc = fam_breq_post(g, &r, 0, msg, sizeof *q, NULL, 0);
        if (!rc) rc = fam_breq_wait(g, &r);
        pthread_mutex_unlock(&g->flock);
        if (rc != FAM_EINVAL || !strstr(fam_last_error(), "fabric address"))
            fail_msg("copy to %s: %d '%s'", b[i].what, rc, fam_last_error());
    }
    fam_release(d);
    fam_finalize(g);
    assert_famd_serves();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_malformed_address_fails_only_its_connection),
        cmocka_unit_test(hundreds_of_bad_hellos_leave_nothing_behind),
        cmocka_unit_test(any_spin_asked_in_hello_is_granted_within_famds_own),
        cmocka_unit_test(a_copy_to_a_malformed_server_address_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
