/* SPDX-License-Identifier: Apache-2.0 */
/* kd_sort_core.c — the sort engine: key words, plans, the distributed stable
 * LSD radix sort and the exchanges built on MPI_Alltoallv (see kd_sort.h).
 *
 * One radix pass on p ranks:
 *   1. each rank counts the digit values of its block (histogram);
 *   2. MPI_Allgather of the histograms: every rank now knows, for each
 *      (rank s, digit v), where s's elements with digit v start in the
 *      output, which keeps the pass stable (digit first, then source rank,
 *      then position inside the source);
 *   3. each rank scatters its block by digit into a send buffer, which is
 *      then in increasing output position, so it splits into one contiguous
 *      piece per destination rank; MPI_Alltoallv moves the pieces;
 *   4. the receiver copies each (source, digit) run to its output place.
 * A pass whose digit is the same for every element is skipped. The number of
 * passes comes from the bits that vary (the plan subtracts the minimum), and
 * when the key and the element's index fit in 64 bits together they travel
 * as one word (half the traffic of a key/index pair).
 *
 * An argsort key too wide for that (full-range int64, float64) is not
 * radix-sorted across the ranks: exact splitters send each (key, index)
 * pair once to the rank that holds its sorted position, which sorts locally
 * (sort_wide below). */
#include "kd_sort.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* digit width bound: 2^11 buckets keep the histogram and the scatter's write
 * streams inside the L1/L2 caches */
#define KS_MAX_DIGIT 11

typedef struct {
    uint64_t k; /* key word */
    int64_t i;  /* global index of the element in the original order */
} ks_pair;

/* KD_SORT_TRACE=1 in the environment: rank 0 prints the time of each phase */
static void trace(kd_cmd *c, const char *what)
{
    static int on = -1;
    static double t0;
    if (on < 0)
        on = getenv("KD_SORT_TRACE") != NULL;
    if (!on || c->rank != 0)
        return;
    double t = MPI_Wtime();
    if (what[0] == '[')
        t0 = t;
    fprintf(stderr, "sort %8.3f s  %s\n", t - t0, what);
}

/* ---- key words ----------------------------------------------------------------- */

uint64_t ks_word_f64(double d)
{
    uint64_t b;
    if (d == 0)
        d = 0.0; /* -0.0 == 0.0: equal keys keep their order, as NumPy */
    memcpy(&b, &d, 8);
    return (b >> 63) ? ~b : b | 0x8000000000000000ull;
}

static double f64_of_word(uint64_t k)
{
    uint64_t b = (k >> 63) ? k ^ 0x8000000000000000ull : ~k;
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static int bit_width(uint64_t v)
{
    return v ? 64 - __builtin_clzll(v) : 0;
}

/* ---- plans ------------------------------------------------------------------------- */

/* min and max key word of the non-NaN values of one block, and whether NaN occurs */
static void local_range(const ks_src *s, int64_t n, uint64_t *mn, uint64_t *mx, int *nan,
                        int64_t *nonnan)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    int64_t cnt = 0;
    int has_nan = 0;
    switch (s->t) {
    case KD_INT64: {
        const int64_t *x = s->data;
        for (int64_t i = 0; i < n; i++) {
            uint64_t k = ks_word_i64(x[i]);
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
        cnt = n;
        break;
    }
    case KD_UINT64: {
        const uint64_t *x = s->data;
        for (int64_t i = 0; i < n; i++) {
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        cnt = n;
        break;
    }
    case KD_FLOAT64: {
        const double *x = s->data;
        for (int64_t i = 0; i < n; i++) {
            if (x[i] != x[i]) {
                has_nan = 1;
                continue;
            }
            uint64_t k = ks_word_f64(x[i]);
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
            cnt++;
        }
        break;
    }
    default: {
        const uint8_t *x = s->data;
        for (int64_t i = 0; i < n; i++) {
            uint64_t k = x[i] != 0;
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
        }
        cnt = n;
        break;
    }
    }
    *mn = lo;
    *mx = hi;
    *nan = has_nan;
    *nonnan = cnt;
}

int ks_plan_make_src(kd_cmd *c, ks_plan *pl, const ks_src *src, int nkeys, int64_t N)
{
    if (nkeys < 1 || nkeys > KS_MAX_KEYS)
        return kd_fail(c, "ValueError", "%s: between 1 and %d key arrays are supported, "
                       "not %d", c->cmd, KS_MAX_KEYS, nkeys);
    memset(pl, 0, sizeof *pl);
    pl->nkeys = nkeys;
    pl->N = N;
    int64_t hi;
    kd_block(N, c->nranks, c->rank, &pl->lo, &hi);
    pl->n = hi - pl->lo;
    /* one reduction for all keys: [min, -max as ~max, nonnan count] by MIN/SUM */
    uint64_t mn[KS_MAX_KEYS], nmx[KS_MAX_KEYS];
    int64_t cnt[KS_MAX_KEYS * 2];
    for (int j = 0; j < nkeys; j++) {
        pl->src[j] = src[j];
        uint64_t lo, mx;
        int nan;
        int64_t nn;
        local_range(&src[j], pl->n, &lo, &mx, &nan, &nn);
        mn[j] = lo;
        nmx[j] = ~mx;
        cnt[2 * j] = nn;
        cnt[2 * j + 1] = nan;
    }
    MPI_Allreduce(MPI_IN_PLACE, mn, nkeys, MPI_UINT64_T, MPI_MIN, c->comm);
    MPI_Allreduce(MPI_IN_PLACE, nmx, nkeys, MPI_UINT64_T, MPI_MIN, c->comm);
    MPI_Allreduce(MPI_IN_PLACE, cnt, 2 * nkeys, MPI_INT64_T, MPI_SUM, c->comm);
    for (int j = 0; j < nkeys; j++) {
        uint64_t range;
        pl->has_nan[j] = cnt[2 * j + 1] > 0;
        if (cnt[2 * j] == 0) { /* only NaN (or nothing) */
            pl->min[j] = 0;
            pl->nan_rel[j] = 0;
            range = 0;
        } else {
            pl->min[j] = mn[j];
            range = ~nmx[j] - mn[j];
            pl->nan_rel[j] = range + 1; /* finite words stay below 0xFFF0...+1 */
            if (pl->has_nan[j])
                range++;
        }
        pl->bits[j] = bit_width(range);
    }
    /* stages, from the least significant key up; constant keys take no bits */
    int s = -1, used = 64;
    for (int j = nkeys - 1; j >= 0; j--) {
        pl->stage[j] = -1;
        if (pl->bits[j] == 0)
            continue;
        if (used + pl->bits[j] > 64) {
            s++;
            used = 0;
        }
        pl->stage[j] = s;
        pl->shift[j] = used;
        used += pl->bits[j];
        pl->stage_bits[s] = used;
    }
    pl->nstages = s + 1;
    return 0;
}

int ks_plan_make(kd_cmd *c, ks_plan *pl, kd_array **keys, int nkeys)
{
    ks_src src[KS_MAX_KEYS];
    if (nkeys < 1 || nkeys > KS_MAX_KEYS)
        return kd_fail(c, "ValueError", "%s: between 1 and %d key arrays are supported, "
                       "not %d", c->cmd, KS_MAX_KEYS, nkeys);
    for (int j = 0; j < nkeys; j++) {
        if (keys[j]->size != keys[0]->size)
            return kd_fail(c, "ValueError", "%s: key arrays must all have the same size "
                           "(%lld and %lld)", c->cmd, (long long)keys[0]->size,
                           (long long)keys[j]->size);
        src[j].t = keys[j]->dtype;
        src[j].data = keys[j]->data;
    }
    return ks_plan_make_src(c, pl, src, nkeys, keys[0]->size);
}

/* out[i] |= (word(key j, i) - min) << shift, for the n local elements */
static void fill_key(const ks_plan *pl, int j, uint64_t *out)
{
    const uint64_t mn = pl->min[j], nanw = pl->nan_rel[j] << pl->shift[j];
    const int sh = pl->shift[j];
    const int64_t n = pl->n;
    switch (pl->src[j].t) {
    case KD_INT64: {
        const int64_t *x = pl->src[j].data;
        for (int64_t i = 0; i < n; i++)
            out[i] |= (ks_word_i64(x[i]) - mn) << sh;
        break;
    }
    case KD_UINT64: {
        const uint64_t *x = pl->src[j].data;
        for (int64_t i = 0; i < n; i++)
            out[i] |= (x[i] - mn) << sh;
        break;
    }
    case KD_FLOAT64: {
        const double *x = pl->src[j].data;
        for (int64_t i = 0; i < n; i++)
            out[i] |= x[i] != x[i] ? nanw : (ks_word_f64(x[i]) - mn) << sh;
        break;
    }
    default: {
        const uint8_t *x = pl->src[j].data;
        for (int64_t i = 0; i < n; i++)
            out[i] |= ((uint64_t)(x[i] != 0) - mn) << sh;
        break;
    }
    }
}

/* the stage word of every local element, in the original order */
static void fill_stage(const ks_plan *pl, int s, uint64_t *out)
{
    memset(out, 0, (size_t)pl->n * 8);
    for (int j = 0; j < pl->nkeys; j++)
        if (pl->stage[j] == s)
            fill_key(pl, j, out);
}

void ks_decode(const ks_plan *pl, int j, const uint64_t *w, int64_t n, void *out)
{
    const int sh = pl->shift[j], b = pl->bits[j];
    const uint64_t mask = b >= 64 ? UINT64_MAX : (1ull << b) - 1, mn = pl->min[j];
    const bool nan = pl->has_nan[j];
    const uint64_t nanrel = pl->nan_rel[j];
    for (int64_t i = 0; i < n; i++) {
        uint64_t rel = pl->stage[j] < 0 ? 0 : (w[i] >> sh) & mask;
        uint64_t k = rel + mn;
        switch (pl->src[j].t) {
        case KD_INT64: ((int64_t *)out)[i] = (int64_t)(k ^ 0x8000000000000000ull); break;
        case KD_UINT64: ((uint64_t *)out)[i] = k; break;
        case KD_FLOAT64:
            ((double *)out)[i] = (nan && rel == nanrel) ? NAN : f64_of_word(k);
            break;
        default: ((uint8_t *)out)[i] = (uint8_t)k; break;
        }
    }
}

/* ---- the radix sort -------------------------------------------------------------------- */

/* Scratch shared by the passes of one sort. */
typedef struct {
    int64_t *hist;      /* local count per digit value */
    int64_t *all;       /* nranks x buckets: every rank's histogram */
    int64_t *gpos;      /* nranks x buckets: output position of each (rank, digit) run */
    int64_t *blo;       /* nranks + 1 block starts of the output */
    int *scnt, *sdsp, *rcnt, *rdsp; /* Alltoallv counts and displacements */
} ks_scratch;

static void scratch_free(ks_scratch *s)
{
    free(s->hist);
    free(s->all);
    free(s->gpos);
    free(s->blo);
    free(s->scnt);
    free(s->sdsp);
    free(s->rcnt);
    free(s->rdsp);
}

static int scratch_alloc(ks_scratch *s, int p, int64_t N)
{
    size_t nb = (size_t)1 << KS_MAX_DIGIT;
    memset(s, 0, sizeof *s);
    s->hist = malloc(nb * 8);
    s->all = malloc(nb * 8 * (size_t)p);
    s->gpos = malloc(nb * 8 * (size_t)p);
    s->blo = malloc(8 * (size_t)(p + 1));
    s->scnt = malloc(sizeof(int) * (size_t)p);
    s->sdsp = malloc(sizeof(int) * (size_t)p);
    s->rcnt = malloc(sizeof(int) * (size_t)p);
    s->rdsp = malloc(sizeof(int) * (size_t)p);
    if (!s->hist || !s->all || !s->gpos || !s->blo || !s->scnt || !s->sdsp || !s->rcnt ||
        !s->rdsp)
        return -1;
    for (int r = 0; r <= p; r++) {
        int64_t lo, hi;
        kd_block(N, p, r < p ? r : p - 1, &lo, &hi);
        s->blo[r] = r < p ? lo : hi;
    }
    return 0;
}

/* Counts for the exchange of one pass: what this rank sends to each rank
 * (its runs are in output order) and receives from each. */
static void pass_counts(ks_scratch *s, int p, int me, int64_t nbk)
{
    const int64_t mylo = s->blo[me], myhi = s->blo[me + 1];
    memset(s->scnt, 0, sizeof(int) * (size_t)p);
    int d = 0;
    for (int64_t v = 0; v < nbk; v++) {
        int64_t g = s->gpos[me * nbk + v], len = s->all[me * nbk + v];
        while (len > 0) {
            while (g >= s->blo[d + 1])
                d++;
            int64_t take = s->blo[d + 1] - g < len ? s->blo[d + 1] - g : len;
            s->scnt[d] += (int)take;
            g += take;
            len -= take;
        }
    }
    for (int src = 0; src < p; src++) {
        int64_t cnt = 0;
        for (int64_t v = 0; v < nbk; v++) {
            int64_t g0 = s->gpos[src * nbk + v], g1 = g0 + s->all[src * nbk + v];
            g0 = g0 > mylo ? g0 : mylo;
            g1 = g1 < myhi ? g1 : myhi;
            if (g0 < g1)
                cnt += g1 - g0;
        }
        s->rcnt[src] = (int)cnt;
    }
    int so = 0, ro = 0;
    for (int r = 0; r < p; r++) {
        s->sdsp[r] = so;
        s->rdsp[r] = ro;
        so += s->scnt[r];
        ro += s->rcnt[r];
    }
}

/* Global output position of each (rank, digit) run; true when one digit
 * value holds every element (the pass would not move anything). */
static bool pass_positions(ks_scratch *s, int p, int64_t nbk, int64_t N)
{
    int64_t off = 0;
    bool trivial = false;
    for (int64_t v = 0; v < nbk; v++) {
        int64_t tot = 0;
        for (int r = 0; r < p; r++) {
            s->gpos[r * nbk + v] = off + tot;
            tot += s->all[r * nbk + v];
        }
        if (tot == N)
            trivial = true;
        off += tot;
    }
    return trivial;
}

/* RADIX(name, T, KEY, MPITYPE): stable sort of the N elements held in
 * blocks (*pa: this rank's n) by key bits [lo_bit, hi_bit). *pa may come
 * back as another buffer of the same size (the old one freed). */
#define RADIX(NAME, T, KEY)                                                                 \
    static int NAME(kd_cmd *c, T **pa, int64_t n, int64_t N, int lo_bit, int hi_bit,       \
                    MPI_Datatype mt)                                                        \
    {                                                                                       \
        const int p = c->nranks, me = c->rank;                                              \
        const int nbits = hi_bit - lo_bit;                                                  \
        if (nbits <= 0 || N <= 1)                                                           \
            return 0;                                                                       \
        const int passes = (nbits + KS_MAX_DIGIT - 1) / KS_MAX_DIGIT;                       \
        const int B = (nbits + passes - 1) / passes;                                        \
        ks_scratch s;                                                                       \
        T *a = *pa, *b = kd_alloc_bytes((size_t)n * sizeof(T));                         \
        T *rb = p > 1 ? kd_alloc_bytes((size_t)n * sizeof(T)) : NULL;                  \
        int rc = (scratch_alloc(&s, p, N) || !b || (p > 1 && !rb))                          \
                     ? kd_fail(c, "MemoryError", "%s: rank %d is out of memory for the "   \
                               "sort's buffers", c->cmd, me)                               \
                     : 0;                                                                   \
        if (kd_agree(c, rc))                                                                \
            goto done;                                                                      \
        for (int k = 0; k < passes; k++) {                                                  \
            const int shift = lo_bit + k * B;                                               \
            const int width = hi_bit - shift < B ? hi_bit - shift : B;                      \
            const uint64_t mask = (1ull << width) - 1;                                      \
            const int64_t nbk = (int64_t)1 << width;                                        \
            int64_t *h = s.hist;                                                            \
            memset(h, 0, (size_t)nbk * 8);                                                  \
            trace(c, "pass");                                                               \
            for (int64_t i = 0; i < n; i++)                                                 \
                h[(KEY(a[i]) >> shift) & mask]++;                                           \
            trace(c, "histogram");                                                          \
            if (p == 1) {                                                                   \
                bool trivial = false;                                                       \
                int64_t off = 0;                                                            \
                for (int64_t v = 0; v < nbk; v++) {                                         \
                    int64_t t = h[v];                                                       \
                    trivial |= t == n;                                                      \
                    h[v] = off;                                                             \
                    off += t;                                                               \
                }                                                                           \
                if (trivial)                                                                \
                    continue;                                                               \
                for (int64_t i = 0; i < n; i++) {                                           \
                    T e = a[i];                                                             \
                    b[h[(KEY(e) >> shift) & mask]++] = e;                                   \
                }                                                                           \
                T *t = a;                                                                   \
                a = b;                                                                      \
                b = t;                                                                      \
                continue;                                                                   \
            }                                                                               \
            MPI_Allgather(h, (int)nbk, MPI_INT64_T, s.all, (int)nbk, MPI_INT64_T, c->comm); \
            if (pass_positions(&s, p, nbk, N))                                              \
                continue;                                                                   \
            pass_counts(&s, p, me, nbk);                                                    \
            int64_t off = 0;                                                                \
            for (int64_t v = 0; v < nbk; v++) {                                             \
                int64_t t = h[v];                                                           \
                h[v] = off;                                                                 \
                off += t;                                                                   \
            }                                                                               \
            for (int64_t i = 0; i < n; i++) {                                               \
                T e = a[i];                                                                 \
                b[h[(KEY(e) >> shift) & mask]++] = e;                                       \
            }                                                                               \
            trace(c, "scatter");                                                            \
            MPI_Alltoallv(b, s.scnt, s.sdsp, mt, rb, s.rcnt, s.rdsp, mt, c->comm);          \
            trace(c, "alltoallv");                                                          \
            const int64_t mylo = s.blo[me], myhi = s.blo[me + 1];                           \
            for (int src = 0; src < p; src++) {                                             \
                int64_t cur = s.rdsp[src];                                                  \
                for (int64_t v = 0; v < nbk; v++) {                                         \
                    int64_t g0 = s.gpos[src * nbk + v], g1 = g0 + s.all[src * nbk + v];     \
                    g0 = g0 > mylo ? g0 : mylo;                                             \
                    g1 = g1 < myhi ? g1 : myhi;                                             \
                    if (g0 < g1) {                                                          \
                        memcpy(a + (g0 - mylo), rb + cur, (size_t)(g1 - g0) * sizeof(T));   \
                        cur += g1 - g0;                                                     \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        trace(c, "passes done");                                                            \
    done:                                                                                   \
        *pa = a;                                                                            \
        kd_free_bytes(b, (size_t)n * sizeof(T));                                        \
        kd_free_bytes(rb, (size_t)n * sizeof(T));                                       \
        scratch_free(&s);                                                                   \
        return c->failed ? -1 : 0;                                                          \
    }

#define KEY_U64(e) (e)
#define KEY_PAIR(e) ((e).k)
RADIX(radix_u64, uint64_t, KEY_U64)
RADIX(radix_pair, ks_pair, KEY_PAIR)

static int64_t *block_starts(int p, int64_t N);

/* ---- sorting a plan ---------------------------------------------------------------------- */

static void *alloc_words(int64_t n)
{
    return kd_alloc_bytes((size_t)n * 8);
}

static void free_words(void *p, int64_t n)
{
    kd_free_bytes(p, (size_t)n * 8);
}

/* sort the words w (and the indices idx, same order) by the low sb bits.
 * orig: this stage's words in the original order (before any stage moved
 * them), or NULL; need_words: w must hold the sorted words afterwards.
 *
 * A key and an index that fit in 64 bits together travel as one word. A
 * wider key of a later stage of a coargsort (the first stage goes to
 * sort_wide, in the original order) is sorted in two halves, each packed
 * with the index: its low bits first,
 * then, after the words are fetched again in that order from orig, its
 * high bits (LSD, so the result is the same stable order). Every element
 * then moves as 8 bytes, not as a 16-byte key/index pair, and the cost
 * grows with the key's bits as a radix sort's does. Without orig, or when
 * the high half and the index would not fit either, pairs are used. */
static int sort_packed(kd_cmd *c, const ks_plan *pl, uint64_t **pw, int64_t *idx, int lo,
                       int hi, int ib)
{
    const int64_t n = pl->n;
    const uint64_t im = (1ull << ib) - 1; /* ib < 64: N - 1 < 2^63 */
    const uint64_t km = hi - lo >= 64 ? ~0ull : (1ull << (hi - lo)) - 1;
    uint64_t *w = *pw;
    for (int64_t i = 0; i < n; i++)
        w[i] = (((w[i] >> lo) & km) << ib) | (uint64_t)idx[i];
    int rc = radix_u64(c, pw, n, pl->N, ib, ib + (hi - lo), MPI_UINT64_T);
    w = *pw;
    for (int64_t i = 0; i < n; i++)
        idx[i] = (int64_t)(w[i] & im);
    return rc;
}

static int sort_stage(kd_cmd *c, const ks_plan *pl, uint64_t **pw, int64_t *idx, int sb,
                      const uint64_t *orig, bool need_words)
{
    const int64_t n = pl->n;
    const int ib = bit_width((uint64_t)(pl->N - 1));
    uint64_t *w = *pw;
    if (sb + ib <= 64) { /* one word: key above, index below */
        if (sort_packed(c, pl, pw, idx, 0, sb, ib))
            return -1;
        w = *pw;
        for (int64_t i = 0; i < n; i++)
            w[i] >>= ib;
        return 0;
    }
    const int low = 64 - ib; /* bits of the first half */
    if (orig && (sb - low) + ib <= 64) {
        if (sort_packed(c, pl, pw, idx, 0, low, ib) ||
            ks_gather(c, orig, 8, pl->N, idx, n, *pw, false) ||
            sort_packed(c, pl, pw, idx, low, sb, ib))
            return -1;
        return need_words ? ks_gather(c, orig, 8, pl->N, idx, n, *pw, false) : 0;
    }
    ks_pair *pr = kd_alloc_bytes((size_t)n * sizeof *pr);
    if (kd_agree(c, pr ? 0 : kd_fail(c, "MemoryError", "%s: out of memory", c->cmd)))
        return -1;
    for (int64_t i = 0; i < n; i++) {
        pr[i].k = w[i];
        pr[i].i = idx[i];
    }
    MPI_Datatype mt;
    MPI_Type_contiguous(2, MPI_UINT64_T, &mt);
    MPI_Type_commit(&mt);
    int rc = radix_pair(c, &pr, n, pl->N, 0, sb, mt);
    MPI_Type_free(&mt);
    for (int64_t i = 0; i < n; i++) {
        w[i] = pr[i].k;
        idx[i] = pr[i].i;
    }
    kd_free_bytes(pr, (size_t)n * sizeof *pr);
    return rc;
}

/* ---- the wide-key sort: exact splitters, one exchange, a local sort ---------------------- */

/* A key too wide to share a word with its index (full-range int64 or
 * float64 keys with millions of elements) would need about six distributed
 * radix passes of 16-byte pairs, or seven passes of packed halves and a
 * gather (what it took before). Each distributed pass reads and writes the
 * data four times (histogram, scatter, MPI_Alltoallv, copy to place), so
 * such a key cost five times a key below 2^32 (three passes). Instead:
 *   1. find the element at each boundary between two ranks' output blocks:
 *      rounds of 16-bit histograms of the keys (one read of the words and
 *      one MPI_Allreduce each) narrow its key down from the top bits; the
 *      ranks then share how many elements of that key each holds, which
 *      says how many of them (in index order) belong left of the boundary;
 *   2. send every (key, index) pair to the rank whose output block it lands
 *      in: one MPI_Alltoallv, and each rank receives exactly its block;
 *   3. sort each rank's pairs by key with a stable MSD radix sort: one pass
 *      over memory into ranges of keys of about 4096 pairs each (from a
 *      histogram of the top 16 varying bits), then each range, in the
 *      cache, by digits of up to 11 bits, skipping the bits that do not
 *      vary in it, insertion sort below 32 pairs.
 * Pairs arrive in global index order (source rank, then position in it) and
 * every step keeps that order among equal keys: NumPy's stable order. */

/* One boundary between output blocks: the element at global sorted position q. */
typedef struct {
    int64_t q;      /* global sorted position of the boundary's element */
    uint64_t key;   /* its key (during the search: the top bits found so far) */
    int64_t below;  /* elements with a smaller key (prefix), over all ranks */
    int64_t quota;  /* this rank's elements of key `key` that go left of it */
    int64_t seen;   /* elements of key `key` met so far in one pass */
} ks_split;

/* insertion sort below this many pairs (a bucket's histogram would cost more) */
#define KS_SMALL 32

/* (key, index) pairs held as two arrays, so that every buffer of the sort
 * has an array's size (8 bytes an element) and comes back from
 * kd_alloc_bytes' cache instead of being first touched again */
typedef struct {
    uint64_t *k; /* keys */
    int64_t *i;  /* global indices, same order */
} ks_soa;

static inline ks_soa soa_at(ks_soa s, int64_t off)
{
    return (ks_soa){s.k + off, s.i + off};
}

static void soa_copy(ks_soa dst, ks_soa src, int64_t n)
{
    memcpy(dst.k, src.k, (size_t)n * 8);
    memcpy(dst.i, src.i, (size_t)n * 8);
}

static void insertion_sort(ks_soa a, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        uint64_t k = a.k[i];
        int64_t x = a.i[i], j = i;
        while (j > 0 && a.k[j - 1] > k) {
            a.k[j] = a.k[j - 1];
            a.i[j] = a.i[j - 1];
            j--;
        }
        a.k[j] = k;
        a.i[j] = x;
    }
}

static void msd_sort(ks_soa a, ks_soa t, int64_t n, int hb, bool to_a);

/* above this many pairs, msd_sort's first pass groups 16-bit digits */
#define KS_GROUPED (1 << 16)
/* ... into groups of about this many pairs (64 KiB: the L1/L2 caches) */
#define KS_GROUP_PAIRS 4096
/* ... and at most about this many groups (a group number is 16 bits) */
#define KS_GROUPS 32767

/* The first pass of msd_sort over a large block: keys that crowd into a
 * few values of their top bits (float64's exponents, a narrow int range)
 * would leave a few buckets too big for the cache, each needing another
 * pass over memory. So count the top 16 bits, join neighbouring values into
 * groups of about KS_GROUP_PAIRS pairs (a group is a range of keys, so the
 * order holds), scatter by group, and sort each group on its own, in the
 * cache. Returns
 * false (nothing done) when the counters cannot be allocated or a single
 * group would hold every pair (msd_sort's 11-bit pass then makes progress). */
static bool msd_grouped(ks_soa a, ks_soa t, int64_t n, int hb, bool to_a)
{
    const int d = hb < 16 ? hb : 16, sh = hb - d;
    const uint64_t mask = (1ull << d) - 1;
    const int64_t nbk = (int64_t)1 << d;
    int64_t *h = malloc(8 * (size_t)nbk);
    uint16_t *grp = malloc(2 * (size_t)nbk); /* digit value -> its group */
    int64_t *end = malloc(8 * (2 * (size_t)KS_GROUPS + 2)); /* per group: start, then end */
    if (!h || !grp || !end) {
        free(h);
        free(grp);
        free(end);
        return false;
    }
    memset(h, 0, 8 * (size_t)nbk);
    for (int64_t i = 0; i < n; i++)
        h[(a.k[i] >> sh) & mask]++;
    /* a group closes once it holds `target` pairs, or before a digit value
     * that alone holds that many (so a crowded value is a group by itself
     * and its sort starts on narrower keys): target >= n / KS_GROUPS, so
     * at most 2 KS_GROUPS + 1 groups */
    const int64_t target = n / KS_GROUPS > KS_GROUP_PAIRS ? n / KS_GROUPS + 1 : KS_GROUP_PAIRS;
    int g = 0;
    int64_t inside = 0, off = 0;
    for (int64_t v = 0; v < nbk; v++) {
        if (inside > 0 && h[v] >= target) {
            end[g++] = off;
            off += inside;
            inside = 0;
        }
        grp[v] = (uint16_t)g;
        inside += h[v];
        if (inside >= target || v == nbk - 1) {
            end[g++] = off;
            off += inside;
            inside = 0;
        }
    }
    free(h);
    if (g == 1) { /* one group holds every pair: no progress here */
        free(grp);
        free(end);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t at = end[grp[(a.k[i] >> sh) & mask]]++;
        t.k[at] = a.k[i];
        t.i[at] = a.i[i];
    }
    free(grp);
    int64_t start = 0;
    for (int j = 0; j < g; j++) {
        if (end[j] > start)
            msd_sort(soa_at(t, start), soa_at(a, start), end[j] - start, -1, !to_a);
        start = end[j];
    }
    free(end);
    return true;
}

/* Stable sort of a[0, n) by key, where the key bits at and above hb are the
 * same in every pair; t is scratch for n pairs. The result is left in a when
 * to_a, else in t. hb < 0: find the bits that vary first (a bucket that
 * fits in the cache: the read is cheap, and constant digits are skipped). */
static void msd_sort(ks_soa a, ks_soa t, int64_t n, int hb, bool to_a)
{
    if (hb < 0 && n > 1) {
        uint64_t diff = 0, k0 = a.k[0];
        for (int64_t i = 1; i < n; i++)
            diff |= a.k[i] ^ k0;
        hb = bit_width(diff);
    }
    if (n <= KS_SMALL || hb <= 0) {
        if (hb > 0)
            insertion_sort(a, n);
        if (!to_a)
            soa_copy(t, a, n);
        return;
    }
    if (n > KS_GROUPED && hb > KS_MAX_DIGIT && msd_grouped(a, t, n, hb, to_a))
        return;
    /* fewer buckets for a small range: the histogram stays cheap beside n */
    const int nd = bit_width((uint64_t)n) - 4; /* about 16 pairs a bucket */
    int d = KS_MAX_DIGIT;
    d = nd < d ? nd : d;
    d = hb < d ? hb : d;
    const int sh = hb - d;
    const uint64_t mask = (1ull << d) - 1;
    const int64_t nbk = (int64_t)1 << d;
    int64_t end[1 << KS_MAX_DIGIT];
    memset(end, 0, (size_t)nbk * sizeof end[0]);
    for (int64_t i = 0; i < n; i++)
        end[(a.k[i] >> sh) & mask]++;
    int64_t off = 0;
    for (int64_t v = 0; v < nbk; v++) {
        int64_t cnt = end[v];
        end[v] = off; /* start, until the scatter moves it to the end */
        off += cnt;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t at = end[(a.k[i] >> sh) & mask]++;
        t.k[at] = a.k[i];
        t.i[at] = a.i[i];
    }
    /* every bucket is now in t: sort it there, its result going back to a
     * when to_a (so the bucket's own call gets !to_a) */
    int64_t start = 0;
    for (int64_t v = 0; v < nbk; v++) {
        int64_t m = end[v] - start;
        if (m > 0)
            msd_sort(soa_at(t, start), soa_at(a, start), m, sh > 0 ? -1 : 0, !to_a);
        start = end[v];
    }
}

/* The rank a key goes to: past every boundary with a smaller key, and past
 * those of an equal key once this rank's quota for them is used up. */
static inline int split_dest(ks_split *sp, int m, uint64_t k)
{
    int lo = 0, hi = m;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sp[mid].key < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    int d = lo;
    for (int j = lo; j < m && sp[j].key == k; j++)
        if (sp[j].seen++ >= sp[j].quota)
            d = j + 1;
    return d;
}

/* Collective: the m = p - 1 boundaries of the sorted order of the words w
 * (n here, sb bits wide), with this rank's quotas. blo: the output blocks. */
static int find_splits(kd_cmd *c, const uint64_t *w, int64_t n, int sb, const int64_t *blo,
                       ks_split *sp, int m)
{
    const int p = c->nranks, me = c->rank;
    const int D = p > 16 ? 12 : 16; /* digit bits of a round: (p - 1) * 2^D counters */
    const int64_t nb = (int64_t)1 << D;
    int64_t *h = malloc(8 * (size_t)(nb * m)), *hg = malloc(8 * (size_t)(nb * m));
    int64_t *eq = malloc(8 * (size_t)m), *eqall = malloc(8 * (size_t)(m * p));
    uint64_t *up = malloc(8 * (size_t)m); /* the distinct prefixes, ascending */
    int *slot = malloc(sizeof(int) * (size_t)m); /* boundary -> its prefix in up */
    int rc = (!h || !hg || !eq || !eqall || !up || !slot)
                 ? kd_fail(c, "MemoryError", "%s: out of memory for the sort's splitters",
                           c->cmd) : 0;
    if (kd_agree(c, rc))
        goto out;
    for (int j = 0; j < m; j++) {
        sp[j].q = blo[j + 1];
        sp[j].key = 0;
        sp[j].below = 0;
        eq[j] = n; /* a key of no bits: every element has it */
    }
    for (int kb = 0; kb < sb;) {
        const int d = sb - kb < D ? sb - kb : D, sh = sb - kb - d;
        const uint64_t mask = (1ull << d) - 1;
        int nu = 0;
        for (int j = 0; j < m; j++) {
            if (j == 0 || sp[j].key != sp[j - 1].key)
                up[nu++] = sp[j].key;
            slot[j] = nu - 1;
        }
        memset(h, 0, 8 * (size_t)(nb * nu));
        if (kb == 0) { /* no prefix yet: every element counts */
            for (int64_t i = 0; i < n; i++)
                h[(w[i] >> sh) & mask]++;
        } else {
            for (int64_t i = 0; i < n; i++) {
                const uint64_t x = w[i] >> (sh + d);
                int lo = 0, hi = nu - 1;
                while (lo < hi) {
                    int mid = (lo + hi) / 2;
                    if (up[mid] < x)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                if (up[lo] == x)
                    h[lo * nb + ((w[i] >> sh) & mask)]++;
            }
        }
        MPI_Allreduce(h, hg, (int)(nb * nu), MPI_INT64_T, MPI_SUM, c->comm);
        for (int j = 0; j < m; j++) {
            const int64_t *g = hg + slot[j] * nb;
            int64_t cum = sp[j].below, v = 0;
            /* the prefix's elements hold position q: some digit does */
            while (v < nb - 1 && cum + g[v] <= sp[j].q)
                cum += g[v++];
            eq[j] = h[slot[j] * nb + v];
            sp[j].key = (sp[j].key << d) | (uint64_t)v;
            sp[j].below = cum;
        }
        kb += d;
    }
    /* eq[j]: this rank's elements of key sp[j].key; the first q - below of
     * them over all ranks, in index order, go left of boundary j */
    MPI_Allgather(eq, m, MPI_INT64_T, eqall, m, MPI_INT64_T, c->comm);
    for (int j = 0; j < m; j++) {
        int64_t before = 0;
        for (int s = 0; s < me; s++)
            before += eqall[s * m + j];
        int64_t left = sp[j].q - sp[j].below - before;
        sp[j].quota = left < 0 ? 0 : (left > eq[j] ? eq[j] : left);
    }
out:
    free(h);
    free(hg);
    free(eq);
    free(eqall);
    free(up);
    free(slot);
    return c->failed ? -1 : 0;
}

/* Collective: the stable order of the words w (this rank's n, in the
 * original order, sb bits wide). On return w holds this rank's block of the
 * sorted words and idx the global indices they came from. The pairs arrive
 * in w and idx themselves (w is read before), so the sort needs two more
 * arrays of n words, not two buffers of pairs. */
static int sort_wide(kd_cmd *c, const ks_plan *pl, uint64_t *w, int64_t *idx, int sb)
{
    const int p = c->nranks, me = c->rank, m = p - 1;
    const int64_t n = pl->n;
    int64_t *blo = block_starts(p, pl->N), *at = malloc(8 * (size_t)p);
    ks_split *sp = malloc(sizeof *sp * (size_t)(m + 1));
    int *cnt = malloc(sizeof(int) * 4 * (size_t)p);
    const ks_soa got = {w, idx};                             /* what arrives, then the result */
    ks_soa tmp = {kd_alloc_bytes((size_t)n * 8), kd_alloc_bytes((size_t)n * 8)}; /* to send, then scratch */
    int rc = (!blo || !at || !sp || !cnt || !tmp.k || !tmp.i)
                 ? kd_fail(c, "MemoryError", "%s: rank %d is out of memory for the sort's "
                           "buffers", c->cmd, me) : 0;
    if (kd_agree(c, rc))
        goto out;
    trace(c, "[wide alloc");
    if (m > 0 && find_splits(c, w, n, sb, blo, sp, m))
        goto out;
    trace(c, "splitters");
    int *scnt = cnt, *sdsp = cnt + p, *rcnt = cnt + 2 * p, *rdsp = cnt + 3 * p;
    if (p == 1) { /* w is in place already */
        for (int64_t i = 0; i < n; i++)
            idx[i] = pl->lo + i;
    } else {
        memset(scnt, 0, sizeof(int) * (size_t)p);
        for (int j = 0; j < m; j++)
            sp[j].seen = 0;
        for (int64_t i = 0; i < n; i++)
            scnt[split_dest(sp, m, w[i])]++;
        int64_t ro = kd_exchange_counts(c->comm, p, scnt, sdsp, rcnt, rdsp);
        /* the splitters are exact: anything else is a bug, not the data */
        if (kd_agree(c, ro != n ? kd_fail(c, "RuntimeError", "%s: rank %d would receive %lld "
                                          "elements for its block of %lld (splitter bug)",
                                          c->cmd, me, (long long)ro, (long long)n) : 0))
            goto out;
        for (int j = 0; j < m; j++)
            sp[j].seen = 0;
        for (int r = 0; r < p; r++)
            at[r] = sdsp[r];
        for (int64_t i = 0; i < n; i++) {
            const int64_t to = at[split_dest(sp, m, w[i])]++;
            tmp.k[to] = w[i];
            tmp.i[to] = pl->lo + i;
        }
        trace(c, "pairs to send");
        MPI_Alltoallv(tmp.k, scnt, sdsp, MPI_UINT64_T, got.k, rcnt, rdsp, MPI_UINT64_T,
                      c->comm);
        MPI_Alltoallv(tmp.i, scnt, sdsp, MPI_INT64_T, got.i, rcnt, rdsp, MPI_INT64_T, c->comm);
        trace(c, "alltoallv");
    }
    /* the keys here lie between the boundaries' keys: bits above where
     * those differ are the same in all of them */
    uint64_t klo = me > 0 ? sp[me - 1].key : 0;
    uint64_t khi = me < m ? sp[me].key : (sb >= 64 ? UINT64_MAX : (1ull << sb) - 1);
    msd_sort(got, tmp, n, bit_width(klo ^ khi), true);
    trace(c, "local sort");
out:
    free(blo);
    free(at);
    free(sp);
    free(cnt);
    kd_free_bytes(tmp.k, (size_t)n * 8);
    kd_free_bytes(tmp.i, (size_t)n * 8);
    return c->failed ? -1 : 0;
}

int ks_run(kd_cmd *c, const ks_plan *pl, int64_t **pidx, uint64_t **words)
{
    const int64_t n = pl->n;
    const int S = pl->nstages;
    /* blocks differ by one element at most: agree, so no rank is left alone */
    if (kd_agree(c, n > INT_MAX ? kd_fail(c, "ValueError", "%s: %lld elements per rank is "
                                          "over the 2^31 an MPI message can carry; use more "
                                          "ranks", c->cmd, (long long)n) : 0))
        return -1;
    if (words)
        for (int s = 0; s < S; s++)
            words[s] = NULL;
    /* the plain sort of one word per element: no indices at all */
    if (!pidx && S == 1) {
        uint64_t *w = alloc_words(n);
        if (kd_agree(c, w ? 0 : kd_fail(c, "MemoryError", "%s: out of memory", c->cmd)))
            return -1;
        fill_stage(pl, 0, w);
        if (radix_u64(c, &w, n, pl->N, 0, pl->stage_bits[0], MPI_UINT64_T)) {
            free_words(w, n);
            return -1;
        }
        if (words)
            words[0] = w;
        else
            free_words(w, n);
        return 0;
    }
    int64_t *idx = kd_alloc_bytes((size_t)n * 8);
    /* cw: a stage's words in the original order, for the stages after the
     * first and for splitting a key too wide to pack with the index */
    const bool need_cw = S > 1;
    /* a first stage too wide to share a word with the index */
    const bool wide0 = S > 0 && pl->stage_bits[0] + bit_width((uint64_t)(pl->N - 1)) > 64;
    uint64_t *w = alloc_words(n), *cw = need_cw ? alloc_words(n) : NULL;
    int rc = (!idx || !w || (need_cw && !cw)) ? kd_fail(c, "MemoryError", "%s: out of memory",
                                                         c->cmd) : 0;
    if (kd_agree(c, rc))
        goto fail;
    trace(c, "[alloc");
    for (int64_t i = 0; i < n; i++)
        idx[i] = pl->lo + i;
    for (int s = 0; s < S; s++) {
        const uint64_t *orig = NULL; /* the stage's words in the original order */
        if (s == 0) {
            fill_stage(pl, 0, w);
            if (cw) {
                memcpy(cw, w, (size_t)n * 8);
                orig = cw;
            }
        } else { /* this stage's words, fetched for the current order */
            fill_stage(pl, s, cw);
            orig = cw;
            if (ks_gather(c, cw, 8, pl->N, idx, n, w, false))
                goto fail;
        }
        trace(c, "stage words");
        if (s == 0 && wide0) { /* the original order: idx is still the identity */
            if (sort_wide(c, pl, w, idx, pl->stage_bits[0]))
                goto fail;
        } else if (sort_stage(c, pl, &w, idx, pl->stage_bits[s], orig, words && s == S - 1)) {
            goto fail;
        }
        trace(c, "stage sorted");
    }
    if (words) {
        words[S > 0 ? S - 1 : 0] = S > 0 ? w : NULL;
        if (S == 0)
            free_words(w, n);
        w = NULL;
        for (int s = 0; s + 1 < S; s++) {
            words[s] = alloc_words(n);
            if (kd_agree(c, words[s] ? 0 : kd_fail(c, "MemoryError", "out of memory")))
                goto fail;
            fill_stage(pl, s, cw);
            if (ks_gather(c, cw, 8, pl->N, idx, n, words[s], false))
                goto fail;
        }
    }
    free_words(w, n);
    free_words(cw, n);
    if (pidx)
        *pidx = idx;
    else
        kd_free_bytes(idx, (size_t)n * 8);
    return 0;
fail:
    if (words)
        for (int s = 0; s < S; s++)
            if (words[s]) {
                free_words(words[s], n);
                words[s] = NULL;
            }
    kd_free_bytes(idx, (size_t)n * 8);
    free_words(w, n);
    free_words(cw, n);
    return -1;
}

void ks_free_words(uint64_t **w, int k, int64_t n)
{
    if (!w)
        return;
    for (int s = 0; s < k; s++) {
        free_words(w[s], n);
        w[s] = NULL;
    }
}

int ks_run_starts(kd_cmd *c, const ks_plan *pl, uint64_t **words, int64_t limit,
                  int64_t **pstarts, int64_t *pnst)
{
    const int S = pl->nstages, p = c->nranks;
    const int64_t n = pl->n, lo = pl->lo;
    int64_t *st = malloc(sizeof *st * (size_t)(n + 1));
    /* each rank's last row, so the next rank can compare its first */
    size_t rec = (size_t)S + 1;
    uint64_t *mine = calloc(rec, 8), *all = calloc(rec * (size_t)p, 8);
    int rc = (!st || !mine || !all) ? kd_fail(c, "MemoryError", "out of memory") : 0;
    if (kd_agree(c, rc)) {
        free(st);
        free(mine);
        free(all);
        return -1;
    }
    mine[0] = n > 0;
    for (int s = 0; s < S && n > 0; s++)
        mine[1 + s] = words[s][n - 1];
    MPI_Allgather(mine, (int)rec, MPI_UINT64_T, all, (int)rec, MPI_UINT64_T, c->comm);
    int prev = -1;
    for (int r = c->rank - 1; r >= 0 && prev < 0; r--)
        if (all[rec * (size_t)r])
            prev = r;
    int64_t k = 0;
    for (int64_t i = 0; i < n && lo + i < limit; i++) {
        bool diff;
        if (i > 0) {
            diff = false;
            for (int s = 0; s < S; s++)
                diff |= words[s][i] != words[s][i - 1];
        } else if (prev < 0) {
            diff = true; /* global position 0 */
        } else {
            diff = false;
            for (int s = 0; s < S; s++)
                diff |= words[s][0] != all[rec * (size_t)prev + 1 + s];
        }
        if (diff)
            st[k++] = lo + i;
    }
    free(mine);
    free(all);
    *pstarts = st;
    *pnst = k;
    return 0;
}

/* ---- exchanges ------------------------------------------------------------------------------ */

/* block starts of an N-item array over p ranks: blo[0..p] */
static int64_t *block_starts(int p, int64_t N)
{
    int64_t *blo = malloc(8 * (size_t)(p + 1));
    if (!blo)
        return NULL;
    for (int r = 0; r < p; r++) {
        int64_t lo, hi;
        kd_block(N, p, r, &lo, &hi);
        blo[r] = lo;
    }
    blo[p] = N;
    return blo;
}

static inline int owner_of(const int64_t *blo, int p, int64_t N, int64_t i)
{
    int r = (int)((__int128)i * p / N);
    while (r > 0 && i < blo[r])
        r--;
    while (r < p - 1 && i >= blo[r + 1])
        r++;
    return r;
}

static MPI_Datatype item_type(size_t w)
{
    return w == 1 ? MPI_UINT8_T : MPI_UINT64_T;
}

int ks_gather(kd_cmd *c, const void *src, size_t w, int64_t N, const int64_t *idx, int64_t m,
              void *out, bool check)
{
    const int p = c->nranks;
    int rc = 0;
    if (check) {
        for (int64_t k = 0; k < m; k++)
            if (idx[k] < 0 || idx[k] >= N) {
                rc = kd_fail(c, "IndexError", "index %lld is out of bounds for size %lld",
                             (long long)idx[k], (long long)N);
                break;
            }
    }
    if (m > INT_MAX)
        rc = kd_fail(c, "ValueError", "%s: over 2^31 items on one rank", c->cmd);
    int64_t *blo = block_starts(p, N);
    int *scnt = calloc((size_t)p, sizeof(int)), *sdsp = malloc(sizeof(int) * (size_t)p);
    int *rcnt = malloc(sizeof(int) * (size_t)p), *rdsp = malloc(sizeof(int) * (size_t)p);
    int *dest = malloc(sizeof(int) * (size_t)(m + 1));
    int64_t *sidx = malloc(8 * (size_t)(m + 1)), *pos = malloc(8 * (size_t)(m + 1));
    int64_t *ridx = NULL;
    uint8_t *rep = NULL, *back = malloc(w * (size_t)(m + 1));
    if (!rc && (!blo || !scnt || !sdsp || !rcnt || !rdsp || !dest || !sidx || !pos || !back))
        rc = kd_fail(c, "MemoryError", "%s: out of memory for a gather", c->cmd);
    if (kd_agree(c, rc))
        goto out;
    int64_t lo = blo[c->rank];
    for (int64_t k = 0; k < m; k++) {
        int d = N > 0 ? owner_of(blo, p, N, idx[k]) : 0;
        dest[k] = d;
        scnt[d]++;
    }
    int64_t ro = kd_exchange_counts(c->comm, p, scnt, sdsp, rcnt, rdsp);
    rc = ro > INT_MAX ? kd_fail(c, "ValueError", "%s: over 2^31 items requested from one "
                                "rank", c->cmd) : 0;
    if (!rc) {
        ridx = malloc(8 * (size_t)(ro + 1));
        rep = malloc(w * (size_t)(ro + 1));
        if (!ridx || !rep)
            rc = kd_fail(c, "MemoryError", "%s: out of memory for a gather", c->cmd);
    }
    if (kd_agree(c, rc))
        goto out;
    {
        /* group the requests by owner, remembering where each answer goes */
        int *fill = malloc(sizeof(int) * (size_t)p);
        if (kd_agree(c, fill ? 0 : kd_fail(c, "MemoryError", "out of memory")))
            goto out;
        memcpy(fill, sdsp, sizeof(int) * (size_t)p);
        for (int64_t k = 0; k < m; k++) {
            int64_t at = fill[dest[k]]++;
            sidx[at] = idx[k];
            pos[at] = k;
        }
        free(fill);
    }
    MPI_Alltoallv(sidx, scnt, sdsp, MPI_INT64_T, ridx, rcnt, rdsp, MPI_INT64_T, c->comm);
    if (w == 8) {
        const uint64_t *s8 = src;
        uint64_t *r8 = (uint64_t *)rep;
        for (int64_t k = 0; k < ro; k++)
            r8[k] = s8[ridx[k] - lo];
    } else {
        const uint8_t *s1 = src;
        for (int64_t k = 0; k < ro; k++)
            rep[k] = s1[ridx[k] - lo];
    }
    MPI_Alltoallv(rep, rcnt, rdsp, item_type(w), back, scnt, sdsp, item_type(w), c->comm);
    if (w == 8) {
        const uint64_t *b8 = (const uint64_t *)back;
        uint64_t *o8 = out;
        for (int64_t k = 0; k < m; k++)
            o8[pos[k]] = b8[k];
    } else {
        uint8_t *o1 = out;
        for (int64_t k = 0; k < m; k++)
            o1[pos[k]] = back[k];
    }
out:
    free(blo);
    free(scnt);
    free(sdsp);
    free(rcnt);
    free(rdsp);
    free(dest);
    free(sidx);
    free(pos);
    free(ridx);
    free(rep);
    free(back);
    return c->failed ? -1 : 0;
}

int ks_scatter(kd_cmd *c, void *dst, size_t w, int64_t N, const int64_t *idx, const void *vals,
               int64_t m)
{
    const int p = c->nranks;
    int rc = m > INT_MAX ? kd_fail(c, "ValueError", "%s: over 2^31 items on one rank", c->cmd) : 0;
    int64_t *blo = block_starts(p, N);
    int *scnt = calloc((size_t)p, sizeof(int)), *sdsp = malloc(sizeof(int) * (size_t)p);
    int *rcnt = malloc(sizeof(int) * (size_t)p), *rdsp = malloc(sizeof(int) * (size_t)p);
    int *dest = malloc(sizeof(int) * (size_t)(m + 1)), *fill = malloc(sizeof(int) * (size_t)p);
    int64_t *sidx = malloc(8 * (size_t)(m + 1)), *ridx = NULL;
    uint8_t *sval = malloc(w * (size_t)(m + 1)), *rval = NULL;
    if (!rc && (!blo || !scnt || !sdsp || !rcnt || !rdsp || !dest || !fill || !sidx || !sval))
        rc = kd_fail(c, "MemoryError", "%s: out of memory for a scatter", c->cmd);
    if (kd_agree(c, rc))
        goto out;
    for (int64_t k = 0; k < m; k++) {
        int d = owner_of(blo, p, N, idx[k]);
        dest[k] = d;
        scnt[d]++;
    }
    int64_t ro = kd_exchange_counts(c->comm, p, scnt, sdsp, rcnt, rdsp);
    rc = ro > INT_MAX ? kd_fail(c, "ValueError", "%s: over 2^31 items sent to one rank", c->cmd) : 0;
    if (!rc) {
        ridx = malloc(8 * (size_t)(ro + 1));
        rval = malloc(w * (size_t)(ro + 1));
        if (!ridx || !rval)
            rc = kd_fail(c, "MemoryError", "%s: out of memory for a scatter", c->cmd);
    }
    if (kd_agree(c, rc))
        goto out;
    memcpy(fill, sdsp, sizeof(int) * (size_t)p);
    for (int64_t k = 0; k < m; k++) {
        int64_t at = fill[dest[k]]++;
        sidx[at] = idx[k];
        memcpy(sval + (size_t)at * w, (const uint8_t *)vals + (size_t)k * w, w);
    }
    MPI_Alltoallv(sidx, scnt, sdsp, MPI_INT64_T, ridx, rcnt, rdsp, MPI_INT64_T, c->comm);
    MPI_Alltoallv(sval, scnt, sdsp, item_type(w), rval, rcnt, rdsp, item_type(w), c->comm);
    int64_t lo = blo[c->rank];
    if (w == 8)
        for (int64_t k = 0; k < ro; k++)
            ((uint64_t *)dst)[ridx[k] - lo] = ((uint64_t *)rval)[k];
    else
        for (int64_t k = 0; k < ro; k++)
            ((uint8_t *)dst)[ridx[k] - lo] = rval[k];
out:
    free(blo);
    free(scnt);
    free(sdsp);
    free(rcnt);
    free(rdsp);
    free(dest);
    free(fill);
    free(sidx);
    free(ridx);
    free(sval);
    free(rval);
    return c->failed ? -1 : 0;
}

int ks_to_block(kd_cmd *c, const void *src, size_t w, int64_t off, int64_t cnt, int64_t M,
                void *dst)
{
    const int p = c->nranks;
    int64_t *runs = malloc(16 * (size_t)p), *blo = block_starts(p, M);
    int *scnt = malloc(sizeof(int) * (size_t)p), *sdsp = malloc(sizeof(int) * (size_t)p);
    int *rcnt = malloc(sizeof(int) * (size_t)p), *rdsp = malloc(sizeof(int) * (size_t)p);
    int rc = (!runs || !blo || !scnt || !sdsp || !rcnt || !rdsp)
                 ? kd_fail(c, "MemoryError", "out of memory") : 0;
    if (kd_agree(c, rc))
        goto out;
    int64_t mine[2] = {off, cnt};
    MPI_Allgather(mine, 2, MPI_INT64_T, runs, 2, MPI_INT64_T, c->comm);
    const int64_t lo = blo[c->rank], hi = blo[c->rank + 1];
    for (int r = 0; r < p; r++) {
        /* what I send to r: my run ∩ r's block; what r sends me: r's run ∩ mine */
        int64_t a0 = off > blo[r] ? off : blo[r], a1 = off + cnt < blo[r + 1] ? off + cnt : blo[r + 1];
        scnt[r] = a0 < a1 ? (int)(a1 - a0) : 0;
        sdsp[r] = a0 < a1 ? (int)(a0 - off) : 0;
        int64_t b0 = runs[2 * r] > lo ? runs[2 * r] : lo;
        int64_t b1 = runs[2 * r] + runs[2 * r + 1] < hi ? runs[2 * r] + runs[2 * r + 1] : hi;
        rcnt[r] = b0 < b1 ? (int)(b1 - b0) : 0;
        rdsp[r] = b0 < b1 ? (int)(b0 - lo) : 0;
    }
    MPI_Alltoallv(src, scnt, sdsp, item_type(w), dst, rcnt, rdsp, item_type(w), c->comm);
out:
    free(runs);
    free(blo);
    free(scnt);
    free(sdsp);
    free(rcnt);
    free(rdsp);
    return c->failed ? -1 : 0;
}
