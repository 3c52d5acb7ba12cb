/* SPDX-License-Identifier: Apache-2.0 */
/* famd_pool.c — the memory pool: layout, metadata records, allocation.
 *
 * Layout of a pool (a file with --pool-file, else private anonymous memory):
 *   [0, 4 KiB)            superblock (struct famd_super)
 *   [4 KiB, data_off)     nslots metadata records of 512 bytes
 *   [data_off, size)      item extents, 4 KiB aligned
 * Records are the only persistent metadata: the free list, the name index
 * and each region's usage are rebuilt from them at start. Because a record
 * becomes visible with a single aligned store (see struct famd_rec), a
 * kill -9 at any point leaves a consistent pool. Freed extents are punched
 * out of the file so that a new item always reads as zeros.
 *
 * A part of a region or item that spans several memory servers is created
 * "pending" (docs/PROTOCOL.md, "Multi-server creates"): invisible to
 * lookups and lists, owned by the control connection that made it, until
 * that connection commits it. famd drops the pending records of a
 * connection that closes, and every pending record when it starts, so a
 * client or famd that dies half-way leaves nothing behind here. Per-uid
 * quotas on records and item bytes (docs/SECURITY.md) are checked here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "famd.h"

int famd_fail(struct famd *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    return code;
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* FNV-1a over the kind, the region id and the name: the name index key. */
static uint64_t name_hash(uint32_t kind, uint64_t region_id, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    const uint8_t *p = (const uint8_t *)&kind;
    for (size_t i = 0; i < sizeof kind; i++) h = (h ^ p[i]) * 1099511628211ull;
    p = (const uint8_t *)&region_id;
    for (size_t i = 0; i < sizeof region_id; i++) h = (h ^ p[i]) * 1099511628211ull;
    for (p = (const uint8_t *)name; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return h;
}

static int32_t *bucket_of(struct famd *d, const struct famd_rec *r)
{
    uint64_t rid = r->state == FAMD_REC_ITEM ? r->region_id : 0;
    return &d->bucket[name_hash((uint32_t)r->state, rid, r->name) % d->nslots];
}

static void index_add(struct famd *d, int32_t slot)
{
    int32_t *b = bucket_of(d, &d->recs[slot]);
    d->live[slot].next = *b;
    *b = slot;
}

static void index_remove(struct famd *d, int32_t slot)
{
    int32_t *p = bucket_of(d, &d->recs[slot]);
    while (*p != -1 && *p != slot) p = &d->live[*p].next;
    if (*p == slot) *p = d->live[slot].next;
    d->live[slot].next = -1;
}

int32_t famd_find(struct famd *d, uint32_t kind, uint64_t region_id,
                  const char *name)
{
    uint64_t rid = kind == FAMD_REC_ITEM ? region_id : 0;
    int32_t s = d->bucket[name_hash(kind, rid, name) % d->nslots];
    for (; s != -1; s = d->live[s].next) {
        const struct famd_rec *r = &d->recs[s];
        if (r->state == kind && !r->unnamed && strcmp(r->name, name) == 0 &&
            (kind != FAMD_REC_ITEM || r->region_id == region_id))
            return s;
    }
    return -1;
}

int famd_visible(struct famd *d, int32_t slot)
{
    return !atomic_load(&d->recs[slot].pending) ||
           (d->conn && d->live[slot].owner == d->conn);
}

/* The record named `name` that the caller may see, whose home_id is
 * `home` (0: any). Several parts of one name may sit on one server when a
 * crash left an orphan (a committed part whose home part is gone): the
 * home id tells them apart. */
int32_t famd_lookup(struct famd *d, uint32_t kind, uint64_t region_id,
                    const char *name, uint64_t home)
{
    uint64_t rid = kind == FAMD_REC_ITEM ? region_id : 0;
    int32_t s = d->bucket[name_hash(kind, rid, name) % d->nslots];
    for (; s != -1; s = d->live[s].next) {
        const struct famd_rec *r = &d->recs[s];
        if (r->state == kind && !r->unnamed && strcmp(r->name, name) == 0 &&
            (kind != FAMD_REC_ITEM || r->region_id == region_id) &&
            (!home || r->home_id == home) && famd_visible(d, s))
            return s;
    }
    return -1;
}

/* A record that a new one of this name and home id would clash with: the
 * same home id (0 for home parts), pending or not. */
static int32_t clash(struct famd *d, uint32_t kind, uint64_t region_id,
                     const char *name, uint64_t home)
{
    uint64_t rid = kind == FAMD_REC_ITEM ? region_id : 0;
    int32_t s = d->bucket[name_hash(kind, rid, name) % d->nslots];
    for (; s != -1; s = d->live[s].next) {
        const struct famd_rec *r = &d->recs[s];
        if (r->state == kind && !r->unnamed && strcmp(r->name, name) == 0 &&
            (kind != FAMD_REC_ITEM || r->region_id == region_id) &&
            r->home_id == home)
            return s;
    }
    return -1;
}

int32_t famd_slot_of(struct famd *d, uint32_t kind, uint64_t id)
{
    uint64_t slot = id & ((1ull << FAMD_SLOT_BITS) - 1);
    if (slot >= d->nslots) return -1;
    const struct famd_rec *r = &d->recs[slot];
    if (r->state != kind || r->id != id) return -1;
    return (int32_t)slot;
}

/* ---- pending records ------------------------------------------------- */

/* Room for one more pending slot, taken before anything changes so that
 * recording it cannot fail afterwards. */
static int pend_room(struct famd *d)
{
    if (d->npend == d->cappend) {
        size_t cap = d->cappend ? d->cappend * 2 : 64;
        int32_t *n = realloc(d->pend, cap * sizeof *n);
        if (!n) return famd_fail(d, FAM_ENOMEM, "out of memory");
        d->pend = n;
        d->cappend = cap;
    }
    return 0;
}

/* The record in `slot` is no longer pending (committed or freed). */
static void pend_drop(struct famd *d, int32_t slot)
{
    atomic_store(&d->recs[slot].pending, 0);
    d->live[slot].owner = 0;
    for (size_t i = 0; i < d->npend; i++)
        if (d->pend[i] == slot) {
            d->pend[i] = d->pend[--d->npend];
            return;
        }
}

/* ---- per-uid usage and quotas ------------------------------------------ */

static struct famd_usage *usage_of(struct famd *d, uint32_t uid, int add)
{
    for (size_t i = 0; i < d->nusage; i++)
        if (d->usage[i].uid == uid) return &d->usage[i];
    if (!add) return NULL;
    if (d->nusage == d->capusage) {
        size_t cap = d->capusage ? d->capusage * 2 : 16;
        struct famd_usage *n = realloc(d->usage, cap * sizeof *n);
        if (!n) return NULL;
        d->usage = n;
        d->capusage = cap;
    }
    d->usage[d->nusage] = (struct famd_usage){.uid = uid};
    return &d->usage[d->nusage++];
}

/* Account a record of uid holding `bytes` (sign +1 on create, -1 on free). */
static void usage_add(struct famd *d, uint32_t uid, uint64_t bytes, int sign)
{
    struct famd_usage *u = usage_of(d, uid, sign > 0);
    if (!u) return; /* out of memory: quotas are then not enforced for it */
    if (sign > 0) {
        u->objects++;
        u->bytes += bytes;
    } else {
        u->objects -= u->objects ? 1 : 0;
        u->bytes -= u->bytes >= bytes ? bytes : u->bytes;
    }
}

/* May uid c make one more record holding `bytes`? root is exempt, as the
 * blocks a file system reserves for root: the administrator can always
 * clean up. So is the uid famd runs as: it owns the pool (file) anyway,
 * and a user's own `kodiak up` cluster must not stop that user at half
 * of the pool. */
static int quota_check(struct famd *d, const struct famd_cred *c,
                       uint64_t bytes, const char *what, const char *name)
{
    if (c->uid == 0 || c->uid == (uint32_t)geteuid()) return 0;
    struct famd_usage *u = usage_of(d, c->uid, 0);
    uint64_t objs = u ? u->objects : 0, used = u ? u->bytes : 0;
    if (d->quota_objects && objs >= d->quota_objects)
        return famd_fail(d, FAM_ENOSPACE, "cannot create %s '%s': uid %u "
                         "holds %llu regions and items on this memory server, "
                         "its quota (famd --quota-objects %llu)", what, name,
                         c->uid, (unsigned long long)objs,
                         (unsigned long long)d->quota_objects);
    if (d->quota_bytes && (bytes > d->quota_bytes ||
                           used > d->quota_bytes - bytes))
        return famd_fail(d, FAM_ENOSPACE, "cannot create %s '%s' of %llu "
                         "bytes: uid %u holds %llu bytes of items on this "
                         "memory server and its quota is %llu (famd "
                         "--quota-bytes)", what, name,
                         (unsigned long long)bytes, c->uid,
                         (unsigned long long)used,
                         (unsigned long long)d->quota_bytes);
    return 0;
}

/* ---- free extents ------------------------------------------------------ */

static int extent_insert(struct famd *d, uint64_t off, uint64_t len)
{
    size_t lo = 0, hi = d->nfree; /* first extent with offset > off */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->freelist[mid].off < off) lo = mid + 1; else hi = mid;
    }
    d->free_bytes += len;
    if (lo > 0 && d->freelist[lo - 1].off + d->freelist[lo - 1].len == off) {
        d->freelist[lo - 1].len += len;
        if (lo < d->nfree && off + len == d->freelist[lo].off) {
            d->freelist[lo - 1].len += d->freelist[lo].len;
            memmove(&d->freelist[lo], &d->freelist[lo + 1],
                    (d->nfree - lo - 1) * sizeof *d->freelist);
            d->nfree--;
        }
        return 0;
    }
    if (lo < d->nfree && off + len == d->freelist[lo].off) {
        d->freelist[lo].off = off;
        d->freelist[lo].len += len;
        return 0;
    }
    if (d->nfree == d->capfree) {
        size_t cap = d->capfree ? d->capfree * 2 : 64;
        struct famd_extent *n = realloc(d->freelist, cap * sizeof *n);
        if (!n) return FAM_ENOMEM;
        d->freelist = n;
        d->capfree = cap;
    }
    memmove(&d->freelist[lo + 1], &d->freelist[lo],
            (d->nfree - lo) * sizeof *d->freelist);
    d->freelist[lo] = (struct famd_extent){off, len};
    d->nfree++;
    return 0;
}

/* Where an item goes. Large items (FAMD_SMALL and up: a batch's columns)
 * take the first fit from the bottom of the pool, small ones (a filter's
 * index of a batch, a catalog snapshot) the last fit from the top. Each
 * end has a frontier of its own that famd_prefault keeps mapped in. An
 * ingest of hundreds of MiB uses up the bottom one faster than it can be
 * mapped in again; the small items written right after it still land in
 * pages mapped in ahead instead of fresh ones (a fresh 2 MiB page took
 * 3.5-6 ms here, in the middle of a client's put). Small items also stay
 * packed together instead of splitting the huge pages large ones span.
 * Returns the offset, or 0 when nothing fits (0 is never data). */
static uint64_t extent_take(struct famd *d, uint64_t len)
{
    size_t i = d->nfree;
    if (len < FAMD_SMALL) {
        while (i-- > 0 && d->freelist[i].len < len) {
        }
    } else {
        for (i = 0; i < d->nfree && d->freelist[i].len < len; i++) {
        }
    }
    if (i >= d->nfree) return 0; /* (the downward loop ends at SIZE_MAX) */
    struct famd_extent *e = &d->freelist[i];
    uint64_t off = e->off;
    if (len < FAMD_SMALL) off += e->len - len; /* its top end */
    else e->off += len;
    e->len -= len;
    if (e->len == 0) {
        memmove(e, e + 1, (d->nfree - i - 1) * sizeof *e);
        d->nfree--;
    }
    d->free_bytes -= len;
    return off;
}

/* Make [off, off+len) read as zeros again, cheaply where the kernel can.
 * Anonymous memory gives back only whole huge pages (2 MiB, aligned) and
 * zeroes the rest by hand: giving back part of one splits it into 4 KiB
 * pages for good, and a pool cut up so (after a dataset store is dropped,
 * say) reads several times slower here (every later item in it pays:
 * docs/PERFORMANCE.md, "famd: huge pages kept"). */
#define FAMD_HUGE ((uint64_t)2 << 20)
static void zero_range(struct famd *d, uint64_t off, uint64_t len)
{
    if (len == 0) return;
    if (d->fd < 0) { /* anonymous memory: give the pages back, they read 0 */
        uint64_t at = (uint64_t)(uintptr_t)d->base; /* huge pages align in addresses */
        uint64_t a = (at + off + FAMD_HUGE - 1) / FAMD_HUGE * FAMD_HUGE - at;
        uint64_t b = (at + off + len) / FAMD_HUGE * FAMD_HUGE - at;
        if (b > a && madvise(d->base + a, b - a, MADV_DONTNEED) == 0) {
            memset(d->base + off, 0, a - off);
            memset(d->base + b, 0, off + len - b);
        } else {
            memset(d->base + off, 0, len);
        }
        return;
    }
    if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len) != 0)
        memset(d->base + off, 0, len);
}

/* ---- open, format, recover --------------------------------------------- */

static uint64_t slots_for(uint64_t size)
{
    uint64_t n = size / (32 * 1024); /* one record per 32 KiB of pool */
    if (n < 1024) n = 1024;
    if (n > (1u << 20)) n = 1u << 20;
    return n;
}

static void format(struct famd *d)
{
    struct famd_super *sb = (struct famd_super *)d->base;
    uint64_t nslots = slots_for(d->size);
    memset(sb, 0, FAMD_PAGE);
    sb->version = 1;
    sb->pool_size = d->size;
    sb->nslots = nslots;
    sb->meta_off = FAMD_PAGE;
    sb->data_off = align_up(FAMD_PAGE + nslots * FAMD_REC_SIZE, 1 << 21);
    atomic_store(&sb->next_id, 1ull << FAMD_SLOT_BITS);
    /* the magic last: a pool is formatted once it is there */
    memcpy(sb->magic, FAMD_SUPER_MAGIC, sizeof FAMD_SUPER_MAGIC);
}

/* An item's extent, while recovery checks that none overlap. */
typedef struct {
    uint64_t off, end; /* [off, end) in the pool */
    int32_t slot;      /* its record */
} span_t;

static int span_cmp(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Rebuild the run-time index from the records; drop what a crash left half
 * done (items whose region is gone, overlapping or out-of-pool extents). */
static int recover(struct famd *d)
{
    struct famd_super *sb = d->sb;
    uint64_t data_off = sb->data_off, max_id = 0;
    for (uint64_t s = 0; s < d->nslots; s++) d->bucket[s] = -1;
    for (uint64_t s = 0; s < d->nslots; s++) {
        struct famd_rec *r = &d->recs[s];
        d->live[s].next = -1;
        r->name[FAM_NAME_MAX] = '\0';
        if (r->state == FAMD_REC_FREE) continue;
        if ((r->state != FAMD_REC_REGION && r->state != FAMD_REC_ITEM) ||
            (r->id & ((1ull << FAMD_SLOT_BITS) - 1)) != s) {
            atomic_store(&r->state, FAMD_REC_FREE);
            continue;
        }
        /* a multi-server create that was not committed before famd
         * stopped: its client has lost the connection it belonged to */
        if (atomic_load(&r->pending)) {
            atomic_store(&r->state, FAMD_REC_FREE);
            continue;
        }
        /* a volatile region on a persistent pool does not outlive famd */
        if (r->state == FAMD_REC_REGION && r->memtype == FAM_MEMORY_VOLATILE) {
            atomic_store(&r->state, FAMD_REC_FREE);
            continue;
        }
        if (r->id > max_id) max_id = r->id;
    }
    /* items: region must exist, extent must be inside the data area */
    span_t *spans = malloc(sizeof(span_t) * (d->nslots + 1));
    if (!spans) return FAM_ENOMEM;
    size_t nspans = 0;
    for (uint64_t s = 0; s < d->nslots; s++) {
        struct famd_rec *r = &d->recs[s];
        if (r->state != FAMD_REC_ITEM) continue;
        int32_t rs = famd_slot_of(d, FAMD_REC_REGION, r->region_id);
        uint64_t len = align_up(r->size, FAMD_PAGE);
        if (rs < 0 || r->offset < data_off || r->offset % FAMD_PAGE ||
            r->size == 0 || len > d->size || r->offset > d->size - len) {
            atomic_store(&r->state, FAMD_REC_FREE);
            continue;
        }
        spans[nspans++] = (span_t){r->offset, r->offset + len, (int32_t)s};
    }
    qsort(spans, nspans, sizeof *spans, span_cmp); /* then reject overlaps */
    uint64_t at = data_off;
    for (size_t i = 0; i < nspans; i++) {
        if (spans[i].off < at) { /* overlaps the previous one: drop it */
            atomic_store(&d->recs[spans[i].slot].state, FAMD_REC_FREE);
            continue;
        }
        if (spans[i].off > at) {
            zero_range(d, at, spans[i].off - at);
            extent_insert(d, at, spans[i].off - at);
        }
        at = spans[i].end;
        struct famd_rec *r = &d->recs[spans[i].slot];
        d->live[famd_slot_of(d, FAMD_REC_REGION, r->region_id)].used += r->size;
    }
    if (at < d->size) {
        zero_range(d, at, d->size - at);
        extent_insert(d, at, d->size - at);
    }
    free(spans);
    for (uint64_t s = 0; s < d->nslots; s++) {
        struct famd_rec *r = &d->recs[s];
        if (r->state == FAMD_REC_FREE) continue;
        if (!r->unnamed) index_add(d, (int32_t)s);
        usage_add(d, r->uid, r->state == FAMD_REC_ITEM ?
                  align_up(r->size, FAMD_PAGE) : 0, +1);
    }
    uint64_t next = (max_id >> FAMD_SLOT_BITS) + 1;
    if ((atomic_load(&sb->next_id) >> FAMD_SLOT_BITS) < next)
        atomic_store(&sb->next_id, next << FAMD_SLOT_BITS);
    return 0;
}

int famd_pool_open(struct famd *d, const char *path, uint64_t size)
{
    int fresh = 0;
    d->fd = -1;
    if (path) {
        d->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (d->fd < 0)
            return famd_fail(d, FAM_EIO, "cannot open pool file %s: %s", path,
                             strerror(errno));
        struct stat st;
        fstat(d->fd, &st);
        if (st.st_size == 0) {
            fresh = 1;
        } else {
            struct famd_super sb;
            if (pread(d->fd, &sb, sizeof sb, 0) != (ssize_t)sizeof sb ||
                memcmp(sb.magic, FAMD_SUPER_MAGIC, sizeof FAMD_SUPER_MAGIC) ||
                sb.pool_size != (uint64_t)st.st_size)
                return famd_fail(d, FAM_EIO,
                                 "%s is not a famd pool (or is damaged); "
                                 "refusing to overwrite it", path);
            if (size && size != sb.pool_size)
                fprintf(stderr, "famd: %s holds a pool of %llu bytes; "
                        "using that size, not --pool-size\n", path,
                        (unsigned long long)sb.pool_size);
            size = sb.pool_size;
        }
        d->persistent = 1;
        if (!realpath(path, d->path)) d->path[0] = '\0';
    } else {
        /* volatile: private anonymous memory, which (unlike shared memory
         * on this kernel's settings) may use transparent huge pages: random
         * gathers over a large pool run about twice as fast with them */
        fresh = 1;
    }
    if (size < FAMD_MIN_POOL)
        return famd_fail(d, FAM_EINVAL, "pool size %llu is below the minimum "
                         "of 16 MiB", (unsigned long long)size);
    size = size / FAMD_PAGE * FAMD_PAGE;
    if (d->fd >= 0 && fresh && ftruncate(d->fd, (off_t)size) != 0)
        return famd_fail(d, FAM_EIO, "cannot size pool to %llu bytes: %s",
                         (unsigned long long)size, strerror(errno));
    if (d->fd >= 0)
        d->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    else
        d->base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (d->base == MAP_FAILED)
        return famd_fail(d, FAM_ENOMEM, "cannot map pool: %s", strerror(errno));
    if (d->fd < 0) madvise(d->base, size, MADV_HUGEPAGE);
    d->size = size;
    d->sb = (struct famd_super *)d->base;
    if (fresh) format(d);
    if (d->sb->nslots == 0 || d->sb->meta_off != FAMD_PAGE ||
        d->sb->data_off > size ||
        d->sb->data_off < FAMD_PAGE + d->sb->nslots * FAMD_REC_SIZE)
        return famd_fail(d, FAM_EIO, "pool superblock is damaged");
    d->nslots = d->sb->nslots;
    if (getrandom(&d->sb->instance, sizeof d->sb->instance, 0) != 8)
        d->sb->instance = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    d->recs = (struct famd_rec *)(d->base + d->sb->meta_off);
    d->bucket = malloc(d->nslots * sizeof *d->bucket);
    d->live = calloc(d->nslots, sizeof *d->live);
    if (!d->bucket || !d->live) return famd_fail(d, FAM_ENOMEM, "out of memory");
    int rc = recover(d);
    if (rc) return famd_fail(d, rc, "out of memory");
    famd_backup_clean(d); /* what a famd killed while writing one left */
    return 0;
}

void famd_pool_close(struct famd *d)
{
    if (d->base && d->base != MAP_FAILED) {
        if (d->persistent) msync(d->base, d->size, MS_SYNC);
        munmap(d->base, d->size);
    }
    if (d->fd >= 0) close(d->fd);
    free(d->bucket);
    free(d->live);
    free(d->freelist);
    free(d->usage);
    free(d->pend);
    famd_backup_clean(d);
}

/* ---- permissions ------------------------------------------------------- */

/* 1 if c may access r as `want` (FAMD_R and/or FAMD_W), Unix style: the
 * owner's bits for the owner, the group's for a member, else the others'.
 * root may do anything, as on a Unix file system. */
int famd_may(const struct famd_rec *r, const struct famd_cred *c, int want)
{
    if (c->uid == 0) return 1;
    uint32_t mode = atomic_load(&((struct famd_rec *)r)->mode);
    unsigned bits;
    if (c->uid == r->uid) {
        bits = (mode >> 6) & 7;
    } else {
        int member = c->gid == r->gid;
        for (uint32_t i = 0; i < c->ngroups && !member; i++)
            member = c->groups[i] == r->gid;
        bits = member ? (mode >> 3) & 7 : mode & 7;
    }
    return ((unsigned)want & bits) == (unsigned)want;
}

/* ---- records ----------------------------------------------------------- */

static int32_t free_slot(struct famd *d)
{
    /* start where the last search ended, so creation is O(1) amortized */
    static uint64_t hint;
    for (uint64_t i = 0; i < d->nslots; i++) {
        uint64_t s = (hint + i) % d->nslots;
        if (d->recs[s].state == FAMD_REC_FREE) {
            hint = s + 1;
            return (int32_t)s;
        }
    }
    return -1;
}

static uint64_t new_id(struct famd *d, int32_t slot)
{
    uint64_t n = atomic_fetch_add(&d->sb->next_id, 1ull << FAMD_SLOT_BITS);
    return n | (uint64_t)slot;
}

int famd_region_create(struct famd *d, const char *name, uint64_t size,
                       const struct famd_cred *c, uint32_t mode,
                       uint32_t memtype, uint32_t interleave, uint64_t stripe,
                       uint32_t nshards, uint64_t home_id, int pending,
                       int32_t *slot)
{
    int32_t old = clash(d, FAMD_REC_REGION, 0, name, home_id);
    if (old >= 0)
        return famd_fail(d, FAM_EEXIST, "region '%s' %s", name,
                         famd_visible(d, old) ? "already exists"
                         : "is being created by another client");
    int rc = quota_check(d, c, 0, "region", name);
    if (rc) return rc;
    if (pending && (rc = pend_room(d))) return rc;
    if (memtype == FAM_MEMORY_DEFAULT)
        memtype = d->persistent ? FAM_MEMORY_PERSISTENT : FAM_MEMORY_VOLATILE;
    if (memtype == FAM_MEMORY_PERSISTENT && !d->persistent)
        return famd_fail(d, FAM_ENOTSUP, "region '%s' asks for persistent "
                         "memory but this memory server's pool is volatile "
                         "(start famd with --pool-file)", name);
    int32_t s = free_slot(d);
    if (s < 0)
        return famd_fail(d, FAM_ENOSPACE, "memory server metadata is full "
                         "(%llu regions and items)",
                         (unsigned long long)d->nslots);
    struct famd_rec *r = &d->recs[s];
    memset((char *)r + sizeof r->state, 0, sizeof *r - sizeof r->state);
    r->id = new_id(d, s);
    atomic_store(&r->size, size);
    r->stripe = stripe;
    r->uid = c->uid;
    r->gid = c->gid;
    atomic_store(&r->mode, mode & 0777);
    r->memtype = memtype;
    r->interleave = interleave;
    r->nshards = nshards;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->home_id = home_id;
    atomic_store(&r->pending, pending ? 1 : 0);
    d->live[s].owner = pending ? d->conn : 0;
    if (pending) d->pend[d->npend++] = s;
    atomic_store(&r->state, FAMD_REC_REGION); /* commit */
    d->live[s].used = 0;
    index_add(d, s);
    usage_add(d, c->uid, 0, +1);
    *slot = s;
    return 0;
}

int famd_item_free(struct famd *d, int32_t slot)
{
    struct famd_rec *r = &d->recs[slot];
    int32_t rs = famd_slot_of(d, FAMD_REC_REGION, r->region_id);
    uint64_t len = align_up(r->size, FAMD_PAGE);
    famd_mr_drop(d, slot); /* revoke every client's access first */
    if (!r->unnamed) index_remove(d, slot);
    atomic_store(&r->state, FAMD_REC_FREE); /* commit */
    if (atomic_load(&r->pending)) pend_drop(d, slot);
    usage_add(d, r->uid, len, -1);
    if (rs >= 0) d->live[rs].used -= r->size;
    zero_range(d, r->offset, len);
    int rc = extent_insert(d, r->offset, len);
    famd_prefault_note(d);
    return rc;
}

int famd_region_destroy(struct famd *d, int32_t slot)
{
    struct famd_rec *reg = &d->recs[slot];
    uint64_t rid = reg->id;
    index_remove(d, slot);
    /* commit point: with the region gone, its items are orphans that
     * recovery would drop anyway; free them now */
    atomic_store(&reg->state, FAMD_REC_FREE);
    if (atomic_load(&reg->pending)) pend_drop(d, slot);
    usage_add(d, reg->uid, 0, -1);
    for (uint64_t s = 0; s < d->nslots; s++)
        if (d->recs[s].state == FAMD_REC_ITEM && d->recs[s].region_id == rid)
            famd_item_free(d, (int32_t)s);
    return 0;
}

int famd_region_resize(struct famd *d, int32_t slot, uint64_t size)
{
    if (size < d->live[slot].used)
        return famd_fail(d, FAM_ENOSPACE, "region '%s' holds %llu bytes of "
                         "items; it cannot shrink to %llu",
                         d->recs[slot].name,
                         (unsigned long long)d->live[slot].used,
                         (unsigned long long)size);
    atomic_store(&d->recs[slot].size, size);
    return 0;
}

int famd_item_alloc(struct famd *d, int32_t region_slot, const char *name,
                    uint64_t size, const struct famd_cred *c, uint32_t mode,
                    const struct famd_shardinfo *si, uint64_t home_id,
                    int pending, int32_t *slot)
{
    struct famd_rec *reg = &d->recs[region_slot];
    int32_t old = *name ? clash(d, FAMD_REC_ITEM, reg->id, name, home_id) : -1;
    if (old >= 0)
        return famd_fail(d, FAM_EEXIST, "item '%s' %s in region '%s'", name,
                         famd_visible(d, old) ? "already exists"
                         : "is being created by another client", reg->name);
    uint64_t limit = atomic_load(&reg->size);
    if (size > limit || d->live[region_slot].used > limit - size)
        return famd_fail(d, FAM_ENOSPACE, "region '%s' is full: %llu of %llu "
                         "bytes used, %llu more asked for", reg->name,
                         (unsigned long long)d->live[region_slot].used,
                         (unsigned long long)limit, (unsigned long long)size);
    uint64_t len = align_up(size, FAMD_PAGE);
    if (len < size) return famd_fail(d, FAM_EINVAL, "size too large");
    int rc = quota_check(d, c, len, "item", *name ? name : "(unnamed)");
    if (rc) return rc;
    if (pending && (rc = pend_room(d))) return rc;
    int32_t s = free_slot(d);
    if (s < 0)
        return famd_fail(d, FAM_ENOSPACE, "memory server metadata is full "
                         "(%llu regions and items)",
                         (unsigned long long)d->nslots);
    uint64_t off = extent_take(d, len);
    if (off == 0)
        return famd_fail(d, FAM_ENOSPACE, "memory server pool is full: no "
                         "free run of %llu bytes (%llu bytes free in all)",
                         (unsigned long long)len,
                         (unsigned long long)d->free_bytes);
    struct famd_rec *r = &d->recs[s];
    memset((char *)r + sizeof r->state, 0, sizeof *r - sizeof r->state);
    r->id = new_id(d, s);
    r->region_id = reg->id;
    r->offset = off;
    atomic_store(&r->size, size);
    r->uid = c->uid;
    r->gid = c->gid;
    atomic_store(&r->mode, mode & 0777);
    r->unnamed = *name == '\0';
    r->shard = si->shard;
    r->nshards = si->nshards;
    r->total = si->total;
    r->stripe = si->stripe;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->home_id = home_id;
    atomic_store(&r->pending, pending ? 1 : 0);
    d->live[s].owner = pending ? d->conn : 0;
    if (pending) d->pend[d->npend++] = s;
    atomic_store(&r->state, FAMD_REC_ITEM); /* commit */
    usage_add(d, c->uid, len, +1);
    d->live[region_slot].used += size;
    d->live[s].mr_rw = d->live[s].mr_ro = NULL;
    d->live[s].next = -1;
    if (!r->unnamed) index_add(d, s);
    *slot = s;
    famd_prefault_note(d);
    return 0;
}

/* ---- multi-server creates ------------------------------------------------ */

/* Make a pending record of the calling connection visible: one aligned
 * store, so a kill -9 leaves it either pending (dropped at start) or
 * committed. Items its creator made in a region while the region was
 * pending become visible with it (and go with it on a rollback). */
int famd_commit(struct famd *d, uint64_t id)
{
    uint64_t slot = id & ((1ull << FAMD_SLOT_BITS) - 1);
    struct famd_rec *r = slot < d->nslots ? &d->recs[slot] : NULL;
    if (!r || r->id != id || (r->state != FAMD_REC_ITEM &&
                              r->state != FAMD_REC_REGION))
        return famd_fail(d, FAM_ENOTFOUND, "nothing with id %llu to commit "
                         "(was it rolled back?)", (unsigned long long)id);
    if (!atomic_load(&r->pending)) return 0; /* committed already */
    if (d->live[slot].owner != d->conn)
        return famd_fail(d, FAM_EPERM, "'%s' is being created by another "
                         "connection; only it may commit it", r->name);
    pend_drop(d, (int32_t)slot);
    return 0;
}

/* A control connection closed: roll back every create it left pending
 * (its client died or gave up before committing). */
void famd_conn_gone(struct famd *d, uint64_t conn)
{
    if (!conn) return;
    for (size_t i = 0; i < d->npend;) {
        int32_t s = d->pend[i];
        struct famd_rec *r = &d->recs[s];
        if (d->live[s].owner != conn) {
            i++;
            continue;
        }
        if (d->verbose)
            fprintf(stderr, "famd: rolling back uncommitted '%s'\n", r->name);
        /* both take s out of pend (and a region its pending items too):
         * look at index i again, and never past the end */
        if (r->state == FAMD_REC_ITEM) famd_item_free(d, s);
        else famd_region_destroy(d, s);
        if (i > d->npend) i = d->npend;
    }
    famd_backup_conn_gone(d, conn);
}
