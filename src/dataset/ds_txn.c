/* SPDX-License-Identifier: Apache-2.0 */
/* ds_txn.c — changing the catalog: transactions (create, append, progress,
 * expect, drop) committed by compare-and-swap with retry, the one-call
 * wrappers (ds_create_dataset, ds_commit, ds_drop), and ds_reclaim.
 *
 * A transaction is a list of operations, replayed on the newest catalog at
 * every attempt: if another writer commits first, the head CAS fails and
 * the operations run again on its result. Appends check their batches in
 * FAM once (arrays exist with the right dtype and rows, text columns have
 * categories), not at every retry. A drop frees the dropped arrays only
 * after its commit succeeded, so a reader never loses an array of a
 * dataset the catalog still lists. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ds_internal.h"

enum op_type { OP_CREATE = 1, OP_APPEND, OP_PROGRESS, OP_EXPECT, OP_DROP };

/* One operation of a transaction. */
struct ds_op {
    enum op_type type;
    char *name;               /* the dataset */
    /* OP_CREATE: the definition (deep copy) */
    ds_kind_t kind;
    char *base, *expr;
    size_t ncols;
    ds_column_def_t *cols;    /* names owned */
    /* OP_APPEND */
    size_t n;
    ds_batch_ref_t *refs;
    uint64_t *ncat;           /* n * nchecked: category counts found by the check */
    size_t nchecked;          /* columns the check was made for (0: not yet) */
    ds_dtype_t *checked;      /* the dtypes the check was made for */
    size_t nbegun;            /* ds_txn_append_begun: the columns and dtypes the */
    ds_dtype_t *begun;        /* batches were begun with (NULL: look the arrays up) */
    /* OP_PROGRESS, OP_EXPECT */
    uint64_t value;
};

/* A transaction (ds_txn_t). */
struct ds_txn {
    ds_store_t *s;
    size_t nops, cap;
    struct ds_op *ops;
};

static void op_clear(struct ds_op *o)
{
    free(o->name);
    free(o->base);
    free(o->expr);
    if (o->cols)
        for (size_t i = 0; i < o->ncols; i++) free((char *)o->cols[i].name);
    free(o->cols);
    free(o->refs);
    free(o->ncat);
    free(o->checked);
    free(o->begun);
}

/* The end of t: the view ds_txn_stage showed of it goes. */
static void unstage(ds_txn_t *t)
{
    ds_store_t *s = t->s;
    if (s->staged_by == t) {
        ds_cat_free(s->staged);
        s->staged = NULL;
        s->staged_by = NULL;
    }
}

void ds_txn_abort(ds_txn_t *t)
{
    if (!t) return;
    unstage(t);
    for (size_t i = 0; i < t->nops; i++) op_clear(&t->ops[i]);
    free(t->ops);
    free(t);
}

int ds_txn_begin(ds_store_t *s, ds_txn_t **out)
{
    fam_set_error(0, NULL);
    if (!s || !out) return fam_set_error(FAM_EINVAL, "ds_txn_begin: NULL argument");
    ds_txn_t *t = calloc(1, sizeof *t);
    if (!t) return fam_set_error(FAM_ENOMEM, "out of memory");
    t->s = s;
    *out = t;
    return 0;
}

/* A new zeroed operation on `name`. */
static int op_add(ds_txn_t *t, enum op_type type, const char *name, struct ds_op **out)
{
    int rc = ds_check_name(name, DS_NAME_MAX, "dataset name");
    if (rc) return rc;
    if (t->nops == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 4;
        struct ds_op *n = realloc(t->ops, cap * sizeof *n);
        if (!n) return fam_set_error(FAM_ENOMEM, "out of memory");
        t->ops = n;
        t->cap = cap;
    }
    struct ds_op *o = &t->ops[t->nops];
    memset(o, 0, sizeof *o);
    o->type = type;
    if (!(o->name = strdup(name))) return fam_set_error(FAM_ENOMEM, "out of memory");
    t->nops++;
    *out = o;
    return 0;
}

/* Drop the last operation (its arguments were bad). */
static int op_undo(ds_txn_t *t, int rc)
{
    op_clear(&t->ops[--t->nops]);
    return rc;
}

static int check_def(const ds_dataset_def_t *def)
{
    int rc = ds_check_name(def->name, DS_NAME_MAX, "dataset name");
    if (rc) return rc;
    ds_kind_t k = def->kind ? def->kind : DS_KIND_BASE;
    if (!ds_kind_name(k))
        return fam_set_error(FAM_EINVAL, "dataset '%s': unknown kind %d", def->name,
                             (int)def->kind);
    int derived = k != DS_KIND_BASE;
    if (derived && (rc = ds_check_name(def->base, DS_NAME_MAX, "base dataset name")))
        return rc;
    if (!derived && ((def->base && *def->base) || (def->expr && *def->expr)))
        return fam_set_error(FAM_EINVAL, "dataset '%s' is a base dataset: it has no "
                             "base or expression", def->name);
    if (def->expr && *def->expr && (rc = ds_check_name(def->expr, DS_EXPR_MAX, "expression")))
        return rc;
    if (def->ncols < 1 || def->ncols > DS_MAX_COLUMNS || !def->cols)
        return fam_set_error(FAM_EINVAL, "dataset '%s' must have 1 to %d columns, not "
                             "%zu", def->name, DS_MAX_COLUMNS, def->ncols);
    for (size_t i = 0; i < def->ncols; i++) {
        if ((rc = ds_check_name(def->cols[i].name, DS_NAME_MAX, "column name"))) return rc;
        if (!ds_dtype_name(def->cols[i].dtype))
            return fam_set_error(FAM_EINVAL, "column '%s' of dataset '%s' has unknown "
                                 "dtype %d", def->cols[i].name, def->name,
                                 (int)def->cols[i].dtype);
        for (size_t k2 = 0; k2 < i; k2++)
            if (strcmp(def->cols[k2].name, def->cols[i].name) == 0)
                return fam_set_error(FAM_EINVAL, "dataset '%s' has two columns named "
                                     "'%s'", def->name, def->cols[i].name);
    }
    return 0;
}

int ds_txn_create(ds_txn_t *t, const ds_dataset_def_t *def)
{
    fam_set_error(0, NULL);
    if (!t || !def) return fam_set_error(FAM_EINVAL, "ds_txn_create: NULL argument");
    int rc = check_def(def);
    struct ds_op *o = NULL;
    if (rc || (rc = op_add(t, OP_CREATE, def->name, &o))) return rc;
    o->kind = def->kind ? def->kind : DS_KIND_BASE;
    o->base = strdup(def->base ? def->base : "");
    o->expr = strdup(def->expr ? def->expr : "");
    o->cols = calloc(def->ncols, sizeof *o->cols);
    if (!o->base || !o->expr || !o->cols)
        return op_undo(t, fam_set_error(FAM_ENOMEM, "out of memory"));
    o->ncols = def->ncols;
    for (size_t i = 0; i < def->ncols; i++) {
        o->cols[i].dtype = def->cols[i].dtype;
        if (!(o->cols[i].name = strdup(def->cols[i].name)))
            return op_undo(t, fam_set_error(FAM_ENOMEM, "out of memory"));
    }
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int append(ds_txn_t *t, const char *dataset, size_t n, const ds_batch_ref_t *refs,
                  size_t nbegun, const ds_dtype_t *begun)
{
    fam_set_error(0, NULL);
    if (!t || (n && !refs)) return fam_set_error(FAM_EINVAL, "ds_txn_append: NULL argument");
    if (n > DS_MAX_COMMIT_BATCHES)
        return fam_set_error(FAM_EINVAL, "%zu batches in one commit are more than %d",
                             n, DS_MAX_COMMIT_BATCHES);
    for (size_t i = 0; i < n; i++) {
        int rc = ds_check_id(refs[i].id);
        if (rc) return rc;
    }
    struct ds_op *o = NULL;
    int rc = op_add(t, OP_APPEND, dataset, &o);
    if (rc) return rc;
    o->n = n;
    if (begun) {
        if (!(o->begun = malloc(nbegun * sizeof *o->begun)))
            return op_undo(t, fam_set_error(FAM_ENOMEM, "out of memory"));
        memcpy(o->begun, begun, nbegun * sizeof *begun);
        o->nbegun = nbegun;
    }
    if (n && !(o->refs = malloc(n * sizeof *o->refs)))
        return op_undo(t, fam_set_error(FAM_ENOMEM, "out of memory"));
    if (n) memcpy(o->refs, refs, n * sizeof *refs);
    /* the same batch twice in one commit */
    char (*ids)[DS_BATCH_ID_LEN + 1] = n ? malloc(n * sizeof *ids) : NULL;
    if (n && !ids) return op_undo(t, fam_set_error(FAM_ENOMEM, "out of memory"));
    for (size_t i = 0; i < n; i++) memcpy(ids[i], refs[i].id, sizeof ids[i]);
    if (n) qsort(ids, n, sizeof *ids, cmp_id);
    for (size_t i = 1; i < n; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            rc = fam_set_error(FAM_EINVAL, "batch %s is given twice in one commit", ids[i]);
            free(ids);
            return op_undo(t, rc);
        }
    free(ids);
    return 0;
}

int ds_txn_append(ds_txn_t *t, const char *dataset, size_t n, const ds_batch_ref_t *refs)
{
    return append(t, dataset, n, refs, 0, NULL);
}

int ds_txn_append_begun(ds_txn_t *t, const char *dataset, size_t ncols,
                        const ds_dtype_t *dtypes, size_t n, const ds_batch_ref_t *refs)
{
    fam_set_error(0, NULL);
    if (!dtypes || ncols < 1 || ncols > DS_MAX_COLUMNS)
        return fam_set_error(FAM_EINVAL, "ds_txn_append_begun: %zu dtypes (1 to %d)", ncols,
                             DS_MAX_COLUMNS);
    for (size_t i = 0; i < ncols; i++)
        if (!ds_dtype_name(dtypes[i]))
            return fam_set_error(FAM_EINVAL, "ds_txn_append_begun: unknown dtype %d",
                                 (int)dtypes[i]);
    return append(t, dataset, n, refs, ncols, dtypes);
}

int ds_txn_set_progress(ds_txn_t *t, const char *dataset, uint64_t base_batches)
{
    fam_set_error(0, NULL);
    if (!t) return fam_set_error(FAM_EINVAL, "ds_txn_set_progress: NULL argument");
    if (base_batches > DS_MAX_BATCHES)
        return fam_set_error(FAM_EINVAL, "base_batches %llu is above the limit %d",
                             (unsigned long long)base_batches, DS_MAX_BATCHES);
    struct ds_op *o = NULL;
    int rc = op_add(t, OP_PROGRESS, dataset, &o);
    if (!rc) o->value = base_batches;
    return rc;
}

int ds_txn_expect_batches(ds_txn_t *t, const char *dataset, uint64_t nbatches)
{
    fam_set_error(0, NULL);
    if (!t) return fam_set_error(FAM_EINVAL, "ds_txn_expect_batches: NULL argument");
    struct ds_op *o = NULL;
    int rc = op_add(t, OP_EXPECT, dataset, &o);
    if (!rc) o->value = nbatches;
    return rc;
}

int ds_txn_drop(ds_txn_t *t, const char *dataset)
{
    fam_set_error(0, NULL);
    if (!t) return fam_set_error(FAM_EINVAL, "ds_txn_drop: NULL argument");
    struct ds_op *o = NULL;
    return op_add(t, OP_DROP, dataset, &o);
}

/* ---- checking an append's batches in FAM ------------------------------------------------ */

/* Column c of batch r is an array of the column's dtype and the batch's
 * rows (two requests to famd: the lookup and the header). */
static int check_array(ds_store_t *s, const struct ds_cset *d, size_t c,
                       const ds_batch_ref_t *r)
{
    char name[64];
    ds_array_name(name, sizeof name, r->id, c);
    fa_array_t *a;
    int rc = fa_open(s->f, s->region, name, &a);
    if (rc == FAM_ENOTFOUND || rc == FAM_EINVAL)
        return fam_set_error(FAM_EINVAL, "batch %s has no valid array for column "
                             "'%s' of dataset '%s' (never begun, aborted or "
                             "reclaimed?): %s", r->id, d->cols[c].name, d->name,
                             fam_last_error());
    if (rc) return rc;
    fa_dtype_t want = ds_dtype_storage(d->cols[c].dtype);
    if (fa_dtype(a) != want || fa_size(a) != r->rows) {
        rc = fam_set_error(FAM_EINVAL, "array '%s' holds %llu %s; column '%s' "
                           "of dataset '%s' needs %llu %s", name,
                           (unsigned long long)fa_size(a),
                           fa_dtype_name(fa_dtype(a)), d->cols[c].name, d->name,
                           (unsigned long long)r->rows, fa_dtype_name(want));
    }
    fa_close(a);
    return rc;
}

static int check_batches(ds_store_t *s, struct ds_op *o, const struct ds_cset *d)
{
    if (o->nchecked == d->ncols && o->checked) {
        int same = 1;
        for (size_t i = 0; i < d->ncols && same; i++) same = o->checked[i] == d->cols[i].dtype;
        if (same) return 0;
    }
    free(o->ncat);
    free(o->checked);
    o->nchecked = 0;
    o->ncat = calloc(o->n * d->ncols + 1, sizeof *o->ncat);
    o->checked = calloc(d->ncols, sizeof *o->checked);
    if (!o->ncat || !o->checked) return fam_set_error(FAM_ENOMEM, "out of memory");
    /* batches begun with other columns than the dataset's now (it was
     * dropped and made again meanwhile) are not its batches */
    if (o->begun) {
        int same = o->nbegun == d->ncols;
        for (size_t c = 0; c < d->ncols && same; c++)
            same = ds_dtype_storage(o->begun[c]) == ds_dtype_storage(d->cols[c].dtype);
        if (!same)
            return fam_set_error(FAM_EINVAL, "the batches were begun for %zu columns "
                                 "of other dtypes than the %zu of dataset '%s'",
                                 o->nbegun, d->ncols, d->name);
    }
    uint64_t now = ds_now();
    for (size_t b = 0; b < o->n; b++) {
        const ds_batch_ref_t *r = &o->refs[b];
        uint64_t born = ds_id_time(r->id);
        if (born + DS_BATCH_LIFETIME < now)
            return fam_set_error(FAM_EINVAL, "batch %s of dataset '%s' was begun %llu s "
                                 "ago, more than DS_BATCH_LIFETIME (%d s): ds_reclaim "
                                 "may have freed it; write it again", r->id, d->name,
                                 (unsigned long long)(now - born), DS_BATCH_LIFETIME);
        if (born > now + 3600)
            return fam_set_error(FAM_EINVAL, "batch %s of dataset '%s' is dated %llu s "
                                 "in the future (clocks out of step?)", r->id, d->name,
                                 (unsigned long long)(born - now));
        for (size_t c = 0; c < d->ncols; c++) {
            char name[64];
            int rc;
            if (!o->begun && (rc = check_array(s, d, c, r))) return rc;
            if (d->cols[c].dtype != DS_TEXT) continue;
            ds_cats_name(name, sizeof name, r->id, c);
            fam_item_t *it;
            uint8_t h[DS_CATS_HEADER];
            rc = fam_lookup(s->f, name, s->region, &it);
            if (rc == FAM_ENOTFOUND)
                return fam_set_error(FAM_EINVAL, "text column '%s' of batch %s has no "
                                     "categories (ds_batch_set_categories)",
                                     d->cols[c].name, r->id);
            if (rc) return rc;
            uint64_t size = fam_item_size(it);
            rc = size >= DS_CATS_HEADER ? fam_get_blocking(s->f, h, it, 0, sizeof h) : 0;
            fam_release(it);
            if (rc) return rc;
            uint64_t cnt = size >= DS_CATS_HEADER ? ds_get_u64(h + 8) : 0;
            if (size < DS_CATS_HEADER || memcmp(h, DS_CATS_MAGIC, 8) ||
                cnt > DS_CATEGORIES_MAX / 8 ||
                size != DS_CATS_HEADER + 8 * cnt + ds_get_u64(h + 16))
                return fam_set_error(FAM_EINVAL, "the categories of text column '%s' of "
                                     "batch %s are incomplete or damaged",
                                     d->cols[c].name, r->id);
            o->ncat[b * d->ncols + c] = cnt;
        }
        /* a batch of a wider dataset is not one of this dataset's */
        if (o->begun) continue; /* begun with d->ncols columns */
        char extra[64];
        fam_item_t *it;
        ds_array_name(extra, sizeof extra, r->id, d->ncols);
        int rc = fam_lookup(s->f, extra, s->region, &it);
        if (!rc) {
            fam_release(it);
            return fam_set_error(FAM_EINVAL, "batch %s has more columns than the %zu "
                                 "of dataset '%s' (it was begun for another dataset)",
                                 r->id, d->ncols, d->name);
        }
        if (rc != FAM_ENOTFOUND) return rc;
    }
    for (size_t i = 0; i < d->ncols; i++) o->checked[i] = d->cols[i].dtype;
    o->nchecked = d->ncols;
    return 0;
}

/* ---- applying operations to a catalog copy ----------------------------------------------- */

/* Arrays to free once a drop is committed. */
struct dropped {
    size_t n;                       /* batches */
    char (*ids)[DS_BATCH_ID_LEN + 1];
    size_t ncols;
    ds_dtype_t *dtypes;
};

static void dropped_free(struct dropped *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].ids);
        free(v[i].dtypes);
    }
    free(v);
}

static int same_def(const struct ds_cset *d, const struct ds_op *o)
{
    if (d->kind != o->kind || strcmp(d->base, o->base) || strcmp(d->expr, o->expr) ||
        d->ncols != o->ncols)
        return 0;
    for (size_t i = 0; i < d->ncols; i++)
        if (strcmp(d->cols[i].name, o->cols[i].name) || d->cols[i].dtype != o->cols[i].dtype)
            return 0;
    return 1;
}

static int apply_append(ds_store_t *s, struct ds_cat *c, struct ds_op *o)
{
    struct ds_cset *d = ds_cat_find(c, o->name);
    if (!d)
        return fam_set_error(FAM_ENOTFOUND, "dataset store '%s' has no dataset '%s' "
                             "to append to", s->name, o->name);
    if (o->n > DS_MAX_BATCHES - d->nb)
        return fam_set_error(FAM_ENOSPACE, "dataset '%s' has %zu batches; %zu more "
                             "would pass DS_MAX_BATCHES (%d)", o->name, d->nb, o->n,
                             DS_MAX_BATCHES);
    int rc = check_batches(s, o, d);
    if (rc) return rc;
    /* exactly once: no batch may be in the catalog already (any dataset:
     * a batch's arrays belong to one dataset) */
    if (o->n) {
        char (*ids)[DS_BATCH_ID_LEN + 1] = malloc(o->n * sizeof *ids);
        if (!ids) return fam_set_error(FAM_ENOMEM, "out of memory");
        for (size_t i = 0; i < o->n; i++) memcpy(ids[i], o->refs[i].id, sizeof ids[i]);
        qsort(ids, o->n, sizeof *ids, cmp_id);
        for (size_t i = 0; i < c->nds && !rc; i++)
            for (size_t k = 0; k < c->ds[i].nb && !rc; k++)
                if (bsearch(c->ds[i].b[k].id, ids, o->n, sizeof *ids, cmp_id))
                    rc = fam_set_error(FAM_EEXIST, "batch %s is already committed "
                                       "(dataset '%s')", c->ds[i].b[k].id, c->ds[i].name);
        free(ids);
        if (rc) return rc;
    }
    if (d->nb + o->n > d->cap) {
        size_t cap = d->cap ? d->cap : 16;
        while (cap < d->nb + o->n) cap *= 2;
        struct ds_cbatch *nb = realloc(d->b, cap * sizeof *nb);
        if (!nb) return fam_set_error(FAM_ENOMEM, "out of memory");
        d->b = nb;
        d->cap = cap;
    }
    for (size_t i = 0; i < o->n; i++) {
        struct ds_cbatch *b = &d->b[d->nb];
        memset(b, 0, sizeof *b);
        memcpy(b->id, o->refs[i].id, sizeof b->id);
        b->rows = o->refs[i].rows;
        if (d->has_text) {
            if (!(b->ncat = calloc(d->ncols, sizeof *b->ncat)))
                return fam_set_error(FAM_ENOMEM, "out of memory");
            memcpy(b->ncat, o->ncat + i * d->ncols, d->ncols * sizeof *b->ncat);
        }
        d->nb++;
    }
    return 0;
}

/* Take d out of c; its batch ids go to *drops (their arrays are freed
 * once the commit is in). Then every dataset derived from it, directly or
 * down a chain, the same way: lineage is by name and batch count, so one
 * left behind would look current again over a dataset recreated under the
 * dropped one's name (a filter's old rows, a column gathered before). */
static int drop_set(struct ds_cat *c, struct ds_cset *d, struct dropped **drops, size_t *ndrops)
{
    struct dropped *nd = realloc(*drops, (*ndrops + 1) * sizeof *nd);
    if (!nd) return fam_set_error(FAM_ENOMEM, "out of memory");
    *drops = nd;
    struct dropped *x = &nd[(*ndrops)++];
    memset(x, 0, sizeof *x);
    x->n = d->nb;
    x->ncols = d->ncols;
    x->ids = d->nb ? malloc(d->nb * sizeof *x->ids) : NULL;
    x->dtypes = malloc(d->ncols * sizeof *x->dtypes);
    char *name = strdup(d->name);
    if ((d->nb && !x->ids) || !x->dtypes || !name) {
        free(name);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < d->nb; i++) memcpy(x->ids[i], d->b[i].id, sizeof x->ids[i]);
    for (size_t i = 0; i < d->ncols; i++) x->dtypes[i] = d->cols[i].dtype;
    size_t at = (size_t)(d - c->ds);
    ds_cset_clear(d);
    memmove(&c->ds[at], &c->ds[at + 1], (c->nds - at - 1) * sizeof *c->ds);
    c->nds--;
    /* each call takes one set out: this ends even on a damaged catalog */
    int rc = 0;
    for (size_t i = 0; !rc && i < c->nds;) {
        if (c->ds[i].kind != DS_KIND_BASE && !strcmp(c->ds[i].base, name)) {
            rc = drop_set(c, &c->ds[i], drops, ndrops);
            i = 0; /* sets before i may have gone too: look again from the start */
        } else {
            i++;
        }
    }
    free(name);
    return rc;
}

/* Apply o to c; *changed is set when c changed (an expectation, or a
 * create of what exists already, changes nothing). */
static int apply(ds_store_t *s, struct ds_cat *c, struct ds_op *o, struct dropped **drops,
                 size_t *ndrops, int *changed)
{
    struct ds_cset *d = ds_cat_find(c, o->name);
    if (o->type != OP_EXPECT && !(o->type == OP_CREATE && d)) *changed = 1;
    switch (o->type) {
    case OP_CREATE:
        if (d) {
            if (same_def(d, o)) return 0;
            return fam_set_error(FAM_EEXIST, "dataset '%s' exists in store '%s' with "
                                 "other columns, dtypes, kind or lineage", o->name, s->name);
        }
        {
            ds_dataset_def_t def = {.name = o->name, .kind = o->kind, .base = o->base,
                                    .expr = o->expr, .ncols = o->ncols, .cols = o->cols};
            return ds_cat_add(c, &def);
        }
    case OP_APPEND:
        return apply_append(s, c, o);
    case OP_PROGRESS:
    case OP_EXPECT:
    case OP_DROP:
        if (!d)
            return fam_set_error(FAM_ENOTFOUND, "dataset store '%s' has no dataset '%s'",
                                 s->name, o->name);
        if (o->type == OP_PROGRESS) {
            d->base_batches = o->value;
            return 0;
        }
        if (o->type == OP_EXPECT) {
            if (d->nb != o->value)
                return fam_set_error(FAM_EBUSY, "dataset '%s' has %zu batches, not the "
                                     "%llu expected (another process changed it)",
                                     o->name, d->nb, (unsigned long long)o->value);
            return 0;
        }
        return drop_set(c, d, drops, ndrops);
    }
    return fam_set_error(FAM_EINVAL, "unknown catalog operation %d", (int)o->type);
}

static void free_dropped_arrays(ds_store_t *s, const struct dropped *x)
{
    for (size_t b = 0; b < x->n; b++)
        for (size_t c = 0; c < x->ncols; c++) {
            char name[64];
            ds_array_name(name, sizeof name, x->ids[b], c);
            ds_delete_item(s, name); /* best effort: ds_reclaim finds the rest */
            if (x->dtypes[c] == DS_TEXT) {
                ds_cats_name(name, sizeof name, x->ids[b], c);
                ds_delete_item(s, name);
            }
        }
}

int ds_txn_stage(ds_txn_t *t)
{
    fam_set_error(0, NULL);
    if (!t) return fam_set_error(FAM_EINVAL, "ds_txn_stage: NULL transaction");
    ds_store_t *s = t->s;
    if (s->staged_by && s->staged_by != t)
        return fam_set_error(FAM_EBUSY, "ds_txn_stage: the handle shows another "
                             "transaction's changes until it ends");
    for (size_t i = 0; i < t->nops; i++)
        if (t->ops[i].type == OP_DROP)
            return fam_set_error(FAM_EINVAL, "ds_txn_stage: a transaction that drops "
                                 "'%s' is not staged", t->ops[i].name);
    /* the catalog the handle answers from: as ds_info would read it */
    const struct ds_cat *from = s->cache;
    int rc = s->pinned && from ? 0 : ds_cat_current(s, &from);
    if (rc) return rc;
    /* only the datasets t touches, copied and changed (a copy of the
     * whole catalog of some 40 datasets took 0.15-0.2 ms) */
    struct ds_cat *c = calloc(1, sizeof *c);
    if (!c) return fam_set_error(FAM_ENOMEM, "out of memory");
    c->version = from->version;
    c->nonce = from->nonce;
    for (size_t i = 0; i < t->nops && !rc; i++) {
        const struct ds_cset *d = ds_cat_find(from, t->ops[i].name);
        if (d && !ds_cat_find(c, d->name)) rc = ds_cat_add_copy(c, d);
    }
    if (rc) {
        ds_cat_free(c);
        return rc;
    }
    struct dropped *drops = NULL;
    size_t ndrops = 0;
    int changed = 0;
    for (size_t i = 0; i < t->nops && !rc; i++)
        rc = apply(s, c, &t->ops[i], &drops, &ndrops, &changed);
    dropped_free(drops, ndrops); /* nothing is freed before the commit */
    if (rc) {
        ds_cat_free(c);
        return rc;
    }
    ds_cat_free(s->staged);
    s->staged = c;
    s->staged_by = t;
    return 0;
}

int ds_txn_commit(ds_txn_t *t, uint64_t *version)
{
    fam_set_error(0, NULL);
    if (!t) return fam_set_error(FAM_EINVAL, "ds_txn_commit: NULL transaction");
    unstage(t);
    ds_store_t *s = t->s;
    int64_t deadline = ds_now_ms() + DS_COMMIT_DEADLINE_MS;
    int rc;
    for (unsigned attempt = 0;; attempt++) {
        struct ds_cat *c;
        if ((rc = ds_cat_load_copy(s, &c))) break;
        struct dropped *drops = NULL;
        size_t ndrops = 0;
        int changed = 0;
        for (size_t i = 0; i < t->nops && !rc; i++)
            rc = apply(s, c, &t->ops[i], &drops, &ndrops, &changed);
        if (!rc && changed) rc = ds_cat_publish(s, c, version);
        else if (!rc && version) *version = c->version; /* nothing to commit */
        if (!rc && changed) {
            /* what was published is this handle's catalog now: the next
             * read finds the head at its version and nonce and takes it
             * as it is, without fetching and parsing the snapshot it just
             * wrote (1-3 ms for a store of some 40 datasets) */
            ds_cat_free(s->cache);
            s->cache = c;
            c = NULL;
        }
        ds_cat_free(c);
        if (!rc) {
            if (ndrops) ds_kill_point("drop", 1); /* dropped, arrays not yet freed */
            for (size_t i = 0; i < ndrops; i++) free_dropped_arrays(s, &drops[i]);
            dropped_free(drops, ndrops);
            fam_set_error(0, NULL);
            break;
        }
        dropped_free(drops, ndrops);
        if (rc != 1) break; /* an error; 1: another writer was first, retry */
        if (ds_now_ms() > deadline) {
            rc = fam_set_error(FAM_ETIMEOUT, "commit to dataset store '%s' lost the "
                               "race to other writers for %d s (%u attempts)", s->name,
                               DS_COMMIT_DEADLINE_MS / 1000, attempt + 1);
            break;
        }
        unsigned cap = attempt < 6 ? 1u << attempt : 64;
        ds_sleep_ms((unsigned)(ds_random64() % cap));
    }
    ds_txn_abort(t);
    return rc;
}

/* ---- one-call wrappers ----------------------------------------------------------------- */

int ds_create_dataset(ds_store_t *s, const char *name, size_t ncols, const ds_column_def_t *cols)
{
    ds_txn_t *t = NULL;
    int rc = ds_txn_begin(s, &t);
    if (rc) return rc;
    ds_dataset_def_t def = {.name = name, .kind = DS_KIND_BASE, .ncols = ncols, .cols = cols};
    if ((rc = ds_txn_create(t, &def))) {
        ds_txn_abort(t);
        return rc;
    }
    return ds_txn_commit(t, NULL);
}

int ds_drop(ds_store_t *s, const char *name)
{
    ds_txn_t *t = NULL;
    int rc = ds_txn_begin(s, &t);
    if (rc) return rc;
    if ((rc = ds_txn_drop(t, name))) {
        ds_txn_abort(t);
        return rc;
    }
    return ds_txn_commit(t, NULL);
}

int ds_commit_refs(ds_store_t *s, const char *dataset, size_t n, const ds_batch_ref_t *refs)
{
    ds_txn_t *t = NULL;
    int rc = ds_txn_begin(s, &t);
    if (rc) return rc;
    if ((rc = ds_txn_append(t, dataset, n, refs))) {
        ds_txn_abort(t);
        return rc;
    }
    return ds_txn_commit(t, NULL);
}

int ds_commit(ds_store_t *s, const char *dataset, size_t n, ds_batch_t *const *batches)
{
    fam_set_error(0, NULL);
    if (!s || (n && !batches)) return fam_set_error(FAM_EINVAL, "ds_commit: NULL argument");
    if (n > DS_MAX_COMMIT_BATCHES)
        return fam_set_error(FAM_EINVAL, "%zu batches in one commit are more than %d",
                             n, DS_MAX_COMMIT_BATCHES);
    ds_batch_ref_t *refs = n ? calloc(n, sizeof *refs) : NULL;
    if (n && !refs) return fam_set_error(FAM_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!batches[i]) {
            free(refs);
            return fam_set_error(FAM_EINVAL, "ds_commit: batch %zu is NULL", i);
        }
        ds_batch_ref(batches[i], &refs[i]);
    }
    int rc = ds_commit_refs(s, dataset, n, refs);
    free(refs);
    return rc;
}

/* ---- reclaim ------------------------------------------------------------------------------ */

static int parse_hex(const char *p, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* "b.<id>.<col>" or "k.<id>.<col>": the id, else NULL. */
static int batch_item_id(const char *name, char id[DS_BATCH_ID_LEN + 1])
{
    if ((name[0] != 'b' && name[0] != 'k') || name[1] != '.') return -1;
    if (strlen(name) < 2 + DS_BATCH_ID_LEN + 2 || name[2 + DS_BATCH_ID_LEN] != '.') return -1;
    memcpy(id, name + 2, DS_BATCH_ID_LEN);
    id[DS_BATCH_ID_LEN] = '\0';
    const char *c = name + 3 + DS_BATCH_ID_LEN;
    for (; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    return ds_check_id(id) ? -1 : 0;
}

int ds_reclaim(ds_store_t *s, uint64_t min_age, ds_reclaim_stats_t *stats)
{
    fam_set_error(0, NULL);
    if (!s) return fam_set_error(FAM_EINVAL, "ds_reclaim: NULL store");
    ds_reclaim_stats_t st = {0};
    fam_region_t *r;
    int rc = fam_lookup_region(s->f, s->region, &r);
    if (rc) return rc;
    char **names = NULL;
    size_t n = 0;
    rc = fam_list_items(s->f, r, &names, &n);
    fam_release_region(r);
    if (rc) return rc;
    /* the catalog is read after the listing: an item made after the
     * listing is not looked at, and any batch committed before this read
     * is known */
    const struct ds_cat *c;
    if ((rc = ds_cat_current(s, &c))) {
        fam_free_names(names, n);
        return rc;
    }
    size_t nref = 0;
    for (size_t i = 0; i < c->nds; i++) nref += c->ds[i].nb;
    char (*ids)[DS_BATCH_ID_LEN + 1] = nref ? malloc(nref * sizeof *ids) : NULL;
    if (nref && !ids) {
        fam_free_names(names, n);
        return fam_set_error(FAM_ENOMEM, "out of memory");
    }
    nref = 0;
    for (size_t i = 0; i < c->nds; i++)
        for (size_t k = 0; k < c->ds[i].nb; k++) memcpy(ids[nref++], c->ds[i].b[k].id, sizeof *ids);
    if (nref) qsort(ids, nref, sizeof *ids, cmp_id);
    uint64_t head_v = c->version, head_n = c->nonce, now = ds_now();
    uint64_t keep_v[DS_KEEP], keep_n[DS_KEEP];
    size_t nkeep = c->nhist;
    memcpy(keep_v, c->hist_v, sizeof keep_v);
    memcpy(keep_n, c->hist_n, sizeof keep_n);
    int first = 0;
    char keep_msg[600] = "";
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        char id[DS_BATCH_ID_LEN + 1];
        size_t *count = NULL;
        if (nm[0] == 'c' && nm[1] == '.' && strlen(nm) == 35 && nm[18] == '.') {
            uint64_t v, nn;
            if (parse_hex(nm + 2, 16, &v) || parse_hex(nm + 19, 16, &nn)) continue;
            if (v == head_v && nn == head_n) continue;
            int kept = 0;
            for (size_t k = 0; k < nkeep; k++) kept |= keep_v[k] == v && keep_n[k] == nn;
            if (kept) continue;
            /* a version above the head may be a commit in flight (its CAS
             * not yet done): only by age, and never younger than
             * DS_SNAPSHOT_GRACE whatever min_age says, or the CAS could
             * land on a deleted snapshot */
            uint64_t age = min_age > DS_SNAPSHOT_GRACE ? min_age : DS_SNAPSHOT_GRACE;
            if (v > head_v && now < (nn >> 32) + age) {
                st.kept_young++;
                continue;
            }
            if (v > head_v) { /* old enough; but did its commit land meanwhile? */
                uint64_t hv, hn;
                if (ds_head_read(s, &hv, &hn) || (hv == v && hn == nn)) continue;
                if (hv > head_v) continue; /* the head moved: look again next time */
            }
            count = &st.snapshots;
        } else if (batch_item_id(nm, id) == 0) {
            if (nref && bsearch(id, ids, nref, sizeof *ids, cmp_id)) continue;
            if (now < ds_id_time(id) + min_age) {
                st.kept_young++;
                continue;
            }
            count = nm[0] == 'b' ? &st.arrays : &st.categories;
        } else {
            continue; /* "head", or not ours */
        }
        int e = ds_delete_item(s, nm);
        if (!e) (*count)++;
        else if (!first) {
            first = e;
            snprintf(keep_msg, sizeof keep_msg, "%s", fam_last_error());
        }
    }
    free(ids);
    fam_free_names(names, n);
    if (stats) *stats = st;
    if (first)
        return fam_set_error(first, "ds_reclaim on store '%s' could not free "
                             "everything: %s", s->name, keep_msg);
    return 0;
}
