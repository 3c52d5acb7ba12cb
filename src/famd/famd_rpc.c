/* SPDX-License-Identifier: Apache-2.0 */
/* famd_rpc.c — answers control requests, after checking every field.
 *
 * A request arrives as a fixed-size struct famp_req from a client whose
 * identity famd learned from the kernel when it connected (famd_main.c).
 * Nothing in the request is trusted: names must be NUL-terminated and
 * printable, ids must name a live record of the right kind, sizes and
 * offsets are checked for overflow, and permission bits are checked against
 * the caller's identity before anything changes. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "famd.h"

/* A name field is valid if it ends within the field, and holds only
 * printable characters. `empty_ok` allows "" (unnamed items). */
static int check_name(struct famd *d, const char *name, const char *what,
                      int empty_ok)
{
    const char *end = memchr(name, '\0', FAM_NAME_MAX + 1);
    if (!end)
        return famd_fail(d, FAM_EINVAL, "%s name is longer than %d bytes",
                         what, FAM_NAME_MAX);
    if (end == name && !empty_ok)
        return famd_fail(d, FAM_EINVAL, "%s name is empty", what);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return famd_fail(d, FAM_EINVAL, "%s name holds a control "
                             "character", what);
    return 0;
}

/* Stripes are a power of two from 4 KiB to 1 GiB. */
static int check_stripe(struct famd *d, uint64_t stripe)
{
    if (stripe < 4096 || stripe > (1ull << 30) || (stripe & (stripe - 1)))
        return famd_fail(d, FAM_EINVAL, "stripe size %llu must be a power of "
                         "two from 4 KiB to 1 GiB", (unsigned long long)stripe);
    return 0;
}

static void region_info(struct famd *d, int32_t s, struct famp_info *o)
{
    struct famd_rec *r = &d->recs[s];
    o->id = r->id;
    o->size = atomic_load(&r->size);
    o->used = d->live[s].used;
    o->stripe = r->stripe;
    o->uid = r->uid;
    o->gid = r->gid;
    o->mode = atomic_load(&r->mode);
    o->memtype = r->memtype;
    o->interleave = r->interleave;
    o->nshards = r->nshards ? r->nshards : 1;
    o->total = r->total ? r->total : o->size;
    snprintf(o->name, sizeof o->name, "%s", r->name);
}

/* Fill an item's info, with the key the caller's rights allow. */
static int item_info(struct famd *d, int32_t s, const struct famd_cred *c,
                     int force_rw, struct famp_info *o)
{
    struct famd_rec *r = &d->recs[s];
    int w = force_rw || famd_may(r, c, FAMD_W);
    int rd = force_rw || famd_may(r, c, FAMD_R);
    if (!w && !rd)
        return famd_fail(d, FAM_EPERM, "no permission to access item '%s' "
                         "(mode %03o, owner uid %u; you are uid %u)", r->name,
                         atomic_load(&r->mode), r->uid, c->uid);
    int rc = famd_mr_get(d, s, w, &o->key);
    if (rc) return rc;
    o->id = r->id;
    o->region_id = r->region_id;
    o->size = o->used = atomic_load(&r->size);
    o->uid = r->uid;
    o->gid = r->gid;
    o->mode = atomic_load(&r->mode);
    o->base = famd_item_base(d, s);
    o->flags = w ? FAMP_F_WRITABLE : 0;
    o->pool_off = r->offset;
    o->nshards = r->nshards ? r->nshards : 1;
    o->shard = r->shard;
    o->total = r->nshards > 1 ? r->total : o->size;
    o->stripe = r->stripe;
    snprintf(o->name, sizeof o->name, "%s", r->name);
    return 0;
}

static int bak_info(const struct famd_bak *h, const char *name, struct famp_info *o)
{
    o->size = h->size;
    o->total = h->total;
    o->shard = h->part;
    o->nshards = h->nparts;
    o->stripe = h->stripe;
    o->uid = h->uid;
    o->gid = h->gid;
    o->mode = h->mode;
    o->arg[0] = h->time;
    snprintf(o->name, sizeof o->name, "%s", name);
    return 0;
}

static int region_by_id(struct famd *d, uint64_t id, int32_t *s)
{
    *s = famd_slot_of(d, FAMD_REC_REGION, id);
    if (*s >= 0 && !famd_visible(d, *s)) /* another connection's, pending */
        return famd_fail(d, FAM_EBUSY, "region '%s' is being created by "
                         "another client", d->recs[*s].name);
    if (*s < 0)
        return famd_fail(d, FAM_ENOTFOUND, "no region with id %llu (was it "
                         "destroyed?)", (unsigned long long)id);
    return 0;
}

static int item_by_id(struct famd *d, uint64_t id, int32_t *s)
{
    *s = famd_slot_of(d, FAMD_REC_ITEM, id);
    if (*s >= 0 && !famd_visible(d, *s))
        return famd_fail(d, FAM_EBUSY, "item '%s' is being created by "
                         "another client", d->recs[*s].name);
    if (*s < 0)
        return famd_fail(d, FAM_ENOTFOUND, "no data item with id %llu (was it "
                         "deallocated?)", (unsigned long long)id);
    return 0;
}

static int owner_or_root(struct famd *d, struct famd_rec *r,
                         const struct famd_cred *c, const char *what)
{
    if (c->uid == 0 || c->uid == r->uid) return 0;
    return famd_fail(d, FAM_EPERM, "only the owner (uid %u) may change the "
                     "permissions of %s '%s'", r->uid, what, r->name);
}

static int may_or_fail(struct famd *d, struct famd_rec *r,
                       const struct famd_cred *c, int want, const char *verb,
                       const char *what)
{
    if (famd_may(r, c, want)) return 0;
    /* the connection creating a part may roll it back whatever its bits */
    int32_t s = (int32_t)(r - d->recs);
    if (atomic_load(&r->pending) && d->conn && d->live[s].owner == d->conn)
        return 0;
    return famd_fail(d, FAM_EPERM, "no permission to %s %s '%s' (mode %03o, "
                     "owner uid %u; you are uid %u)", verb, what, r->name,
                     atomic_load(&r->mode), r->uid, c->uid);
}

/* Item `name` in region `region` that the caller may see; with `home`, the
 * part belonging to that home part. Several region parts of one name may
 * sit here when a crash left an orphan part: the first one found is tried
 * first, the others (a scan, rare) only if the item is not in it. */
static int32_t find_item(struct famd *d, const char *name, const char *region,
                         uint64_t home, int32_t *rs_out)
{
    int32_t rs = famd_lookup(d, FAMD_REC_REGION, 0, region, 0);
    *rs_out = rs;
    if (rs < 0) return -1;
    int32_t it = famd_lookup(d, FAMD_REC_ITEM, d->recs[rs].id, name, home);
    if (it >= 0 || !home) return it;
    for (uint64_t s = 0; s < d->nslots; s++) {
        const struct famd_rec *r = &d->recs[s];
        if ((int32_t)s == rs || r->state != FAMD_REC_REGION ||
            strcmp(r->name, region) || !famd_visible(d, (int32_t)s))
            continue;
        if ((it = famd_lookup(d, FAMD_REC_ITEM, r->id, name, home)) >= 0)
            return it;
    }
    return -1;
}

/* ---- one function per request ------------------------------------------------------
 * Each checks its own fields and the caller's rights, then acts; `o` is
 * zeroed and the error text cleared before it is called (famd_rpc). */

#define RQ(NAME)                                                                 \
    static int NAME(struct famd *d, uint16_t op, const struct famp_req *q,       \
                    const struct famd_cred *c, struct famp_info *o)

/* mode bits of a create or chmod */
static int check_mode(struct famd *d, uint32_t mode)
{
    return mode > 0777 ? famd_fail(d, FAM_EINVAL, "bad permission bits %o", mode) : 0;
}

RQ(rq_region_create)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = check_name(d, q->name, "region", 0))) return rc;
    if (q->size == 0)
        return famd_fail(d, FAM_EINVAL, "region size must be above 0");
    if ((rc = check_mode(d, q->mode))) return rc;
    if (q->memtype > FAM_MEMORY_PERSISTENT || q->interleave > FAM_INTERLEAVE_DISABLE)
        return famd_fail(d, FAM_EINVAL, "bad region attributes");
    if (q->arg[2] > FAMP_MAX_SHARDS)
        return famd_fail(d, FAM_EINVAL, "a region can be striped over at most %d memory "
                         "servers", FAMP_MAX_SHARDS);
    if (q->interleave == FAM_INTERLEAVE_ENABLE && (rc = check_stripe(d, q->stripe)))
        return rc;
    rc = famd_region_create(d, q->name, q->size, c, q->mode, q->memtype, q->interleave,
                            q->stripe, q->arg[2] ? (uint32_t)q->arg[2] : 1, q->id,
                            (q->arg[3] & FAMP_C_PENDING) != 0, &s);
    if (rc) return rc;
    d->recs[s].total = q->arg[0] ? q->arg[0] : q->size;
    region_info(d, s, o);
    return 0;
}

RQ(rq_region_lookup)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = check_name(d, q->name, "region", 0))) return rc;
    if ((s = famd_lookup(d, FAMD_REC_REGION, 0, q->name, q->id)) < 0)
        return famd_fail(d, FAM_ENOTFOUND, "region '%s' not found", q->name);
    if ((rc = may_or_fail(d, &d->recs[s], c, FAMD_R, "look up", "region"))) return rc;
    region_info(d, s, o);
    return 0;
}

RQ(rq_region_stat)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = region_by_id(d, q->id, &s)) ||
        (rc = may_or_fail(d, &d->recs[s], c, FAMD_R, "stat", "region")))
        return rc;
    region_info(d, s, o);
    return 0;
}

RQ(rq_region_destroy)
{
    (void)op;
    (void)o;
    int rc;
    int32_t s;
    if ((rc = region_by_id(d, q->id, &s)) ||
        (rc = may_or_fail(d, &d->recs[s], c, FAMD_W, "destroy", "region")))
        return rc;
    return famd_region_destroy(d, s);
}

RQ(rq_region_resize)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = region_by_id(d, q->id, &s)) ||
        (rc = may_or_fail(d, &d->recs[s], c, FAMD_W, "resize", "region")))
        return rc;
    if (q->size == 0)
        return famd_fail(d, FAM_EINVAL, "region size must be above 0");
    if ((rc = famd_region_resize(d, s, q->size))) return rc;
    d->recs[s].total = q->arg[0] ? q->arg[0] : q->size;
    region_info(d, s, o);
    return 0;
}

RQ(rq_region_chmod)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = region_by_id(d, q->id, &s)) ||
        (rc = owner_or_root(d, &d->recs[s], c, "region")) || (rc = check_mode(d, q->mode)))
        return rc;
    atomic_store(&d->recs[s].mode, q->mode);
    region_info(d, s, o);
    return 0;
}

RQ(rq_item_alloc)
{
    (void)op;
    int rc;
    int32_t s, rs;
    if ((rc = check_name(d, q->name, "item", 1))) return rc;
    if ((rc = region_by_id(d, q->region_id, &rs)) ||
        (rc = may_or_fail(d, &d->recs[rs], c, FAMD_W, "allocate in", "region")))
        return rc;
    if (q->size == 0)
        return famd_fail(d, FAM_EINVAL, "item size must be above 0");
    if ((rc = check_mode(d, q->mode))) return rc;
    struct famd_shardinfo si = {.total = q->arg[0], .shard = (uint32_t)q->arg[1],
                                .nshards = (uint32_t)q->arg[2], .stripe = q->stripe};
    if (si.nshards == 0) { /* not striped */
        si.nshards = 1;
        si.total = q->size;
        si.shard = 0;
        si.stripe = 0;
    }
    if (q->arg[2] > FAMP_MAX_SHARDS || q->arg[1] >= si.nshards || si.total < q->size)
        return famd_fail(d, FAM_EINVAL, "bad stripe description");
    if (si.nshards > 1 && (rc = check_stripe(d, si.stripe))) return rc;
    if ((rc = famd_item_alloc(d, rs, q->name, q->size, c, q->mode, &si, q->id,
                              (q->arg[3] & FAMP_C_PENDING) != 0, &s)))
        return rc;
    /* like open(O_CREAT), the creator may write whatever the mode says */
    if ((rc = item_info(d, s, c, 1, o))) {
        famd_item_free(d, s);
        return rc;
    }
    return 0;
}

RQ(rq_item_lookup)
{
    (void)op;
    int rc;
    int32_t s, rs;
    if ((rc = check_name(d, q->name, "item", 0)) || (rc = check_name(d, q->name2, "region", 0)))
        return rc;
    s = find_item(d, q->name, q->name2, q->id, &rs);
    if (rs < 0)
        return famd_fail(d, FAM_ENOTFOUND, "region '%s' not found", q->name2);
    if (s < 0)
        return famd_fail(d, FAM_ENOTFOUND, "item '%s' not found in region '%s'", q->name,
                         q->name2);
    return item_info(d, s, c, 0, o);
}

RQ(rq_item_stat)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = item_by_id(d, q->id, &s))) return rc;
    return item_info(d, s, c, 0, o);
}

RQ(rq_item_free)
{
    (void)op;
    (void)o;
    int rc;
    int32_t s;
    if ((rc = item_by_id(d, q->id, &s)) ||
        (rc = may_or_fail(d, &d->recs[s], c, FAMD_W, "deallocate", "item")))
        return rc;
    return famd_item_free(d, s);
}

RQ(rq_item_chmod)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = item_by_id(d, q->id, &s)) || (rc = owner_or_root(d, &d->recs[s], c, "item")) ||
        (rc = check_mode(d, q->mode)))
        return rc;
    /* like chmod on an open file: descriptors handed out earlier keep their
     * access; later lookups see the new bits */
    atomic_store(&d->recs[s].mode, q->mode);
    return item_info(d, s, c, 1, o);
}

RQ(rq_cas128)
{
    (void)op;
    int rc;
    int32_t s;
    if ((rc = item_by_id(d, q->id, &s)) ||
        (rc = may_or_fail(d, &d->recs[s], c, FAMD_W, "update", "item")))
        return rc;
    uint64_t size = atomic_load(&d->recs[s].size);
    if (q->off % 16)
        return famd_fail(d, FAM_EINVAL, "128-bit compare-swap at offset %llu: the offset "
                         "must be a multiple of 16", (unsigned long long)q->off);
    if (q->off > size || size - q->off < 16)
        return famd_fail(d, FAM_EOUTOFRANGE, "128-bit compare-swap at offset %llu is past "
                         "the end of '%s' (%llu bytes)", (unsigned long long)q->off,
                         d->recs[s].name, (unsigned long long)size);
    unsigned __int128 *p = (unsigned __int128 *)(void *)(d->base + d->recs[s].offset + q->off);
    unsigned __int128 exp = (unsigned __int128)q->arg[1] << 64 | q->arg[0];
    unsigned __int128 des = (unsigned __int128)q->arg[3] << 64 | q->arg[2];
    unsigned __int128 old = __sync_val_compare_and_swap(p, exp, des);
    o->arg[0] = (uint64_t)old;
    o->arg[1] = (uint64_t)(old >> 64);
    return 0;
}

/* the description of backup `name` after it was written or committed */
static int backup_written(struct famd *d, const char *name, const struct famd_cred *c,
                          struct famp_info *o)
{
    struct famd_bak bak;
    if (famd_backup_stat(d, name, c, &bak))
        return famd_fail(d, FAM_EIO, "backup '%s' was written but cannot be read back", name);
    return bak_info(&bak, name, o);
}

RQ(rq_backup)
{
    (void)op;
    int rc;
    int32_t s;
    bool stage = (q->arg[0] & FAMP_BK_STAGE) != 0;
    if ((rc = item_by_id(d, q->id, &s)) ||
        (rc = may_or_fail(d, &d->recs[s], c, FAMD_R, "back up", "item")) ||
        (rc = check_name(d, q->name2, "backup", 0)) ||
        (rc = famd_backup_write(d, s, q->name2, c, stage)))
        return rc;
    return stage ? 0 /* described at commit */ : backup_written(d, q->name2, c, o);
}

RQ(rq_backup_stat)
{
    (void)op;
    int rc;
    struct famd_bak bak;
    if ((rc = check_name(d, q->name2, "backup", 0)) ||
        (rc = famd_backup_stat(d, q->name2, c, &bak)))
        return rc;
    return bak_info(&bak, q->name2, o);
}

RQ(rq_backup_delete)
{
    (void)op;
    (void)o;
    int rc;
    if ((rc = check_name(d, q->name2, "backup", 0))) return rc;
    return famd_backup_delete(d, q->name2, c);
}

RQ(rq_backup_list)
{
    (void)op;
    int rc;
    struct famd_bak bak;
    char name[FAM_NAME_MAX + 1];
    if ((rc = famd_backup_list(d, q->off, c, &bak, name, sizeof name))) return rc;
    return bak_info(&bak, name, o);
}

RQ(rq_item_list)
{
    (void)op;
    int rc;
    int32_t rs;
    /* like ls: reading a region's names needs read permission on the
     * region; the items' own bits still guard their bytes */
    if ((rc = region_by_id(d, q->id, &rs)) ||
        (rc = may_or_fail(d, &d->recs[rs], c, FAMD_R, "list the items of", "region")))
        return rc;
    for (uint64_t i = q->off; i < d->nslots; i++) {
        const struct famd_rec *r = &d->recs[i];
        if (atomic_load(&r->state) != FAMD_REC_ITEM || r->unnamed || r->region_id != q->id ||
            !r->name[0] || !famd_visible(d, (int32_t)i))
            continue;
        o->id = r->id;
        o->region_id = r->region_id;
        o->size = o->used = atomic_load(&r->size);
        o->uid = r->uid;
        o->gid = r->gid;
        o->mode = atomic_load(&r->mode);
        o->nshards = r->nshards ? r->nshards : 1;
        o->shard = r->shard;
        o->total = r->nshards > 1 ? r->total : o->size;
        o->stripe = r->stripe;
        o->arg[0] = i;
        snprintf(o->name, sizeof o->name, "%s", r->name);
        return 0;
    }
    return famd_fail(d, FAM_ENOTFOUND, "no more items in region '%s'", d->recs[rs].name);
}

RQ(rq_commit)
{
    (void)op;
    (void)c;
    (void)o;
    return famd_commit(d, q->id);
}

/* FAMP_BACKUP_COMMIT and FAMP_BACKUP_ABORT */
RQ(rq_backup_commit)
{
    int rc;
    bool abort = op == FAMP_BACKUP_ABORT;
    if ((rc = check_name(d, q->name2, "backup", 0)) ||
        (rc = famd_backup_commit(d, q->name2, c, abort)))
        return rc;
    return abort ? 0 : backup_written(d, q->name2, c, o);
}

RQ(rq_part_list)
{
    (void)op;
    /* the other parts of multi-server regions and items, for the clean-up
     * of orphans (fam_cleanup): the caller's own, or all for root; anyone
     * may remove only what the bits let them */
    for (uint64_t i = q->off; i < d->nslots; i++) {
        const struct famd_rec *r = &d->recs[i];
        uint64_t st = atomic_load(&r->state);
        if ((st != FAMD_REC_ITEM && st != FAMD_REC_REGION) || !r->home_id ||
            atomic_load(&r->pending) || (c->uid != 0 && c->uid != r->uid))
            continue;
        o->id = r->id;
        o->region_id = st == FAMD_REC_ITEM ? r->region_id : 0;
        o->uid = r->uid;
        o->gid = r->gid;
        o->mode = atomic_load(&r->mode);
        o->shard = r->shard;
        o->nshards = r->nshards ? r->nshards : 1;
        o->flags = st == FAMD_REC_REGION ? FAMP_F_REGION : 0;
        o->arg[0] = i;
        o->arg[1] = r->home_id;
        snprintf(o->name, sizeof o->name, "%s", r->name);
        return 0;
    }
    return famd_fail(d, FAM_ENOTFOUND, "no more parts");
}

typedef int (*famd_rq_fn)(struct famd *d, uint16_t op, const struct famp_req *q,
                          const struct famd_cred *c, struct famp_info *o);

/* The control requests famd_rpc answers, by op (HELLO and WAKE are the
 * connection's business: famd_main.c). */
static const famd_rq_fn famd_requests[] = {
    [FAMP_REGION_CREATE] = rq_region_create,
    [FAMP_REGION_LOOKUP] = rq_region_lookup,
    [FAMP_REGION_DESTROY] = rq_region_destroy,
    [FAMP_REGION_RESIZE] = rq_region_resize,
    [FAMP_REGION_CHMOD] = rq_region_chmod,
    [FAMP_REGION_STAT] = rq_region_stat,
    [FAMP_ITEM_ALLOC] = rq_item_alloc,
    [FAMP_ITEM_LOOKUP] = rq_item_lookup,
    [FAMP_ITEM_FREE] = rq_item_free,
    [FAMP_ITEM_CHMOD] = rq_item_chmod,
    [FAMP_ITEM_STAT] = rq_item_stat,
    [FAMP_CAS128] = rq_cas128,
    [FAMP_BACKUP] = rq_backup,
    [FAMP_BACKUP_STAT] = rq_backup_stat,
    [FAMP_BACKUP_DELETE] = rq_backup_delete,
    [FAMP_BACKUP_LIST] = rq_backup_list,
    [FAMP_ITEM_LIST] = rq_item_list,
    [FAMP_COMMIT] = rq_commit,
    [FAMP_BACKUP_COMMIT] = rq_backup_commit,
    [FAMP_BACKUP_ABORT] = rq_backup_commit,
    [FAMP_PART_LIST] = rq_part_list,
};

int famd_rpc(struct famd *d, uint16_t op, const struct famp_req *q,
             const struct famd_cred *c, struct famp_info *o)
{
    memset(o, 0, sizeof *o);
    d->err[0] = '\0';
    size_t n = sizeof famd_requests / sizeof famd_requests[0];
    if (op >= n || !famd_requests[op])
        return famd_fail(d, FAM_EPROTO, "unknown request %u", op);
    return famd_requests[op](d, op, q, c, o);
}
