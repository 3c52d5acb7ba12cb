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
 * processed, rank r computes the new batches b with b % nranks == r, and
 * rank 0 commits all of them in ONE transaction:
 * append in batch order + set_progress + expect_batches(previous count).
 * Two servers doing the same at once: one commit wins, the other fails with
 * FAM_EBUSY, deletes its batches and takes the winner's. Nothing is ever
 * seen half done, and nothing stale: a read comes after a refresh.
 *
 * Paging. A batch is computed a chunk of rows at a time through the
 * bounded window (kd_ds_window_alloc, charged to --memory-limit): every
 * temporary of a chunk (the column rows read, an index's rows, the span of
 * a base batch a gather picks from, an expression's intermediate values)
 * is carved from it and the result written to FAM at its offset, so a
 * dataset many times the limit works. A filter whose batch is larger than
 * the window counts its rows first, then compares again and writes. An
 * update of fewer new batches than ranks splits each batch's rows over
 * all ranks instead (compute_split), so no rank sits idle.
 *
 * Commands (docs/PROTOCOL.md):
 *   ds_derive   {store, name, kind: index|column, base, expr, column, dtype}
 *               -> {created, processed, info}  (an existing one alike: reused)
 *   ds_refresh  {store[, known]}        -> {processed, version[, datasets]}
 *               (datasets: ds_list's, when the version is not `known`)
 *   ds_derive_stats {store}             -> {datasets: {name: {updates, batches, last}},
 *                                           colcache, catalog, one_commit: {commits, lost}} */
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
#include <sys/mman.h>
#include <time.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#define DSD_CHUNK (1 << 20) /* elements per ds_read / fa_put call */
#define DSD_DEPTH 32        /* longest lineage followed */
#define DSD_STATS 256       /* datasets this server keeps counters for */
#define DSD_SPARSE 4        /* rows at most one in this many of their span: gathered */

/* ---- counters (rank 0): batches each update computed -------------------------------- */

/* What this server did to bring one derived dataset up to date. */
typedef struct {
    char store[DS_STORE_NAME_MAX + 1];
    char name[DS_NAME_MAX + 1];
    uint64_t updates; /* updates that computed at least one batch */
    uint64_t batches; /* batches computed over all updates */
    uint64_t last;    /* batches computed by the latest update */
    uint64_t solo;    /* updates that rank 0 did alone (refresh_solo) */
} dsd_stat;

static dsd_stat stats[DSD_STATS];
static size_t nstats;

static void stat_add(const char *store, const char *name, uint64_t n, bool solo)
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
    stats[i].solo += solo;
}

/* KD_DSD_TRACE=1 in the environment: each rank prints the time of each
 * phase of bringing a derived dataset up to date, and of ds_agg (a
 * debugging aid); a phase named "[..." starts the clock. Each line ends in
 * "@" and the machine's monotonic clock in seconds (Python's perf_counter),
 * so that bench/ds_update_bench.py --trace lays the ranks' lines and the
 * client's calls on one timeline. */
static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void kd_ds_trace(kd_cmd *c, const char *what)
{
    static int on = -1;
    static double t0;
    if (on < 0)
        on = getenv("KD_DSD_TRACE") != NULL;
    if (!on)
        return;
    double t = MPI_Wtime();
    if (what[0] == '[')
        t0 = t;
    fprintf(stderr, "dsd r%d %8.3f ms  %s @%.6f\n", c->rank, (t - t0) * 1e3, what,
            mono_now());
}

static void trace(kd_cmd *c, const char *what)
{
    kd_ds_trace(c, what);
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
        int rc = kd_dsc_read(s, in, b, k, at, m, (char *)out->data + at * w);
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


/* For read_batch: the values of `column` of batch `batch` of `base` at
 * the rows idx holds, by an indexed read, when base stores the column and
 * the rows are sparse in the batch (*k >= 0: done into *out); else *k =
 * -1 and nothing done. */
static int read_sparse(kd_cmd *c, ds_store_t *s, const char *base, const char *column,
                       size_t batch, const kd_ds_col *idx, kd_ds_col *out, int *k)
{
    *k = -1;
    ds_info_t *bi = NULL;
    if (ds_info(s, base, &bi) != 0 || batch >= bi->nbatches) {
        ds_free_info(bi); /* read_batch says what is wrong */
        return 0;
    }
    int col = col_index(bi, column);
    uint64_t rows = bi->batches[batch].rows;
    if (col < 0 || !kd_ds_gather_sparse(rows, idx->n)) {
        ds_free_info(bi);
        return 0;
    }
    const int64_t *ix = idx->data;
    for (uint64_t i = 0; i < idx->n; i++)
        if (ix[i] < 0 || (uint64_t)ix[i] >= rows) {
            ds_free_info(bi);
            return kd_fail(c, "RuntimeError", "an index of '%.200s', batch %zu: row %lld is "
                           "not in its base's batch of %llu rows (a damaged store)", base,
                           batch, (long long)ix[i], (unsigned long long)rows);
        }
    ds_dtype_t t = bi->cols[col].dtype;
    size_t w = fa_dtype_size(ds_dtype_storage(t));
    memset(out, 0, sizeof *out);
    out->dtype = t;
    out->n = idx->n;
    out->data = malloc(idx->n ? idx->n * w : 1);
    int rc = out->data ? 0 : kd_fail(c, "MemoryError", "out of memory gathering '%.200s'",
                                     column);
    if (!rc && (rc = kd_dsc_gather(s, bi, batch, (size_t)col, idx->n,
                               (const uint64_t *)(const void *)ix, out->data)) != 0) {
        char what[600];
        snprintf(what, sizeof what, "gather column '%.200s' of batch %zu of '%.200s'", column,
                 batch, base);
        rc = kd_ds_fail(c, rc, what);
    }
    if (!rc && t == DS_TEXT) {
        int lrc = ds_read_categories(s, bi, batch, (size_t)col, &out->cats, &out->ncats);
        if (lrc)
            rc = kd_ds_fail(c, lrc, "read categories of a batch");
        const int64_t *p = out->data;
        for (uint64_t i = 0; !rc && i < out->n; i++)
            if (p[i] < -1 || (p[i] >= 0 && (uint64_t)p[i] >= out->ncats))
                rc = kd_fail(c, "RuntimeError", "dataset '%.200s', batch %zu: a code is not "
                             "one of its categories (a damaged store: run store.verify())",
                             base, batch);
    }
    if (rc)
        kd_ds_col_free(out);
    else
        *k = col;
    ds_free_info(bi);
    return rc;
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
            /* gathered from the base through the index: only the rows
             * wanted when they are sparse in a column the base stores,
             * else the base's whole batch and the rows picked out */
            kd_ds_col idx, src;
            int gk = -1;
            rc = read_stored(c, s, in, 0, batch, &idx);
            if (!rc && (rc = read_sparse(c, s, in->base, column, batch, &idx, out, &gk)))
                kd_ds_col_free(&idx);
            if (!rc && gk >= 0) {
                kd_ds_col_free(&idx);
            } else if (!rc && (rc = read_batch(c, s, in->base, column, batch, &src, depth + 1))) {
                kd_ds_col_free(&idx);
            } else if (!rc) {
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

/* ---- the window: scratch memory for one chunk of rows -------------------------------- */

/* Everything a refresh computes lives in one window (kd_ds_window_alloc,
 * charged to --memory-limit), handed out by a bump allocator and reset
 * after every chunk, so no buffer is allocated (or page-faulted in) per
 * batch and nothing larger than the window is ever in memory. */
typedef struct {
    char *base;    /* the window */
    size_t cap;    /* its bytes */
    size_t used;   /* bytes handed out since the last reset */
    size_t ready;  /* bytes from base whose pages are mapped in */
    uint64_t rows; /* rows per chunk: what one slot holds */
} dsd_arena;

/* Map in the window's pages up to `end` with one call, not a page fault
 * per page (page faults are costly in virtual machines); best effort. */
static void arena_ready(dsd_arena *a, size_t end)
{
    if (end <= a->ready)
        return;
    size_t pg = 4096, want = end - a->ready < ((size_t)8 << 20) ? a->ready + ((size_t)8 << 20)
                                                                 : end;
    if (want > a->cap)
        want = a->cap;
    uintptr_t lo = ((uintptr_t)(a->base + a->ready) + pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t hi = (uintptr_t)(a->base + want) & ~(uintptr_t)(pg - 1);
#ifdef MADV_POPULATE_WRITE
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
    (void)lo;
    (void)hi;
#endif
    a->ready = want;
}

static void *arena_get(kd_cmd *c, dsd_arena *a, uint64_t n, size_t w)
{
    size_t need = ((size_t)(n ? n : 1) * w + 63) & ~(size_t)63;
    if (need > a->cap - a->used) {
        kd_fail(c, "MemoryError", "%s: the window of %zu bytes (--memory-limit) is too small "
                "for this expression's temporaries", c->cmd, a->cap);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used += need;
    arena_ready(a, a->used);
    return p;
}

/* ---- reading rows of a column --------------------------------------------------------- */

/* Some rows of one column: n values (storage width) in the window, and
 * for text the batch's categories. */
typedef struct {
    ds_dtype_t dtype;
    uint64_t n;
    void *data;   /* in the arena */
    char **cats;  /* text: the batch's categories (malloc'd), else NULL */
    size_t ncats;
} dsd_piece;

static void piece_free(dsd_piece *p)
{
    if (p->cats)
        ds_free_names(p->cats, p->ncats);
    p->cats = NULL;
    p->ncats = 0;
}

/* text: the batch's categories, and every code checked against them */
static int piece_cats(kd_cmd *c, ds_store_t *s, const ds_info_t *in, size_t k, size_t b,
                      dsd_piece *out)
{
    int rc = ds_read_categories(s, in, b, k, &out->cats, &out->ncats);
    if (rc) {
        out->cats = NULL;
        return kd_ds_fail(c, rc, "read categories of a batch");
    }
    const int64_t *p = out->data;
    for (uint64_t i = 0; i < out->n; i++)
        if (p[i] < -1 || (p[i] >= 0 && (uint64_t)p[i] >= out->ncats)) {
            piece_free(out);
            return kd_fail(c, "RuntimeError", "dataset '%.200s', batch %zu: a code is not one "
                           "of its categories (a damaged store: run store.verify())", in->name,
                           b);
        }
    return 0;
}

static int read_fail(kd_cmd *c, int rc, const ds_info_t *in, size_t k, size_t b)
{
    char what[600];
    snprintf(what, sizeof what, "read column '%.200s' of batch %zu of '%.200s'",
             in->cols[k].name, b, in->name);
    return kd_ds_fail(c, rc, what);
}

/* rows [off, off + m) of stored column k of batch b of `in` */
static int stored_rows(kd_cmd *c, ds_store_t *s, dsd_arena *a, const ds_info_t *in, size_t k,
                       size_t b, uint64_t off, uint64_t m, dsd_piece *out)
{
    ds_dtype_t t = in->cols[k].dtype;
    size_t w = fa_dtype_size(ds_dtype_storage(t));
    memset(out, 0, sizeof *out);
    out->dtype = t;
    out->n = m;
    if (!(out->data = arena_get(c, a, m, w)))
        return -1;
    int rc = m ? kd_dsc_read(s, in, b, k, off, m, out->data) : 0;
    if (rc)
        return read_fail(c, rc, in, k, b);
    return t == DS_TEXT ? piece_cats(c, s, in, k, b, out) : 0;
}

/* The fewest rows of a batch an update of fewer new batches than ranks
 * splits over all ranks (compute_split); a smaller one is computed by the
 * rank that owns it while the others wait (the split's exchanges of counts
 * and the arrays' attaching cost more than the work saved). From the
 * environment (the tests force each way): KD_DSD_SPLIT_MIN=<rows>, or
 * KD_DSD_SPLIT=0 for never. */
static uint64_t split_min(void)
{
    static int64_t min = -1;
    if (min < 0) {
        const char *off = getenv("KD_DSD_SPLIT"), *e = getenv("KD_DSD_SPLIT_MIN");
        min = off && !strcmp(off, "0") ? INT64_MAX : e ? strtoll(e, NULL, 10) : 1 << 17;
        if (min < 0)
            min = 0;
    }
    return (uint64_t)min;
}

/* kd_ds.h */
bool kd_ds_gather_sparse(uint64_t span, uint64_t m)
{
    static int force = -1; /* 0 span, 1 index, 2 by density */
    if (force < 0) {
        const char *e = getenv("KD_DSD_GATHER");
        force = e && !strcmp(e, "span") ? 0 : e && !strcmp(e, "index") ? 1 : 2;
    }
    return force == 2 ? span / DSD_SPARSE >= m : force == 1;
}

/* the values of stored column k of batch b of `in` at rows pos[0..m)
 * (ascending, as index datasets hold them): when they are dense, the span
 * they cover is read a window slot at a time and the rows picked out;
 * when they are sparse (fewer than one row in DSD_SPARSE of the span), an
 * indexed read (ds_gather) fetches only them. Both give the same values
 * (tests/python/test_ds_derived.py, test_fast_paths_as_general). */
static int stored_at(kd_cmd *c, ds_store_t *s, dsd_arena *a, const ds_info_t *in, size_t k,
                     size_t b, const int64_t *pos, uint64_t m, dsd_piece *out)
{
    ds_dtype_t t = in->cols[k].dtype;
    size_t w = fa_dtype_size(ds_dtype_storage(t));
    uint64_t rows = in->batches[b].rows;
    memset(out, 0, sizeof *out);
    out->dtype = t;
    out->n = m;
    for (uint64_t i = 0; i < m; i++)
        if (pos[i] < 0 || (uint64_t)pos[i] >= rows || (i && pos[i] < pos[i - 1]))
            return kd_fail(c, "RuntimeError", "dataset '%.200s', batch %zu: row %lld is not "
                           "in its batch of %llu rows, or out of order (a damaged store)",
                           in->name, b, (long long)pos[i], (unsigned long long)rows);
    char *dst = arena_get(c, a, m, w);
    if (!dst)
        return -1;
    out->data = dst;
    if (m && kd_ds_gather_sparse((uint64_t)(pos[m - 1] - pos[0]) + 1, m)) {
        int rc = kd_dsc_gather(s, in, b, k, m, (const uint64_t *)(const void *)pos, dst);
        if (rc)
            return read_fail(c, rc, in, k, b);
        return t == DS_TEXT ? piece_cats(c, s, in, k, b, out) : 0;
    }
    char *span = arena_get(c, a, a->rows, w);
    if (!span)
        return -1;
    for (uint64_t i = 0; i < m;) {
        uint64_t first = (uint64_t)pos[i];
        uint64_t len = rows - first < a->rows ? rows - first : a->rows;
        /* only as far as the last row wanted from this span */
        uint64_t j = i;
        while (j < m && pos[j] >= pos[i] && (uint64_t)pos[j] < first + len)
            j++;
        uint64_t need = (uint64_t)pos[j - 1] - first + 1;
        int rc = kd_dsc_read(s, in, b, k, first, need, span);
        if (rc)
            return read_fail(c, rc, in, k, b);
        if (w == 8) {
            const uint64_t *sp = (const uint64_t *)(void *)span;
            uint64_t *dp = (uint64_t *)(void *)dst;
            for (uint64_t q = i; q < j; q++)
                dp[q] = sp[(uint64_t)pos[q] - first];
        } else {
            for (uint64_t q = i; q < j; q++)
                memcpy(dst + q * w, span + ((uint64_t)pos[q] - first) * w, w);
        }
        i = j;
    }
    return t == DS_TEXT ? piece_cats(c, s, in, k, b, out) : 0;
}

/* Where column `column` of `dataset` is: a column it stores (*k >= 0 in
 * *in), the derived column dataset "<dataset>[<column>]" covering batch b
 * (*k == 0 in *in), or, for an index dataset, gathered from its base
 * (*k == -1, *in the index dataset). *in: release with ds_free_info. */
static int locate(kd_cmd *c, ds_store_t *s, const char *dataset, const char *column, size_t b,
                  ds_info_t **in, int *k)
{
    if (info_of(c, s, dataset, in))
        return -1;
    if (b >= (*in)->nbatches) {
        int rc = kd_fail(c, "IndexError", "dataset '%.200s' has %zu batches, not %zu", dataset,
                         (*in)->nbatches, b + 1);
        ds_free_info(*in);
        *in = NULL;
        return rc;
    }
    if ((*k = col_index(*in, column)) >= 0)
        return 0;
    char dn[2 * DS_NAME_MAX + 4];
    snprintf(dn, sizeof dn, "%s[%s]", dataset, column);
    ds_info_t *d = NULL;
    if (strlen(dn) <= DS_NAME_MAX && ds_info(s, dn, &d) == 0 && d->kind == DS_KIND_COLUMN &&
        d->ncols == 1 && b < d->nbatches) {
        ds_free_info(*in);
        *in = d;
        *k = 0;
        return 0;
    }
    ds_free_info(d);
    if ((*in)->kind == DS_KIND_INDEX && (*in)->ncols == 1) {
        *k = -1;
        return 0;
    }
    int rc = kd_fail(c, "KeyError", "dataset '%.200s' has no column '%.200s'", dataset, column);
    ds_free_info(*in);
    *in = NULL;
    return rc;
}

/* The m values of batch b of column `column` of `dataset`, where ever the
 * column is (locate): at rows pos[0..m) (ascending), or with pos NULL rows
 * [off, off + m). Through an index: the index's values there, then the
 * base's rows at those, down the lineage. */
static int rows_of(kd_cmd *c, ds_store_t *s, dsd_arena *a, const char *dataset,
                   const char *column, size_t b, uint64_t off, const int64_t *pos, uint64_t m,
                   dsd_piece *out, int depth)
{
    if (depth > DSD_DEPTH)
        return kd_fail(c, "RuntimeError", "dataset '%.200s': a lineage longer than %d (a loop?)",
                       dataset, DSD_DEPTH);
    ds_info_t *in = NULL;
    int k, rc = locate(c, s, dataset, column, b, &in, &k);
    if (rc)
        return rc;
    dsd_piece idx, *into = k >= 0 ? out : &idx;
    size_t col = k >= 0 ? (size_t)k : 0;
    rc = pos ? stored_at(c, s, a, in, col, b, pos, m, into)
             : stored_rows(c, s, a, in, col, b, off, m, into);
    if (!rc && k < 0)
        rc = rows_of(c, s, a, in->base, column, b, 0, idx.data, m, out, depth + 1);
    ds_free_info(in);
    return rc;
}

/* rows [off, off + m) of batch b of column `column` of `dataset` */
static int read_rows(kd_cmd *c, ds_store_t *s, dsd_arena *a, const char *dataset,
                     const char *column, size_t b, uint64_t off, uint64_t m, dsd_piece *out,
                     int depth)
{
    return rows_of(c, s, a, dataset, column, b, off, NULL, m, out, depth);
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

/* A value of an expression over one chunk: n elements, or a scalar. */
typedef struct {
    kd_dtype t;
    bool scalar;
    kd_scalar s;
    void *data; /* n elements of t (in the arena) when not a scalar */
} ev;

/* v as n elements of dtype t: v's own buffer when it already is (callers
 * may then overwrite it: every value is a temporary), else a new one */
static void *as_dtype(kd_cmd *c, dsd_arena *a, const ev *v, kd_dtype t, uint64_t n)
{
    if (!v->scalar && v->t == t)
        return v->data;
    size_t w = kd_dtype_size(t);
    char *p = arena_get(c, a, n, w);
    if (!p)
        return NULL;
    if (v->scalar) {
        uint64_t one = 0;
        kd_scalar_cast(&v->s, t, &one);
        if (w == 8) {
            uint64_t *q = (uint64_t *)(void *)p;
            for (uint64_t i = 0; i < n; i++)
                q[i] = one;
        } else {
            uint8_t byte;
            memcpy(&byte, &one, 1);
            memset(p, byte, n);
        }
    } else {
        kd_cast(v->data, v->t, p, t, (int64_t)n);
    }
    return p;
}

/* Where an expression reads its columns: batch b of `base`, rows [off, off + n). */
typedef struct {
    ds_store_t *s;
    dsd_arena *a;
    const char *base;
    size_t b;
    uint64_t off, n;
} dsd_rows;

static int eval(kd_cmd *c, const dsd_rows *r, json_object *e, ev *out, int depth);

static int eval_binop(kd_cmd *c, const dsd_rows *r, json_object *e, ev *out, int depth)
{
    const char *op = jstr(e, "binop");
    kd_dtype ct, rt;
    uint64_t n = r->n;
    if (jdtype(c, e, "ct", &ct) || jdtype(c, e, "rt", &rt))
        return -1;
    ev x = {0}, y = {0};
    if (eval(c, r, jget(e, "a"), &x, depth + 1) || eval(c, r, jget(e, "b"), &y, depth + 1))
        return -1;
    bool half = false;
    if (y.scalar && !x.scalar && x.t == KD_FLOAT64) {
        double h;
        kd_scalar_cast(&y.s, KD_FLOAT64, &h);
        half = h == 0.5;
    }
    bool cmp = !strcmp(op, "<") || !strcmp(op, "<=") || !strcmp(op, ">") || !strcmp(op, ">=") ||
               !strcmp(op, "==") || !strcmp(op, "!=");
    if (cmp && rt != KD_BOOL)
        return kd_fail(c, "TypeError", "comparison '%s' gives bool, not %s", op,
                       kd_dtype_name(rt));
    kd_dtype kt = cmp ? KD_BOOL : ct;
    void *xp = as_dtype(c, r->a, &x, ct, n), *yp = xp ? as_dtype(c, r->a, &y, ct, n) : NULL;
    void *res = yp ? arena_get(c, r->a, n, 8) : NULL;
    if (!res)
        return -1;
    const char *why = kd_ew_binop(op, ct, xp, yp, half, res, (int64_t)n);
    if (why)
        return kd_fail(c, strstr(why, "negative integer") ? "ValueError" : "TypeError",
                       "operator '%s' %s", op, why);
    if (kt != rt) {
        void *r2 = arena_get(c, r->a, n, 8);
        if (!r2)
            return -1;
        kd_cast(res, kt, r2, rt, (int64_t)n);
        res = r2;
    }
    out->t = rt;
    out->data = res;
    return 0;
}

static int eval(kd_cmd *c, const dsd_rows *r, json_object *e, ev *out, int depth)
{
    memset(out, 0, sizeof *out);
    if (depth > 256 || !e || !json_object_is_type(e, json_type_object))
        return kd_fail(c, "ValueError", "a derived column's expression is not valid");
    const char *col = jstr(e, "col"), *un = jstr(e, "unop"), *cast = jstr(e, "astype");
    uint64_t n = r->n;
    if (col) {
        dsd_piece v;
        if (read_rows(c, r->s, r->a, r->base, col, r->b, r->off, n, &v, 0))
            return -1;
        if (v.dtype == DS_TEXT) {
            piece_free(&v);
            return kd_fail(c, "TypeError", "column '%.200s' is text: expressions take numbers, "
                           "bool and datetime columns", col);
        }
        out->t = kd_of(v.dtype);
        out->data = v.data;
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
        return eval_binop(c, r, e, out, depth);
    if (un || cast) {
        kd_dtype t = 0;
        if (cast && jdtype(c, e, "astype", &t))
            return -1;
        ev x;
        if (eval(c, r, jget(e, "a"), &x, depth + 1))
            return -1;
        void *xp = as_dtype(c, r->a, &x, cast ? t : x.t, n);
        if (!xp)
            return -1;
        out->t = cast ? t : x.t;
        out->data = xp;
        if (un) {
            const char *why = kd_ew_unop(un, x.t, xp, xp, (int64_t)n);
            if (why)
                return kd_fail(c, "TypeError", "%s: %s", un, why);
        }
        return 0;
    }
    if (jget(e, "where")) {
        kd_dtype rt;
        if (jdtype(c, e, "rt", &rt))
            return -1;
        ev k, x, y;
        if (eval(c, r, jget(e, "where"), &k, depth + 1) || eval(c, r, jget(e, "a"), &x, depth + 1) ||
            eval(c, r, jget(e, "b"), &y, depth + 1))
            return -1;
        uint8_t *kp = as_dtype(c, r->a, &k, KD_BOOL, n);
        char *xp = kp ? as_dtype(c, r->a, &x, rt, n) : NULL;
        char *yp = xp ? as_dtype(c, r->a, &y, rt, n) : NULL;
        if (!yp)
            return -1;
        size_t w = kd_dtype_size(rt);
        for (uint64_t i = 0; i < n; i++)
            if (!kp[i])
                memcpy(xp + i * w, yp + i * w, w);
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
static int num_cmp(kd_cmd *c, dsd_arena *a, const dsd_piece *v, const char *op, json_object *o,
                   const char *key, kd_dtype ct, uint8_t *mask, bool and_into, bool isin)
{
    kd_scalar sc;
    if (jscalar(c, o, key, &sc))
        return -1;
    size_t mark = a->used; /* this comparison's temporaries go after it */
    ev x = {.t = kd_of(v->dtype), .data = v->data}, y = {.t = sc.dtype, .scalar = true, .s = sc};
    /* x is the column piece itself when no cast is needed: read, never written */
    void *xp = as_dtype(c, a, &x, ct, v->n), *yp = xp ? as_dtype(c, a, &y, ct, v->n) : NULL;
    uint8_t *r = yp ? arena_get(c, a, v->n, 1) : NULL;
    if (!r)
        return -1;
    const char *why = kd_ew_binop(op, ct, xp, yp, false, r, (int64_t)v->n);
    if (why)
        return kd_fail(c, "TypeError", "filter '%s': %s", op, why);
    if (and_into)
        for (uint64_t i = 0; i < v->n; i++)
            mask[i] &= r[i];
    else
        for (uint64_t i = 0; i < v->n; i++)
            mask[i] |= r[i];
    /* pandas' isin finds NaN among the values (a hash lookup, not ==) */
    if (isin && ct == KD_FLOAT64 && sc.dtype == KD_FLOAT64 && isnan(sc.v.f))
        for (uint64_t i = 0; i < v->n; i++)
            mask[i] |= isnan(((const double *)xp)[i]);
    a->used = mark;
    return 0;
}

/* text: which categories pass, then which rows */
static int text_filter(kd_cmd *c, const dsd_piece *v, const char *op, json_object *f,
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

/* Whether the fused filter may run: KD_DSD_FILTER=generic in the
 * environment turns it off (the tests compare both ways). */
static bool fused_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("KD_DSD_FILTER");
        on = !(e && !strcmp(e, "generic"));
    }
    return on;
}

/* One run of the fused filter: x[0..n) (row numbers from `at`) against lo
 * (and hi), the passing row numbers appended at rows[*k]. Branch-free:
 * every row number is written, and *k moves on the passing ones. */
#define FUSED_RUN(T, COND)                                                        \
    do {                                                                          \
        const T *x = (const T *)p;                                                \
        T lo, hi;                                                                 \
        memcpy(&lo, &lob, sizeof lo);                                             \
        memcpy(&hi, &hib, sizeof hi);                                             \
        (void)hi;                                                                 \
        for (uint64_t i = 0; i < n; i++) {                                        \
            rows[k] = (int64_t)(at + i);                                          \
            k += (COND);                                                          \
        }                                                                         \
    } while (0)
#define FUSED_TYPE(T)                                                             \
    switch (which) {                                                              \
    case 0: FUSED_RUN(T, x[i] == lo); break;                                      \
    case 1: FUSED_RUN(T, x[i] != lo); break;                                      \
    case 2: FUSED_RUN(T, x[i] < lo); break;                                       \
    case 3: FUSED_RUN(T, x[i] <= lo); break;                                      \
    case 4: FUSED_RUN(T, x[i] > lo); break;                                       \
    case 5: FUSED_RUN(T, x[i] >= lo); break;                                      \
    default: FUSED_RUN(T, x[i] >= lo && x[i] <= hi); break;                       \
    }

/* The passing rows of a block of 16 rows from row number `at`, given as
 * a bit mask (bit j: row at + j), appended at rows[k]; the new k. Few
 * passing: one write per passing row; many: branch-free, 16 writes. */
static inline uint64_t emit16(unsigned m, uint64_t at, int64_t *rows, uint64_t k)
{
    if (__builtin_popcount(m) <= 4) {
        for (; m; m &= m - 1)
            rows[k++] = (int64_t)(at + (unsigned)__builtin_ctz(m));
    } else {
        for (unsigned j = 0; j < 16; j++) {
            rows[k] = (int64_t)(at + j);
            k += (m >> j) & 1;
        }
    }
    return k;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The fused filter of float64 rows with AVX2: 16 rows compared at a time
 * into a bit mask, the passing row numbers written from it. The
 * predicates are C's operators on doubles, NaN included (ordered compares
 * for == < <= > >=, unordered for !=), so the rows are FUSED_RUN's
 * (test_fast_paths_as_general). Rows [0, n - n % 16) of x; the new k. */
#define F64_BLOCK(CMP)                                                                    \
    for (uint64_t i = 0; i + 16 <= n; i += 16) {                                          \
        __m256d x0 = _mm256_loadu_pd(x + i), x1 = _mm256_loadu_pd(x + i + 4);             \
        __m256d x2 = _mm256_loadu_pd(x + i + 8), x3 = _mm256_loadu_pd(x + i + 12);        \
        unsigned m = (unsigned)_mm256_movemask_pd(CMP(x0)) |                              \
                     (unsigned)_mm256_movemask_pd(CMP(x1)) << 4 |                         \
                     (unsigned)_mm256_movemask_pd(CMP(x2)) << 8 |                         \
                     (unsigned)_mm256_movemask_pd(CMP(x3)) << 12;                         \
        if (m)                                                                            \
            k = emit16(m, at + i, rows, k);                                               \
    }
#define F64_EQ(v) _mm256_cmp_pd(v, l, _CMP_EQ_OQ)
#define F64_NE(v) _mm256_cmp_pd(v, l, _CMP_NEQ_UQ)
#define F64_LT(v) _mm256_cmp_pd(v, l, _CMP_LT_OQ)
#define F64_LE(v) _mm256_cmp_pd(v, l, _CMP_LE_OQ)
#define F64_GT(v) _mm256_cmp_pd(v, l, _CMP_GT_OQ)
#define F64_GE(v) _mm256_cmp_pd(v, l, _CMP_GE_OQ)
#define F64_IN(v) _mm256_and_pd(_mm256_cmp_pd(v, l, _CMP_GE_OQ), _mm256_cmp_pd(v, h, _CMP_LE_OQ))
__attribute__((target("avx2"))) static uint64_t filter_f64_avx2(const double *x, uint64_t n,
                                                               int which, double lo, double hi,
                                                               int64_t *rows, uint64_t k,
                                                               uint64_t at)
{
    __m256d l = _mm256_set1_pd(lo), h = _mm256_set1_pd(hi);
    (void)h;
    switch (which) {
    case 0: F64_BLOCK(F64_EQ) break;
    case 1: F64_BLOCK(F64_NE) break;
    case 2: F64_BLOCK(F64_LT) break;
    case 3: F64_BLOCK(F64_LE) break;
    case 4: F64_BLOCK(F64_GT) break;
    case 5: F64_BLOCK(F64_GE) break;
    default: F64_BLOCK(F64_IN) break;
    }
    return k;
}

/* Whether filter_f64_avx2 may run: the CPU has AVX2 and KD_DSD_SIMD=0 is
 * not in the environment (the tests compare both ways). */
static bool simd_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("KD_DSD_SIMD");
        __builtin_cpu_init();
        on = __builtin_cpu_supports("avx2") && !(e && !strcmp(e, "0"));
    }
    return on;
}
#endif

/* The fused filter, for the common case: a numeric column that `base`
 * stores, compared with one value (eq ... ge) or two (between) in the
 * column's own dtype, read in place from the pool mapped here (ds_local)
 * or else into the window: each row compared once and its number written
 * if it passes; no broadcast value, no mask (and no copy when mapped).
 * The comparisons are binop's (C's operators on the same values), so the
 * rows are those of the general path below (tests/python/
 * test_ds_derived.py, test_fast_paths_as_general). 1 if it ran, 0 if this
 * case is not one it does (nothing done), -1 on error. */
static int filter_fused(kd_cmd *c, ds_store_t *s, dsd_arena *a, const char *base, size_t b,
                        uint64_t off, uint64_t m, json_object *f, const char *column,
                        const char *op, int64_t *rows, uint64_t *np)
{
    static const char *const ops[] = {"eq", "ne", "lt", "le", "gt", "ge", "between"};
    int which = -1;
    for (int i = 0; i < 7; i++)
        if (!strcmp(op, ops[i]))
            which = i;
    kd_dtype ct;
    const char *cts = jstr(f, "ct");
    if (!rows || which < 0 || !fused_on() || !cts || kd_dtype_parse(cts, &ct))
        return 0;
    ds_info_t *in = NULL;
    int col, rc = locate(c, s, base, column, b, &in, &col);
    if (rc)
        return -1;
    ds_dtype_t t = col >= 0 ? in->cols[col].dtype : DS_TEXT;
    if (col < 0 || t == DS_TEXT || t == DS_BOOL || kd_of(t) != ct) {
        ds_free_info(in);
        return 0;
    }
    kd_scalar sa, sz;
    uint64_t lob = 0, hib = 0;
    if (which < 6 ? jscalar(c, f, "value", &sa) : (jscalar(c, f, "lo", &sa) ||
                                                     jscalar(c, f, "hi", &sz))) {
        ds_free_info(in);
        return -1;
    }
    kd_scalar_cast(&sa, ct, &lob);
    if (which == 6)
        kd_scalar_cast(&sz, ct, &hib);
    uint64_t k = 0;
    size_t mark = a->used;
    for (uint64_t at = off; at < off + m;) {
        const void *p;
        uint64_t n;
        int lrc = kd_dsc_local(s, in, b, (size_t)col, at, off + m - at, &p, &n);
        if (lrc || n == 0) {
            /* not mapped here: the rows left read into the window */
            dsd_piece v;
            n = off + m - at;
            if (stored_rows(c, s, a, in, (size_t)col, b, at, n, &v)) {
                ds_free_info(in);
                return -1;
            }
            p = v.data;
        }
#if defined(__x86_64__) && defined(__GNUC__)
        if (ct == KD_FLOAT64 && simd_on()) {
            /* whole blocks of 16 with AVX2, the rest below */
            double dlo, dhi;
            memcpy(&dlo, &lob, sizeof dlo);
            memcpy(&dhi, &hib, sizeof dhi);
            uint64_t whole = n - n % 16;
            k = filter_f64_avx2(p, whole, which, dlo, dhi, rows, k, at);
            p = (const double *)p + whole;
            at += whole;
            n -= whole;
        }
#endif
        if (ct == KD_FLOAT64)
            FUSED_TYPE(double)
        else if (ct == KD_UINT64)
            FUSED_TYPE(uint64_t)
        else
            FUSED_TYPE(int64_t)
        at += n;
    }
    a->used = mark;
    ds_free_info(in);
    *np = k;
    return 1;
}

/* The rows among [off, off + m) of batch b of `base` that pass filter f,
 * as row numbers within the batch into rows[] (room for m); *np gets how
 * many. The column is read into the window and compared there. */
static int filter_chunk(kd_cmd *c, ds_store_t *s, dsd_arena *a, const char *base, size_t b,
                        uint64_t off, uint64_t m, json_object *f, int64_t *rows, uint64_t *np)
{
    const char *column = jstr(f, "column"), *op = jstr(f, "op");
    if (!column || !op)
        return kd_fail(c, "ValueError", "a filter needs a column and an op");
    int fused = filter_fused(c, s, a, base, b, off, m, f, column, op, rows, np);
    if (fused)
        return fused < 0 ? -1 : 0;
    size_t mark = a->used;
    dsd_piece v;
    if (read_rows(c, s, a, base, column, b, off, m, &v, 0))
        return -1;
    uint8_t *mask = arena_get(c, a, m, 1);
    int rc = mask ? 0 : -1;
    if (!rc)
        memset(mask, 0, m);
    kd_dtype ct = KD_FLOAT64;
    if (!rc && v.dtype == DS_TEXT)
        rc = text_filter(c, &v, op, f, mask);
    else if (!rc && strcmp(op, "isin") && jdtype(c, f, "ct", &ct))
        rc = -1;
    else if (!rc && cmp_op(op))
        rc = num_cmp(c, a, &v, cmp_op(op), f, "value", ct, mask, false, false);
    else if (!rc && !strcmp(op, "between")) {
        memset(mask, 1, m);
        rc = num_cmp(c, a, &v, ">=", f, "lo", ct, mask, true, false);
        if (!rc)
            rc = num_cmp(c, a, &v, "<=", f, "hi", ct, mask, true, false);
    } else if (!rc && !strcmp(op, "isin")) {
        json_object *vals = jget(f, "values");
        if (!vals || !json_object_is_type(vals, json_type_array))
            rc = kd_fail(c, "ValueError", "isin needs a list of values");
        for (size_t j = 0; !rc && j < json_object_array_length(vals); j++) {
            json_object *o = json_object_array_get_idx(vals, j);
            if (jdtype(c, o, "ct", &ct) ||
                num_cmp(c, a, &v, "==", o, "value", ct, mask, false, true))
                rc = -1;
        }
    } else if (!rc) {
        rc = kd_fail(c, "ValueError", "unknown filter op '%.20s' (eq ne lt le gt ge between "
                     "isin)", op);
    }
    piece_free(&v);
    uint64_t k = 0;
    if (!rc && rows) /* branch-free: write every row, advance on the passing ones */
        for (uint64_t i = 0; i < m; i++) {
            rows[k] = (int64_t)(off + i);
            k += mask[i] != 0;
        }
    else if (!rc)
        for (uint64_t i = 0; i < m; i++)
            k += mask[i] != 0;
    *np = k;
    a->used = mark;
    return rc;
}

/* and/or of two index datasets on one base, batch b: sorted intersection
 * or union (both whole index batches in the window) */
static int eval_combine(kd_cmd *c, ds_store_t *s, dsd_arena *a, size_t b, json_object *pair,
                        bool and_, int64_t **out, uint64_t *nout)
{
    const char *x_ = pair && json_object_is_type(pair, json_type_array) &&
                             json_object_array_length(pair) == 2
                         ? json_object_get_string(json_object_array_get_idx(pair, 0)) : NULL;
    const char *z = x_ ? json_object_get_string(json_object_array_get_idx(pair, 1)) : NULL;
    if (!x_ || !z)
        return kd_fail(c, "ValueError", "and/or needs two index datasets");
    ds_info_t *ix = NULL, *iz = NULL;
    int rc = info_of(c, s, x_, &ix);
    if (!rc)
        rc = info_of(c, s, z, &iz);
    uint64_t nx = 0, nz = 0;
    if (!rc && (b >= ix->nbatches || b >= iz->nbatches))
        rc = kd_fail(c, "IndexError", "'%.200s' or '%.200s' has no batch %zu", x_, z, b);
    if (!rc) {
        nx = ix->batches[b].rows;
        nz = iz->batches[b].rows;
    }
    ds_free_info(ix);
    ds_free_info(iz);
    dsd_piece x, y;
    if (rc || read_rows(c, s, a, x_, "index", b, 0, nx, &x, 0) ||
        read_rows(c, s, a, z, "index", b, 0, nz, &y, 0))
        return -1;
    int64_t *r = arena_get(c, a, x.n + y.n, 8);
    if (!r)
        return -1;
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
    *out = r;
    *nout = k;
    return 0;
}

/* ---- computing one batch ------------------------------------------------------------------ */

/* rows [off, off + m) of the derived batch bh, also kept in kodiakd's
 * column cache (the next command reads them from there, kd_dscache.c) */
static int put_rows(kd_cmd *c, ds_store_t *s, ds_batch_t *bh, uint64_t off, uint64_t m,
                    const void *data)
{
    fa_array_t *fa = ds_batch_array(bh, 0);
    int rc = m ? fa_put(fa, off, m, data) : 0;
    if (rc)
        return kd_ds_fail(c, rc, "write a derived batch");
    trace(c, "  fa_put");
    kd_dsc_wrote(s, ds_batch_array_name(bh, 0), fa_dtype_size(fa_dtype(fa)), off, m, data);
    return 0;
}

static int begin_batch(kd_cmd *c, ds_store_t *s, ds_dtype_t t, uint64_t n, ds_batch_t **bh)
{
    int rc = ds_batch_begin_dtypes(s, 1, &t, n, bh);
    return rc ? kd_ds_fail(c, rc, "begin a derived batch") : 0;
}

static int base_rows(kd_cmd *c, ds_store_t *s, const char *base, size_t b, uint64_t *n)
{
    ds_info_t *bi;
    if (info_of(c, s, base, &bi))
        return -1;
    int rc = b < bi->nbatches ? 0 : kd_fail(c, "IndexError", "dataset '%.200s' has no batch "
                                              "%zu", base, b);
    *n = rc ? 0 : bi->batches[b].rows;
    ds_free_info(bi);
    return rc;
}

/* Batch b of derived dataset `in` (its base current), of dtype t, written
 * as a new uncommitted batch *out, the base's rows paged through the
 * window a chunk (a->rows rows) at a time. */
static int compute_batch(kd_cmd *c, ds_store_t *s, dsd_arena *a, const ds_info_t *in,
                         json_object *e, ds_dtype_t t, size_t b, ds_batch_t **out)
{
    json_object *v;
    ds_batch_t *bh = NULL;
    uint64_t n = 0;
    int rc = 0;
    a->used = 0;
    if ((v = jget(e, "filter"))) {
        if (base_rows(c, s, in->base, b, &n))
            return -1;
        if (n <= a->rows) { /* one chunk: compare, then write what passed */
            int64_t *rows = arena_get(c, a, n, 8);
            uint64_t np = 0;
            if (!rows || filter_chunk(c, s, a, in->base, b, 0, n, v, rows, &np))
                return -1;
            trace(c, " filtered");
            if (begin_batch(c, s, t, np, &bh))
                return -1;
            trace(c, " begun");
            rc = put_rows(c, s, bh, 0, np, rows);
            trace(c, " put");
        } else { /* larger than the window: count, then compare again and write */
            uint64_t total = 0, np = 0;
            for (uint64_t off = 0; off < n; off += a->rows) {
                uint64_t m = n - off < a->rows ? n - off : a->rows;
                if (filter_chunk(c, s, a, in->base, b, off, m, v, NULL, &np))
                    return -1;
                total += np;
            }
            if (begin_batch(c, s, t, total, &bh))
                return -1;
            int64_t *rows = arena_get(c, a, a->rows, 8);
            rc = rows ? 0 : -1;
            for (uint64_t off = 0, at = 0; !rc && off < n; off += a->rows) {
                uint64_t m = n - off < a->rows ? n - off : a->rows;
                size_t mark = a->used;
                rc = filter_chunk(c, s, a, in->base, b, off, m, v, rows, &np);
                if (!rc && at + np > total)
                    rc = kd_fail(c, "RuntimeError", "dataset '%.200s' changed while a filter "
                                 "read it", in->base);
                if (!rc)
                    rc = put_rows(c, s, bh, at, np, rows);
                at += np;
                a->used = mark;
            }
        }
    } else if ((v = jget(e, "and")) || (v = jget(e, "or"))) {
        int64_t *rows = NULL;
        if (eval_combine(c, s, a, b, v, jget(e, "and") != NULL, &rows, &n) ||
            begin_batch(c, s, t, n, &bh))
            return -1;
        rc = put_rows(c, s, bh, 0, n, rows);
    } else if ((v = jget(e, "gather")) || (v = jget(e, "derive"))) {
        bool gather = jget(e, "gather") != NULL;
        if (gather && !json_object_is_type(v, json_type_string))
            return kd_fail(c, "ValueError", "gather needs a column name");
        if (base_rows(c, s, in->base, b, &n) || begin_batch(c, s, t, n, &bh))
            return -1;
        trace(c, " begun");
        /* at least one pass, so that a text column's categories are read */
        for (uint64_t off = 0; !rc && (off < n || off == 0); off += a->rows) {
            uint64_t m = n - off < a->rows ? n - off : a->rows;
            a->used = 0;
            if (gather) {
                dsd_piece p;
                rc = read_rows(c, s, a, in->base, json_object_get_string(v), b, off, m, &p, 0);
                if (!rc && p.dtype != t && !(t == DS_DATETIME && p.dtype == DS_INT64) &&
                    !(t == DS_INT64 && p.dtype == DS_DATETIME))
                    rc = kd_fail(c, "RuntimeError", "derived dataset '%.200s': batch %zu came "
                                 "out %s, not %s", in->name, b, ds_dtype_name(p.dtype),
                                 ds_dtype_name(t));
                if (!rc)
                    rc = put_rows(c, s, bh, off, m, p.data);
                if (!rc && t == DS_TEXT && off == 0) {
                    int lrc = ds_batch_set_categories(bh, 0, p.ncats,
                                                      (const char *const *)p.cats);
                    if (lrc)
                        rc = kd_ds_fail(c, lrc, "write a derived batch's categories");
                }
                piece_free(&p);
            } else {
                dsd_rows r = {.s = s, .a = a, .base = in->base, .b = b, .off = off, .n = m};
                ev x;
                rc = eval(c, &r, v, &x, 0);
                ds_dtype_t xt = rc ? t : ds_of(x.t);
                if (!rc && xt != t && !(t == DS_DATETIME && xt == DS_INT64))
                    rc = kd_fail(c, "RuntimeError", "derived dataset '%.200s': batch %zu came "
                                 "out %s, not %s", in->name, b, ds_dtype_name(xt),
                                 ds_dtype_name(t));
                trace(c, " evaluated");
                void *d = rc ? NULL : as_dtype(c, a, &x, x.t, m);
                if (!rc && !d)
                    rc = -1;
                trace(c, " as_dtype");
                if (!rc)
                    rc = put_rows(c, s, bh, off, m, d);
                trace(c, " put");
            }
            if (n == 0)
                break;
        }
    } else {
        return kd_fail(c, "ValueError", "dataset '%.200s': its expression is not one this "
                       "server knows", in->name);
    }
    if (rc) {
        ds_batch_abort(bh);
        return -1;
    }
    *out = bh;
    return 0;
}

/* ---- bringing up to date -------------------------------------------------------------- */

/* What a rank tells rank 0 about a batch it computed. */
typedef struct {
    uint64_t b;         /* base batch */
    ds_batch_ref_t ref; /* the new batch */
} dsd_done;

/* Collective: batch b computed by every rank at once, each on its share
 * of the base batch's rows (an update of fewer new batches than ranks
 * would otherwise leave ranks idle). Rank 0 begins the batch once the
 * sizes are known, every rank writes its part at its offset, and rank 0
 * gets the handle (*out) to commit. Filters, gathers and derives; each
 * rank's share fits in its window (refresh_one checks). */
static int compute_split(kd_cmd *c, ds_store_t *s, dsd_arena *a, const ds_info_t *in,
                         json_object *e, ds_dtype_t t, size_t b, ds_batch_t **out)
{
    json_object *f = jget(e, "filter"), *g = jget(e, "gather"), *d = jget(e, "derive");
    uint64_t n = 0, np = 0;
    int rc = base_rows(c, s, in->base, b, &n);
    uint64_t P = (uint64_t)c->nranks, r = (uint64_t)c->rank;
    uint64_t lo = n / P * r + (r < n % P ? r : n % P);
    uint64_t m = n / P + (r < n % P ? 1 : 0);
    dsd_piece p = {0};
    void *data = NULL;
    a->used = 0;
    if (rc) {
    } else if (f) {
        int64_t *rows = arena_get(c, a, m, 8);
        rc = rows ? filter_chunk(c, s, a, in->base, b, lo, m, f, rows, &np) : -1;
        data = rows;
    } else if (g) {
        rc = json_object_is_type(g, json_type_string)
                 ? read_rows(c, s, a, in->base, json_object_get_string(g), b, lo, m, &p, 0)
                 : kd_fail(c, "ValueError", "gather needs a column name");
        if (!rc && p.dtype != t && !(t == DS_DATETIME && p.dtype == DS_INT64) &&
            !(t == DS_INT64 && p.dtype == DS_DATETIME))
            rc = kd_fail(c, "RuntimeError", "derived dataset '%.200s': batch %zu came out %s, "
                         "not %s", in->name, b, ds_dtype_name(p.dtype), ds_dtype_name(t));
        data = p.data;
        np = m;
    } else if (d) {
        dsd_rows rr = {.s = s, .a = a, .base = in->base, .b = b, .off = lo, .n = m};
        ev x;
        rc = eval(c, &rr, d, &x, 0);
        ds_dtype_t xt = rc ? t : ds_of(x.t);
        if (!rc && xt != t && !(t == DS_DATETIME && xt == DS_INT64))
            rc = kd_fail(c, "RuntimeError", "derived dataset '%.200s': batch %zu came out %s, "
                         "not %s", in->name, b, ds_dtype_name(xt), ds_dtype_name(t));
        if (!rc && !(data = as_dtype(c, a, &x, x.t, m)))
            rc = -1;
        np = m;
    } else {
        rc = kd_fail(c, "ValueError", "dataset '%.200s': its expression is not one this server "
                     "knows", in->name);
    }
    trace(c, "  split computed");
    kd_quiet_barrier(c->comm);
    if (kd_agree(c, rc)) {
        piece_free(&p);
        return -1;
    }
    trace(c, "  split barrier");
    /* where each rank's part goes */
    uint64_t *cnt = calloc((size_t)P, sizeof *cnt), total = 0, at = 0;
    if (!cnt)
        abort();
    MPI_Allgather(&np, 1, MPI_UINT64_T, cnt, 1, MPI_UINT64_T, c->comm);
    for (uint64_t q = 0; q < P; q++) {
        if (q < r)
            at += cnt[q];
        total += cnt[q];
    }
    free(cnt);
    trace(c, "  split counted");
    ds_batch_t *bh = NULL;
    ds_batch_ref_t ref;
    memset(&ref, 0, sizeof ref);
    if (r == 0) {
        rc = begin_batch(c, s, t, total, &bh);
        if (!rc && t == DS_TEXT) {
            int lrc = ds_batch_set_categories(bh, 0, p.ncats, (const char *const *)p.cats);
            if (lrc)
                rc = kd_ds_fail(c, lrc, "write a derived batch's categories");
        }
        if (!rc)
            ds_batch_ref(bh, &ref);
    }
    if (kd_agree(c, rc)) {
        if (bh)
            ds_batch_abort(bh);
        piece_free(&p);
        return -1;
    }
    trace(c, "  split begun");
    MPI_Bcast(&ref, sizeof ref, MPI_BYTE, 0, c->comm);
    if (r != 0) {
        int lrc = ds_batch_attach_dtypes(s, 1, &t, &ref, &bh);
        if (lrc)
            rc = kd_ds_fail(c, lrc, "open a derived batch another rank began");
    }
    trace(c, "  split attached");
    if (!rc)
        rc = put_rows(c, s, bh, at, np, data);
    piece_free(&p);
    trace(c, "  split put");
    kd_quiet_barrier(c->comm);
    rc = kd_agree(c, rc);
    trace(c, "  split done");
    if (r != 0) {
        if (bh)
            ds_batch_close(bh);
    } else if (rc) {
        ds_batch_abort(bh);
    } else {
        *out = bh;
    }
    return rc;
}

/* Window slots (rows-sized, 8 bytes a row) one chunk of `e` may need at
 * most: per expression node its result and two casts, per column read its
 * rows, an index and a span at every step of a lineage. */
static int slots_of(json_object *e)
{
    int n = 0;
    if (!e)
        return 0;
    if (json_object_is_type(e, json_type_object)) {
        n = 4;
        json_object_object_foreach(e, key, val) {
            (void)key;
            n += slots_of(val);
        }
    } else if (json_object_is_type(e, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(e); i++)
            n += slots_of(json_object_array_get_idx(e, i));
    }
    return n;
}

/* The info of a derived dataset not created yet (refresh_one with def):
 * no batches, none of its base processed. NULL when out of memory. */
static ds_info_t *info_to_be(const ds_dataset_def_t *def)
{
    ds_info_t *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->kind = def->kind;
    in->name = strdup(def->name);
    in->base = strdup(def->base);
    in->expr = strdup(def->expr);
    in->cols = calloc(1, sizeof *in->cols);
    if (in->cols) {
        in->ncols = 1;
        in->cols[0].dtype = def->cols[0].dtype;
        in->cols[0].name = strdup(def->cols[0].name);
    }
    if (!in->name || !in->base || !in->expr || !in->cols || !in->cols[0].name) {
        ds_free_info(in);
        return NULL;
    }
    return in;
}

/* An update of several derived datasets on one rank (a server of one, or
 * rank 0 alone: refresh_solo), committed at once. Each dataset's new
 * batches go into one transaction, which the handle then shows as if it
 * were committed (ds_txn_stage): a column derived from a filter is
 * computed from the filter's new, uncommitted batches. One commit then
 * writes one catalog instead of one per dataset (0.4-0.5 ms each on one
 * rank, up to 1.4 ms on two, for a store of some 40 datasets:
 * bench/ds_update_bench.py --trace). */
typedef struct {
    ds_txn_t *tx;       /* NULL until a dataset has new batches */
    bool stage;         /* shown to the next lookups (not for the last one) */
    ds_batch_t **hs;    /* their handles: closed once committed */
    size_t nh, caph;
    struct {
        char *name;     /* a dataset updated */
        uint64_t n;     /* how many batches it gets */
    } *done;
    size_t nd, capd;
} dsd_pending;

/* arr (of *cap elements of `size` bytes, `used` in use) with room for one
 * more, doubled when full; NULL if out of memory (arr is then kept). */
static void *pend_room(void *arr, size_t *cap, size_t used, size_t size)
{
    if (used < *cap)
        return arr;
    size_t ncap = *cap ? 2 * *cap : 8;
    void *n = realloc(arr, ncap * size);
    if (n)
        *cap = ncap;
    return n;
}

/* Whether an update of several derived datasets on one rank commits
 * once (dsd_pending). From the environment (the tests compare both ways):
 * KD_DSD_ONE_COMMIT=0 commits each dataset by itself. */
static bool one_commit(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("KD_DSD_ONE_COMMIT");
        on = !(e && strcmp(e, "0") == 0);
    }
    return on;
}

/* One-commit updates made, and lost to another server (which committed
 * one of their datasets first: they went again one by one), since start;
 * ds_derive_stats reports them. */
static uint64_t one_commits, one_commits_lost;

/* Tests only: KD_DSD_TEST_HOLD_MS=<ms> holds each one-commit update back
 * that long before its commit, so that a test can have another server
 * commit first (the race this one then loses). */
static void test_hold(void)
{
    kd_test_hold("KD_DSD_TEST_HOLD_MS", "one commit held back");
}

/* Keep batch handle h until the commit; -1 if out of memory. */
static int pend_batch(dsd_pending *p, ds_batch_t *h)
{
    void *n = pend_room(p->hs, &p->caph, p->nh, sizeof *p->hs);
    if (!n)
        return -1;
    p->hs = n;
    p->hs[p->nh++] = h;
    return 0;
}

/* Record that dataset `name` gets `n` new batches in the commit. */
static int pend_done(dsd_pending *p, const char *name, uint64_t n)
{
    void *more = pend_room(p->done, &p->capd, p->nd, sizeof *p->done);
    if (!more)
        return -1;
    p->done = more;
    if (!(p->done[p->nd].name = strdup(name)))
        return -1;
    p->done[p->nd++].n = n;
    return 0;
}

/* The end of a pending update: its batches closed (committed) or deleted,
 * its transaction aborted if still open, everything freed. */
static void pend_end(dsd_pending *p, bool committed)
{
    ds_txn_abort(p->tx);
    for (size_t i = 0; i < p->nh; i++) {
        if (committed)
            ds_batch_close(p->hs[i]);
        else
            ds_batch_abort(p->hs[i]); /* not committed: deleted */
    }
    for (size_t i = 0; i < p->nd; i++)
        free(p->done[i].name);
    free(p->hs);
    free(p->done);
    memset(p, 0, sizeof *p);
}

/* Collective: bring derived dataset `name` up to date with its base (whose
 * own lineage is current). *done gets the batches computed here. With
 * `def` (every rank the same), the dataset is made as def says, its first
 * batches in the same commit (no one ever sees it without them); *lost
 * then says another server made it first (nothing done here). With `pend`
 * (one rank only, def NULL) the new batches go into pend's transaction,
 * shown to the next lookups, instead of a commit of their own. */
static int refresh_one(kd_cmd *c, ds_store_t *s, const char *store, const char *name,
                       uint64_t *done, const ds_dataset_def_t *def, bool *lost,
                       dsd_pending *pend)
{
    /* rank 0 decides what to do: {have, want}; want == have: nothing */
    struct { uint64_t have, want; int32_t ok; } plan = {0, 0, 1};
    ds_info_t *in = NULL, *bi = NULL;
    trace(c, " refresh_one");
    int rc = 0;
    if (!def)
        rc = info_of(c, s, name, &in);
    else if (!(in = info_to_be(def)))
        rc = kd_fail(c, "MemoryError", "out of memory");
    trace(c, "info");
    if (!rc && def) {
        /* every rank: this read also brings its catalog current before
         * the pin below (the other path's info_of(name) does that) */
        if (info_of(c, s, in->base, &bi) == 0)
            plan.want = bi->nbatches;
        else
            rc = -1;
    } else if (!rc && c->rank == 0) {
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
    trace(c, "base info");
    if (kd_agree(c, rc)) {
        ds_free_info(in);
        return -1;
    }
    MPI_Bcast(&plan, sizeof plan, MPI_BYTE, 0, c->comm);
    *done = 0;
    if (lost)
        *lost = false;
    if (!plan.ok || (plan.want == plan.have && !def)) {
        ds_free_info(in);
        return 0;
    }
    trace(c, "planned");
    /* the plan is made: its lookups answer from this catalog version,
     * without a round trip each (ds_pin), until the commit */
    ds_pin(s);
    json_object *e = json_tokener_parse(in->expr);
    ds_dtype_t t = in->ncols == 1 ? in->cols[0].dtype : 0;
    if (!e || !t)
        rc = kd_fail(c, "ValueError", "derived dataset '%.200s' has an expression this server "
                     "cannot read", name);
    /* the window: every chunk's temporaries (a lineage's indices and
     * spans too), so nothing is allocated per batch */
    int depth = 0;
    for (ds_info_t *li = NULL; !rc && depth <= DSD_DEPTH; depth++) {
        const char *nm = li ? li->base : in->base;
        ds_info_t *nx = NULL;
        if (ds_info(s, nm, &nx) != 0 || nx->kind == DS_KIND_BASE) {
            ds_free_info(nx);
            ds_free_info(li);
            break;
        }
        ds_free_info(li);
        li = nx;
    }
    trace(c, "depth");
    dsd_arena arena = {0};
    size_t wbytes = 0;
    uint64_t *wbuf = rc ? NULL : kd_ds_window_alloc(c, slots_of(e) + 3 * depth + 6, &arena.rows,
                                                    &wbytes);
    if (!rc && !wbuf)
        rc = -1;
    arena.base = (char *)wbuf;
    arena.cap = wbytes;
    /* fewer new batches than ranks (an update): all ranks on each batch,
     * when it has split_min() rows and every rank's share fits its
     * window; else each rank its own */
    uint64_t nb = plan.want - plan.have, wrows = arena.rows, most = 0;
    bool split = false;
    if (c->nranks > 1 && nb < (uint64_t)c->nranks && !jget(e, "and") && !jget(e, "or") &&
        split_min() != (uint64_t)INT64_MAX) {
        for (uint64_t b = plan.have; !rc && b < plan.want; b++) {
            uint64_t n = 0;
            rc = base_rows(c, s, in->base, (size_t)b, &n);
            most = n > most ? n : most;
        }
        if (!rc && !wbuf)
            wrows = 0;
        MPI_Allreduce(MPI_IN_PLACE, &wrows, 1, MPI_UINT64_T, MPI_MIN, c->comm);
        split = wrows > 0 && most / (uint64_t)c->nranks + 1 <= wrows && most >= split_min();
    }
    trace(c, "split?");
    /* my batches, one at a time: read, compute, write */
    uint64_t mine = 0;
    for (uint64_t b = plan.have; b < plan.want; b++)
        mine += split || (b % (uint64_t)c->nranks) == (uint64_t)c->rank;
    ds_batch_t **hs = calloc(mine + 1, sizeof *hs);
    dsd_done *dn = calloc(mine + 1, sizeof *dn);
    if (!rc && (!hs || !dn))
        rc = kd_fail(c, "MemoryError", "out of memory");
    uint64_t nh = 0;
    trace(c, "window");
    for (uint64_t b = plan.have; split && b < plan.want; b++) {
        /* collective: every rank takes part, failed or not */
        if (kd_agree(c, rc) || (rc = compute_split(c, s, &arena, in, e, t, (size_t)b, &hs[nh])))
            break;
        if (c->rank == 0) {
            dn[nh].b = b;
            ds_batch_ref(hs[nh], &dn[nh].ref);
            nh++;
        }
    }
    for (uint64_t b = plan.have; !split && !rc && b < plan.want; b++) {
        if ((b % (uint64_t)c->nranks) != (uint64_t)c->rank)
            continue;
        if (!(rc = compute_batch(c, s, &arena, in, e, t, (size_t)b, &hs[nh]))) {
            dn[nh].b = b;
            ds_batch_ref(hs[nh], &dn[nh].ref);
            nh++;
        }
        trace(c, "batch computed");
    }
    kd_ds_window_free(wbuf, wbytes);
    ds_unpin(s);
    trace(c, "window freed");
    /* a rank done first sleeps instead of spinning on the others' cores */
    kd_quiet_barrier(c->comm);
    trace(c, "barrier");
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
    trace(c, "gathered");
    int32_t result = 0; /* 0 committed, 1 lost to another server, -1 failed */
    if (ok && c->rank == 0) {
        uint64_t n = plan.want - plan.have;
        ds_batch_ref_t *refs = calloc(n, sizeof *refs);
        for (uint64_t i = 0; refs && i < n; i++) {
            dsd_done *d = &all[i];
            refs[d->b - plan.have] = d->ref; /* in batch order */
        }
        ds_txn_t *tx = pend ? pend->tx : NULL;
        int lrc = !refs && n ? FAM_ENOMEM : tx ? 0 : ds_txn_begin(s, &tx);
        if (pend && !lrc)
            pend->tx = tx;
        trace(c, " txn begun");
        if (!lrc && def)
            lrc = ds_txn_create(tx, def);
        else if (!lrc)
            lrc = ds_txn_expect_batches(tx, name, plan.have);
        if (!lrc && n)
            lrc = ds_txn_append_begun(tx, name, 1, &t, (size_t)n, refs); /* begin_batch */
        if (!lrc)
            lrc = ds_txn_set_progress(tx, name, plan.want);
        trace(c, " txn staged");
        if (pend) {
            /* the next datasets see these batches; the caller commits */
            if (!lrc && pend->stage)
                lrc = ds_txn_stage(tx);
            if (!lrc && pend_done(pend, name, n))
                lrc = FAM_ENOMEM;
        } else if (!lrc) {
            lrc = ds_txn_commit(tx, NULL);
        } else {
            ds_txn_abort(tx);
        }
        free(refs);
        if (lrc == FAM_EBUSY || (def && lrc == FAM_EEXIST))
            result = 1;
        else if (lrc) {
            result = -1;
            kd_ds_fail(c, lrc, "commit the new batches of a derived dataset");
        }
    }
    free(all);
    free(cnts);
    free(dsp);
    trace(c, "committed");
    kd_quiet_barrier(c->comm); /* the others sleep while rank 0 commits */
    MPI_Bcast(&result, 1, MPI_INT32_T, 0, c->comm);
    for (uint64_t i = 0; i < nh; i++) {
        if (ok && result == 0 && pend) {
            if (pend_batch(pend, hs[i])) {
                ds_batch_abort(hs[i]);
                result = -1;
                kd_fail(c, "MemoryError", "out of memory");
            }
        } else if (ok && result == 0) {
            ds_batch_close(hs[i]);
        } else {
            ds_batch_abort(hs[i]); /* not committed: deleted */
        }
    }
    free(hs);
    free(dn);
    ds_free_info(in);
    trace(c, "closed");
    if (!ok)
        return -1;
    if (result < 0) {
        if (!pend)
            kd_ds_store_forget(store);
        return kd_agree(c, c->rank == 0 ? -1 : 0);
    }
    if (result == 0 && pend) {
        *done = plan.want - plan.have; /* committed, counted and synced by the caller */
    } else if (result == 0) {
        kd_ds_sync(c, s, false); /* what rank 0 committed, to the others */
        trace(c, "synced");
        *done = plan.want - plan.have;
        if (c->rank == 0)
            stat_add(store, name, *done, c->nranks < kd_srv.nranks);
    }
    if (lost)
        *lost = result == 1;
    return 0; /* result 1: another server brought it up to date (or made it) first */
}

/* Rank 0: the derived datasets that are behind, in creation order, as a
 * JSON array of names. A derived dataset has one batch per batch of the
 * base at the root of its lineage, so it is behind when it has fewer than
 * the root has now. Read from libdataset's cached catalog (one read of
 * the version word when nothing changed), not a snapshot copy: what it
 * finds is only a plan, which refresh_one checks against the catalog of
 * its own time (a dataset found behind that is not any more: nothing
 * done; one dropped meanwhile: skipped). */
static int behind(kd_cmd *c, ds_store_t *s, json_object **out)
{
    char **names = NULL;
    size_t n = 0;
    int rc = ds_list_behind(s, DSD_DEPTH, &names, &n);
    if (rc)
        return kd_ds_fail(c, rc, "list the store's datasets");
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(list, json_object_new_string(names[i]));
    ds_free_names(names, n);
    *out = list;
    return 0;
}

/* The most new rows an update may bring in on rank 0 alone while the
 * other ranks wait (kd_ds_refresh). An update of a batch or two is a few
 * milliseconds of work, and on several ranks each of its steps (the plan,
 * the catalog read, the window, the batches' attaching, the commit) waits
 * for every rank: 2 ranks took 12-14 ms for the update that 1 rank did in
 * 7-9 ms (bench/ds_update_bench.py, 10^7 rows). Counted in the rows of the
 * lineage roots' new batches, summed over the datasets behind. From the
 * environment (the tests force each way): KD_DSD_SOLO_ROWS=<rows>, 0 for
 * never. */
static uint64_t solo_max(void)
{
    static int64_t max = -1;
    if (max < 0) {
        const char *e = getenv("KD_DSD_SOLO_ROWS");
        max = e ? strtoll(e, NULL, 10) : 1 << 22;
        if (max < 0)
            max = 0;
    }
    return (uint64_t)max;
}

/* Rank 0: the rows an update of the derived datasets in `list` reads from
 * the new batches of their lineages' roots; UINT64_MAX when a lineage
 * cannot be followed (refresh_one then decides on every rank). */
static uint64_t new_rows(ds_store_t *s, json_object *list)
{
    uint64_t total = 0;
    ds_pin(s); /* every lookup from the catalog version just read */
    for (size_t i = 0; i < json_object_array_length(list) && total != UINT64_MAX; i++) {
        ds_info_t *in = NULL, *r = NULL;
        if (ds_info(s, json_object_get_string(json_object_array_get_idx(list, i)), &in)) {
            total = UINT64_MAX;
            break;
        }
        const char *up = in->base;
        for (int hop = 0; hop <= DSD_DEPTH && in->kind != DS_KIND_BASE; hop++) {
            ds_info_t *nx = NULL;
            if (ds_info(s, up, &nx)) {
                ds_free_info(r);
                r = NULL;
                break;
            }
            ds_free_info(r);
            r = nx;
            if (r->kind == DS_KIND_BASE)
                break;
            up = r->base;
        }
        if (!r || r->kind != DS_KIND_BASE) {
            total = UINT64_MAX;
        } else {
            for (size_t b = in->base_batches; b < r->nbatches; b++)
                total += r->batches[b].rows;
        }
        ds_free_info(r);
        ds_free_info(in);
    }
    ds_unpin(s);
    return total;
}

/* Bring the derived datasets of `list` up to date, in its order (each
 * after what it derives from). On one rank, several of them commit at
 * once (dsd_pending); if another server brought one of them up to date
 * meanwhile, that commit fails as a whole and they go again one by one
 * (once false: each commits by itself). */
static int refresh_list(kd_cmd *c, ds_store_t *s, const char *store, json_object *list,
                        uint64_t *total, bool once)
{
    *total = 0;
    size_t n = list ? json_object_array_length(list) : 0;
    dsd_pending pend = {0};
    dsd_pending *p = once && c->nranks == 1 && n > 1 && one_commit() ? &pend : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *nm = json_object_get_string(json_object_array_get_idx(list, i));
        uint64_t d = 0;
        pend.stage = i + 1 < n;
        if (refresh_one(c, s, store, nm, &d, NULL, NULL, p)) {
            if (p)
                pend_end(p, false);
            return -1;
        }
        *total += d;
    }
    if (!p || !pend.tx)
        return 0;
    test_hold();
    int lrc = ds_txn_commit(pend.tx, NULL);
    pend.tx = NULL;
    trace(c, "committed all");
    one_commits++;
    one_commits_lost += lrc == FAM_EBUSY;
    if (lrc == 0) {
        for (size_t i = 0; i < pend.nd; i++)
            stat_add(store, pend.done[i].name, pend.done[i].n, c->nranks < kd_srv.nranks);
        pend_end(&pend, true);
        return 0;
    }
    pend_end(&pend, false);
    if (lrc == FAM_EBUSY) /* another server was first with one of them */
        return refresh_list(c, s, store, list, total, false);
    kd_ds_fail(c, lrc, "commit the new batches of derived datasets");
    kd_ds_store_forget(store);
    return -1;
}

/* Rank 0 alone brings `list` current, as a server of one rank would (its
 * own communicator: every collective of refresh_one is its own), while the
 * others wait without a core; then every rank agrees on the outcome. */
static int refresh_solo(kd_cmd *c, ds_store_t *s, const char *store, json_object *list,
                        uint64_t *total)
{
    int rc = 0;
    uint64_t n = 0;
    if (c->rank == 0) {
        kd_cmd one = *c;
        one.comm = MPI_COMM_SELF;
        one.nranks = 1;
        rc = refresh_list(&one, s, store, list, &n, true);
        /* what the command keeps: its error, arrays it made */
        c->failed = one.failed;
        memcpy(c->err_type, one.err_type, sizeof c->err_type);
        memcpy(c->err_msg, one.err_msg, sizeof c->err_msg);
        c->temps = one.temps;
        c->result = one.result;
    }
    trace(c, "solo");
    kd_quiet_barrier(c->comm);
    MPI_Bcast(&n, 1, MPI_UINT64_T, 0, c->comm);
    *total = n;
    if (kd_agree(c, rc))
        return -1;
    kd_ds_sync(c, s, false); /* what rank 0 committed, to the others */
    trace(c, "synced");
    return 0;
}

int kd_ds_refresh(kd_cmd *c, ds_store_t *s, const char *store, uint64_t *processed)
{
    json_object *list = NULL;
    int rc = c->rank == 0 ? behind(c, s, &list) : 0;
    trace(c, " behind");
    kd_quiet_barrier(c->comm);
    trace(c, " behind barrier");
    if (kd_agree(c, rc)) {
        json_object_put(list);
        return -1;
    }
    /* broadcast it, and whether rank 0 does it alone */
    const char *txt = c->rank == 0 ? json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN)
                                   : NULL;
    long long hdr[2] = {txt ? (long long)strlen(txt) : 0, 0};
    if (c->rank == 0 && c->nranks > 1 && json_object_array_length(list))
        hdr[1] = new_rows(s, list) <= solo_max();
    MPI_Bcast(hdr, 2, MPI_LONG_LONG, 0, c->comm);
    long long len = hdr[0];
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
    rc = hdr[1] ? refresh_solo(c, s, store, list, &total)
                : refresh_list(c, s, store, list, &total, true);
    json_object_put(list);
    if (rc)
        return -1;
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
    uint64_t n = 0, v = 0;
    trace(c, "[ds_refresh");
    if (store_arg(c, &store, &s) || kd_ds_refresh(c, s, store, &n))
        return -1;
    trace(c, "refreshed");
    /* the version it left the catalog at: a client that has listed this
     * version needs no new list; with {"known": version} the list of the
     * version now when it is another (ds_list's reply), in the same trip;
     * with {"dataset": name} too, only that dataset's family (a client
     * working on one dataset then gets a reply that does not grow with the
     * store: 40 KB for a store of 100 datasets took 1-2 ms to send and
     * read) */
    int rc = 0;
    if (kd_has_arg(c, "known")) {
        int64_t known = 0;
        const char *family = NULL;
        if (kd_arg_i64(c, "known", &known) ||
            (kd_has_arg(c, "dataset") && kd_arg_str(c, "dataset", &family)))
            rc = -1;
        else if (c->rank == 0)
            rc = kd_ds_list_result(c, s, store, true, (uint64_t)known, family);
        trace(c, "listed");
    } else if (c->rank == 0 && !(v = ds_version_seen(s)) && (rc = ds_version(s, &v)) != 0) {
        kd_ds_fail(c, rc, "read the catalog version");
    } else if (c->rank == 0) {
        kd_result_i64(c, "version", (int64_t)v);
    }
    if (kd_agree(c, rc ? -1 : 0))
        return -1;
    kd_result_i64(c, "processed", (int64_t)n);
    return 0;
}

static int made_otherwise(kd_cmd *c, const char *name)
{
    return kd_fail(c, "ValueError", "the store has a dataset '%.200s' made otherwise (a base "
                   "dataset, or another expression whose name is spelled the same): drop it or "
                   "choose another name", name);
}

/* Rank 0: does the store hold `def`'s dataset exactly so already? */
static bool exists_alike(ds_store_t *s, const ds_dataset_def_t *def)
{
    ds_info_t *in = NULL;
    bool same = ds_info(s, def->name, &in) == 0 && in->kind == def->kind &&
                !strcmp(in->base, def->base) && !strcmp(in->expr, def->expr) &&
                in->ncols == 1 && !strcmp(in->cols[0].name, def->cols[0].name) &&
                in->cols[0].dtype == def->cols[0].dtype;
    ds_free_info(in);
    return same;
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
    trace(c, "[ds_derive");
    if (store_arg(c, &store, &s))
        return -1;
    trace(c, "store");
    /* the base (and its lineage) current first, so that errors in the
     * expression show on the first batches */
    uint64_t n0 = 0, n1 = 0;
    if (kd_ds_refresh(c, s, store, &n0))
        return -1;
    trace(c, "refreshed");
    /* rank 0: is it there already, alike (reused) or made otherwise (an
     * error)? If not, every rank computes its first batches and rank 0
     * creates it with them in one commit */
    ds_column_def_t col = {.name = column, .dtype = t};
    ds_dataset_def_t def = {.name = name, .kind = k, .base = base, .expr = expr,
                            .ncols = 1, .cols = &col};
    int32_t have = 0; /* 1: there alike */
    int rc = 0;
    if (c->rank == 0) {
        ds_info_t *bi = NULL, *in = NULL;
        rc = info_of(c, s, base, &bi);
        ds_free_info(bi);
        if (!rc && exists_alike(s, &def))
            have = 1;
        else if (!rc && ds_info(s, name, &in) == 0)
            rc = made_otherwise(c, name);
        ds_free_info(in);
    }
    if (kd_agree(c, rc))
        return -1;
    MPI_Bcast(&have, 1, MPI_INT32_T, 0, c->comm);
    trace(c, "planned create");
    bool lost = false;
    if (!have && refresh_one(c, s, store, name, &n1, &def, &lost, NULL))
        return -1;
    /* another server made it first: alike (taken) or otherwise (an error) */
    rc = lost && c->rank == 0 && !exists_alike(s, &def) ? made_otherwise(c, name) : 0;
    if (kd_agree(c, rc))
        return -1;
    trace(c, "created");
    uint64_t n2 = 0;
    if (kd_ds_refresh(c, s, store, &n2))
        return -1;
    n1 += n2;
    kd_result_i64(c, "processed", (int64_t)(n0 + n1));
    trace(c, "ds_derive done");
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
        json_object_object_add(d, "solo", json_object_new_int64((int64_t)stats[i].solo));
        json_object_object_add(o, stats[i].name, d);
    }
    kd_result_set(c, "datasets", o);
    /* the column cache's counters, summed over the ranks (kd_dscache.c) */
    kd_dsc_stats st;
    kd_dsc_get_stats(&st);
    uint64_t v[6] = {st.hit_rows, st.read_rows, st.kept_rows, st.evicted, st.bytes,
                     kd_dsc_limit()};
    MPI_Allreduce(MPI_IN_PLACE, v, 6, MPI_UINT64_T, MPI_SUM, c->comm);
    if (c->rank == 0) {
        static const char *const names[6] = {"hit_rows", "read_rows", "kept_rows", "evicted",
                                             "bytes", "limit"};
        json_object *cc = json_object_new_object();
        for (int i = 0; i < 6; i++)
            json_object_object_add(cc, names[i], json_object_new_int64((int64_t)v[i]));
        kd_result_set(c, "colcache", cc);
    }
    if (c->rank == 0) { /* updates committed at once (refresh_list), rank 0's */
        json_object *oc = json_object_new_object();
        json_object_object_add(oc, "commits", json_object_new_int64((int64_t)one_commits));
        json_object_object_add(oc, "lost", json_object_new_int64((int64_t)one_commits_lost));
        kd_result_set(c, "one_commit", oc);
    }
    /* catalogs handed from rank 0 to the others (kd_ds_sync), all ranks' */
    uint64_t x[2];
    kd_ds_sync_counts(&x[0], &x[1]);
    MPI_Allreduce(MPI_IN_PLACE, x, 2, MPI_UINT64_T, MPI_SUM, c->comm);
    if (c->rank == 0) {
        json_object *cs = json_object_new_object();
        json_object_object_add(cs, "imports", json_object_new_int64((int64_t)x[0]));
        json_object_object_add(cs, "exports", json_object_new_int64((int64_t)x[1]));
        kd_result_set(c, "catalog", cs);
    }
    return 0;
}

void kd_register_dsderive(void)
{
    kd_register("ds_derive", cmd_ds_derive);
    kd_register("ds_refresh", cmd_ds_refresh);
    kd_register("ds_derive_stats", cmd_ds_derive_stats);
}
