/* SPDX-License-Identifier: Apache-2.0 */
/* famd_backup.c — backups of data items in famd's --data-dir.
 *
 * A backup is one file, DIR/NAME.fambak: a header (struct famd_bak) with the
 * item's metadata and a CRC-32 of the data (zlib), then the item's bytes.
 * It is written to a temporary file, flushed with fsync and renamed into
 * place, so a crash leaves either the old backup or the new one, never a
 * half-written file under the name. A striped item's backup is one file per
 * memory server, each holding that server's part; the header says which.
 *
 * Replacing a striped backup is two-phase (docs/PROTOCOL.md, "Backups"):
 * each server first stages its part in a temporary file (fsync'd) and only
 * when every server succeeded does the client ask each to rename its part
 * into place; a failure anywhere removes the staged parts and the old
 * backup stays whole. A staged part belongs to the control connection
 * that made it and goes when that connection closes. Temporary files are
 * named .NAME.PID-N.fambak-tmp (a backup name never starts with '.'); the
 * ones a crash left behind are removed when famd starts and stops.
 *
 * A backup is checked before anything is restored from it: the header's
 * own CRC, its fields, the file's length, and the CRC of all the data.
 * A damaged backup is an error; no byte of the destination changes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "famd.h"

#define BAK_MAGIC "KFAMBAK1"
#define BAK_SUFFIX ".fambak"
#define BAK_IO (1u << 20) /* bytes per read or write */
#define BAK_TMP_SUFFIX ".fambak-tmp"

/* Backup names: letters, digits, '.', '_' and '-', not starting with '.',
 * so a name is always one plain file inside the data directory. */
int famd_backup_name_ok(struct famd *d, const char *name)
{
    const char *end = memchr(name, '\0', FAM_NAME_MAX + 1);
    size_t n = end ? (size_t)(end - name) : FAM_NAME_MAX + 1;
    if (n == 0 || n > 200)
        return famd_fail(d, FAM_EINVAL, "backup name must have 1 to 200 characters");
    if (name[0] == '.')
        return famd_fail(d, FAM_EINVAL, "backup name may not start with '.'");
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return famd_fail(d, FAM_EINVAL, "backup name '%.*s' may hold only "
                             "letters, digits, '.', '_' and '-'", (int)n, name);
    }
    return 0;
}

static int need_dir(struct famd *d)
{
    if (!d->data_dir)
        return famd_fail(d, FAM_ENOTSUP, "this memory server was started "
                         "without --data-dir: it keeps no backups");
    return 0;
}

static void bak_path(struct famd *d, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s" BAK_SUFFIX, d->data_dir, name);
}

static uint32_t hdr_crc(const struct famd_bak *h)
{
    struct famd_bak c = *h;
    c.hdr_crc = 0;
    return (uint32_t)crc32(0L, (const Bytef *)&c, sizeof c);
}

/* May c read (want FAMD_R) or delete/replace (FAMD_W) backup h? As for the
 * item it was made from: its owner and mode, saved in the header. */
static int bak_may(struct famd *d, const struct famd_bak *h,
                   const struct famd_cred *c, int want, const char *name)
{
    struct famd_rec r = {0};
    r.uid = h->uid;
    r.gid = h->gid;
    atomic_store(&r.mode, h->mode);
    if (famd_may(&r, c, want)) return 0;
    return famd_fail(d, FAM_EPERM, "no permission to %s backup '%s' (mode %03o, "
                     "owner uid %u; you are uid %u)",
                     want == FAMD_R ? "read" : "replace or delete", name,
                     h->mode, h->uid, c->uid);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n)
{
    char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Open backup `name` and check everything but the data's CRC; on success
 * *fd is positioned at the first data byte. */
static int bak_open_hdr(struct famd *d, const char *name, struct famd_bak *h, int *fd)
{
    char path[4200];
    int rc;
    if ((rc = need_dir(d)) || (rc = famd_backup_name_ok(d, name))) return rc;
    bak_path(d, name, path, sizeof path);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return famd_fail(d, errno == ENOENT ? FAM_ENOTFOUND : FAM_EIO,
                         "backup '%s' %s", name, errno == ENOENT ?
                         "not found" : strerror(errno));
    struct stat st;
    if (read_all(*fd, h, sizeof *h) || memcmp(h->magic, BAK_MAGIC, 8) ||
        h->version != 1 || hdr_crc(h) != h->hdr_crc || fstat(*fd, &st) ||
        (uint64_t)st.st_size != sizeof *h + h->size || h->nparts == 0 ||
        h->part >= h->nparts || h->size > h->total ||
        !memchr(h->item, '\0', sizeof h->item)) {
        close(*fd);
        *fd = -1;
        return famd_fail(d, FAM_EIO, "backup '%s' is damaged (bad header or "
                         "length)", name);
    }
    return 0;
}

int famd_backup_stat(struct famd *d, const char *name, const struct famd_cred *c,
                     struct famd_bak *h)
{
    int fd, rc = bak_open_hdr(d, name, h, &fd);
    if (rc) return rc;
    close(fd);
    return bak_may(d, h, c, FAMD_R, name);
}

/* Open a backup for restoring: header checked, permission checked, and the
 * CRC of all its data verified. *fd is left at the first data byte. */
int famd_backup_open(struct famd *d, const char *name, const struct famd_cred *c,
                     struct famd_bak *h, int *fd)
{
    int rc = bak_open_hdr(d, name, h, fd);
    if (rc) return rc;
    if ((rc = bak_may(d, h, c, FAMD_R, name))) goto fail;
    uint8_t *buf = malloc(BAK_IO);
    if (!buf) { rc = famd_fail(d, FAM_ENOMEM, "out of memory"); goto fail; }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t left = h->size; left;) {
        size_t n = left < BAK_IO ? (size_t)left : BAK_IO;
        if (read_all(*fd, buf, n)) {
            free(buf);
            rc = famd_fail(d, FAM_EIO, "backup '%s' is damaged (short)", name);
            goto fail;
        }
        crc = crc32(crc, buf, (uInt)n);
        left -= n;
    }
    free(buf);
    if ((uint32_t)crc != h->data_crc) {
        rc = famd_fail(d, FAM_EIO, "backup '%s' is damaged (its data does not "
                       "match its checksum)", name);
        goto fail;
    }
    lseek(*fd, (off_t)sizeof *h, SEEK_SET);
    return 0;
fail:
    close(*fd);
    *fd = -1;
    return rc;
}

static void sync_dir(struct famd *d)
{
    int dfd = open(d->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself survives a crash */
        close(dfd);
    }
}

static void stage_unlink(struct famd *d, const struct famd_stage *st)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s/%s", d->data_dir, st->tmp);
    unlink(tmp);
}

/* Is directory entry `leaf` a backup, NAME.fambak? Then NAME in name
 * (FAM_NAME_MAX + 1 bytes). */
static int backup_leaf(const char *leaf, char *name)
{
    size_t l = strlen(leaf), sl = strlen(BAK_SUFFIX);
    if (l <= sl || strcmp(leaf + l - sl, BAK_SUFFIX) || l - sl > FAM_NAME_MAX) return 0;
    memcpy(name, leaf, l - sl);
    name[l - sl] = '\0';
    return 1;
}

/* Bytes of backups uid holds in data_dir: its backup files (by the
 * owner in each header) and the parts it is staging, less the backup
 * `replacing` (the name being written again, if it is uid's: it goes when
 * the new one is put in place). Read from the directory each time, so
 * nothing to keep in step with files made, replaced or deleted, or left
 * by an earlier famd. */
static uint64_t backup_bytes_of(struct famd *d, uint32_t uid, const char *replacing)
{
    uint64_t used = 0;
    DIR *dir = opendir(d->data_dir);
    if (!dir) return 0;
    char name[FAM_NAME_MAX + 1];
    for (struct dirent *e; (e = readdir(dir));) {
        if (!backup_leaf(e->d_name, name) || !strcmp(name, replacing)) continue;
        struct famd_bak h;
        int fd;
        if (bak_open_hdr(d, name, &h, &fd)) continue; /* damaged: root deletes it */
        struct stat st;
        if (h.uid == uid && fstat(fd, &st) == 0) used += (uint64_t)st.st_size;
        close(fd);
    }
    closedir(dir);
    for (int i = 0; d->stage && i < FAMD_MAX_STAGED; i++) {
        char tmp[4400];
        struct stat st;
        snprintf(tmp, sizeof tmp, "%s/%s", d->data_dir, d->stage[i].tmp);
        if (d->stage[i].conn && d->stage[i].uid == uid && stat(tmp, &st) == 0)
            used += (uint64_t)st.st_size;
    }
    d->err[0] = '\0';
    return used;
}

/* May c write a backup of `bytes` bytes called `name`? (--quota-backup-bytes;
 * root and famd's own uid are not held to it, as to the pool's quotas) */
static int backup_quota_check(struct famd *d, const struct famd_cred *c, const char *name,
                              uint64_t bytes)
{
    uint64_t q = d->quota_backup_bytes;
    if (!q || c->uid == 0 || c->uid == (uint32_t)geteuid()) return 0;
    uint64_t used = backup_bytes_of(d, c->uid, name);
    if (bytes > q || used > q - bytes)
        return famd_fail(d, FAM_ENOSPACE, "cannot write backup '%s' of %llu bytes: "
                         "uid %u holds %llu bytes of backups on this memory server "
                         "and its quota is %llu (famd --quota-backup-bytes)", name,
                         (unsigned long long)bytes, c->uid, (unsigned long long)used,
                         (unsigned long long)q);
    return 0;
}

int famd_backup_write(struct famd *d, int32_t slot, const char *name,
                      const struct famd_cred *c, int staged)
{
    int rc;
    if ((rc = need_dir(d)) || (rc = famd_backup_name_ok(d, name))) return rc;
    struct famd_rec *r = &d->recs[slot];
    struct famd_bak h = {0}, old;
    char path[4200], tmp[4400];
    bak_path(d, name, path, sizeof path);
    int ofd;
    if (bak_open_hdr(d, name, &old, &ofd) == 0) { /* replacing: must be allowed */
        close(ofd);
        if ((rc = bak_may(d, &old, c, FAMD_W, name))) return rc;
    }
    d->err[0] = '\0';
    if ((rc = backup_quota_check(d, c, name, sizeof h + atomic_load(&r->size)))) return rc;
    memcpy(h.magic, BAK_MAGIC, 8);
    h.version = 1;
    h.size = atomic_load(&r->size);
    h.nparts = r->nshards ? r->nshards : 1;
    h.part = r->shard;
    h.total = h.nparts > 1 ? r->total : h.size;
    h.stripe = r->stripe;
    h.uid = c->uid; /* the backup belongs to whoever made it */
    h.gid = c->gid;
    h.mode = atomic_load(&r->mode);
    h.time = (uint64_t)time(NULL);
    snprintf(h.item, sizeof h.item, "%s", r->name);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t at = 0; at < h.size;) {
        uint64_t n = h.size - at < BAK_IO ? h.size - at : BAK_IO;
        crc = crc32(crc, d->base + r->offset + at, (uInt)n);
        at += n;
    }
    h.data_crc = (uint32_t)crc;
    h.hdr_crc = hdr_crc(&h);
    char leaf[FAM_NAME_MAX + 64];
    snprintf(leaf, sizeof leaf, ".%s.%d-%llu" BAK_TMP_SUFFIX, name,
             (int)getpid(), (unsigned long long)++d->stage_serial);
    snprintf(tmp, sizeof tmp, "%s/%s", d->data_dir, leaf);
    struct famd_stage *st = NULL;
    if (staged) { /* a place to remember it, replacing an earlier one */
        if (!d->stage && !(d->stage = calloc(FAMD_MAX_STAGED, sizeof *d->stage)))
            return famd_fail(d, FAM_ENOMEM, "out of memory");
        for (int i = 0; i < FAMD_MAX_STAGED && !st; i++)
            if (d->stage[i].conn == d->conn && !strcmp(d->stage[i].name, name))
                st = &d->stage[i];
        if (st) {
            stage_unlink(d, st);
            st->conn = 0;
        }
        int mine = 0;
        for (int i = 0; i < FAMD_MAX_STAGED; i++)
            mine += d->stage[i].conn && d->stage[i].uid == c->uid;
        if (mine >= FAMD_MAX_STAGED_UID)
            return famd_fail(d, FAM_ENOSPACE, "cannot stage backup '%s': uid "
                             "%u is writing %d backups to this memory server "
                             "already", name, c->uid, mine);
        for (int i = 0; i < FAMD_MAX_STAGED && !st; i++)
            if (!d->stage[i].conn) st = &d->stage[i];
        if (!st)
            return famd_fail(d, FAM_ENOSPACE, "cannot stage backup '%s': %d "
                             "backups are being written to this memory server "
                             "already", name, FAMD_MAX_STAGED);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return famd_fail(d, FAM_EIO, "cannot write backup '%s' in %s: %s", name,
                         d->data_dir, strerror(errno));
    if (write_all(fd, &h, sizeof h) ||
        write_all(fd, d->base + r->offset, h.size) || fsync(fd)) {
        rc = famd_fail(d, FAM_EIO, "cannot write backup '%s' (%llu bytes) in "
                       "%s: %s", name, (unsigned long long)(sizeof h + h.size),
                       d->data_dir, strerror(errno));
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (staged) {
        st->conn = d->conn;
        st->uid = c->uid;
        snprintf(st->name, sizeof st->name, "%s", name);
        snprintf(st->tmp, sizeof st->tmp, "%s", leaf);
        return 0;
    }
    d->backup_gen++;
    if (rename(tmp, path)) {
        rc = famd_fail(d, FAM_EIO, "cannot write backup '%s': %s", name,
                       strerror(errno));
        unlink(tmp);
        return rc;
    }
    sync_dir(d);
    return 0;
}

/* Put the part this connection staged for backup `name` in place, or
 * (abort) remove it. */
int famd_backup_commit(struct famd *d, const char *name,
                       const struct famd_cred *c, int abort)
{
    int rc;
    if ((rc = need_dir(d)) || (rc = famd_backup_name_ok(d, name))) return rc;
    struct famd_stage *st = NULL;
    for (int i = 0; d->stage && i < FAMD_MAX_STAGED && !st; i++)
        if (d->stage[i].conn && d->stage[i].conn == d->conn &&
            !strcmp(d->stage[i].name, name))
            st = &d->stage[i];
    if (!st)
        return famd_fail(d, FAM_ENOTFOUND, "no part of backup '%s' is staged "
                         "by this connection", name);
    st->conn = 0;
    if (abort) {
        stage_unlink(d, st);
        return 0;
    }
    /* checked when staged; again, in case a backup of that name appeared
     * since (another user's, which we may not replace) */
    struct famd_bak old;
    int ofd;
    if (bak_open_hdr(d, name, &old, &ofd) == 0) {
        close(ofd);
        if ((rc = bak_may(d, &old, c, FAMD_W, name))) {
            stage_unlink(d, st);
            return rc;
        }
    }
    d->err[0] = '\0';
    char path[4200], tmp[4400];
    bak_path(d, name, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s/%s", d->data_dir, st->tmp);
    d->backup_gen++;
    if (rename(tmp, path)) {
        rc = famd_fail(d, FAM_EIO, "cannot put backup '%s' in place: %s", name,
                       strerror(errno));
        unlink(tmp);
        return rc;
    }
    sync_dir(d);
    return 0;
}

static void list_drop(struct famd *d);

/* A control connection closed: its staged parts go. */
void famd_backup_conn_gone(struct famd *d, uint64_t conn)
{
    for (int i = 0; d->stage && i < FAMD_MAX_STAGED; i++)
        if (d->stage[i].conn == conn) {
            stage_unlink(d, &d->stage[i]);
            d->stage[i].conn = 0;
        }
}

/* Remove the temporary files of backups a famd left in data_dir when it
 * was killed while writing one (also those named as older famds named
 * them, NAME.fambak.tmpPID). At start, and at stop (after every connection
 * closed, so nothing staged is still wanted). */
void famd_backup_clean(struct famd *d)
{
    free(d->stage);
    d->stage = NULL;
    list_drop(d);
    if (!d->data_dir) return;
    DIR *dir = opendir(d->data_dir);
    if (!dir) return;
    int dfd = dirfd(dir), n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t l = strlen(e->d_name), sl = strlen(BAK_TMP_SUFFIX);
        int ours = (l > sl && !strcmp(e->d_name + l - sl, BAK_TMP_SUFFIX)) ||
                   strstr(e->d_name, BAK_SUFFIX ".tmp") != NULL;
        if (ours && unlinkat(dfd, e->d_name, 0) == 0) n++;
    }
    closedir(dir);
    if (n)
        fprintf(stderr, "famd: removed %d unfinished backup file(s) from %s\n",
                n, d->data_dir);
}

int famd_backup_delete(struct famd *d, const char *name, const struct famd_cred *c)
{
    struct famd_bak h;
    int fd, rc = bak_open_hdr(d, name, &h, &fd);
    if (rc == FAM_EIO && d->data_dir) { /* a damaged backup may be deleted by root */
        if (c->uid != 0) return rc;
    } else if (rc) {
        return rc;
    } else {
        close(fd);
        if ((rc = bak_may(d, &h, c, FAMD_W, name))) return rc;
    }
    char path[4200];
    bak_path(d, name, path, sizeof path);
    d->backup_gen++;
    if (unlink(path))
        return famd_fail(d, FAM_EIO, "cannot delete backup '%s': %s", name,
                         strerror(errno));
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The backups one client may read, by name, as a listing made for the
 * last BACKUP_LIST: a client lists with one request per backup (index 0,
 * 1, ...), and each request used to read the directory and the header of
 * every backup before the one asked for, O(n^2) header reads for a whole
 * listing of n. The listing is kept until famd changes the directory
 * (backup_gen: a backup written, put in place or deleted) or another
 * identity lists. */
struct famd_baklist {
    uint64_t gen;          /* backup_gen it was made at */
    struct famd_cred who;  /* whose listing it is */
    char **names;          /* the backups `who` may read, sorted */
    size_t n;
};

static void list_drop(struct famd *d)
{
    struct famd_baklist *l = d->baklist;
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    free(l);
    d->baklist = NULL;
}

static int list_make(struct famd *d, const struct famd_cred *c)
{
    list_drop(d);
    DIR *dir = opendir(d->data_dir);
    if (!dir)
        return famd_fail(d, FAM_EIO, "cannot read %s: %s", d->data_dir,
                         strerror(errno));
    struct famd_baklist *l = calloc(1, sizeof *l);
    if (!l) {
        closedir(dir);
        return famd_fail(d, FAM_ENOMEM, "out of memory");
    }
    size_t cap = 0;
    int rc = 0;
    char name[FAM_NAME_MAX + 1];
    for (struct dirent *e; !rc && (e = readdir(dir));) {
        if (!backup_leaf(e->d_name, name)) continue;
        if (l->n == cap) {
            char **nn = realloc(l->names, (cap = cap ? 2 * cap : 64) * sizeof *nn);
            if (!nn) { rc = famd_fail(d, FAM_ENOMEM, "out of memory"); break; }
            l->names = nn;
        }
        if (!(l->names[l->n] = strdup(name)))
            rc = famd_fail(d, FAM_ENOMEM, "out of memory");
        else
            l->n++;
    }
    closedir(dir);
    if (l->n) qsort(l->names, l->n, sizeof *l->names, cmp_str);
    size_t k = 0; /* keep those c may read (and intact) */
    for (size_t i = 0; i < l->n; i++) {
        struct famd_bak b;
        if (famd_backup_stat(d, l->names[i], c, &b) == 0)
            l->names[k++] = l->names[i];
        else
            free(l->names[i]);
    }
    l->n = k;
    l->gen = d->backup_gen;
    l->who = *c;
    d->baklist = l;
    d->err[0] = '\0';
    if (rc) list_drop(d);
    return rc;
}

/* The index-th backup (by name) that c may read, in *h and *name_out. */
int famd_backup_list(struct famd *d, uint64_t index, const struct famd_cred *c,
                     struct famd_bak *h, char *name_out, size_t name_len)
{
    int rc = need_dir(d);
    if (rc) return rc;
    struct famd_baklist *l = d->baklist;
    if (!l || l->gen != d->backup_gen || memcmp(&l->who, c, sizeof *c) != 0 ||
        (index == 0)) { /* a new listing starts: the directory afresh */
        if ((rc = list_make(d, c))) return rc;
        l = d->baklist;
    }
    for (int tries = 0;; tries++) {
        if (index >= l->n) return famd_fail(d, FAM_ENOTFOUND, "no more backups");
        if ((rc = famd_backup_stat(d, l->names[index], c, h)) == 0) {
            snprintf(name_out, name_len, "%s", l->names[index]);
            d->err[0] = '\0';
            return 0;
        }
        /* changed behind famd's back (by hand in data_dir)? list once more */
        if (tries || (rc = list_make(d, c))) return rc;
        l = d->baklist;
    }
}
