/* SPDX-License-Identifier: Apache-2.0 */
/* ds_catalog.c — the catalog: its JSON form, reading the head and the
 * snapshot it names, and publishing a new snapshot by compare-and-swap.
 *
 * A snapshot is never changed once written. A writer builds the next
 * catalog in memory, writes it to a new item "c.<v+1>.<nonce>", then
 * swings the head word from {v, old nonce} to {v+1, nonce} with one
 * 128-bit compare-and-swap; if another writer got there first the CAS
 * fails, the writer deletes its item, rereads and tries again. A reader
 * reads the head, then the snapshot it names, and believes it only if the
 * snapshot's own header carries the same {version, nonce} and its body
 * the checksum in the header: a snapshot deleted or reused under a slow
 * reader (DS_KEEP commits later) is seen as such and read again.
 *
 * The body (format 1):
 *   {"format":1, "version":V,
 *    "history":[["<v hex>","<nonce hex>"], ...],       newest first, <= DS_KEEP
 *    "datasets":[{"name":..., "kind":"base"|"index"|"column",
 *                 "base":..., "expr":..., "base_batches":N,
 *                 "columns":[{"name":..., "dtype":"int64"}, ...],
 *                 "batches":[["<id>", rows] or ["<id>", rows, [ncat...]], ...]},
 *                ...]}                                  in creation order
 * Everything in it is checked when it is parsed (types, lengths, counts,
 * names, dtypes, duplicates): a damaged or hostile snapshot is FAM_EIO. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <zlib.h>

#include "ds_internal.h"

/* ---- the in-memory catalog -------------------------------------------------- */

void ds_cset_clear(struct ds_cset *d)
{
    free(d->name);
    free(d->base);
    free(d->expr);
    for (size_t i = 0; i < d->ncols; i++) free(d->cols[i].name);
    free(d->cols);
    for (size_t i = 0; i < d->nb; i++) free(d->b[i].ncat);
    free(d->b);
    memset(d, 0, sizeof *d);
}

void ds_cat_free(struct ds_cat *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nds; i++) ds_cset_clear(&c->ds[i]);
    free(c->ds);
    free(c);
}

struct ds_cset *ds_cat_find(const struct ds_cat *c, const char *name)
{
    for (size_t i = 0; i < c->nds; i++)
        if (strcmp(c->ds[i].name, name) == 0) return &c->ds[i];
    return NULL;
}

static int oom(void) { return fam_set_error(FAM_ENOMEM, "out of memory"); }

/* Room in c for one more dataset (doubling); -1 if out of memory. */
static int cat_room(struct ds_cat *c)
{
    if (c->nds < c->cap) return 0;
    size_t cap = c->cap ? 2 * c->cap : 8;
    struct ds_cset *n = realloc(c->ds, cap * sizeof *n);
    if (!n) return -1;
    c->ds = n;
    c->cap = cap;
    return 0;
}

int ds_cat_add(struct ds_cat *c, const ds_dataset_def_t *def)
{
    if (c->nds >= DS_MAX_DATASETS)
        return fam_set_error(FAM_ENOSPACE, "the store holds %d datasets, the "
                             "most it can (DS_MAX_DATASETS)", DS_MAX_DATASETS);
    if (cat_room(c)) return oom();
    struct ds_cset *d = &c->ds[c->nds];
    memset(d, 0, sizeof *d);
    d->kind = def->kind ? def->kind : DS_KIND_BASE;
    d->name = strdup(def->name);
    d->base = strdup(def->base ? def->base : "");
    d->expr = strdup(def->expr ? def->expr : "");
    d->cols = calloc(def->ncols, sizeof *d->cols);
    if (!d->name || !d->base || !d->expr || !d->cols) {
        ds_cset_clear(d);
        return oom();
    }
    d->ncols = def->ncols;
    for (size_t i = 0; i < def->ncols; i++) {
        d->cols[i].dtype = def->cols[i].dtype;
        if (def->cols[i].dtype == DS_TEXT) d->has_text = 1;
        if (!(d->cols[i].name = strdup(def->cols[i].name))) {
            ds_cset_clear(d);
            return oom();
        }
    }
    c->nds++;
    return 0;
}

/* ---- JSON out ------------------------------------------------------------------ */

static json_object *hexstr(uint64_t v)
{
    char b[17];
    snprintf(b, sizeof b, "%016" PRIx64, v);
    return json_object_new_string(b);
}

/* The body of c through json-c's object tree: the reference the direct
 * writer below is checked against (DS_JSON_CHECK). malloc'd, in *out
 * (*len bytes, no NUL counted). */
static int cat_to_json_tree(const struct ds_cat *c, char **out, size_t *len)
{
    json_object *root = json_object_new_object(), *hist = json_object_new_array(),
                *sets = json_object_new_array();
    if (!root || !hist || !sets) goto nomem;
    json_object_object_add(root, "format", json_object_new_int64(DS_FORMAT));
    json_object_object_add(root, "version", json_object_new_int64((int64_t)c->version));
    json_object_object_add(root, "history", hist);
    json_object_object_add(root, "datasets", sets);
    for (size_t i = 0; i < c->nhist; i++) {
        json_object *h = json_object_new_array();
        json_object_array_add(h, hexstr(c->hist_v[i]));
        json_object_array_add(h, hexstr(c->hist_n[i]));
        json_object_array_add(hist, h);
    }
    for (size_t i = 0; i < c->nds; i++) {
        const struct ds_cset *d = &c->ds[i];
        json_object *o = json_object_new_object(), *cols = json_object_new_array(),
                    *bs = json_object_new_array();
        if (!o || !cols || !bs) goto nomem;
        json_object_array_add(sets, o);
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "kind", json_object_new_string(ds_kind_name(d->kind)));
        json_object_object_add(o, "base", json_object_new_string(d->base));
        json_object_object_add(o, "expr", json_object_new_string(d->expr));
        json_object_object_add(o, "base_batches",
                               json_object_new_int64((int64_t)d->base_batches));
        json_object_object_add(o, "columns", cols);
        json_object_object_add(o, "batches", bs);
        for (size_t k = 0; k < d->ncols; k++) {
            json_object *col = json_object_new_object();
            if (!col) goto nomem;
            json_object_object_add(col, "name", json_object_new_string(d->cols[k].name));
            json_object_object_add(col, "dtype",
                                   json_object_new_string(ds_dtype_name(d->cols[k].dtype)));
            json_object_array_add(cols, col);
        }
        for (size_t k = 0; k < d->nb; k++) {
            json_object *b = json_object_new_array();
            if (!b) goto nomem;
            json_object_array_add(b, json_object_new_string(d->b[k].id));
            json_object_array_add(b, json_object_new_int64((int64_t)d->b[k].rows));
            if (d->has_text) {
                json_object *nc = json_object_new_array();
                if (!nc) goto nomem;
                for (size_t j = 0; j < d->ncols; j++)
                    json_object_array_add(nc, json_object_new_int64((int64_t)d->b[k].ncat[j]));
                json_object_array_add(b, nc);
            }
            json_object_array_add(bs, b);
        }
    }
    size_t n = 0;
    const char *s = json_object_to_json_string_length(root, JSON_C_TO_STRING_PLAIN, &n);
    if (!s) goto nomem;
    if (n > DS_CATALOG_MAX) {
        json_object_put(root);
        return fam_set_error(FAM_ENOSPACE, "the catalog would take %zu bytes, more "
                             "than DS_CATALOG_MAX (%u): drop datasets or use "
                             "larger batches", n, DS_CATALOG_MAX);
    }
    char *copy = malloc(n + 1);
    if (!copy) goto nomem;
    memcpy(copy, s, n + 1);
    json_object_put(root);
    *out = copy;
    *len = n;
    return 0;
nomem:
    json_object_put(root);
    return oom();
}

/* A growing output buffer for the direct writer; err set once out of
 * memory (later writes do nothing). */
/* (struct jbuf and ds_jput: ds_internal.h) */
void ds_jput(struct jbuf *b, const char *s, size_t n)
{
    if (b->err) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->err = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void jlit(struct jbuf *b, const char *s) { ds_jput(b, s, strlen(s)); }

static void ju64(struct jbuf *b, uint64_t v)
{
    char t[24];
    ds_jput(b, t, (size_t)snprintf(t, sizeof t, "%" PRIu64, v));
}

/* A JSON string: '"', '\\' and control bytes escaped, every other byte as
 * it is (as json-c writes them). */
static void jw_str(struct jbuf *b, const char *s)
{
    ds_jput(b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        ds_jput(b, run, (size_t)(s - run));
        char e[8];
        if (ch == '"' || ch == '\\') {
            e[0] = '\\';
            e[1] = (char)ch;
            ds_jput(b, e, 2);
        } else {
            ds_jput(b, e, (size_t)snprintf(e, sizeof e, "\\u%04x", ch));
        }
        run = s + 1;
    }
    ds_jput(b, run, (size_t)(s - run));
    ds_jput(b, "\"", 1);
}

/* The body of c, written directly: the same JSON as cat_to_json_tree (the
 * same values; json-c also writes '/' as "\/"), some 5-10x faster, which
 * every commit pays over the whole catalog (0.3-0.6 ms for one of 100
 * datasets through json-c's objects). malloc'd, in *out (*len bytes, no
 * NUL counted). */
static int cat_to_json(const struct ds_cat *c, char **out, size_t *len)
{
    struct jbuf b = {0};
    jlit(&b, "{\"format\":");
    ju64(&b, DS_FORMAT);
    jlit(&b, ",\"version\":");
    ju64(&b, c->version);
    jlit(&b, ",\"history\":[");
    for (size_t i = 0; i < c->nhist; i++) {
        char h[48];
        ds_jput(&b, h, (size_t)snprintf(h, sizeof h, "%s[\"%016" PRIx64 "\",\"%016" PRIx64 "\"]",
                                      i ? "," : "", c->hist_v[i], c->hist_n[i]));
    }
    jlit(&b, "],\"datasets\":[");
    for (size_t i = 0; i < c->nds; i++) {
        const struct ds_cset *d = &c->ds[i];
        jlit(&b, i ? ",{\"name\":" : "{\"name\":");
        jw_str(&b, d->name);
        jlit(&b, ",\"kind\":");
        jw_str(&b, ds_kind_name(d->kind));
        jlit(&b, ",\"base\":");
        jw_str(&b, d->base);
        jlit(&b, ",\"expr\":");
        jw_str(&b, d->expr);
        jlit(&b, ",\"base_batches\":");
        ju64(&b, d->base_batches);
        jlit(&b, ",\"columns\":[");
        for (size_t k = 0; k < d->ncols; k++) {
            jlit(&b, k ? ",{\"name\":" : "{\"name\":");
            jw_str(&b, d->cols[k].name);
            jlit(&b, ",\"dtype\":");
            jw_str(&b, ds_dtype_name(d->cols[k].dtype));
            jlit(&b, "}");
        }
        jlit(&b, "],\"batches\":[");
        for (size_t k = 0; k < d->nb; k++) {
            jlit(&b, k ? ",[" : "[");
            jw_str(&b, d->b[k].id);
            jlit(&b, ",");
            ju64(&b, d->b[k].rows);
            if (d->has_text) {
                jlit(&b, ",[");
                for (size_t j = 0; j < d->ncols; j++) {
                    if (j) jlit(&b, ",");
                    ju64(&b, d->b[k].ncat[j]);
                }
                jlit(&b, "]");
            }
            jlit(&b, "]");
        }
        jlit(&b, "]}");
        if (b.n > DS_CATALOG_MAX) break;
    }
    jlit(&b, "]}");
    if (b.err) {
        free(b.p);
        return oom();
    }
    if (b.n > DS_CATALOG_MAX) {
        free(b.p);
        return fam_set_error(FAM_ENOSPACE, "the catalog would take %zu bytes or more, more "
                             "than DS_CATALOG_MAX (%u): drop datasets or use "
                             "larger batches", b.n, DS_CATALOG_MAX);
    }
    *out = b.p;
    *len = b.n;
    return 0;
}

/* DS_JSON_CHECK=1 in the environment (the tests set it): every catalog
 * written is also written through json-c's objects, and a commit whose two
 * bodies do not parse to equal JSON fails with FAM_EIO instead of writing
 * either. */
static int json_check(const struct ds_cat *c, const char *body, size_t len)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("DS_JSON_CHECK");
        on = e && *e == '1';
    }
    if (!on) return 0;
    char *ref = NULL;
    size_t rlen = 0;
    int rc = cat_to_json_tree(c, &ref, &rlen);
    if (rc) return rc;
    json_object *a = json_tokener_parse(ref), *b = NULL;
    json_tokener *t = json_tokener_new();
    if (t) b = json_tokener_parse_ex(t, body, (int)len);
    int same = a && b && json_object_equal(a, b);
    json_tokener_free(t);
    json_object_put(a);
    json_object_put(b);
    free(ref);
    return same ? 0 : fam_set_error(FAM_EIO, "DS_JSON_CHECK: the catalog written directly "
                                    "differs from json-c's (%zu bytes against %zu)", len, rlen);
}

/* ---- JSON in: every field checked ---------------------------------------------------- */

/* The catalog is damaged: FAM_EIO with where and what. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int bad(const char *store, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fam_set_error(FAM_EIO, "the catalog of dataset store '%s' is damaged: %s",
                         store, msg);
}

static const char *jstr(json_object *o, const char *key, size_t max, int empty_ok)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n || n > max || (!empty_ok && n == 0)) return NULL; /* embedded NUL */
    return s;
}

static int jint(json_object *o, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v)) return -1;
    if (!v || !json_object_is_type(v, json_type_int)) return -1;
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int aint(json_object *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!v || !json_object_is_type(v, json_type_int)) return -1;
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (errno || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int hex64(json_object *v, uint64_t *out)
{
    if (!v || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) != 16)
        return -1;
    const char *s = json_object_get_string(v);
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return -1;
        x = x << 4 | (uint64_t)d;
    }
    *out = x;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Are the n strings distinct? (sorted copy of the pointers) */
static int distinct(char **v, size_t n, int *ok)
{
    *ok = 1;
    if (n < 2) return 0;
    char **s = malloc(n * sizeof *s);
    if (!s) return oom();
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_str);
    for (size_t i = 1; i < n && *ok; i++)
        if (strcmp(s[i - 1], s[i]) == 0) *ok = 0;
    free(s);
    return 0;
}

static int parse_set(const char *store, json_object *o, struct ds_cat *c)
{
    if (!json_object_is_type(o, json_type_object)) return bad(store, "%s", "a dataset is not an object");
    const char *name = jstr(o, "name", DS_NAME_MAX, 0);
    if (!name || ds_check_name(name, DS_NAME_MAX, "dataset name"))
        return bad(store, "%s", "a dataset has no valid name");
    const char *kind = jstr(o, "kind", 16, 0), *base = jstr(o, "base", DS_NAME_MAX, 1),
               *expr = jstr(o, "expr", DS_EXPR_MAX, 1);
    ds_kind_t k = 0;
    if (kind) {
        for (int i = DS_KIND_BASE; i <= DS_KIND_COLUMN; i++)
            if (strcmp(kind, ds_kind_name((ds_kind_t)i)) == 0) k = (ds_kind_t)i;
    }
    if (!k || !base || !expr) return bad(store, "dataset '%s' has no valid kind, base or expr", name);
    int64_t bb;
    if (jint(o, "base_batches", 0, DS_MAX_BATCHES, &bb))
        return bad(store, "dataset '%s' has no valid base_batches", name);
    json_object *cols, *bs;
    if (!json_object_object_get_ex(o, "columns", &cols) ||
        !json_object_is_type(cols, json_type_array) ||
        !json_object_object_get_ex(o, "batches", &bs) ||
        !json_object_is_type(bs, json_type_array))
        return bad(store, "dataset '%s' has no column or batch list", name);
    size_t ncols = json_object_array_length(cols), nb = json_object_array_length(bs);
    if (ncols < 1 || ncols > DS_MAX_COLUMNS)
        return bad(store, "dataset '%s' has no columns or too many", name);
    if (nb > DS_MAX_BATCHES) return bad(store, "dataset '%s' has too many batches", name);
    ds_column_def_t *defs = calloc(ncols, sizeof *defs);
    if (!defs) return oom();
    for (size_t i = 0; i < ncols; i++) {
        json_object *col = json_object_array_get_idx(cols, i);
        const char *cn = col && json_object_is_type(col, json_type_object)
                             ? jstr(col, "name", DS_NAME_MAX, 0) : NULL;
        const char *dt = cn ? jstr(col, "dtype", 32, 0) : NULL;
        if (!cn || ds_check_name(cn, DS_NAME_MAX, "column name") || !dt ||
            ds_dtype_parse(dt, &defs[i].dtype) || strcmp(dt, ds_dtype_name(defs[i].dtype))) {
            free(defs);
            return bad(store, "dataset '%s' has a column without a valid name or dtype", name);
        }
        defs[i].name = cn;
    }
    int ok, rc;
    {
        char **names = malloc(ncols * sizeof *names);
        if (!names) { free(defs); return oom(); }
        for (size_t i = 0; i < ncols; i++) names[i] = (char *)defs[i].name;
        rc = distinct(names, ncols, &ok);
        free(names);
        if (rc) { free(defs); return rc; }
        if (!ok) { free(defs); return bad(store, "dataset '%s' has two columns of one name", name); }
    }
    ds_dataset_def_t def = {.name = name, .kind = k, .base = base, .expr = expr,
                            .ncols = ncols, .cols = defs};
    rc = ds_cat_add(c, &def);
    free(defs);
    if (rc) return rc == FAM_ENOSPACE ? bad(store, "%s", "too many datasets") : rc;
    struct ds_cset *d = &c->ds[c->nds - 1];
    d->base_batches = (uint64_t)bb;
    if (nb && !(d->b = calloc(nb, sizeof *d->b))) return oom();
    d->cap = nb;
    uint64_t total = 0;
    for (size_t i = 0; i < nb; i++) {
        json_object *b = json_object_array_get_idx(bs, i);
        size_t want = d->has_text ? 3 : 2;
        if (!b || !json_object_is_type(b, json_type_array) ||
            json_object_array_length(b) != want)
            return bad(store, "dataset '%s' has a malformed batch", name);
        json_object *id = json_object_array_get_idx(b, 0);
        int64_t rows;
        if (!json_object_is_type(id, json_type_string) ||
            json_object_get_string_len(id) != DS_BATCH_ID_LEN ||
            ds_check_id(json_object_get_string(id)) ||
            aint(json_object_array_get_idx(b, 1), 0, INT64_MAX / 16, &rows))
            return bad(store, "dataset '%s' has a batch without a valid id or row count", name);
        if ((uint64_t)rows > UINT64_MAX / 4 - total)
            return bad(store, "dataset '%s' has more rows than can be counted", name);
        total += (uint64_t)rows;
        struct ds_cbatch *cb = &d->b[d->nb++];
        memcpy(cb->id, json_object_get_string(id), DS_BATCH_ID_LEN + 1);
        cb->rows = (uint64_t)rows;
        if (!d->has_text) continue;
        json_object *nc = json_object_array_get_idx(b, 2);
        if (!json_object_is_type(nc, json_type_array) || json_object_array_length(nc) != ncols)
            return bad(store, "dataset '%s' has a batch without category counts", name);
        if (!(cb->ncat = calloc(ncols, sizeof *cb->ncat))) return oom();
        for (size_t j = 0; j < ncols; j++) {
            int64_t v;
            if (aint(json_object_array_get_idx(nc, j), 0, DS_CATEGORIES_MAX, &v) ||
                (v && d->cols[j].dtype != DS_TEXT))
                return bad(store, "dataset '%s' has a batch with a bad category count", name);
            cb->ncat[j] = (uint64_t)v;
        }
    }
    return 0;
}

/* Parse and check a body of len bytes that claims to be version v. */
static int cat_from_json(const char *store, const char *body, size_t len, uint64_t v,
                         uint64_t nonce, struct ds_cat **out)
{
    json_tokener *tok = json_tokener_new_ex(16);
    if (!tok) return oom();
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || e != json_tokener_success || end != len) {
        json_object_put(root);
        return bad(store, "snapshot body is not JSON (%s)", json_tokener_error_desc(e));
    }
    struct ds_cat *c = calloc(1, sizeof *c);
    if (!c) {
        json_object_put(root);
        return oom();
    }
    c->version = v;
    c->nonce = nonce;
    int rc = 0;
    int64_t fmt, ver;
    json_object *hist, *sets;
    if (!json_object_is_type(root, json_type_object) ||
        jint(root, "format", 0, INT64_MAX, &fmt) || jint(root, "version", 0, INT64_MAX, &ver) ||
        !json_object_object_get_ex(root, "history", &hist) ||
        !json_object_is_type(hist, json_type_array) ||
        !json_object_object_get_ex(root, "datasets", &sets) ||
        !json_object_is_type(sets, json_type_array)) {
        rc = bad(store, "%s", "the snapshot lacks format, version, history or datasets");
        goto out;
    }
    if (fmt != DS_FORMAT) {
        rc = fam_set_error(FAM_EIO, "the catalog of dataset store '%s' has format %lld; "
                           "this library reads %u", store, (long long)fmt, DS_FORMAT);
        goto out;
    }
    if ((uint64_t)ver != v) {
        rc = bad(store, "%s", "the snapshot's body names another version than its header");
        goto out;
    }
    size_t nh = json_object_array_length(hist), nds = json_object_array_length(sets);
    if (nh > DS_KEEP || nds > DS_MAX_DATASETS) {
        rc = bad(store, "%s", "too many history entries or datasets");
        goto out;
    }
    for (size_t i = 0; i < nh; i++) {
        json_object *h = json_object_array_get_idx(hist, i);
        if (!json_object_is_type(h, json_type_array) || json_object_array_length(h) != 2 ||
            hex64(json_object_array_get_idx(h, 0), &c->hist_v[i]) ||
            hex64(json_object_array_get_idx(h, 1), &c->hist_n[i]) || c->hist_v[i] >= v) {
            rc = bad(store, "%s", "a malformed history entry");
            goto out;
        }
        c->nhist++;
    }
    for (size_t i = 0; i < nds && !rc; i++)
        rc = parse_set(store, json_object_array_get_idx(sets, i), c);
    if (!rc && c->nds > 1) {
        char **names = malloc(c->nds * sizeof *names);
        int ok;
        if (!names) {
            rc = oom();
            goto out;
        }
        for (size_t i = 0; i < c->nds; i++) names[i] = c->ds[i].name;
        rc = distinct(names, c->nds, &ok);
        free(names);
        if (!rc && !ok) rc = bad(store, "%s", "two datasets of one name");
    }
out:
    json_object_put(root);
    if (rc) {
        ds_cat_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- head and snapshots in FAM --------------------------------------------------------- */

int ds_head_read(ds_store_t *s, uint64_t *version, uint64_t *nonce)
{
    uint8_t h[16];
    int rc = fam_get_blocking(s->f, h, s->head, 0, sizeof h);
    if (rc)
        return fam_set_error(rc, "cannot read the head of dataset store '%s': %s",
                             s->name, fam_last_error());
    *version = ds_get_u64(h);
    *nonce = ds_get_u64(h + 8);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Fetch and parse the snapshot {v, n}. FAM_EAGAIN-like outcome: returns 1
 * when the snapshot is missing or does not match (the caller rereads the
 * head to tell a race from damage); *why says what was wrong. */
static int fetch_snapshot(ds_store_t *s, uint64_t v, uint64_t n, struct ds_cat **out,
                          char *why, size_t whylen)
{
    if (v == 0) {
        if (n != 0) {
            snprintf(why, whylen, "the head word names version 0 with a nonce");
            return 1;
        }
        struct ds_cat *c = calloc(1, sizeof *c);
        if (!c) return oom();
        *out = c;
        return 0;
    }
    char name[64];
    ds_snap_name(name, sizeof name, v, n);
    fam_item_t *it;
    int rc = fam_lookup(s->f, name, s->region, &it);
    if (rc == FAM_ENOTFOUND) {
        snprintf(why, whylen, "snapshot '%s', which the head names, does not exist", name);
        return 1;
    }
    if (rc) return rc;
    uint64_t size = fam_item_size(it);
    if (size < DS_SNAP_HEADER || size - DS_SNAP_HEADER > DS_CATALOG_MAX) {
        fam_release(it);
        snprintf(why, whylen, "snapshot '%s' has %llu bytes", name, (unsigned long long)size);
        return 1;
    }
    uint8_t *buf = malloc(size + 1);
    if (!buf) {
        fam_release(it);
        return oom();
    }
    rc = fam_get_blocking(s->f, buf, it, 0, size);
    fam_release(it);
    if (rc == FAM_ENOTFOUND || rc == FAM_EOUTOFRANGE) { /* deleted under us */
        free(buf);
        snprintf(why, whylen, "snapshot '%s' went away while read", name);
        return 1;
    }
    if (rc) {
        free(buf);
        return rc;
    }
    uint64_t len = ds_get_u64(buf + 24);
    if (memcmp(buf, DS_SNAP_MAGIC, 8) || ds_get_u64(buf + 8) != v ||
        ds_get_u64(buf + 16) != n || len > size - DS_SNAP_HEADER ||
        (uint32_t)crc32_z(0L, buf + DS_SNAP_HEADER, (size_t)len) != ds_get_u32(buf + 32) ||
        ds_get_u32(buf + 36) != DS_FORMAT) {
        free(buf);
        snprintf(why, whylen, "snapshot '%s' fails its header or checksum check", name);
        return 1;
    }
    rc = cat_from_json(s->name, (const char *)buf + DS_SNAP_HEADER, len, v, n, out);
    free(buf);
    return rc;
}

/* The catalog the head names now, freshly parsed. */
static int cat_read(ds_store_t *s, struct ds_cat **out)
{
    char why[400] = "";
    uint64_t pv = UINT64_MAX, pn = 0;
    for (int tries = 0; tries < DS_READ_TRIES; tries++) {
        uint64_t v = 0, n = 0;
        int rc = ds_head_read(s, &v, &n);
        if (rc) return rc;
        if (s->cache && s->cache->version == v && s->cache->nonce == n) {
            *out = NULL; /* unchanged: the cache is current */
            return 0;
        }
        rc = fetch_snapshot(s, v, n, out, why, sizeof why);
        if (rc <= 0) return rc;
        /* missing or mismatched: a race with commits if the head moved */
        if (v == pv && n == pn)
            return fam_set_error(FAM_EIO, "the catalog of dataset store '%s' is "
                                 "damaged: %s", s->name, why);
        pv = v;
        pn = n;
        if (tries > 2) sleep_ms(1);
    }
    return fam_set_error(FAM_EIO, "cannot read a stable catalog of dataset store "
                         "'%s' (%d tries): %s", s->name, DS_READ_TRIES, why);
}

int ds_cat_current(ds_store_t *s, const struct ds_cat **out)
{
    struct ds_cat *c = NULL;
    int rc = cat_read(s, &c);
    if (rc) return rc;
    if (c) {
        ds_cat_free(s->cache);
        s->cache = c;
    }
    *out = s->cache;
    return 0;
}

/* A deep copy of dataset d into e (zeroed first); 0 or FAM_ENOMEM (e cleared). */
static int cset_copy(struct ds_cset *e, const struct ds_cset *d)
{
    memset(e, 0, sizeof *e);
    e->kind = d->kind;
    e->base_batches = d->base_batches;
    e->has_text = d->has_text;
    e->name = strdup(d->name);
    e->base = strdup(d->base);
    e->expr = strdup(d->expr);
    e->cols = calloc(d->ncols + 1, sizeof *e->cols);
    e->b = calloc(d->nb + 1, sizeof *e->b);
    if (!e->name || !e->base || !e->expr || !e->cols || !e->b) goto fail;
    e->cap = d->nb + 1;
    for (; e->ncols < d->ncols; e->ncols++) {
        e->cols[e->ncols].dtype = d->cols[e->ncols].dtype;
        if (!(e->cols[e->ncols].name = strdup(d->cols[e->ncols].name))) goto fail;
    }
    for (; e->nb < d->nb; e->nb++) {
        struct ds_cbatch *x = &e->b[e->nb];
        const struct ds_cbatch *y = &d->b[e->nb];
        memcpy(x->id, y->id, sizeof x->id);
        x->rows = y->rows;
        if (y->ncat) {
            if (!(x->ncat = malloc(d->ncols * sizeof *x->ncat))) goto fail;
            memcpy(x->ncat, y->ncat, d->ncols * sizeof *x->ncat);
        }
    }
    return 0;
fail:
    ds_cset_clear(e);
    return oom();
}

int ds_cat_add_copy(struct ds_cat *c, const struct ds_cset *d)
{
    if (cat_room(c)) return oom();
    int rc = cset_copy(&c->ds[c->nds], d);
    if (!rc) c->nds++;
    return rc;
}

int ds_cat_copy(const struct ds_cat *c, struct ds_cat **out)
{
    struct ds_cat *n = calloc(1, sizeof *n);
    if (!n || !(n->ds = calloc(c->nds + 1, sizeof *n->ds))) {
        free(n);
        return oom();
    }
    n->cap = c->nds + 1;
    for (; n->nds < c->nds; n->nds++)
        if (cset_copy(&n->ds[n->nds], &c->ds[n->nds])) {
            ds_cat_free(n);
            return oom();
        }
    n->version = c->version;
    n->nonce = c->nonce;
    memcpy(n->hist_v, c->hist_v, sizeof c->hist_v);
    memcpy(n->hist_n, c->hist_n, sizeof c->hist_n);
    n->nhist = c->nhist;
    *out = n;
    return 0;
}

int ds_cat_load_copy(ds_store_t *s, struct ds_cat **out)
{
    const struct ds_cat *c;
    int rc = ds_cat_current(s, &c);
    return rc ? rc : ds_cat_copy(c, out);
}

int ds_share_catalog(ds_store_t *dst, const ds_store_t *src)
{
    fam_set_error(0, NULL);
    if (!dst || !src) return fam_set_error(FAM_EINVAL, "ds_share_catalog: NULL store");
    if (strcmp(dst->name, src->name))
        return fam_set_error(FAM_EINVAL, "ds_share_catalog: '%s' and '%s' are not one store",
                             dst->name, src->name);
    /* a pinned handle answers from its catalog until ds_unpin: left as is */
    if (dst == src || !src->cache || dst->pinned ||
        (dst->cache && dst->cache->version >= src->cache->version))
        return 0;
    struct ds_cat *c;
    int rc = ds_cat_copy(src->cache, &c);
    if (rc) return rc;
    ds_cat_free(dst->cache);
    dst->cache = c;
    return 0;
}

/* A nonce: the time in the upper 32 bits (for ds_reclaim), random below,
 * never 0. */
static uint64_t new_nonce(void)
{
    uint64_t r = ds_random64() & 0xffffffffu;
    return (ds_now() & 0xffffffffu) << 32 | (r ? r : 1);
}

/* A new snapshot item for catalog *next, named after its version and a
 * nonce drawn here (set in next), in region r (through ds_in_region). */
struct new_snap {
    struct ds_cat *next;
    uint64_t size;
    char *name;
    size_t name_len;
    fam_item_t **it;
};

static int new_snap_in(ds_store_t *s, fam_region_t *r, void *arg)
{
    struct new_snap *a = arg;
    int rc = 0;
    for (int i = 0; i < 8; i++) { /* a nonce clash is rare; try another */
        a->next->nonce = new_nonce();
        ds_snap_name(a->name, a->name_len, a->next->version, a->next->nonce);
        rc = fam_allocate(s->f, a->name, a->size, s->mode, r, a->it);
        if (rc != FAM_EEXIST) break;
    }
    return rc;
}

int ds_cat_publish(ds_store_t *s, struct ds_cat *c, uint64_t *version)
{
    uint64_t ov = c->version, on = c->nonce;
    struct ds_cat next = *c; /* the same datasets, the next version's header */
    next.version = ov + 1;
    next.nhist = 0;
    uint64_t drop_v = 0, drop_n = 0;
    int drop = 0;
    if (ov) {
        next.hist_v[0] = ov;
        next.hist_n[0] = on;
        next.nhist = 1;
    }
    for (size_t i = 0; i < c->nhist; i++) {
        if (next.nhist < DS_KEEP) {
            next.hist_v[next.nhist] = c->hist_v[i];
            next.hist_n[next.nhist++] = c->hist_n[i];
        } else {
            drop = 1;
            drop_v = c->hist_v[i];
            drop_n = c->hist_n[i];
        }
    }
    char *body = NULL;
    size_t len = 0;
    int rc = cat_to_json(&next, &body, &len);
    if (!rc && (rc = json_check(&next, body, len))) free(body);
    if (rc) return rc;
    uint8_t *buf = malloc(DS_SNAP_HEADER + len);
    if (!buf) {
        free(body);
        return oom();
    }
    memset(buf, 0, DS_SNAP_HEADER);
    memcpy(buf + DS_SNAP_HEADER, body, len);
    free(body);
    /* in the region descriptor the store keeps (ds_in_region) */
    fam_item_t *it = NULL;
    char name[64];
    struct new_snap ns = {&next, DS_SNAP_HEADER + len, name, sizeof name, &it};
    rc = ds_in_region(s, new_snap_in, &ns);
    if (rc) {
        free(buf);
        return fam_set_error(rc, "cannot write a catalog snapshot of dataset store "
                             "'%s': %s", s->name, fam_last_error());
    }
    memcpy(buf, DS_SNAP_MAGIC, 8);
    ds_put_u64(buf + 8, next.version);
    ds_put_u64(buf + 16, next.nonce);
    ds_put_u64(buf + 24, len);
    ds_put_u32(buf + 32, (uint32_t)crc32_z(0L, buf + DS_SNAP_HEADER, (size_t)len));
    ds_put_u32(buf + 36, DS_FORMAT);
    rc = fam_put_blocking(s->f, buf, it, 0, DS_SNAP_HEADER + len);
    free(buf);
    if (rc) {
        int e = rc;
        char keep[600];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_deallocate(s->f, it);
        return fam_set_error(e, "cannot write catalog snapshot '%s': %s", name, keep);
    }
    ds_kill_point("publish", 1); /* snapshot written, head not swung */
    const uint64_t expect[2] = {ov, on}, want[2] = {next.version, next.nonce};
    uint64_t old[2];
    rc = fam_compare_swap_int128(s->f, s->head, 0, expect, want, old);
    if (rc || old[0] != ov || old[1] != on) {
        int e = rc;
        char keep[600];
        snprintf(keep, sizeof keep, "%s", fam_last_error());
        fam_deallocate(s->f, it);
        if (e)
            return fam_set_error(e, "cannot swing the head of dataset store '%s': %s",
                                 s->name, keep);
        fam_set_error(0, NULL);
        return 1; /* another writer committed first */
    }
    fam_release(it);
    ds_kill_point("publish", 2); /* committed, old snapshot not yet freed */
    c->version = next.version;
    c->nonce = next.nonce;
    memcpy(c->hist_v, next.hist_v, sizeof c->hist_v);
    memcpy(c->hist_n, next.hist_n, sizeof c->hist_n);
    c->nhist = next.nhist;
    if (version) *version = next.version;
    if (drop) { /* best effort: ds_reclaim finds it otherwise */
        char old_name[64];
        ds_snap_name(old_name, sizeof old_name, drop_v, drop_n);
        if (s->defer && s->nretired < DS_RETIRED_MAX) /* ds_defer_cleanup */
            snprintf(s->retired[s->nretired++], sizeof s->retired[0], "%s", old_name);
        else
            ds_delete_item(s, old_name);
    }
    fam_set_error(0, NULL);
    return 0;
}

/* Tests of crash safety: with DS_TEST_KILL_AT=<op>:<step> the process
 * kills itself with SIGKILL there (as FAM_TEST_KILL_AT in libfam). */
void ds_kill_point(const char *op, int step)
{
    const char *at = getenv("DS_TEST_KILL_AT");
    size_t n = strlen(op);
    if (at && !strncmp(at, op, n) && at[n] == ':' && atoi(at + n + 1) == step)
        raise(SIGKILL);
}

/* exported for ds_txn.c's retry loop */
int64_t ds_now_ms(void) { return now_ms(); }
void ds_sleep_ms(unsigned ms) { sleep_ms(ms); }
