/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_reduce.c — reductions (sum prod min max argmin argmax any all
 * mean var std is_sorted) and scans (cumsum cumprod) of pdarrays, with
 * NumPy's result dtypes, and float64 results that are the same bit for bit
 * whatever the number of ranks.
 *
 * Commands (array arguments are names):
 *   reduce  {op, array[, ddof]}               -> value  (a scalar)
 *   scan    {op: cumsum|cumprod, array}       -> array
 *
 * Float64 sum, prod, mean and the scans report the floating-point flags they
 * raise (kd_fpe_report) as NumPy words them: "reduce", "accumulate". */
#include "kd.h"

#include <fenv.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* elements per chunk of a cast to bool (any, all): stays in L1 */
#define CH 1024

/* ---- reductions ------------------------------------------------------------------------- */

/* Float64 sums and products that do not depend on the number of ranks.
 *
 * The global index range is cut into fixed chunks of FCHUNK elements (chunk k
 * holds [k*FCHUNK, (k+1)*FCHUNK), whatever the ranks). A chunk's value is the
 * plain left-to-right accumulation of its elements, starting from its first
 * element. A chunk cut by a rank boundary is carried: the rank holding its
 * start accumulates its part and sends the running value (MPI_Send) to the
 * next rank, which goes on with the same loop; a rank whose block lies inside
 * one chunk passes the value on. Rank 0 gathers the chunk values in chunk
 * order and folds them left to right, starting from chunk 0's value. Every
 * rounding thus happens in the same order for 1, 2 or 3 ranks, and the result
 * is bit for bit the same. Ranks send their carry before doing their own
 * chunks and receive theirs after, so they hardly wait for each other.
 *
 * The reference in NumPy terms: chunk value = np.cumsum(chunk)[-1] (cumprod
 * for products), result = np.cumsum(chunk values)[-1]; an empty array gives
 * 0 (1 for a product). */
#define FCHUNK 65536

enum { FS_SUM, FS_PROD, FS_SQ }; /* s + v, s * v, s + (v - mean)^2 */

/* what a fixed-chunk reduction accumulates */
typedef struct {
    int mode;           /* FS_SUM, FS_PROD or FS_SQ */
    const kd_array *a;  /* any dtype: values are taken as float64 */
    double mean;        /* FS_SQ: the mean subtracted from every value */
} fsrc;

/* Accumulate G equal-length runs of local elements at once, one running
 * value per run, each run strictly left to right (the G independent chains
 * only let the CPU overlap their additions). Run q covers [st[q], st[q] + len);
 * fresh: s[q] starts as the run's first value rather than continuing s[q]. */
#define SEQ_RUNS(T, G, OP)                                                       \
    do {                                                                         \
        const T *p[G];                                                           \
        double acc[G];                                                           \
        int64_t k = 0;                                                           \
        for (int q = 0; q < G; q++) {                                            \
            p[q] = (const T *)f->a->data + st[q];                                \
            acc[q] = s[q];                                                       \
        }                                                                        \
        if (fresh && len > 0) {                                                  \
            for (int q = 0; q < G; q++) {                                        \
                double v = (double)p[q][0];                                      \
                acc[q] = f->mode == FS_SQ ? (v - m) * (v - m) : v;               \
            }                                                                    \
            k = 1;                                                               \
        }                                                                        \
        for (; k < len; k++)                                                     \
            for (int q = 0; q < G; q++) {                                        \
                double v = (double)p[q][k];                                      \
                acc[q] = OP;                                                     \
            }                                                                    \
        for (int q = 0; q < G; q++)                                              \
            s[q] = acc[q];                                                       \
    } while (0)

#define SEQ_MODES(T, G)                                                          \
    do {                                                                         \
        switch (f->mode) {                                                       \
        case FS_SUM: SEQ_RUNS(T, G, acc[q] + v); break;                          \
        case FS_PROD: SEQ_RUNS(T, G, acc[q] * v); break;                         \
        default: SEQ_RUNS(T, G, acc[q] + (v - m) * (v - m)); break;              \
        }                                                                        \
    } while (0)

#define SEQ_TYPES(G)                                                             \
    do {                                                                         \
        switch (f->a->dtype) {                                                   \
        case KD_FLOAT64: SEQ_MODES(double, G); break;                            \
        case KD_INT64: SEQ_MODES(int64_t, G); break;                             \
        case KD_UINT64: SEQ_MODES(uint64_t, G); break;                           \
        default: SEQ_MODES(uint8_t, G); break;                                   \
        }                                                                        \
    } while (0)

/* one run: s continued (or, fresh, started) over local elements [i, j) */
static double seq1(const fsrc *f, int64_t i, int64_t j, double s0, bool fresh)
{
    const int64_t st[1] = {i};
    int64_t len = j - i;
    double s[1] = {s0}, m = f->mean;
    SEQ_TYPES(1);
    return s[0];
}

/* eight runs of len elements, each started fresh */
static void seq8(const fsrc *f, const int64_t *st, int64_t len, double *s)
{
    const bool fresh = true;
    double m = f->mean;
    SEQ_TYPES(8);
}
#undef SEQ_TYPES
#undef SEQ_MODES
#undef SEQ_RUNS

/* number of fixed chunks of an array of `size` elements whose last element
 * lies before global index x */
static int64_t chunk_ends_before(int64_t size, int64_t x)
{
    return x >= size ? (size + FCHUNK - 1) / FCHUNK : x / FCHUNK;
}

/* Collective: the fixed-chunk reduction of f over the whole array (see
 * above), in *out on rank 0. Returns -1 on every rank if memory runs out. */
static int chunked(kd_cmd *c, const fsrc *f, double *out)
{
    const kd_array *a = f->a;
    int64_t size = a->size, lo = a->lo, n = a->n, hi = lo + n;
    int64_t nchunks = (size + FCHUNK - 1) / FCHUNK;
    int64_t mine = chunk_ends_before(size, hi) - chunk_ends_before(size, lo);
    if (nchunks > INT_MAX)
        return kd_fail(c, "ValueError", "reduce: array too large (%lld elements)",
                       (long long)size);
    double *vals = calloc((size_t)(mine > 0 ? mine : 1), sizeof(double)), *all = NULL;
    int *counts = NULL, *displs = NULL;
    bool bad = !vals;
    if (c->rank == 0) {
        all = malloc(sizeof(double) * (size_t)(nchunks > 0 ? nchunks : 1));
        counts = malloc(sizeof(int) * (size_t)c->nranks);
        displs = malloc(sizeof(int) * (size_t)c->nranks);
        bad = bad || !all || !counts || !displs;
    }
    if (kd_agree(c, bad ? kd_fail(c, "MemoryError", "reduce: out of memory") : 0)) {
        free(vals), free(all), free(counts), free(displs);
        return -1;
    }
    /* the chunk cut by our start (received) and the one cut by our end (sent) */
    bool recv = lo > 0 && lo < size && lo % FCHUNK != 0;
    bool send = hi > 0 && hi < size && hi % FCHUNK != 0;
    int64_t head = 0; /* local elements of the chunk that started before us */
    if (recv) {
        int64_t end = (lo / FCHUNK + 1) * FCHUNK - lo;
        head = end < n ? end : n;
    }
    bool passing = recv && head == n && send; /* the chunk goes on past our block */
    bool head_ends = recv && !passing;        /* the chunk ends in our block */
    /* the chunk cut by our end starts here: accumulate our part, send it */
    int64_t tail = n; /* local start of that chunk (n: none) */
    if (send && !passing) {
        tail = hi / FCHUNK * FCHUNK - lo;
        double carry = seq1(f, tail, n, 0, true);
        MPI_Send(&carry, 1, MPI_DOUBLE, c->rank + 1, KD_TAG_CARRY, c->comm);
    }
    /* the whole chunks in [head, tail), eight at a time while there are */
    int64_t k = head_ends ? 1 : 0, i = head;
    for (; tail - i >= 8 * (int64_t)FCHUNK; i += 8 * (int64_t)FCHUNK, k += 8) {
        int64_t st[8];
        for (int q = 0; q < 8; q++)
            st[q] = i + q * (int64_t)FCHUNK;
        seq8(f, st, FCHUNK, vals + k);
    }
    for (; i < tail; i += FCHUNK, k++) {
        int64_t j = tail - i < FCHUNK ? tail : i + FCHUNK;
        vals[k] = seq1(f, i, j, 0, true);
    }
    /* then the chunk that started before us */
    if (recv) {
        double carry;
        MPI_Recv(&carry, 1, MPI_DOUBLE, c->rank - 1, KD_TAG_CARRY, c->comm, MPI_STATUS_IGNORE);
        carry = seq1(f, 0, head, carry, false);
        if (passing)
            MPI_Send(&carry, 1, MPI_DOUBLE, c->rank + 1, KD_TAG_CARRY, c->comm);
        else
            vals[0] = carry;
    }
    if (c->rank == 0)
        for (int r = 0, d = 0; r < c->nranks; r++) {
            int64_t rlo, rhi;
            kd_block(size, c->nranks, r, &rlo, &rhi);
            counts[r] = (int)(chunk_ends_before(size, rhi) - chunk_ends_before(size, rlo));
            displs[r] = d;
            d += counts[r];
        }
    MPI_Gatherv(vals, (int)mine, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, c->comm);
    if (c->rank == 0) {
        double s = nchunks > 0 ? all[0] : f->mode == FS_PROD ? 1 : 0;
        if (f->mode == FS_PROD)
            for (int64_t j = 1; j < nchunks; j++)
                s *= all[j];
        else
            for (int64_t j = 1; j < nchunks; j++)
                s += all[j];
        *out = s;
    }
    free(vals), free(all), free(counts), free(displs);
    return 0;
}

/* What one rank contributes to a reduction; rank 0 combines them in rank
 * order, so the answer does not depend on the order messages arrive in. */
typedef struct {
    int64_t n;       /* elements on the rank */
    int64_t idx;     /* global index: argmin/argmax, first NaN; -1 if none */
    int64_t flag;    /* min/max: a NaN was seen; is_sorted: the block is sorted */
    union { int64_t i; uint64_t u; double f; } v, w; /* value; is_sorted: first, last */
} part;

enum { R_SUM, R_PROD, R_MIN, R_MAX, R_ARGMIN, R_ARGMAX, R_ANY, R_ALL, R_MEAN, R_VAR,
       R_STD, R_IS_SORTED, R_COUNT };
static const char *red_names[R_COUNT] = {"sum", "prod", "min", "max", "argmin", "argmax",
                                         "any", "all", "mean", "var", "std", "is_sorted"};

/* Collective: sum, prod (float64), mean, var and std (any dtype), with the
 * fixed-chunk sums; the answer in *out on rank 0. var is NumPy's formula:
 * the sum of (x - mean)^2 over max(n - ddof, 0), mean = sum / n. */
static int float_reduce(kd_cmd *c, int r, const kd_array *a, double ddof, double *out)
{
    fsrc f = {r == R_PROD ? FS_PROD : FS_SUM, a, 0};
    double s = 0, n = (double)a->size;
    feclearexcept(FE_ALL_EXCEPT);
    if (chunked(c, &f, &s))
        return -1;
    /* NumPy's "... encountered in reduce" for the sum/product itself (not
     * for var/std's second pass, which NumPy words differently) */
    if (r != R_VAR && r != R_STD)
        kd_fpe_report(c, kd_fpe_flags(), "reduce");
    if (r == R_SUM || r == R_PROD) {
        *out = s;
        return 0;
    }
    f.mean = s / n; /* empty: 0/0 = nan, as NumPy */
    if (r == R_MEAN) {
        *out = f.mean;
        return 0;
    }
    MPI_Bcast(&f.mean, 1, MPI_DOUBLE, 0, c->comm);
    f.mode = FS_SQ;
    if (chunked(c, &f, &s))
        return -1;
    double rc = n - ddof > 0 ? n - ddof : 0;
    double v = n > 0 ? s / rc : NAN;
    *out = r == R_VAR ? v : sqrt(v);
    return 0;
}

/* the dtype NumPy gives the reduction of an array of dtype t */
static kd_dtype red_dtype(int r, kd_dtype t)
{
    switch (r) {
    case R_SUM: case R_PROD: return t == KD_BOOL ? KD_INT64 : t;
    case R_MIN: case R_MAX: return t;
    case R_ARGMIN: case R_ARGMAX: return KD_INT64;
    case R_ANY: case R_ALL: case R_IS_SORTED: return KD_BOOL;
    default: return KD_FLOAT64;
    }
}

/* any NaN in a float64 block (a branch-free pass the compiler vectorises) */
static bool has_nan(const double *x, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++)
        bad |= x[i] != x[i];
    return bad != 0;
}

/* first NaN of a float64 block, or -1 */
static int64_t first_nan(const double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (x[i] != x[i])
            return i;
    return -1;
}

static void local_part(int r, const kd_array *a, part *p)
{
    int64_t n = a->n;
    memset(p, 0, sizeof *p);
    p->n = n;
    p->idx = -1;
    const void *d = a->data;
    switch (r) {
    case R_SUM: { /* integers and bool (float64 goes through float_reduce) */
        uint64_t s = 0;
        if (a->dtype == KD_BOOL)
            for (int64_t i = 0; i < n; i++)
                s += ((const uint8_t *)d)[i];
        else
            for (int64_t i = 0; i < n; i++)
                s += ((const uint64_t *)d)[i];
        p->v.u = s;
        break;
    }
    case R_PROD: {
        uint64_t s = 1;
        if (a->dtype == KD_BOOL)
            for (int64_t i = 0; i < n; i++)
                s &= ((const uint8_t *)d)[i];
        else
            for (int64_t i = 0; i < n; i++)
                s *= ((const uint64_t *)d)[i];
        p->v.u = s;
        break;
    }
    case R_ANY:
    case R_ALL: {
        uint8_t buf[CH];
        int64_t any = 0, all = 1;
        for (int64_t off = 0; off < n; off += CH) {
            int64_t m = n - off < CH ? n - off : CH;
            kd_cast((const char *)d + (size_t)off * kd_dtype_size(a->dtype), a->dtype, buf,
                    KD_BOOL, m);
            for (int64_t i = 0; i < m; i++) {
                any |= buf[i];
                all &= buf[i];
            }
        }
        p->v.i = r == R_ANY ? any : all;
        break;
    }
    case R_MIN: case R_MAX: case R_ARGMIN: case R_ARGMAX: {
        if (n == 0)
            break;
        bool want_min = r == R_MIN || r == R_ARGMIN, arg = r == R_ARGMIN || r == R_ARGMAX;
        if (a->dtype == KD_FLOAT64 && has_nan(d, n)) {
            p->flag = 1;
            p->v.f = NAN;
            p->idx = a->lo + first_nan(d, n);
            break;
        }
        /* The extreme value in 8 independent lanes (branch-free, so the
         * compiler vectorises it), then, for arg*, the first index holding
         * it: ties keep the first occurrence, as NumPy. */
#define BEST(T, FIELD, BETTER)                                                      \
    do {                                                                            \
        const T *x = d;                                                             \
        T lane[8], bv;                                                              \
        int64_t i = 0;                                                              \
        for (int k = 0; k < 8; k++)                                                 \
            lane[k] = x[0];                                                         \
        for (; i + 8 <= n; i += 8)                                                  \
            for (int k = 0; k < 8; k++)                                             \
                lane[k] = BETTER(x[i + k], lane[k]) ? x[i + k] : lane[k];           \
        bv = lane[0];                                                               \
        for (int k = 1; k < 8; k++)                                                 \
            bv = BETTER(lane[k], bv) ? lane[k] : bv;                                \
        for (; i < n; i++)                                                          \
            bv = BETTER(x[i], bv) ? x[i] : bv;                                      \
        p->v.FIELD = bv;                                                            \
        if (arg) {                                                                  \
            for (i = 0; i < n && x[i] != bv; i++)                                   \
                ;                                                                   \
            p->idx = a->lo + i;                                                     \
        }                                                                           \
    } while (0)
#define LESS(u, v) ((u) < (v))
#define MORE(u, v) ((u) > (v))
        switch (a->dtype * 2 + want_min) {
        case KD_INT64 * 2 + 1: BEST(int64_t, i, LESS); break;
        case KD_INT64 * 2: BEST(int64_t, i, MORE); break;
        case KD_UINT64 * 2 + 1: BEST(uint64_t, u, LESS); break;
        case KD_UINT64 * 2: BEST(uint64_t, u, MORE); break;
        case KD_FLOAT64 * 2 + 1: BEST(double, f, LESS); break;
        case KD_FLOAT64 * 2: BEST(double, f, MORE); break;
        case KD_BOOL * 2 + 1: BEST(uint8_t, u, LESS); break;
        default: BEST(uint8_t, u, MORE); break;
        }
#undef BEST
#undef LESS
#undef MORE
        break;
    }
    case R_IS_SORTED: {
        p->flag = 1;
        if (n == 0)
            break;
#define SORTED(T, FIELD)                                                            \
    do {                                                                            \
        const T *x = d;                                                             \
        int64_t ok = 1;                                                             \
        for (int64_t i = 1; i < n; i++)                                             \
            ok &= x[i - 1] <= x[i];                                                 \
        p->flag = ok;                                                               \
        p->v.FIELD = x[0];                                                          \
        p->w.FIELD = x[n - 1];                                                      \
    } while (0)
        switch (a->dtype) {
        case KD_INT64: SORTED(int64_t, i); break;
        case KD_UINT64: SORTED(uint64_t, u); break;
        case KD_FLOAT64: SORTED(double, f); break;
        default: SORTED(uint8_t, u); break;
        }
#undef SORTED
        break;
    }
    default: break;
    }
}

/* is the value in q better than the one in p (strictly: ties keep the first) */
static bool better(int r, kd_dtype t, const part *q, const part *p)
{
    bool want_min = r == R_MIN || r == R_ARGMIN;
    switch (t) {
    case KD_INT64: return want_min ? q->v.i < p->v.i : q->v.i > p->v.i;
    case KD_FLOAT64: return want_min ? q->v.f < p->v.f : q->v.f > p->v.f;
    default: return want_min ? q->v.u < p->v.u : q->v.u > p->v.u;
    }
}

static bool le(kd_dtype t, const part *p, const part *q) /* p.last <= q.first */
{
    switch (t) {
    case KD_INT64: return p->w.i <= q->v.i;
    case KD_FLOAT64: return p->w.f <= q->v.f;
    default: return p->w.u <= q->v.u;
    }
}

/* rank 0: the answer from every rank's part */
static void combine(int r, kd_dtype t, const part *ps, int nranks, kd_scalar *out)
{
    kd_dtype rt = red_dtype(r, t);
    out->dtype = rt;
    out->v.u = 0;
    switch (r) {
    case R_SUM:
    case R_PROD: { /* integers: float64 goes through float_reduce */
        uint64_t s = r == R_SUM ? 0 : 1;
        for (int k = 0; k < nranks; k++)
            s = r == R_SUM ? s + ps[k].v.u : s * ps[k].v.u;
        out->v.u = s;
        break;
    }
    case R_ANY:
    case R_ALL: {
        bool v = r == R_ALL;
        for (int k = 0; k < nranks; k++)
            v = r == R_ANY ? (v || ps[k].v.i) : (v && ps[k].v.i);
        out->v.b = v;
        break;
    }
    case R_MIN: case R_MAX: case R_ARGMIN: case R_ARGMAX: {
        const part *best = NULL;
        for (int k = 0; k < nranks; k++) {
            const part *q = &ps[k];
            if (q->n == 0)
                continue;
            if (q->flag) { /* NaN: the first one wins */
                best = q;
                break;
            }
            if (!best || better(r, t, q, best))
                best = q;
        }
        if (r == R_ARGMIN || r == R_ARGMAX)
            out->v.i = best ? best->idx : -1;
        else if (best)
            memcpy(&out->v, &best->v, sizeof out->v);
        if (rt == KD_BOOL)
            out->v.b = best && best->v.u;
        break;
    }
    case R_IS_SORTED: {
        bool ok = true;
        const part *prev = NULL;
        for (int k = 0; k < nranks && ok; k++) {
            if (ps[k].n == 0)
                continue;
            ok = ps[k].flag && (!prev || le(t, prev, &ps[k]));
            prev = &ps[k];
        }
        out->v.b = ok;
        break;
    }
    default: break;
    }
}

static int cmd_reduce(kd_cmd *c)
{
    const char *name;
    kd_array *a;
    double ddof = 0;
    if (kd_arg_str(c, "op", &name) || kd_arg_array(c, "array", &a))
        return -1;
    if (kd_has_arg(c, "ddof") && kd_arg_f64(c, "ddof", &ddof))
        return -1;
    int r = 0;
    while (r < R_COUNT && strcmp(name, red_names[r]) != 0)
        r++;
    if (r == R_COUNT)
        return kd_fail(c, "ValueError", "reduce: unknown reduction '%.20s' (sum prod min max "
                       "argmin argmax any all mean var std is_sorted)", name);
    if (a->size == 0 && (r == R_MIN || r == R_MAX))
        return kd_fail(c, "ValueError", "zero-size array to reduction operation %s which "
                       "has no identity", r == R_MIN ? "minimum" : "maximum");
    if (a->size == 0 && (r == R_ARGMIN || r == R_ARGMAX))
        return kd_fail(c, "ValueError", "attempt to get %s of an empty sequence",
                       red_names[r]);
    if (r == R_MEAN || r == R_VAR || r == R_STD ||
        ((r == R_SUM || r == R_PROD) && a->dtype == KD_FLOAT64)) {
        kd_scalar s = {.dtype = KD_FLOAT64};
        if (float_reduce(c, r, a, ddof, &s.v.f))
            return -1;
        if (c->rank == 0)
            kd_result_scalar(c, "value", &s);
        return 0;
    }
    part mine, *all = NULL;
    local_part(r, a, &mine);
    if (c->rank == 0)
        all = malloc(sizeof(part) * (size_t)c->nranks);
    if (kd_agree(c, c->rank == 0 && !all ? kd_fail(c, "MemoryError", "out of memory") : 0)) {
        free(all);
        return -1;
    }
    MPI_Gather(&mine, sizeof mine, MPI_BYTE, all, sizeof mine, MPI_BYTE, 0, c->comm);
    if (c->rank == 0) {
        kd_scalar s;
        combine(r, a->dtype, all, c->nranks, &s);
        kd_result_scalar(c, "value", &s);
    }
    free(all);
    return 0;
}

/* ---- scans -------------------------------------------------------------------------------- */

/* cumsum/cumprod of float64: a chain. Rank r receives the running value at
 * the end of the blocks before it from rank r - 1, scans its block from it
 * and sends its last running value to rank r + 1 (an empty rank passes the
 * value on). Every element is thus rounded exactly as NumPy's sequential scan
 * rounds it, whatever the number of ranks; the price is that the ranks scan
 * one after the other. */
static void float_scan(kd_cmd *c, bool prod, const double *x, double *o, int64_t n)
{
    double carry[2] = {0, 0}; /* running value, and 1 if there is one yet */
    if (c->rank > 0)
        MPI_Recv(carry, 2, MPI_DOUBLE, c->rank - 1, KD_TAG_SCAN, c->comm, MPI_STATUS_IGNORE);
    double s = carry[0];
    int64_t i = 0;
    if (carry[1] == 0 && n > 0) /* the first element starts the scan, as NumPy */
        o[i] = s = x[i], i++;
    if (prod)
        for (; i < n; i++)
            o[i] = s = s * x[i];
    else
        for (; i < n; i++)
            o[i] = s = s + x[i];
    if (n > 0)
        carry[0] = s, carry[1] = 1;
    if (c->rank < c->nranks - 1)
        MPI_Send(carry, 2, MPI_DOUBLE, c->rank + 1, KD_TAG_SCAN, c->comm);
}

/* cumsum/cumprod. Integers: each rank totals its block, MPI_Exscan gives the
 * total of the blocks before it (exact: integers wrap identically in any
 * order), and the rank scans its block starting from there. Float64: see
 * float_scan. */
static int cmd_scan(kd_cmd *c)
{
    const char *name;
    kd_array *a;
    if (kd_arg_str(c, "op", &name) || kd_arg_array(c, "array", &a))
        return -1;
    bool prod = !strcmp(name, "cumprod");
    if (!prod && strcmp(name, "cumsum"))
        return kd_fail(c, "ValueError", "scan: unknown scan '%.20s' (cumsum, cumprod)", name);
    kd_dtype t = a->dtype == KD_BOOL ? KD_INT64 : a->dtype;
    kd_array *r = kd_new_array(c, t, a->size);
    if (!r)
        return -1;
    int64_t n = a->n;
    if (t == KD_FLOAT64) {
        feclearexcept(FE_ALL_EXCEPT);
        float_scan(c, prod, a->data, r->data, n);
        kd_fpe_report(c, kd_fpe_flags(), "accumulate");
        kd_result_array(c, "array", r);
        return 0;
    }
    /* pass 1: this block's total; int64 wraps like uint64, so both travel as
     * MPI_UINT64_T */
    uint64_t tot = prod ? 1 : 0, off = 0;
    if (a->dtype == KD_BOOL) {
        const uint8_t *x = a->data;
        for (int64_t i = 0; i < n; i++)
            tot = prod ? tot * x[i] : tot + x[i];
    } else {
        const uint64_t *x = a->data;
        if (prod)
            for (int64_t i = 0; i < n; i++)
                tot *= x[i];
        else
            for (int64_t i = 0; i < n; i++)
                tot += x[i];
    }
    MPI_Exscan(&tot, &off, 1, MPI_UINT64_T, prod ? MPI_PROD : MPI_SUM, c->comm);
    if (c->rank == 0) /* MPI leaves rank 0's result undefined */
        off = prod ? 1 : 0;
    /* pass 2: the scan, starting from the blocks before */
    uint64_t *o = r->data, s = off;
    if (a->dtype == KD_BOOL) {
        const uint8_t *x = a->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = s = prod ? s * x[i] : s + x[i];
    } else {
        const uint64_t *x = a->data;
        if (prod)
            for (int64_t i = 0; i < n; i++)
                o[i] = s = s * x[i];
        else
            for (int64_t i = 0; i < n; i++)
                o[i] = s = s + x[i];
    }
    kd_result_array(c, "array", r);
    return 0;
}

void kd_register_reduce(void)
{
    kd_register("reduce", cmd_reduce);
    kd_register("scan", cmd_scan);
}
