/* SPDX-License-Identifier: Apache-2.0 */
/* test_hostile.c — famd survives whatever arrives on its control port and
 * never answers an invalid request with success.
 *
 * Before the attacks a normal client writes known bytes to an item. Then
 * raw TCP connections send garbage, truncated and malformed headers, bad
 * lengths and ops, requests before HELLO, unknown ids, overflowing sizes
 * and offsets, names without a terminator, bad mode bits and attributes,
 * hundreds of abandoned connections, and a seeded fuzz of mutated valid
 * requests. Every reply must be well formed, and an error for every
 * request that is invalid by construction (or famd closes the
 * connection). After each group famd must still run, a new client must
 * connect, and the known bytes, size and mode must be exactly as written.
 * The raw connections are root's, so famd's permission checks do not hide
 * its validation: only the argument checks stand between them and the
 * pool. Set FAM_FUZZ_SEED to replay another fuzz sequence. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "../../src/common/fam_proto.h" /* the wire format under attack */

#define KSIZE (64u << 10) /* the known item */
#define TSIZE 4096u       /* the target of range attacks */

static struct famd_proc srv;
static fam_t *f;                  /* the normal client */
static fam_item_t *known, *target;
static uint8_t kref[KSIZE], tref[TSIZE];
static uint64_t known_id, vault_id, target_id, scratch_id;

/* ---- randomness ------------------------------------------------------------ */

static uint64_t rng_state, seed; /* seed: where rng_state started */
static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static uint64_t below(uint64_t n) { return rnd() % n; }
static void rnd_bytes(void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)rnd();
}

/* ---- raw connections -------------------------------------------------------- */

/* famd's local control socket: the requests below come from root, as
 * the kernel tells famd there (over TCP they would come from nobody, and
 * be refused for that before famd looked at what is wrong with them) */
static int raw_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a;
    socklen_t al = famp_unix_addr(&a, srv.port);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, al), 0);
    return fd;
}

/* Send everything; 0, or -1 if famd already closed the connection. */
static int send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_msg(int fd, uint32_t magic, uint16_t version, uint16_t op,
                    uint32_t seq, uint64_t len, const void *body, size_t n)
{
    struct famp_hdr h = {magic, version, op, seq, 0, len};
    uint8_t buf[sizeof h + sizeof(struct famp_req) + 64];
    if (n > sizeof buf - sizeof h) return -1;
    memcpy(buf, &h, sizeof h);
    if (n) memcpy(buf + sizeof h, body, n);
    return send_all(fd, buf, sizeof h + n); /* one send: one segment */
}

/* What famd said on a connection. */
struct answer {
    int replies;   /* complete replies read */
    int successes; /* of which status 0 */
    int closed;    /* famd closed the connection */
    int32_t status;/* status of the last reply */
    struct famp_info info; /* body of the last success */
};

/* Check one reply header and body; fail the test if it is malformed. */
static void check_reply(const struct famp_hdr *h, uint32_t seq, uint16_t op)
{
    assert_int_equal(h->magic, FAMP_MAGIC);
    assert_int_equal(h->version, FAMP_VERSION);
    if (h->status == 0) {
        assert_int_equal(h->len, sizeof(struct famp_info));
        assert_int_equal(h->seq, seq); /* a success answers this request */
        assert_int_equal(h->op, op);
    } else {
        assert_true(h->status <= FAM_EINVAL && h->status >= FAM_ETIMEOUT);
        assert_true(h->len <= FAMP_MAX_ERRMSG);
    }
}

/* Read replies until `want` have come, famd closes, or ms pass with
 * nothing new. seq/op: of the request a success must match. */
static struct answer read_answers(int fd, int want, int ms, uint32_t seq,
                                  uint16_t op)
{
    struct answer a = {0};
    uint8_t buf[8192];
    size_t have = 0;
    while (a.replies < want || want < 0) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, ms) <= 0) break;
        ssize_t k = recv(fd, buf + have, sizeof buf - have, 0);
        if (k <= 0) {
            a.closed = 1;
            break;
        }
        have += (size_t)k;
        for (;;) {
            struct famp_hdr h;
            if (have < sizeof h) break;
            memcpy(&h, buf, sizeof h);
            assert_true(h.len <= sizeof buf - sizeof h); /* sane length */
            if (have < sizeof h + h.len) break;
            check_reply(&h, seq, op);
            a.replies++;
            a.status = h.status;
            if (h.status == 0) {
                a.successes++;
                memcpy(&a.info, buf + sizeof h, sizeof a.info);
            }
            memmove(buf, buf + sizeof h + h.len, have - sizeof h - h.len);
            have -= sizeof h + h.len;
        }
    }
    assert_int_equal(have, 0); /* no half reply left over */
    return a;
}

/* After a request famd must refuse and hang up on: one error reply (or
 * none), then the connection closed. */
static void expect_refused_and_closed(int fd, int32_t status)
{
    struct answer a = read_answers(fd, -1, 3000, 0, 0);
    assert_int_equal(a.successes, 0);
    assert_true(a.replies <= 1);
    if (a.replies) assert_int_equal(a.status, status);
    assert_true(a.closed);
    close(fd);
}

static uint32_t next_seq = 1000;

/* One well-framed request; returns the reply's status, or 1 if famd
 * closed the connection without answering. */
static int request(int fd, uint16_t op, const struct famp_req *q,
                   struct famp_info *o)
{
    uint32_t seq = next_seq++;
    if (send_msg(fd, FAMP_MAGIC, FAMP_VERSION, op, seq, sizeof *q, q, sizeof *q))
        return 1;
    struct answer a = read_answers(fd, 1, 5000, seq, op);
    if (a.replies == 0) {
        assert_true(a.closed); /* silence is a hang */
        return 1;
    }
    assert_int_equal(a.replies, 1);
    if (o) *o = a.info;
    return a.status;
}

/* A fabric address famd can record (fixture.h). */
static void fake_addr(struct famp_req *q, unsigned n)
{
    snprintf(q->provider, sizeof q->provider, "%s", test_provider());
    q->addrlen = test_fabric_addr(q->addr, sizeof q->addr, n);
}

static int hello(int fd, unsigned n)
{
    struct famp_req q = {0};
    fake_addr(&q, n);
    return request(fd, FAMP_HELLO, &q, NULL);
}

static int raw_session(void)
{
    int fd = raw_connect();
    assert_int_equal(hello(fd, 0), 0);
    return fd;
}

/* Every request in `ops` with this body must fail (error reply). */
static void expect_error(int fd, uint16_t op, const struct famp_req *q,
                         int32_t status)
{
    int rc = request(fd, op, q, NULL);
    if (rc == 1) fail_msg("famd closed the connection on op %u", op);
    if (status) assert_int_equal(rc, status);
    else assert_true(rc < 0);
}

/* ---- set-up and the health check -------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    const char *s = getenv("FAM_FUZZ_SEED");
    seed = s && *s ? strtoull(s, NULL, 0) : 20261125ull;
    rng_state = seed ? seed : 1;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/backups", test_tmpdir());
    if (famd_start_dir(&srv, 64 << 20, NULL, dir) != 0) return -1;
    if (!(f = client(srv.addr))) return -1;
    uint8_t a[FAMP_ADDR_MAX];
    test_fabric_addr(a, sizeof a, 0); /* names f's endpoint (fixture.h) */
    fam_region_t *vault, *scratch;
    fam_stat_t st;
    rnd_bytes(kref, sizeof kref);
    rnd_bytes(tref, sizeof tref);
    if (fam_create_region(f, "vault", 1 << 20, 0600, NULL, &vault) ||
        fam_allocate(f, "known", KSIZE, 0600, vault, &known) ||
        fam_put_blocking(f, kref, known, 0, KSIZE) ||
        fam_stat(f, known, &st))
        return -1;
    known_id = st.id;
    vault_id = st.region_id;
    if (fam_create_region(f, "scratch", 1 << 20, 0777, NULL, &scratch) ||
        fam_allocate(f, "target", TSIZE, 0666, scratch, &target) ||
        fam_put_blocking(f, tref, target, 0, TSIZE) || fam_stat(f, target, &st))
        return -1;
    target_id = st.id;
    scratch_id = st.region_id;
    fam_release_region(vault);
    fam_release_region(scratch);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fam_release(known);
    fam_release(target);
    fam_finalize(f);
    famd_stop(&srv); /* fails the program unless famd exits cleanly */
    return 0;
}

/* famd runs, a new client connects, and the known bytes are intact. */
static void assert_famd_healthy(void)
{
    int st;
    assert_int_equal(waitpid(srv.pid, &st, WNOHANG), 0); /* not dead */
    assert_int_equal(kill(srv.pid, 0), 0);
    fam_t *g = client(srv.addr);
    assert_non_null(g);
    fam_item_t *d;
    fam_stat_t s;
    static uint8_t got[KSIZE];
    CHECK_OK(fam_lookup(g, "known", "vault", &d));
    CHECK_OK(fam_stat(g, d, &s));
    assert_int_equal(s.id, known_id);
    assert_int_equal(s.size, KSIZE);
    assert_int_equal(s.perm, 0600);
    assert_int_equal(s.uid, 0);
    memset(got, 0, sizeof got);
    CHECK_OK(fam_get_blocking(g, got, d, 0, KSIZE));
    assert_memory_equal(got, kref, KSIZE);
    fam_release(d);
    fam_finalize(g);
    /* the client that was connected all along still works too */
    memset(got, 0, sizeof got);
    CHECK_OK(fam_get_blocking(f, got, known, 0, KSIZE));
    assert_memory_equal(got, kref, KSIZE);
}

/* The range-attack target is as written (tests that must not change it). */
static void assert_target_intact(void)
{
    uint8_t got[TSIZE];
    CHECK_OK(fam_get_blocking(f, got, target, 0, TSIZE));
    assert_memory_equal(got, tref, TSIZE);
}

/* ---- framing ----------------------------------------------------------------- */

static void garbage_bytes_get_an_error_or_a_close(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        int fd = raw_connect();
        uint8_t junk[4096];
        size_t n = sizeof(struct famp_hdr) + below(sizeof junk - sizeof(struct famp_hdr));
        rnd_bytes(junk, n);
        uint32_t m = FAMP_MAGIC ^ 0xdeadbeef;
        memcpy(junk, &m, 4); /* not the magic, whatever the dice say */
        if (send_all(fd, junk, n) == 0)
            expect_refused_and_closed(fd, FAM_EPROTO);
        else
            close(fd);
    }
    /* garbage after a good HELLO is no better */
    int fd = raw_session();
    uint8_t junk[100];
    rnd_bytes(junk, sizeof junk);
    memset(junk, 0, 4);
    assert_int_equal(send_all(fd, junk, sizeof junk), 0);
    expect_refused_and_closed(fd, FAM_EPROTO);
    assert_famd_healthy();
}

static void truncated_headers_and_bodies_then_close_are_harmless(void **state)
{
    (void)state;
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_ITEM_FREE, 1, 0,
                         sizeof(struct famp_req)};
    struct famp_req q = {0};
    q.id = known_id;
    for (size_t cut = 1; cut < sizeof h; cut += 3) { /* part of a header */
        int fd = raw_session();
        assert_int_equal(send_all(fd, &h, cut), 0);
        close(fd);
    }
    for (size_t cut = 0; cut < sizeof q; cut += 97) { /* part of a body */
        int fd = raw_session();
        assert_int_equal(send_all(fd, &h, sizeof h), 0);
        assert_int_equal(send_all(fd, &q, cut), 0);
        close(fd);
    }
    /* a HELLO cut short, and a connection reset mid-request */
    int fd = raw_connect();
    h.op = FAMP_HELLO;
    assert_int_equal(send_all(fd, &h, sizeof h), 0);
    assert_int_equal(send_all(fd, &q, 10), 0);
    close(fd);
    fd = raw_session();
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    assert_int_equal(send_all(fd, &h, 5), 0);
    close(fd); /* RST */
    usleep(50000); /* let famd see the closes before the health check */
    assert_famd_healthy();
}

static void a_bad_magic_is_refused_and_the_connection_closed(void **state)
{
    (void)state;
    struct famp_req q = {0};
    uint32_t bad[] = {0, FAMP_MAGIC + 1, FAMP_BULK_MAGIC, 0xffffffffu,
                      __builtin_bswap32(FAMP_MAGIC)};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = raw_connect();
        assert_int_equal(send_msg(fd, bad[i], FAMP_VERSION, FAMP_HELLO, 1,
                                  sizeof q, &q, sizeof q), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    assert_famd_healthy();
}

static void a_wrong_version_is_refused_and_the_connection_closed(void **state)
{
    (void)state;
    struct famp_req q = {0};
    fake_addr(&q, 1);
    uint16_t bad[] = {0, FAMP_VERSION - 1, FAMP_VERSION + 1, 0xffff};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = raw_connect();
        assert_int_equal(send_msg(fd, FAMP_MAGIC, bad[i], FAMP_HELLO, 1,
                                  sizeof q, &q, sizeof q), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
        fd = raw_session(); /* also after HELLO */
        q.id = known_id;
        assert_int_equal(send_msg(fd, FAMP_MAGIC, bad[i], FAMP_ITEM_FREE, 2,
                                  sizeof q, &q, sizeof q), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    assert_famd_healthy();
}

static void an_oversized_length_is_refused_without_waiting_for_it(void **state)
{
    (void)state;
    uint64_t bad[] = {FAMP_MAX_BODY + 1ull, 1ull << 32, 1ull << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = raw_session();
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, FAMP_REGION_LOOKUP,
                                  1, bad[i], NULL, 0), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    assert_famd_healthy();
}

static void a_body_of_the_wrong_size_is_refused(void **state)
{
    (void)state;
    uint8_t body[sizeof(struct famp_req) + 64];
    memset(body, 0, sizeof body);
    size_t bad[] = {0, 1, sizeof(struct famp_req) - 1, sizeof(struct famp_req) + 1,
                    sizeof(struct famp_req) + 64};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = raw_session();
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, FAMP_REGION_LOOKUP,
                                  1, bad[i], body, bad[i]), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    /* a WAKE carries no body */
    int fd = raw_session();
    assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, FAMP_WAKE, 1,
                              sizeof(struct famp_req), body,
                              sizeof(struct famp_req)), 0);
    struct answer a = read_answers(fd, -1, 1000, 0, 0);
    assert_int_equal(a.successes, 0);
    close(fd);
    /* a length no request has is refused at once: famd must not sit
     * waiting for (and buffering) up to FAMP_MAX_BODY bytes of it */
    uint64_t big[] = {1u << 20, FAMP_MAX_BODY};
    for (size_t i = 0; i < 2; i++) {
        fd = raw_session();
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, FAMP_ITEM_STAT,
                                  1, big[i], NULL, 0), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    assert_famd_healthy();
}

static void an_unknown_op_is_refused(void **state)
{
    (void)state;
    struct famp_req q = {0};
    uint16_t bad[] = {0, FAMP_OP_END, FAMP_OP_END + 1, 0x7fff, 0xffff};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int fd = raw_connect(); /* before HELLO */
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, bad[i], 1,
                                  sizeof q, &q, sizeof q), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
        fd = raw_session(); /* and after */
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, bad[i], 2,
                                  sizeof q, &q, sizeof q), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    assert_famd_healthy();
}

static void requests_before_hello_are_refused(void **state)
{
    (void)state;
    uint16_t ops[] = {FAMP_REGION_LOOKUP, FAMP_ITEM_STAT, FAMP_ITEM_FREE,
                      FAMP_REGION_DESTROY, FAMP_ITEM_CHMOD, FAMP_CAS128,
                      FAMP_BACKUP_LIST};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        struct famp_req q = {0};
        q.id = ops[i] == FAMP_REGION_DESTROY ? vault_id : known_id;
        q.mode = 0777;
        snprintf(q.name, sizeof q.name, "vault");
        int fd = raw_connect();
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, ops[i], 1,
                                  sizeof q, &q, sizeof q), 0);
        expect_refused_and_closed(fd, FAM_EPROTO);
    }
    assert_famd_healthy();
}

static void a_bad_hello_is_refused(void **state)
{
    (void)state;
    int fd = raw_connect();
    struct famp_req q = {0};
    fake_addr(&q, 2);
    snprintf(q.provider, sizeof q.provider, "%s",
             strcmp(test_provider(), "tcp") ? "tcp" : "shm");
    expect_error(fd, FAMP_HELLO, &q, FAM_ENOTSUP); /* the other provider */
    memset(q.provider, 'x', sizeof q.provider);    /* no terminator */
    expect_error(fd, FAMP_HELLO, &q, FAM_ENOTSUP);
    fake_addr(&q, 2);
    q.addrlen = 0;
    expect_error(fd, FAMP_HELLO, &q, FAM_EINVAL);
    q.addrlen = FAMP_ADDR_MAX + 1;
    expect_error(fd, FAMP_HELLO, &q, FAM_EINVAL);
    q.addrlen = UINT32_MAX;
    expect_error(fd, FAMP_HELLO, &q, FAM_EINVAL);
    /* still no HELLO: requests are refused */
    struct famp_req r = {0};
    r.id = known_id;
    assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, FAMP_ITEM_STAT, 9,
                              sizeof r, &r, sizeof r), 0);
    expect_refused_and_closed(fd, FAM_EPROTO);
    /* a second HELLO on a good connection */
    fd = raw_session();
    fake_addr(&q, 3);
    expect_error(fd, FAMP_HELLO, &q, FAM_EPROTO);
    close(fd);
    assert_famd_healthy();
}

/* ---- arguments ----------------------------------------------------------------- */

static void unknown_ids_are_not_found(void **state)
{
    (void)state;
    int fd = raw_session();
    uint16_t ops[] = {FAMP_REGION_DESTROY, FAMP_REGION_RESIZE, FAMP_REGION_CHMOD,
                      FAMP_REGION_STAT, FAMP_ITEM_FREE, FAMP_ITEM_CHMOD,
                      FAMP_ITEM_STAT, FAMP_CAS128, FAMP_BACKUP, FAMP_ITEM_ALLOC};
    /* random ids, and ids of a live slot with the wrong counter (stale) */
    uint64_t slot_mask = (1ull << 24) - 1;
    uint64_t ids[8 + 300];
    size_t n = 0;
    ids[n++] = 0;
    ids[n++] = UINT64_MAX;
    ids[n++] = known_id ^ (1ull << 40);
    ids[n++] = known_id & slot_mask;
    ids[n++] = vault_id + (1ull << 24);
    ids[n++] = target_id - (1ull << 24);
    ids[n++] = target_id + 1;
    ids[n++] = scratch_id ^ (1ull << 63);
    while (n < sizeof ids / sizeof *ids) ids[n++] = rnd();
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
            uint16_t op = ops[k];
            if (ids[i] == known_id || ids[i] == vault_id || ids[i] == target_id ||
                ids[i] == scratch_id)
                continue; /* live after all: not what this test is about */
            struct famp_req q = {0};
            q.id = q.region_id = ids[i];
            q.size = 64;
            q.mode = 0600;
            snprintf(q.name, sizeof q.name, "fresh");
            snprintf(q.name2, sizeof q.name2, "bak");
            expect_error(fd, op, &q, FAM_ENOTFOUND);
        }
    /* a live item's id where a region's belongs, and the other way round:
     * the kind is checked, not just the slot (the target would suffer) */
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++) {
        uint16_t op = ops[k];
        int region_op = op == FAMP_REGION_DESTROY || op == FAMP_REGION_RESIZE ||
                        op == FAMP_REGION_CHMOD || op == FAMP_REGION_STAT ||
                        op == FAMP_ITEM_ALLOC;
        struct famp_req q = {0};
        q.id = q.region_id = region_op ? target_id : scratch_id;
        q.size = 64;
        q.mode = 0600;
        snprintf(q.name2, sizeof q.name2, "bak");
        expect_error(fd, op, &q, FAM_ENOTFOUND);
    }
    close(fd);
    assert_target_intact();
    assert_famd_healthy();
}

static void huge_sizes_and_offsets_are_refused(void **state)
{
    (void)state;
    int fd = raw_session();
    struct famp_req q;
    /* items larger than their region, or whose page rounding overflows */
    uint64_t sizes[] = {UINT64_MAX, UINT64_MAX - 4095, UINT64_MAX - 4096,
                        1ull << 63, (1ull << 20) + 1, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        memset(&q, 0, sizeof q);
        q.region_id = scratch_id;
        q.size = sizes[i];
        q.mode = 0600;
        snprintf(q.name, sizeof q.name, "huge%zu", i);
        expect_error(fd, FAMP_ITEM_ALLOC, &q, 0);
    }
    /* a striped part that does not fit its whole, or names a bad shard */
    struct { uint64_t total, shard, nshards, stripe; } bad[] = {
        {32, 0, 2, 4096},          /* total below the part's size */
        {1 << 16, 2, 2, 4096},     /* shard out of range */
        {1 << 16, 0, 257, 4096},   /* too many shards */
        {1 << 16, 0, 2, 1000},     /* stripe not a power of two */
        {1 << 16, 0, 2, 1ull << 31}, /* stripe too large */
        {1 << 16, UINT64_MAX, 2, 4096},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&q, 0, sizeof q);
        q.region_id = scratch_id;
        q.size = 64;
        q.mode = 0600;
        q.arg[0] = bad[i].total;
        q.arg[1] = bad[i].shard;
        q.arg[2] = bad[i].nshards;
        q.stripe = bad[i].stripe;
        snprintf(q.name, sizeof q.name, "stripe%zu", i);
        expect_error(fd, FAMP_ITEM_ALLOC, &q, FAM_EINVAL);
    }
    /* regions of no size, and resizing to none */
    memset(&q, 0, sizeof q);
    snprintf(q.name, sizeof q.name, "empty");
    expect_error(fd, FAMP_REGION_CREATE, &q, FAM_EINVAL);
    memset(&q, 0, sizeof q);
    q.id = scratch_id;
    expect_error(fd, FAMP_REGION_RESIZE, &q, FAM_EINVAL);
    q.size = 1; /* below what its items hold */
    expect_error(fd, FAMP_REGION_RESIZE, &q, FAM_ENOSPACE);
    /* 128-bit compare-and-swap outside the item, or misaligned; the
     * operands would match the bytes, so a wrong success would write */
    uint64_t offs[] = {TSIZE, TSIZE + 16, TSIZE - 8, 8, 1, UINT64_MAX,
                       UINT64_MAX - 15, (UINT64_MAX - 15) & ~15ull, 1ull << 63,
                       (uint64_t)0 - TSIZE};
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        memset(&q, 0, sizeof q);
        q.id = target_id;
        q.off = offs[i];
        uint64_t here = offs[i] < TSIZE - 16 ? offs[i] : 0;
        memcpy(&q.arg[0], tref + here, 16);
        q.arg[2] = q.arg[3] = 0x5a5a5a5a5a5a5a5aull;
        expect_error(fd, FAMP_CAS128, &q, 0);
    }
    /* the last 16 bytes are fine: the check is not off by one */
    memset(&q, 0, sizeof q);
    q.id = target_id;
    q.off = TSIZE - 16;
    memcpy(&q.arg[0], tref + TSIZE - 16, 16);
    memcpy(&q.arg[2], tref + TSIZE - 16, 16); /* writes what is there */
    struct famp_info o;
    assert_int_equal(request(fd, FAMP_CAS128, &q, &o), 0);
    assert_memory_equal(&o.arg[0], tref + TSIZE - 16, 16);
    close(fd);
    assert_target_intact();
    fam_stat_t st;
    CHECK_OK(fam_stat(f, target, &st));
    assert_int_equal(st.size, TSIZE);
    assert_famd_healthy();
}

static void names_without_a_terminator_or_with_control_bytes_are_refused(void **state)
{
    (void)state;
    int fd = raw_session();
    struct { uint16_t op; int field; } uses[] = { /* field 1: name, 2: name2 */
        {FAMP_REGION_CREATE, 1}, {FAMP_REGION_LOOKUP, 1}, {FAMP_ITEM_ALLOC, 1},
        {FAMP_ITEM_LOOKUP, 1}, {FAMP_ITEM_LOOKUP, 2}, {FAMP_BACKUP, 2},
        {FAMP_BACKUP_STAT, 2}, {FAMP_BACKUP_DELETE, 2},
    };
    for (size_t i = 0; i < sizeof uses / sizeof *uses; i++)
        for (int how = 0; how < 5; how++) {
            struct famp_req q = {0};
            q.size = 4096;
            q.mode = 0600;
            q.region_id = scratch_id;
            q.id = target_id;
            snprintf(q.name, sizeof q.name, "target");
            snprintf(q.name2, sizeof q.name2, "scratch");
            if (uses[i].op >= FAMP_BACKUP) snprintf(q.name2, sizeof q.name2, "b1");
            char *s = uses[i].field == 1 ? q.name : q.name2;
            switch (how) {
            case 0: memset(s, 'A', FAM_NAME_MAX + 1); break; /* no NUL at all */
            case 1: memset(s, 'A', FAM_NAME_MAX + 1); /* NUL only past the end */
                    if (uses[i].field == 1) q.name2[0] = '\0';
                    break;
            case 2: s[0] = '\n'; break;
            case 3: s[2] = 0x7f; break;
            case 4: if (uses[i].op == FAMP_ITEM_ALLOC) continue; /* unnamed */
                    s[0] = '\0'; break;
            }
            expect_error(fd, uses[i].op, &q, FAM_EINVAL);
        }
    /* backup names must not leave the data directory */
    const char *paths[] = {"../escape", "/etc/passwd", ".hidden", "a/b", ".."};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        struct famp_req q = {0};
        q.id = target_id;
        snprintf(q.name2, sizeof q.name2, "%s", paths[i]);
        expect_error(fd, FAMP_BACKUP, &q, FAM_EINVAL);
        expect_error(fd, FAMP_BACKUP_DELETE, &q, FAM_EINVAL);
    }
    close(fd);
    assert_famd_healthy();
}

static void mode_bits_above_0777_are_refused(void **state)
{
    (void)state;
    int fd = raw_session();
    uint32_t modes[] = {01000, 02000, 04000, 07777, 0xffffffffu, 1u << 31, 01777};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        struct famp_req q = {0};
        q.size = 4096;
        q.mode = modes[i];
        snprintf(q.name, sizeof q.name, "modes%zu", i);
        expect_error(fd, FAMP_REGION_CREATE, &q, FAM_EINVAL);
        q.region_id = scratch_id;
        expect_error(fd, FAMP_ITEM_ALLOC, &q, FAM_EINVAL);
        q.id = scratch_id;
        expect_error(fd, FAMP_REGION_CHMOD, &q, FAM_EINVAL);
        q.id = target_id;
        expect_error(fd, FAMP_ITEM_CHMOD, &q, FAM_EINVAL);
    }
    close(fd);
    fam_stat_t st;
    CHECK_OK(fam_stat(f, target, &st));
    assert_int_equal(st.perm, 0666);
    fam_region_t *r;
    CHECK_OK(fam_lookup_region(f, "scratch", &r));
    CHECK_OK(fam_stat_region(f, r, &st));
    assert_int_equal(st.perm, 0777);
    assert_int_equal(st.used, TSIZE); /* no item was made */
    fam_release_region(r);
    assert_famd_healthy();
}

static void bad_region_attributes_are_refused(void **state)
{
    (void)state;
    int fd = raw_session();
    struct { uint32_t memtype, interleave; uint64_t stripe, nshards; } bad[] = {
        {3, 0, 0, 0}, {UINT32_MAX, 0, 0, 0}, {0, 3, 0, 0}, {0, UINT32_MAX, 0, 0},
        {0, FAM_INTERLEAVE_ENABLE, 0, 2}, {0, FAM_INTERLEAVE_ENABLE, 1000, 2},
        {0, FAM_INTERLEAVE_ENABLE, 1ull << 40, 2}, {0, 0, 0, 257},
        {0, 0, 0, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct famp_req q = {0};
        q.size = 1 << 20;
        q.mode = 0600;
        q.memtype = bad[i].memtype;
        q.interleave = bad[i].interleave;
        q.stripe = bad[i].stripe;
        q.arg[2] = bad[i].nshards;
        snprintf(q.name, sizeof q.name, "attr%zu", i);
        expect_error(fd, FAMP_REGION_CREATE, &q, FAM_EINVAL);
    }
    close(fd);
    assert_famd_healthy();
}

/* ---- volume ------------------------------------------------------------------- */

static void hundreds_of_abandoned_connections_leave_famd_serving(void **state)
{
    (void)state;
    /* more than famd's connection table holds (1024) */
    enum { N = 1100 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < N + 100) {
        rl.rlim_cur = rl.rlim_max < N + 100 ? rl.rlim_max : N + 100;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t n = rl.rlim_cur > 100 + N ? N : rl.rlim_cur - 100;
    static int fds[N];
    for (size_t i = 0; i < n; i++) {
        fds[i] = raw_connect();
        struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_HELLO, 1, 0,
                             sizeof(struct famp_req)};
        switch (i % 4) {
        case 0: break;                                 /* silent */
        case 1: send_all(fds[i], &h, 7); break;        /* part of a header */
        case 2: send_all(fds[i], &h, sizeof h); break; /* a header, no body */
        case 3:                                        /* a HELLO, unanswered read */
            if (i < 600) { /* each HELLO is a fabric peer: keep some */
                struct famp_req q = {0};
                fake_addr(&q, (unsigned)(100 + i));
                send_msg(fds[i], FAMP_MAGIC, FAMP_VERSION, FAMP_HELLO, 1,
                         sizeof q, &q, sizeof q);
            }
            break;
        }
    }
    int st;
    assert_int_equal(waitpid(srv.pid, &st, WNOHANG), 0);
    for (size_t i = 0; i < n; i++) {
        if (i % 2) { /* half reset, half closed */
            struct linger lg = {1, 0};
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fds[i]);
    }
    /* famd notices the closes on its next turns */
    for (int i = 0; i < 50; i++) {
        fam_t *g = client(srv.addr);
        if (g) {
            fam_finalize(g);
            break;
        }
        usleep(100000);
    }
    assert_famd_healthy();
}

/* ---- fuzz ------------------------------------------------------------------------ */

static const uint16_t fuzz_ops[] = {
    FAMP_REGION_CREATE, FAMP_REGION_LOOKUP, FAMP_REGION_DESTROY,
    FAMP_REGION_RESIZE, FAMP_REGION_CHMOD, FAMP_REGION_STAT, FAMP_ITEM_ALLOC,
    FAMP_ITEM_LOOKUP, FAMP_ITEM_FREE, FAMP_ITEM_CHMOD, FAMP_ITEM_STAT,
    FAMP_CAS128, FAMP_BACKUP, FAMP_BACKUP_STAT, FAMP_BACKUP_DELETE,
    FAMP_BACKUP_LIST};

/* Objects the fuzz made itself: the only ones it may free or destroy. */
static uint64_t fz_region, fz_item;

/* A valid request for op, about the fuzz's own objects or the target. */
static void fuzz_template(uint16_t op, struct famp_req *q, unsigned k)
{
    memset(q, 0, sizeof *q);
    q->mode = (uint32_t)below(01000);
    switch (op) {
    case FAMP_REGION_CREATE:
        snprintf(q->name, sizeof q->name, "fz-%u", k);
        q->size = 1 + below(1 << 22);
        if (below(4) == 0) {
            q->interleave = FAM_INTERLEAVE_ENABLE;
            q->stripe = 4096ull << below(8);
            q->arg[0] = q->size;
            q->arg[2] = 1;
        }
        break;
    case FAMP_REGION_LOOKUP:
        snprintf(q->name, sizeof q->name, below(2) ? "scratch" : "fz-%u",
                 (unsigned)below(k + 1));
        break;
    case FAMP_REGION_DESTROY:
        q->id = fz_region;
        break;
    case FAMP_REGION_RESIZE:
    case FAMP_REGION_CHMOD:
    case FAMP_REGION_STAT:
        q->id = below(2) ? scratch_id : fz_region;
        q->size = 1 + below(1 << 22);
        break;
    case FAMP_ITEM_ALLOC:
        q->region_id = below(2) ? scratch_id : fz_region;
        q->size = 1 + below(1 << 16);
        if (below(3)) snprintf(q->name, sizeof q->name, "fzi-%u", k);
        break;
    case FAMP_ITEM_LOOKUP:
        snprintf(q->name, sizeof q->name, below(2) ? "target" : "fzi-%u",
                 (unsigned)below(k + 1));
        snprintf(q->name2, sizeof q->name2, "scratch");
        break;
    case FAMP_ITEM_FREE:
        q->id = fz_item;
        break;
    case FAMP_ITEM_CHMOD:
    case FAMP_ITEM_STAT:
        q->id = below(2) ? target_id : fz_item;
        q->mode = 0666;
        break;
    case FAMP_CAS128:
        q->id = below(2) ? target_id : fz_item;
        q->off = below(TSIZE / 16) * 16;
        for (int i = 0; i < 4; i++) q->arg[i] = rnd();
        break;
    case FAMP_BACKUP:
    case FAMP_BACKUP_STAT:
    case FAMP_BACKUP_DELETE:
        q->id = below(2) ? target_id : fz_item;
        snprintf(q->name2, sizeof q->name2, "fz-bak-%u", (unsigned)below(8));
        break;
    case FAMP_BACKUP_LIST:
        q->off = below(4) ? below(10) : rnd();
        break;
    }
}

/* Make q invalid in a way famd must refuse, whatever else it holds.
 * Returns 0 if no such mutation applies to op. */
static int fuzz_invalidate(uint16_t op, struct famp_req *q)
{
    int by_id = op == FAMP_REGION_DESTROY || op == FAMP_REGION_RESIZE ||
                op == FAMP_REGION_CHMOD || op == FAMP_REGION_STAT ||
                op == FAMP_ITEM_FREE || op == FAMP_ITEM_CHMOD ||
                op == FAMP_ITEM_STAT || op == FAMP_CAS128 || op == FAMP_BACKUP;
    char *name = op == FAMP_REGION_CREATE || op == FAMP_REGION_LOOKUP ||
                 op == FAMP_ITEM_ALLOC || op == FAMP_ITEM_LOOKUP ? q->name
               : op == FAMP_BACKUP_STAT || op == FAMP_BACKUP_DELETE ? q->name2
               : NULL;
    for (int tries = 0; tries < 8; tries++) {
        switch (below(6)) {
        case 0: /* an id nothing has */
            if (!by_id && op != FAMP_ITEM_ALLOC) break;
            q->id = q->region_id = rnd() | (1ull << 63);
            return 1;
        case 1: /* a name without a terminator */
            if (!name) break;
            for (int i = 0; i <= FAM_NAME_MAX; i++) name[i] = (char)(0x21 + below(94));
            return 1;
        case 2: /* a control byte in the name */
            if (!name) break;
            name[0] = (char)(1 + below(0x1f));
            return 1;
        case 3: /* mode bits above 0777 */
            if (op != FAMP_REGION_CREATE && op != FAMP_REGION_CHMOD &&
                op != FAMP_ITEM_ALLOC && op != FAMP_ITEM_CHMOD)
                break;
            if (q->id == 0 && op != FAMP_REGION_CREATE && op != FAMP_ITEM_ALLOC)
                break; /* no object: it would be refused anyway */
            q->mode |= (uint32_t)(01000 << below(22));
            return 1;
        case 4: /* no size, or more than any region holds */
            if (op == FAMP_REGION_CREATE || op == FAMP_REGION_RESIZE) {
                q->size = 0;
                return 1;
            }
            if (op == FAMP_ITEM_ALLOC) {
                q->size = below(2) ? 0 : UINT64_MAX - below(8192);
                return 1;
            }
            break;
        case 5: /* an offset outside the item or not 16-aligned */
            if (op != FAMP_CAS128) break;
            /* past the end of any item: beyond the whole pool */
            q->off = below(2) ? UINT64_MAX - below(64) : (64ull << 20) + 16 * below(1000);
            if (below(2)) q->off |= 1 + below(15);
            return 1;
        }
    }
    return 0;
}

/* Random damage that may or may not make the request invalid. */
static void fuzz_scramble(struct famp_req *q)
{
    static const uint64_t edge[] = {0, 1, 15, 16, 4095, 4096, 1ull << 31,
                                    1ull << 32, 1ull << 63, UINT64_MAX,
                                    UINT64_MAX - 15, UINT64_MAX - 4095};
    uint8_t *b = (uint8_t *)q;
    int n = 1 + (int)below(6);
    for (int i = 0; i < n; i++) {
        switch (below(3)) {
        case 0: b[below(sizeof *q)] ^= (uint8_t)(1u << below(8)); break;
        case 1: b[below(sizeof *q)] = (uint8_t)rnd(); break;
        case 2: { /* an edge value into a 64-bit field */
            uint64_t v = edge[below(sizeof edge / sizeof *edge)];
            memcpy(b + 8 * below(offsetof(struct famp_req, mode) / 8), &v, 8);
            break;
        }
        }
    }
}

static void a_seeded_fuzz_never_gets_success_for_invalid_requests(void **state)
{
    (void)state;
    enum { ROUNDS = 2000 };
    int fd = raw_session();
    unsigned hellos = 10;
    int invalid = 0, refused = 0, reconnects = 0;
    for (unsigned k = 0; k < ROUNDS; k++) {
        uint16_t op = fuzz_ops[below(sizeof fuzz_ops / sizeof *fuzz_ops)];
        struct famp_req q;
        fuzz_template(op, &q, k);
        int scrambled = below(3) == 0;
        if (scrambled) fuzz_scramble(&q);
        int bad = below(2) && fuzz_invalidate(op, &q); /* last: it stands */
        /* never name the known item or its region, not even by accident */
        if (q.id == known_id || q.id == vault_id || q.region_id == vault_id) {
            q.id = q.region_id = UINT64_MAX; /* slot beyond any pool's */
            bad = 0;
        }
        uint32_t seq = next_seq++;
        int hdr = below(40); /* now and then a damaged header instead */
        if (hdr == 0) {
            uint32_t magic = FAMP_MAGIC;
            uint16_t version = FAMP_VERSION;
            uint64_t len = sizeof q;
            switch (below(4)) {
            case 0: magic ^= 1u << below(32); break;
            case 1: version ^= (uint16_t)(1u << below(16)); break;
            case 2: op = (uint16_t)(FAMP_OP_END + below(1000)); break;
            case 3: len = sizeof q + 1 + below(FAMP_MAX_BODY); break;
            }
            assert_int_equal(send_msg(fd, magic, version, op, seq, len, NULL, 0), 0);
            expect_refused_and_closed(fd, FAM_EPROTO);
            fd = raw_connect();
            assert_int_equal(hello(fd, hellos++), 0);
            reconnects++;
            continue;
        }
        assert_int_equal(send_msg(fd, FAMP_MAGIC, FAMP_VERSION, op, seq,
                                  sizeof q, &q, sizeof q), 0);
        struct answer a = read_answers(fd, 1, 5000, seq, op);
        if (a.replies != 1)
            fail_msg("round %u (seed %llu): op %u got no answer%s", k,
                     (unsigned long long)seed, op,
                     a.closed ? " (famd closed the connection)" : "");
        invalid += bad;
        if (a.status < 0) refused++;
        if (bad && a.status == 0)
            fail_msg("round %u (seed %llu): op %u succeeded on a request that "
                     "is invalid by construction", k, (unsigned long long)seed, op);
        if (a.status == 0) { /* remember what the fuzz made, to free it */
            assert_true(a.info.id != known_id && a.info.id != vault_id);
            if (op == FAMP_REGION_CREATE) fz_region = a.info.id;
            if (op == FAMP_ITEM_ALLOC) fz_item = a.info.id;
        }
        if (k % 500 == 499) assert_famd_healthy();
    }
    close(fd);
    print_message("fuzz seed %llu: %d rounds, %d invalid by construction, %d "
                  "refused in all, %d reconnects\n", (unsigned long long)seed,
                  ROUNDS, invalid, refused, reconnects);
    assert_true(invalid > ROUNDS / 5); /* the fuzz did try */
    assert_famd_healthy();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(garbage_bytes_get_an_error_or_a_close),
        cmocka_unit_test(truncated_headers_and_bodies_then_close_are_harmless),
        cmocka_unit_test(a_bad_magic_is_refused_and_the_connection_closed),
        cmocka_unit_test(a_wrong_version_is_refused_and_the_connection_closed),
        cmocka_unit_test(an_oversized_length_is_refused_without_waiting_for_it),
        cmocka_unit_test(a_body_of_the_wrong_size_is_refused),
        cmocka_unit_test(an_unknown_op_is_refused),
        cmocka_unit_test(requests_before_hello_are_refused),
        cmocka_unit_test(a_bad_hello_is_refused),
        cmocka_unit_test(unknown_ids_are_not_found),
        cmocka_unit_test(huge_sizes_and_offsets_are_refused),
        cmocka_unit_test(names_without_a_terminator_or_with_control_bytes_are_refused),
        cmocka_unit_test(mode_bits_above_0777_are_refused),
        cmocka_unit_test(bad_region_attributes_are_refused),
        cmocka_unit_test(hundreds_of_abandoned_connections_leave_famd_serving),
        cmocka_unit_test(a_seeded_fuzz_never_gets_success_for_invalid_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
