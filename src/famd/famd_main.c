/* famd_main.c — the memory server's command line, sockets and event loop.
 *
 *   famd --port P --pool-size SIZE [--pool-file PATH] [--provider shm|tcp]
 *        [--host ADDR] [--data-dir DIR] [--spin-us N] [--verbose]
 *        [--quota-objects N|P%] [--quota-bytes SIZE|P%]
 *
 * Clients connect to host:port over TCP for control requests; the data path
 * is libfabric RMA (famd_fabric.c). famd learns who a client is when it
 * connects, from the kernel: for a loopback connection it reads the owner
 * uid of the client's socket in /proc/net/tcp (nothing the client says about
 * itself is believed); connections from other hosts act as "nobody". See
 * docs/SECURITY.md.
 *
 * Progress: the software providers move a client's RMA only while famd
 * drives progress, and shm cannot wake a famd that sleeps (its wait fd fires
 * late or not at all). So a client about to do RMA sends a one-way WAKE on
 * its control socket, and again every spin_us/2 while it keeps going. After
 * any activity (a request, a WAKE, a completion) famd polls without
 * sleeping for --spin-us microseconds; after that it blocks in poll() on
 * the sockets and the fabric's wait fd, so an idle famd costs no CPU. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
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

#define MAX_CONNS 1024

/* One client connection. */
struct conn {
    int fd;                 /* -1 when the slot is unused */
    struct famd_cred cred;  /* who the kernel says the peer is */
    uint8_t *in;            /* bytes received, not yet handled */
    size_t inlen, incap;
    uint8_t *out;           /* reply bytes not yet sent */
    size_t outlen, outoff, outcap;
    int closing;            /* close once `out` is flushed */
    int hello;              /* 1 after a successful HELLO */
    uint64_t token;         /* its secret for bulk messages (0: none yet) */
    int woke;               /* 1 after a WAKE: it does RMA or bulk with us */
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* "64M", "1G", "4096" -> bytes; 0 on error. */
static uint64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return 0;
    uint64_t mul = 1;
    switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; end++; break;
    case 'm': case 'M': mul = 1ull << 20; end++; break;
    case 'g': case 'G': mul = 1ull << 30; end++; break;
    case 't': case 'T': mul = 1ull << 40; end++; break;
    }
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (*end || v > UINT64_MAX / mul) return 0;
    return v * mul;
}

/* ---- identity ---------------------------------------------------------- */

static void cred_for_uid(struct famd_cred *c, uint32_t uid)
{
    c->uid = uid;
    c->gid = 65534;
    c->ngroups = 0;
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) {
        c->gid = pw.pw_gid;
        gid_t groups[32];
        int n = 32;
        if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) >= 0)
            for (int i = 0; i < n && i < 32; i++) c->groups[c->ngroups++] = groups[i];
    } else if (uid == 65534) {
        c->gid = 65534;
    }
}

/* The uid owning the peer's end of a loopback TCP connection, from
 * /proc/net/tcp, where the kernel lists every socket with its owner. */
static int loopback_peer_uid(const struct sockaddr_in *peer,
                             const struct sockaddr_in *self, uint32_t *uid)
{
    char want_local[32], want_rem[32], line[512];
    snprintf(want_local, sizeof want_local, "%08X:%04X", peer->sin_addr.s_addr,
             ntohs(peer->sin_port));
    snprintf(want_rem, sizeof want_rem, "%08X:%04X", self->sin_addr.s_addr,
             ntohs(self->sin_port));
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f) return -1;
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char local[64], rem[64];
        unsigned st, u;
        if (sscanf(line, " %*d: %63s %63s %x %*s %*s %*s %u", local, rem, &st,
                   &u) != 4)
            continue;
        if (strcmp(local, want_local) == 0 && strcmp(rem, want_rem) == 0) {
            *uid = u;
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

static void learn_identity(struct famd *d, struct conn *c)
{
    struct sockaddr_in peer, self;
    socklen_t pl = sizeof peer, sl = sizeof self;
    uint32_t uid = 65534;
    if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) == 0 &&
        getsockname(c->fd, (struct sockaddr *)&self, &sl) == 0 &&
        peer.sin_family == AF_INET &&
        (ntohl(peer.sin_addr.s_addr) >> 24) == 127) {
        if (loopback_peer_uid(&peer, &self, &uid) != 0) uid = 65534;
    }
    cred_for_uid(&c->cred, uid);
    if (d->verbose)
        fprintf(stderr, "famd: client fd %d is uid %u gid %u\n", c->fd,
                c->cred.uid, c->cred.gid);
}

/* ---- connections ------------------------------------------------------- */

static void conn_close(struct famd *d, struct conn *c)
{
    famd_conn_gone(d, c->token); /* roll back what it left uncommitted */
    famd_bulk_peer_drop(d, c->token, c->woke);
    close(c->fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
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
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        c->closing = 1; /* peer gone */
        c->outoff = c->outlen;
    }
    c->outoff = c->outlen = 0;
}

static void handle(struct famd *d, struct conn *c, const struct famp_hdr *h,
                   const uint8_t *body)
{
    struct famp_req q;
    struct famp_info o;
    if (h->op == FAMP_WAKE && h->len == 0) {
        c->woke = 1;
        return; /* its arrival already counted as activity */
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
        o.spin_us = (uint32_t)d->spin_us;
        o.flags = (d->persistent ? FAMP_F_PERSISTENT : 0) |
                  (famd_fabric_virt_addr(d) ? FAMP_F_VIRT_ADDR : 0);
        c->hello = 1;
        reply(c, h, 0, &o, sizeof o);
        return;
    }
    if (!c->hello) {
        reply_error(c, h, FAM_EPROTO, "HELLO must come first");
        c->closing = 1;
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

/* Read what the socket has; handle each complete message. */
static void on_readable(struct famd *d, struct conn *c)
{
    for (;;) {
        if (c->incap - c->inlen < 65536) {
            size_t cap = c->incap ? c->incap * 2 : 65536;
            uint8_t *n = realloc(c->in, cap);
            if (!n) { c->closing = 1; return; }
            c->in = n;
            c->incap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, c->incap - c->inlen,
                         MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->closing = 1;
            c->outlen = c->outoff = 0; /* nobody to answer */
            return;
        }
        if (n < 0) break;
        c->inlen += (size_t)n;
        if ((size_t)n < c->incap - c->inlen) break;
    }
    size_t at = 0;
    while (!c->closing && c->inlen - at >= sizeof(struct famp_hdr)) {
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
        /* every request has a body of one fixed size (WAKE: none), so a
         * wrong length is refused now: waiting for the body would let any
         * client make famd buffer up to FAMP_MAX_BODY bytes per connection */
        if (h.len != (h.op == FAMP_WAKE ? 0 : sizeof(struct famp_req))) {
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

static void usage(FILE *f)
{
    fprintf(f,
        "usage: famd --port P --pool-size SIZE [--pool-file PATH]\n"
        "            [--provider shm|tcp] [--host ADDR] [--data-dir DIR]\n"
        "            [--spin-us N] [--verbose]\n"
        "  --port P          control port (0: pick a free one)\n"
        "  --pool-size SIZE  pool bytes, e.g. 1G, 256M (minimum 16M)\n"
        "  --pool-file PATH  keep the pool in this file (persistent); else\n"
        "                    the pool is volatile memory\n"
        "  --provider NAME   libfabric provider: shm (one host) or tcp\n"
        "  --host ADDR       address to serve on (default 127.0.0.1)\n"
        "  --data-dir DIR    directory for backups\n"
        "  --spin-us N       busy-poll N us after activity (default 2000)\n"
        "  --quota-objects N|P%%  regions + items one uid may hold here\n"
        "                    (root and famd's own uid: no limit): a count,\n"
        "                    or a share of the metadata slots\n"
        "                    (default 50%%; 0: no limit)\n"
        "  --quota-bytes SIZE|P%%  item bytes one uid may hold\n"
        "                    here (default 50%% of the pool; 0: no limit)\n");
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
        {"verbose", no_argument, 0, 'v'},
        {"quota-objects", required_argument, 0, 'Q'},
        {"quota-bytes", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int port = -1, verbose = 0;
    uint64_t pool_size = 0, spin_us = 2000;
    const char *pool_file = NULL, *provider = "shm", *host = "127.0.0.1";
    const char *data_dir = NULL;
    /* per-uid quotas (famd_pool.c): an absolute value, or a percentage of
     * the metadata slots / pool bytes, known once the pool is open */
    uint64_t q_objs = 50, q_bytes = 50;
    int q_objs_pct = 1, q_bytes_pct = 1;
    for (int ch; (ch = getopt_long(argc, argv, "p:s:f:P:H:d:S:vhQ:B:", opts, NULL)) != -1;) {
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
        case 'S': spin_us = strtoull(optarg, NULL, 10); break;
        case 'v': verbose = 1; break;
        case 'Q':
        case 'B': { /* a count (Q) or a size (B), or a percentage P% */
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
                        ch == 'Q' ? "objects" : "bytes", optarg);
                return 2;
            }
            if (ch == 'Q') { q_objs = v; q_objs_pct = pct; }
            else { q_bytes = v; q_bytes_pct = pct; }
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
    d.data_dir = data_dir;
    if (famd_pool_open(&d, pool_file, pool_size) ||
        famd_fabric_open(&d, provider, host) || famd_bulk_open(&d)) {
        fprintf(stderr, "famd: %s\n", d.err);
        return 1;
    }
    d.quota_objects = q_objs_pct ? d.nslots * q_objs / 100 : q_objs;
    d.quota_bytes = q_bytes_pct ? (d.size - d.sb->data_off) / 100 * q_bytes
                                : q_bytes;
    if (q_objs_pct && q_objs && !d.quota_objects) d.quota_objects = 1;
    if (q_bytes_pct && q_bytes && !d.quota_bytes) d.quota_bytes = FAMD_PAGE;
    int bound, lfd = listen_on(host, port, &bound);
    if (lfd < 0) {
        fprintf(stderr, "famd: cannot listen on %s:%d: %s\n", host, port,
                strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("famd ready %s:%d provider=%s pool=%llu persistent=%d pid=%d\n",
           host, bound, provider, (unsigned long long)d.size, d.persistent,
           (int)getpid());
    fflush(stdout);

    static struct conn conns[MAX_CONNS];
    for (int i = 0; i < MAX_CONNS; i++) conns[i].fd = -1;
    struct pollfd pfd[MAX_CONNS + 2];
    int idx[MAX_CONNS + 2];
    int wfd = famd_fabric_wait_fd(&d);
    uint64_t last = now_us();
    unsigned refused = 0; /* trywaits refused in a row while idle */
    struct fam_crowd crowd = {0};

    while (!stop) {
        if (famd_fabric_progress(&d) > 0 || famd_bulk_poll(&d)) {
            last = now_us();
            refused = 0;
        }
        if (now_us() - last < d.spin_us) {
            /* busy: drive the fabric for ~20 us between two poll() calls
             * on the sockets; a system call per turn would add its cost to
             * every client RMA waiting on us. tcp too: a 1 MiB blocking put
             * went from 0.84-0.86 to 0.92 of bare libfabric with this spin
             * (fam_bench, 15 trials; docs/PERFORMANCE.md) */
            uint64_t until = now_us() + 20;
            /* after 32 empty polls in a row, yield if the machine is
             * crowded (fam_crowd.h): a waiting client or another famd may
             * need this core (two famds and a client on two cores read a
             * striped item 10x slower without it) */
            unsigned empty = 0;
            do {
                if (famd_fabric_progress(&d) > 0) {
                    last = now_us();
                    empty = 0;
                } else if (++empty >= 32 && fam_crowded(&crowd, now_us())) {
                    sched_yield();
                }
            } while (now_us() < until && !stop);
        }
        int np = 0;
        pfd[np].fd = lfd; pfd[np].events = POLLIN; idx[np++] = -1;
        int wslot = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            if (c->fd < 0) continue;
            pfd[np].fd = c->fd;
            pfd[np].events = (c->closing ? 0 : POLLIN) | (c->outlen ? POLLOUT : 0);
            idx[np++] = i;
        }
        int timeout = 0;
        if (now_us() - last >= d.spin_us) {
            /* idle: block until a socket or the fabric wakes us */
            if (wfd >= 0 && famd_fabric_trywait(&d) == 0) {
                pfd[np].fd = wfd; pfd[np].events = POLLIN; wslot = np;
                idx[np++] = -2;
                timeout = 1000;
                refused = 0;
            } else {
                /* no wait fd: poll every ms. A refused trywait usually means
                 * a completion just arrived (poll again at once), but the shm
                 * provider refuses it for good while an RMA it cannot serve
                 * (a revoked key) sits in its queue: after 64 refusals in a
                 * row with nothing to do, poll every ms instead of spinning */
                timeout = wfd < 0 || ++refused > 64 ? 1 : 0;
            }
        }
        int n = poll(pfd, (nfds_t)np, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("famd: poll");
            break;
        }
        if (n == 0) continue;
        last = now_us();
        if (wslot >= 0 && pfd[wslot].revents) famd_fabric_progress(&d);
        if (pfd[0].revents & POLLIN) {
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) break;
                int i = 0;
                while (i < MAX_CONNS && conns[i].fd >= 0) i++;
                if (i == MAX_CONNS) { close(fd); continue; }
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conns[i].fd = fd;
                learn_identity(&d, &conns[i]);
            }
        }
        for (int k = 1; k < np; k++) {
            if (idx[k] < 0 || !pfd[k].revents) continue;
            struct conn *c = &conns[idx[k]];
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) on_readable(&d, c);
            flush_out(c);
            if (c->closing && c->outlen == 0) conn_close(&d, c);
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].fd >= 0) conn_close(&d, &conns[i]);
    close(lfd);
    famd_fabric_close(&d);
    famd_bulk_close(&d);
    famd_pool_close(&d);
    if (verbose) fprintf(stderr, "famd: stopped\n");
    return 0;
}
