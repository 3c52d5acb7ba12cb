/* SPDX-License-Identifier: Apache-2.0 */
/* ds_export.c — a catalog handed between processes that hold handles on
 * one store (an MPI job's ranks): one process reads the catalog from FAM
 * and packs the version it holds into a flat buffer (ds_catalog_export),
 * the job moves the buffer over its own channel, and the others unpack it
 * into their handles (ds_catalog_import) instead of each reading the head,
 * looking up the snapshot, fetching it and parsing its JSON.
 *
 * The buffer is binary, not the snapshot's JSON: unpacking it is copying
 * strings and numbers (a parse of the JSON of a store of some 40 datasets
 * takes a millisecond or more). Layout, integers as 8 little-endian bytes,
 * a string as its length then its bytes:
 *
 *   "KDDSXCAT" format store version nonce nhist (hist_v hist_n)*nhist nds
 *   per dataset: name kind base expr base_batches ncols (dtype name)*ncols
 *                nb (id[DS_BATCH_ID_LEN] rows ncat*ncols-if-text)*nb
 *   crc32 of everything before it (8 bytes)
 *
 * An import checks every length against the buffer, every name, kind,
 * dtype and batch id as a snapshot read from FAM is checked, and the crc,
 * so a damaged buffer is refused (FAM_EINVAL) and the handle keeps what it
 * held. */
#include "ds_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define XMAGIC "KDDSXCAT"
#define XFORMAT 1

static void xu64(struct jbuf *b, uint64_t v)
{
    uint8_t w[8];
    ds_put_u64(w, v);
    ds_jput(b, (const char *)w, 8);
}

static void xstr(struct jbuf *b, const char *s)
{
    size_t n = strlen(s);
    xu64(b, n);
    ds_jput(b, s, n);
}

static int pack(const char *store, const struct ds_cat *c, struct jbuf *b)
{
    *b = (struct jbuf){0};
    ds_jput(b, XMAGIC, 8);
    xu64(b, XFORMAT);
    xstr(b, store);
    xu64(b, c->version);
    xu64(b, c->nonce);
    xu64(b, c->nhist);
    for (size_t i = 0; i < c->nhist; i++) {
        xu64(b, c->hist_v[i]);
        xu64(b, c->hist_n[i]);
    }
    xu64(b, c->nds);
    for (size_t i = 0; i < c->nds; i++) {
        const struct ds_cset *d = &c->ds[i];
        xstr(b, d->name);
        xu64(b, (uint64_t)d->kind);
        xstr(b, d->base);
        xstr(b, d->expr);
        xu64(b, d->base_batches);
        xu64(b, d->ncols);
        for (size_t k = 0; k < d->ncols; k++) {
            xu64(b, (uint64_t)d->cols[k].dtype);
            xstr(b, d->cols[k].name);
        }
        xu64(b, d->nb);
        for (size_t j = 0; j < d->nb; j++) {
            ds_jput(b, d->b[j].id, DS_BATCH_ID_LEN);
            xu64(b, d->b[j].rows);
            for (size_t k = 0; d->has_text && k < d->ncols; k++) xu64(b, d->b[j].ncat[k]);
        }
    }
    xu64(b, (uint32_t)crc32_z(0L, (const Bytef *)(b->p ? b->p : ""), b->n));
    if (b->err) {
        free(b->p);
        b->p = NULL;
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    return 0;
}

int ds_catalog_export(ds_store_t *s, int fresh, void **buf, size_t *len, uint64_t *version,
                      uint64_t *nonce)
{
    fam_set_error(0, NULL);
    if (!s || !version || !nonce || (buf && !len))
        return fam_set_error(FAM_EINVAL, "ds_catalog_export: NULL argument");
    const struct ds_cat *c = s->cache;
    if (fresh || !c) {
        int rc = ds_cat_current(s, &c);
        if (rc) return rc;
    }
    *version = c->version;
    *nonce = c->nonce;
    if (!buf) return 0;
    struct jbuf b;
    int rc = pack(s->name, c, &b);
    if (rc) return rc;
    *buf = b.p;
    *len = b.n;
    return 0;
}

void ds_catalog_held(const ds_store_t *s, uint64_t *version, uint64_t *nonce)
{
    *version = s && s->cache ? s->cache->version : 0;
    *nonce = s && s->cache ? s->cache->nonce : 0;
}

/* A reader over the buffer; bad turns 1 at the first read past its end. */
struct xin {
    const uint8_t *p;
    size_t len, at;
    int bad;
};

static const uint8_t *xtake(struct xin *r, size_t n)
{
    if (r->bad || n > r->len - r->at) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint64_t xget(struct xin *r)
{
    const uint8_t *p = xtake(r, 8);
    return p ? ds_get_u64(p) : 0;
}

/* A string of at most max bytes, without NUL bytes, as a new C string;
 * NULL when bad (r->bad set) or out of memory (*oom set). */
static char *xgets(struct xin *r, size_t max, int *oom)
{
    uint64_t n = xget(r);
    if (n > max) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = xtake(r, (size_t)n);
    if (!p) return NULL;
    if (memchr(p, '\0', (size_t)n)) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        *oom = 1;
        return NULL;
    }
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

static int unpack_set(struct xin *r, struct ds_cset *d, int *oom)
{
    uint64_t kind;
    if (!(d->name = xgets(r, DS_NAME_MAX, oom)) || ds_check_name(d->name, DS_NAME_MAX, "name"))
        return -1;
    kind = xget(r);
    if (kind < DS_KIND_BASE || kind > DS_KIND_COLUMN) return -1;
    d->kind = (ds_kind_t)kind;
    if (!(d->base = xgets(r, DS_NAME_MAX, oom)) || !(d->expr = xgets(r, DS_EXPR_MAX, oom)))
        return -1;
    if ((d->kind == DS_KIND_BASE) != (d->base[0] == '\0')) return -1;
    d->base_batches = xget(r);
    uint64_t ncols = xget(r);
    /* each column takes at least 16 bytes of the buffer */
    if (r->bad || ncols > (r->len - r->at) / 16) return -1;
    if (!(d->cols = calloc((size_t)ncols + 1, sizeof *d->cols))) return *oom = 1, -1;
    while (d->ncols < ncols) {
        uint64_t dt = xget(r);
        if (dt < DS_INT64 || dt > DS_DATETIME) return -1;
        struct ds_ccol *k = &d->cols[d->ncols];
        k->dtype = (ds_dtype_t)dt;
        if (dt == DS_TEXT) d->has_text = 1;
        if (!(k->name = xgets(r, DS_NAME_MAX, oom))) return -1;
        d->ncols++; /* its name is freed with the set from here on */
        if (ds_check_name(k->name, DS_NAME_MAX, "column name")) return -1;
    }
    uint64_t nb = xget(r);
    size_t per = DS_BATCH_ID_LEN + 8 + (d->has_text ? 8 * (size_t)ncols : 0);
    if (r->bad || nb > (r->len - r->at) / per) return -1;
    if (!(d->b = calloc((size_t)nb + 1, sizeof *d->b))) return *oom = 1, -1;
    d->cap = (size_t)nb + 1;
    for (; d->nb < nb; d->nb++) {
        struct ds_cbatch *x = &d->b[d->nb];
        const uint8_t *id = xtake(r, DS_BATCH_ID_LEN);
        if (!id) return -1;
        memcpy(x->id, id, DS_BATCH_ID_LEN);
        x->id[DS_BATCH_ID_LEN] = '\0';
        if (ds_check_id(x->id)) return -1;
        x->rows = xget(r);
        if (d->has_text) {
            if (!(x->ncat = malloc((size_t)ncols * sizeof *x->ncat))) return *oom = 1, -1;
            for (size_t k = 0; k < ncols; k++) x->ncat[k] = xget(r);
        }
    }
    return r->bad ? -1 : 0;
}

int ds_catalog_import(ds_store_t *s, const void *buf, size_t len)
{
    fam_set_error(0, NULL);
    if (!s || (!buf && len)) return fam_set_error(FAM_EINVAL, "ds_catalog_import: NULL argument");
    if (s->pinned)
        return fam_set_error(FAM_EBUSY, "ds_catalog_import: the handle is pinned (ds_pin)");
    const uint8_t *p = buf;
    if (len < 8 + 8 || memcmp(p, XMAGIC, 8) ||
        ds_get_u64(p + len - 8) != (uint32_t)crc32_z(0L, p, len - 8))
        return fam_set_error(FAM_EINVAL, "ds_catalog_import: not a catalog export, or damaged");
    struct xin r = {.p = p, .len = len - 8, .at = 8};
    int oom = 0;
    if (xget(&r) != XFORMAT)
        return fam_set_error(FAM_EINVAL, "ds_catalog_import: an export of another format");
    char *store = xgets(&r, DS_STORE_NAME_MAX, &oom);
    int same = store && strcmp(store, s->name) == 0;
    free(store);
    if (!same && !oom && !r.bad)
        return fam_set_error(FAM_EINVAL, "ds_catalog_import: an export of another store");
    struct ds_cat *c = calloc(1, sizeof *c);
    if (!c) oom = 1;
    if (c && !oom && !r.bad) {
        c->version = xget(&r);
        c->nonce = xget(&r);
        uint64_t nh = xget(&r);
        if (nh > DS_KEEP) r.bad = 1;
        for (size_t i = 0; !r.bad && i < nh; i++, c->nhist++) {
            c->hist_v[i] = xget(&r);
            c->hist_n[i] = xget(&r);
        }
        uint64_t nds = xget(&r);
        /* each dataset takes at least 64 bytes of the buffer */
        if (r.bad || nds > (r.len - r.at) / 64) r.bad = 1;
        else if (!(c->ds = calloc((size_t)nds + 1, sizeof *c->ds))) oom = 1;
        else c->cap = (size_t)nds + 1;
        for (; !r.bad && !oom && c->nds < nds; c->nds++)
            if (unpack_set(&r, &c->ds[c->nds], &oom)) {
                if (!oom) r.bad = 1;
                c->nds++; /* freed with the rest */
                break;
            }
        if (r.at != r.len || (c->version == 0) != (c->nonce == 0)) r.bad = 1;
    }
    if (oom || r.bad) {
        ds_cat_free(c);
        return oom ? fam_set_error(FAM_ENOMEM, "out of memory")
                   : fam_set_error(FAM_EINVAL, "ds_catalog_import: a malformed catalog export");
    }
    ds_cat_free(s->cache);
    s->cache = c;
    return 0;
}
