/* fam_core.c — libfam set-up, control requests, regions and data items.
 *
 * fam_initialize connects a control socket to every memory server, says
 * HELLO (learning the server's fabric address and who it thinks we are) and
 * opens the libfabric endpoint (fam_data.c). A region lives on the server
 * its name hashes to (its home), so every client finds it there, and so do
 * its items; an interleaved region has a part on every server, and each of
 * its items a part on each server it is striped over.
 *
 * Creating something on several servers is two-phase (docs/PROTOCOL.md,
 * "Multi-server creates"): every part is made pending (invisible, rolled
 * back by famd if this client's connection closes first), then committed,
 * the home part last; it is the one lookups start from, so the object
 * appears whole or not at all. Destroying goes the other way: the home
 * part first. What a crash leaves behind (the other parts of an object
 * whose home part is gone) is invisible, blocks no name, and is removed by
 * fam_cleanup. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fam_internal.h"

/* Test hook: with FAM_TEST_KILL_AT=OP:K in the environment, the process
 * kills itself (SIGKILL, as a crash would) at step K of the multi-server
 * operation OP ("allocate" or "create_region"), to prove that
 * famd rolls back what it leaves; OP:K:stop stops it instead (SIGSTOP),
 * so a test can kill famd while the client holds its connections. Steps
 * are numbered from 1 in the order the requests go out. */
static void kill_point(const char *op, int step)
{
    const char *at = getenv("FAM_TEST_KILL_AT");
    size_t n = strlen(op);
    if (at && !strncmp(at, op, n) && at[n] == ':' && atoi(at + n + 1) == step)
        raise(strstr(at + n + 1, ":stop") ? SIGSTOP : SIGKILL);
}

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
        if (closed && f->ep) {
            char keep[1024]; /* not this request's error: keep the caller's */
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            hello_server(f, i);
            fam_set_error(0, "%s", keep);
        }
    }
    pthread_mutex_unlock(&f->flock);
}

/* One request, one reply. On failure the server's message becomes this
 * thread's last error. */

int fam_rpc(fam_t *f, int server, uint16_t op, const struct famp_req *q,
            struct famp_info *o)
{
    struct fam_server *s = &f->srv[server];
    if (op != FAMP_HELLO) {
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
    if (s->fd < 0 && op != FAMP_HELLO) {
        /* the connection was lost (famd restarted?): connect again */
        pthread_mutex_lock(&f->flock);
        if (s->fd < 0 && f->ep && hello_server(f, server))
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
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, op, s->seq, 0, sizeof *q};
    if ((rc = io_all(s->fd, &h, sizeof h, 1, f->timeout_ms)) ||
        (rc = io_all(s->fd, (void *)q, sizeof *q, 1, f->timeout_ms)))
        goto broken;
    struct famp_hdr r;
    if ((rc = io_all(s->fd, &r, sizeof r, 0, f->timeout_ms))) goto broken;
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
    if (!tcp_too && strcmp(f->provider, "tcp") == 0) return;
    if (now - s->last_wake < s->spin_us / 2) return;
    pthread_mutex_lock(&s->lock);
    if (s->fd >= 0) {
        struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_WAKE, 0, 0, 0};
        if (send(s->fd, &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof h)
            s->last_wake = now;
    }
    pthread_mutex_unlock(&s->lock);
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

/* ---- set-up ------------------------------------------------------------- */

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

static int server_cmp(const void *a, const void *b)
{
    const struct fam_server *x = a, *y = b;
    int c = strcmp(x->host, y->host);
    return c ? c : (x->port > y->port) - (x->port < y->port);
}

static int parse_servers(fam_t *f, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy) return fam_fail(FAM_ENOMEM, "out of memory");
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    f->srv = calloc((size_t)n, sizeof *f->srv);
    if (!f->srv) { free(copy); return fam_fail(FAM_ENOMEM, "out of memory"); }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        char *colon = strrchr(t, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == t || *end || port <= 0 || port > 65535 ||
            (size_t)(colon - t) >= sizeof f->srv[0].host) {
            int rc = fam_fail(FAM_EINVAL, "bad memory server '%s' (want "
                              "host:port)", t);
            free(copy);
            return rc;
        }
        struct fam_server *s = &f->srv[f->nservers++];
        memcpy(s->host, t, (size_t)(colon - t));
        s->port = (int)port;
        s->fd = -1;
        pthread_mutex_init(&s->lock, NULL);
    }
    free(copy);
    if (f->nservers == 0)
        return fam_fail(FAM_EINVAL, "no memory servers given");
    /* every client must number the servers alike, whatever order it was
     * given them in: regions are placed by that number */
    qsort(f->srv, (size_t)f->nservers, sizeof *f->srv, server_cmp);
    for (int i = 1; i < f->nservers; i++)
        if (server_cmp(&f->srv[i - 1], &f->srv[i]) == 0)
            return fam_fail(FAM_EINVAL, "memory server %s:%d is listed twice",
                            f->srv[i].host, f->srv[i].port);
    return 0;
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
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.provider, sizeof q.provider, "%s", f->provider);
    size_t alen = sizeof q.addr;
    int rc = fam_fabric_getname(f, q.addr, &alen);
    if (rc) return rc;
    q.addrlen = (uint32_t)alen;
    if ((rc = fam_rpc(f, i, FAMP_HELLO, &q, &o))) return rc;
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
    if (f->shared && !s->map) map_pool(s, &o);
    memcpy(s->faddr, o.addr, o.addrlen);
    s->faddrlen = o.addrlen;
    return fam_fabric_add_server(f, s, o.addr, o.addrlen);
}

/* hello_server for every server: at start, stop at the first failure; when
 * rebuilding, try them all (one famd down must not cut off the others) and
 * return the first failure. */
static int hello_all(fam_t *f, int stop_at_error)
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
    fam_fabric_close(f);
    /* non-blocking operations of calls that returned success are lost:
     * the next fam_quiet says so (those of failed calls were reported) */
    if (f->outstanding > f->orphans && !f->nb_error) {
        f->nb_error = FAM_EFABRIC;
        snprintf(f->nb_msg, sizeof f->nb_msg, "%lld lost when the fabric "
                 "endpoint was rebuilt after an error",
                 (long long)(f->outstanding - f->orphans));
    }
    f->outstanding = 0;
    f->orphans = 0;
    int rc = fam_fabric_open(f);
    if (!rc) rc = hello_all(f, 0);
    f->broken = f->ep == NULL; /* a famd that is down is retried later */
    if (rc) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        return fam_fail(rc, "cannot reconnect to the memory servers after a "
                        "fabric error: %s", keep);
    }
    return 0;
}

int fam_initialize(const fam_options_t *opts, fam_t **out)
{
    fam_clear_error();
    if (!out) return fam_fail(FAM_EINVAL, "fam_initialize: out is NULL");
    *out = NULL;
    const char *servers = opts && opts->servers ? opts->servers : getenv("FAM_SERVERS");
    const char *prov = opts && opts->provider ? opts->provider : getenv("FAM_PROVIDER");
    if (!servers || !*servers)
        return fam_fail(FAM_EINVAL, "no memory servers: pass them in the "
                        "options or set FAM_SERVERS=host:port[,host:port]");
    if (!prov || !*prov) prov = "shm";
    if (strcmp(prov, "shm") && strcmp(prov, "tcp") && strcmp(prov, "sockets"))
        return fam_fail(FAM_EINVAL, "unknown provider '%s' (use shm or tcp)", prov);
    fam_t *f = calloc(1, sizeof *f);
    if (!f) return fam_fail(FAM_ENOMEM, "out of memory");
    snprintf(f->provider, sizeof f->provider, "%s", prov);
    f->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
    pthread_mutex_init(&f->flock, NULL);
    const char *model = opts && opts->model ? opts->model : getenv("FAM_MODEL");
    int shared = model && !strcmp(model, "shared_memory");
    if (model && *model && !shared && strcmp(model, "memory_server")) {
        free(f);
        return fam_fail(FAM_EINVAL, "unknown FAM model '%s' (use memory_server "
                        "or shared_memory)", model);
    }
    f->shared = shared;
    int rc = parse_servers(f, servers);
    if (!rc) rc = fam_fabric_open(f);
    if (!rc) rc = hello_all(f, 1);
    if (rc) {
        char keep[1024];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_finalize(f);
        return fam_fail(rc, "%s", keep);
    }
    *out = f;
    return 0;
}

int fam_finalize(fam_t *f)
{
    if (!f) return 0;
    if (f->ep) fam_quiet(f);
    fam_fabric_close(f);
    for (int i = 0; i < f->nservers; i++) {
        if (f->srv[i].fd >= 0) close(f->srv[i].fd);
        if (f->srv[i].map) munmap(f->srv[i].map, f->srv[i].map_size);
        pthread_mutex_destroy(&f->srv[i].lock);
    }
    free(f->srv);
    pthread_mutex_destroy(&f->flock);
    free(f);
    return 0;
}

int fam_num_servers(const fam_t *f) { return f ? f->nservers : 0; }

int fam_num_local_servers(const fam_t *f)
{
    int n = 0;
    for (int i = 0; f && i < f->nservers; i++) n += f->srv[i].map != NULL;
    return n;
}

/* ---- names -------------------------------------------------------------- */

static int check_name(const char *name, const char *what, int empty_ok)
{
    if (!name) return empty_ok ? 0 : fam_fail(FAM_EINVAL, "%s name is NULL", what);
    size_t n = strlen(name);
    if (n == 0 && !empty_ok) return fam_fail(FAM_EINVAL, "%s name is empty", what);
    if (n > FAM_NAME_MAX)
        return fam_fail(FAM_EINVAL, "%s name is longer than %d bytes", what,
                        FAM_NAME_MAX);
    return 0;
}

/* The server a region of this name lives on: the same for every client
 * that lists the same servers (in any order: the list is sorted). */
static int home_of(fam_t *f, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (int)(h % (uint64_t)f->nservers);
}

static fam_region_t *region_new(int nparts)
{
    fam_region_t *r = calloc(1, sizeof *r + (size_t)nparts * sizeof(uint64_t));
    if (!r) return NULL;
    r->nparts = nparts;
    r->pid = (uint64_t *)(void *)(r + 1);
    return r;
}

static fam_item_t *item_new(int nparts)
{
    fam_item_t *d = calloc(1, sizeof *d + (size_t)nparts * sizeof(struct fam_part));
    if (d) d->nparts = nparts;
    return d;
}

static void fill_stat(const struct famp_info *o, uint32_t nservers, fam_stat_t *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", o->name);
    st->size = o->total ? o->total : o->size;
    st->used = o->used;
    st->id = o->id;
    st->region_id = o->region_id;
    st->uid = o->uid;
    st->gid = o->gid;
    st->perm = o->mode;
    st->memory_type = (fam_memory_type_t)o->memtype;
    st->interleave = (fam_interleave_t)o->interleave;
    st->stripe_size = o->stripe;
    st->num_servers = nservers;
}

#define NEED(f, x, what)                                                  \
    do {                                                                  \
        fam_clear_error();                                                \
        if (!(f)) return fam_fail(FAM_EINVAL, "fam_t is NULL");           \
        if (!(x)) return fam_fail(FAM_EINVAL, "%s is NULL", what);        \
    } while (0)

/* ---- regions ------------------------------------------------------------ */

/* The part of an interleaved region each server holds: an equal share of
 * the size, rounded up to whole stripes, plus one stripe for the partial
 * stripes items end with. */
static uint64_t part_limit(uint64_t size, int n, uint64_t stripe)
{
    uint64_t per = (size + (uint64_t)n - 1) / (uint64_t)n;
    return (per + stripe - 1) / stripe * stripe + stripe;
}

/* Ask every server other than the home one for its part of region `name`
 * (lookup), filling r->pid. */
static int lookup_parts(fam_t *f, fam_region_t *r)
{
    for (int i = 0; i < r->nparts; i++) {
        if (i == r->server) { r->pid[i] = r->id; continue; }
        struct famp_req q = {0};
        struct famp_info o;
        snprintf(q.name, sizeof q.name, "%s", r->name);
        q.id = r->id; /* the part of this region, not an orphan of another */
        int rc = fam_rpc(f, i, FAMP_REGION_LOOKUP, &q, &o);
        if (rc) {
            char keep[1024]; /* fam_fail writes the buffer fam_last_error reads */
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            return fam_fail(rc, "interleaved region '%s' has no part on "
                            "memory server %s:%d: %s", r->name,
                            f->srv[i].host, f->srv[i].port, keep);
        }
        r->pid[i] = o.id;
    }
    return 0;
}

int fam_create_region(fam_t *f, const char *name, uint64_t size, mode_t perm,
                      const fam_region_attr_t *attr, fam_region_t **out)
{
    NEED(f, out, "out");
    int rc = check_name(name, "region", 0);
    if (rc) return rc;
    if (size == 0) return fam_fail(FAM_EINVAL, "region size must be above 0");
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.name, sizeof q.name, "%s", name);
    q.size = size;
    q.mode = perm;
    int interleave = 0;
    if (attr) {
        if ((unsigned)attr->memory_type > FAM_MEMORY_PERSISTENT ||
            (unsigned)attr->interleave > FAM_INTERLEAVE_DISABLE)
            return fam_fail(FAM_EINVAL, "bad region attributes");
        q.memtype = attr->memory_type;
        q.interleave = attr->interleave;
        interleave = attr->interleave == FAM_INTERLEAVE_ENABLE;
        q.stripe = attr->stripe_size;
    }
    int n = interleave ? f->nservers : 1;
    if (interleave) {
        if (!q.stripe) q.stripe = FAM_DEFAULT_STRIPE;
        if (q.stripe < 4096 || q.stripe > (1ull << 30) || (q.stripe & (q.stripe - 1)))
            return fam_fail(FAM_EINVAL, "stripe size %llu must be a power of two "
                            "from 4 KiB to 1 GiB", (unsigned long long)q.stripe);
        q.arg[0] = size;
        q.arg[2] = (uint64_t)n;
        q.size = part_limit(size, n, q.stripe);
    }
    fam_region_t *r = region_new(n);
    if (!r) return fam_fail(FAM_ENOMEM, "out of memory");
    r->server = home_of(f, name);
    r->stripe = interleave ? q.stripe : 0;
    snprintf(r->name, sizeof r->name, "%s", name);
    /* home first: it says whether the name is taken. An interleaved
     * region's parts are all made pending and committed once all exist,
     * the home part last (see the top of this file) */
    if (interleave) q.arg[3] = FAMP_C_PENDING;
    if ((rc = fam_rpc(f, r->server, FAMP_REGION_CREATE, &q, &o))) {
        free(r);
        return rc;
    }
    r->id = o.id;
    r->pid[interleave ? r->server : 0] = o.id;
    if (!interleave) {
        *out = r;
        return 0;
    }
    int step = 1, made = 0; /* parts other than home made so far: 0..made-1 */
    kill_point("create_region", step++);
    q.id = r->id;
    for (int i = 0; i < n && !rc; i++, made = i) {
        if (i == r->server) continue;
        if ((rc = fam_rpc(f, i, FAMP_REGION_CREATE, &q, &o))) break;
        r->pid[i] = o.id;
        kill_point("create_region", step++);
    }
    for (int i = 0; i < n && !rc; i++) { /* commit: the other parts, home */
        int k = (r->server + 1 + i) % n;
        struct famp_req c = {.id = r->pid[k]};
        if ((rc = fam_rpc(f, k, FAMP_COMMIT, &c, &o))) made = n;
        else kill_point("create_region", step++);
    }
    if (rc) {
        char keep[FAMP_MAX_ERRMSG];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        int bad = made < n ? made : -1; /* the server that refused a create */
        struct famp_req u = {.id = r->id}; /* undo, home first */
        fam_rpc(f, r->server, FAMP_REGION_DESTROY, &u, &o);
        for (int j = 0; j < made && j < n; j++) {
            if (j == r->server) continue;
            u.id = r->pid[j];
            fam_rpc(f, j, FAMP_REGION_DESTROY, &u, &o);
        }
        free(r);
        if (bad < 0)
            return fam_fail(rc, "cannot commit region '%s': %s", name, keep);
        return fam_fail(rc, "cannot create part of region '%s' on memory "
                        "server %s:%d: %s", name, f->srv[bad].host,
                        f->srv[bad].port, keep);
    }
    *out = r;
    return 0;
}

int fam_lookup_region(fam_t *f, const char *name, fam_region_t **out)
{
    NEED(f, out, "out");
    int rc = check_name(name, "region", 0);
    if (rc) return rc;
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.name, sizeof q.name, "%s", name);
    int srv = home_of(f, name);
    if ((rc = fam_rpc(f, srv, FAMP_REGION_LOOKUP, &q, &o))) return rc;
    int interleave = o.interleave == FAM_INTERLEAVE_ENABLE && o.nshards > 1;
    if (interleave && o.nshards != (uint32_t)f->nservers)
        return fam_fail(FAM_EINVAL, "region '%s' is interleaved over %u memory "
                        "servers; this client knows %d (list the same servers)",
                        name, o.nshards, f->nservers);
    fam_region_t *r = region_new(interleave ? f->nservers : 1);
    if (!r) return fam_fail(FAM_ENOMEM, "out of memory");
    r->server = srv;
    r->id = o.id;
    r->pid[0] = o.id;
    r->stripe = interleave ? o.stripe : 0;
    snprintf(r->name, sizeof r->name, "%s", o.name);
    if (interleave && (rc = lookup_parts(f, r))) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Run a request on every part of r (the home part last, so that a region
 * stays findable until its other parts are gone). */
static int region_all(fam_t *f, fam_region_t *r, uint16_t op, struct famp_req *q,
                      struct famp_info *home_o)
{
    struct famp_info o;
    int rc = 0;
    for (int i = 0; i < r->nparts && !rc; i++) {
        int srv = r->nparts > 1 ? i : r->server;
        if (srv == r->server) continue;
        q->id = r->pid[i];
        rc = fam_rpc(f, srv, op, q, &o);
    }
    if (rc) return rc;
    q->id = r->id;
    return fam_rpc(f, r->server, op, q, home_o ? home_o : &o);
}

/* The home part first: once it is gone the name is free and lookups find
 * nothing, whatever happens to the other parts (a server down or a crash
 * in between leaves them as orphans for fam_cleanup, never a region that
 * is listed but cannot be opened). */
int fam_region_destroy_keep(fam_t *f, fam_region_t *r)
{
    NEED(f, r, "region descriptor");
    struct famp_req q = {.id = r->id};
    struct famp_info o;
    int rc = fam_rpc(f, r->server, FAMP_REGION_DESTROY, &q, &o);
    if (rc || r->nparts == 1) return rc;
    int first = 0;
    char keep[FAMP_MAX_ERRMSG] = "";
    for (int i = 0; i < r->nparts; i++) {
        if (i == r->server) continue;
        q.id = r->pid[i];
        int e = fam_rpc(f, i, FAMP_REGION_DESTROY, &q, &o);
        if (e && e != FAM_ENOTFOUND && !first) {
            first = e;
            snprintf(keep, sizeof keep, "%s", fam_last_error());
        }
    }
    if (first)
        return fam_fail(first, "region '%s' is destroyed, but a part was left "
                        "behind (fam_cleanup removes it): %s", r->name, keep);
    return 0;
}

int fam_destroy_region(fam_t *f, fam_region_t *r)
{
    int rc = fam_region_destroy_keep(f, r);
    if (!rc) free(r);
    return rc;
}

int fam_resize_region(fam_t *f, fam_region_t *r, uint64_t size)
{
    NEED(f, r, "region descriptor");
    if (size == 0) return fam_fail(FAM_EINVAL, "region size must be above 0");
    struct famp_req q = {0};
    q.size = size;
    if (r->nparts > 1) {
        q.arg[0] = size;
        q.size = part_limit(size, r->nparts, r->stripe);
    }
    return region_all(f, r, FAMP_REGION_RESIZE, &q, NULL);
}

int fam_change_region_permissions(fam_t *f, fam_region_t *r, mode_t perm)
{
    NEED(f, r, "region descriptor");
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    struct famp_req q = {0};
    q.mode = perm;
    return region_all(f, r, FAMP_REGION_CHMOD, &q, NULL);
}

int fam_stat_region(fam_t *f, fam_region_t *r, fam_stat_t *st)
{
    NEED(f, r, "region descriptor");
    if (!st) return fam_fail(FAM_EINVAL, "stat buffer is NULL");
    struct famp_req q = {0};
    struct famp_info o;
    q.id = r->id;
    int rc = fam_rpc(f, r->server, FAMP_REGION_STAT, &q, &o);
    if (rc) return rc;
    fill_stat(&o, (uint32_t)r->nparts, st);
    for (int i = 0; i < r->nparts && r->nparts > 1; i++) { /* sum of parts */
        if (i == r->server) continue;
        struct famp_info p;
        q.id = r->pid[i];
        if ((rc = fam_rpc(f, i, FAMP_REGION_STAT, &q, &p))) return rc;
        st->used += p.used;
    }
    return 0;
}

void fam_release_region(fam_region_t *r) { free(r); }

/* ---- data items --------------------------------------------------------- */

static void set_part(fam_t *f, fam_item_t *d, int i, int server,
                     const struct famp_info *o)
{
    struct fam_part *p = &d->part[i];
    p->server = server;
    p->epoch = f->srv[server].epoch;
    p->id = o->id;
    p->size = o->size;
    p->key = o->key;
    p->base = o->base;
    p->writable = (o->flags & FAMP_F_WRITABLE) != 0;
    p->pool_off = o->pool_off;
    if (i == 0) {
        d->region_id = o->region_id;
        d->size = o->total ? o->total : o->size;
        d->stripe = o->stripe;
        snprintf(d->name, sizeof d->name, "%s", o->name);
    }
    d->writable = 1;
    for (int j = 0; j <= i; j++) d->writable &= d->part[j].writable;
}

/* Bytes of a striped item of `size` that part j of n holds. */
static uint64_t part_bytes(uint64_t size, uint64_t stripe, int n, int j)
{
    uint64_t full = size / stripe, rem = size % stripe;
    uint64_t k = full / (uint64_t)n + ((uint64_t)j < full % (uint64_t)n);
    return k * stripe + ((uint64_t)j == full % (uint64_t)n ? rem : 0);
}

static int free_parts(fam_t *f, fam_item_t *d, int upto)
{
    int rc = 0;
    for (int i = 0; i < upto; i++) {
        struct famp_req q = {.id = d->part[i].id};
        struct famp_info o;
        int r = fam_rpc(f, d->part[i].server, FAMP_ITEM_FREE, &q, &o);
        if (r && !rc) rc = r;
    }
    return rc;
}

int fam_allocate(fam_t *f, const char *name, uint64_t size, mode_t perm,
                 fam_region_t *r, fam_item_t **out)
{
    NEED(f, out, "out");
    if (!r) return fam_fail(FAM_EINVAL, "region descriptor is NULL");
    int rc = check_name(name, "item", 1);
    if (rc) return rc;
    if (size == 0) return fam_fail(FAM_EINVAL, "item size must be above 0");
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    /* a striped item has as many parts as it has stripes, up to one per
     * server */
    int n = 1;
    if (r->nparts > 1) {
        uint64_t stripes = (size + r->stripe - 1) / r->stripe;
        n = stripes < (uint64_t)r->nparts ? (int)stripes : r->nparts;
    }
    fam_item_t *d = item_new(n);
    if (!d) return fam_fail(FAM_ENOMEM, "out of memory");
    /* a striped item: every part pending, then committed with part 0 (the
     * one lookups and lists start from) last; see the top of this file */
    int step = 1, made = 0;
    for (int i = 0; i < n; i++) {
        struct famp_req q = {0};
        struct famp_info o;
        if (name) snprintf(q.name, sizeof q.name, "%s", name);
        int srv = r->nparts > 1 ? i : r->server;
        q.region_id = r->nparts > 1 ? r->pid[i] : r->id;
        q.size = size;
        q.mode = perm;
        if (r->nparts > 1) {
            q.size = part_bytes(size, r->stripe, n, i);
            q.arg[0] = size;
            q.arg[1] = (uint64_t)i;
            q.arg[2] = (uint64_t)n;
            q.stripe = r->stripe;
        }
        if (n > 1) {
            q.arg[3] = FAMP_C_PENDING;
            q.id = i ? d->part[0].id : 0; /* which item this is a part of */
        }
        if ((rc = fam_rpc(f, srv, FAMP_ITEM_ALLOC, &q, &o))) break;
        set_part(f, d, i, srv, &o);
        made = i + 1;
        if (n > 1) kill_point("allocate", step++);
    }
    for (int k = 1; k <= n && n > 1 && !rc; k++) {
        int i = k % n; /* parts 1..n-1, then part 0 */
        struct famp_req q = {.id = d->part[i].id};
        struct famp_info o;
        if ((rc = fam_rpc(f, d->part[i].server, FAMP_COMMIT, &q, &o))) break;
        kill_point("allocate", step++);
    }
    if (rc) {
        char keep[FAMP_MAX_ERRMSG];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        free_parts(f, d, made);
        free(d);
        return fam_fail(rc, "%s", keep);
    }
    d->size = size;
    *out = d;
    return 0;
}

int fam_lookup(fam_t *f, const char *item, const char *region, fam_item_t **out)
{
    NEED(f, out, "out");
    int rc = check_name(item, "item", 0);
    if (!rc) rc = check_name(region, "region", 0);
    if (rc) return rc;
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.name, sizeof q.name, "%s", item);
    snprintf(q.name2, sizeof q.name2, "%s", region);
    /* the region's home knows whether it is interleaved */
    int home = home_of(f, region);
    struct famp_req rq = {0};
    snprintf(rq.name, sizeof rq.name, "%s", region);
    int striped, first = home;
    rc = fam_rpc(f, home, FAMP_REGION_LOOKUP, &rq, &o);
    if (rc == FAM_ENOTFOUND)
        return fam_fail(rc, "item '%s' not found: there is no region '%s'",
                        item, region);
    if (rc == FAM_EPERM) {
        /* the region is not ours to read, but an item is judged by its own
         * bits (as in OpenFAM): the item itself says where it is, from its
         * part on the home server or else (interleaved region) server 0 */
        rc = fam_rpc(f, home, FAMP_ITEM_LOOKUP, &q, &o);
        if (rc == FAM_ENOTFOUND && home != 0) {
            char keep[FAMP_MAX_ERRMSG];
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            first = 0;
            rc = fam_rpc(f, 0, FAMP_ITEM_LOOKUP, &q, &o) ? fam_fail(rc, "%s", keep)
                                                         : 0;
        }
        if (rc) return rc;
        striped = o.nshards > 1;
        if (striped) first = 0; /* where part 0 is */
    } else if (rc) {
        return rc;
    } else {
        striped = o.interleave == FAM_INTERLEAVE_ENABLE && o.nshards > 1;
        if (striped && o.nshards != (uint32_t)f->nservers)
            return fam_fail(FAM_EINVAL, "region '%s' is interleaved over %u "
                            "memory servers; this client knows %d", region,
                            o.nshards, f->nservers);
        if (striped) first = 0;
    }
    if ((rc = fam_rpc(f, first, FAMP_ITEM_LOOKUP, &q, &o))) return rc;
    int n = striped ? (int)o.nshards : 1;
    if (n < 1 || n > f->nservers || o.shard != 0)
        return fam_fail(FAM_EPROTO, "item '%s' has a bad stripe description", item);
    fam_item_t *d = item_new(n);
    if (!d) return fam_fail(FAM_ENOMEM, "out of memory");
    set_part(f, d, 0, first, &o);
    q.id = o.id; /* the parts of this item, not an orphan of an older one */
    for (int i = 1; i < n; i++) {
        if ((rc = fam_rpc(f, i, FAMP_ITEM_LOOKUP, &q, &o))) {
            char keep[1024]; /* fam_fail writes the buffer fam_last_error reads */
            snprintf(keep, sizeof keep, "%s", fam_last_error());
            free(d);
            return fam_fail(rc, "part %d of item '%s': %s", i, item, keep);
        }
        if (o.shard != (uint32_t)i || o.nshards != (uint32_t)n) {
            free(d);
            return fam_fail(FAM_EPROTO, "part %d of item '%s' does not match "
                            "part 0", i, item);
        }
        set_part(f, d, i, i, &o);
    }
    *out = d;
    return 0;
}

/* Run a request on every part of d; `o` gets part i's answer. */
static int item_all(fam_t *f, fam_item_t *d, uint16_t op, uint32_t mode,
                    int refresh)
{
    NEED(f, d, "item descriptor");
    int rc = 0;
    for (int i = d->nparts - 1; i >= 0 && !rc; i--) { /* part 0 last */
        struct famp_req q = {0};
        struct famp_info o;
        q.id = d->part[i].id;
        q.mode = mode;
        rc = fam_rpc(f, d->part[i].server, op, &q, &o);
        if (!rc && refresh) set_part(f, d, i, d->part[i].server, &o);
    }
    return rc;
}

/* Part 0 first: once it is gone the item is gone for every lookup and
 * list, whatever happens to the other parts (left as orphans for
 * fam_cleanup if a server is down or we die in between). */
int fam_deallocate_keep(fam_t *f, fam_item_t *d)
{
    NEED(f, d, "item descriptor");
    struct famp_req q = {.id = d->part[0].id};
    struct famp_info o;
    int rc = fam_rpc(f, d->part[0].server, FAMP_ITEM_FREE, &q, &o);
    if (rc || d->nparts == 1) return rc;
    int first = 0;
    char keep[FAMP_MAX_ERRMSG] = "";
    for (int i = 1; i < d->nparts; i++) {
        q.id = d->part[i].id;
        int e = fam_rpc(f, d->part[i].server, FAMP_ITEM_FREE, &q, &o);
        if (e && e != FAM_ENOTFOUND && !first) {
            first = e;
            snprintf(keep, sizeof keep, "%s", fam_last_error());
        }
    }
    if (first)
        return fam_fail(first, "item '%s' is deallocated, but a part was left "
                        "behind (fam_cleanup removes it): %s", d->name, keep);
    return 0;
}

int fam_deallocate(fam_t *f, fam_item_t *d)
{
    int rc = fam_deallocate_keep(f, d);
    if (!rc) free(d);
    return rc;
}

int fam_change_permissions(fam_t *f, fam_item_t *d, mode_t perm)
{
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    return item_all(f, d, FAMP_ITEM_CHMOD, perm, 1);
}

int fam_stat(fam_t *f, fam_item_t *d, fam_stat_t *st)
{
    NEED(f, d, "item descriptor");
    if (!st) return fam_fail(FAM_EINVAL, "stat buffer is NULL");
    struct famp_req q = {0};
    struct famp_info o;
    q.id = d->part[0].id;
    int rc = fam_rpc(f, d->part[0].server, FAMP_ITEM_STAT, &q, &o);
    if (rc) return rc;
    set_part(f, d, 0, d->part[0].server, &o);
    fill_stat(&o, (uint32_t)d->nparts, st);
    if (d->nparts > 1) st->interleave = FAM_INTERLEAVE_ENABLE;
    st->used = st->size;
    return 0;
}

/* Ask famd again for the item's keys (after a key was revoked). */
int fam_item_refresh(fam_t *f, fam_item_t *d)
{
    return item_all(f, d, FAMP_ITEM_STAT, 0, 1);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void fam_free_names(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* famd pages through a region's items by metadata slot (ITEM_LIST). An
 * interleaved region's items keep part 0 on server 0 (fam_allocate), so
 * listing that server's part 0s names every item once; any other region
 * lives on its home server. */
int fam_list_items(fam_t *f, fam_region_t *r, char ***names, size_t *n)
{
    NEED(f, r, "region descriptor");
    if (!names || !n) return fam_fail(FAM_EINVAL, "list_items: NULL argument");
    *names = NULL;
    *n = 0;
    int srv = r->nparts > 1 ? 0 : r->server;
    uint64_t rid = r->nparts > 1 ? r->pid[0] : r->id;
    char **v = NULL;
    size_t k = 0, cap = 0;
    for (uint64_t slot = 0;;) {
        struct famp_req q = {0};
        struct famp_info o;
        q.id = rid;
        q.off = slot;
        int rc = fam_rpc(f, srv, FAMP_ITEM_LIST, &q, &o);
        if (rc == FAM_ENOTFOUND) {
            /* the end of the list, unless the region itself is gone */
            struct famp_req sq = {.id = rid};
            struct famp_info so;
            if ((rc = fam_rpc(f, srv, FAMP_REGION_STAT, &sq, &so)) == 0) break;
        }
        if (rc) {
            fam_free_names(v, k);
            return rc;
        }
        if (o.arg[0] < slot) {
            fam_free_names(v, k);
            return fam_fail(FAM_EPROTO, "list_items: memory server went back "
                            "from slot %llu to %llu", (unsigned long long)slot,
                            (unsigned long long)o.arg[0]);
        }
        slot = o.arg[0] + 1;
        if (o.shard != 0) continue; /* a later part of a striped item */
        if (k == cap) {
            char **nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof *nv);
            if (!nv) {
                fam_free_names(v, k);
                return fam_fail(FAM_ENOMEM, "out of memory");
            }
            v = nv;
        }
        o.name[FAM_NAME_MAX] = '\0';
        if (!(v[k] = strdup(o.name))) {
            fam_free_names(v, k);
            return fam_fail(FAM_ENOMEM, "out of memory");
        }
        k++;
    }
    if (k) qsort(v, k, sizeof *v, cmp_name);
    size_t u = 0; /* each name once */
    for (size_t i = 0; i < k; i++) {
        if (u && strcmp(v[u - 1], v[i]) == 0) free(v[i]);
        else v[u++] = v[i];
    }
    *names = v;
    *n = u;
    fam_clear_error();
    return 0;
}

/* Is the home part `home` of a part named `name` still there? 1 yes, 0 no
 * (the part is an orphan), < 0 error (then it is left alone). */
static int home_alive(fam_t *f, int server, int region, uint64_t home,
                      const char *name)
{
    struct famp_req q = {.id = home};
    struct famp_info o;
    int rc = fam_rpc(f, server, region ? FAMP_REGION_STAT : FAMP_ITEM_STAT,
                     &q, &o);
    if (rc == FAM_ENOTFOUND) return 0;
    if (rc == FAM_EPERM || rc == FAM_EBUSY) return 1; /* there (or being made) */
    if (rc) return rc;
    /* ids are unique within a pool's life; a volatile famd that restarted
     * may hand one out again: then the name tells */
    return strcmp(o.name, name) == 0;
}

int fam_cleanup(fam_t *f, size_t *removed)
{
    fam_clear_error();
    if (!f) return fam_fail(FAM_EINVAL, "fam_t is NULL");
    size_t gone = 0;
    int first = 0;
    char keep[FAMP_MAX_ERRMSG] = "";
    for (int i = 0; i < f->nservers; i++) {
        for (uint64_t slot = 0;;) {
            struct famp_req q = {.off = slot};
            struct famp_info o;
            int rc = fam_rpc(f, i, FAMP_PART_LIST, &q, &o);
            if (rc == FAM_ENOTFOUND) break;
            if (rc) {
                if (!first) {
                    first = rc;
                    snprintf(keep, sizeof keep, "%s", fam_last_error());
                }
                break;
            }
            slot = o.arg[0] + 1;
            int region = (o.flags & FAMP_F_REGION) != 0;
            /* a region part's home is on its name's home server; an item
             * part's, part 0, on server 0 (fam_allocate). Both hold only
             * for the server list the object was made with: judge only
             * parts of regions interleaved over as many servers as this
             * client knows (every client of a region must list the same
             * servers, or it could not find the region either) */
            int hs = region ? home_of(f, o.name) : 0;
            if (hs == i) continue; /* not a part this client can judge */
            uint32_t width = o.nshards;
            if (!region) { /* the item part's region part, here */
                struct famp_req rq = {.id = o.region_id};
                struct famp_info ro;
                if (fam_rpc(f, i, FAMP_REGION_STAT, &rq, &ro)) continue;
                width = ro.nshards;
            }
            if (width != (uint32_t)f->nservers) continue;
            int alive = home_alive(f, hs, region, o.arg[1], o.name);
            if (alive < 0 && !first) {
                first = alive;
                snprintf(keep, sizeof keep, "%s", fam_last_error());
            }
            if (alive) continue;
            struct famp_req u = {.id = o.id};
            rc = fam_rpc(f, i, region ? FAMP_REGION_DESTROY : FAMP_ITEM_FREE,
                         &u, &o);
            if (!rc) gone++;
            else if (rc != FAM_ENOTFOUND && !first) {
                first = rc;
                snprintf(keep, sizeof keep, "%s", fam_last_error());
            }
        }
    }
    if (removed) *removed = gone;
    if (first) return fam_fail(first, "cleanup: %s", keep);
    return 0;
}

uint64_t fam_item_size(const fam_item_t *d) { return d ? d->size : 0; }
void fam_release(fam_item_t *d) { free(d); }

int fam_compare_swap_int128(fam_t *f, fam_item_t *d, uint64_t off,
                            const uint64_t expected[2],
                            const uint64_t desired[2], uint64_t old[2])
{
    NEED(f, d, "item descriptor");
    if (!expected || !desired || !old)
        return fam_fail(FAM_EINVAL, "128-bit operand is NULL");
    if (off % 16)
        return fam_fail(FAM_EINVAL, "128-bit compare-swap at offset %llu: the "
                        "offset must be a multiple of 16", (unsigned long long)off);
    if (off > d->size || d->size - off < 16)
        return fam_fail(FAM_EOUTOFRANGE, "128-bit compare-swap at offset %llu "
                        "is past the end of '%s' (%llu bytes)",
                        (unsigned long long)off, d->name,
                        (unsigned long long)d->size);
    uint64_t local, run;
    int p = fam_locate(d, off, &local, &run);
    uint8_t *lp = FAM_LOCAL(f, &d->part[p], local);
    if (lp) { /* fast path: the same instruction famd uses */
        if (!d->writable)
            return fam_fail(FAM_EPERM, "no permission to update item '%s'", d->name);
        unsigned __int128 e = (unsigned __int128)expected[1] << 64 | expected[0];
        unsigned __int128 n = (unsigned __int128)desired[1] << 64 | desired[0];
        unsigned __int128 was = __sync_val_compare_and_swap(
            (unsigned __int128 *)(void *)lp, e, n);
        old[0] = (uint64_t)was;
        old[1] = (uint64_t)(was >> 64);
        return 0;
    }
    struct famp_req q = {0};
    struct famp_info o;
    q.id = d->part[p].id;
    q.off = local;
    q.arg[0] = expected[0];
    q.arg[1] = expected[1];
    q.arg[2] = desired[0];
    q.arg[3] = desired[1];
    int rc = fam_rpc(f, d->part[p].server, FAMP_CAS128, &q, &o);
    if (!rc) {
        old[0] = o.arg[0];
        old[1] = o.arg[1];
    }
    return rc;
}
