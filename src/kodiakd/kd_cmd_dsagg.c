/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_dsagg.c — aggregation over a dataset of the store, batch by batch:
 * sum, mean, min, max, count, size, std, var and nunique of one column,
 * over the whole dataset or per group of one or more key columns (the
 * group-by and value_counts of python/kodiak/ds_agg.py).
 *
 * Nothing is materialised whole. Rank r takes batches r, r + P, r + 2P, ...
 * (P ranks: no two ranks touch one batch) and pages each through a bounded
 * window: at most `window` rows of each column it needs are in its memory
 * at once (a budget of half of what --memory-limit leaves free, charged to
 * the limit while the command runs), so a dataset many times larger than
 * the limit aggregates. Each rank folds its rows into a hash table: key
 * tuple -> partial state (rows, non-missing values, integer and
 * compensated float sums, min, max, Welford mean and M2); for nunique, a
 * second table of distinct (key tuple, value) pairs. Rank 0 gathers every
 * rank's tables and merges them (sums and counts add exactly, min/max
 * compare, variances combine by Chan et al.'s parallel formula), then sends
 * one row per group; the client sorts them as pandas does.
 *
 * Keys and values are 64-bit words: int64, uint64, float64 bits (-0.0 is
 * folded into 0.0 so they group together, as pandas does), bool (0/1),
 * datetime seconds, and for text the code in the union of the batches'
 * categories (ds_unify_categories, sorted: code order is string order, so
 * min/max of text are min/max of codes). Missing values — NaN, NaT (the
 * int64 minimum), text code -1 — are skipped as pandas skips them: a row
 * with a missing key belongs to no group (groupby(dropna=True)), a missing
 * value counts in `size` only.
 *
 * The only place that reads column data is agg_read(): rows of one column
 * of one batch into the window. Derived datasets (ak.filter, ds.derive)
 * plug in there. The window itself is kd_ds_window_alloc() (kd.h), for
 * every command that streams batches (filters, gathers, derives).
 *
 * Command (docs/PROTOCOL.md):
 *   ds_agg {store, dataset, keys: [col...], value: col | null, ops: [op...], ddof?}
 *     -> {groups, rows, keys: [{name, dtype, ncategories?}], ops: [{op, dtype}],
 *         value_dtype, value_ncategories?}
 *        frames: per key its n words (then, for text, category offsets and bytes),
 *        then per op its n values, then, for text values with min/max, the
 *        value's category offsets and bytes. */
#define _GNU_SOURCE
#include "kd.h"

#include <fam/fam.h>
#include <kodiak/dataset.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGG_MAX_KEYS 8            /* key columns of one group-by */
#define AGG_WINDOW_MAX (1 << 20)  /* rows per column paged in at once, at most */
#define AGG_WINDOW_MIN 1024       /* ... and at least (else MemoryError) */

/* What a request asks for, one bit per op. */
enum {
    AGG_SIZE = 1 << 0,    /* rows per group */
    AGG_COUNT = 1 << 1,   /* non-missing values */
    AGG_SUM = 1 << 2,
    AGG_MEAN = 1 << 3,
    AGG_MIN = 1 << 4,
    AGG_MAX = 1 << 5,
    AGG_STD = 1 << 6,
    AGG_VAR = 1 << 7,
    AGG_NUNIQUE = 1 << 8,
};
static const char *const agg_op_names[] = {"size", "count", "sum", "mean", "min",
                                           "max", "std", "var", "nunique"};
#define AGG_NOPS 9

__extension__ typedef __int128 agg_i128; /* GCC's; exact integer sums for means */

/* The partial result of one group on one rank (then merged on rank 0). */
typedef struct {
    agg_i128 wsum;      /* integer columns: the exact sum (means of int64 are exact) */
    int64_t size;       /* rows of the group, missing values included */
    int64_t count;      /* rows whose value is not missing */
    uint64_t isum;      /* integer sum, wrapping as NumPy's int64/uint64 sum */
    double fsum, fcomp; /* the values as float64 summed (Neumaier): sum, compensation */
    double mean, m2;    /* Welford: running mean, sum of squared deviations */
    uint64_t min, max;  /* value words in the column's dtype; meaningful if count > 0 */
} agg_state;

/* An open-addressing hash table of tuples of `w` 64-bit words; entry i
 * has words keys[i*w ..] and (when with_state) state st[i]. */
typedef struct {
    int w;              /* words per entry */
    bool with_state;    /* st is kept */
    int64_t n;          /* entries */
    int64_t room;       /* entries allocated */
    int64_t cap;        /* slots, a power of two, at least 2n */
    int64_t *slot;      /* cap: entry index, or -1 for an empty slot */
    uint64_t *keys;     /* room * w words */
    agg_state *st;      /* room states (with_state) */
} agg_table;

/* The column sources of one request: the store, the dataset's info at one
 * version, and for each text column its unified categories. */
typedef struct {
    ds_store_t *s;
    ds_info_t *in;
    ds_categories_t *cat[AGG_MAX_KEYS + 1]; /* per used column (keys, then value) */
    size_t col[AGG_MAX_KEYS + 1];           /* their column numbers in `in` */
} agg_src;

static uint64_t agg_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t agg_hash(const uint64_t *k, int w)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < w; i++)
        h = agg_mix(h ^ k[i]) + (uint64_t)i;
    return h;
}

static void agg_table_free(agg_table *t)
{
    free(t->slot);
    free(t->keys);
    free(t->st);
    memset(t, 0, sizeof *t);
}

static int agg_table_init(agg_table *t, int w, bool with_state)
{
    memset(t, 0, sizeof *t);
    t->w = w;
    t->with_state = with_state;
    t->cap = 64;
    t->room = 16;
    t->slot = malloc(sizeof *t->slot * (size_t)t->cap);
    t->keys = malloc(sizeof *t->keys * (size_t)(t->room * (w ? w : 1)));
    t->st = with_state ? calloc((size_t)t->room, sizeof *t->st) : NULL;
    if (!t->slot || !t->keys || (with_state && !t->st)) {
        agg_table_free(t);
        return -1;
    }
    memset(t->slot, 0xff, sizeof *t->slot * (size_t)t->cap);
    return 0;
}

static int agg_table_grow(agg_table *t)
{
    int64_t cap = t->cap * 2;
    int64_t *slot = malloc(sizeof *slot * (size_t)cap);
    if (!slot)
        return -1;
    memset(slot, 0xff, sizeof *slot * (size_t)cap);
    for (int64_t i = 0; i < t->n; i++) {
        uint64_t h = agg_hash(t->keys + i * t->w, t->w) & (uint64_t)(cap - 1);
        while (slot[h] >= 0)
            h = (h + 1) & (uint64_t)(cap - 1);
        slot[h] = i;
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return 0;
}

/* The entry of tuple k, added (state zeroed) if new; -1 when out of memory. */
static int64_t agg_table_get(agg_table *t, const uint64_t *k)
{
    size_t kb = sizeof *k * (size_t)t->w;
    uint64_t h = agg_hash(k, t->w) & (uint64_t)(t->cap - 1);
    for (;;) {
        int64_t e = t->slot[h];
        if (e < 0)
            break;
        if (memcmp(t->keys + e * t->w, k, kb) == 0)
            return e;
        h = (h + 1) & (uint64_t)(t->cap - 1);
    }
    if (t->n == t->room) {
        int64_t room = t->room * 2;
        uint64_t *keys = realloc(t->keys, sizeof *keys * (size_t)(room * (t->w ? t->w : 1)));
        if (!keys)
            return -1;
        t->keys = keys;
        if (t->with_state) {
            agg_state *st = realloc(t->st, sizeof *st * (size_t)room);
            if (!st)
                return -1;
            t->st = st;
        }
        t->room = room;
    }
    int64_t e = t->n++;
    memcpy(t->keys + e * t->w, k, kb);
    if (t->with_state)
        memset(&t->st[e], 0, sizeof t->st[e]);
    t->slot[h] = e;
    if (2 * t->n > t->cap && agg_table_grow(t)) {
        t->n--; /* undo: the table stays consistent */
        t->slot[h] = -1;
        return -1;
    }
    return e;
}

/* ---- values -------------------------------------------------------------------------- */

static double word_f64(uint64_t w)
{
    double d;
    memcpy(&d, &w, sizeof d);
    return d;
}

/* The value as float64 (NumPy's cast), for sums, means and variances. */
static double agg_as_f64(uint64_t w, ds_dtype_t t)
{
    switch (t) {
    case DS_FLOAT64: return word_f64(w);
    case DS_UINT64: return (double)w;
    default: return (double)(int64_t)w;
    }
}

/* Whether word w of a column of dtype t is a missing value. */
static bool agg_missing(uint64_t w, ds_dtype_t t)
{
    switch (t) {
    case DS_FLOAT64: return isnan(word_f64(w));
    case DS_DATETIME: return w == (uint64_t)INT64_MIN;
    case DS_TEXT: return (int64_t)w < 0;
    default: return false;
    }
}

/* a < b in dtype t */
static bool agg_less(uint64_t a, uint64_t b, ds_dtype_t t)
{
    switch (t) {
    case DS_FLOAT64: return word_f64(a) < word_f64(b);
    case DS_UINT64:
    case DS_BOOL: return a < b;
    default: return (int64_t)a < (int64_t)b;
    }
}

/* Neumaier's compensated sum: s + c holds the exact running sum far better
 * than s alone (pandas' group-by sums use Kahan's, NumPy's pairwise). */
static void agg_fadd(double *s, double *c, double x)
{
    double t = *s + x;
    if (fabs(*s) >= fabs(x))
        *c += (*s - t) + x;
    else
        *c += (x - t) + *s;
    *s = t;
}

static void agg_fold(agg_state *g, uint64_t v, ds_dtype_t t, unsigned ops)
{
    g->count++;
    if (t == DS_BOOL)
        v = v != 0;
    g->isum += v;
    if (t == DS_UINT64 || t == DS_BOOL)
        g->wsum += (agg_i128)v;
    else if (t != DS_FLOAT64)
        g->wsum += (agg_i128)(int64_t)v;
    if (ops & (AGG_SUM | AGG_MEAN | AGG_STD | AGG_VAR)) {
        double x = agg_as_f64(v, t);
        agg_fadd(&g->fsum, &g->fcomp, x);
        if (ops & (AGG_STD | AGG_VAR)) {
            double d = x - g->mean;
            g->mean += d / (double)g->count;
            g->m2 += d * (x - g->mean);
        }
    }
    if (g->count == 1 || agg_less(v, g->min, t))
        g->min = v;
    if (g->count == 1 || agg_less(g->max, v, t))
        g->max = v;
}

/* b into a (Chan et al. for the variance). */
static void agg_merge(agg_state *a, const agg_state *b, ds_dtype_t t)
{
    a->size += b->size;
    if (!b->count)
        return;
    if (!a->count) {
        int64_t size = a->size;
        *a = *b;
        a->size = size;
        return;
    }
    int64_t n = a->count + b->count;
    double d = b->mean - a->mean;
    a->m2 += b->m2 + d * d * ((double)a->count * (double)b->count / (double)n);
    a->mean += d * ((double)b->count / (double)n);
    a->count = n;
    a->isum += b->isum;
    a->wsum += b->wsum;
    agg_fadd(&a->fsum, &a->fcomp, b->fsum);
    agg_fadd(&a->fsum, &a->fcomp, b->fcomp);
    if (agg_less(b->min, a->min, t))
        a->min = b->min;
    if (agg_less(a->max, b->max, t))
        a->max = b->max;
}

/* ---- reading ------------------------------------------------------------------------- */

/* Rows [off, off + n) of used column u of batch b into dst as 64-bit
 * words: text codes mapped into the unified categories, bools widened,
 * -0.0 made 0.0 when `fold_zero`. The one function that reads column data
 * (derived datasets: gather through the index here). Local. */
static int agg_read(kd_cmd *c, const agg_src *src, int u, size_t b, uint64_t off, uint64_t n,
                    uint64_t *dst, bool fold_zero)
{
    const ds_info_t *in = src->in;
    size_t col = src->col[u];
    ds_dtype_t t = in->cols[col].dtype;
    int rc = ds_read(src->s, in, b, col, off, n, dst);
    if (rc) {
        char what[512];
        snprintf(what, sizeof what, "read column '%.200s' of dataset '%.200s' (rank %d)",
                 in->cols[col].name, in->name, c->rank);
        return kd_ds_fail(c, rc, what);
    }
    if (t == DS_BOOL) { /* one byte per value, stored at the front: widen backwards */
        const uint8_t *p = (const uint8_t *)dst;
        for (uint64_t i = n; i-- > 0;)
            dst[i] = p[i] != 0;
    } else if (t == DS_TEXT) {
        const int64_t *map = src->cat[u] ? src->cat[u]->maps[b] : NULL;
        uint64_t ncat = in->batches[b].ncat[col];
        for (uint64_t i = 0; i < n; i++) {
            int64_t k = (int64_t)dst[i];
            if (k == -1)
                continue;
            if (k < -1 || (uint64_t)k >= ncat || !map)
                return kd_fail(c, "RuntimeError", "dataset '%.200s', column '%.200s', batch "
                               "%zu: code %lld is not one of its %llu categories (a damaged "
                               "store: run store.verify())", in->name, in->cols[col].name, b,
                               (long long)k, (unsigned long long)ncat);
            dst[i] = (uint64_t)map[k];
        }
    } else if (t == DS_FLOAT64 && fold_zero) {
        for (uint64_t i = 0; i < n; i++)
            if (dst[i] == 0x8000000000000000ull)
                dst[i] = 0;
    }
    return 0;
}

/* ---- the window (for every command that streams batches) ----------------------------- */

uint64_t *kd_ds_window_alloc(kd_cmd *c, int ncols, uint64_t *rows, size_t *bytes)
{
    uint64_t free_bytes = kd_srv.mem_limit > kd_srv.mem_used ? kd_srv.mem_limit - kd_srv.mem_used
                                                              : 0;
    uint64_t per_row = 8 * (uint64_t)(ncols > 0 ? ncols : 1);
    uint64_t window = free_bytes / 2 / per_row;
    if (window > AGG_WINDOW_MAX)
        window = AGG_WINDOW_MAX;
    *rows = 0;
    *bytes = 0;
    if (window < AGG_WINDOW_MIN) {
        kd_fail(c, "MemoryError", "%s: rank %d has %llu bytes free under its memory limit "
                "(%llu bytes, --memory-limit): too few to page %d rows of %d column(s) "
                "through; free some arrays", c->cmd, c->rank, (unsigned long long)free_bytes,
                (unsigned long long)kd_srv.mem_limit, AGG_WINDOW_MIN, ncols);
        return NULL;
    }
    size_t wb = (size_t)(window * per_row);
    uint64_t *buf = malloc(wb);
    if (!buf) {
        kd_fail(c, "MemoryError", "%s: rank %d is out of memory for its window of %zu bytes",
                c->cmd, c->rank, wb);
        return NULL;
    }
    kd_srv.mem_used += wb; /* charged while the command runs */
    *rows = window;
    *bytes = wb;
    return buf;
}

void kd_ds_window_free(uint64_t *buf, size_t bytes)
{
    if (buf) {
        kd_srv.mem_used -= bytes;
        free(buf);
    }
}

/* ---- the command --------------------------------------------------------------------- */

static int find_column(kd_cmd *c, const ds_info_t *in, const char *name, size_t *col)
{
    for (size_t k = 0; k < in->ncols; k++)
        if (strcmp(in->cols[k].name, name) == 0) {
            *col = k;
            return 0;
        }
    return kd_fail(c, "KeyError", "dataset '%.200s' has no column '%.200s'", in->name, name);
}

/* Which ops may apply to a value column of dtype t. */
static int check_ops(kd_cmd *c, unsigned ops, const ds_column_info_t *v)
{
    unsigned numeric = AGG_SUM | AGG_MEAN | AGG_STD | AGG_VAR;
    if (!v) {
        if (ops & ~AGG_SIZE)
            return kd_fail(c, "TypeError", "ds_agg: only 'size' needs no value column");
        return 0;
    }
    if ((v->dtype == DS_TEXT || v->dtype == DS_DATETIME) && (ops & numeric))
        return kd_fail(c, "TypeError", "column '%.200s' is %s: sum, mean, std and var need "
                       "a numeric column (count, nunique, min, max and value_counts work)",
                       v->name, v->dtype == DS_TEXT ? "text" : "datetime64[s]");
    return 0;
}

/* A frame of the categories of cat: n + 1 int64 offsets, then the bytes. */
static int send_categories(kd_cmd *c, const ds_categories_t *cat)
{
    size_t n = cat ? cat->n : 0, bytes = 0;
    for (size_t j = 0; j < n; j++)
        bytes += strlen(cat->cats[j]);
    int64_t *offs = malloc(8 * (n + 1));
    char *buf = malloc(bytes + 1);
    if (!offs || !buf) {
        free(offs);
        free(buf);
        return kd_fail(c, "MemoryError", "ds_agg: out of memory for categories");
    }
    size_t at = 0;
    for (size_t j = 0; j < n; j++) {
        size_t l = strlen(cat->cats[j]);
        offs[j] = (int64_t)at;
        memcpy(buf + at, cat->cats[j], l);
        at += l;
    }
    offs[n] = (int64_t)at;
    kd_result_frame(c, offs, 8 * (n + 1));
    kd_result_frame(c, buf, bytes);
    return 0;
}

/* Every rank's table (and pairs) gathered into rank 0's and merged. */
static int gather_merge(kd_cmd *c, agg_table *t, agg_table *pairs, ds_dtype_t vt)
{
    int rc = 0;
    /* one buffer per rank: [n][keys n*w words][states n], then [np][pairs np*(w+1)] */
    size_t w = (size_t)t->w;
    size_t bytes = 16 + (size_t)t->n * (w * 8 + sizeof(agg_state)) +
                   (pairs ? (size_t)pairs->n * (size_t)pairs->w * 8 : 0);
    if (bytes > (size_t)INT_MAX)
        rc = kd_fail(c, "MemoryError", "ds_agg: rank %d has %lld groups, too many to gather "
                     "(over 2 GiB)", c->rank, (long long)t->n);
    if (kd_agree(c, rc))
        return -1;
    int len = (int)bytes;
    char *all = NULL;
    int *lens = c->rank == 0 ? calloc((size_t)c->nranks, sizeof *lens) : NULL;
    int *dsp = c->rank == 0 ? calloc((size_t)c->nranks, sizeof *dsp) : NULL;
    char *mine = c->rank == 0 ? NULL : malloc(bytes);
    if (c->rank == 0 ? !lens || !dsp : !mine)
        rc = kd_fail(c, "MemoryError", "ds_agg: out of memory gathering groups");
    if (kd_agree(c, rc))
        goto out;
    if (mine) {
        char *p = mine;
        int64_t n = t->n, np = pairs ? pairs->n : 0;
        memcpy(p, &n, 8);
        p += 8;
        memcpy(p, t->keys, (size_t)n * w * 8);
        p += (size_t)n * w * 8;
        memcpy(p, t->st, (size_t)n * sizeof(agg_state));
        p += (size_t)n * sizeof(agg_state);
        memcpy(p, &np, 8);
        p += 8;
        if (np)
            memcpy(p, pairs->keys, (size_t)np * (size_t)pairs->w * 8);
    } else {
        len = 0; /* rank 0 keeps its own */
    }
    MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, c->comm);
    if (c->rank == 0) {
        long long total = 0;
        for (int r = 0; r < c->nranks; r++) {
            dsp[r] = (int)total;
            total += lens[r];
        }
        if (total > INT_MAX)
            rc = kd_fail(c, "MemoryError", "ds_agg: the ranks' groups add up to over 2 GiB");
        else if (!(all = malloc((size_t)total + 1)))
            rc = kd_fail(c, "MemoryError", "ds_agg: out of memory gathering groups");
    }
    if (kd_agree(c, rc)) {
        rc = -1;
        goto out;
    }
    MPI_Gatherv(mine, c->rank == 0 ? 0 : len, MPI_BYTE, all, lens, dsp, MPI_BYTE, 0, c->comm);
    if (c->rank == 0) {
        for (int r = 1; r < c->nranks && !rc; r++) { /* rank order: deterministic sums */
            const char *p = all + dsp[r];
            int64_t n, np;
            memcpy(&n, p, 8);
            p += 8;
            const char *keys = p;
            p += (size_t)n * w * 8;
            const char *st = p;
            p += (size_t)n * sizeof(agg_state);
            memcpy(&np, p, 8);
            p += 8;
            uint64_t k[AGG_MAX_KEYS + 1];
            for (int64_t i = 0; i < n && !rc; i++) {
                memcpy(k, keys + (size_t)i * w * 8, w * 8);
                int64_t e = agg_table_get(t, k);
                if (e < 0) {
                    rc = kd_fail(c, "MemoryError", "ds_agg: out of memory merging groups");
                    break;
                }
                agg_state s;
                memcpy(&s, st + (size_t)i * sizeof s, sizeof s);
                agg_merge(&t->st[e], &s, vt);
            }
            for (int64_t i = 0; i < np && !rc; i++) {
                memcpy(k, p + (size_t)i * (w + 1) * 8, (w + 1) * 8);
                if (agg_table_get(pairs, k) < 0)
                    rc = kd_fail(c, "MemoryError", "ds_agg: out of memory merging values");
            }
        }
    }
    rc = kd_agree(c, rc);
out:
    free(all);
    free(lens);
    free(dsp);
    free(mine);
    return rc;
}

/* The reply (rank 0): one row per group. */
static int reply(kd_cmd *c, const agg_src *src, int nk, const agg_table *t,
                 const agg_table *pairs, unsigned ops, int64_t ddof, bool with_value)
{
    const ds_info_t *in = src->in;
    int64_t n = t->n;
    size_t w = (size_t)nk;
    json_object *keys = json_object_new_array();
    for (int u = 0; u < nk; u++) {
        const ds_column_info_t *ci = &in->cols[src->col[u]];
        uint64_t *v = malloc(8 * (size_t)(n ? n : 1));
        if (!v) {
            json_object_put(keys);
            return kd_fail(c, "MemoryError", "ds_agg: out of memory for the reply");
        }
        for (int64_t i = 0; i < n; i++)
            v[i] = t->keys[(size_t)i * w + (size_t)u];
        kd_result_frame(c, v, 8 * (size_t)n);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(ci->name));
        json_object_object_add(o, "dtype", json_object_new_string(ds_dtype_name(ci->dtype)));
        if (ci->dtype == DS_TEXT) {
            json_object_object_add(o, "ncategories",
                                   json_object_new_int64((int64_t)src->cat[u]->n));
            if (send_categories(c, src->cat[u])) {
                json_object_put(keys);
                return -1;
            }
        }
        json_object_array_add(keys, o);
    }
    kd_result_set(c, "keys", keys);
    ds_dtype_t vt = with_value ? in->cols[src->col[nk]].dtype : DS_INT64;
    int64_t *nuniq = NULL;
    if (ops & AGG_NUNIQUE) {
        nuniq = calloc((size_t)(n ? n : 1), sizeof *nuniq);
        if (!nuniq)
            return kd_fail(c, "MemoryError", "ds_agg: out of memory for the reply");
        agg_table *tt = (agg_table *)t; /* lookups of present keys never add */
        for (int64_t i = 0; i < pairs->n; i++) {
            int64_t e = agg_table_get(tt, pairs->keys + (size_t)i * (w + 1));
            if (e >= 0 && e < n)
                nuniq[e]++;
        }
    }
    json_object *jops = json_object_new_array();
    for (int b = 0; b < AGG_NOPS; b++) {
        unsigned op = 1u << b;
        if (!(ops & op))
            continue;
        const char *dt = "int64";
        uint64_t *v = malloc(8 * (size_t)(n ? n : 1));
        if (!v) {
            free(nuniq);
            json_object_put(jops);
            return kd_fail(c, "MemoryError", "ds_agg: out of memory for the reply");
        }
        for (int64_t i = 0; i < n; i++) {
            const agg_state *g = &t->st[i];
            double f;
            switch (op) {
            case AGG_SIZE: v[i] = (uint64_t)g->size; break;
            case AGG_COUNT: v[i] = (uint64_t)g->count; break;
            case AGG_NUNIQUE: v[i] = (uint64_t)nuniq[i]; break;
            case AGG_SUM:
                if (vt == DS_FLOAT64) {
                    f = g->fsum + g->fcomp;
                    if (!isfinite(g->fsum)) /* inf, or NaN from inf - inf: as summed */
                        f = g->fsum;
                    memcpy(&v[i], &f, 8);
                } else {
                    v[i] = g->isum;
                }
                break;
            case AGG_MEAN:
                if (!g->count)
                    f = NAN;
                else if (vt != DS_FLOAT64)
                    f = (double)((long double)g->wsum / (long double)g->count);
                else if (!isfinite(g->fsum))
                    f = g->fsum / (double)g->count;
                else
                    f = (g->fsum + g->fcomp) / (double)g->count;
                memcpy(&v[i], &f, 8);
                break;
            case AGG_STD:
            case AGG_VAR:
                f = g->count - ddof <= 0 ? NAN : g->m2 / (double)(g->count - ddof);
                if (f < 0)
                    f = 0;
                if (op == AGG_STD)
                    f = sqrt(f);
                memcpy(&v[i], &f, 8);
                break;
            case AGG_MIN:
            case AGG_MAX:
                v[i] = op == AGG_MIN ? g->min : g->max;
                if (!g->count) { /* no value: NaN (pandas), -1 text, NaT */
                    f = NAN;
                    if (vt == DS_TEXT)
                        v[i] = (uint64_t)-1;
                    else if (vt == DS_DATETIME)
                        v[i] = (uint64_t)INT64_MIN;
                    else
                        memcpy(&v[i], &f, 8);
                }
                break;
            }
        }
        if (op & (AGG_MEAN | AGG_STD | AGG_VAR))
            dt = "float64";
        else if (op == AGG_SUM)
            dt = vt == DS_FLOAT64 ? "float64" : vt == DS_UINT64 ? "uint64" : "int64";
        else if (op & (AGG_MIN | AGG_MAX))
            dt = ds_dtype_name(vt);
        kd_result_frame(c, v, 8 * (size_t)n);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "op", json_object_new_string(agg_op_names[b]));
        json_object_object_add(o, "dtype", json_object_new_string(dt));
        json_object_array_add(jops, o);
    }
    free(nuniq);
    kd_result_set(c, "ops", jops);
    kd_result_i64(c, "groups", n);
    kd_result_i64(c, "rows", (int64_t)in->rows);
    kd_result_i64(c, "batches", (int64_t)in->nbatches);
    if (with_value) {
        kd_result_set(c, "value_dtype", json_object_new_string(ds_dtype_name(vt)));
        if (vt == DS_TEXT) {
            kd_result_i64(c, "value_ncategories", (int64_t)src->cat[nk]->n);
            if (send_categories(c, src->cat[nk]))
                return -1;
        }
    }
    return 0;
}

static int cmd_ds_agg(kd_cmd *c)
{
    /* arguments: checked the same on every rank */
    json_object *jkeys = NULL, *jops = NULL, *jval = NULL;
    if (!c->args || !json_object_object_get_ex(c->args, "keys", &jkeys) ||
        !json_object_is_type(jkeys, json_type_array) ||
        json_object_array_length(jkeys) > AGG_MAX_KEYS)
        return kd_fail(c, "TypeError", "ds_agg: 'keys' must be a list of at most %d column "
                       "names", AGG_MAX_KEYS);
    int nk = (int)json_object_array_length(jkeys);
    for (int i = 0; i < nk; i++)
        if (!json_object_is_type(json_object_array_get_idx(jkeys, i), json_type_string))
            return kd_fail(c, "TypeError", "ds_agg: 'keys' must be a list of column names");
    if (!json_object_object_get_ex(c->args, "ops", &jops) ||
        !json_object_is_type(jops, json_type_array) || json_object_array_length(jops) == 0)
        return kd_fail(c, "TypeError", "ds_agg: 'ops' must be a non-empty list of operations");
    unsigned ops = 0;
    for (size_t i = 0; i < json_object_array_length(jops); i++) {
        json_object *o = json_object_array_get_idx(jops, i);
        const char *s = json_object_is_type(o, json_type_string) ? json_object_get_string(o) : "";
        int b = 0;
        while (b < AGG_NOPS && strcmp(agg_op_names[b], s) != 0)
            b++;
        if (b == AGG_NOPS)
            return kd_fail(c, "ValueError", "ds_agg: unknown operation '%.40s' (size, count, "
                           "sum, mean, min, max, std, var, nunique)", s);
        ops |= 1u << b;
    }
    bool with_value = json_object_object_get_ex(c->args, "value", &jval) && jval;
    if (with_value && !json_object_is_type(jval, json_type_string))
        return kd_fail(c, "TypeError", "ds_agg: 'value' must be a column name or null");
    int64_t ddof = 1;
    if (kd_has_arg(c, "ddof") && kd_arg_i64(c, "ddof", &ddof))
        return -1;
    if (ddof < 0 || ddof > (1ll << 40))
        return kd_fail(c, "ValueError", "ds_agg: ddof must be 0 or more, not %lld",
                       (long long)ddof);

    agg_src src;
    memset(&src, 0, sizeof src);
    const char *store, *dataset;
    size_t saved = 0;
    if (kd_ds_attach(c, &store, &dataset, &src.s, &src.in, &saved))
        return -1;
    const ds_info_t *in = src.in;
    int nu = nk + (with_value ? 1 : 0); /* used columns: keys, then the value */
    int rc = 0;
    for (int u = 0; u < nu && !rc; u++)
        rc = find_column(c, in, u < nk ? json_object_get_string(json_object_array_get_idx(jkeys, u))
                                       : json_object_get_string(jval), &src.col[u]);
    ds_dtype_t vt = with_value ? in->cols[src.col[nk]].dtype : DS_INT64;
    if (!rc)
        rc = check_ops(c, ops, with_value ? &in->cols[src.col[nk]] : NULL);
    if (rc) { /* the same on every rank */
        kd_ds_detach(src.in, saved);
        return -1;
    }
    /* text columns: every rank unifies the batches' categories (metadata only) */
    for (int u = 0; u < nu && !rc; u++)
        if (in->cols[src.col[u]].dtype == DS_TEXT) {
            int lrc = ds_unify_categories(src.s, in, src.col[u], &src.cat[u]);
            if (lrc)
                rc = kd_ds_fail(c, lrc, "categories of a text column");
        }
    /* the window: rows of every used column paged in at once */
    uint64_t window = 0;
    size_t wbytes = 0;
    uint64_t *buf = rc ? NULL : kd_ds_window_alloc(c, nu ? nu : 1, &window, &wbytes);
    if (!buf)
        rc = -1;
    agg_table t, pairs;
    memset(&t, 0, sizeof t);
    memset(&pairs, 0, sizeof pairs);
    if (!rc && (agg_table_init(&t, nk, true) ||
                ((ops & AGG_NUNIQUE) && agg_table_init(&pairs, nk + 1, false))))
        rc = kd_fail(c, "MemoryError", "ds_agg: out of memory");
    if (kd_agree(c, rc))
        goto out;

    /* with no keys there is one group, present even over no rows (sum 0, mean NaN) */
    uint64_t k[AGG_MAX_KEYS + 1] = {0}, lastk[AGG_MAX_KEYS + 1] = {0};
    int64_t last = -1;
    if (nk == 0 && agg_table_get(&t, k) < 0)
        rc = kd_fail(c, "MemoryError", "ds_agg: out of memory");
    for (size_t b = (size_t)c->rank; !rc && b < in->nbatches; b += (size_t)c->nranks) {
        uint64_t rows = in->batches[b].rows;
        for (uint64_t off = 0; !rc && off < rows; off += window) {
            uint64_t m = rows - off < window ? rows - off : window;
            for (int u = 0; u < nu && !rc; u++)
                rc = agg_read(c, &src, u, b, off, m, buf + (size_t)u * window,
                              u < nk || (ops & AGG_NUNIQUE));
            for (uint64_t i = 0; !rc && i < m; i++) {
                bool skip = false;
                for (int u = 0; u < nk; u++) {
                    k[u] = buf[(size_t)u * window + i];
                    if (agg_missing(k[u], in->cols[src.col[u]].dtype))
                        skip = true;
                }
                if (skip)
                    continue;
                /* no keys: the one group; else the table (the last key's entry
                 * first: rows of one group often come together) */
                int64_t e = nk == 0 ? 0 : last >= 0 && memcmp(k, lastk, 8 * (size_t)nk) == 0
                                              ? last : agg_table_get(&t, k);
                if (nk && e >= 0) {
                    last = e;
                    memcpy(lastk, k, 8 * (size_t)nk);
                }
                if (e < 0) {
                    rc = kd_fail(c, "MemoryError", "ds_agg: rank %d is out of memory for "
                                 "%lld groups", c->rank, (long long)t.n);
                    break;
                }
                agg_state *g = &t.st[e];
                g->size++;
                if (!with_value)
                    continue;
                uint64_t v = buf[(size_t)nk * window + i];
                if (agg_missing(v, vt))
                    continue;
                agg_fold(g, v, vt, ops);
                if (ops & AGG_NUNIQUE) {
                    k[nk] = vt == DS_BOOL ? v != 0 : v;
                    if (agg_table_get(&pairs, k) < 0)
                        rc = kd_fail(c, "MemoryError", "ds_agg: rank %d is out of memory "
                                     "for %lld distinct values", c->rank, (long long)pairs.n);
                }
            }
        }
    }
    if (kd_agree(c, rc))
        goto out;
    if (gather_merge(c, &t, (ops & AGG_NUNIQUE) ? &pairs : NULL, vt))
        goto out;
    rc = c->rank == 0 ? reply(c, &src, nk, &t, (ops & AGG_NUNIQUE) ? &pairs : NULL, ops, ddof,
                              with_value)
                      : 0;
    rc = kd_agree(c, rc);
out:
    kd_ds_window_free(buf, wbytes);
    agg_table_free(&t);
    agg_table_free(&pairs);
    for (int u = 0; u <= AGG_MAX_KEYS; u++)
        ds_free_categories(src.cat[u]);
    kd_ds_detach(src.in, saved);
    return c->failed ? -1 : rc;
}

void kd_register_dsagg(void)
{
    kd_register("ds_agg", cmd_ds_agg);
}
