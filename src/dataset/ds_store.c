/* SPDX-License-Identifier: Apache-2.0 */
/* ds_store.c — names and dtypes, attaching to a store (ds_open), and
 * reading it: the dataset list, one dataset's description, a column of a
 * batch, a batch's categories.
 *
 * ds_open makes the store's pieces in an order that a crash at any point
 * leaves either nothing, or something a later ds_open(DS_CREATE) finishes:
 * the region, then the head item (zero-filled by famd: head word {0, 0},
 * the empty catalog), then its magic. A region with a head item whose
 * magic is still zero is a store being created. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <zlib.h>

#include "ds_internal.h"

/* ---- small helpers ------------------------------------------------------------- */

void ds_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
void ds_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
uint32_t ds_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
uint64_t ds_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint64_t ds_random64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        /* no entropy source: time and address bits still make clashes rare,
         * and every name is taken by fam_allocate, which refuses a clash */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&v;
    }
    return v;
}

uint64_t ds_now(void) { return (uint64_t)time(NULL); }

void ds_array_name(char *buf, size_t len, const char *id, size_t col)
{
    snprintf(buf, len, "b.%s.%zu", id, col);
}
void ds_cats_name(char *buf, size_t len, const char *id, size_t col)
{
    snprintf(buf, len, "k.%s.%zu", id, col);
}
void ds_snap_name(char *buf, size_t len, uint64_t version, uint64_t nonce)
{
    snprintf(buf, len, "c.%016" PRIx64 ".%016" PRIx64, version, nonce);
}

int ds_check_name(const char *name, size_t max, const char *what)
{
    if (!name || !*name)
        return fam_set_error(FAM_EINVAL, "%s is %s", what, name ? "empty" : "NULL");
    size_t n = strlen(name);
    if (n > max)
        return fam_set_error(FAM_EINVAL, "%s '%.40s...' is %zu bytes long; the most "
                             "is %zu", what, name, n, max);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f)
            return fam_set_error(FAM_EINVAL, "%s holds control character 0x%02x "
                                 "at byte %zu", what, ch, i);
    }
    return 0;
}

static int hexdig(char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'); }

int ds_check_id(const char *id)
{
    if (!id) return fam_set_error(FAM_EINVAL, "batch id is NULL");
    for (int i = 0; i < DS_BATCH_ID_LEN; i++)
        if (!hexdig(id[i]))
            return fam_set_error(FAM_EINVAL, "'%.*s' is not a batch id (%d "
                                 "lowercase hex digits)", DS_BATCH_ID_LEN, id,
                                 DS_BATCH_ID_LEN);
    if (id[DS_BATCH_ID_LEN])
        return fam_set_error(FAM_EINVAL, "'%.40s' is not a batch id (%d lowercase "
                             "hex digits)", id, DS_BATCH_ID_LEN);
    return 0;
}

uint64_t ds_id_time(const char *id)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++) {
        char ch = id[i];
        t = t << 4 | (uint64_t)(ch <= '9' ? ch - '0' : ch - 'a' + 10);
    }
    return t;
}

int ds_delete_item(ds_store_t *s, const char *name)
{
    fam_item_t *it;
    int rc = fam_lookup(s->f, name, s->region, &it);
    if (rc == FAM_ENOTFOUND) return 0;
    if (rc) return rc;
    rc = fam_deallocate(s->f, it);
    if (rc) fam_release(it);
    return rc == FAM_ENOTFOUND ? 0 : rc;
}

/* ---- dtypes, kinds, errors ------------------------------------------------------------ */

const char *ds_dtype_name(ds_dtype_t t)
{
    switch (t) {
    case DS_INT64: return "int64";
    case DS_UINT64: return "uint64";
    case DS_FLOAT64: return "float64";
    case DS_BOOL: return "bool";
    case DS_TEXT: return "text";
    case DS_DATETIME: return "datetime64[s]";
    default: return NULL;
    }
}

int ds_dtype_parse(const char *name, ds_dtype_t *t)
{
    if (!name || !t) return fam_set_error(FAM_EINVAL, "ds_dtype_parse: NULL argument");
    for (int i = DS_INT64; i <= DS_DATETIME; i++)
        if (strcmp(name, ds_dtype_name((ds_dtype_t)i)) == 0) {
            *t = (ds_dtype_t)i;
            return 0;
        }
    if (strcmp(name, "category") == 0) {
        *t = DS_TEXT;
        return 0;
    }
    return fam_set_error(FAM_EINVAL, "unknown column dtype '%.40s' (int64, uint64, "
                         "float64, bool, text or datetime64[s])", name);
}

fa_dtype_t ds_dtype_storage(ds_dtype_t t)
{
    switch (t) {
    case DS_INT64: case DS_TEXT: case DS_DATETIME: return FA_INT64;
    case DS_UINT64: return FA_UINT64;
    case DS_FLOAT64: return FA_FLOAT64;
    case DS_BOOL: return FA_BOOL;
    default: return (fa_dtype_t)0;
    }
}

const char *ds_kind_name(ds_kind_t k)
{
    switch (k) {
    case DS_KIND_BASE: return "base";
    case DS_KIND_INDEX: return "index";
    case DS_KIND_COLUMN: return "column";
    default: return NULL;
    }
}

const char *ds_strerror(int code) { return fam_strerror(code); }
const char *ds_last_error(void) { return fam_last_error(); }

/* ---- stores ------------------------------------------------------------------------- */

static int check_store_name(const char *store)
{
    if (!store || !*store)
        return fam_set_error(FAM_EINVAL, "store name is %s", store ? "empty" : "NULL");
    size_t n = strlen(store);
    if (n > DS_STORE_NAME_MAX)
        return fam_set_error(FAM_EINVAL, "store name '%.40s...' is %zu bytes long; "
                             "the most is %d", store, n, DS_STORE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        char ch = store[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
            return fam_set_error(FAM_EINVAL, "store name '%s' holds '%c'; use "
                                 "letters, digits, '_', '-' and '.'", store,
                                 ch >= 0x20 && ch < 0x7f ? ch : '?');
    }
    return 0;
}

/* Find or make the region and its head item (s->head). */
static int open_region(ds_store_t *s, int create)
{
    fam_region_t *r;
    int rc = fam_lookup_region(s->f, s->region, &r);
    /* another process may be creating it: an interleaved region is
     * invisible until all its parts exist (EEXIST to us, ENOTFOUND to a
     * lookup), so try again for a while */
    for (int tries = 0; rc == FAM_ENOTFOUND && create && tries < 200; tries++) {
        fam_region_attr_t at = {.interleave = FAM_INTERLEAVE_ENABLE};
        rc = fam_create_region(s->f, s->region, DS_REGION_LIMIT, s->mode, &at, &r);
        if (rc == FAM_EEXIST) {
            rc = fam_lookup_region(s->f, s->region, &r);
            if (rc == FAM_ENOTFOUND) ds_sleep_ms(10);
        }
    }
    if (rc == FAM_ENOTFOUND)
        return fam_set_error(rc, "there is no dataset store '%s' (no FAM region "
                             "'%s'); open it with DS_CREATE to make it", s->name,
                             s->region);
    if (rc)
        return fam_set_error(rc, "cannot open dataset store '%s' (region '%s'): %s",
                             s->name, s->region, fam_last_error());
    /* the head: found, or made; a head being made by another process is
     * invisible to lookups until done, as the region was */
    for (int tries = 0; !s->head && tries < 200; tries++) {
        rc = fam_lookup(s->f, DS_HEAD_ITEM, s->region, &s->head);
        if (rc != FAM_ENOTFOUND || !create) break;
        rc = fam_allocate(s->f, DS_HEAD_ITEM, DS_HEAD_BYTES, s->mode, r, &s->head);
        if (rc == FAM_EEXIST) ds_sleep_ms(10);
        else if (rc) break;
    }
    fam_release_region(r);
    if (rc == FAM_ENOTFOUND)
        return fam_set_error(FAM_EINVAL, "FAM region '%s' exists but is not a dataset "
                             "store (it has no head item)", s->region);
    if (rc)
        return fam_set_error(rc, "cannot open the head of dataset store '%s': %s",
                             s->name, fam_last_error());
    return 0;
}

int ds_open(fam_t *f, const char *store, int flags, mode_t mode, ds_store_t **out)
{
    fam_set_error(0, NULL);
    if (!f || !out) return fam_set_error(FAM_EINVAL, "ds_open: NULL argument");
    int rc = check_store_name(store);
    if (rc) return rc;
    if (flags & ~DS_CREATE) return fam_set_error(FAM_EINVAL, "ds_open: unknown flags %#x", flags);
    if (mode & ~(mode_t)0777)
        return fam_set_error(FAM_EINVAL, "ds_open: bad permission bits %o", (unsigned)mode);
    ds_store_t *s = calloc(1, sizeof *s);
    if (!s) return fam_set_error(FAM_ENOMEM, "out of memory");
    s->f = f;
    s->mode = mode;
    snprintf(s->name, sizeof s->name, "%s", store);
    snprintf(s->region, sizeof s->region, DS_REGION_PREFIX "%s", store);
    int create = (flags & DS_CREATE) != 0;
    if ((rc = open_region(s, create))) goto fail;
    if (fam_item_size(s->head) != DS_HEAD_BYTES) {
        rc = fam_set_error(FAM_EINVAL, "FAM region '%s' is not a dataset store (its "
                           "head item has %llu bytes, not %d)", s->region,
                           (unsigned long long)fam_item_size(s->head), DS_HEAD_BYTES);
        goto fail;
    }
    uint8_t h[12], zero[12] = {0};
    if ((rc = fam_get_blocking(f, h, s->head, 16, sizeof h))) goto fail;
    if (memcmp(h, zero, sizeof h) == 0) {
        if (!create) {
            rc = fam_set_error(FAM_ENOTFOUND, "dataset store '%s' is still being "
                               "created (its head has no magic yet)", store);
            goto fail;
        }
        memcpy(h, DS_HEAD_MAGIC, 8);
        ds_put_u32(h + 8, DS_LAYOUT);
        if ((rc = fam_put_blocking(f, h, s->head, 16, sizeof h))) goto fail;
    }
    if (memcmp(h, DS_HEAD_MAGIC, 8) != 0) {
        rc = fam_set_error(FAM_EINVAL, "FAM region '%s' is not a dataset store (bad "
                           "magic in its head item)", s->region);
        goto fail;
    }
    if (ds_get_u32(h + 8) != DS_LAYOUT) {
        rc = fam_set_error(FAM_EINVAL, "dataset store '%s' has layout %u; this "
                           "library reads %u", store, ds_get_u32(h + 8), DS_LAYOUT);
        goto fail;
    }
    *out = s;
    fam_set_error(0, NULL);
    return 0;
fail:
    if (s->head) fam_release(s->head);
    free(s);
    return rc;
}

void ds_defer_cleanup(ds_store_t *s, int on)
{
    if (!s) return;
    s->defer = on != 0;
    if (!on) ds_cleanup(s);
}

size_t ds_cleanup(ds_store_t *s)
{
    if (!s) return 0;
    size_t n = 0;
    for (size_t i = 0; i < s->nretired; i++)
        n += ds_delete_item(s, s->retired[i]) == 0; /* best effort, as in the commit */
    s->nretired = 0;
    return n;
}

void ds_close(ds_store_t *s)
{
    if (!s) return;
    ds_cleanup(s);
    if (s->head) fam_release(s->head);
    ds_cat_free(s->cache);
    ds_cat_free(s->staged);
    for (int i = 0; i < DS_OPEN_CACHE; i++) fa_close(s->open[i]);
    if (s->rgn) fam_release_region(s->rgn);
    free(s);
}

int ds_in_region(ds_store_t *s, int (*op)(ds_store_t *s, fam_region_t *r, void *arg),
                 void *arg)
{
    int rc = 0;
    for (int tries = 0; tries < 2; tries++) {
        int kept = s->rgn != NULL;
        if (!s->rgn && (rc = fam_lookup_region(s->f, s->region, &s->rgn))) {
            s->rgn = NULL;
            return rc;
        }
        rc = op(s, s->rgn, arg);
        if (!rc || rc == FAM_EEXIST || !kept) return rc;
        fam_release_region(s->rgn);
        s->rgn = NULL;
    }
    return rc;
}

int ds_destroy_store(fam_t *f, const char *store)
{
    fam_set_error(0, NULL);
    if (!f) return fam_set_error(FAM_EINVAL, "ds_destroy_store: NULL argument");
    int rc = check_store_name(store);
    if (rc) return rc;
    char region[DS_STORE_NAME_MAX + sizeof DS_REGION_PREFIX];
    snprintf(region, sizeof region, DS_REGION_PREFIX "%s", store);
    fam_region_t *r;
    if ((rc = fam_lookup_region(f, region, &r)))
        return fam_set_error(rc, "cannot destroy dataset store '%s': %s", store,
                             fam_last_error());
    if ((rc = fam_destroy_region(f, r))) {
        fam_release_region(r);
        return fam_set_error(rc, "cannot destroy dataset store '%s': %s", store,
                             fam_last_error());
    }
    return 0;
}

const char *ds_store_name(const ds_store_t *s) { return s ? s->name : NULL; }
const char *ds_store_region(const ds_store_t *s) { return s ? s->region : NULL; }
fam_t *ds_store_fam(const ds_store_t *s) { return s ? s->f : NULL; }

int ds_version(ds_store_t *s, uint64_t *version)
{
    fam_set_error(0, NULL);
    if (!s || !version) return fam_set_error(FAM_EINVAL, "ds_version: NULL argument");
    uint64_t n = 0;
    return ds_head_read(s, version, &n);
}

uint64_t ds_version_seen(const ds_store_t *s)
{
    return s && s->cache ? s->cache->version : 0;
}

int ds_check(ds_store_t *s)
{
    fam_set_error(0, NULL);
    if (!s) return fam_set_error(FAM_EINVAL, "ds_check: NULL store");
    fam_stat_t st;
    int rc = fam_stat(s->f, s->head, &st);
    if (rc == FAM_ENOTFOUND)
        return fam_set_error(rc, "dataset store '%s' was destroyed since this handle "
                             "opened it", s->name);
    return rc ? fam_set_error(rc, "dataset store '%s': %s", s->name, fam_last_error()) : 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

void ds_free_names(char **names, size_t n)
{
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int list_of(const struct ds_cat *c, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    if (!c->nds) return 0;
    char **v = calloc(c->nds, sizeof *v);
    if (!v) return fam_set_error(FAM_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->nds; i++)
        if (!(v[i] = strdup(c->ds[i].name))) {
            ds_free_names(v, i);
            return fam_set_error(FAM_ENOMEM, "out of memory");
        }
    *names = v;
    *n = c->nds;
    return 0;
}

int ds_list(ds_store_t *s, char ***names, size_t *n)
{
    fam_set_error(0, NULL);
    if (!s || !names || !n) return fam_set_error(FAM_EINVAL, "ds_list: NULL argument");
    *names = NULL;
    *n = 0;
    const struct ds_cat *c;
    int rc = ds_cat_current(s, &c);
    return rc ? rc : list_of(c, names, n);
}

int ds_list_behind(ds_store_t *s, unsigned depth, char ***names, size_t *n)
{
    fam_set_error(0, NULL);
    if (!s || !names || !n) return fam_set_error(FAM_EINVAL, "ds_list_behind: NULL argument");
    *names = NULL;
    *n = 0;
    const struct ds_cat *c;
    int rc = ds_cat_current(s, &c);
    if (rc || !c->nds) return rc;
    char **v = calloc(c->nds, sizeof *v);
    if (!v) return fam_set_error(FAM_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->nds; i++) {
        const struct ds_cset *d = &c->ds[i], *r = d;
        if (d->kind == DS_KIND_BASE) continue;
        for (unsigned hop = 0; r && r->kind != DS_KIND_BASE && hop <= depth; hop++)
            r = ds_cat_find(c, r->base);
        if (!r || r->kind != DS_KIND_BASE || r->nb == d->base_batches) continue;
        if (!(v[k++] = strdup(d->name))) {
            ds_free_names(v, k);
            return fam_set_error(FAM_ENOMEM, "out of memory");
        }
    }
    *names = v;
    *n = k;
    return 0;
}

/* The datasets of c sorted by name (by index into c->ds), for root_in. */
static int by_name_cmp(const void *a, const void *b, void *c)
{
    const struct ds_cat *cat = c;
    return strcmp(cat->ds[*(const size_t *)a].name, cat->ds[*(const size_t *)b].name);
}

/* The dataset at the top of d's lineage in c: its base's base ... up to a
 * base dataset, or the last one found whose base is not in c (a dropped
 * base). order: c's datasets sorted by name (by_name_cmp). */
static const struct ds_cset *root_in(const struct ds_cat *c, const size_t *order,
                                     const struct ds_cset *d)
{
    for (size_t steps = 0; steps < c->nds && d->kind != DS_KIND_BASE && d->kind != 0;
         steps++) {
        size_t lo = 0, hi = c->nds;
        while (lo < hi) { /* the first at or after d->base */
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(c->ds[order[mid]].name, d->base) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == c->nds || strcmp(c->ds[order[lo]].name, d->base)) break;
        d = &c->ds[order[lo]];
    }
    return d;
}

int ds_list_family(ds_store_t *s, const char *name, char ***names, size_t *n)
{
    fam_set_error(0, NULL);
    if (!s || !name || !names || !n)
        return fam_set_error(FAM_EINVAL, "ds_list_family: NULL argument");
    *names = NULL;
    *n = 0;
    const struct ds_cat *c;
    int rc = ds_cat_current(s, &c);
    if (rc) return rc;
    const struct ds_cset *me = ds_cat_find(c, name);
    if (!me)
        return fam_set_error(FAM_ENOTFOUND, "dataset store '%s' has no dataset '%s'",
                             s->name, name);
    size_t *order = malloc(c->nds * sizeof *order);
    char **v = calloc(c->nds, sizeof *v);
    if (!order || !v) {
        free(order);
        free(v);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->nds; i++) order[i] = i;
    qsort_r(order, c->nds, sizeof *order, by_name_cmp, (void *)c);
    const struct ds_cset *top = root_in(c, order, me);
    size_t k = 0;
    for (size_t i = 0; i < c->nds && !rc; i++) {
        if (root_in(c, order, &c->ds[i]) != top) continue;
        if (!(v[k++] = strdup(c->ds[i].name))) rc = fam_set_error(FAM_ENOMEM, "out of memory");
    }
    free(order);
    if (rc) {
        ds_free_names(v, k);
        return rc;
    }
    *names = v;
    *n = k;
    return 0;
}

void ds_free_info(ds_info_t *info)
{
    if (!info) return;
    free(info->name);
    free(info->base);
    free(info->expr);
    if (info->cols)
        for (size_t i = 0; i < info->ncols; i++) free(info->cols[i].name);
    free(info->cols);
    if (info->batches)
        for (size_t i = 0; i < info->nbatches; i++) {
            if (info->batches[i].arrays)
                for (size_t k = 0; k < info->ncols; k++) free(info->batches[i].arrays[k]);
            free(info->batches[i].arrays);
            free(info->batches[i].ncat);
        }
    free(info->batches);
    free(info);
}

static int info_of(const struct ds_cat *c, const char *store, const char *name,
                   ds_info_t **out)
{
    int rc = ds_check_name(name, DS_NAME_MAX, "dataset name");
    if (rc) return rc;
    const struct ds_cset *d = ds_cat_find(c, name);
    if (!d)
        return fam_set_error(FAM_ENOTFOUND, "dataset store '%s' has no dataset '%s'",
                             store, name);
    ds_info_t *in = calloc(1, sizeof *in);
    if (!in) return fam_set_error(FAM_ENOMEM, "out of memory");
    in->name = strdup(d->name);
    in->base = strdup(d->base);
    in->expr = strdup(d->expr);
    in->kind = d->kind;
    in->base_batches = d->base_batches;
    in->version = c->version;
    in->cols = calloc(d->ncols, sizeof *in->cols);
    in->batches = d->nb ? calloc(d->nb, sizeof *in->batches) : NULL;
    if (!in->name || !in->base || !in->expr || !in->cols || (d->nb && !in->batches))
        goto nomem;
    in->ncols = d->ncols;
    for (size_t i = 0; i < d->ncols; i++) {
        in->cols[i].dtype = d->cols[i].dtype;
        if (!(in->cols[i].name = strdup(d->cols[i].name))) goto nomem;
    }
    in->nbatches = d->nb;
    uint64_t row = 0;
    for (size_t i = 0; i < d->nb; i++) {
        ds_batch_info_t *b = &in->batches[i];
        memcpy(b->id, d->b[i].id, sizeof b->id);
        b->rows = d->b[i].rows;
        b->first_row = row;
        row += b->rows;
        b->arrays = calloc(d->ncols, sizeof *b->arrays);
        b->ncat = calloc(d->ncols, sizeof *b->ncat);
        if (!b->arrays || !b->ncat) goto nomem;
        for (size_t k = 0; k < d->ncols; k++) {
            char nm[64];
            ds_array_name(nm, sizeof nm, b->id, k);
            if (!(b->arrays[k] = strdup(nm))) goto nomem;
            if (d->b[i].ncat) b->ncat[k] = d->b[i].ncat[k];
        }
    }
    in->rows = row;
    *out = in;
    return 0;
nomem:
    ds_free_info(in);
    return fam_set_error(FAM_ENOMEM, "out of memory");
}

int ds_info(ds_store_t *s, const char *name, ds_info_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !out) return fam_set_error(FAM_EINVAL, "ds_info: NULL argument");
    if (s->staged && ds_cat_find(s->staged, name)) /* ds_txn_stage */
        return info_of(s->staged, s->name, name, out);
    const struct ds_cat *c = s->cache;
    int rc = s->pinned && c ? 0 : ds_cat_current(s, &c);
    return rc ? rc : info_of(c, s->name, name, out);
}

void ds_pin(ds_store_t *s)
{
    if (s) s->pinned = 1;
}

void ds_unpin(ds_store_t *s)
{
    if (s) s->pinned = 0;
}

/* ---- snapshots: one catalog version, held ---------------------------------------------- */

/* A catalog version kept for reading several datasets at once (ds_snapshot_t). */
struct ds_snapshot {
    struct ds_cat *cat; /* a private copy */
    char store[DS_STORE_NAME_MAX + 1];
};

int ds_snapshot(ds_store_t *s, ds_snapshot_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !out) return fam_set_error(FAM_EINVAL, "ds_snapshot: NULL argument");
    ds_snapshot_t *sn = calloc(1, sizeof *sn);
    if (!sn) return fam_set_error(FAM_ENOMEM, "out of memory");
    int rc = ds_cat_load_copy(s, &sn->cat);
    if (rc) {
        free(sn);
        return rc;
    }
    snprintf(sn->store, sizeof sn->store, "%s", s->name);
    *out = sn;
    return 0;
}

uint64_t ds_snapshot_version(const ds_snapshot_t *sn) { return sn ? sn->cat->version : 0; }

int ds_snapshot_list(const ds_snapshot_t *sn, char ***names, size_t *n)
{
    fam_set_error(0, NULL);
    if (!sn || !names || !n) return fam_set_error(FAM_EINVAL, "ds_snapshot_list: NULL argument");
    return list_of(sn->cat, names, n);
}

int ds_snapshot_info(const ds_snapshot_t *sn, const char *name, ds_info_t **out)
{
    fam_set_error(0, NULL);
    if (!sn || !out) return fam_set_error(FAM_EINVAL, "ds_snapshot_info: NULL argument");
    return info_of(sn->cat, sn->store, name, out);
}

void ds_snapshot_free(ds_snapshot_t *sn)
{
    if (!sn) return;
    ds_cat_free(sn->cat);
    free(sn);
}

static int check_cell(const ds_info_t *info, size_t batch, size_t col, const char *what)
{
    if (batch >= info->nbatches)
        return fam_set_error(FAM_EOUTOFRANGE, "%s: dataset '%s' has %zu batches; "
                             "there is no batch %zu", what, info->name, info->nbatches,
                             batch);
    if (col >= info->ncols)
        return fam_set_error(FAM_EOUTOFRANGE, "%s: dataset '%s' has %zu columns; "
                             "there is no column %zu", what, info->name, info->ncols, col);
    return 0;
}

/* Does the current catalog list batch `id` in dataset `name`? (An error
 * reading the catalog counts as no.) */
static int batch_listed(ds_store_t *s, const char *name, const char *id)
{
    const struct ds_cat *c;
    if (ds_cat_current(s, &c)) return 0;
    const struct ds_cset *d = ds_cat_find(c, name);
    for (size_t i = 0; d && i < d->nb; i++)
        if (memcmp(d->b[i].id, id, DS_BATCH_ID_LEN) == 0) return 1;
    return 0;
}

/* The open array of column `col` of batch `batch` (from the store's cache
 * of open handles, else opened and cached), checked against the catalog
 * entry; *slot is its place in the cache. */
static int cell_array(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col,
                      fa_array_t **out, int *slot_out)
{
    const ds_batch_info_t *b = &info->batches[batch];
    fa_array_t *a = NULL;
    int slot = -1, rc;
    for (int i = 0; i < DS_OPEN_CACHE && !a; i++)
        if (s->open[i] && strcmp(fa_name(s->open[i]), b->arrays[col]) == 0) {
            a = s->open[i];
            slot = i;
        }
    /* An open handle on an array that a drop has freed does not fail at
     * once: an RMA with a revoked key waits for libfam's timeout (over
     * shm). A batch the current catalog still lists has its arrays (drops
     * free them only after the commit), so reuse the handle only then;
     * otherwise look the array up afresh, which fails at once if gone. */
    if (a && !batch_listed(s, info->name, b->id)) {
        fa_close(a);
        s->open[slot] = NULL;
        a = NULL;
    }
    if (!a) {
        if ((rc = fa_open(s->f, s->region, b->arrays[col], &a)))
            return fam_set_error(rc, "cannot read column '%s' of batch %zu of dataset "
                                 "'%s': %s", info->cols[col].name, batch, info->name,
                                 fam_last_error());
        if (fa_dtype(a) != ds_dtype_storage(info->cols[col].dtype) || fa_size(a) != b->rows) {
            rc = fam_set_error(FAM_EIO, "array '%s' of dataset '%s' holds %llu %s, not "
                               "the %llu %s its catalog entry says", b->arrays[col],
                               info->name, (unsigned long long)fa_size(a),
                               fa_dtype_name(fa_dtype(a)), (unsigned long long)b->rows,
                               fa_dtype_name(ds_dtype_storage(info->cols[col].dtype)));
            fa_close(a);
            return rc;
        }
        slot = (int)(s->next_open++ % DS_OPEN_CACHE);
        fa_close(s->open[slot]);
        s->open[slot] = a;
    } else if (fa_dtype(a) != ds_dtype_storage(info->cols[col].dtype) || fa_size(a) != b->rows) {
        return fam_set_error(FAM_EIO, "array '%s' of dataset '%s' does not match its "
                             "catalog entry", b->arrays[col], info->name);
    }
    *out = a;
    *slot_out = slot;
    return 0;
}

/* rc of a read from the cached handle in `slot`: one whose array was
 * dropped meanwhile is forgotten */
static int read_done(ds_store_t *s, int slot, int rc)
{
    if (rc == FAM_ENOTFOUND) {
        fa_close(s->open[slot]);
        s->open[slot] = NULL;
    }
    return rc;
}

/* The open array of rows [start, start + count) of column `col` of batch
 * `batch`, all checked (for ds_read and ds_local). */
static int range_array(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col,
                       uint64_t start, uint64_t count, const char *what, fa_array_t **a,
                       int *slot)
{
    int rc = check_cell(info, batch, col, what);
    if (rc) return rc;
    const ds_batch_info_t *b = &info->batches[batch];
    if (start > b->rows || count > b->rows - start)
        return fam_set_error(FAM_EOUTOFRANGE, "%s: rows [%llu, %llu) are past "
                             "the end of batch %zu of dataset '%s' (%llu rows)", what,
                             (unsigned long long)start,
                             (unsigned long long)(start + count), batch, info->name,
                             (unsigned long long)b->rows);
    return cell_array(s, info, batch, col, a, slot);
}

int ds_read(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col,
            uint64_t start, uint64_t count, void *buf)
{
    fam_set_error(0, NULL);
    if (!s || !info || (!buf && count)) return fam_set_error(FAM_EINVAL, "ds_read: NULL argument");
    fa_array_t *a;
    int slot, rc = range_array(s, info, batch, col, start, count, "ds_read", &a, &slot);
    if (rc) return rc;
    return read_done(s, slot, count ? fa_get(a, start, count, buf) : 0);
}

int ds_local(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col, uint64_t start,
             uint64_t count, const void **ptr, uint64_t *run)
{
    fam_set_error(0, NULL);
    if (!s || !info || !ptr || !run) return fam_set_error(FAM_EINVAL, "ds_local: NULL argument");
    fa_array_t *a;
    int slot, rc = range_array(s, info, batch, col, start, count, "ds_local", &a, &slot);
    if (rc) return rc;
    return read_done(s, slot, fa_local(a, start, count, ptr, run));
}

int ds_gather(ds_store_t *s, const ds_info_t *info, size_t batch, size_t col, uint64_t n,
              const uint64_t *rows, void *buf)
{
    fam_set_error(0, NULL);
    if (!s || !info || (n && (!buf || !rows)))
        return fam_set_error(FAM_EINVAL, "ds_gather: NULL argument");
    int rc = check_cell(info, batch, col, "ds_gather");
    if (rc) return rc;
    const ds_batch_info_t *b = &info->batches[batch];
    for (uint64_t i = 0; i < n; i++)
        if (rows[i] >= b->rows)
            return fam_set_error(FAM_EOUTOFRANGE, "ds_gather: row %llu is past the end of "
                                 "batch %zu of dataset '%s' (%llu rows)",
                                 (unsigned long long)rows[i], batch, info->name,
                                 (unsigned long long)b->rows);
    fa_array_t *a;
    int slot;
    if ((rc = cell_array(s, info, batch, col, &a, &slot))) return rc;
    return read_done(s, slot, n ? fa_gather(a, n, rows, buf) : 0);
}

int ds_read_rows(ds_store_t *s, const ds_info_t *info, size_t col, uint64_t first,
                 uint64_t count, void *buf)
{
    fam_set_error(0, NULL);
    if (!s || !info || (!buf && count)) return fam_set_error(FAM_EINVAL, "ds_read_rows: NULL argument");
    if (col >= info->ncols)
        return fam_set_error(FAM_EOUTOFRANGE, "ds_read_rows: dataset '%s' has %zu "
                             "columns; there is no column %zu", info->name, info->ncols, col);
    if (first > info->rows || count > info->rows - first)
        return fam_set_error(FAM_EOUTOFRANGE, "ds_read_rows: rows [%llu, %llu) are past "
                             "the end of dataset '%s' (%llu rows)",
                             (unsigned long long)first, (unsigned long long)(first + count),
                             info->name, (unsigned long long)info->rows);
    uint64_t es = fa_dtype_size(ds_dtype_storage(info->cols[col].dtype));
    /* the first batch holding row `first`: batches are in row order */
    size_t lo = 0, hi = info->nbatches;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (info->batches[mid].first_row + info->batches[mid].rows <= first) lo = mid + 1;
        else hi = mid;
    }
    uint8_t *out = buf;
    for (size_t b = lo; count && b < info->nbatches; b++) {
        const ds_batch_info_t *bi = &info->batches[b];
        uint64_t at = first - bi->first_row, k = bi->rows - at < count ? bi->rows - at : count;
        if (!k) continue;
        int rc = ds_read(s, info, b, col, at, k, out);
        if (rc) return rc;
        out += k * es;
        first += k;
        count -= k;
    }
    return 0;
}

int ds_read_categories(ds_store_t *s, const ds_info_t *info, size_t batch,
                       size_t col, char ***cats, size_t *n)
{
    fam_set_error(0, NULL);
    if (!s || !info || !cats || !n)
        return fam_set_error(FAM_EINVAL, "ds_read_categories: NULL argument");
    *cats = NULL;
    *n = 0;
    int rc = check_cell(info, batch, col, "ds_read_categories");
    if (rc) return rc;
    if (info->cols[col].dtype != DS_TEXT)
        return fam_set_error(FAM_EINVAL, "column '%s' of dataset '%s' is %s, not text: "
                             "it has no categories", info->cols[col].name, info->name,
                             ds_dtype_name(info->cols[col].dtype));
    const ds_batch_info_t *b = &info->batches[batch];
    char name[64];
    ds_cats_name(name, sizeof name, b->id, col);
    fam_item_t *it;
    if ((rc = fam_lookup(s->f, name, s->region, &it)))
        return fam_set_error(rc, "cannot read the categories of column '%s' of batch "
                             "%zu of dataset '%s': %s", info->cols[col].name, batch,
                             info->name, fam_last_error());
    uint64_t size = fam_item_size(it), count = b->ncat[col];
    /* what the catalog says fixes the least size; the header says the rest */
    if (size < DS_CATS_HEADER || (size - DS_CATS_HEADER) / 8 < count ||
        size - DS_CATS_HEADER > (uint64_t)DS_CATEGORIES_MAX + 8 * count) {
        fam_release(it);
        return fam_set_error(FAM_EIO, "categories '%s' of dataset '%s' are damaged "
                             "(%llu bytes for %llu categories)", name, info->name,
                             (unsigned long long)size, (unsigned long long)count);
    }
    uint8_t *buf = malloc(size);
    if (!buf) {
        fam_release(it);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    rc = fam_get_blocking(s->f, buf, it, 0, size);
    fam_release(it);
    if (rc) {
        free(buf);
        return rc;
    }
    uint64_t hc = ds_get_u64(buf + 8), bytes = ds_get_u64(buf + 16);
    const uint8_t *offs = buf + DS_CATS_HEADER, *str = offs + 8 * count;
    if (memcmp(buf, DS_CATS_MAGIC, 8) || hc != count ||
        bytes != size - DS_CATS_HEADER - 8 * count ||
        (uint32_t)crc32_z(0L, offs, (size_t)(size - DS_CATS_HEADER)) != ds_get_u32(buf + 24)) {
        free(buf);
        return fam_set_error(FAM_EIO, "categories '%s' of dataset '%s' are damaged "
                             "(header or checksum)", name, info->name);
    }
    char **v = count ? calloc(count, sizeof *v) : NULL;
    if (count && !v) {
        free(buf);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    uint64_t prev = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t end = ds_get_u64(offs + 8 * i);
        if (end < prev || end > bytes || end - prev > DS_CATEGORY_MAX ||
            memchr(str + prev, 0, end - prev)) {
            ds_free_names(v, i);
            free(buf);
            return fam_set_error(FAM_EIO, "categories '%s' of dataset '%s' are "
                                 "damaged (entry %llu)", name, info->name,
                                 (unsigned long long)i);
        }
        if (!(v[i] = strndup((const char *)str + prev, end - prev))) {
            ds_free_names(v, i);
            free(buf);
            return fam_set_error(FAM_ENOMEM, "out of memory");
        }
        prev = end;
    }
    free(buf);
    if (prev != bytes) {
        ds_free_names(v, count);
        return fam_set_error(FAM_EIO, "categories '%s' of dataset '%s' are damaged "
                             "(%llu bytes unaccounted for)", name, info->name,
                             (unsigned long long)(bytes - prev));
    }
    *cats = v;
    *n = count;
    return 0;
}

/* ---- one categorical column over every batch ------------------------------------------- */

void ds_free_categories(ds_categories_t *c)
{
    if (!c) return;
    ds_free_names(c->cats, c->n);
    if (c->maps)
        for (size_t b = 0; b < c->nbatches; b++) free(c->maps[b]);
    free(c->maps);
    free(c);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int ds_unify_categories(ds_store_t *s, const ds_info_t *info, size_t col,
                        ds_categories_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !info || !out) return fam_set_error(FAM_EINVAL, "ds_unify_categories: NULL argument");
    if (col >= info->ncols)
        return fam_set_error(FAM_EOUTOFRANGE, "dataset '%s' has %zu columns; there is no "
                             "column %zu", info->name, info->ncols, col);
    if (info->cols[col].dtype != DS_TEXT)
        return fam_set_error(FAM_EINVAL, "column '%s' of dataset '%s' is %s, not text",
                             info->cols[col].name, info->name,
                             ds_dtype_name(info->cols[col].dtype));
    ds_categories_t *c = calloc(1, sizeof *c);
    char ***per = info->nbatches ? calloc(info->nbatches, sizeof *per) : NULL;
    size_t *nper = info->nbatches ? calloc(info->nbatches, sizeof *nper) : NULL;
    if (!c || (info->nbatches && (!per || !nper))) goto nomem;
    c->nbatches = info->nbatches;
    if (info->nbatches && !(c->maps = calloc(info->nbatches, sizeof *c->maps))) goto nomem;
    size_t total = 0;
    int rc = 0;
    for (size_t b = 0; b < info->nbatches && !rc; b++) {
        rc = ds_read_categories(s, info, b, col, &per[b], &nper[b]);
        total += nper[b];
    }
    if (rc) goto fail;
    /* every string once, sorted; the batches' lists keep owning them */
    char **all = total ? malloc(total * sizeof *all) : NULL;
    if (total && !all) goto nomem;
    size_t k = 0;
    for (size_t b = 0; b < info->nbatches; b++)
        for (size_t i = 0; i < nper[b]; i++) all[k++] = per[b][i];
    if (total) qsort(all, total, sizeof *all, cmp_cstr);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
        if (u == 0 || strcmp(all[u - 1], all[i])) all[u++] = all[i];
    c->cats = u ? calloc(u, sizeof *c->cats) : NULL;
    if (u && !c->cats) {
        free(all);
        goto nomem;
    }
    for (size_t i = 0; i < u; i++)
        if (!(c->cats[i] = strdup(all[i]))) {
            c->n = i;
            free(all);
            goto nomem;
        }
    c->n = u;
    free(all);
    for (size_t b = 0; b < info->nbatches; b++) {
        if (!nper[b]) continue;
        if (!(c->maps[b] = malloc(nper[b] * sizeof **c->maps))) goto nomem;
        for (size_t i = 0; i < nper[b]; i++) {
            char **hit = bsearch(&per[b][i], c->cats, u, sizeof *c->cats, cmp_cstr);
            c->maps[b][i] = (int64_t)(hit - c->cats);
        }
    }
    for (size_t b = 0; b < info->nbatches; b++) ds_free_names(per[b], nper[b]);
    free(per);
    free(nper);
    *out = c;
    return 0;
nomem:
    rc = fam_set_error(FAM_ENOMEM, "out of memory");
fail:
    if (per && nper)
        for (size_t b = 0; b < info->nbatches; b++) ds_free_names(per[b], nper[b]);
    free(per);
    free(nper);
    ds_free_categories(c);
    return rc;
}

/* ---- a consistency check ---------------------------------------------------------------- */

int ds_verify(ds_store_t *s, int flags, size_t *checked)
{
    fam_set_error(0, NULL);
    if (!s) return fam_set_error(FAM_EINVAL, "ds_verify: NULL store");
    if (flags & ~DS_VERIFY_CODES) return fam_set_error(FAM_EINVAL, "ds_verify: unknown flags %#x", flags);
    size_t n = 0;
    ds_snapshot_t *sn;
    int rc = ds_snapshot(s, &sn); /* one version, whatever is committed meanwhile */
    if (rc) return rc;
    char **names = NULL;
    size_t nds = 0;
    if ((rc = ds_snapshot_list(sn, &names, &nds))) goto out;
    for (size_t i = 0; i < nds && !rc; i++) {
        ds_info_t *in;
        if ((rc = ds_snapshot_info(sn, names[i], &in))) break;
        for (size_t b = 0; b < in->nbatches && !rc; b++)
            for (size_t c = 0; c < in->ncols && !rc; c++) {
                const char *an = in->batches[b].arrays[c];
                fa_array_t *a;
                rc = fa_open(s->f, s->region, an, &a);
                if (rc) {
                    rc = fam_set_error(FAM_EIO, "dataset '%s', batch %zu (%s), column "
                                       "'%s': array '%s' cannot be opened: %s", in->name, b,
                                       in->batches[b].id, in->cols[c].name, an,
                                       fam_last_error());
                    break;
                }
                int ok = fa_dtype(a) == ds_dtype_storage(in->cols[c].dtype) &&
                         fa_size(a) == in->batches[b].rows;
                n++;
                if (!ok) {
                    rc = fam_set_error(FAM_EIO, "dataset '%s', batch %zu, column '%s': "
                                       "array '%s' holds %llu %s, the catalog says %llu "
                                       "%s", in->name, b, in->cols[c].name, an,
                                       (unsigned long long)fa_size(a),
                                       fa_dtype_name(fa_dtype(a)),
                                       (unsigned long long)in->batches[b].rows,
                                       fa_dtype_name(ds_dtype_storage(in->cols[c].dtype)));
                    fa_close(a); /* after the message, which reads it */
                    break;
                }
                if (in->cols[c].dtype != DS_TEXT) {
                    fa_close(a);
                    continue;
                }
                char **cats;
                size_t nc;
                if ((rc = ds_read_categories(s, in, b, c, &cats, &nc))) {
                    fa_close(a);
                    rc = fam_set_error(FAM_EIO, "%s", fam_last_error());
                    break;
                }
                ds_free_names(cats, nc);
                uint64_t rows = in->batches[b].rows;
                int64_t *codes = (flags & DS_VERIFY_CODES) && rows
                                     ? malloc((rows < (1u << 20) ? rows : (1u << 20)) * 8) : NULL;
                for (uint64_t at = 0; codes && at < rows && !rc; at += 1u << 20) {
                    uint64_t k = rows - at < (1u << 20) ? rows - at : (1u << 20);
                    if ((rc = fa_get(a, at, k, codes))) break;
                    for (uint64_t j = 0; j < k; j++)
                        if (codes[j] < -1 || (codes[j] >= 0 && (uint64_t)codes[j] >= nc)) {
                            rc = fam_set_error(FAM_EIO, "dataset '%s', batch %zu, text "
                                               "column '%s': row %llu has code %lld, but "
                                               "the batch has %zu categories", in->name, b,
                                               in->cols[c].name,
                                               (unsigned long long)(at + j),
                                               (long long)codes[j], nc);
                            break;
                        }
                }
                if ((flags & DS_VERIFY_CODES) && rows && !codes && !rc)
                    rc = fam_set_error(FAM_ENOMEM, "out of memory");
                free(codes);
                fa_close(a);
            }
        ds_free_info(in);
    }
    ds_free_names(names, nds);
out:
    ds_snapshot_free(sn);
    if (checked) *checked = n;
    return rc;
}
