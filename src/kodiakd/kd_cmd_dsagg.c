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
 * the limit aggregates. Each batch's rows are folded into a hash table of
 * its own: key tuple -> partial state (rows, non-missing values, integer
 * and compensated float sums, min, max, Welford mean and M2); for nunique,
 * a second table of distinct (key tuple, value) pairs. A rank merges its
 * batches' tables in batch order and keeps them (the cache below: the
 * same request later folds only the batches it has not seen, and gets the
 * same bits). Rank 0 gathers every rank's tables and merges them (sums
 * and counts add exactly, min/max compare, variances combine by Chan et
 * al.'s parallel formula), then sends
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
 * Small keys (text codes, bools, integers of a short range in a window)
 * find their hash-table entry through a direct-indexed array instead of
 * hashing every row (agg_direct_plan): the same entries, the same results.
 *
 * The only place that reads column data is agg_read(): rows of one column
 * of one batch into the window. Any dataset aggregates: the derived ones
 * are brought current first (kd_ds_refresh), then each column is read
 * from where it is (resolve_column): stored in the dataset or in its
 * derived column dataset "D[x]" (paged from FAM), or gathered through an
 * index the same window of rows at a time (agg_gather: the index's rows,
 * then the base's values at them), so no batch is ever held whole and a
 * filter whose one batch is larger than the limit aggregates. The window
 * itself is kd_ds_window_alloc() (kd.h), for every command that streams
 * batches (filters, gathers, derives).
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
#include "kd_ds.h"
#include "kd_lru.h"

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
#define AGG_DEPTH 32              /* longest lineage followed to a column */
#define AGG_PATH_MAX (2 * AGG_DEPTH + 4) /* datasets a column's values come through */
#define AGG_RUN AGG_WINDOW_MIN    /* rows folded at once by agg_fold_run: a batch's
                                   * partial result never depends on the window */

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

/* One step of a gathered column's lineage: an index dataset, whose batch
 * b holds row numbers (ascending) of batch b of the next step. */
typedef struct {
    const ds_info_t *idx;  /* the index dataset (column 0: int64 rows of its base's batch) */
    const ds_info_t *part; /* its derived column dataset "idx[name]" when that has fewer
                            * batches than the request (NULL if none): a batch it has is
                            * read from it, as kd_ds_read_batch does */
} agg_hop;

/* Where one used column's values come from. Batch b of a derived dataset
 * stands for batch b of its root base dataset, so every source below has
 * its batch b aligned with the dataset's batch b. */
typedef struct {
    ds_info_t *leaf;     /* the dataset that stores the values (== the request's, or owned) */
    size_t col;          /* their column number in leaf */
    bool owned;          /* leaf is this column's own ds_info (freed at the end) */
    size_t leaf_nb;      /* ... and its own nbatches (cut to the request's meanwhile) */
    bool gathered;       /* through an index: a window of rows at a time (agg_gather) */
    const char *name;    /* the column's name */
    int nhop;            /* gathered: index datasets on the way, the request's first */
    agg_hop hop[AGG_DEPTH + 1]; /* ... each (not owned: they are in path) */
    int npath;           /* datasets in path */
    ds_info_t *path[AGG_PATH_MAX]; /* every dataset batch b's values come through (the
                                    * request's, derived column datasets, the bases an
                                    * index leads to): their batch ids name the batch's
                                    * partial result in the cache */
    bool path_owned[AGG_PATH_MAX]; /* path[i] is this column's own (freed at the end) */
} agg_col;

/* The column sources of one request: the store, the dataset's info at one
 * version, and for each text column its unified categories. */
typedef struct {
    ds_store_t *s;
    ds_info_t *in;
    const char *store;                      /* the store's name */
    ds_categories_t *cat[AGG_MAX_KEYS + 1]; /* per used column (keys, then value) */
    agg_col c[AGG_MAX_KEYS + 1];            /* per used column */
    uint64_t window;                        /* rows of each slot of the window */
    uint64_t *scratch[2];                   /* gathered columns: two more slots of the
                                             * window, for row numbers and spans */
    bool idx_held;                          /* scratch[0] holds the request's index
                                             * rows [idx_off, + idx_m) of batch idx_b:
                                             * the next gathered column reuses them */
    size_t idx_b;
    uint64_t idx_off, idx_m;
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
 * than s alone (pandas' group-by sums use Kahan's, NumPy's pairwise). Once
 * the sum is infinite (or NaN) the compensation stops: inf - inf would
 * make it NaN, and a sum of 2, -inf and 3 NaN instead of NumPy's -inf,
 * and the answer would hang on where batches and windows begin. */
static void agg_fadd(double *s, double *c, double x)
{
    double t = *s + x;
    if (isfinite(t)) {
        if (fabs(*s) >= fabs(x))
            *c += (*s - t) + x;
        else
            *c += (x - t) + *s;
    }
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
    if (!(ops & (AGG_MIN | AGG_MAX)))
        return;
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

/* The m values x of one window, all of one group, into g: summed in
 * registers (the same Neumaier sum, the same exact integer sums), the
 * variance by two passes over the window (its mean, then the squared
 * deviations from it) merged into g as agg_merge merges two ranks'. For
 * the group of a request without keys: the rows one at a time through g
 * in memory cost a store and a load per value. */
static void agg_fold_run(agg_state *g, const uint64_t *x, uint64_t m, ds_dtype_t t,
                         unsigned ops)
{
    agg_state w;
    memset(&w, 0, sizeof w);
    int64_t cnt = 0;
    uint64_t isum = 0, mn = 0, mx = 0;
    agg_i128 wsum = 0;
    double s = 0, comp = 0;
    bool fl = (ops & (AGG_SUM | AGG_MEAN | AGG_STD | AGG_VAR)) != 0;
    bool mm = (ops & (AGG_MIN | AGG_MAX)) != 0;
    if (t == DS_FLOAT64) {
        for (uint64_t i = 0; i < m; i++) {
            double d = word_f64(x[i]);
            if (isnan(d))
                continue;
            cnt++;
            if (fl)
                agg_fadd(&s, &comp, d);
            if (mm) {
                if (cnt == 1 || d < word_f64(mn))
                    mn = x[i];
                if (cnt == 1 || word_f64(mx) < d)
                    mx = x[i];
            }
        }
    } else {
        for (uint64_t i = 0; i < m; i++) {
            uint64_t v = x[i];
            if (agg_missing(v, t))
                continue;
            if (t == DS_BOOL)
                v = v != 0;
            cnt++;
            isum += v;
            wsum += t == DS_UINT64 || t == DS_BOOL ? (agg_i128)v : (agg_i128)(int64_t)v;
            if (fl)
                agg_fadd(&s, &comp, agg_as_f64(v, t));
            if (mm) {
                if (cnt == 1 || agg_less(v, mn, t))
                    mn = v;
                if (cnt == 1 || agg_less(mx, v, t))
                    mx = v;
            }
        }
    }
    if (!cnt)
        return;
    w.count = cnt;
    w.isum = isum;
    w.wsum = wsum;
    w.fsum = s;
    w.fcomp = comp;
    w.min = mn;
    w.max = mx;
    if (ops & (AGG_STD | AGG_VAR)) {
        double mean = t == DS_FLOAT64 ? (s + comp) / (double)cnt
                                      : (double)((long double)wsum / (long double)cnt);
        double m2 = 0;
        if (isfinite(mean))
            for (uint64_t i = 0; i < m; i++) {
                if (agg_missing(x[i], t))
                    continue;
                double d = agg_as_f64(t == DS_BOOL ? x[i] != 0 : x[i], t) - mean;
                m2 += d * d;
            }
        else
            m2 = NAN;
        w.mean = mean;
        w.m2 = m2;
    }
    agg_merge(g, &w, t);
}

/* ---- reading ------------------------------------------------------------------------- */

/* What --memory-limit leaves free on this rank, counting the column
 * cache's rows as free (they give way: take_room). */
static uint64_t mem_free(void)
{
    uint64_t used = kd_srv.mem_used - kd_dsc_bytes();
    return kd_srv.mem_limit > used ? kd_srv.mem_limit - used : 0;
}

/* Before charging `bytes` that mem_free() allowed: the column cache gives
 * way. */
static void take_room(uint64_t bytes)
{
    if (kd_srv.mem_used + bytes > kd_srv.mem_limit)
        kd_dsc_trim(bytes);
}

static int agg_read_fail(kd_cmd *c, int rc, const ds_info_t *in, size_t k, size_t b)
{
    char what[600];
    snprintf(what, sizeof what, "read column '%.200s' of batch %zu of dataset '%.200s' "
             "(rank %d)", in->cols[k].name, b, in->name, c->rank);
    return kd_ds_fail(c, rc, what);
}

/* The values of stored column k of batch b of `in` into dst (storage
 * width): rows [off, off + m) when pos is NULL, else the rows pos[0..m)
 * (as an index holds them: ascending). Sparse rows are fetched by an
 * indexed read; dense ones by reading the span they cover, at most
 * `span_rows` rows at a time into `span`, and picking them out. Both give
 * the same values. Local. */
static int agg_rows_at(kd_cmd *c, ds_store_t *s, const ds_info_t *in, size_t k, size_t b,
                       uint64_t off, const uint64_t *pos, uint64_t m, void *dst, void *span,
                       uint64_t span_rows)
{
    int rc;
    if (!pos) {
        rc = m ? kd_dsc_read(s, in, b, k, off, m, dst) : 0;
        return rc ? agg_read_fail(c, rc, in, k, b) : 0;
    }
    uint64_t rows = in->batches[b].rows, lo = UINT64_MAX, hi = 0;
    bool sorted = true;
    for (uint64_t i = 0; i < m; i++) {
        if (pos[i] >= rows)
            return kd_fail(c, "RuntimeError", "dataset '%.200s', batch %zu: row %lld, which "
                           "an index picks, is not in its batch of %llu rows (a damaged store)",
                           in->name, b, (long long)pos[i], (unsigned long long)rows);
        lo = pos[i] < lo ? pos[i] : lo;
        hi = pos[i] > hi ? pos[i] : hi;
        sorted = sorted && (i == 0 || pos[i] >= pos[i - 1]);
    }
    if (!m)
        return 0;
    if (!sorted || span_rows == 0 || kd_ds_gather_sparse(hi - lo + 1, m)) {
        rc = kd_dsc_gather(s, in, b, k, m, pos, dst);
        return rc ? agg_read_fail(c, rc, in, k, b) : 0;
    }
    size_t w = fa_dtype_size(ds_dtype_storage(in->cols[k].dtype));
    for (uint64_t i = 0; i < m;) {
        uint64_t first = pos[i];
        uint64_t len = rows - first < span_rows ? rows - first : span_rows;
        uint64_t j = i; /* the rows wanted from this span */
        while (j < m && pos[j] < first + len)
            j++;
        rc = kd_dsc_read(s, in, b, k, first, pos[j - 1] - first + 1, span);
        if (rc)
            return agg_read_fail(c, rc, in, k, b);
        if (w == 8) {
            const uint64_t *sp = span;
            uint64_t *dp = dst;
            for (uint64_t q = i; q < j; q++)
                dp[q] = sp[pos[q] - first];
        } else {
            for (uint64_t q = i; q < j; q++)
                memcpy((char *)dst + q * w, (const char *)span + (pos[q] - first) * w, w);
        }
        i = j;
    }
    return 0;
}

/* Rows [off, off + m) of batch b of gathered column u into dst (storage
 * width), with no more memory than the window: the request's index rows
 * there, then at each index on the way its rows at those, down to the
 * dataset that stores the values, which are read at the last rows (where
 * a step's derived column dataset has batch b, the values are read from
 * it there instead, as kd_ds_read_batch reads them). Row numbers go back
 * and forth between the window's two scratch slots, and whichever one (or
 * dst, before the values arrive) is free holds the spans read; the
 * request's index rows of a window, read for one column through a single
 * index, stay for the next (src->idx_held). A batch of any size is thus
 * gathered a window at a time; the values, and so every partial result,
 * are those of the batch gathered whole. Local. */
static int agg_gather(kd_cmd *c, agg_src *src, int u, size_t b, uint64_t off, uint64_t m,
                      void *dst)
{
    agg_col *a = &src->c[u];
    const uint64_t *pos = NULL; /* the rows of this step: NULL for [off, off + m) */
    int slot = 0;               /* the scratch slot that is free (pos is in the other) */
    const ds_info_t *from = a->leaf;
    size_t col = a->col;
    if (a->nhop > 1) /* its rows and spans take both slots */
        src->idx_held = false;
    for (int h = 0; h < a->nhop; h++) {
        const agg_hop *hp = &a->hop[h];
        if (hp->part && b < hp->part->nbatches) {
            from = hp->part;
            col = 0;
            break;
        }
        bool held = h == 0 && src->idx_held && src->idx_b == b && src->idx_off == off &&
                    src->idx_m == m; /* the request's index rows, read for another column */
        if (!held) {
            if (h == 0)
                src->idx_held = false; /* (until read whole) */
            if (agg_rows_at(c, src->s, hp->idx, 0, b, off, pos, m, src->scratch[slot], dst,
                            src->window))
                return -1;
        }
        if (h == 0 && a->nhop == 1) {
            src->idx_held = true;
            src->idx_b = b;
            src->idx_off = off;
            src->idx_m = m;
        }
        pos = src->scratch[slot];
        slot ^= 1;
    }
    ds_dtype_t t = a->leaf->cols[a->col].dtype;
    if (from != a->leaf &&
        (from->cols[col].dtype != t ||
         (t == DS_TEXT && from->batches[b].ncat[col] != a->leaf->batches[b].ncat[a->col])))
        return kd_fail(c, "RuntimeError", "ds_agg: batch %zu of column '%.200s' of dataset "
                       "'%.200s' is stored in '%.200s' with another dtype or categories than "
                       "in '%.200s' (a damaged store)", b, a->name, src->in->name, from->name,
                       a->leaf->name);
    return agg_rows_at(c, src->s, from, col, b, off, pos, m, dst, src->scratch[slot],
                       src->window);
}

/* Rows [off, off + n) of used column u of batch b into dst as 64-bit
 * words: text codes mapped into the unified categories, bools widened,
 * -0.0 made 0.0 when `fold_zero`. The one function that reads column data:
 * a stored column (of the dataset, or the derived column dataset "D[x]")
 * is paged straight from FAM; a column of an index dataset that is not
 * stored is gathered through the index the same rows at a time
 * (agg_gather). Local. */
static int agg_read(kd_cmd *c, agg_src *src, int u, size_t b, uint64_t off, uint64_t n,
                    uint64_t *dst, bool fold_zero)
{
    agg_col *a = &src->c[u];
    const ds_info_t *in = a->leaf;
    size_t col = a->col;
    ds_dtype_t t = in->cols[col].dtype;
    if (a->gathered) {
        if (agg_gather(c, src, u, b, off, n, dst))
            return -1;
    } else {
        int rc = kd_dsc_read(src->s, in, b, col, off, n, dst);
        if (rc) {
            char what[512];
            snprintf(what, sizeof what, "read column '%.200s' of dataset '%.200s' (rank %d)",
                     in->cols[col].name, in->name, c->rank);
            return kd_ds_fail(c, rc, what);
        }
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

/* kd_ds_window_alloc, of at most max_rows rows (more would never be used). */
static uint64_t *window_alloc(kd_cmd *c, int ncols, uint64_t max_rows, uint64_t *rows,
                              size_t *bytes)
{
    uint64_t free_bytes = mem_free();
    uint64_t per_row = 8 * (uint64_t)(ncols > 0 ? ncols : 1);
    uint64_t window = free_bytes / 2 / per_row;
    if (window > AGG_WINDOW_MAX)
        window = AGG_WINDOW_MAX;
    uint64_t least = max_rows < AGG_WINDOW_MIN ? (max_rows ? max_rows : 1) : AGG_WINDOW_MIN;
    if (window > max_rows && max_rows >= least)
        window = max_rows;
    else if (window >= AGG_WINDOW_MIN) /* whole runs of AGG_RUN rows (agg_fold_run) */
        window -= window % AGG_RUN;
    *rows = 0;
    *bytes = 0;
    if (window < least) {
        kd_fail(c, "MemoryError", "%s: rank %d has %llu bytes free under its memory limit "
                "(%llu bytes, --memory-limit): too few to page %d rows of %d column(s) "
                "through; free some arrays", c->cmd, c->rank, (unsigned long long)free_bytes,
                (unsigned long long)kd_srv.mem_limit, AGG_WINDOW_MIN, ncols);
        return NULL;
    }
    size_t wb = (size_t)(window * per_row);
    /* from kd_alloc_bytes: huge pages, and a window freed by the last
     * command is taken again already mapped in (page faults are slow here).
     * It takes back a buffer of the same size only, so the size is rounded
     * up to a power of two where there is room to spare (no more than half
     * of what is free: a tight --memory-limit is left as it was, its
     * column cache not squeezed): commands of different
     * column counts then share one window, its pages mapped in once, not
     * once per command (a third of a query's time went to zeroing pages). */
    size_t round = (size_t)1 << 21;
    while (round < wb)
        round <<= 1;
    if (round <= free_bytes / 2)
        wb = round;
    uint64_t *buf = kd_alloc_bytes(wb);
    if (!buf) {
        kd_fail(c, "MemoryError", "%s: rank %d is out of memory for its window of %zu bytes",
                c->cmd, c->rank, wb);
        return NULL;
    }
    take_room(wb);
    kd_srv.mem_used += wb; /* charged while the command runs */
    *rows = window;
    *bytes = wb;
    return buf;
}

uint64_t *kd_ds_window_alloc(kd_cmd *c, int ncols, uint64_t *rows, size_t *bytes)
{
    return window_alloc(c, ncols, UINT64_MAX, rows, bytes);
}

void kd_ds_window_free(uint64_t *buf, size_t bytes)
{
    if (buf) {
        kd_srv.mem_used -= bytes;
        kd_free_bytes(buf, bytes);
    }
}

/* ---- the direct-indexed table ------------------------------------------------------- */

/* When every key of a window of rows is a small integer — text codes, bools,
 * or integers and times whose values in the window span a short range — a
 * key tuple maps straight to a slot of an array (the row-major position of
 * its offsets from each key's least value), and the slot holds the tuple's
 * entry in the hash table, found by hashing once per window and tuple. The
 * entries, their order and every fold are those of the hash table alone
 * (the "hash" request option: tests compare the two), only found faster. */
#define AGG_DIRECT_SLOTS (1 << 16) /* slots of the array, at most */

/* Whether keys of these dtypes may be direct-indexed at all. */
static bool agg_direct_keys(const ds_dtype_t *kt, int nk)
{
    for (int u = 0; u < nk; u++)
        if (kt[u] == DS_FLOAT64)
            return false;
    return true;
}

/* The array (charged to --memory-limit), or NULL when it does not fit well:
 * then the hash table does it all. */
static int32_t *agg_direct_alloc(size_t *bytes)
{
    size_t b = sizeof(int32_t) * AGG_DIRECT_SLOTS;
    uint64_t free_bytes = mem_free();
    int32_t *m = free_bytes >= 4 * (uint64_t)b ? malloc(b) : NULL;
    *bytes = m ? b : 0;
    take_room(*bytes);
    kd_srv.mem_used += *bytes;
    return m;
}

static void agg_direct_free(int32_t *m, size_t bytes)
{
    if (m) {
        kd_srv.mem_used -= bytes;
        free(m);
    }
}

/* For the m rows of a window (key u at buf + u * window): each key's least
 * value lo[u] and the slot stride[u], when the tuples' ranges multiply to
 * *nslots <= AGG_DIRECT_SLOTS (missing keys aside: those rows are skipped). */
static bool agg_direct_plan(const uint64_t *buf, uint64_t window, uint64_t m,
                            const ds_dtype_t *kt, int nk, uint64_t *lo, uint64_t *stride,
                            uint64_t *nslots)
{
    uint64_t slots = 1;
    for (int u = nk - 1; u >= 0; u--) {
        const uint64_t *x = buf + (size_t)u * window;
        bool uns = kt[u] == DS_UINT64 || kt[u] == DS_BOOL;
        uint64_t a = 0, z = 0;
        if (uns) { /* no missing values: a plain pass */
            a = UINT64_MAX;
            for (uint64_t i = 0; i < m; i++) {
                a = x[i] < a ? x[i] : a;
                z = x[i] > z ? x[i] : z;
            }
        } else if (kt[u] == DS_INT64) {
            int64_t sa = INT64_MAX, sz = INT64_MIN;
            for (uint64_t i = 0; i < m; i++) {
                int64_t y = (int64_t)x[i];
                sa = y < sa ? y : sa;
                sz = y > sz ? y : sz;
            }
            a = (uint64_t)sa;
            z = (uint64_t)sz;
        } else { /* text codes (-1 missing), times (INT64_MIN missing) */
            bool any = false;
            for (uint64_t i = 0; i < m; i++) {
                if (agg_missing(x[i], kt[u]))
                    continue;
                if (!any) {
                    a = z = x[i];
                    any = true;
                } else if ((int64_t)x[i] < (int64_t)a) {
                    a = x[i];
                } else if ((int64_t)x[i] > (int64_t)z) {
                    z = x[i];
                }
            }
        }
        if (m == 0) /* no rows (else a <= z; all missing keys: 0, 0) */
            a = z = 0;
        uint64_t span = z - a; /* modulo 2^64: right for both orders */
        if (span >= AGG_DIRECT_SLOTS || (span + 1) * slots > AGG_DIRECT_SLOTS)
            return false;
        lo[u] = a;
        stride[u] = slots;
        slots *= span + 1;
    }
    *nslots = slots;
    return true;
}

/* ---- the cache of per-batch partial results ------------------------------------------ */

/* Every batch is folded into its own partial result (its groups' states,
 * and for nunique its distinct (key tuple, value) pairs), and a rank's
 * partials are merged in batch order. Each rank keeps the partials of the
 * batches it folded, so a later request for the same aggregation merges
 * them again and folds only the batches it has not seen (the update after
 * new batches arrive). A partial is found by its identity (agg_ident):
 * the request (store, dataset, key and value column names, ops) and, for
 * each used column, the batch ids of batch b of every dataset its values
 * come through. Committed batches never change and a dropped and recreated
 * dataset has new batch ids, so a partial found is never stale. Text
 * codes are positions in the union of all batches' categories, which
 * changes as batches arrive: a partial keeps them as codes of its batch's
 * own categories instead (recode), mapped to the union when merged.
 *
 * The partials are charged to --memory-limit and kept under a share of it
 * (AGG_CACHE_SHARE), the least recently used evicted first; a new array
 * that would not fit evicts them too (kd_dsagg_cache_trim), so the cache
 * never makes another command fail. A dropped dataset's partials are no
 * longer found and age out the same way. */
#define AGG_CACHE_SHARE 16      /* the cache holds at most 1/16 of --memory-limit */
#define AGG_CACHE_BUCKETS 4096  /* hash chains */

typedef struct agg_part {
    kd_lru_node lru;                /* its place in the LRU list */
    struct agg_part *chain;         /* next in its hash bucket */
    uint64_t hash;                  /* of ident */
    size_t ilen;                    /* bytes of ident */
    char *ident;                    /* what was folded (agg_ident) */
    int64_t n;                      /* groups */
    uint64_t *keys;                 /* n key tuples (w words each) */
    agg_state *st;                  /* n states */
    int64_t np;                     /* nunique: distinct (key tuple, value) pairs */
    uint64_t *pkeys;                /* np tuples of w + 1 words */
    size_t bytes;                   /* all of it, charged to --memory-limit */
    uint64_t stamp;                 /* the request that last used or kept it */
} agg_part;

static struct {
    agg_part *bucket[AGG_CACHE_BUCKETS]; /* hash chains */
    kd_lru lru;                          /* every partial, most recently used first */
    uint64_t bytes;                      /* held (and charged) */
    int64_t entries;                     /* partials held */
    int64_t evicted;                     /* partials evicted since the start */
    uint64_t stamp;                      /* requests so far (agg_part.stamp) */
} agg_cache;

static uint64_t agg_cache_limit(void)
{
    return kd_srv.mem_limit / AGG_CACHE_SHARE;
}

/* The least recently used partial, NULL if none. */
static agg_part *agg_cache_oldest(void)
{
    return KD_LRU_ENTRY(agg_cache.lru.oldest, agg_part, lru);
}

static void agg_part_unlink(agg_part *p)
{
    agg_part **pp = &agg_cache.bucket[p->hash % AGG_CACHE_BUCKETS];
    while (*pp != p)
        pp = &(*pp)->chain;
    *pp = p->chain;
    kd_lru_remove(&agg_cache.lru, &p->lru);
    agg_cache.bytes -= p->bytes;
    agg_cache.entries--;
    kd_srv.mem_used -= p->bytes;
    free(p->ident);
    free(p->keys);
    free(p->st);
    free(p->pkeys);
    free(p);
}

void kd_dsagg_cache_trim(uint64_t need)
{
    while (agg_cache_oldest() &&
           (need == UINT64_MAX || kd_srv.mem_used + need > kd_srv.mem_limit)) {
        agg_part_unlink(agg_cache_oldest());
        agg_cache.evicted++;
    }
}

void kd_dsagg_cache_clear(void)
{
    while (agg_cache_oldest())
        agg_part_unlink(agg_cache_oldest());
}

/* The partial named ident, made the most recently used; NULL if none. */
static agg_part *agg_cache_find(const char *ident, size_t ilen)
{
    uint64_t h = kd_hash_bytes(ident, ilen);
    agg_part *p = agg_cache.bucket[h % AGG_CACHE_BUCKETS];
    while (p && !(p->hash == h && p->ilen == ilen && memcmp(p->ident, ident, ilen) == 0))
        p = p->chain;
    if (p) {
        p->stamp = agg_cache.stamp;
        kd_lru_touch(&agg_cache.lru, &p->lru);
    }
    return p;
}

/* Keep batch table t (and pairs, may be NULL) under ident: their arrays
 * move into the cache (t and pairs are left empty, to be freed as usual).
 * Nothing happens when it does not fit under the cache's share, or only
 * by evicting a partial this same request used or kept: a request over
 * more batches than fit keeps its first ones instead of evicting each
 * before the next request could use it (the least recently used order
 * would otherwise keep none of a scan). */
static void agg_cache_put(const char *ident, size_t ilen, agg_table *t, agg_table *pairs)
{
    size_t kb = sizeof(uint64_t) * (size_t)t->n * (size_t)t->w;
    size_t sb = sizeof(agg_state) * (size_t)t->n;
    size_t pb = pairs ? sizeof(uint64_t) * (size_t)pairs->n * (size_t)pairs->w : 0;
    size_t bytes = sizeof(agg_part) + ilen + kb + sb + pb;
    if (bytes > agg_cache_limit() || agg_cache_find(ident, ilen))
        return;
    take_room(bytes); /* kept column rows give way to a partial (far smaller, kept longer) */
    while (agg_cache_oldest() && (agg_cache.bytes + bytes > agg_cache_limit() ||
                                  kd_srv.mem_used + bytes > kd_srv.mem_limit)) {
        if (agg_cache_oldest()->stamp == agg_cache.stamp)
            return;
        agg_part_unlink(agg_cache_oldest());
        agg_cache.evicted++;
    }
    if (kd_srv.mem_used + bytes > kd_srv.mem_limit)
        return;
    agg_part *p = calloc(1, sizeof *p);
    char *id = malloc(ilen);
    if (!p || !id) {
        free(p);
        free(id);
        return;
    }
    memcpy(id, ident, ilen);
    p->ident = id;
    p->ilen = ilen;
    p->hash = kd_hash_bytes(ident, ilen);
    p->n = t->n;
    /* the tables' arrays, cut to what they hold */
    uint64_t *k = kb ? realloc(t->keys, kb) : NULL;
    p->keys = k ? k : kb ? t->keys : NULL;
    if (!kb)
        free(t->keys);
    t->keys = NULL;
    agg_state *st = sb ? realloc(t->st, sb) : NULL;
    p->st = st ? st : sb ? t->st : NULL;
    if (!sb)
        free(t->st);
    t->st = NULL;
    if (pairs) {
        p->np = pairs->n;
        uint64_t *pk = pb ? realloc(pairs->keys, pb) : NULL;
        p->pkeys = pk ? pk : pb ? pairs->keys : NULL;
        if (!pb)
            free(pairs->keys);
        pairs->keys = NULL;
    }
    p->bytes = bytes;
    p->stamp = agg_cache.stamp;
    agg_part **head = &agg_cache.bucket[p->hash % AGG_CACHE_BUCKETS];
    p->chain = *head;
    *head = p;
    kd_lru_push(&agg_cache.lru, &p->lru);
    agg_cache.bytes += bytes;
    agg_cache.entries++;
    kd_srv.mem_used += bytes;
}

/* A growing byte string: the identity of a batch's partial result. */
typedef struct {
    char *p;    /* the bytes */
    size_t n;   /* used */
    size_t cap; /* allocated */
    bool oom;   /* a growth failed: the identity is unusable */
} agg_ident;

static void ident_put(agg_ident *d, const void *x, size_t n)
{
    if (d->oom)
        return;
    if (d->n + n > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < d->n + n)
            cap *= 2;
        char *p = realloc(d->p, cap);
        if (!p) {
            d->oom = true;
            return;
        }
        d->p = p;
        d->cap = cap;
    }
    memcpy(d->p + d->n, x, n);
    d->n += n;
}

static void ident_str(agg_ident *d, const char *s)
{
    uint32_t l = (uint32_t)strlen(s); /* length first: no two lists read alike */
    ident_put(d, &l, sizeof l);
    ident_put(d, s, l);
}

/* The part of batch b's identity after the request's: b, then per used
 * column the name and batch b's id of every dataset on its path. */
static void ident_batch(agg_ident *d, const agg_src *src, int nu, size_t b)
{
    uint64_t bb = b;
    ident_put(d, &bb, sizeof bb);
    for (int u = 0; u < nu; u++) {
        const agg_col *a = &src->c[u];
        uint32_t np = (uint32_t)a->npath;
        ident_put(d, &np, sizeof np);
        for (int i = 0; i < a->npath; i++) {
            const ds_info_t *x = a->path[i];
            ident_str(d, x->name);
            ident_str(d, b < x->nbatches ? x->batches[b].id : "-");
        }
    }
}

/* Merge n groups (keys, states) into t in their order, and np pairs into
 * pairs. 0, or -1 out of memory. Local. */
static int agg_merge_into(agg_table *t, agg_table *pairs, const uint64_t *keys,
                          const agg_state *st, int64_t n, const uint64_t *pkeys, int64_t np,
                          ds_dtype_t vt)
{
    size_t w = (size_t)t->w;
    uint64_t k[AGG_MAX_KEYS + 1];
    for (int64_t i = 0; i < n; i++) {
        memcpy(k, keys + (size_t)i * w, w * 8);
        int64_t e = agg_table_get(t, k);
        if (e < 0)
            return -1;
        agg_merge(&t->st[e], &st[i], vt);
    }
    for (int64_t i = 0; pairs && i < np; i++) {
        memcpy(k, pkeys + (size_t)i * (w + 1), (w + 1) * 8);
        if (agg_table_get(pairs, k) < 0)
            return -1;
    }
    return 0;
}

/* Text columns in a kept partial: the codes of batch b's own categories,
 * which never change (the union's positions change as batches arrive).
 * recode() turns the text words of a batch's groups (keys, and min/max of
 * a text value) and pairs from the union's codes to the batch's
 * (to_batch; inv[u] is a scratch array of the union's size, all -1) or
 * back. 0, or -1 for a code with no counterpart (a damaged store). */
typedef struct {
    const agg_src *src;
    int nk;            /* key columns */
    bool text[AGG_MAX_KEYS + 1]; /* per used column: text */
    bool minmax;       /* the states' min/max are text codes */
    int64_t *inv[AGG_MAX_KEYS + 1]; /* per text column: union code -> batch code */
} agg_recoder;

static int recode_word(const agg_recoder *r, int u, size_t b, bool to_batch, uint64_t *w)
{
    int64_t x = (int64_t)*w;
    if (to_batch) {
        if (x < 0 || (size_t)x >= r->src->cat[u]->n || r->inv[u][x] < 0)
            return -1;
        *w = (uint64_t)r->inv[u][x];
    } else {
        const agg_col *a = &r->src->c[u];
        if (x < 0 || (uint64_t)x >= a->leaf->batches[b].ncat[a->col] ||
            !r->src->cat[u]->maps[b])
            return -1;
        *w = (uint64_t)r->src->cat[u]->maps[b][x];
    }
    return 0;
}

static int recode(agg_recoder *r, size_t b, bool to_batch, uint64_t *keys, agg_state *st,
                  int64_t n, uint64_t *pkeys, int64_t np)
{
    int nk = r->nk, rc = 0;
    for (int u = 0; u <= nk; u++) /* the inverse maps of batch b */
        if (r->text[u] && to_batch) {
            const agg_col *a = &r->src->c[u];
            for (uint64_t l = 0; l < a->leaf->batches[b].ncat[a->col]; l++)
                if (r->src->cat[u]->maps[b])
                    r->inv[u][r->src->cat[u]->maps[b][l]] = (int64_t)l;
        }
    for (int64_t i = 0; i < n && !rc; i++) {
        for (int u = 0; u < nk && !rc; u++)
            if (r->text[u])
                rc = recode_word(r, u, b, to_batch, &keys[(size_t)i * (size_t)nk + (size_t)u]);
        if (r->minmax && st[i].count > 0 && !rc)
            rc = recode_word(r, nk, b, to_batch, &st[i].min) ||
                 recode_word(r, nk, b, to_batch, &st[i].max);
    }
    for (int64_t i = 0; i < np && !rc; i++)
        for (int u = 0; u <= nk && !rc; u++)
            if (r->text[u])
                rc = recode_word(r, u, b, to_batch,
                                 &pkeys[(size_t)i * (size_t)(nk + 1) + (size_t)u]);
    for (int u = 0; u <= nk; u++) /* the scratch arrays all -1 again */
        if (r->text[u] && to_batch) {
            const agg_col *a = &r->src->c[u];
            for (uint64_t l = 0; l < a->leaf->batches[b].ncat[a->col]; l++)
                if (r->src->cat[u]->maps[b])
                    r->inv[u][r->src->cat[u]->maps[b][l]] = -1;
        }
    return rc ? -1 : 0;
}

/* ---- the command --------------------------------------------------------------------- */

/* The column info of used column u. */
static const ds_column_info_t *agg_ci(const agg_src *src, int u)
{
    return &src->c[u].leaf->cols[src->c[u].col];
}

/* Add d to a's path (owned: freed with a). */
static int path_add(kd_cmd *c, agg_col *a, ds_info_t *d, bool owned)
{
    if (a->npath == AGG_PATH_MAX) {
        if (owned)
            ds_free_info(d);
        return kd_fail(c, "RuntimeError", "column '%.200s': a lineage longer than %d (a loop?)",
                       a->name, AGG_DEPTH);
    }
    a->path[a->npath] = d;
    a->path_owned[a->npath++] = owned;
    return 0;
}

/* Where column `name` of the request's dataset D comes from (agg_col):
 * a column D stores; else the derived column dataset "D[name]" when it
 * covers D's batches; else, for an index dataset D, the same question of
 * D's base, the values then gathered through D's index. The catalog as
 * this rank sees it, so call it once the derived datasets are current
 * (kd_ds_refresh): then every rank finds the same. Every dataset on the
 * way goes into a->path. Local. */
static int resolve_column(kd_cmd *c, agg_src *src, const char *name, agg_col *a)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    size_t need = src->in->nbatches;
    ds_info_t *at = src->in;
    if (path_add(c, a, at, false))
        return -1;
    for (int depth = 0; depth <= AGG_DEPTH; depth++) {
        for (size_t k = 0; k < at->ncols; k++)
            if (strcmp(at->cols[k].name, name) == 0) {
                a->leaf = at;
                a->col = k;
                goto found;
            }
        char dn[2 * DS_NAME_MAX + 4];
        snprintf(dn, sizeof dn, "%s[%s]", at->name, name);
        ds_info_t *d = NULL;
        if (strlen(dn) <= DS_NAME_MAX && ds_info(src->s, dn, &d) == 0 &&
            d->kind == DS_KIND_COLUMN && d->ncols == 1 && d->nbatches >= need) {
            if (path_add(c, a, d, true))
                return -1;
            a->leaf = d;
            a->col = 0;
            goto found;
        }
        /* one with fewer batches may still be read for the ones it has
         * (kd_ds_read_batch): its batch ids name the values too */
        const ds_info_t *part = NULL;
        if (d && d->kind == DS_KIND_COLUMN && d->nbatches > 0) {
            if (path_add(c, a, d, true))
                return -1;
            part = d->ncols == 1 ? d : NULL;
        } else {
            ds_free_info(d);
        }
        if (at->kind != DS_KIND_INDEX || at->ncols != 1 || !at->base || !at->base[0])
            break;
        a->hop[a->nhop].idx = at; /* depth <= AGG_DEPTH: there is room */
        a->hop[a->nhop++].part = part;
        ds_info_t *b = NULL;
        int rc = ds_info(src->s, at->base, &b);
        if (!rc && b->nbatches < need)
            rc = kd_fail(c, "RuntimeError", "dataset '%.200s' has %zu batches, more than its "
                         "base '%.200s' (%zu): a damaged store", at->name, need, b->name,
                         b->nbatches);
        else if (rc == FAM_ENOTFOUND)
            rc = kd_fail(c, "KeyError", "dataset '%.200s': its base '%.200s' is not in the "
                         "store", at->name, at->base);
        else if (rc)
            rc = kd_ds_fail(c, rc, "dataset info of a base");
        if (rc) {
            ds_free_info(b);
            return -1;
        }
        if (path_add(c, a, b, true))
            return -1;
        at = b;
        a->gathered = true;
    }
    return kd_fail(c, "KeyError", "dataset '%.200s' has no column '%.200s'", src->in->name,
                   name);
found:
    if (a->leaf != src->in) { /* its batches as the request's: the same on every rank */
        a->owned = true;
        a->leaf_nb = a->leaf->nbatches;
        a->leaf->nbatches = need;
    }
    return 0;
}

static void agg_col_free(agg_col *a)
{
    if (a->owned)
        a->leaf->nbatches = a->leaf_nb;
    for (int i = 0; i < a->npath; i++)
        if (a->path_owned[i])
            ds_free_info(a->path[i]);
    memset(a, 0, sizeof *a);
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

/* Every rank's table (and pairs) gathered into rank 0's and merged, in
 * rank order; counts[0..2) (batches folded, batches from the cache) summed
 * into rank 0's. */
static int gather_merge(kd_cmd *c, agg_table *t, agg_table *pairs, ds_dtype_t vt,
                        int64_t counts[2])
{
    int rc = 0;
    /* one buffer per rank: [folded][cached][n][keys n*w words][states n], then
     * [np][pairs np*(w+1)] */
    size_t w = (size_t)t->w;
    size_t bytes = 32 + (size_t)t->n * (w * 8 + sizeof(agg_state)) +
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
        memcpy(p, counts, 16);
        p += 16;
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
            int64_t n, np, cnt[2];
            memcpy(cnt, p, 16);
            p += 16;
            counts[0] += cnt[0];
            counts[1] += cnt[1];
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
        const ds_column_info_t *ci = agg_ci(src, u);
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
    ds_dtype_t vt = with_value ? agg_ci(src, nk)->dtype : DS_INT64;
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
        bool as_float = false;
        if ((op & (AGG_MIN | AGG_MAX)) && vt != DS_FLOAT64 && vt != DS_TEXT &&
            vt != DS_DATETIME) {
            /* integers with a group of no values (the one group of an empty
             * dataset, or of an index that passes nothing): NaN, so float64
             * as pandas gives */
            bool none = false;
            for (int64_t i = 0; i < n && !none; i++)
                none = t->st[i].count == 0;
            if (none) {
                for (int64_t i = 0; i < n; i++) {
                    double f = t->st[i].count == 0 ? NAN : agg_as_f64(v[i], vt);
                    memcpy(&v[i], &f, 8);
                }
                as_float = true;
            }
        }
        if (as_float || (op & (AGG_MEAN | AGG_STD | AGG_VAR)))
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
    kd_ds_trace(c, "[ds_agg");
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
    bool hash_only = false; /* "table": "hash" — no direct-indexed table (tests) */
    json_object *jtab = NULL;
    if (json_object_object_get_ex(c->args, "table", &jtab) && jtab) {
        const char *tn = json_object_is_type(jtab, json_type_string)
                             ? json_object_get_string(jtab) : "";
        if (strcmp(tn, "hash") && strcmp(tn, "auto"))
            return kd_fail(c, "ValueError", "ds_agg: 'table' must be \"auto\" or \"hash\"");
        hash_only = strcmp(tn, "hash") == 0;
    }
    bool no_cache = false; /* "cache": false — fold every batch, keep nothing (tests) */
    if (kd_has_arg(c, "cache")) {
        bool use = true;
        if (kd_arg_bool(c, "cache", &use))
            return -1;
        no_cache = !use;
    }
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
    src.store = store;
    int nu = nk + (with_value ? 1 : 0); /* used columns: keys, then the value */
    const char *names[AGG_MAX_KEYS + 1];
    for (int u = 0; u < nu; u++)
        names[u] = u < nk ? json_object_get_string(json_object_array_get_idx(jkeys, u))
                          : json_object_get_string(jval);
    /* a derived dataset, or a column the dataset does not store (a derived
     * column, or one gathered through an index): bring the store's derived
     * datasets current first, then read the dataset again (the same on
     * every rank: the catalog's definition of the dataset decides) */
    bool derived = src.in->kind != DS_KIND_BASE;
    for (int u = 0; u < nu && !derived; u++) {
        size_t k = 0;
        while (k < src.in->ncols && strcmp(src.in->cols[k].name, names[u]) != 0)
            k++;
        derived = k == src.in->ncols;
    }
    if (derived) {
        kd_ds_detach(src.in, saved);
        src.in = NULL;
        if (kd_ds_refresh(c, src.s, store, NULL) ||
            kd_ds_attach(c, &store, &dataset, &src.s, &src.in, &saved))
            return -1;
        src.store = store;
    }
    const ds_info_t *in = src.in;
    int rc = 0;
    kd_ds_trace(c, "attached");
    /* the columns' lookups and the batch loop's answer from the catalog
     * version just read, without a round trip each (ds_pin) */
    ds_pin(src.s);
    for (int u = 0; u < nu && !rc; u++)
        rc = resolve_column(c, &src, names[u], &src.c[u]);
    if (kd_agree(c, rc)) {
        ds_unpin(src.s);
        for (int u = 0; u < nu; u++)
            agg_col_free(&src.c[u]);
        kd_ds_detach(src.in, saved);
        return -1;
    }
    ds_dtype_t vt = with_value ? agg_ci(&src, nk)->dtype : DS_INT64;
    rc = check_ops(c, ops, with_value ? agg_ci(&src, nk) : NULL);
    /* text columns: every rank unifies the batches' categories (metadata only) */
    for (int u = 0; u < nu && !rc; u++)
        if (agg_ci(&src, u)->dtype == DS_TEXT) {
            int lrc = ds_unify_categories(src.s, src.c[u].leaf, src.c[u].col, &src.cat[u]);
            if (lrc)
                rc = kd_ds_fail(c, lrc, "categories of a text column");
        }
    /* the window: rows of every used column paged in at once */
    uint64_t window = 0;
    size_t wbytes = 0;
    uint64_t *buf = NULL;
    if (!rc) {
        /* this rank's largest batch bounds the window; gathered columns
         * take two more slots of it (row numbers down the lineage, spans
         * of the rows they pick: agg_gather), never a whole batch */
        uint64_t most = 0;
        for (size_t b = (size_t)c->rank; b < in->nbatches; b += (size_t)c->nranks)
            most = in->batches[b].rows > most ? in->batches[b].rows : most;
        bool any_gathered = false;
        for (int u = 0; u < nu; u++)
            any_gathered = any_gathered || src.c[u].gathered;
        int slots = (nu ? nu : 1) + (any_gathered ? 2 : 0);
        buf = window_alloc(c, slots, most ? most : 1, &window, &wbytes);
        if (!buf) {
            rc = -1;
        } else {
            src.window = window;
            src.scratch[0] = buf + (size_t)(slots - 2) * window;
            src.scratch[1] = buf + (size_t)(slots - 1) * window;
        }
    }
    agg_table t, pairs;
    memset(&t, 0, sizeof t);
    memset(&pairs, 0, sizeof pairs);
    if (!rc && (agg_table_init(&t, nk, true) ||
                ((ops & AGG_NUNIQUE) && agg_table_init(&pairs, nk + 1, false))))
        rc = kd_fail(c, "MemoryError", "ds_agg: out of memory");
    if (kd_agree(c, rc))
        goto out;
    kd_ds_trace(c, "resolved");

    /* the direct-indexed table for small integer and text keys (see
     * agg_direct_plan), unless the request asks for the hash table only */
    ds_dtype_t kt[AGG_MAX_KEYS + 1]; /* the keys' dtypes, then the value's */
    for (int u = 0; u < nu; u++)
        kt[u] = agg_ci(&src, u)->dtype;
    int32_t *dmap = NULL, *pmap = NULL; /* groups; (key tuple, value) pairs seen */
    size_t dbytes = 0, pbytes = 0;
    int64_t ndirect = 0; /* windows of this rank that were direct-indexed */
    if (!rc && nk && !hash_only && agg_direct_keys(kt, nk))
        dmap = agg_direct_alloc(&dbytes);
    if (!rc && (ops & AGG_NUNIQUE) && !hash_only && agg_direct_keys(kt, nk + 1))
        pmap = agg_direct_alloc(&pbytes);

    /* with no keys there is one group, present even over no rows (sum 0, mean NaN) */
    uint64_t k[AGG_MAX_KEYS + 1] = {0}, lastk[AGG_MAX_KEYS + 1] = {0};
    const uint64_t zero[AGG_MAX_KEYS + 1] = {0};
    if (nk == 0 && agg_table_get(&t, zero) < 0)
        rc = kd_fail(c, "MemoryError", "ds_agg: out of memory");
    /* the cache (see agg_cache_put): the request's part of every identity */
    agg_cache.stamp++;
    bool cacheable = !no_cache && agg_cache_limit() > 0;
    agg_recoder rec; /* text columns: kept in the batch's own codes */
    memset(&rec, 0, sizeof rec);
    rec.src = &src;
    rec.nk = nk;
    bool any_text = false;
    for (int u = 0; u < nu && cacheable; u++)
        if (kt[u] == DS_TEXT) {
            any_text = rec.text[u] = true;
            size_t nc = src.cat[u] ? src.cat[u]->n : 0;
            if (!src.cat[u] || !(rec.inv[u] = malloc(sizeof(int64_t) * (nc ? nc : 1))))
                cacheable = false; /* (out of memory: folded, not kept) */
            else
                memset(rec.inv[u], 0xff, sizeof(int64_t) * nc);
        }
    rec.minmax = with_value && kt[nk] == DS_TEXT && (ops & (AGG_MIN | AGG_MAX));
    agg_ident id;
    memset(&id, 0, sizeof id);
    size_t id_req = 0;
    if (cacheable) {
        ident_str(&id, "ds_agg/1");
        ident_str(&id, store);
        ident_str(&id, in->name);
        uint32_t x[2] = {(uint32_t)nk, ops};
        ident_put(&id, x, sizeof x);
        for (int u = 0; u < nu; u++)
            ident_str(&id, names[u]);
        ident_str(&id, with_value ? "+" : "-");
        id_req = id.n;
    }
    int64_t counts[2] = {0, 0}; /* batches folded, batches taken from the cache */
    agg_table bt, bp;           /* the batch's partial result */
    memset(&bt, 0, sizeof bt);
    memset(&bp, 0, sizeof bp);
    for (size_t b = (size_t)c->rank; !rc && b < in->nbatches; b += (size_t)c->nranks) {
        if (cacheable) {
            id.n = id_req;
            ident_batch(&id, &src, nu, b);
            agg_part *hit = id.oom ? NULL : agg_cache_find(id.p, id.n);
            if (hit) {
                uint64_t *hk = hit->keys, *hp = hit->pkeys;
                agg_state *hs = hit->st;
                if (any_text) { /* a copy, from the batch's codes to the union's */
                    size_t kb = 8 * (size_t)hit->n * (size_t)nk, sb = sizeof *hs * (size_t)hit->n;
                    size_t pb = 8 * (size_t)hit->np * (size_t)(nk + 1);
                    hk = malloc(kb ? kb : 1);
                    hs = malloc(sb ? sb : sizeof *hs);
                    hp = malloc(pb ? pb : 1);
                    if (!hk || !hs || !hp) {
                        rc = kd_fail(c, "MemoryError", "ds_agg: out of memory");
                    } else {
                        memcpy(hk, hit->keys, kb);
                        memcpy(hs, hit->st, sb);
                        if (pb)
                            memcpy(hp, hit->pkeys, pb);
                        if (recode(&rec, b, false, hk, hs, hit->n, hp, hit->np))
                            rc = kd_fail(c, "RuntimeError", "ds_agg: a kept partial result "
                                         "of batch %zu does not match its categories", b);
                    }
                }
                if (!rc && agg_merge_into(&t, (ops & AGG_NUNIQUE) ? &pairs : NULL, hk, hs,
                                          hit->n, hp, hit->np, vt))
                    rc = kd_fail(c, "MemoryError", "ds_agg: rank %d is out of memory merging "
                                 "%lld groups", c->rank, (long long)t.n);
                if (any_text) {
                    free(hk);
                    free(hs);
                    free(hp);
                }
                counts[1]++;
                continue;
            }
        }
        if (agg_table_init(&bt, nk, true) ||
            ((ops & AGG_NUNIQUE) && agg_table_init(&bp, nk + 1, false)) ||
            (nk == 0 && agg_table_get(&bt, zero) < 0)) {
            rc = kd_fail(c, "MemoryError", "ds_agg: out of memory");
            break;
        }
        int64_t last = -1;
        uint64_t rows = in->batches[b].rows;
        for (uint64_t off = 0; !rc && off < rows; off += window) {
            uint64_t m = rows - off < window ? rows - off : window;
            for (int u = 0; u < nu && !rc; u++)
                rc = agg_read(c, &src, u, b, off, m, buf + (size_t)u * window,
                              u < nk || (ops & AGG_NUNIQUE));
            uint64_t lo[AGG_MAX_KEYS], stride[AGG_MAX_KEYS], nslots = 0;
            bool direct = !rc && dmap && bt.n < INT32_MAX - AGG_DIRECT_SLOTS &&
                          agg_direct_plan(buf, window, m, kt, nk, lo, stride, &nslots);
            ndirect += direct;
            if (direct) /* every slot used: no entry yet */
                memset(dmap, 0xff, sizeof *dmap * (size_t)nslots);
            uint64_t plo[AGG_MAX_KEYS + 1], pstride[AGG_MAX_KEYS + 1], npslots = 0;
            bool pdirect = !rc && pmap && agg_direct_plan(buf, window, m, kt, nk + 1, plo,
                                                          pstride, &npslots);
            if (pdirect) /* no pair seen yet */
                memset(pmap, 0, sizeof *pmap * (size_t)npslots);
            bool run = nk == 0 && with_value; /* one group: the value folded in runs */
            if (run && !rc) {
                bt.st[0].size += (int64_t)m;
                /* runs of AGG_RUN rows from the batch's start (the window
                 * holds a whole number of them): the same sums whatever
                 * the window */
                for (uint64_t r0 = 0; r0 < m; r0 += AGG_RUN)
                    agg_fold_run(&bt.st[0], buf + r0, m - r0 < AGG_RUN ? m - r0 : AGG_RUN, vt,
                                 ops);
            }
            for (uint64_t i = 0; !rc && i < m && !(run && !(ops & AGG_NUNIQUE)); i++) {
                bool skip = false;
                for (int u = 0; u < nk; u++) {
                    k[u] = buf[(size_t)u * window + i];
                    if (agg_missing(k[u], kt[u]))
                        skip = true;
                }
                if (skip)
                    continue;
                int64_t e;
                if (nk == 0) { /* the one group */
                    e = 0;
                } else if (direct) { /* the slot of the key tuple, then its entry */
                    uint64_t sl = 0;
                    for (int u = 0; u < nk; u++)
                        sl += (k[u] - lo[u]) * stride[u];
                    e = dmap[sl];
                    if (e < 0) {
                        e = agg_table_get(&bt, k);
                        dmap[sl] = (int32_t)e;
                    }
                } else { /* the hash table (the last key's entry first: rows of one
                          * group often come together) */
                    e = last >= 0 && memcmp(k, lastk, 8 * (size_t)nk) == 0 ? last
                                                                           : agg_table_get(&bt, k);
                    if (e >= 0) {
                        last = e;
                        memcpy(lastk, k, 8 * (size_t)nk);
                    }
                }
                if (e < 0) {
                    rc = kd_fail(c, "MemoryError", "ds_agg: rank %d is out of memory for "
                                 "%lld groups", c->rank, (long long)bt.n);
                    break;
                }
                agg_state *g = &bt.st[e];
                if (!run)
                    g->size++;
                if (!with_value)
                    continue;
                uint64_t v = buf[(size_t)nk * window + i];
                if (agg_missing(v, vt))
                    continue;
                if (!run)
                    agg_fold(g, v, vt, ops);
                if (ops & AGG_NUNIQUE) {
                    k[nk] = vt == DS_BOOL ? v != 0 : v;
                    if (pdirect) { /* the pair's slot: to the hash set once a window */
                        uint64_t sl = 0;
                        for (int u = 0; u <= nk; u++)
                            sl += (k[u] - plo[u]) * pstride[u];
                        if (pmap[sl])
                            continue;
                        pmap[sl] = 1;
                    }
                    if (agg_table_get(&bp, k) < 0)
                        rc = kd_fail(c, "MemoryError", "ds_agg: rank %d is out of memory "
                                     "for %lld distinct values", c->rank, (long long)bp.n);
                }
            }
        }
        /* the batch's partial into the rank's, then kept for the next request */
        if (!rc && agg_merge_into(&t, (ops & AGG_NUNIQUE) ? &pairs : NULL, bt.keys, bt.st, bt.n,
                                  bp.keys, bp.n, vt))
            rc = kd_fail(c, "MemoryError", "ds_agg: rank %d is out of memory merging %lld "
                         "groups", c->rank, (long long)t.n);
        counts[0]++;
        if (!rc && cacheable && !id.oom &&
            (!any_text || recode(&rec, b, true, bt.keys, bt.st, bt.n, bp.keys, bp.n) == 0))
            agg_cache_put(id.p, id.n, &bt, (ops & AGG_NUNIQUE) ? &bp : NULL);
        agg_table_free(&bt);
        agg_table_free(&bp);
    }
    agg_table_free(&bt);
    agg_table_free(&bp);
    free(id.p);
    for (int u = 0; u <= AGG_MAX_KEYS; u++)
        free(rec.inv[u]);
    agg_direct_free(dmap, dbytes);
    agg_direct_free(pmap, pbytes);
    kd_ds_trace(c, "folded");
    if (kd_agree(c, rc))
        goto out;
    kd_ds_trace(c, "agreed");
    if (gather_merge(c, &t, (ops & AGG_NUNIQUE) ? &pairs : NULL, vt, counts))
        goto out;
    kd_ds_trace(c, "merged");
    rc = c->rank == 0 ? reply(c, &src, nk, &t, (ops & AGG_NUNIQUE) ? &pairs : NULL, ops, ddof,
                              with_value)
                      : 0;
    if (c->rank == 0) {
        kd_result_i64(c, "direct_windows", ndirect); /* rank 0's (tests) */
        kd_result_i64(c, "batches_folded", counts[0]); /* over the ranks */
        kd_result_i64(c, "batches_cached", counts[1]);
        kd_result_i64(c, "cache_bytes", (int64_t)agg_cache.bytes); /* rank 0's */
        kd_result_i64(c, "cache_limit", (int64_t)agg_cache_limit());
        kd_result_i64(c, "cache_evicted", agg_cache.evicted);
    }
    rc = kd_agree(c, rc);
    kd_ds_trace(c, "replied");
out:
    ds_unpin(src.s);
    kd_ds_window_free(buf, wbytes);
    agg_table_free(&t);
    agg_table_free(&pairs);
    for (int u = 0; u <= AGG_MAX_KEYS; u++) {
        ds_free_categories(src.cat[u]);
        agg_col_free(&src.c[u]);
    }
    kd_ds_detach(src.in, saved);
    return c->failed ? -1 : rc;
}

void kd_register_dsagg(void)
{
    kd_register("ds_agg", cmd_ds_agg);
}
