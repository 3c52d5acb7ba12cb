/* fam_core.c — libfam set-up, control requests, regions and data items.
 *
 * fam_initialize connects a control socket to every memory server, says
 * HELLO (learning the server's fabric address and who it thinks we are) and
 * opens the libfabric endpoint (fam_data.c). Region and item calls are one
 * request to one server each: a region lives on the server its name hashes
 * to, so every client finds it there; its items live on the same server. */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fam_internal.h"

/* ---- sockets ------------------------------------------------------------ */

static int connect_to(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) { freeaddrinfo(res); return -1; }
    int rc = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        if (poll(&p, 1, timeout_ms) == 1 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
            rc = 0;
    }
    if (rc != 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
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

/* One request, one reply. On failure the server's message becomes this
 * thread's last error. */
int fam_rpc(fam_t *f, int server, uint16_t op, const struct famp_req *q,
            struct famp_info *o)
{
    struct fam_server *s = &f->srv[server];
    pthread_mutex_lock(&s->lock);
    int rc;
    if (s->fd < 0) {
        rc = fam_fail(FAM_EUNREACHABLE, "memory server %s:%d is unreachable "
                      "(connection lost)", s->host, s->port);
        goto out;
    }
    struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, op, ++s->seq, 0, sizeof *q};
    if ((rc = io_all(s->fd, &h, sizeof h, 1, f->timeout_ms)) ||
        (rc = io_all(s->fd, (void *)q, sizeof *q, 1, f->timeout_ms)))
        goto broken;
    struct famp_hdr r;
    if ((rc = io_all(s->fd, &r, sizeof r, 0, f->timeout_ms))) goto broken;
    if (r.magic != FAMP_MAGIC || r.seq != h.seq || r.len > FAMP_MAX_BODY) {
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
    s->fd = -1;
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

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Keep famd polling while we do RMA on it: it may be asleep, and the shm
 * provider cannot wake it. Cheap: one send() per spin_us/2 of activity. */
void fam_wake(fam_t *f, int server)
{
    struct fam_server *s = &f->srv[server];
    uint64_t now = now_us();
    if (now - s->last_wake < s->spin_us / 2) return;
    pthread_mutex_lock(&s->lock);
    if (s->fd >= 0) {
        struct famp_hdr h = {FAMP_MAGIC, FAMP_VERSION, FAMP_WAKE, 0, 0, 0};
        if (send(s->fd, &h, sizeof h, MSG_NOSIGNAL | MSG_DONTWAIT) == sizeof h)
            s->last_wake = now;
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- set-up ------------------------------------------------------------- */

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
            free(copy);
            return fam_fail(FAM_EINVAL, "bad memory server '%s' (want "
                            "host:port)", t);
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
    int rc = parse_servers(f, servers);
    if (!rc) rc = fam_fabric_open(f);
    for (int i = 0; !rc && i < f->nservers; i++) {
        struct fam_server *s = &f->srv[i];
        s->fd = connect_to(s->host, s->port, f->timeout_ms);
        if (s->fd < 0) {
            rc = fam_fail(FAM_EUNREACHABLE, "cannot connect to memory server "
                          "%s:%d: %s", s->host, s->port, strerror(errno));
            break;
        }
        struct famp_req q = {0};
        struct famp_info o;
        snprintf(q.provider, sizeof q.provider, "%s", prov);
        size_t alen = sizeof q.addr;
        if ((rc = fam_fabric_getname(f, q.addr, &alen))) break;
        q.addrlen = (uint32_t)alen;
        if ((rc = fam_rpc(f, i, FAMP_HELLO, &q, &o))) break;
        if (o.addrlen == 0 || o.addrlen > sizeof o.addr) {
            rc = fam_fail(FAM_EPROTO, "memory server %s:%d sent a bad fabric "
                          "address", s->host, s->port);
            break;
        }
        s->virt_addr = (o.flags & FAMP_F_VIRT_ADDR) != 0;
        s->persistent = (o.flags & FAMP_F_PERSISTENT) != 0;
        s->pool_size = o.pool_size;
        s->uid = o.uid;
        s->gid = o.gid;
        s->spin_us = o.spin_us;
        s->token = o.token;
        memcpy(s->faddr, o.addr, o.addrlen);
        s->faddrlen = o.addrlen;
        if ((rc = fam_fabric_add_server(f, s, o.addr, o.addrlen))) break;
    }
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
        pthread_mutex_destroy(&f->srv[i].lock);
    }
    free(f->srv);
    pthread_mutex_destroy(&f->flock);
    free(f);
    return 0;
}

int fam_num_servers(const fam_t *f) { return f ? f->nservers : 0; }

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

/* The server a region of this name lives on: the same for every client. */
static int home_of(fam_t *f, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (int)(h % (uint64_t)f->nservers);
}

static fam_region_t *new_region(int server, const struct famp_info *o)
{
    fam_region_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->server = server;
    r->id = o->id;
    snprintf(r->name, sizeof r->name, "%s", o->name);
    return r;
}

static void fill_stat(const struct famp_info *o, uint32_t nservers, fam_stat_t *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->name, sizeof st->name, "%s", o->name);
    st->size = o->size;
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
    if (attr) {
        q.memtype = attr->memory_type;
        q.interleave = attr->interleave;
        q.stripe = attr->stripe_size;
    }
    int srv = home_of(f, name);
    if ((rc = fam_rpc(f, srv, FAMP_REGION_CREATE, &q, &o))) return rc;
    if (!(*out = new_region(srv, &o))) return fam_fail(FAM_ENOMEM, "out of memory");
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
    if (!(*out = new_region(srv, &o))) return fam_fail(FAM_ENOMEM, "out of memory");
    return 0;
}

static int region_op(fam_t *f, fam_region_t *r, uint16_t op, uint64_t size,
                     uint32_t mode, struct famp_info *o)
{
    NEED(f, r, "region descriptor");
    struct famp_req q = {0};
    struct famp_info tmp;
    q.id = r->id;
    q.size = size;
    q.mode = mode;
    return fam_rpc(f, r->server, op, &q, o ? o : &tmp);
}

int fam_destroy_region(fam_t *f, fam_region_t *r)
{
    int rc = region_op(f, r, FAMP_REGION_DESTROY, 0, 0, NULL);
    if (!rc) free(r);
    return rc;
}

int fam_resize_region(fam_t *f, fam_region_t *r, uint64_t size)
{
    if (size == 0) return fam_fail(FAM_EINVAL, "region size must be above 0");
    return region_op(f, r, FAMP_REGION_RESIZE, size, 0, NULL);
}

int fam_change_region_permissions(fam_t *f, fam_region_t *r, mode_t perm)
{
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    return region_op(f, r, FAMP_REGION_CHMOD, 0, perm, NULL);
}

int fam_stat_region(fam_t *f, fam_region_t *r, fam_stat_t *st)
{
    if (!st) return fam_fail(FAM_EINVAL, "stat buffer is NULL");
    struct famp_info o;
    int rc = region_op(f, r, FAMP_REGION_STAT, 0, 0, &o);
    if (!rc) fill_stat(&o, 1, st);
    return rc;
}

void fam_release_region(fam_region_t *r) { free(r); }

/* ---- data items --------------------------------------------------------- */

static void set_item(fam_item_t *d, int server, const struct famp_info *o)
{
    d->server = server;
    d->id = o->id;
    d->region_id = o->region_id;
    d->size = o->size;
    d->key = o->key;
    d->base = o->base;
    d->writable = (o->flags & FAMP_F_WRITABLE) != 0;
    snprintf(d->name, sizeof d->name, "%s", o->name);
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
    struct famp_req q = {0};
    struct famp_info o;
    if (name) snprintf(q.name, sizeof q.name, "%s", name);
    q.region_id = r->id;
    q.size = size;
    q.mode = perm;
    if ((rc = fam_rpc(f, r->server, FAMP_ITEM_ALLOC, &q, &o))) return rc;
    fam_item_t *d = calloc(1, sizeof *d);
    if (!d) return fam_fail(FAM_ENOMEM, "out of memory");
    set_item(d, r->server, &o);
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
    int srv = home_of(f, region);
    if ((rc = fam_rpc(f, srv, FAMP_ITEM_LOOKUP, &q, &o))) return rc;
    fam_item_t *d = calloc(1, sizeof *d);
    if (!d) return fam_fail(FAM_ENOMEM, "out of memory");
    set_item(d, srv, &o);
    *out = d;
    return 0;
}

static int item_op(fam_t *f, fam_item_t *d, uint16_t op, uint32_t mode,
                   struct famp_info *o)
{
    NEED(f, d, "item descriptor");
    struct famp_req q = {0};
    struct famp_info tmp;
    q.id = d->id;
    q.mode = mode;
    return fam_rpc(f, d->server, op, &q, o ? o : &tmp);
}

int fam_deallocate(fam_t *f, fam_item_t *d)
{
    int rc = item_op(f, d, FAMP_ITEM_FREE, 0, NULL);
    if (!rc) free(d);
    return rc;
}

int fam_change_permissions(fam_t *f, fam_item_t *d, mode_t perm)
{
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    struct famp_info o;
    int rc = item_op(f, d, FAMP_ITEM_CHMOD, perm, &o);
    if (!rc) set_item(d, d->server, &o);
    return rc;
}

int fam_stat(fam_t *f, fam_item_t *d, fam_stat_t *st)
{
    if (!st) return fam_fail(FAM_EINVAL, "stat buffer is NULL");
    struct famp_info o;
    int rc = item_op(f, d, FAMP_ITEM_STAT, 0, &o);
    if (rc) return rc;
    fill_stat(&o, 1, st);
    set_item(d, d->server, &o);
    return 0;
}

/* Ask famd again for the item's key (after a key was revoked). */
int fam_item_refresh(fam_t *f, fam_item_t *d)
{
    struct famp_info o;
    int rc = item_op(f, d, FAMP_ITEM_STAT, 0, &o);
    if (!rc) set_item(d, d->server, &o);
    return rc;
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
    struct famp_req q = {0};
    struct famp_info o;
    q.id = d->id;
    q.off = off;
    q.arg[0] = expected[0];
    q.arg[1] = expected[1];
    q.arg[2] = desired[0];
    q.arg[3] = desired[1];
    int rc = fam_rpc(f, d->server, FAMP_CAS128, &q, &o);
    if (!rc) {
        old[0] = o.arg[0];
        old[1] = o.arg[1];
    }
    return rc;
}
