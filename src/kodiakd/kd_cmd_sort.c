/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_sort.c — sorting and set commands: sort, argsort, coargsort,
 * unique (with counts), in1d and histogram, with NumPy's results.
 *
 * The sorts run on the engine of kd_sort_core.c (a distributed stable LSD
 * radix sort), so argsort and coargsort give the same permutation as
 * numpy.argsort(kind="stable") / numpy.lexsort whatever the number of ranks.
 * in1d hashes every value to a rank (one exchange for each array and one for
 * the answers) instead of sorting. histogram repeats numpy.histogram's
 * arithmetic for equal-width bins, so values on bin edges land where NumPy
 * puts them. The group-by commands live in kd_sort_groupby.c. */
#include "kd_sort.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void kd_register_groupby(void);

/* the key arrays of a command: "arrays" (a list) or "array" (one) */
static int arg_keys(kd_cmd *c, kd_array ***keys, int *nk)
{
    if (kd_has_arg(c, "arrays")) {
        if (kd_arg_array_list(c, "arrays", keys, nk))
            return -1;
        if (*nk == 0) {
            free(*keys);
            return kd_fail(c, "ValueError", "%s: needs at least one array", c->cmd);
        }
        return 0;
    }
    kd_array *a;
    if (kd_arg_array(c, "array", &a))
        return -1;
    *keys = malloc(sizeof **keys);
    if (!*keys)
        return kd_fail(c, "MemoryError", "out of memory");
    (*keys)[0] = a;
    *nk = 1;
    return 0;
}

/* ---- argsort, coargsort, sort ----------------------------------------------------------- */

/* argsort(array) or coargsort(arrays): the stable permutation, int64 */
static int cmd_argsort(kd_cmd *c)
{
    kd_array **keys;
    int nk;
    if (arg_keys(c, &keys, &nk))
        return -1;
    ks_plan pl;
    int64_t *idx = NULL;
    int rc = ks_plan_make(c, &pl, keys, nk);
    free(keys);
    if (rc || ks_run(c, &pl, &idx, NULL))
        return -1;
    kd_array *out = kd_new_array(c, KD_INT64, pl.N);
    if (!out) {
        kd_free_bytes(idx, (size_t)pl.n * 8);
        return -1;
    }
    /* the permutation's buffer becomes the array's: same size, same allocator */
    kd_free_bytes(out->data, (size_t)out->n * 8);
    out->data = idx;
    kd_result_array(c, "array", out);
    return 0;
}

/* sort(array): the values in ascending order, NaN last */
static int cmd_sort(kd_cmd *c)
{
    kd_array *a;
    ks_plan pl;
    uint64_t *words[KS_MAX_KEYS];
    if (kd_arg_array(c, "array", &a) || ks_plan_make(c, &pl, &a, 1))
        return -1;
    kd_array *out = kd_new_array(c, a->dtype, a->size);
    if (!out)
        return -1;
    if (pl.nstages == 0) { /* every value equal */
        memcpy(out->data, a->data, (size_t)a->n * kd_dtype_size(a->dtype));
    } else {
        if (ks_run(c, &pl, NULL, words))
            return -1;
        ks_decode(&pl, 0, words[0], pl.n, out->data);
        ks_free_words(words, pl.nstages, pl.n);
    }
    kd_result_array(c, "array", out);
    return 0;
}

/* ---- unique ---------------------------------------------------------------------------- */

/* The end of each local run start: the next start, here or on a later rank,
 * else `limit`. */
static int run_lengths(kd_cmd *c, const int64_t *st, int64_t k, int64_t limit, int64_t *len)
{
    int64_t first = k ? st[0] : -1, *all = malloc(8 * (size_t)c->nranks);
    if (kd_agree(c, all ? 0 : kd_fail(c, "MemoryError", "out of memory"))) {
        free(all); /* another rank failed */
        return -1;
    }
    MPI_Allgather(&first, 1, MPI_INT64_T, all, 1, MPI_INT64_T, c->comm);
    int64_t next = limit;
    for (int r = c->rank + 1; r < c->nranks; r++)
        if (all[r] >= 0) {
            next = all[r];
            break;
        }
    free(all);
    for (int64_t j = 0; j < k; j++)
        len[j] = (j + 1 < k ? st[j + 1] : next) - st[j];
    return 0;
}

/* unique(array, return_counts): sorted distinct values (NaNs count as one
 * value, as numpy.unique) and, when asked, how often each occurs */
static int cmd_unique(kd_cmd *c)
{
    kd_array *a;
    bool want_counts = false;
    ks_plan pl;
    uint64_t *words[KS_MAX_KEYS] = {0};
    if (kd_arg_array(c, "array", &a) ||
        (kd_has_arg(c, "return_counts") && kd_arg_bool(c, "return_counts", &want_counts)) ||
        ks_plan_make(c, &pl, &a, 1))
        return -1;
    if (pl.nstages == 1 && ks_run(c, &pl, NULL, words))
        return -1;
    int64_t *st = NULL, k = 0, goff = 0, U = 0;
    int rc = -1;
    uint64_t *w = NULL;
    int64_t *len = NULL;
    void *vals = NULL;
    if (ks_run_starts(c, &pl, words, pl.N, &st, &k))
        goto out;
    w = malloc(8 * (size_t)(k + 1));
    len = malloc(8 * (size_t)(k + 1));
    vals = malloc(8 * (size_t)(k + 1));
    if (kd_agree(c, (w && len && vals) ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        goto out;
    for (int64_t j = 0; j < k; j++)
        w[j] = pl.nstages ? words[0][st[j] - pl.lo] : 0;
    ks_decode(&pl, 0, w, k, vals);
    if (run_lengths(c, st, k, pl.N, len))
        goto out;
    MPI_Exscan(&k, &goff, 1, MPI_INT64_T, MPI_SUM, c->comm);
    if (c->rank == 0)
        goff = 0;
    MPI_Allreduce(&k, &U, 1, MPI_INT64_T, MPI_SUM, c->comm);
    kd_array *u = kd_new_array(c, a->dtype, U);
    if (!u || ks_to_block(c, vals, kd_dtype_size(a->dtype), goff, k, U, u->data))
        goto out;
    kd_result_array(c, "array", u);
    if (want_counts) {
        kd_array *cn = kd_new_array(c, KD_INT64, U);
        if (!cn || ks_to_block(c, len, 8, goff, k, U, cn->data))
            goto out;
        kd_result_array(c, "counts", cn);
    }
    rc = 0;
out:
    ks_free_words(words, pl.nstages, pl.n);
    free(st);
    free(w);
    free(len);
    free(vals);
    return rc;
}

/* ---- in1d --------------------------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Key words of a's values converted to dtype `to` (NumPy's common type of
 * the two arrays); ok[i] = 0 where the value is NaN (it equals nothing). */
static void common_words(const kd_array *a, kd_dtype to, uint64_t *k, uint8_t *ok)
{
    const int64_t n = a->n;
    memset(ok, 1, (size_t)n);
    if (to == KD_FLOAT64) {
        for (int64_t i = 0; i < n; i++) {
            double d;
            switch (a->dtype) {
            case KD_INT64: d = (double)((const int64_t *)a->data)[i]; break;
            case KD_UINT64: d = (double)((const uint64_t *)a->data)[i]; break;
            case KD_FLOAT64: d = ((const double *)a->data)[i]; break;
            default: d = ((const uint8_t *)a->data)[i]; break;
            }
            if (d != d)
                ok[i] = 0;
            k[i] = ks_word_f64(d);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (a->dtype) {
        case KD_INT64: k[i] = ks_word_i64(((const int64_t *)a->data)[i]); break;
        case KD_UINT64: k[i] = ((const uint64_t *)a->data)[i]; break;
        default: /* bool, promoted to `to` */
            k[i] = ((const uint8_t *)a->data)[i] + (to == KD_INT64 ? 0x8000000000000000ull : 0);
            break;
        }
    }
}

static inline int hash_rank(uint64_t k, int p)
{
    return (int)(((unsigned __int128)mix64(k) * (unsigned)p) >> 64);
}

/* Send the ok words to the rank their hash names. *recv (malloc'd) gets the
 * words this rank is responsible for, in source-rank order; if order != NULL
 * it gets, per sent item, the local index it came from (send order), and
 * scnt/rcnt the per-rank counts. */
static int hash_exchange(kd_cmd *c, const uint64_t *k, const uint8_t *ok, int64_t n,
                         uint64_t **recv, int64_t *nrecv, int64_t **order, int *scnt,
                         int *sdsp, int *rcnt, int *rdsp)
{
    const int p = c->nranks;
    int *dest = malloc(sizeof(int) * (size_t)(n + 1)), *fill = malloc(sizeof(int) * (size_t)p);
    uint64_t *send = malloc(8 * (size_t)(n + 1));
    int64_t *ord = malloc(8 * (size_t)(n + 1));
    uint64_t *rb = NULL;
    int rc = (!dest || !fill || !send || !ord) ? kd_fail(c, "MemoryError", "out of memory") : 0;
    if (kd_agree(c, rc))
        goto fail;
    memset(scnt, 0, sizeof(int) * (size_t)p);
    for (int64_t i = 0; i < n; i++) {
        dest[i] = ok[i] ? hash_rank(k[i], p) : -1;
        if (ok[i])
            scnt[dest[i]]++;
    }
    int64_t ro = kd_exchange_counts(c->comm, p, scnt, sdsp, rcnt, rdsp);
    rc = ro > INT_MAX ? kd_fail(c, "ValueError", "%s: over 2^31 values hashed to one rank",
                                c->cmd) : 0;
    if (!rc && !(rb = malloc(8 * (size_t)(ro + 1))))
        rc = kd_fail(c, "MemoryError", "out of memory");
    if (kd_agree(c, rc))
        goto fail;
    memcpy(fill, sdsp, sizeof(int) * (size_t)p);
    for (int64_t i = 0; i < n; i++)
        if (dest[i] >= 0) {
            int at = fill[dest[i]]++;
            send[at] = k[i];
            ord[at] = i;
        }
    MPI_Alltoallv(send, scnt, sdsp, MPI_UINT64_T, rb, rcnt, rdsp, MPI_UINT64_T, c->comm);
    free(dest);
    free(fill);
    free(send);
    if (order)
        *order = ord;
    else
        free(ord);
    *recv = rb;
    *nrecv = ro;
    return 0;
fail:
    free(dest);
    free(fill);
    free(send);
    free(ord);
    free(rb);
    return -1;
}

/* an open-addressing set of uint64 words */
typedef struct {
    uint64_t *key;
    uint8_t *used;
    uint64_t mask;
} wordset;

static int set_init(wordset *s, int64_t m)
{
    uint64_t cap = 16;
    while (cap < (uint64_t)m * 2)
        cap <<= 1;
    s->key = malloc(8 * cap);
    s->used = calloc(cap, 1);
    s->mask = cap - 1;
    return (s->key && s->used) ? 0 : -1;
}

static void set_add(wordset *s, uint64_t k)
{
    uint64_t h = mix64(k ^ 0x5851f42d4c957f2dull) & s->mask;
    while (s->used[h]) {
        if (s->key[h] == k)
            return;
        h = (h + 1) & s->mask;
    }
    s->used[h] = 1;
    s->key[h] = k;
}

static bool set_has(const wordset *s, uint64_t k)
{
    uint64_t h = mix64(k ^ 0x5851f42d4c957f2dull) & s->mask;
    while (s->used[h]) {
        if (s->key[h] == k)
            return true;
        h = (h + 1) & s->mask;
    }
    return false;
}

/* in1d(a, b, dtype, invert): bool array, a[i] in b (values compared in
 * `dtype`, NumPy's common type; NaN is in nothing) */
static int cmd_in1d(kd_cmd *c)
{
    kd_array *a, *b;
    kd_dtype t;
    bool invert = false;
    if (kd_arg_array(c, "a", &a) || kd_arg_array(c, "b", &b) || kd_arg_dtype(c, "dtype", &t) ||
        (kd_has_arg(c, "invert") && kd_arg_bool(c, "invert", &invert)))
        return -1;
    /* the common dtype must hold both (as numpy.result_type would give) */
    if ((t == KD_BOOL && (a->dtype != KD_BOOL || b->dtype != KD_BOOL)) ||
        (t == KD_INT64 && (a->dtype == KD_UINT64 || a->dtype == KD_FLOAT64 ||
                           b->dtype == KD_UINT64 || b->dtype == KD_FLOAT64)) ||
        (t == KD_UINT64 && (a->dtype == KD_INT64 || a->dtype == KD_FLOAT64 ||
                            b->dtype == KD_INT64 || b->dtype == KD_FLOAT64)))
        return kd_fail(c, "TypeError", "in1d: %s cannot hold both %s and %s values",
                       kd_dtype_name(t), kd_dtype_name(a->dtype), kd_dtype_name(b->dtype));
    const int p = c->nranks;
    int cnt[4][64], *buf = NULL;
    int *scnt, *sdsp, *rcnt, *rdsp;
    if (p <= 64) {
        scnt = cnt[0], sdsp = cnt[1], rcnt = cnt[2], rdsp = cnt[3];
    } else {
        buf = malloc(sizeof(int) * 4 * (size_t)p);
        if (kd_agree(c, buf ? 0 : kd_fail(c, "MemoryError", "out of memory"))) {
            free(buf); /* another rank failed */
            return -1;
        }
        scnt = buf, sdsp = buf + p, rcnt = buf + 2 * p, rdsp = buf + 3 * p;
    }
    int rc = -1;
    uint64_t *ka = malloc(8 * (size_t)(a->n + 1)), *kb = malloc(8 * (size_t)(b->n + 1));
    uint8_t *oka = malloc((size_t)a->n + 1), *okb = malloc((size_t)b->n + 1);
    uint64_t *rbw = NULL, *raw = NULL;
    int64_t nrb = 0, nra = 0, *order = NULL;
    uint8_t *ans = NULL, *back = NULL;
    wordset set = {0};
    if (kd_agree(c, (ka && kb && oka && okb) ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        goto out;
    common_words(a, t, ka, oka);
    common_words(b, t, kb, okb);
    if (hash_exchange(c, kb, okb, b->n, &rbw, &nrb, NULL, scnt, sdsp, rcnt, rdsp))
        goto out;
    if (kd_agree(c, set_init(&set, nrb) ? kd_fail(c, "MemoryError", "out of memory") : 0))
        goto out;
    for (int64_t i = 0; i < nrb; i++)
        set_add(&set, rbw[i]);
    if (hash_exchange(c, ka, oka, a->n, &raw, &nra, &order, scnt, sdsp, rcnt, rdsp))
        goto out;
    ans = malloc((size_t)nra + 1);
    int64_t nsent = 0;
    for (int r = 0; r < p; r++)
        nsent += scnt[r];
    back = malloc((size_t)nsent + 1);
    if (kd_agree(c, (ans && back) ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        goto out;
    for (int64_t i = 0; i < nra; i++)
        ans[i] = set_has(&set, raw[i]);
    MPI_Alltoallv(ans, rcnt, rdsp, MPI_UINT8_T, back, scnt, sdsp, MPI_UINT8_T, c->comm);
    kd_array *out = kd_new_array(c, KD_BOOL, a->size);
    if (!out)
        goto out;
    uint8_t *o = out->data;
    memset(o, invert, (size_t)a->n); /* NaN is in nothing */
    for (int64_t j = 0; j < nsent; j++)
        o[order[j]] = back[j] ^ invert;
    kd_result_array(c, "array", out);
    rc = 0;
out:
    free(buf);
    free(ka);
    free(kb);
    free(oka);
    free(okb);
    free(rbw);
    free(raw);
    free(order);
    free(ans);
    free(back);
    free(set.key);
    free(set.used);
    return rc;
}

/* ---- histogram ------------------------------------------------------------------------------ */

/* histogram(array, bins): (counts int64, edges float64) as numpy.histogram
 * with `bins` equal-width bins over [min, max] */
static int cmd_histogram(kd_cmd *c)
{
    kd_array *a;
    int64_t bins;
    if (kd_arg_array(c, "array", &a) || kd_arg_i64(c, "bins", &bins))
        return -1;
    if (bins < 1)
        return kd_fail(c, "ValueError", "`bins` must be positive, when an integer");
    if (bins > (int64_t)1 << 26)
        return kd_fail(c, "ValueError", "histogram: at most 2^26 bins (%lld asked)",
                       (long long)bins);
    if (a->dtype == KD_BOOL)
        return kd_fail(c, "TypeError", "histogram: boolean arrays have no bin width "
                       "(numpy refuses the subtraction too); convert with astype(int)");
    const int64_t n = a->n;
    double first, last, norm;
    /* global min and max, in the array's dtype */
    if (a->dtype == KD_FLOAT64) {
        const double *x = a->data;
        double mm[2] = {INFINITY, INFINITY}; /* min, -max */
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(x[i]))
                bad = x[i] != x[i] ? 2 : (bad ? bad : 1);
            mm[0] = x[i] < mm[0] ? x[i] : mm[0];
            mm[1] = -x[i] < mm[1] ? -x[i] : mm[1];
        }
        MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_DOUBLE, MPI_MIN, c->comm);
        MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, c->comm);
        if (bad == 2)
            return kd_fail(c, "ValueError", "autodetected range of [nan, nan] is not finite");
        if (bad == 1)
            return kd_fail(c, "ValueError", "autodetected range of [%g, %g] is not finite",
                           mm[0], -mm[1]);
        first = mm[0];
        last = -mm[1];
        if (a->size == 0) {
            first = 0, last = 1;
        } else if (first == last) {
            first -= 0.5;
            last += 0.5;
        }
        norm = (double)bins / (last - first);
    } else {
        /* int64 as sign-flipped words so one unsigned MIN/MAX serves both */
        bool sgn = a->dtype == KD_INT64;
        uint64_t mm[2] = {UINT64_MAX, UINT64_MAX}; /* min, ~max */
        const uint64_t *x = a->data, flip = sgn ? 0x8000000000000000ull : 0;
        for (int64_t i = 0; i < n; i++) {
            uint64_t k = x[i] ^ flip;
            mm[0] = k < mm[0] ? k : mm[0];
            mm[1] = ~k < mm[1] ? ~k : mm[1];
        }
        MPI_Allreduce(MPI_IN_PLACE, mm, 2, MPI_UINT64_T, MPI_MIN, c->comm);
        uint64_t mn = mm[0] ^ flip, mx = ~mm[1] ^ flip;
        double fmn = sgn ? (double)(int64_t)mn : (double)mn;
        double fmx = sgn ? (double)(int64_t)mx : (double)mx;
        if (a->size == 0) {
            first = 0, last = 1, norm = (double)bins;
        } else if (mn == mx) {
            first = fmn - 0.5;
            last = fmx + 0.5;
            norm = (double)bins / (last - first);
        } else {
            first = fmn;
            last = fmx;
            norm = (double)bins / (double)(mx - mn); /* numpy: unsigned difference */
        }
    }
    /* the edges, as numpy.linspace(first, last, bins + 1) */
    double *edge = malloc(8 * (size_t)(bins + 1));
    int64_t *cnt = calloc((size_t)bins, 8);
    if (kd_agree(c, (edge && cnt) ? 0 : kd_fail(c, "MemoryError", "out of memory"))) {
        free(edge);
        free(cnt);
        return -1;
    }
    double delta = last - first, step = delta / (double)bins;
    for (int64_t k = 0; k <= bins; k++)
        edge[k] = step != 0 ? (double)k * step + first : (double)k / (double)bins * delta + first;
    edge[bins] = last;
#define HIST_LOOP(T)                                                                   \
    do {                                                                               \
        const T *x = a->data;                                                          \
        for (int64_t i = 0; i < n; i++) {                                              \
            double v = (double)x[i];                                                   \
            double f = (v - first) * norm;                                             \
            int64_t j = f >= (double)bins ? bins : (f > 0 ? (int64_t)f : 0);           \
            if (j == bins)                                                             \
                j--;                                                                   \
            if (v < edge[j] && j > 0)                                                  \
                j--;                                                                   \
            if (j != bins - 1 && v >= edge[j + 1])                                     \
                j++;                                                                   \
            cnt[j]++;                                                                  \
        }                                                                              \
    } while (0)
    switch (a->dtype) {
    case KD_INT64: HIST_LOOP(int64_t); break;
    case KD_UINT64: HIST_LOOP(uint64_t); break;
    default: HIST_LOOP(double); break;
    }
#undef HIST_LOOP
    MPI_Allreduce(MPI_IN_PLACE, cnt, (int)bins, MPI_INT64_T, MPI_SUM, c->comm);
    kd_array *h = kd_new_array(c, KD_INT64, bins);
    kd_array *e = h ? kd_new_array(c, KD_FLOAT64, bins + 1) : NULL;
    if (h && e) {
        memcpy(h->data, cnt + h->lo, (size_t)h->n * 8);
        memcpy(e->data, edge + e->lo, (size_t)e->n * 8);
        kd_result_array(c, "hist", h);
        kd_result_array(c, "edges", e);
    }
    free(edge);
    free(cnt);
    return (h && e) ? 0 : -1;
}

void kd_register_sort(void)
{
    kd_register("argsort", cmd_argsort);
    kd_register("coargsort", cmd_argsort);
    kd_register("sort", cmd_sort);
    kd_register("unique", cmd_unique);
    kd_register("in1d", cmd_in1d);
    kd_register("histogram", cmd_histogram);
    kd_register_groupby();
}
