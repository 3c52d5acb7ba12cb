/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_dsderive.c — derived datasets in kodiakd (issue 14): filter index
 * datasets, columns gathered through them, derived (computed) columns, and
 * bringing all of them up to date when their base grows.
 *
 * Everything derived is an ordinary dataset of the catalog (libdataset's
 * kinds "index" and "column"), with one batch per batch of its base, so
 * batch b of anything derived stands for batch b of the base at the root
 * of its lineage, and C programs read derived data as any other
 * (docs/DATASET.md, "Derived datasets"). Its `expr` is JSON, the recipe a
 * server needs to compute a new batch:
 *
 *   index  {"filter": {"column", "op": eq|ne|lt|le|gt|ge, "ct", "value"}}
 *          {"filter": {"column", "op": "between", "ct", "lo", "hi"}}
 *          {"filter": {"column", "op": "isin", "values": [{"ct", "value"}...]}}
 *          (a text column: "text" / "lo","hi" / "texts" instead)
 *          {"and": [index, index]}, {"or": [index, index]} (the same base)
 *   column {"gather": column}        (the base is an index dataset)
 *          {"derive": node}          node: {"col": name} | {"scalar": {dtype,value}}
 *          | {"binop": op, "ct", "rt", "a", "b"} | {"unop": neg|invert|abs, "a"}
 *          | {"astype": dtype, "a"} | {"where": node, "a", "b", "rt"}
 *
 * dtypes are decided by the client as for pdarrays (ops.py: NumPy on
 * one-element arrays) and sent as ct/rt; the server computes with binop's
 * kernels (kd_ew_binop / kd_ew_unop in kd_cmd_ops.c), so a derived column
 * has exactly the values the same expression on pdarrays gives.
 *
 * Bringing up to date (kd_ds_refresh) happens at the next access, never at
 * ingest: every command here, and the client before it reads a derived
 * dataset, refreshes the store's derived datasets in creation order (a
 * chain from its root). For each one whose base has batches it has not
 * processed, rank r computes the new batches b with b % nranks == r,
 * streaming one batch at a time (read the batch's inputs from FAM, compute,
 * write a new batch), and rank 0 commits all of them in ONE transaction:
 * append in batch order + set_progress + expect_batches(previous count).
 * Two servers doing the same at once: one commit wins, the other fails with
 * FAM_EBUSY, deletes its batches and takes the winner's. Nothing is ever
 * seen half done, and nothing stale: a read comes after a refresh.
 *
 * Commands (docs/PROTOCOL.md):
 *   ds_derive   {store, name, kind: index|column, base, expr, column, dtype}
 *               -> {created, processed, info}  (an existing one alike: reused)
 *   ds_refresh  {store}                 -> {processed}
 *   ds_derive_stats {store}             -> {datasets: {name: {updates, batches, last}}} */
#define _GNU_SOURCE
#include "kd.h"
#include "kd_ds.h"

#include <fam/fam.h>
#include <kodiak/dataset.h>
#include <kodiak/famarray.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DSD_CHUNK (1 << 20) /* elements per ds_read / fa_put call */
#define DSD_DEPTH 32        /* longest lineage followed */
#define DSD_STATS 256       /* datasets this server keeps counters for */

/* ---- counters (rank 0): batches each update computed -------------------------------- */

/* What this server did to bring one derived dataset up to date. */
typedef struct {
    char store[DS_STORE_NAME_MAX + 1];
    char name[DS_NAME_MAX + 1];
    uint64_t updates; /* updates that computed at least one batch */
    uint64_t batches; /* batches computed over all updates */
    uint64_t last;    /* batches computed by the latest update */
} dsd_stat;

static dsd_stat stats[DSD_STATS];
static size_t nstats;

static void stat_add(const char *store, const char *name, uint64_t n)
{
    size_t i = 0;
    while (i < nstats && (strcmp(stats[i].store, store) || strcmp(stats[i].name, name)))
        i++;
    if (i == nstats) {
        if (nstats == DSD_STATS)
            i = 0; /* full: reuse the oldest slot */
        else
            nstats++;
        memset(&stats[i], 0, sizeof stats[i]);
        snprintf(stats[i].store, sizeof stats[i].store, "%s", store);
        snprintf(stats[i].name, sizeof stats[i].name, "%s", name);
    }
    stats[i].updates++;
    stats[i].batches += n;
    stats[i].last = n;
}

/* ---- reading one batch of a column ---------------------------------------------------- */

void kd_ds_col_free(kd_ds_col *col)
{
    if (!col)
        return;
    free(col->data);
    if (col->cats)
        ds_free_names(col->cats, col->ncats);
    memset(col, 0, sizeof *col);
}

static int col_index(const ds_info_t *in, const char *column)
{
    for (size_t k = 0; k < in->ncols; k++)
        if (strcmp(in->cols[k].name, column) == 0)
            return (int)k;
    return -1;
}

/* Column k of batch b of `in`, stored in FAM, into out. */
static int read_stored(kd_cmd *c, ds_store_t *s, const ds_info_t *in, size_t k, size_t b,
                       kd_ds_col *out)
{
    const ds_batch_info_t *bi = &in->batches[b];
    ds_dtype_t t = in->cols[k].dtype;
    size_t w = fa_dtype_size(ds_dtype_storage(t));
    memset(out, 0, sizeof *out);
    out->dtype = t;
    out->n = bi->rows;
    out->data = malloc(bi->rows ? bi->rows * w : 1);
    if (!out->data)
        return kd_fail(c, "MemoryError", "out of memory for batch %zu of '%.200s' (%llu rows)",
                       b, in->name, (unsigned long long)bi->rows);
    for (uint64_t at = 0; at < bi->rows; at += DSD_CHUNK) {
        uint64_t m = bi->rows - at < DSD_CHUNK ? bi->rows - at : DSD_CHUNK;
        int rc = ds_read(s, in, b, k, at, m, (char *)out->data + at * w);
        if (rc) {
            char what[600];
            snprintf(what, sizeof what, "read column '%.200s' of batch %zu of '%.200s'",
                     in->cols[k].name, b, in->name);
            kd_ds_col_free(out);
            return kd_ds_fail(c, rc, what);
        }
    }
    if (t == DS_TEXT) {
        int rc = ds_read_categories(s, in, b, k, &out->cats, &out->ncats);
        if (rc) {
            kd_ds_col_free(out);
            return kd_ds_fail(c, rc, "read categories of a batch");
        }
        const int64_t *p = out->data;
        for (uint64_t i = 0; i < out->n; i++)
            if (p[i] < -1 || (p[i] >= 0 && (uint64_t)p[i] >= out->ncats)) {
                kd_ds_col_free(out);
                return kd_fail(c, "RuntimeError", "dataset '%.200s', batch %zu: a code is not "
                               "one of its categories (a damaged store: run store.verify())",
                               in->name, b);
            }
    }
    return 0;
}

static int info_of(kd_cmd *c, ds_store_t *s, const char *name, ds_info_t **out)
{
    int rc = ds_info(s, name, out);
    if (rc == FAM_ENOTFOUND)
        return kd_fail(c, "KeyError", "the store has no dataset '%.200s'", name);
    if (rc)
        return kd_ds_fail(c, rc, "dataset info");
    return 0;
}

static int read_batch(kd_cmd *c, ds_store_t *s, const char *dataset, const char *column,
                      size_t batch, kd_ds_col *out, int depth)
{
    if (depth > DSD_DEPTH)
        return kd_fail(c, "RuntimeError", "dataset '%.200s': a lineage longer than %d (a loop?)",
                       dataset, DSD_DEPTH);
    ds_info_t *in = NULL;
    if (info_of(c, s, dataset, &in))
        return -1;
    int rc = 0, k = col_index(in, column);
    if (batch >= in->nbatches) {
        rc = kd_fail(c, "IndexError", "dataset '%.200s' has %zu batches, not %zu", dataset,
                     in->nbatches, batch + 1);
    } else if (k >= 0) {
        rc = read_stored(c, s, in, (size_t)k, batch, out);
    } else {
        /* a derived column of this dataset, if it has the batch */
        char dn[2 * DS_NAME_MAX + 4];
        snprintf(dn, sizeof dn, "%s[%s]", dataset, column);
        ds_info_t *d = NULL;
        if (strlen(dn) <= DS_NAME_MAX && ds_info(s, dn, &d) == 0 && d->kind == DS_KIND_COLUMN &&
            d->ncols == 1 && batch < d->nbatches) {
            rc = read_stored(c, s, d, 0, batch, out);
        } else if (in->kind == DS_KIND_INDEX && in->ncols == 1) {
            /* gathered from the base through the index */
            kd_ds_col idx, src;
            rc = read_stored(c, s, in, 0, batch, &idx);
            if (!rc && (rc = read_batch(c, s, in->base, column, batch, &src, depth + 1)))
                kd_ds_col_free(&idx);
            if (!rc) {
                size_t w = fa_dtype_size(ds_dtype_storage(src.dtype));
                *out = src;
                out->n = idx.n;
                out->data = malloc(idx.n ? idx.n * w : 1);
                const int64_t *ix = idx.data;
                if (!out->data)
                    rc = kd_fail(c, "MemoryError", "out of memory gathering '%.200s'", column);
                for (uint64_t i = 0; !rc && i < idx.n; i++) {
                    if (ix[i] < 0 || (uint64_t)ix[i] >= src.n) {
                        rc = kd_fail(c, "RuntimeError", "index dataset '%.200s', batch %zu: row "
                                     "%lld is not in its base's batch of %llu rows (a damaged "
                                     "store)", dataset, batch, (long long)ix[i],
                                     (unsigned long long)src.n);
                        break;
                    }
                    memcpy((char *)out->data + i * w, (const char *)src.data + ix[i] * w, w);
                }
                free(src.data); /* the categories moved to out */
                kd_ds_col_free(&idx);
                if (rc)
                    kd_ds_col_free(out);
            }
        } else {
            rc = kd_fail(c, "KeyError", "dataset '%.200s' has no column '%.200s'", dataset,
                         column);
        }
        ds_free_info(d);
    }
    ds_free_info(in);
    return rc;
}

int kd_ds_read_batch(kd_cmd *c, ds_store_t *s, const char *dataset, const char *column,
                     size_t batch, kd_ds_col *out)
{
    memset(out, 0, sizeof *out);
    return read_batch(c, s, dataset, column, batch, out, 0);
}

/* ---- expressions -------------------------------------------------------------------- */

static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = jget(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* a {dtype, value} scalar in o[key], checked as kd_arg_scalar checks one */
static int jscalar(kd_cmd *c, json_object *o, const char *key, kd_scalar *s)
{
    json_object *keep = c->args;
    c->args = o;
    int rc = kd_arg_scalar(c, key, s);
    c->args = keep;
    return rc;
}

static int jdtype(kd_cmd *c, json_object *o, const char *key, kd_dtype *t)
{
    const char *v = jstr(o, key);
    if (!v || kd_dtype_parse(v, t))
        return kd_fail(c, "ValueError", "expression: '%s' must be int64, uint64, float64 or "
                       "bool", key);
    return 0;
}

static kd_dtype kd_of(ds_dtype_t t)
{
    return t == DS_UINT64 ? KD_UINT64 : t == DS_FLOAT64 ? KD_FLOAT64 : t == DS_BOOL ? KD_BOOL
                                                                                    : KD_INT64;
}

static ds_dtype_t ds_of(kd_dtype t)
{
    return t == KD_UINT64 ? DS_UINT64 : t == KD_FLOAT64 ? DS_FLOAT64 : t == KD_BOOL ? DS_BOOL
                                                                                    : DS_INT64;
}

/* A value of an expression over one batch: n elements, or a scalar. */
typedef struct {
    kd_dtype t;
    bool scalar;
    kd_scalar s;
    void *data; /* n elements of t (malloc'd) when not a scalar */
} ev;

/* v as n elements of dtype t in a new buffer */
static void *as_dtype(const ev *v, kd_dtype t, uint64_t n)
{
    size_t w = kd_dtype_size(t);
    char *p = malloc(n ? n * w : 1);
    if (!p)
        return NULL;
    if (v->scalar) {
        char one[8];
        kd_scalar_cast(&v->s, t, one);
        for (uint64_t i = 0; i < n; i++)
            memcpy(p + i * w, one, w);
    } else {
        kd_cast(v->data, v->t, p, t, (int64_t)n);
    }
    return p;
}

static int eval(kd_cmd *c, ds_store_t *s, const char *base, size_t b, json_object *e, uint64_t n,
                ev *out, int depth);

static int eval_binop(kd_cmd *c, ds_store_t *s, const char *base, size_t b, json_object *e,
                      uint64_t n, ev *out, int depth)
{
    const char *op = jstr(e, "binop");
    kd_dtype ct, rt;
    if (jdtype(c, e, "ct", &ct) || jdtype(c, e, "rt", &rt))
        return -1;
    ev x = {0}, y = {0};
    if (eval(c, s, base, b, jget(e, "a"), n, &x, depth + 1))
        return -1;
    if (eval(c, s, base, b, jget(e, "b"), n, &y, depth + 1)) {
        free(x.data);
        return -1;
    }
    bool half = false;
    if (y.scalar && !x.scalar && x.t == KD_FLOAT64) {
        double h;
        kd_scalar_cast(&y.s, KD_FLOAT64, &h);
        half = h == 0.5;
    }
    void *xp = as_dtype(&x, ct, n), *yp = as_dtype(&y, ct, n);
    bool cmp = !strcmp(op, "<") || !strcmp(op, "<=") || !strcmp(op, ">") || !strcmp(op, ">=") ||
               !strcmp(op, "==") || !strcmp(op, "!=");
    kd_dtype kt = cmp ? KD_BOOL : ct;
    void *r = malloc(n ? n * 8 : 1);
    int rc = 0;
    if (!xp || !yp || !r)
        rc = kd_fail(c, "MemoryError", "out of memory evaluating a derived column");
    if (!rc && cmp && rt != KD_BOOL)
        rc = kd_fail(c, "TypeError", "comparison '%s' gives bool, not %s", op, kd_dtype_name(rt));
    const char *why = rc ? NULL : kd_ew_binop(op, ct, xp, yp, half, r, (int64_t)n);
    if (why)
        rc = kd_fail(c, strstr(why, "negative integer") ? "ValueError" : "TypeError",
                     "operator '%s' %s", op, why);
    free(xp);
    free(yp);
    free(x.data);
    free(y.data);
    if (!rc && kt != rt) {
        void *r2 = malloc(n ? n * 8 : 1);
        if (!r2)
            rc = kd_fail(c, "MemoryError", "out of memory evaluating a derived column");
        else
            kd_cast(r, kt, r2, rt, (int64_t)n);
        free(r);
        r = r2;
    }
    if (rc) {
        free(r);
        return -1;
    }
    out->t = rt;
    out->data = r;
    return 0;
}

static int eval(kd_cmd *c, ds_store_t *s, const char *base, size_t b, json_object *e, uint64_t n,
                ev *out, int depth)
{
    memset(out, 0, sizeof *out);
    if (depth > 256 || !e || !json_object_is_type(e, json_type_object))
        return kd_fail(c, "ValueError", "a derived column's expression is not valid");
    const char *col = jstr(e, "col"), *un = jstr(e, "unop"), *cast = jstr(e, "astype");
    if (col) {
        kd_ds_col v;
        if (kd_ds_read_batch(c, s, base, col, b, &v))
            return -1;
        if (v.dtype == DS_TEXT) {
            kd_ds_col_free(&v);
            return kd_fail(c, "TypeError", "column '%.200s' is text: expressions take numbers, "
                           "bool and datetime columns", col);
        }
        if (v.n != n) {
            kd_ds_col_free(&v);
            return kd_fail(c, "RuntimeError", "column '%.200s' has %llu rows in batch %zu, "
                           "expected %llu", col, (unsigned long long)v.n, b,
                           (unsigned long long)n);
        }
        out->t = kd_of(v.dtype);
        out->data = v.data;
        v.data = NULL;
        kd_ds_col_free(&v);
        return 0;
    }
    if (jget(e, "scalar")) {
        if (jscalar(c, e, "scalar", &out->s))
            return -1;
        out->scalar = true;
        out->t = out->s.dtype;
        return 0;
    }
    if (jstr(e, "binop"))
        return eval_binop(c, s, base, b, e, n, out, depth);
    if (un || cast) {
        kd_dtype t = 0;
        if (cast && jdtype(c, e, "astype", &t))
            return -1;
        ev x;
        if (eval(c, s, base, b, jget(e, "a"), n, &x, depth + 1))
            return -1;
        void *xp = as_dtype(&x, cast ? t : x.t, n);
        free(x.data);
        if (!xp)
            return kd_fail(c, "MemoryError", "out of memory evaluating a derived column");
        out->t = cast ? t : x.t;
        out->data = xp;
        if (un) {
            const char *why = kd_ew_unop(un, x.t, xp, xp, (int64_t)n);
            if (why) {
                free(xp);
                out->data = NULL;
                return kd_fail(c, "TypeError", "%s: %s", un, why);
            }
        }
        return 0;
    }
    if (jget(e, "where")) {
        kd_dtype rt;
        if (jdtype(c, e, "rt", &rt))
            return -1;
        ev k, x, y;
        if (eval(c, s, base, b, jget(e, "where"), n, &k, depth + 1))
            return -1;
        if (eval(c, s, base, b, jget(e, "a"), n, &x, depth + 1)) {
            free(k.data);
            return -1;
        }
        if (eval(c, s, base, b, jget(e, "b"), n, &y, depth + 1)) {
            free(k.data);
            free(x.data);
            return -1;
        }
        uint8_t *kp = as_dtype(&k, KD_BOOL, n);
        char *xp = as_dtype(&x, rt, n), *yp = as_dtype(&y, rt, n);
        free(k.data);
        free(x.data);
        free(y.data);
        if (!kp || !xp || !yp) {
            free(kp);
            free(xp);
            free(yp);
            return kd_fail(c, "MemoryError", "out of memory evaluating a derived column");
        }
        size_t w = kd_dtype_size(rt);
        for (uint64_t i = 0; i < n; i++)
            if (!kp[i])
                memcpy(xp + i * w, yp + i * w, w);
        free(kp);
        free(yp);
        out->t = rt;
        out->data = xp;
        return 0;
    }
    return kd_fail(c, "ValueError", "a derived column's expression has an unknown node");
}

/* ---- filters ---------------------------------------------------------------------------- */

static const char *cmp_op(const char *op)
{
    static const char *const names[][2] = {{"eq", "=="}, {"ne", "!="}, {"lt", "<"},
                                           {"le", "<="}, {"gt", ">"},  {"ge", ">="}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(op, names[i][0]))
            return names[i][1];
    return NULL;
}

/* mask |= (or &= when and_into) (col OP scalar o[key]) computed in ct, as
 * binop; `isin`: NaN among the values finds NaN, as pandas' isin does */
static int num_cmp(kd_cmd *c, const kd_ds_col *v, const char *op, json_object *o,
                   const char *key, kd_dtype ct, uint8_t *mask, bool and_into, bool isin)
{
    kd_scalar sc;
    if (jscalar(c, o, key, &sc))
        return -1;
    ev x = {.t = kd_of(v->dtype), .data = v->data}, y = {.t = sc.dtype, .scalar = true, .s = sc};
    void *xp = as_dtype(&x, ct, v->n), *yp = as_dtype(&y, ct, v->n);
    uint8_t *r = malloc(v->n ? v->n : 1);
    int rc = 0;
    if (!xp || !yp || !r)
        rc = kd_fail(c, "MemoryError", "out of memory evaluating a filter");
    const char *why = rc ? NULL : kd_ew_binop(op, ct, xp, yp, false, r, (int64_t)v->n);
    if (why)
        rc = kd_fail(c, "TypeError", "filter '%s': %s", op, why);
    for (uint64_t i = 0; !rc && i < v->n; i++)
        mask[i] = and_into ? (mask[i] & r[i]) : (mask[i] | r[i]);
    /* pandas' isin finds NaN among the values (a hash lookup, not ==) */
    if (!rc && isin && ct == KD_FLOAT64 && sc.dtype == KD_FLOAT64 &&
        isnan(sc.v.f))
        for (uint64_t i = 0; i < v->n; i++)
            mask[i] |= isnan(((const double *)xp)[i]);
    free(xp);
    free(yp);
    free(r);
    return rc;
}

/* text: which categories pass, then which rows */
static int text_filter(kd_cmd *c, const kd_ds_col *v, const char *op, json_object *f,
                       uint8_t *mask)
{
    uint8_t *pass = calloc(v->ncats + 1, 1);
    if (!pass)
        return kd_fail(c, "MemoryError", "out of memory evaluating a filter");
    const char *cop = cmp_op(op);
    json_object *texts = jget(f, "texts");
    const char *t = jstr(f, "text"), *lo = jstr(f, "lo"), *hi = jstr(f, "hi");
    for (size_t k = 0; k < v->ncats; k++) {
        const char *x = v->cats[k];
        bool p = false;
        if (cop && t) {
            int d = strcmp(x, t);
            p = !strcmp(op, "eq") ? d == 0 : !strcmp(op, "ne") ? d != 0 : !strcmp(op, "lt") ? d < 0
                : !strcmp(op, "le") ? d <= 0 : !strcmp(op, "gt") ? d > 0 : d >= 0;
        } else if (!strcmp(op, "between") && lo && hi) {
            p = strcmp(x, lo) >= 0 && strcmp(x, hi) <= 0;
        } else if (!strcmp(op, "isin") && texts && json_object_is_type(texts, json_type_array)) {
            for (size_t j = 0; !p && j < json_object_array_length(texts); j++) {
                json_object *tj = json_object_array_get_idx(texts, j);
                p = json_object_is_type(tj, json_type_string) &&
                    !strcmp(x, json_object_get_string(tj));
            }
        } else {
            free(pass);
            return kd_fail(c, "ValueError", "a text filter needs text values");
        }
        pass[k] = p;
    }
    const int64_t *codes = v->data;
    bool ne = !strcmp(op, "ne"); /* a missing value is unequal to everything */
    for (uint64_t i = 0; i < v->n; i++)
        mask[i] = codes[i] < 0 ? ne : pass[codes[i]];
    free(pass);
    return 0;
}

/* the rows of batch b of `base` that pass filter f */
static int eval_filter(kd_cmd *c, ds_store_t *s, const char *base, size_t b, json_object *f,
                       kd_ds_col *out)
{
    const char *column = jstr(f, "column"), *op = jstr(f, "op");
    if (!column || !op)
        return kd_fail(c, "ValueError", "a filter needs a column and an op");
    kd_ds_col v;
    if (kd_ds_read_batch(c, s, base, column, b, &v))
        return -1;
    uint8_t *mask = calloc(v.n ? v.n : 1, 1);
    int rc = mask ? 0 : kd_fail(c, "MemoryError", "out of memory evaluating a filter");
    kd_dtype ct = KD_FLOAT64;
    if (!rc && v.dtype == DS_TEXT)
        rc = text_filter(c, &v, op, f, mask);
    else if (!rc && strcmp(op, "isin") && jdtype(c, f, "ct", &ct))
        rc = -1;
    else if (!rc && cmp_op(op))
        rc = num_cmp(c, &v, cmp_op(op), f, "value", ct, mask, false, false);
    else if (!rc && !strcmp(op, "between")) {
        memset(mask, 1, v.n);
        rc = num_cmp(c, &v, ">=", f, "lo", ct, mask, true, false);
        if (!rc)
            rc = num_cmp(c, &v, "<=", f, "hi", ct, mask, true, false);
    } else if (!rc && !strcmp(op, "isin")) {
        json_object *vals = jget(f, "values");
        if (!vals || !json_object_is_type(vals, json_type_array))
            rc = kd_fail(c, "ValueError", "isin needs a list of values");
        for (size_t j = 0; !rc && j < json_object_array_length(vals); j++) {
            json_object *o = json_object_array_get_idx(vals, j);
            if (jdtype(c, o, "ct", &ct) || num_cmp(c, &v, "==", o, "value", ct, mask, false, true))
                rc = -1;
        }
    } else if (!rc) {
        rc = kd_fail(c, "ValueError", "unknown filter op '%.20s' (eq ne lt le gt ge between "
                     "isin)", op);
    }
    uint64_t np = 0;
    for (uint64_t i = 0; !rc && i < v.n; i++)
        np += mask[i];
    int64_t *rows = rc ? NULL : malloc(np ? np * 8 : 1);
    if (!rc && !rows)
        rc = kd_fail(c, "MemoryError", "out of memory evaluating a filter");
    for (uint64_t i = 0, k = 0; !rc && i < v.n; i++)
        if (mask[i])
            rows[k++] = (int64_t)i;
    free(mask);
    kd_ds_col_free(&v);
    if (rc)
        return -1;
    memset(out, 0, sizeof *out);
    out->dtype = DS_INT64;
    out->n = np;
    out->data = rows;
    return 0;
}

/* and/or of two index datasets on one base: sorted intersection or union */
static int eval_combine(kd_cmd *c, ds_store_t *s, size_t b, json_object *pair, bool and_,
                        kd_ds_col *out)
{
    const char *a = pair && json_object_is_type(pair, json_type_array) &&
                            json_object_array_length(pair) == 2
                        ? json_object_get_string(json_object_array_get_idx(pair, 0)) : NULL;
    const char *z = a ? json_object_get_string(json_object_array_get_idx(pair, 1)) : NULL;
    if (!a || !z)
        return kd_fail(c, "ValueError", "and/or needs two index datasets");
    kd_ds_col x, y;
    if (kd_ds_read_batch(c, s, a, "index", b, &x))
        return -1;
    if (kd_ds_read_batch(c, s, z, "index", b, &y)) {
        kd_ds_col_free(&x);
        return -1;
    }
    int64_t *r = malloc((x.n + y.n) ? (x.n + y.n) * 8 : 1);
    if (!r) {
        kd_ds_col_free(&x);
        kd_ds_col_free(&y);
        return kd_fail(c, "MemoryError", "out of memory combining filters");
    }
    const int64_t *p = x.data, *q = y.data;
    uint64_t i = 0, j = 0, k = 0;
    while (i < x.n || j < y.n) {
        if (j == y.n || (i < x.n && p[i] < q[j])) {
            if (!and_)
                r[k++] = p[i];
            i++;
        } else if (i == x.n || q[j] < p[i]) {
            if (!and_)
                r[k++] = q[j];
            j++;
        } else {
            r[k++] = p[i];
            i++;
            j++;
        }
    }
    kd_ds_col_free(&x);
    kd_ds_col_free(&y);
    memset(out, 0, sizeof *out);
    out->dtype = DS_INT64;
    out->n = k;
    out->data = r;
    return 0;
}

/* batch b of derived dataset `in` (its base current) */
static int compute_batch(kd_cmd *c, ds_store_t *s, const ds_info_t *in, json_object *e,
                         size_t b, kd_ds_col *out)
{
    json_object *v;
    if ((v = jget(e, "filter")))
        return eval_filter(c, s, in->base, b, v, out);
    if ((v = jget(e, "and")) || (v = jget(e, "or")))
        return eval_combine(c, s, b, v, jget(e, "and") != NULL, out);
    if ((v = jget(e, "gather"))) {
        if (!json_object_is_type(v, json_type_string))
            return kd_fail(c, "ValueError", "gather needs a column name");
        return kd_ds_read_batch(c, s, in->base, json_object_get_string(v), b, out);
    }
    if ((v = jget(e, "derive"))) {
        /* the batch's rows: those of the base's batch */
        ds_info_t *bi;
        if (info_of(c, s, in->base, &bi))
            return -1;
        uint64_t n = b < bi->nbatches ? bi->batches[b].rows : 0;
        ds_free_info(bi);
        ev r;
        if (eval(c, s, in->base, b, v, n, &r, 0))
            return -1;
        memset(out, 0, sizeof *out);
        out->n = n;
        out->dtype = ds_of(r.t);
        out->data = r.scalar ? as_dtype(&r, r.t, n) : r.data;
        if (!out->data)
            return kd_fail(c, "MemoryError", "out of memory evaluating a derived column");
        return 0;
    }
    return kd_fail(c, "ValueError", "dataset '%.200s': its expression is not one this server "
                   "knows", in->name);
}

/* ---- bringing up to date -------------------------------------------------------------- */

/* What a rank tells rank 0 about a batch it computed. */
typedef struct {
    uint64_t b;         /* base batch */
    ds_batch_ref_t ref; /* the new batch */
} dsd_done;

/* Write col as a new (uncommitted) batch of one column of dtype t. */
static int write_batch(kd_cmd *c, ds_store_t *s, ds_dtype_t t, const kd_ds_col *col,
                       ds_batch_t **out)
{
    ds_batch_t *bh;
    int rc = ds_batch_begin_dtypes(s, 1, &t, col->n, &bh);
    if (rc)
        return kd_ds_fail(c, rc, "begin a derived batch");
    size_t w = fa_dtype_size(ds_dtype_storage(t));
    for (uint64_t at = 0; !rc && at < col->n; at += DSD_CHUNK) {
        uint64_t m = col->n - at < DSD_CHUNK ? col->n - at : DSD_CHUNK;
        rc = fa_put(ds_batch_array(bh, 0), at, m, (const char *)col->data + at * w);
    }
    if (!rc && t == DS_TEXT)
        rc = ds_batch_set_categories(bh, 0, col->ncats, (const char *const *)col->cats);
    if (rc) {
        kd_ds_fail(c, rc, "write a derived batch");
        ds_batch_abort(bh);
        return -1;
    }
    *out = bh;
    return 0;
}

/* Collective: bring derived dataset `name` up to date with its base (whose
 * own lineage is current). *done gets the batches computed here. */
static int refresh_one(kd_cmd *c, ds_store_t *s, const char *store, const char *name,
                       uint64_t *done)
{
    /* rank 0 decides what to do: {have, want}; want == have: nothing */
    struct { uint64_t have, want; int32_t ok; } plan = {0, 0, 1};
    ds_info_t *in = NULL, *bi = NULL;
    int rc = info_of(c, s, name, &in);
    if (!rc && c->rank == 0) {
        if (in->kind == DS_KIND_BASE || ds_info(s, in->base, &bi) != 0)
            plan.ok = 0; /* a base dataset, or a lineage whose base is gone: nothing to do */
        else if (bi->nbatches < in->base_batches || in->nbatches != in->base_batches)
            rc = kd_fail(c, "RuntimeError", "derived dataset '%.200s' has processed %llu "
                         "batches of '%.200s', which has %zu: the base was dropped and made "
                         "again; drop the derived dataset", name,
                         (unsigned long long)in->base_batches, in->base, bi->nbatches);
        else {
            plan.have = in->base_batches;
            plan.want = bi->nbatches;
        }
    }
    ds_free_info(bi);
    if (kd_agree(c, rc)) {
        ds_free_info(in);
        return -1;
    }
    MPI_Bcast(&plan, sizeof plan, MPI_BYTE, 0, c->comm);
    *done = 0;
    if (!plan.ok || plan.want == plan.have) {
        ds_free_info(in);
        return 0;
    }
    json_object *e = json_tokener_parse(in->expr);
    ds_dtype_t t = in->ncols == 1 ? in->cols[0].dtype : 0;
    if (!e || !t)
        rc = kd_fail(c, "ValueError", "derived dataset '%.200s' has an expression this server "
                     "cannot read", name);
    /* my batches, one at a time: read, compute, write */
    uint64_t mine = 0;
    for (uint64_t b = plan.have; b < plan.want; b++)
        mine += (b % (uint64_t)c->nranks) == (uint64_t)c->rank;
    ds_batch_t **hs = calloc(mine + 1, sizeof *hs);
    dsd_done *dn = calloc(mine + 1, sizeof *dn);
    if (!rc && (!hs || !dn))
        rc = kd_fail(c, "MemoryError", "out of memory");
    uint64_t nh = 0;
    for (uint64_t b = plan.have; !rc && b < plan.want; b++) {
        if ((b % (uint64_t)c->nranks) != (uint64_t)c->rank)
            continue;
        kd_ds_col col = {0};
        rc = compute_batch(c, s, in, e, (size_t)b, &col);
        if (!rc && col.dtype != t && !(t == DS_DATETIME && col.dtype == DS_INT64) &&
            !(t == DS_INT64 && col.dtype == DS_DATETIME))
            rc = kd_fail(c, "RuntimeError", "derived dataset '%.200s': batch %llu came out %s, "
                         "not %s", name, (unsigned long long)b, ds_dtype_name(col.dtype),
                         ds_dtype_name(t));
        if (!rc && !(rc = write_batch(c, s, t, &col, &hs[nh]))) {
            dn[nh].b = b;
            ds_batch_ref(hs[nh], &dn[nh].ref);
            nh++;
        }
        kd_ds_col_free(&col);
    }
    json_object_put(e);
    /* every rank's refs to rank 0 */
    int ok = kd_agree(c, rc) == 0;
    int cnt = (int)nh * (int)sizeof(dsd_done);
    int *cnts = c->rank == 0 ? calloc((size_t)c->nranks, sizeof *cnts) : NULL;
    int *dsp = c->rank == 0 ? calloc((size_t)c->nranks, sizeof *dsp) : NULL;
    dsd_done *all = NULL;
    MPI_Gather(&cnt, 1, MPI_INT, cnts, 1, MPI_INT, 0, c->comm);
    if (c->rank == 0) {
        int tot = 0;
        for (int r = 0; r < c->nranks; r++) {
            dsp[r] = tot;
            tot += cnts[r];
        }
        all = malloc((size_t)tot + 1);
    }
    MPI_Gatherv(dn, cnt, MPI_BYTE, all, cnts, dsp, MPI_BYTE, 0, c->comm);
    int32_t result = 0; /* 0 committed, 1 lost to another server, -1 failed */
    if (ok && c->rank == 0) {
        uint64_t n = plan.want - plan.have;
        ds_batch_ref_t *refs = calloc(n, sizeof *refs);
        for (uint64_t i = 0; refs && i < n; i++) {
            dsd_done *d = &all[i];
            refs[d->b - plan.have] = d->ref; /* in batch order */
        }
        ds_txn_t *tx = NULL;
        int lrc = refs ? ds_txn_begin(s, &tx) : FAM_ENOMEM;
        if (!lrc)
            lrc = ds_txn_expect_batches(tx, name, plan.have);
        if (!lrc)
            lrc = ds_txn_append(tx, name, (size_t)n, refs);
        if (!lrc)
            lrc = ds_txn_set_progress(tx, name, plan.want);
        if (!lrc)
            lrc = ds_txn_commit(tx, NULL);
        else
            ds_txn_abort(tx);
        free(refs);
        if (lrc == FAM_EBUSY)
            result = 1;
        else if (lrc) {
            result = -1;
            kd_ds_fail(c, lrc, "commit the new batches of a derived dataset");
        }
    }
    free(all);
    free(cnts);
    free(dsp);
    MPI_Bcast(&result, 1, MPI_INT32_T, 0, c->comm);
    for (uint64_t i = 0; i < nh; i++) {
        if (ok && result == 0)
            ds_batch_close(hs[i]);
        else
            ds_batch_abort(hs[i]); /* not committed: deleted */
    }
    free(hs);
    free(dn);
    ds_free_info(in);
    if (!ok)
        return -1;
    if (result < 0) {
        kd_ds_store_forget(store);
        return kd_agree(c, c->rank == 0 ? -1 : 0);
    }
    if (result == 0) {
        *done = plan.want - plan.have;
        if (c->rank == 0)
            stat_add(store, name, *done);
    }
    return 0; /* result 1: another server brought it up to date first */
}

/* Rank 0: the derived datasets of one catalog version that are behind,
 * in creation order, as a JSON array of names. A derived dataset has one
 * batch per batch of the base at the root of its lineage, so it is behind
 * when it has fewer than the root has now. */
static int behind(kd_cmd *c, ds_store_t *s, json_object **out)
{
    ds_snapshot_t *snap = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc = ds_snapshot(s, &snap);
    if (!rc)
        rc = ds_snapshot_list(snap, &names, &n);
    if (rc) {
        ds_snapshot_free(snap);
        return kd_ds_fail(c, rc, "list the store's datasets");
    }
    ds_info_t **in = calloc(n + 1, sizeof *in);
    json_object *list = json_object_new_array();
    for (size_t i = 0; in && i < n; i++)
        if (ds_snapshot_info(snap, names[i], &in[i]))
            in[i] = NULL;
    for (size_t i = 0; in && i < n; i++) {
        if (!in[i] || in[i]->kind == DS_KIND_BASE)
            continue;
        /* follow the lineage to its root */
        const ds_info_t *r = in[i];
        for (int d = 0; r && r->kind != DS_KIND_BASE && d <= DSD_DEPTH; d++) {
            const ds_info_t *next = NULL;
            for (size_t k = 0; k < n && !next; k++)
                if (in[k] && strcmp(in[k]->name, r->base) == 0)
                    next = in[k];
            r = next;
        }
        if (r && r->kind == DS_KIND_BASE && r->nbatches != in[i]->base_batches)
            json_object_array_add(list, json_object_new_string(in[i]->name));
    }
    for (size_t i = 0; in && i < n; i++)
        ds_free_info(in[i]);
    free(in);
    ds_free_names(names, n);
    ds_snapshot_free(snap);
    *out = list;
    return 0;
}

int kd_ds_refresh(kd_cmd *c, ds_store_t *s, const char *store, uint64_t *processed)
{
    json_object *list = NULL;
    int rc = c->rank == 0 ? behind(c, s, &list) : 0;
    if (kd_agree(c, rc)) {
        json_object_put(list);
        return -1;
    }
    /* broadcast it */
    const char *txt = c->rank == 0 ? json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN)
                                   : NULL;
    long long len = txt ? (long long)strlen(txt) : 0;
    MPI_Bcast(&len, 1, MPI_LONG_LONG, 0, c->comm);
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        abort();
    if (txt)
        memcpy(buf, txt, (size_t)len);
    MPI_Bcast(buf, (int)len, MPI_CHAR, 0, c->comm);
    buf[len] = '\0';
    json_object_put(list);
    list = json_tokener_parse(buf);
    free(buf);
    uint64_t total = 0;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        const char *nm = json_object_get_string(json_object_array_get_idx(list, i));
        uint64_t d = 0;
        if (refresh_one(c, s, store, nm, &d)) {
            json_object_put(list);
            return -1;
        }
        total += d;
    }
    json_object_put(list);
    if (processed)
        *processed = total;
    return 0;
}

/* ---- commands ---------------------------------------------------------------------------- */

static int store_arg(kd_cmd *c, const char **store, ds_store_t **s)
{
    if (kd_arg_str(c, "store", store))
        return -1;
    return kd_ds_store(c, *store, s);
}

static int cmd_ds_refresh(kd_cmd *c)
{
    const char *store;
    ds_store_t *s;
    uint64_t n = 0;
    if (store_arg(c, &store, &s) || kd_ds_refresh(c, s, store, &n))
        return -1;
    kd_result_i64(c, "processed", (int64_t)n);
    return 0;
}

static int cmd_ds_derive(kd_cmd *c)
{
    const char *store, *name, *kind, *base, *expr, *column, *dtype;
    ds_store_t *s;
    ds_dtype_t t;
    if (kd_arg_str(c, "name", &name) || kd_arg_str(c, "kind", &kind) ||
        kd_arg_str(c, "base", &base) || kd_arg_str(c, "expr", &expr) ||
        kd_arg_str(c, "column", &column) || kd_arg_str(c, "dtype", &dtype))
        return -1;
    if (ds_dtype_parse(dtype, &t))
        return kd_fail(c, "TypeError", "ds_derive: unknown dtype '%.40s'", dtype);
    ds_kind_t k = !strcmp(kind, "index") ? DS_KIND_INDEX : !strcmp(kind, "column")
                                                                ? DS_KIND_COLUMN : 0;
    if (!k)
        return kd_fail(c, "ValueError", "ds_derive: kind must be index or column");
    json_object *e = json_tokener_parse(expr);
    bool valid = e && json_object_is_type(e, json_type_object);
    json_object_put(e);
    if (!valid)
        return kd_fail(c, "ValueError", "ds_derive: the expression is not JSON");
    if (store_arg(c, &store, &s))
        return -1;
    /* the base (and its lineage) current first, so that errors in the
     * expression show on the first batches */
    uint64_t n0 = 0, n1 = 0;
    if (kd_ds_refresh(c, s, store, &n0))
        return -1;
    int rc = 0;
    if (c->rank == 0) {
        ds_info_t *bi = NULL;
        rc = info_of(c, s, base, &bi);
        ds_free_info(bi);
        ds_column_def_t col = {.name = column, .dtype = t};
        ds_dataset_def_t def = {.name = name, .kind = k, .base = base, .expr = expr,
                                .ncols = 1, .cols = &col};
        ds_txn_t *tx = NULL;
        int lrc = rc ? 0 : ds_txn_begin(s, &tx);
        if (!rc && !lrc && !(lrc = ds_txn_create(tx, &def)))
            lrc = ds_txn_commit(tx, NULL);
        else if (tx)
            ds_txn_abort(tx);
        if (lrc == FAM_EEXIST)
            rc = kd_fail(c, "ValueError", "the store has a dataset '%.200s' made otherwise (a "
                         "base dataset, or another expression whose name is spelled the same): "
                         "drop it or choose another name", name);
        else if (lrc)
            rc = kd_ds_fail(c, lrc, "create the derived dataset");
    }
    if (kd_agree(c, rc))
        return -1;
    if (kd_ds_refresh(c, s, store, &n1)) {
        /* a failed first computation leaves no dataset behind */
        if (c->rank == 0) {
            ds_info_t *in = NULL;
            if (ds_info(s, name, &in) == 0 && in->nbatches == 0)
                ds_drop(s, name);
            ds_free_info(in);
        }
        return -1;
    }
    kd_result_i64(c, "processed", (int64_t)(n0 + n1));
    return 0;
}

static int cmd_ds_derive_stats(kd_cmd *c)
{
    const char *store;
    if (kd_arg_str(c, "store", &store))
        return -1;
    json_object *o = c->rank == 0 ? json_object_new_object() : NULL;
    for (size_t i = 0; o && i < nstats; i++) {
        if (strcmp(stats[i].store, store))
            continue;
        json_object *d = json_object_new_object();
        json_object_object_add(d, "updates", json_object_new_int64((int64_t)stats[i].updates));
        json_object_object_add(d, "batches", json_object_new_int64((int64_t)stats[i].batches));
        json_object_object_add(d, "last", json_object_new_int64((int64_t)stats[i].last));
        json_object_object_add(o, stats[i].name, d);
    }
    kd_result_set(c, "datasets", o);
    return 0;
}

void kd_register_dsderive(void)
{
    kd_register("ds_derive", cmd_ds_derive);
    kd_register("ds_refresh", cmd_ds_refresh);
    kd_register("ds_derive_stats", cmd_ds_derive_stats);
}
