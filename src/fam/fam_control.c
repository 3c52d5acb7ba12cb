/* SPDX-License-Identifier: Apache-2.0 */
/* fam_control.c — libfam's control connections to the memory servers.
 *
 * One socket per famd (Unix for a local port, TCP otherwise) carries
 * fixed-size requests and replies (fam_proto.h, docs/PROTOCOL.md): HELLO
 * (learning the server's fabric address and who it thinks we are), one
 * request at a time per server (fam_rpc), reconnecting when famd
 * restarted, and the WAKEs that keep a famd polling while our RMA is in
 * flight (shm cannot wake it). Also what needs both the control
 * connections and the endpoint (fam_fabric.c): rebuilding them after a
 * fabric error (fam_fabric_reset) and the provider's queue being full
 * (fam_post_full wakes the famds that would drain it). Above the fabric,
 * below metadata and data. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fam_internal.h"

/* ---- sockets ------------------------------------------------------------ */

/* The control socket is the Unix one (a famd on this host), else TCP:
 * FAM_CONTROL=tcp|unix|auto (docs/PROTOCOL.md). */
enum { CTL_AUTO, CTL_TCP, CTL_UNIX };

/* A famd on this host, on its Unix socket (fam_proto.h): there the kernel
 * tells famd our uid. connect() waits up to timeout_ms for room in famd's
 * queue. The fd, or -1 with errno. */
static int connect_unix(int port, int timeout_ms)
{
    struct sockaddr_un a;
    socklen_t al = famp_unix_addr(&a, port);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, al) != 0) {
        int e = errno;
        close(fd);
        errno = e == EAGAIN || e == EINPROGRESS ? ETIMEDOUT : e;
        return -1;
    }
    tv = (struct timeval){0, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* TCP to a. The fd, or -1 with errno saying why: the connect's own error
 * (SO_ERROR: "Connection refused", ...), or ETIMEDOUT. */
static int connect_tcp(const struct sockaddr_in *a, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int rc = connect(fd, (const struct sockaddr *)a, sizeof *a);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0, n;
        socklen_t el = sizeof err;
        while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {}
        if (n == 0) err = ETIMEDOUT;
        else if (n < 0) err = errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) err = errno;
        rc = err ? -1 : 0;
        errno = err;
    }
    if (rc != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* The control connection to the famd at host:port: its Unix socket when
 * host is an address of this machine, TCP otherwise (where famd takes us
 * for nobody). With FAM_CONTROL unset or "auto", a local host whose Unix
 * name nobody holds is tried over TCP (a port forwarded to a famd
 * elsewhere); "tcp" always uses TCP (tests play a remote client so);
 * "unix" never does. Returns the fd, or -1 with the reason in why. */
static int connect_to(const char *host, int port, int timeout_ms, char *why,
                      size_t whylen)
{
    const char *mode = getenv("FAM_CONTROL");
    int ctl = !mode || !*mode || !strcmp(mode, "auto") ? CTL_AUTO
              : !strcmp(mode, "tcp") ? CTL_TCP
              : !strcmp(mode, "unix") ? CTL_UNIX : -1;
    if (ctl < 0) {
        snprintf(why, whylen, "FAM_CONTROL='%s' is not tcp, unix or auto",
                 mode);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &res);
    if (gai != 0) {
        snprintf(why, whylen, "cannot resolve '%s': %s", host,
                 gai_strerror(gai));
        return -1;
    }
    struct sockaddr_in a;
    memcpy(&a, res->ai_addr, sizeof a);
    freeaddrinfo(res);
    int fd;
    if (ctl == CTL_UNIX ||
        (ctl == CTL_AUTO && famp_address_is_local(a.sin_addr.s_addr))) {
        if ((fd = connect_unix(port, timeout_ms)) >= 0) return fd;
        if (ctl == CTL_UNIX || errno != ECONNREFUSED) {
            snprintf(why, whylen, "local control socket @" FAMP_UNIX_NAME
                     ": %s", port, strerror(errno));
            return -1;
        }
    }
    if ((fd = connect_tcp(&a, timeout_ms)) >= 0) return fd;
    snprintf(why, whylen, "%s", strerror(errno));
    return -1;
}

static int io_all(int fd, void *buf, size_t n, int sending, int timeout_ms)
{
    uint8_t *p = buf;
    while (n) {
        struct pollfd pf = {fd, sending ? POLLOUT : POLLIN, 0};
        int r = poll(&pf, 1, timeout_ms);
        if (r == 0) return FAM_ETIMEOUT;
        if (r < 0) { if (errno == EINTR) continue; return FAM_EUNREACHABLE; }
        ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (k <= 0) return FAM_EUNREACHABLE;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Whether famd closed the control connection fd while it was idle (famd
 * stopped or restarted since our last request): end of file or an error
 * on it, and nothing left to read. Bytes waiting (a goodbye message) are
 * not a close: fam_rpc reads them as the answer, as before. */
static int peer_closed(int fd)
{
    struct pollfd pf = {fd, POLLIN | POLLRDHUP, 0};
    if (poll(&pf, 1, 0) <= 0) return 0; /* nothing happened: still open */
    if (pf.revents & POLLNVAL) return 1;
    char b;
    ssize_t k = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k > 0) return 0;
    if (k == 0) return 1;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static int hello_server(fam_t *f, int i);

/* famd `except` restarted; others often did too (a cluster restarts as a
 * whole). Connect again, now, to every other famd that closed its control
 * connection: HELLO tells libfam the server restarted (new epoch), so a
 * data call to it refreshes its keys first instead of sending RMA to the
 * old famd's address, which over shm never completes. */
static void reconnect_others(fam_t *f, int except)
{
    pthread_mutex_lock(&f->flock);
    for (int i = 0; i < f->nservers; i++) {
        struct fam_server *o = &f->srv[i];
        if (i == except) continue;
        pthread_mutex_lock(&o->lock);
        int closed = o->fd >= 0 && peer_closed(o->fd);
        if (closed) {
            close(o->fd);
            o->fd = -1;
        }
        pthread_mutex_unlock(&o->lock);
        if (closed && f->neps) {
            char keep[1024]; /* not this request's error: keep the caller's */
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            hello_server(f, i);
            fam_set_error(0, "%s", keep);
        }
    }
    pthread_mutex_unlock(&f->flock);
}

static int rpc_body(fam_t *f, int server, uint16_t op, const void *q,
                    size_t blen, struct famp_info *o);

/* One request, one reply. On failure the server's message becomes this
 * thread's last error. */
int fam_rpc(fam_t *f, int server, uint16_t op, const struct famp_req *q,
            struct famp_info *o)
{
    return rpc_body(f, server, op, q, sizeof *q, o);
}

/* The same with a body of blen bytes that is not a famp_req (AUTH). */
static int rpc_body(fam_t *f, int server, uint16_t op, const void *q,
                 size_t blen, struct famp_info *o)
{
    struct fam_server *s = &f->srv[server];
    if (op != FAMP_HELLO && op != FAMP_AUTH) {
        /* A control connection that famd closed while we were idle (it
         * restarted) is dropped here, before anything is sent on it, and
         * connected again below: the request has not gone out, so sending
         * it on the new connection is safe whatever it is. A close that
         * races with the send still fails this request (the next one
         * reconnects). */
        pthread_mutex_lock(&s->lock);
        int closed = s->fd >= 0 && peer_closed(s->fd);
        if (closed) {
            close(s->fd);
            s->fd = -1;
        }
        pthread_mutex_unlock(&s->lock);
        if (closed) reconnect_others(f, server);
    }
    char why[1024] = "";
    if (s->fd < 0 && op != FAMP_HELLO && op != FAMP_AUTH) {
        /* the connection was lost (famd restarted?): connect again */
        pthread_mutex_lock(&f->flock);
        if (s->fd < 0 && f->neps && hello_server(f, server))
            snprintf(why, sizeof why, ": %s", fam_last_error());
        pthread_mutex_unlock(&f->flock);
    }
    pthread_mutex_lock(&s->lock);
    int rc;
    if (s->fd < 0) {
        /* why: the reconnect's own error, which already names the server */
        rc = why[0] ? fam_fail(FAM_EUNREACHABLE, "%s", why + 2)
                    : fam_fail(FAM_EUNREACHABLE, "memory server %s:%d is unreachable "
                               "(connection lost)", s->host, s->port);
        goto out;
    }
    if (++s->seq == 0) s->seq = 1; /* seq 0 is famd's goodbye (below) */
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, op, s->seq, 0, blen};
    int sent = 0; /* the request went out whole */
    if ((rc = io_all(s->fd, &h, sizeof h, 1, f->timeout_ms)) ||
        (rc = io_all(s->fd, (void *)q, blen, 1, f->timeout_ms))) {
        /* famd may have refused the connection (a limit, out of
         * descriptors) before the request went out: its goodbye waits
         * unread behind the close that failed the send; read it below */
        if (rc != FAM_EUNREACHABLE) goto broken;
    } else {
        sent = 1;
    }
    struct famp_hdr r;
    if ((rc = io_all(s->fd, &r, sizeof r, 0, sent ? f->timeout_ms : 100))) {
        if (!sent) rc = FAM_EUNREACHABLE;
        goto broken;
    }
    if (!sent && !(r.magic == FAMP_MAGIC && r.seq == 0 && r.status < 0)) {
        rc = FAM_EUNREACHABLE;
        goto broken;
    }
    /* an error with seq 0 answers no request: famd refuses the connection
     * (a limit, no HELLO in time) and closes it after this message */
    int goodbye = r.magic == FAMP_MAGIC && r.seq == 0 && r.status < 0;
    if (r.magic != FAMP_MAGIC || (r.seq != h.seq && !goodbye) ||
        r.len > FAMP_MAX_BODY) {
        rc = FAM_EPROTO;
        goto broken;
    }
    if (r.status < 0) {
        char msg[FAMP_MAX_ERRMSG + 1];
        size_t n = r.len < FAMP_MAX_ERRMSG ? r.len : FAMP_MAX_ERRMSG;
        if ((rc = io_all(s->fd, msg, n, 0, f->timeout_ms))) goto broken;
        msg[n] = '\0';
        for (uint64_t left = r.len - n; left;) { /* drop an over-long tail */
            char junk[256];
            size_t k = left < sizeof junk ? left : sizeof junk;
            if ((rc = io_all(s->fd, junk, k, 0, f->timeout_ms))) goto broken;
            left -= k;
        }
        if (goodbye) {
            close(s->fd);
            s->fd = -1; /* the next request connects again */
            rc = fam_fail(r.status, "memory server %s:%d closed the "
                          "connection: %s", s->host, s->port, msg);
            goto out;
        }
        rc = fam_fail(r.status, "%s", msg);
        goto out;
    }
    if (r.len != sizeof *o) { rc = FAM_EPROTO; goto broken; }
    if ((rc = io_all(s->fd, o, sizeof *o, 0, f->timeout_ms))) goto broken;
    o->name[FAM_NAME_MAX] = '\0';
    rc = 0;
    /* famd answered: it is awake and polls for its spin from now (every
     * request starts one), so an RMA that follows within half our spin
     * sends a one-way WAKE, not a WAKE_SYNC round trip (fam_wake_first):
     * each kodiakd command's store check then its catalog read, an
     * allocation then its first write, took two round trips */
    s->last_active = fam_now_us();
    goto out;
broken:
    close(s->fd);
    s->fd = -1; /* the next request connects again (hello_server) */
    rc = fam_fail(rc == FAM_ETIMEOUT ? FAM_ETIMEOUT : rc == FAM_EPROTO ? FAM_EPROTO
                  : FAM_EUNREACHABLE,
                  "memory server %s:%d %s", s->host, s->port,
                  rc == FAM_ETIMEOUT ? "did not answer in time"
                  : rc == FAM_EPROTO ? "sent a malformed reply"
                  : "closed the connection");
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Keep famd polling while we do RMA on it: it may be asleep, and the shm
 * provider cannot wake it. Cheap: one send() per spin_us/2 of activity.
 * Not with tcp: there our request itself wakes famd (its socket makes the
 * fabric's wait fd readable), and a WAKE arriving during a large transfer
 * stalled it: with WAKEs every millisecond, 1 in 5 blocking 1 MiB gets
 * took ~0.8 ms instead of ~0.2 ms, even with famd never sleeping
 * (bench/fam_bench: blocking get at 0.36-0.77 of bare libfabric; without
 * WAKEs 0.9-1.2). */
static void wake(fam_t *f, int server, int tcp_too);
void fam_wake(fam_t *f, int server) { wake(f, server, 0); }

/* The same, with tcp too: for a request famd must see at once because
 * it counts time from its arrival (a copy's deadline); over tcp a famd
 * asleep in poll() saw a bulk request only at its next 1 s wake-up now
 * and then, and answered a copy whose destination was down after the
 * client had given up. */
void fam_wake_always(fam_t *f, int server) { wake(f, server, 1); }

static void wake(fam_t *f, int server, int tcp_too)
{
    struct fam_server *s = &f->srv[server];
    uint64_t now = fam_now_us();
    s->last_active = now;
    if (!tcp_too && fam_srv_tcp(f, server)) return;
    if (now - s->last_wake < s->spin_us / 2) return;
    pthread_mutex_lock(&s->lock);
    if (s->fd >= 0) {
        struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_WAKE, 0, 0, 0};
        if (send(s->fd, &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof h)
            s->last_wake = now;
    }
    pthread_mutex_unlock(&s->lock);
}

int fam_rest(fam_t *f)
{
    if (!f) return fam_fail(FAM_EINVAL, "fam_rest: NULL fam_t");
    uint64_t now = fam_now_us();
    for (int i = 0; i < f->nservers; i++) {
        struct fam_server *s = &f->srv[i];
        /* only a famd we promised to keep busy: a WAKE within spin_us */
        if (fam_srv_tcp(f, i) || !s->last_wake || now - s->last_wake >= s->spin_us)
            continue;
        pthread_mutex_lock(&f->flock);
        int busy = s->inflight > 0;
        pthread_mutex_unlock(&f->flock);
        if (busy) continue; /* it must go on serving those */
        pthread_mutex_lock(&s->lock);
        if (s->fd >= 0) {
            struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_REST, 0, 0, 0};
            if (send(s->fd, &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof h) {
                /* famd may sleep now: the next operation wakes it first
                 * and waits for it (fam_wake_first's WAKE_SYNC) */
                s->last_wake = 0;
                s->last_active = 0;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return 0;
}

/* Before an operation on server's memory (RMA, atomics, bulk requests),
 * called without f->flock held. An idle famd blocks in poll() and its
 * fabric cannot wake it on shm; on tcp the request wakes it, but the
 * scheduler tends to run the woken famd on the core where this client is
 * already spinning for the answer, so it waits for our time slice to end.
 * Either way the first data operation after an idle gap took 2-8 ms
 * (bench/idle_bench). So after a gap of spin_us/2 with this server (famd
 * may have gone to sleep), wait for a WAKE_SYNC round trip first: it costs
 * one control request (~50-150 us), we sleep in recv() meanwhile, and famd
 * answers only once it is awake and polling. Otherwise, as before, a
 * one-way WAKE when due (fam_wake). A failure is left to the operation
 * itself to report. */
void fam_wake_first(fam_t *f, int server)
{
    struct fam_server *s = &f->srv[server];
    uint64_t now = fam_now_us(), gap = s->spin_us / 2;
    if (gap < 200) gap = 200;
    if (now - s->last_active < gap || s->fd < 0) {
        fam_wake(f, server);
        return;
    }
    struct famp_req q;
    struct famp_info o;
    memset(&q, 0, sizeof q);
    if (fam_rpc(f, server, FAMP_WAKE_SYNC, &q, &o) == 0) s->last_wake = fam_now_us();
    s->last_active = fam_now_us();
    /* famd's reply woke us on famd's core, where famd now spins (a Unix
     * socket wakes its reader where the writer runs): until one of the two
     * moves, yield between polls so famd gets to serve our operation */
    f->yield_until = s->last_active + 2000;
}

/* ---- HELLO, and rebuilding after a fabric error ------------------------ */

/* Same-host fast path: map famd's pool file if it is here and ours to
 * open, and check it is the pool famd is serving now (the instance number
 * famd drew at start is in the file's superblock). Any failure just leaves
 * the server on the fabric path. */
static void map_pool(struct fam_server *s, const struct famp_info *o)
{
    if (!o->name[0] || !memchr(o->name, '\0', sizeof o->name)) return;
    int fd = open(o->name, O_RDWR | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) || (uint64_t)st.st_size != o->pool_size) {
        close(fd);
        return;
    }
    void *m = mmap(NULL, o->pool_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return;
    uint64_t inst;
    memcpy(&inst, (uint8_t *)m + FAMP_POOL_INSTANCE_OFF, 8);
    if (memcmp(m, FAMP_POOL_MAGIC, sizeof FAMP_POOL_MAGIC) || inst != o->pool_off) {
        munmap(m, o->pool_size);
        return;
    }
    s->map = m;
    s->map_size = o->pool_size;
}

/* famd --auth munge answered our HELLO with o: send it a MUNGE
 * credential made for this connection (fam_auth.c) as AUTH. */
static int auth_munge(fam_t *f, int i, const struct famp_info *o)
{
    struct fam_server *s = &f->srv[i];
    char *cred;
    int rc = fam_auth_credential(s->host, s->port, o, &cred);
    if (rc) return rc;
    struct famp_info r;
    rc = rpc_body(f, i, FAMP_AUTH, cred, strlen(cred), &r);
    free(cred);
    if (rc) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        return fam_fail(rc, "memory server %s:%d refused our MUNGE "
                        "credential: %s", s->host, s->port, keep);
    }
    return 0;
}

/* Is the famd behind control socket fd on this host (this kernel and this
 * network namespace)? Yes when we reached it on its Unix name (abstract
 * names are per namespace), or over TCP at one of our own addresses. A
 * pool file of the same path seen from elsewhere (a shared file system)
 * is no proof: mapping it there would not share famd's memory. */
static int server_is_here(int fd)
{
    int dom = 0;
    socklen_t dl = sizeof dom;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &dl) != 0) return 0;
    if (dom == AF_UNIX) return 1;
    struct sockaddr_in peer;
    socklen_t pl = sizeof peer;
    if (dom != AF_INET || getpeername(fd, (struct sockaddr *)&peer, &pl) != 0 ||
        peer.sin_family != AF_INET)
        return 0;
    return famp_address_is_local(peer.sin_addr.s_addr);
}

/* Connect server i's control socket, say HELLO (with our endpoint's fabric
 * address) and put the server's endpoint in our address vector. A famd
 * that restarted since we last said HELLO (its pool instance changed)
 * holds new keys for everything: the server's epoch moves on, and data
 * calls refresh descriptors of an older epoch before using them. At start,
 * when the endpoint is rebuilt, and when a control connection was lost
 * (with flock held then). */
static int hello_server(fam_t *f, int i)
{
    struct fam_server *s = &f->srv[i];
    char why[512];
    int fd = connect_to(s->host, s->port, f->timeout_ms, why, sizeof why);
    pthread_mutex_lock(&s->lock);
    if (s->fd >= 0) close(s->fd);
    s->fd = fd;
    pthread_mutex_unlock(&s->lock);
    if (fd < 0)
        return fam_fail(FAM_EUNREACHABLE, "cannot connect to memory server "
                        "%s:%d: %s", s->host, s->port, why);
    int here = server_is_here(fd);
    s->here = here;
    /* the provider: the one forced (shm must not leave this host), else
     * shm for a famd here and tcp for the others; a famd here that serves
     * tcp says so (FAM_ENOTSUP) and we take tcp */
    const char *cand[2] = {f->provider, NULL};
    if (!f->provider[0]) {
        cand[0] = here ? "shm" : "tcp";
        cand[1] = here ? "tcp" : NULL;
    } else if (!here && strcmp(f->provider, "shm") == 0) {
        return fam_fail(FAM_EINVAL, "memory server %s:%d is on another host: "
                        "the shm provider reaches only this one (use the tcp "
                        "provider, FAM_PROVIDER=tcp, or leave the provider "
                        "unset to choose per server)", s->host, s->port);
    }
    struct famp_req q;
    struct famp_info o;
    int rc = FAM_ENOTSUP;
    for (int c = 0; c < 2 && cand[c] && rc == FAM_ENOTSUP; c++) {
        int idx;
        if ((rc = fam_fabric_open(f, cand[c], &idx))) return rc;
        memset(&q, 0, sizeof q);
        snprintf(q.provider, sizeof q.provider, "%s", cand[c]);
        size_t alen = sizeof q.addr;
        if ((rc = fam_fabric_getname(f, idx, q.addr, &alen))) return rc;
        q.addrlen = (uint32_t)alen;
        /* over shm only, as WAKE and REST: a tcp famd is woken by our
         * requests themselves, and its spin serves large transfers (famd
         * grants what it will: o.spin_us) */
        q.arg[0] = strcmp(cand[c], "shm") == 0 ? f->spin_ask : 0;
        rc = fam_rpc(f, i, FAMP_HELLO, &q, &o);
        if (!rc) s->ep = idx;
    }
    if (rc) return rc;
    if (o.flags & FAMP_F_AUTH) {
        /* famd --auth munge over TCP: prove who we are, then HELLO again */
        if ((rc = auth_munge(f, i, &o)) ||
            (rc = fam_rpc(f, i, FAMP_HELLO, &q, &o)))
            return rc;
        if (o.flags & FAMP_F_AUTH)
            return fam_fail(FAM_EPROTO, "memory server %s:%d asked for a MUNGE "
                            "credential twice", s->host, s->port);
    }
    if (o.addrlen == 0 || o.addrlen > sizeof o.addr)
        return fam_fail(FAM_EPROTO, "memory server %s:%d sent a bad fabric "
                        "address", s->host, s->port);
    if (s->instance && o.pool_off != s->instance) s->epoch++;
    s->instance = o.pool_off;
    s->virt_addr = (o.flags & FAMP_F_VIRT_ADDR) != 0;
    s->persistent = (o.flags & FAMP_F_PERSISTENT) != 0;
    s->pool_size = o.pool_size;
    s->uid = o.uid;
    s->gid = o.gid;
    s->spin_us = o.spin_us;
    s->token = o.token;
    if (f->shared && here && !s->map) map_pool(s, &o);
    memcpy(s->faddr, o.addr, o.addrlen);
    s->faddrlen = o.addrlen;
    return fam_fabric_add_server(f, s, o.addr, o.addrlen);
}

/* hello_server for every server: at start, stop at the first failure; when
 * rebuilding, try them all (one famd down must not cut off the others) and
 * return the first failure. */
int fam_hello_all(fam_t *f, int stop_at_error)
{
    int first = 0;
    for (int i = 0; i < f->nservers; i++) {
        int rc = hello_server(f, i);
        if (rc && !first) first = rc;
        if (rc && stop_at_error) break;
    }
    return first;
}

/* The fabric endpoint is broken (an RMA timed out: the shm provider keeps
 * it queued and lets nothing after it through; or tcp;ofi_rxm closed the
 * connection after an error): rebuild it, and the control connections, so
 * that this fam_t and its descriptors keep working. With flock held. */
int fam_fabric_reset(fam_t *f)
{
    for (int i = 0; i < f->nservers; i++) {
        struct fam_server *s = &f->srv[i];
        pthread_mutex_lock(&s->lock);
        if (s->fd >= 0) close(s->fd);
        s->fd = -1;
        s->inflight = 0;
        pthread_mutex_unlock(&s->lock);
    }
    fam_fabric_close_all(f);
    /* non-blocking operations of calls that returned success are lost:
     * the next fam_quiet says so (those of failed calls were reported) */
    if (f->outstanding > f->orphans && !f->nb_error) {
        f->nb_error = FAM_EFABRIC;
        snprintf(f->nb_msg, sizeof f->nb_msg, "%lld lost when the fabric "
                 "endpoint was rebuilt after an error",
                 (long long)(f->outstanding - f->orphans));
    }
    f->outstanding = 0;
    f->orphans = 0; /* (nb_items stay for fam_quiet to say why) */
    /* every endpoint is rebuilt in its slot, so that a server whose HELLO
     * fails below still names an open one (fam_server.ep) */
    int orc = 0;
    for (int e = 0, idx; e < f->neps && !orc; e++)
        orc = fam_fabric_open(f, f->eps[e].provider, &idx);
    int rc = orc ? orc : fam_hello_all(f, 0);
    f->broken = orc != 0; /* a famd that is down is retried later */
    if (rc) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        return fam_fail(rc, "cannot reconnect to the memory servers after a "
                        "fabric error: %s", keep);
    }
    return 0;
}

/* ---- a full provider queue --------------------------------------------- */

/* A stalled operation's question to famd (fam_internal.h). */
int fam_item_gone(fam_t *f, int server, uint64_t item_id)
{
    if (server < 0 || server >= f->nservers || !item_id) return 0;
    struct famp_req q = {0};
    struct famp_info o;
    q.id = item_id;
    pthread_mutex_unlock(&f->flock);
    int rc = fam_rpc(f, server, FAMP_ITEM_STAT, &q, &o);
    pthread_mutex_lock(&f->flock);
    return rc == FAM_ENOTFOUND;
}

/* The provider's queue is full: what frees it is famd serving our earlier
 * operations, so drain, keep every famd with work of ours awake (shm
 * cannot wake a sleeping famd by itself: a striped get of 80 MiB over two
 * servers waited ~0.1 s here on a full queue to one of them), and back off
 * as a waiter does. Spinning here without yielding starved the famds on 2
 * cores: a 64 MiB get striped over two famds over shm stalled for 20-640
 * ms in one transfer out of ten (0.1-1.3 GB/s instead of 7-8). Returns 1
 * when the queue has stayed full for the timeout, or for 0.1 s while
 * op's item is gone. */
int fam_post_full(fam_t *f, unsigned spins, uint64_t *since, const struct fam_op *op,
                  uint64_t *stall_at)
{
    if (fam_drain(f)) {
        *since = 0;
        return 0;
    }
    if (spins >= 64 && (spins & 63) == 0)
        for (int i = 0; i < f->nservers; i++)
            if (f->srv[i].inflight > 0) fam_wake(f, i);
    fam_backoff(spins, since);
    /* the queue stayed full for the whole timeout: nothing we posted is
     * moving (an operation stuck ahead of ours) */
    if (*since && fam_now_us() - *since > (uint64_t)f->timeout_ms * 1000u) {
        f->broken = 1;
        return 1;
    }
    /* full for a while: is the item we post for gone (an RMA of ours with
     * its dead key stuck ahead of this one)? */
    if (op && stall_at && *since) {
        if (!*stall_at) *stall_at = *since + FAM_STALL_FIRST_US;
        if (fam_stall_due(stall_at, fam_now_us()) &&
            fam_item_gone(f, op->server, op->item_id)) {
            f->broken = 1;
            return 1;
        }
    }
    return 0;
}

