/* SPDX-License-Identifier: Apache-2.0 */
/* fam_backup.c — backup, restore, list and delete of data items.
 *
 * The memory servers do the work (famd_backup.c): a backup of an item is
 * one file per part, on the server holding that part. A restore is a bulk
 * request to the server holding each part of the backup, which checks the
 * whole backup and then writes the part into the destination — into its
 * own pool, or with RMA into another server's. The bytes never pass
 * through the client. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fam_internal.h"

static int check_backup_name(const char *name)
{
    fam_clear_error();
    if (!name || !*name) return fam_fail(FAM_EINVAL, "backup name is empty");
    if (strlen(name) > 200)
        return fam_fail(FAM_EINVAL, "backup name is longer than 200 bytes");
    return 0;
}

/* Where the parts of backup `name` are: srv_of[p] = server of part p. */
struct found {
    int nparts;
    int srv_of[FAMP_MAX_SHARDS];
    struct famp_info part0; /* what part 0's server said */
    uint64_t part_size[FAMP_MAX_SHARDS];
};

static int find_backup(fam_t *f, const char *name, struct found *fd)
{
    memset(fd, 0, sizeof *fd);
    for (int p = 0; p < FAMP_MAX_SHARDS; p++) fd->srv_of[p] = -1;
    int seen = 0, other_err = 0;
    char other_msg[FAMP_MAX_ERRMSG] = "";
    for (int i = 0; i < f->nservers; i++) {
        struct famp_req q = {0};
        struct famp_info o;
        snprintf(q.name2, sizeof q.name2, "%s", name);
        int rc = fam_rpc(f, i, FAMP_BACKUP_STAT, &q, &o);
        if (rc == FAM_ENOTFOUND || rc == FAM_ENOTSUP) continue;
        if (rc) { /* damaged, or no permission: report it if nothing else */
            if (!other_err) {
                other_err = rc;
                snprintf(other_msg, sizeof other_msg, "%s", fam_last_error());
            }
            continue;
        }
        if (o.nshards == 0 || o.nshards > FAMP_MAX_SHARDS || o.shard >= o.nshards ||
            (seen && (int)o.nshards != fd->nparts))
            return fam_fail(FAM_EIO, "the parts of backup '%s' do not belong "
                            "together", name);
        fd->nparts = (int)o.nshards;
        fd->srv_of[o.shard] = i;
        fd->part_size[o.shard] = o.size;
        if (o.shard == 0) fd->part0 = o;
        seen++;
    }
    if (other_err) return fam_fail(other_err, "%s", other_msg);
    if (!seen) return fam_fail(FAM_ENOTFOUND, "backup '%s' not found", name);
    for (int p = 0; p < fd->nparts; p++)
        if (fd->srv_of[p] < 0)
            return fam_fail(FAM_EIO, "backup '%s' is incomplete: part %d of %d "
                            "is missing", name, p, fd->nparts);
    return 0;
}

/* One part: written in place at once (famd writes a temporary file and
 * renames it, so the old backup or the new one is there, never half).
 * Several parts: each server stages its part (written and fsync'd under a
 * temporary name); only when all succeeded does each put its part in
 * place, so a failure anywhere (a full disk on one server) leaves the old
 * backup whole. docs/PROTOCOL.md, "Backups". */
int fam_backup(fam_t *f, fam_item_t *d, const char *name)
{
    int rc = check_backup_name(name);
    if (rc) return rc;
    if (!f || !d) return fam_fail(FAM_EINVAL, "backup: NULL fam_t or descriptor");
    struct famp_req q = {0};
    struct famp_info o;
    snprintf(q.name2, sizeof q.name2, "%s", name);
    if (d->nparts == 1) {
        q.id = d->part[0].id;
        return fam_rpc(f, d->part[0].server, FAMP_BACKUP, &q, &o);
    }
    int staged = 0;
    q.arg[0] = FAMP_BK_STAGE;
    for (; staged < d->nparts; staged++) {
        q.id = d->part[staged].id;
        if ((rc = fam_rpc(f, d->part[staged].server, FAMP_BACKUP, &q, &o)))
            break;
    }
    int committed = 0;
    if (!rc) {
        q.id = 0;
        q.arg[0] = 0;
        for (; committed < d->nparts; committed++)
            if ((rc = fam_rpc(f, d->part[committed].server, FAMP_BACKUP_COMMIT,
                              &q, &o)))
                break;
    }
    if (!rc) return 0;
    char keep[FAMP_MAX_ERRMSG];
    snprintf(keep, sizeof keep, "%s", fam_last_error());
    struct famp_req u = {0};
    snprintf(u.name2, sizeof u.name2, "%s", name);
    for (int j = committed; j < staged; j++) /* drop what is not in place */
        fam_rpc(f, d->part[j].server, FAMP_BACKUP_ABORT, &u, &o);
    if (committed == 0)
        return fam_fail(rc, "backup '%s' not made (any older backup of that "
                        "name is unchanged): part %d of %d on memory server "
                        "%s:%d: %s", name, staged, d->nparts,
                        f->srv[d->part[staged].server].host,
                        f->srv[d->part[staged].server].port, keep);
    /* a rename failed after others succeeded: the parts now differ */
    return fam_fail(rc, "backup '%s' is damaged: part %d of %d could not be "
                    "put in place (%s); delete it and back up again", name,
                    committed, d->nparts, keep);
}

int fam_restore(fam_t *f, const char *name, fam_item_t *d)
{
    int rc = check_backup_name(name);
    if (rc) return rc;
    if (!f || !d) return fam_fail(FAM_EINVAL, "restore: NULL fam_t or descriptor");
    if (!d->writable)
        return fam_fail(FAM_EPERM, "no permission to write item '%s' (it was "
                        "opened read-only)", d->name);
    struct found *fd = malloc(sizeof *fd);
    if (!fd) return fam_fail(FAM_ENOMEM, "out of memory");
    if ((rc = find_backup(f, name, fd))) goto out;
    uint64_t total = fd->part0.total;
    if (total != d->size) {
        rc = fam_fail(FAM_EINVAL, "backup '%s' holds %llu bytes; item '%s' has "
                      "%llu", name, (unsigned long long)total, d->name,
                      (unsigned long long)d->size);
        goto out;
    }
    if (fd->nparts != d->nparts || (d->nparts > 1 && fd->part0.stripe != d->stripe)) {
        rc = fam_fail(FAM_EINVAL, "backup '%s' is striped over %d servers "
                      "(stripe %llu); item '%s' over %d (stripe %llu): restore "
                      "into an item of the same layout", name, fd->nparts,
                      (unsigned long long)fd->part0.stripe, d->name, d->nparts,
                      (unsigned long long)d->stripe);
        goto out;
    }
    struct breq *r = calloc((size_t)d->nparts, sizeof *r);
    if (!r) { rc = fam_fail(FAM_ENOMEM, "out of memory"); goto out; }
    int posted = 0;
    /* one deadline for the whole restore, as for a copy (fam_bulk.c) */
    uint64_t budget_ms = (uint64_t)f->timeout_ms;
    uint64_t deadline_us = fam_now_us() + budget_ms * 1000u;
    pthread_mutex_lock(&f->flock);
    rc = fam_fabric_ready(f);
    for (int p = 0; p < d->nparts && !rc; p++) {
        struct fam_part *dp = &d->part[p];
        int hs = fd->srv_of[p];
        uint8_t *msg = calloc(1, sizeof(struct famp_bulk));
        if (!msg) { rc = fam_fail(FAM_ENOMEM, "out of memory"); break; }
        struct famp_bulk *q = (struct famp_bulk *)(void *)msg;
        q->op = FAMP_B_RESTORE;
        snprintf(q->name, sizeof q->name, "%s", name);
        q->len = dp->size;
        q->dst_key = dp->key;
        if (hs == dp->server) {
            q->dst_id = dp->id;
        } else {
            struct fam_server *ds = &f->srv[dp->server];
            q->dst_addrlen = ds->faddrlen;
            memcpy(q->dst_addr, ds->faddr, ds->faddrlen);
            q->dst_addr_rma = ds->virt_addr ? dp->base : 0;
        }
        q->n = fam_budget_left_ms(deadline_us); /* famd answers by then */
        q->esize = fam_wall_ms();               /* counted from now */
        fam_wake_first(f, hs);                  /* famd awake after a long idle */
        fam_wake_always(f, hs);                 /* and seeing this at once, tcp too */
        if ((rc = fam_breq_post_by(f, &r[p], hs, msg, sizeof *q, NULL, 0, deadline_us))) {
            free(msg);
            break;
        }
        r[p].also_wake = hs != dp->server ? dp->server : -1;
        r[p].deadline_us = deadline_us;
        posted++;
    }
    for (int p = 0; p < posted; p++) {
        int e = fam_breq_wait(f, &r[p]);
        if (e) e = fam_xfer_fail(f, &r[p], e, "restore", budget_ms);
        if (e && !rc) rc = e;
    }
    pthread_mutex_unlock(&f->flock);
    free(r);
out:
    free(fd);
    return rc;
}

int fam_stat_backup(fam_t *f, const char *name, fam_backup_info_t *info)
{
    int rc = check_backup_name(name);
    if (rc) return rc;
    if (!f || !info) return fam_fail(FAM_EINVAL, "stat_backup: NULL argument");
    struct found *fd = malloc(sizeof *fd);
    if (!fd) return fam_fail(FAM_ENOMEM, "out of memory");
    if (!(rc = find_backup(f, name, fd))) {
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", name);
        info->size = fd->part0.total;
        info->uid = fd->part0.uid;
        info->gid = fd->part0.gid;
        info->perm = fd->part0.mode;
        info->time = fd->part0.arg[0];
        info->num_servers = (uint32_t)fd->nparts;
        info->stripe_size = fd->nparts > 1 ? fd->part0.stripe : 0;
    }
    free(fd);
    return rc;
}

int fam_restore_new(fam_t *f, const char *name, fam_region_t *r,
                    const char *item, mode_t perm, fam_item_t **out)
{
    fam_backup_info_t info;
    if (!out) return fam_fail(FAM_EINVAL, "restore: out is NULL");
    int rc = fam_stat_backup(f, name, &info);
    if (rc) return rc;
    fam_item_t *d;
    if ((rc = fam_allocate(f, item, info.size, perm, r, &d))) return rc;
    if ((rc = fam_restore(f, name, d))) {
        char keep[FAMP_MAX_ERRMSG];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_deallocate(f, d);
        return fam_fail(rc, "%s", keep);
    }
    *out = d;
    return 0;
}

int fam_delete_backup(fam_t *f, const char *name)
{
    int rc = check_backup_name(name);
    if (rc) return rc;
    if (!f) return fam_fail(FAM_EINVAL, "fam_t is NULL");
    int deleted = 0, err = 0;
    char msg[FAMP_MAX_ERRMSG] = "";
    for (int i = 0; i < f->nservers; i++) {
        struct famp_req q = {0};
        struct famp_info o;
        snprintf(q.name2, sizeof q.name2, "%s", name);
        rc = fam_rpc(f, i, FAMP_BACKUP_DELETE, &q, &o);
        if (rc == 0) deleted++;
        else if (rc != FAM_ENOTFOUND && rc != FAM_ENOTSUP && !err) {
            err = rc;
            snprintf(msg, sizeof msg, "%s", fam_last_error());
        }
    }
    if (err) return fam_fail(err, "%s", msg);
    if (!deleted) return fam_fail(FAM_ENOTFOUND, "backup '%s' not found", name);
    return 0;
}

int fam_list_backups(fam_t *f, fam_backup_info_t **list, size_t *n)
{
    fam_clear_error();
    if (!f || !list || !n) return fam_fail(FAM_EINVAL, "list_backups: NULL argument");
    *list = NULL;
    *n = 0;
    size_t cap = 0;
    for (int i = 0; i < f->nservers; i++) {
        for (uint64_t k = 0;; k++) {
            struct famp_req q = {0};
            struct famp_info o;
            q.off = k;
            int rc = fam_rpc(f, i, FAMP_BACKUP_LIST, &q, &o);
            if (rc == FAM_ENOTFOUND || rc == FAM_ENOTSUP) break;
            if (rc) { free(*list); *list = NULL; *n = 0; return rc; }
            if (o.shard != 0) continue; /* a striped backup: listed by part 0 */
            if (*n == cap) {
                fam_backup_info_t *nl = realloc(*list, (cap = cap ? 2 * cap : 16) * sizeof *nl);
                if (!nl) { free(*list); *list = NULL; *n = 0;
                           return fam_fail(FAM_ENOMEM, "out of memory"); }
                *list = nl;
            }
            fam_backup_info_t *b = &(*list)[(*n)++];
            memset(b, 0, sizeof *b);
            snprintf(b->name, sizeof b->name, "%s", o.name);
            b->size = o.total;
            b->uid = o.uid;
            b->gid = o.gid;
            b->perm = o.mode;
            b->time = o.arg[0];
            b->num_servers = o.nshards;
            b->stripe_size = o.nshards > 1 ? o.stripe : 0;
        }
    }
    return 0;
}
