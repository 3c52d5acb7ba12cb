/* SPDX-License-Identifier: Apache-2.0 */
/* fam_meta.c — libfam's metadata: names, regions, data items and the
 * cleanup of what crashed clients left, all as control requests
 * (fam_rpc, fam_control.c) to the memory servers.
 *
 * A region lives on the server its name hashes to (its home), so every
 * client finds it there, and so do its items; an interleaved region has a
 * part on every server, and each of its items a part on each server it is
 * striped over.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    FAM_NEED(f, out, "out");
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
    FAM_NEED(f, out, "out");
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
    FAM_NEED(f, r, "region descriptor");
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
    FAM_NEED(f, r, "region descriptor");
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
    FAM_NEED(f, r, "region descriptor");
    if (perm & ~0777u) return fam_fail(FAM_EINVAL, "bad permission bits %o", perm);
    struct famp_req q = {0};
    q.mode = perm;
    return region_all(f, r, FAMP_REGION_CHMOD, &q, NULL);
}

int fam_stat_region(fam_t *f, fam_region_t *r, fam_stat_t *st)
{
    FAM_NEED(f, r, "region descriptor");
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
    FAM_NEED(f, out, "out");
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
    FAM_NEED(f, out, "out");
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
    FAM_NEED(f, d, "item descriptor");
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
    FAM_NEED(f, d, "item descriptor");
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
    FAM_NEED(f, d, "item descriptor");
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
    FAM_NEED(f, r, "region descriptor");
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

