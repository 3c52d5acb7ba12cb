/* SPDX-License-Identifier: Apache-2.0 */
/* famd_main.c — the memory server's command line, sockets and event loop.
 *
 *   famd --port P --pool-size SIZE [--pool-file PATH] [--provider shm|tcp]
 *        [--host ADDR] [--data-dir DIR] [--spin-us N] [--verbose]
 *        [--quota-objects N|P%] [--quota-bytes SIZE|P%]
 *        [--quota-backup-bytes SIZE|P%]
 *        [--max-conns N] [--max-conns-per-user N] [--conn-buffer SIZE]
 *        [--hello-timeout SEC] [--auth none|munge] [--munge-socket PATH]
 *        [--auth-max-age SEC] [--auth-cache N]
 *
 * Clients send control requests on one of two sockets: the Unix socket
 * "@kodiak-famd/port:P" (abstract namespace, fam_proto.h) for clients on
 * this host, and TCP host:port for anyone. famd learns who a client is when
 * it accepts the connection, from the kernel, and nothing the client says
 * about itself is believed: on the Unix socket the peer's uid, gid and
 * groups come from SO_PEERCRED / SO_PEERGROUPS (fixed at connect() for the
 * life of the connection); every TCP client, loopback included, is an
 * unauthenticated remote client and acts as "nobody" - unless famd runs
 * with --auth munge: then a TCP client must prove its uid and gid with a
 * MUNGE credential bound to this famd and connection before anything else
 * (famd_auth.c), and one that cannot is refused. See docs/SECURITY.md.
 *
 * Nothing a client does can make famd hold more than the limits allow:
 * connections (in all, and per uid or per client host), bytes buffered per
 * connection (famd stops reading a client whose replies it does not take),
 * time to say HELLO; when the process runs out of file descriptors famd
 * refuses new connections with a message and pauses accepting instead of
 * spinning on accept().
 *
 * Progress: the software providers move a client's RMA only while famd
 * drives progress, and shm cannot wake a famd that sleeps (it has no wait
 * fd). So a client about to do RMA sends a one-way WAKE on its control
 * socket, and again every spin_us/2 while it keeps going; its first
 * operation after an idle gap waits for a WAKE_SYNC reply instead, so that
 * famd is surely awake before the RMA (libfam's fam_wake_first). After any
 * activity (a request, a WAKE, a completion) famd polls without sleeping
 * for --spin-us microseconds; after that it blocks in poll() on the sockets
 * and the fabric's wait fd (tcp), or on the sockets with a slow safety tick
 * (shm: idle_tick_ms), so an idle famd costs almost no CPU. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "famd.h"
#include "fam_crowd.h"

int famd_rpc(struct famd *d, uint16_t op, const struct famp_req *q,
             const struct famd_cred *c, struct famp_info *o);

/* What one client may make famd hold (docs/SECURITY.md, "Limits"). */
struct limits {
    int max_conns;      /* connections at once, all clients together */
    int max_per_user;   /* of those, per uid (Unix socket) or per client
                           host (TCP; this host's own addresses count as
                           one host): below max_conns, so one user cannot
                           lock everyone else out */
    size_t conn_buffer; /* per connection: bytes of requests read ahead,
                           and of replies not yet taken by the client,
                           before famd stops reading from it */
    uint64_t hello_us;  /* a connection must say HELLO within this */
};

/* One client connection. */
struct conn {
    int fd;                 /* -1 when the slot is unused */
    struct famd_cred cred;  /* who the kernel says the peer is */
    int local;              /* 1: came on the Unix socket (cred from
                               SO_PEERCRED); 0: TCP, cred is nobody
                               until a MUNGE credential (authed) */
    uint64_t who;           /* what max_per_user counts: see conn_who() */
    uint64_t hello_by;      /* HELLO is due by then (monotonic us); 0 after */
    uint8_t *in;            /* bytes received, not yet handled (incap =
                               limits.conn_buffer bytes, made at first read) */
    size_t inlen, incap;
    uint8_t *out;           /* reply bytes not yet sent */
    size_t outlen, outoff, outcap;
    int closing;            /* close once `out` is flushed */
    int hello;              /* 1 after a successful HELLO */
    int authed;             /* --auth munge: 1 once cred came from a MUNGE
                               credential (TCP only) */
    int nonce_sent;         /* --auth munge: nonce went out in a HELLO
                               reply, an AUTH may come */
    uint64_t nonce[2];      /* what this connection's credential must carry */
    uint64_t token;         /* its secret for bulk messages (0: none yet) */
    int woke;               /* 1 after a WAKE: it does RMA or bulk with us */
    uint64_t wake_at;       /* its last WAKE or WAKE_SYNC (us), famd then
                               promised to poll until wake_at + spin_us;
                               0 after its REST */
    uint64_t spin_us;       /* that promise: what it asked in HELLO
                               (FAM_SPIN_US), --spin-us at most */
};

static struct limits lim;  /* set once from the command line */
static struct conn *conns; /* lim.max_conns slots */

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

/* After a WAKE_SYNC reply, famd's spin loop yields its core between polls
 * until then (monotonic us), crowded machine or not. */
static uint64_t yield_until;

/* Set by a REST that no other client's WAKE stands against: the event loop
 * ends its spin now instead of --spin-us after the last activity. */
static int rest_now;

/* A client says it will do no RMA for a while (fam_rest). famd stops
 * polling at once unless another client woke it within its spin_us and so may
 * still count on it (a client skips WAKE_SYNC while famd is promised
 * awake). Nothing else changes: a REST from anyone can only end a spin no
 * one else is owed. */
static void on_rest(struct conn *c)
{
    c->wake_at = 0;
    uint64_t now = fam_now_us();
    for (int i = 0; i < lim.max_conns; i++) {
        const struct conn *o = &conns[i];
        if (o != c && o->fd >= 0 && o->wake_at && now - o->wake_at < o->spin_us)
            return;
    }
    rest_now = 1;
}

/* fam_parse_size, with 0 for an error (every caller but --quota-bytes
 * refuses 0 anyway). */
static uint64_t parse_size(const char *s)
{
    uint64_t v;
    return fam_parse_size(s, &v) ? 0 : v;
}

/* ---- identity ---------------------------------------------------------- */

#define NOBODY 65534u

/* The key max_per_user counts a connection under: the uid for a Unix
 * socket client; for TCP the client's host, with all of this host's own
 * addresses as one (a local user could otherwise connect from 127.0.0.1,
 * 127.0.0.2, ... and from every interface address, each a new "host"). */
#define WHO_TCP_HOST (1ull << 32)
#define WHO_TCP_LOCAL (2ull << 32)
static uint64_t conn_who(int fd, int local, uint32_t uid)
{
    if (local) return uid;
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
        peer.sin_family != AF_INET)
        return WHO_TCP_LOCAL; /* cannot tell: count it with the local ones */
    if (famp_address_is_local(peer.sin_addr.s_addr)) return WHO_TCP_LOCAL;
    return WHO_TCP_HOST | ntohl(peer.sin_addr.s_addr);
}

/* Who the peer of a just-accepted connection is. On the Unix socket the
 * kernel recorded the connecting process's effective uid and gid, and its
 * supplementary groups, at connect() (SO_PEERCRED, SO_PEERGROUPS): they
 * hold for the whole connection whatever the process does afterwards.
 * Any TCP client is nobody: from another host nothing proves who it is,
 * and over loopback the kernel offers no such guarantee (the owner famd
 * used to read from /proc/net/tcp was gone or wrong - root - for a
 * client that had already closed). With --auth munge a TCP client
 * becomes the uid of its MUNGE credential later (handle_auth) or is
 * refused. Returns 0, or -1 to refuse. */
static int learn_identity(struct famd *d, struct conn *c)
{
    struct famd_cred *cr = &c->cred;
    memset(cr, 0, sizeof *cr);
    cr->uid = cr->gid = NOBODY;
    if (c->local) {
        struct ucred uc;
        socklen_t ul = sizeof uc;
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0 ||
            ul != sizeof uc)
            return -1;
        cr->uid = uc.uid;
        cr->gid = uc.gid;
        /* the peer's groups; with more than we keep, the first ones (a
         * missing group can only deny, never grant) */
        gid_t g[64], *gp = g;
        socklen_t gl = sizeof g;
        int rc = getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &gl);
        if (rc != 0 && errno == ERANGE && (gp = malloc(gl)))
            rc = getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, gp, &gl);
        if (rc == 0) {
            size_t n = gl / sizeof(gid_t), max = sizeof cr->groups /
                                                  sizeof cr->groups[0];
            for (size_t i = 0; i < n && i < max; i++)
                cr->groups[cr->ngroups++] = gp[i];
        }
        if (gp && gp != g) free(gp);
    }
    c->who = conn_who(c->fd, c->local, cr->uid);
    if (d->verbose)
        fprintf(stderr, "famd: client fd %d (%s) is uid %u gid %u\n", c->fd,
                c->local ? "unix socket" : "tcp", cr->uid, cr->gid);
    return 0;
}

/* ---- connections ------------------------------------------------------- */

/* How long famd polls after activity: the longest promise a client that
 * said HELLO asked for (--spin-us when none is connected). Activity cannot
 * be told apart by client (one-sided RMA), so one client asking for the
 * whole --spin-us keeps it for everyone; clients that all ask for less
 * (kodiakd's ranks: a core given back to the ranks' own work, or to
 * another famd, on a crowded machine) get less. */
static void spin_recompute(struct famd *d)
{
    uint64_t most = 0;
    int any = 0;
    for (int i = 0; i < lim.max_conns; i++) {
        const struct conn *o = &conns[i];
        if (o->fd < 0 || !o->hello) continue;
        any = 1;
        if (o->spin_us > most) most = o->spin_us;
    }
    uint64_t was = d->spin_now;
    d->spin_now = any ? most : d->spin_us;
    if (d->verbose && d->spin_now != was)
        fprintf(stderr, "famd: polls %llu us after activity now\n",
                (unsigned long long)d->spin_now);
}

static void conn_close(struct famd *d, struct conn *c)
{
    famd_conn_gone(d, c->token); /* roll back what it left uncommitted */
    famd_bulk_peer_drop(d, c->token, c->woke);
    close(c->fd);
    free(c->in);
    free(c->out);
    int had_hello = c->hello;
    memset(c, 0, sizeof *c);
    c->fd = -1;
    if (had_hello) spin_recompute(d);
}

static int out_append(struct conn *c, const void *p, size_t n)
{
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + n) cap *= 2;
        uint8_t *o = realloc(c->out, cap);
        if (!o) return -1;
        c->out = o;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return 0;
}

static void reply(struct conn *c, const struct famp_hdr *rq, int status,
                  const void *body, size_t len)
{
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, rq ? rq->op : 0,
                         rq ? rq->seq : 0, status, len};
    if (out_append(c, &h, sizeof h) || (len && out_append(c, body, len)))
        c->closing = 1;
}

static void reply_error(struct conn *c, const struct famp_hdr *rq, int status,
                        const char *msg)
{
    size_t n = strnlen(msg, FAMP_MAX_ERRMSG);
    reply(c, rq, status, msg, n);
}

static void flush_out(struct conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) { c->outoff += (size_t)n; continue; }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        c->closing = 1; /* peer gone */
        c->outoff = c->outlen;
    }
    /* keep what is left at the start: appending after a partly sent tail
     * would let `out` grow without bound under a client that reads slowly
     * but never quite catches up */
    memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
    c->outlen -= c->outoff;
    c->outoff = 0;
}

/* Bytes of replies famd holds for the client. */
static size_t out_pending(const struct conn *c) { return c->outlen - c->outoff; }

/* Tell a client why famd is about to close its connection, without one of
 * its requests to answer: an error reply with seq 0 (docs/PROTOCOL.md).
 * Best effort and never blocking. What the client already sent is read and
 * dropped first: closing a socket with unread bytes resets the connection,
 * and the client could lose the message. */
static void say_goodbye(int fd, int status, const char *fmt, ...)
{
    char msg[FAMP_MAX_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(msg);
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, 0, 0, status, n};
    uint8_t buf[sizeof h + FAMP_MAX_ERRMSG];
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, msg, n);
    if (send(fd, buf, sizeof h + n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) return;
    shutdown(fd, SHUT_WR);
    char junk[4096];
    for (int i = 0; i < 64 && recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0; i++) {}
}

/* AUTH (famd --auth munge, TCP): the client's MUNGE credential for the
 * nonce its HELLO was answered with. One try per connection: a refused
 * credential closes it, after the reason. */
static void handle_auth(struct famd *d, struct conn *c,
                        const struct famp_hdr *h, const uint8_t *body)
{
    struct famd_cred cr;
    int rc = !d->auth || c->local
                 ? famd_fail(d, FAM_EPROTO, "this memory server takes no MUNGE "
                             "credential on this connection (famd --auth "
                             "munge, TCP clients only)")
             : c->hello || c->authed
                 ? famd_fail(d, FAM_EPROTO, "the connection is authenticated "
                             "already")
             : !c->nonce_sent
                 ? famd_fail(d, FAM_EPROTO, "AUTH before HELLO: the "
                             "credential needs the nonce HELLO answers with")
                 : famd_auth_check(d, (const char *)body, h->len, c->nonce,
                                   d->ident, &cr);
    c->nonce_sent = 0; /* one credential per nonce, right or wrong */
    if (rc) {
        if (d->verbose) fprintf(stderr, "famd: fd %d refused: %s\n", c->fd, d->err);
        reply_error(c, h, rc, d->err);
        c->closing = 1;
        return;
    }
    c->cred = cr;
    c->authed = 1;
    if (d->verbose)
        fprintf(stderr, "famd: client fd %d (tcp) is uid %u gid %u (MUNGE)\n",
                c->fd, cr.uid, cr.gid);
    struct famp_info o;
    memset(&o, 0, sizeof o);
    o.uid = cr.uid;
    o.gid = cr.gid;
    reply(c, h, 0, &o, sizeof o);
}

static void handle(struct famd *d, struct conn *c, const struct famp_hdr *h,
                   const uint8_t *body)
{
    struct famp_req q;
    struct famp_info o;
    if (h->op == FAMP_WAKE && h->len == 0) {
        c->woke = 1;
        c->wake_at = fam_now_us();
        return; /* its arrival already counted as activity */
    }
    if (h->op == FAMP_REST && h->len == 0) {
        on_rest(c);
        return;
    }
    if (h->op == FAMP_AUTH) {
        handle_auth(d, c, h, body);
        return;
    }
    if (h->len != sizeof q) {
        reply_error(c, h, FAM_EPROTO, "request body has the wrong size");
        c->closing = 1;
        return;
    }
    memcpy(&q, body, sizeof q);
    if (h->op == FAMP_HELLO) {
        memset(&o, 0, sizeof o);
        q.provider[sizeof q.provider - 1] = '\0';
        const char *mine = famd_fabric_provider(d);
        const char *want = strcmp(q.provider, "tcp") == 0 ? "tcp;ofi_rxm"
                                                          : q.provider;
        if (strcmp(want, mine) != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "this memory server uses the '%s' "
                     "provider; the client asked for '%s'", mine, q.provider);
            reply_error(c, h, FAM_ENOTSUP, msg);
            return;
        }
        if (c->hello) {
            reply_error(c, h, FAM_EPROTO, "HELLO was already said");
            return;
        }
        if (d->auth && !c->local && !c->authed) {
            /* --auth munge: first a credential for this connection */
            if (famd_auth_nonce(d, c->nonce)) {
                reply_error(c, h, FAM_EIO, d->err);
                c->closing = 1;
                return;
            }
            o.flags = FAMP_F_AUTH;
            o.arg[0] = c->nonce[0];
            o.arg[1] = c->nonce[1];
            o.uid = (uint32_t)geteuid();
            snprintf(o.name, sizeof o.name, "%s", d->ident);
            c->nonce_sent = 1;
            reply(c, h, 0, &o, sizeof o);
            return;
        }
        int rc = famd_bulk_peer_add(d, q.addr, q.addrlen, &c->cred, &c->token);
        if (rc) {
            reply_error(c, h, rc, d->err);
            return;
        }
        o.token = c->token;
        famd_fabric_getname(d, o.addr, &o.addrlen);
        o.pool_size = d->size;
        o.pool_off = d->sb->instance;
        snprintf(o.name, sizeof o.name, "%s", d->path);
        o.uid = c->cred.uid;
        o.gid = c->cred.gid;
        /* a client may ask famd to poll for less than --spin-us after
         * its activity, never for more */
        c->spin_us = q.arg[0] && q.arg[0] < d->spin_us ? q.arg[0] : d->spin_us;
        o.spin_us = (uint32_t)c->spin_us;
        o.flags = (d->persistent ? FAMP_F_PERSISTENT : 0) |
                  (famd_fabric_virt_addr(d) ? FAMP_F_VIRT_ADDR : 0);
        c->hello = 1;
        spin_recompute(d);
        c->hello_by = 0; /* no deadline any more */
        reply(c, h, 0, &o, sizeof o);
        return;
    }
    if (!c->hello) {
        reply_error(c, h, FAM_EPROTO, "HELLO must come first");
        c->closing = 1;
        return;
    }
    if (h->op == FAMP_WAKE_SYNC) {
        /* the event loop counted this request as activity: famd polls its
         * fabric without sleeping from now on for --spin-us, so the
         * client's RMA that follows this reply finds it awake. The reply
         * wakes the client on famd's core (a Unix socket wakes its reader
         * where the writer runs): famd yields between polls for a while so
         * that the client gets to post its operation */
        c->woke = 1;
        c->wake_at = fam_now_us();
        yield_until = c->wake_at + 2000;
        memset(&o, 0, sizeof o);
        reply(c, h, 0, &o, sizeof o);
        return;
    }
    d->conn = c->token; /* pending creates and staged backups are its */
    int rc = famd_rpc(d, h->op, &q, &c->cred, &o);
    if (rc < 0)
        reply_error(c, h, rc, d->err[0] ? d->err : fam_strerror(rc));
    else
        reply(c, h, 0, &o, sizeof o);
    if (d->verbose)
        fprintf(stderr, "famd: op %u from uid %u -> %d %s\n", h->op,
                c->cred.uid, rc, rc ? d->err : "");
}

/* Handle each complete message in `in`, until famd holds conn_buffer
 * bytes of replies the client has not taken: then the rest waits (and famd
 * stops reading from the socket) until the client reads its replies. */
static void handle_input(struct famd *d, struct conn *c)
{
    size_t at = 0;
    while (!c->closing && out_pending(c) < lim.conn_buffer &&
           c->inlen - at >= sizeof(struct famp_hdr)) {
        struct famp_hdr h;
        memcpy(&h, c->in + at, sizeof h);
        if (h.magic != FAMP_MAGIC || h.version != FAMP_VERSION) {
            reply_error(c, NULL, FAM_EPROTO, h.magic != FAMP_MAGIC
                        ? "not a famd request (bad magic)"
                        : "unsupported protocol version");
            c->closing = 1;
            break;
        }
        if (h.op == 0 || h.op >= FAMP_OP_END || h.len > FAMP_MAX_BODY) {
            reply_error(c, &h, FAM_EPROTO, h.len > FAMP_MAX_BODY
                        ? "request body too large" : "unknown request");
            c->closing = 1;
            break;
        }
        /* every request has a body of one fixed size (WAKE, REST: none), so a
         * wrong length is refused now: waiting for the body would let any
         * client make famd buffer up to FAMP_MAX_BODY bytes per connection */
        if (h.op == FAMP_AUTH ? h.len == 0 || h.len > FAMP_MAX_CRED
            : h.len != (h.op == FAMP_WAKE || h.op == FAMP_REST ? 0 : sizeof(struct famp_req))) {
            reply_error(c, &h, FAM_EPROTO, "request body has the wrong size");
            c->closing = 1;
            break;
        }
        if (c->inlen - at - sizeof h < h.len) break; /* wait for the rest */
        handle(d, c, &h, c->in + at + sizeof h);
        at += sizeof h + h.len;
    }
    memmove(c->in, c->in + at, c->inlen - at);
    c->inlen -= at;
}

/* Does famd want more bytes from this client now? Not while its input
 * buffer is full or its replies pile up unread: the kernel's socket
 * buffers fill, and TCP or the Unix socket make the client wait. */
static int wants_input(const struct conn *c)
{
    return !c->closing && c->inlen < lim.conn_buffer &&
           out_pending(c) < lim.conn_buffer;
}

/* Read what the socket has, up to conn_buffer bytes in all; handle each
 * complete message. */
static void on_readable(struct famd *d, struct conn *c)
{
    if (!c->in) {
        if (!(c->in = malloc(lim.conn_buffer))) { c->closing = 1; return; }
        c->incap = lim.conn_buffer;
    }
    while (wants_input(c)) {
        ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen,
                         MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->closing = 1;
            c->outlen = c->outoff = 0; /* nobody to answer */
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        c->inlen += (size_t)n;
        if (c->inlen < c->incap) break; /* a short read: the socket is empty */
    }
    handle_input(d, c);
}

static int listen_on(const char *host, int port, int *bound_port)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 128)) {
        freeaddrinfo(res);
        if (fd >= 0) close(fd);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    *bound_port = ntohs(a.sin_port);
    return fd;
}

/* The local control socket (fam_proto.h), or -1 with a message in err:
 * famd does not start without it, so that no other process can hold the
 * name clients of this port look for. */
static int listen_unix(int port, char *err, size_t errlen)
{
    struct sockaddr_un a;
    socklen_t al = famp_unix_addr(&a, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, al) ||
        listen(fd, SOMAXCONN)) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on the local control socket "
                 "@" FAMP_UNIX_NAME ": %s%s", port, strerror(e),
                 e == EADDRINUSE ? " (another famd serves this port, or a "
                 "process holds the name: local clients would talk to it)"
                 : "");
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

/* ---- accepting ----------------------------------------------------------- */

static int spare_fd = -1; /* /dev/null held open: when the process is out of
                             file descriptors it is closed for a moment, so
                             that waiting connections can be accepted and
                             told why they are refused */
static uint64_t accept_paused_until; /* monotonic us; 0: accepting */
static uint64_t next_hello_due;      /* earliest hello_by of a connection */

/* Put an accepted connection in the table, or refuse it with a reason. */
static void admit(struct famd *d, int fd, int local)
{
    struct conn c = {.fd = fd, .local = local};
    if (!local) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (learn_identity(d, &c) != 0) {
        say_goodbye(fd, FAM_EPERM, "famd cannot learn who you are "
                    "(SO_PEERCRED: %s)", strerror(errno));
        close(fd);
        return;
    }
    int slot = -1, mine = 0;
    for (int i = 0; i < lim.max_conns; i++) {
        if (conns[i].fd < 0) { if (slot < 0) slot = i; }
        else mine += conns[i].who == c.who;
    }
    if (slot < 0 || mine >= lim.max_per_user) {
        char whom[64];
        if (c.local) snprintf(whom, sizeof whom, "uid %u", c.cred.uid);
        else if (c.who == WHO_TCP_LOCAL) snprintf(whom, sizeof whom,
                                                  "this host over TCP");
        else {
            struct in_addr ia = {htonl((uint32_t)c.who)};
            snprintf(whom, sizeof whom, "host %s", inet_ntoa(ia));
        }
        if (slot < 0)
            say_goodbye(fd, FAM_EBUSY, "famd serves %d connections already, "
                        "its limit (famd --max-conns)", lim.max_conns);
        else
            say_goodbye(fd, FAM_EBUSY, "too many connections to famd from "
                        "%s: %d, the limit per user (famd "
                        "--max-conns-per-user)", whom, mine);
        if (d->verbose)
            fprintf(stderr, "famd: refused a connection from %s: %s\n", whom,
                    slot < 0 ? "table full" : "per-user limit");
        close(fd);
        return;
    }
    c.hello_by = fam_now_us() + lim.hello_us;
    if (!next_hello_due || c.hello_by < next_hello_due)
        next_hello_due = c.hello_by;
    conns[slot] = c;
}

/* Accept what waits on listening socket lfd (a bounded number per turn, so
 * that a flood of connections cannot starve the clients already in). When
 * the process or system is out of file descriptors (or kernel memory),
 * accept() fails and the connection stays queued, so poll() would report
 * the socket ready at once forever: famd would spin. Instead it refuses
 * what is queued, with a message, using its spare descriptor, and stops
 * accepting for 100 ms; connections resume once descriptors are free. */
static void accept_all(struct famd *d, int lfd, int local)
{
    for (int n = 0; n < 256; n++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            admit(d, fd, local);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS &&
            errno != ENOMEM)
            return; /* EAGAIN: nothing more waits */
        int err = errno;
        static uint64_t warned; /* at most one line per 10 s in the log */
        if (!warned || fam_now_us() - warned > 10000000 || d->verbose) {
            warned = fam_now_us();
            fprintf(stderr, "famd: cannot accept connections: %s; refusing "
                    "them until descriptors are free\n", strerror(err));
        }
        if (spare_fd >= 0) {
            close(spare_fd);
            for (int k = 0; k < 64; k++) {
                int x = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (x < 0) break;
                say_goodbye(x, FAM_EBUSY, "famd cannot serve more "
                            "connections now: %s (try again later)",
                            strerror(err));
                close(x);
            }
            spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        accept_paused_until = fam_now_us() + 100000;
        return;
    }
}

/* Close the connections that did not say HELLO in time (idle ones would
 * otherwise hold their slot for good), and note when the next is due. */
static void expire_hellos(struct famd *d)
{
    uint64_t now = fam_now_us(), next = 0;
    for (int i = 0; i < lim.max_conns; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0 || !c->hello_by) continue;
        if (now >= c->hello_by) {
            say_goodbye(c->fd, FAM_ETIMEOUT, "no HELLO within %.3g s: famd "
                        "closes the connection (famd --hello-timeout)",
                        (double)lim.hello_us / 1e6);
            if (d->verbose)
                fprintf(stderr, "famd: fd %d said no HELLO in time\n", c->fd);
            conn_close(d, c);
        } else if (!next || c->hello_by < next) {
            next = c->hello_by;
        }
    }
    next_hello_due = next;
}

/* How long an idle famd without a fabric wait fd (shm) sleeps in poll()
 * between two looks at its fabric, idle_us after its last activity. Clients
 * wake it through the control socket before RMA (WAKE, WAKE_SYNC), so the
 * tick is only a safety net for fabric work nobody announced: the
 * destination of a copy that no client waits for (the source famd's RMA
 * writes move only while this famd polls). It starts at 1 ms, so such a
 * copy keeps its pace, and grows with the idle time (1/32 of it) up to
 * FAMD_IDLE_TICK_MAX_MS: an idle famd wakes 4 times a second (~0.01% of a
 * core; polling every ms cost 2-4%, bench/idle_bench). */
#define FAMD_IDLE_TICK_MAX_MS 250
static int idle_tick_ms(uint64_t idle_us)
{
    uint64_t ms = idle_us / 32000;
    return ms < 1 ? 1 : ms > FAMD_IDLE_TICK_MAX_MS ? FAMD_IDLE_TICK_MAX_MS
                                                   : (int)ms;
}

/* A poll() timeout (ms, -1 = none) shortened so that famd wakes for the
 * next HELLO deadline and the end of an accept pause. */
static int limit_timeout(int timeout)
{
    uint64_t due = next_hello_due, now = fam_now_us();
    if (accept_paused_until && (!due || accept_paused_until < due))
        due = accept_paused_until;
    if (!due) return timeout;
    uint64_t ms = due <= now ? 0 : (due - now + 999) / 1000;
    if (ms > INT32_MAX) ms = INT32_MAX;
    return timeout < 0 || (int)ms < timeout ? (int)ms : timeout;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: famd --port P --pool-size SIZE [--pool-file PATH]\n"
        "            [--provider shm|tcp] [--host ADDR] [--data-dir DIR]\n"
        "            [--spin-us N] [--max-conns N] [--max-conns-per-user N]\n"
        "            [--conn-buffer SIZE] [--hello-timeout SEC] [--verbose]\n"
        "            [--auth none|munge] [--munge-socket PATH]\n"
        "            [--auth-max-age SEC] [--auth-cache N]\n"
        "  --port P          control port (0: pick a free one); local clients\n"
        "                    use the Unix socket @kodiak-famd/port:P instead\n"
        "  --pool-size SIZE  pool bytes, e.g. 1G, 256M (minimum 16M)\n"
        "  --pool-file PATH  keep the pool in this file (persistent); else\n"
        "                    the pool is volatile memory\n"
        "  --provider NAME   libfabric provider: shm (one host) or tcp\n"
        "  --host ADDR       address to serve on (default 127.0.0.1)\n"
        "  --data-dir DIR    directory for backups\n"
        "  --spin-us N       busy-poll N us after activity (default 2000);\n"
        "                    clients may ask for less (FAM_SPIN_US)\n"
        "  --prefault-mb N   keep N MiB of a volatile pool's free space mapped\n"
        "                    in where the next items go (a quarter for small\n"
        "                    ones), while famd is quiet (default 64; 0: off)\n"
        "  --quota-objects N|P%%  regions + items one uid may hold here\n"
        "                    (root and famd's own uid: no limit): a count,\n"
        "                    or a share of the metadata slots\n"
        "                    (default 50%%; 0: no limit)\n"
        "  --quota-bytes SIZE|P%%  item bytes one uid may hold\n"
        "                    here (default 50%% of the pool; 0: no limit)\n"
        "  --quota-backup-bytes SIZE|P%%  bytes of backups one uid may\n"
        "                    keep in --data-dir (default 50%% of its file\n"
        "                    system; 0: no limit)\n"
        "  --max-conns N     client connections at once (default 1024)\n"
        "  --max-conns-per-user N\n"
        "                    of those, per uid, or per client host over TCP\n"
        "                    (default 256; at most --max-conns)\n"
        "  --conn-buffer SIZE  per connection: requests read ahead and\n"
        "                    replies the client has not taken (default 64K)\n"
        "  --hello-timeout SEC  close a connection that says no HELLO in\n"
        "                    this time (default 10)\n"
        "  --auth none|munge  TCP clients: nobody (none, the default), or\n"
        "                    the uid/gid of the MUNGE credential they must\n"
        "                    send (munge; Unix-socket clients: unchanged)\n"
        "  --munge-socket PATH  munged's socket (default libmunge's)\n"
        "  --auth-max-age SEC  oldest credential accepted (default 60)\n"
        "  --auth-cache N    nonces of accepted credentials remembered\n"
        "                    against replay (default 65536)\n");
}

int main(int argc, char **argv)
{
    static struct option opts[] = {
        {"port", required_argument, 0, 'p'},
        {"pool-size", required_argument, 0, 's'},
        {"pool-file", required_argument, 0, 'f'},
        {"provider", required_argument, 0, 'P'},
        {"host", required_argument, 0, 'H'},
        {"data-dir", required_argument, 0, 'd'},
        {"spin-us", required_argument, 0, 'S'},
        {"prefault-mb", required_argument, 0, 'F'},
        {"max-conns", required_argument, 0, 'C'},
        {"max-conns-per-user", required_argument, 0, 'U'},
        {"conn-buffer", required_argument, 0, 'B'},
        {"hello-timeout", required_argument, 0, 'T'},
        {"verbose", no_argument, 0, 'v'},
        {"quota-objects", required_argument, 0, 'Q'},
        {"quota-bytes", required_argument, 0, 'q'},
        {"quota-backup-bytes", required_argument, 0, 'Y'},
        {"help", no_argument, 0, 'h'},
        {"auth", required_argument, 0, 'A'},
        {"munge-socket", required_argument, 0, 'M'},
        {"auth-max-age", required_argument, 0, 'G'},
        {"auth-cache", required_argument, 0, 'K'},
        {0, 0, 0, 0}};
    int port = -1, verbose = 0;
    uint64_t pool_size = 0, spin_us = 2000, prefault_mb = 64;
    /* SIGTERM and SIGINT wait until famd's own handlers are in: libfabric's
     * providers (libinfinipath) install handlers that call exit(), which
     * deadlocked in malloc when a stop came while famd was starting; the
     * threads started meanwhile keep them blocked, so the main thread
     * takes them */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stops, NULL);
    const char *pool_file = NULL, *provider = "shm", *host = "127.0.0.1";
    const char *data_dir = NULL;
    /* per-uid quotas (famd_pool.c): an absolute value, or a percentage of
     * the metadata slots / pool bytes, known once the pool is open */
    uint64_t q_objs = 50, q_bytes = 50, q_bak = 50;
    int q_objs_pct = 1, q_bytes_pct = 1, q_bak_pct = 1;
    /* limits: 1024 connections as before, a quarter per user (a kodiakd
     * opens one per rank and famd); 64 KiB holds ~70 pipelined requests,
     * where libfam sends one at a time; an honest client says HELLO in
     * microseconds, 10 s leaves room for a loaded machine */
    lim = (struct limits){.max_conns = 1024, .max_per_user = 256,
                          .conn_buffer = 64 << 10, .hello_us = 10000000};
    double hello_s = 10;
    char *end;
    int auth_munge = 0, auth_max_age = 60;
    long auth_cache = 65536;
    const char *munge_socket = NULL;
    for (int ch; (ch = getopt_long(argc, argv, "p:s:f:P:H:d:S:F:C:U:B:T:vhQ:q:Y:A:M:G:K:", opts, NULL)) != -1;) {
        switch (ch) {
        case 'p': port = atoi(optarg); break;
        case 's':
            if (!(pool_size = parse_size(optarg))) {
                fprintf(stderr, "famd: bad --pool-size '%s'\n", optarg);
                return 2;
            }
            break;
        case 'f': pool_file = optarg; break;
        case 'P': provider = optarg; break;
        case 'H': host = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'S':
            errno = 0;
            spin_us = strtoull(optarg, &end, 10);
            /* HELLO's reply carries the spin granted in 32 bits */
            if (errno || *end || !*optarg || *optarg == '-' || spin_us > UINT32_MAX) {
                fprintf(stderr, "famd: bad --spin-us '%s' (want 0 to %u)\n", optarg,
                        UINT32_MAX);
                return 2;
            }
            break;
        case 'F': prefault_mb = strtoull(optarg, NULL, 10); break;
        case 'C': case 'U':
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 1 || v > 1000000) {
                fprintf(stderr, "famd: bad --%s '%s' (want 1 to 1000000)\n",
                        ch == 'C' ? "max-conns" : "max-conns-per-user", optarg);
                return 2;
            }
            *(ch == 'C' ? &lim.max_conns : &lim.max_per_user) = (int)v;
            break;
        case 'B':
            lim.conn_buffer = parse_size(optarg);
            /* one request must fit; more than 64 MiB per connection is
             * no limit */
            if (lim.conn_buffer < 4096 || lim.conn_buffer > (64u << 20)) {
                fprintf(stderr, "famd: bad --conn-buffer '%s' (want 4K to "
                        "64M)\n", optarg);
                return 2;
            }
            break;
        case 'T':
            errno = 0;
            hello_s = strtod(optarg, &end);
            if (errno || *end || !(hello_s >= 0.001 && hello_s <= 86400)) {
                fprintf(stderr, "famd: bad --hello-timeout '%s' (want "
                        "seconds, 0.001 to 86400)\n", optarg);
                return 2;
            }
            lim.hello_us = (uint64_t)(hello_s * 1e6);
            break;
        case 'v': verbose = 1; break;
        case 'Q':
        case 'Y':
        case 'q': { /* a count (Q) or a size (q, Y), or a percentage P% */
            size_t l = strlen(optarg);
            int pct = l > 1 && optarg[l - 1] == '%', ok;
            char *end;
            uint64_t v;
            if (pct || ch == 'Q') {
                errno = 0;
                v = strtoull(optarg, &end, 10);
                ok = !errno && end != optarg && *end == (pct ? '%' : '\0') &&
                     (!pct || v <= 100);
            } else {
                v = parse_size(optarg);
                ok = v || !strcmp(optarg, "0");
            }
            if (!ok) {
                fprintf(stderr, "famd: bad --quota-%s '%s'\n",
                        ch == 'Q' ? "objects" : ch == 'Y' ? "backup-bytes" : "bytes",
                        optarg);
                return 2;
            }
            if (ch == 'Q') { q_objs = v; q_objs_pct = pct; }
            else if (ch == 'Y') { q_bak = v; q_bak_pct = pct; }
            else { q_bytes = v; q_bytes_pct = pct; }
            break;
        }
        case 'A':
            if (strcmp(optarg, "munge") && strcmp(optarg, "none")) {
                fprintf(stderr, "famd: bad --auth '%s' (want none or munge)\n",
                        optarg);
                return 2;
            }
            auth_munge = !strcmp(optarg, "munge");
            break;
        case 'M':
            if (strlen(optarg) >= 108) {
                fprintf(stderr, "famd: --munge-socket path too long\n");
                return 2;
            }
            munge_socket = optarg;
            break;
        case 'G': case 'K': {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            long hi = ch == 'G' ? 86400 : 16 << 20;
            if (errno || *end || v < 1 || v > hi) {
                fprintf(stderr, "famd: bad --%s '%s' (want 1 to %ld)\n",
                        ch == 'G' ? "auth-max-age" : "auth-cache", optarg, hi);
                return 2;
            }
            if (ch == 'G') auth_max_age = (int)v;
            else auth_cache = v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (port < 0 || port > 65535 || (!pool_size && !pool_file)) {
        usage(stderr);
        return 2;
    }
    if (lim.max_per_user > lim.max_conns) {
        fprintf(stderr, "famd: --max-conns-per-user %d is above --max-conns "
                "%d\n", lim.max_per_user, lim.max_conns);
        return 2;
    }
    if (strcmp(provider, "shm") && strcmp(provider, "tcp") &&
        strcmp(provider, "sockets")) {
        fprintf(stderr, "famd: unknown provider '%s' (use shm or tcp)\n",
                provider);
        return 2;
    }
    if (data_dir && mkdir(data_dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "famd: cannot create --data-dir %s: %s\n", data_dir,
                strerror(errno));
        return 1;
    }

    static struct famd d;
    d.verbose = verbose;
    d.spin_us = spin_us;
    d.spin_now = spin_us;
    d.data_dir = data_dir;
    if (famd_pool_open(&d, pool_file, pool_size) ||
        famd_prefault_start(&d, prefault_mb > d.size / 8 >> 20 ? d.size / 8
                                                               : prefault_mb << 20) ||
        famd_fabric_open(&d, provider, host) || famd_bulk_open(&d)) {
        fprintf(stderr, "famd: %s\n", d.err);
        return 1;
    }
    d.quota_objects = q_objs_pct ? d.nslots * q_objs / 100 : q_objs;
    d.quota_bytes = q_bytes_pct ? (d.size - d.sb->data_off) / 100 * q_bytes
                                : q_bytes;
    if (q_objs_pct && q_objs && !d.quota_objects) d.quota_objects = 1;
    if (q_bytes_pct && q_bytes && !d.quota_bytes) d.quota_bytes = FAMD_PAGE;
    d.quota_backup_bytes = q_bak;
    if (q_bak_pct && data_dir) { /* a share of the data directory's file system */
        struct statvfs fs;
        d.quota_backup_bytes = 0;
        if (q_bak && statvfs(data_dir, &fs) == 0)
            d.quota_backup_bytes = (uint64_t)fs.f_blocks * fs.f_frsize / 100 * q_bak;
        if (q_bak && !d.quota_backup_bytes) d.quota_backup_bytes = FAMD_PAGE;
    }
    /* TCP first (port 0 picks one), then the Unix socket of that port; a
     * port picked for us whose Unix name is taken (a famd on another
     * address of this host has that port) is given back for another */
    int bound, lfd, ufd = -1;
    char uerr[256];
    for (int tries = 0;; tries++) {
        lfd = listen_on(host, port, &bound);
        if (lfd < 0) {
            fprintf(stderr, "famd: cannot listen on %s:%d: %s\n", host, port,
                    strerror(errno));
            return 1;
        }
        if ((ufd = listen_unix(bound, uerr, sizeof uerr)) >= 0) break;
        close(lfd);
        if (port != 0 || errno != EADDRINUSE || tries == 20) {
            fprintf(stderr, "famd: %s\n", uerr);
            return 1;
        }
    }
    snprintf(d.ident, sizeof d.ident, "famd %s:%d pool %016llx", host, bound,
             (unsigned long long)d.sb->instance);
    if (auth_munge &&
        famd_auth_open(&d, munge_socket, auth_max_age, (size_t)auth_cache)) {
        fprintf(stderr, "famd: %s\n", d.err);
        return 1;
    }
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_UNBLOCK, &stops, NULL);

    printf("famd ready %s:%d provider=%s pool=%llu persistent=%d pid=%d "
           "local=@" FAMP_UNIX_NAME " auth=%s\n",
           host, bound, provider, (unsigned long long)d.size, d.persistent,
           (int)getpid(), bound, d.auth ? "munge" : "none");
    fflush(stdout);

    conns = calloc((size_t)lim.max_conns, sizeof *conns);
    struct pollfd *pfd = calloc((size_t)lim.max_conns + 3, sizeof *pfd);
    int *idx = calloc((size_t)lim.max_conns + 3, sizeof *idx);
    if (!conns || !pfd || !idx) {
        fprintf(stderr, "famd: out of memory for %d connections\n",
                lim.max_conns);
        return 1;
    }
    for (int i = 0; i < lim.max_conns; i++) conns[i].fd = -1;
    int wfd = famd_fabric_wait_fd(&d);
    uint64_t last = fam_now_us();
    unsigned refused = 0; /* trywaits refused in a row while idle */
    struct fam_crowd crowd = {0};

    while (!stop) {
        if (famd_fabric_progress(&d) > 0 || famd_bulk_poll(&d)) {
            last = fam_now_us();
            famd_prefault_busy();
            refused = 0;
        }
        if (fam_now_us() - last < d.spin_now) {
            /* busy: drive the fabric for ~20 us between two poll() calls
             * on the sockets; a system call per turn would add its cost to
             * every client RMA waiting on us. tcp too: a 1 MiB blocking put
             * went from 0.84-0.86 to 0.92 of bare libfabric with this spin
             * (fam_bench, 15 trials; docs/PERFORMANCE.md) */
            uint64_t until = fam_now_us() + 20;
            /* after 32 empty polls in a row, yield if the machine is
             * crowded (fam_crowd.h): a waiting client or another famd may
             * need this core (two famds and a client on two cores read a
             * striped item 10x slower without it) */
            unsigned empty = 0;
            do {
                if (famd_fabric_progress(&d) > 0) {
                    last = fam_now_us();
                    famd_prefault_busy();
                    empty = 0;
                } else if (++empty >= 32 && (fam_now_us() < yield_until ||
                                             fam_crowded(&crowd, fam_now_us()))) {
                    sched_yield();
                }
            } while (fam_now_us() < until && !stop);
        }
        /* limits: HELLO deadlines, the end of an accept pause */
        if (next_hello_due && fam_now_us() >= next_hello_due) expire_hellos(&d);
        if (accept_paused_until && fam_now_us() >= accept_paused_until)
            accept_paused_until = 0;
        int np = 0, accepting = !accept_paused_until;
        /* a negative fd is left out by poll(): not accepting for now */
        pfd[np].fd = accepting ? lfd : -1; pfd[np].events = POLLIN; idx[np++] = -1;
        pfd[np].fd = accepting ? ufd : -1; pfd[np].events = POLLIN; idx[np++] = -3;
        int wslot = -1;
        for (int i = 0; i < lim.max_conns; i++) {
            struct conn *c = &conns[i];
            if (c->fd < 0) continue;
            pfd[np].fd = c->fd;
            pfd[np].events = (wants_input(c) ? POLLIN : 0) |
                             (out_pending(c) ? POLLOUT : 0);
            idx[np++] = i;
        }
        int timeout = 0;
        uint64_t idle_us = fam_now_us() - last;
        if (idle_us >= d.spin_now) {
            /* idle: block until a socket or the fabric wakes us */
            if (wfd >= 0 && famd_fabric_trywait(&d) == 0) {
                pfd[np].fd = wfd; pfd[np].events = POLLIN; wslot = np;
                idx[np++] = -2;
                timeout = 1000;
                refused = 0;
            } else if (wfd >= 0) {
                /* a refused trywait usually means a completion just
                 * arrived: poll again at once. But a provider may refuse it
                 * for good while an RMA it cannot serve (a revoked key)
                 * sits in its queue: after 64 refusals in a row with
                 * nothing to do, poll every ms instead of spinning (the
                 * provider has work, so this is not idle) */
                timeout = ++refused > 64 ? 1 : 0;
            } else {
                timeout = idle_tick_ms(idle_us); /* shm: no wait fd */
            }
        }
        timeout = limit_timeout(timeout);
        int n = poll(pfd, (nfds_t)np, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("famd: poll");
            break;
        }
        if (n == 0) continue;
        last = fam_now_us();
        famd_prefault_busy();
        if (wslot >= 0 && pfd[wslot].revents) famd_fabric_progress(&d);
        if (pfd[0].revents & POLLIN) accept_all(&d, lfd, 0);
        if (pfd[1].revents & POLLIN) accept_all(&d, ufd, 1);
        for (int k = 2; k < np; k++) {
            if (idx[k] < 0 || !pfd[k].revents) continue;
            struct conn *c = &conns[idx[k]];
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) on_readable(&d, c);
            flush_out(c);
            /* requests held back while replies piled up: the client took
             * some, so go on with them */
            if (c->inlen && !c->closing && out_pending(c) < lim.conn_buffer) {
                handle_input(&d, c);
                flush_out(c);
            }
            if (c->closing && c->outlen == 0) conn_close(&d, c);
        }
        if (rest_now) { /* after the activity counted above */
            rest_now = 0;
            last = fam_now_us() - d.spin_now;
            yield_until = 0;
        }
    }
    for (int i = 0; i < lim.max_conns; i++)
        if (conns[i].fd >= 0) conn_close(&d, &conns[i]);
    free(conns);
    free(pfd);
    free(idx);
    if (spare_fd >= 0) close(spare_fd);
    close(ufd);
    close(lfd);
    famd_fabric_close(&d);
    famd_bulk_close(&d);
    famd_prefault_stop(&d);
    famd_pool_close(&d);
    famd_auth_close(&d);
    if (verbose) fprintf(stderr, "famd: stopped\n");
    return 0;
}
