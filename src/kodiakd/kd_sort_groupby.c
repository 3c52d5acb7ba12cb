/* SPDX-License-Identifier: Apache-2.0 */
/* kd_sort_groupby.c — group-by: grouping rows of one or more key arrays
 * (groupby), reducing another array per group (groupby_reduce) and sending
 * per-group values back to the rows (groupby_broadcast), as Arkouda's
 * GroupBy with pandas' results.
 *
 * groupby sorts the keys with the engine of kd_sort_core.c (stable, so the
 * rows of a group keep their original order) and finds where the sorted rows
 * change: those positions are the segments. The unique keys are decoded from
 * the sorted key words, so no gather is needed for them.
 *
 * A reduction gathers values[permutation] into the block layout, marks the
 * segment starts in that layout, and reduces each rank's pieces of groups
 * locally. A group may span ranks: every rank publishes the partial of its
 * first and last piece (one Allgather), the first rank holding a group
 * combines the partials of the later ranks in rank order, and the owned
 * results move to the block layout of the result. Rows whose float key is
 * NaN are dropped when dropna is set (pandas' and Arkouda's default): they
 * sort after all others and the permutation stops before them. */
#include "kd_sort.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- groupby ------------------------------------------------------------------------------ */

/* groupby(keys, dropna) -> permutation, segments, key_0.. (unique keys),
 * ngroups, nkeys */
static int cmd_groupby(kd_cmd *c)
{
    kd_array **keys;
    int nk;
    bool dropna = true;
    if (kd_arg_array_list(c, "keys", &keys, &nk))
        return -1;
    if (kd_has_arg(c, "dropna") && kd_arg_bool(c, "dropna", &dropna)) {
        free(keys);
        return -1;
    }
    if (nk == 0 || nk >= KS_MAX_KEYS) {
        free(keys);
        return kd_fail(c, "ValueError", "groupby: between 1 and %d key arrays", KS_MAX_KEYS - 1);
    }
    ks_plan pl;
    int rc = ks_plan_make(c, &pl, keys, nk);
    if (rc) {
        free(keys);
        return -1;
    }
    const int64_t N = pl.N, n = pl.n, lo = pl.lo;
    /* NaN keys: a leading flag key sorts their rows last */
    int64_t ndrop = 0;
    uint8_t *flag = NULL;
    int off = 0; /* plan index of user key 0 */
    bool any_nan = false;
    for (int j = 0; j < nk; j++)
        any_nan |= pl.has_nan[j];
    if (dropna && any_nan) {
        flag = malloc((size_t)n + 1);
        if (kd_agree(c, flag ? 0 : kd_fail(c, "MemoryError", "out of memory"))) {
            free(keys);
            return -1;
        }
        memset(flag, 0, (size_t)n);
        for (int j = 0; j < nk; j++)
            if (keys[j]->dtype == KD_FLOAT64) {
                const double *x = keys[j]->data;
                for (int64_t i = 0; i < n; i++)
                    flag[i] |= x[i] != x[i];
            }
        int64_t mine = 0;
        for (int64_t i = 0; i < n; i++)
            mine += flag[i];
        MPI_Allreduce(&mine, &ndrop, 1, MPI_INT64_T, MPI_SUM, c->comm);
        ks_src src[KS_MAX_KEYS];
        src[0].t = KD_BOOL;
        src[0].data = flag;
        for (int j = 0; j < nk; j++) {
            src[j + 1].t = keys[j]->dtype;
            src[j + 1].data = keys[j]->data;
        }
        off = 1;
        if (ks_plan_make_src(c, &pl, src, nk + 1, N)) {
            free(keys);
            free(flag);
            return -1;
        }
    }
    const int64_t Nk = N - ndrop;
    int64_t *idx = NULL, *st = NULL, k = 0, goff = 0, G = 0;
    uint64_t *words[KS_MAX_KEYS] = {0}, *w = NULL;
    void *vals = NULL;
    rc = -1;
    if (ks_run(c, &pl, &idx, words) || ks_run_starts(c, &pl, words, Nk, &st, &k))
        goto out;
    MPI_Exscan(&k, &goff, 1, MPI_INT64_T, MPI_SUM, c->comm);
    if (c->rank == 0)
        goff = 0;
    MPI_Allreduce(&k, &G, 1, MPI_INT64_T, MPI_SUM, c->comm);
    kd_array *seg = kd_new_array(c, KD_INT64, G);
    if (!seg || ks_to_block(c, st, 8, goff, k, G, seg->data))
        goto out;
    w = malloc(8 * (size_t)(k + 1));
    vals = malloc(8 * (size_t)(k + 1));
    if (kd_agree(c, (w && vals) ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        goto out;
    for (int j = 0; j < nk; j++) {
        int pj = j + off, s = pl.stage[pj];
        for (int64_t i = 0; i < k; i++)
            w[i] = s >= 0 ? words[s][st[i] - lo] : 0;
        ks_decode(&pl, pj, w, k, vals);
        kd_array *u = kd_new_array(c, keys[j]->dtype, G);
        if (!u || ks_to_block(c, vals, kd_dtype_size(keys[j]->dtype), goff, k, G, u->data))
            goto out;
        char name[32];
        snprintf(name, sizeof name, "key_%d", j);
        kd_result_array(c, name, u);
    }
    kd_array *perm = kd_new_array(c, KD_INT64, Nk);
    if (!perm)
        goto out;
    if (ndrop == 0) { /* the sort's buffer becomes the array's */
        kd_free_bytes(perm->data, (size_t)perm->n * 8);
        perm->data = idx;
        idx = NULL;
    } else {
        int64_t cnt = Nk - lo < 0 ? 0 : (Nk - lo < n ? Nk - lo : n);
        if (ks_to_block(c, idx, 8, lo, cnt, Nk, perm->data))
            goto out;
    }
    kd_result_array(c, "permutation", perm);
    kd_result_array(c, "segments", seg);
    kd_result_i64(c, "ngroups", G);
    kd_result_i64(c, "nkeys", nk);
    rc = 0;
out:
    ks_free_words(words, pl.nstages, n);
    if (idx)
        kd_free_bytes(idx, (size_t)n * 8);
    free(keys);
    free(flag);
    free(st);
    free(w);
    free(vals);
    return rc;
}

/* ---- reductions ------------------------------------------------------------------------------ */

enum { OP_SUM, OP_MEAN, OP_MIN, OP_MAX, OP_COUNT, OP_SIZE, OP_FIRST, OP_NUNIQUE, OP_PROD,
       OP_N };
static const char *op_names[OP_N] = {"sum", "mean", "min", "max", "count", "size", "first",
                                     "nunique", "prod"};

/* The reduction of one piece of a group (the rows of the group one rank
 * holds), or of several pieces combined. */
typedef struct {
    union { int64_t i; uint64_t u; double f; } v; /* sum, min, max or first */
    int64_t cnt; /* rows that took part (non-NaN rows for floats) */
} part;

/* Reduce the pieces of the local rows: a piece starts at row 0 and at every
 * row with gs[i] set. Returns the number of pieces. */
static int64_t reduce_pieces(const void *pv, kd_dtype t, int op, const uint8_t *gs, int64_t n,
                             part *pt)
{
    int64_t k = -1;
    const double one = 1.0;
    uint64_t one_bits;
    memcpy(&one_bits, &one, sizeof one_bits);
#define PIECES(T, STEP)                                         \
    do {                                                        \
        const T *x = pv;                                        \
        for (int64_t i = 0; i < n; i++) {                       \
            if (i == 0 || gs[i]) {                              \
                k++;                                            \
                pt[k].v.u = 0;                                  \
                if (op == OP_PROD) /* the empty product: 1 */   \
                    pt[k].v.u = t == KD_FLOAT64 ? one_bits : 1; \
                pt[k].cnt = 0;                                  \
            }                                                   \
            part *q = &pt[k];                                   \
            T xv = x[i];                                        \
            (void)xv;                                           \
            STEP;                                               \
        }                                                       \
    } while (0)
#define BY_DTYPE(INT_STEP, UINT_STEP, F_STEP, B_STEP)          \
    switch (t) {                                                \
    case KD_INT64: PIECES(int64_t, INT_STEP); break;            \
    case KD_UINT64: PIECES(uint64_t, UINT_STEP); break;         \
    case KD_FLOAT64: PIECES(double, F_STEP); break;             \
    default: PIECES(uint8_t, B_STEP); break;                    \
    }
    if (op == OP_SIZE || !pv) {
        for (int64_t i = 0; i < n; i++) {
            if (i == 0 || gs[i]) {
                k++;
                pt[k].v.u = 0;
                pt[k].cnt = 0;
            }
            pt[k].cnt++;
        }
        return k + 1;
    }
    switch (op) {
    case OP_SUM:
    case OP_NUNIQUE: /* nunique: a sum of "new distinct value" flags */
        BY_DTYPE((q->v.u += (uint64_t)xv, q->cnt++), (q->v.u += xv, q->cnt++),
                 (xv == xv ? (q->v.f += xv, q->cnt++) : 0), (q->v.i += xv, q->cnt++));
        break;
    case OP_MEAN:
        BY_DTYPE((q->v.f += (double)xv, q->cnt++), (q->v.f += (double)xv, q->cnt++),
                 (xv == xv ? (q->v.f += xv, q->cnt++) : 0), (q->v.f += xv, q->cnt++));
        break;
    case OP_MIN:
        BY_DTYPE(((q->cnt == 0 || xv < q->v.i) ? (q->v.i = xv) : 0, q->cnt++),
                 ((q->cnt == 0 || xv < q->v.u) ? (q->v.u = xv) : 0, q->cnt++),
                 (xv == xv ? ((q->cnt == 0 || xv < q->v.f) ? (q->v.f = xv) : 0, q->cnt++) : 0),
                 ((q->cnt == 0 || xv < q->v.u) ? (q->v.u = xv) : 0, q->cnt++));
        break;
    case OP_MAX:
        BY_DTYPE(((q->cnt == 0 || xv > q->v.i) ? (q->v.i = xv) : 0, q->cnt++),
                 ((q->cnt == 0 || xv > q->v.u) ? (q->v.u = xv) : 0, q->cnt++),
                 (xv == xv ? ((q->cnt == 0 || xv > q->v.f) ? (q->v.f = xv) : 0, q->cnt++) : 0),
                 ((q->cnt == 0 || xv > q->v.u) ? (q->v.u = xv) : 0, q->cnt++));
        break;
    case OP_PROD: /* integers wrap, as NumPy's and pandas' int64 */
        BY_DTYPE((q->v.u *= (uint64_t)xv, q->cnt++), (q->v.u *= xv, q->cnt++),
                 (xv == xv ? (q->v.f *= xv, q->cnt++) : 0), (q->v.u *= xv, q->cnt++));
        break;
    case OP_COUNT:
        BY_DTYPE(q->cnt++, q->cnt++, q->cnt += xv == xv, q->cnt++);
        break;
    case OP_FIRST:
        BY_DTYPE((q->cnt++ == 0 ? (q->v.i = xv) : 0), (q->cnt++ == 0 ? (q->v.u = xv) : 0),
                 (q->cnt++ == 0 ? (q->v.f = xv) : 0), (q->cnt++ == 0 ? (q->v.u = xv) : 0));
        break;
    }
#undef BY_DTYPE
#undef PIECES
    return k + 1;
}

/* a = a then b (b's rows come after a's) */
static void combine(part *a, const part *b, kd_dtype t, int op)
{
    switch (op) {
    case OP_SUM:
    case OP_NUNIQUE:
        if (t == KD_FLOAT64)
            a->v.f += b->v.f;
        else
            a->v.u += b->v.u;
        break;
    case OP_MEAN:
        a->v.f += b->v.f;
        break;
    case OP_PROD:
        if (t == KD_FLOAT64)
            a->v.f *= b->v.f;
        else
            a->v.u *= b->v.u;
        break;
    case OP_MIN:
    case OP_MAX:
        if (b->cnt && a->cnt) {
            bool less = t == KD_INT64 ? b->v.i < a->v.i
                      : t == KD_FLOAT64 ? b->v.f < a->v.f : b->v.u < a->v.u;
            bool more = t == KD_INT64 ? b->v.i > a->v.i
                      : t == KD_FLOAT64 ? b->v.f > a->v.f : b->v.u > a->v.u;
            if (op == OP_MIN ? less : more)
                a->v = b->v;
        } else if (b->cnt) {
            a->v = b->v;
        }
        break;
    case OP_FIRST:
        if (!a->cnt)
            a->v = b->v;
        break;
    default:
        break;
    }
    a->cnt += b->cnt;
}

/* the result dtype of op on values of dtype t (NumPy/pandas) */
static kd_dtype result_dtype(int op, kd_dtype t)
{
    switch (op) {
    case OP_SUM: case OP_PROD: return t == KD_BOOL ? KD_INT64 : t;
    case OP_MEAN: return KD_FLOAT64;
    case OP_MIN: case OP_MAX: case OP_FIRST: return t;
    default: return KD_INT64;
    }
}

/* one result element from a combined part */
static void finish(const part *q, kd_dtype t, int op, void *out)
{
    kd_dtype rt = result_dtype(op, t);
    if (op == OP_COUNT || op == OP_SIZE) {
        *(int64_t *)out = q->cnt;
    } else if (op == OP_NUNIQUE) {
        *(int64_t *)out = q->v.i;
    } else if (op == OP_MEAN) {
        *(double *)out = q->cnt ? q->v.f / (double)q->cnt : NAN;
    } else if (rt == KD_FLOAT64) {
        *(double *)out = (q->cnt || op == OP_SUM || op == OP_PROD) ? q->v.f : NAN;
    } else if (rt == KD_BOOL) {
        *(uint8_t *)out = (uint8_t)(q->v.u != 0);
    } else {
        *(uint64_t *)out = q->v.u;
    }
}

/* Continue the float accumulation of a group's first piece (rows 0.. up to
 * the next group start) from acc, with reduce_pieces' rules for sum/mean
 * (prod: multiply). */
static double continue_acc(const void *pv, kd_dtype t, int op, const uint8_t *gs, int64_t n,
                           double acc)
{
    for (int64_t i = 0; i < n && (i == 0 || !gs[i]); i++) {
        double x;
        switch (t) {
        case KD_INT64: x = (double)((const int64_t *)pv)[i]; break;
        case KD_UINT64: x = (double)((const uint64_t *)pv)[i]; break;
        case KD_FLOAT64: x = ((const double *)pv)[i]; break;
        default: x = ((const uint8_t *)pv)[i]; break;
        }
        if (x != x)
            continue;
        if (op == OP_PROD)
            acc *= x;
        else
            acc += x;
    }
    return acc;
}

/* Collective: reduce the permuted values pv (this rank's block of Nk rows;
 * NULL for sizes) per group, where gs marks the rows that start a group
 * (block layout) and G is the number of groups; result into out (G items). */
static int segmented_reduce(kd_cmd *c, const void *pv, kd_dtype t, int op, const uint8_t *gs,
                            int64_t n, int64_t G, kd_array *out)
{
    const int p = c->nranks;
    part *pt = malloc(sizeof *pt * (size_t)(n + 1));
    /* per rank: npieces, first gid, first part (v, cnt), last gid, last part */
    int64_t rec[7], *all = malloc(sizeof rec * (size_t)p);
    size_t ow = kd_dtype_size(out->dtype);
    uint8_t *res = malloc(ow * (size_t)(n + 1));
    int rc = (!pt || !all || !res) ? kd_fail(c, "MemoryError", "out of memory") : 0;
    if (kd_agree(c, rc))
        goto out;
    int64_t np = reduce_pieces(pv, t, op, gs, n, pt);
    int64_t nflag = 0, before = 0;
    for (int64_t i = 0; i < n; i++)
        nflag += gs[i];
    MPI_Exscan(&nflag, &before, 1, MPI_INT64_T, MPI_SUM, c->comm);
    if (c->rank == 0)
        before = 0;
    int64_t gfirst = n > 0 ? (gs[0] ? before : before - 1) : -1;
    /* Float sums and products (of float64, and every mean) must not depend on the
     * number of ranks: a group's rows are added in order from its first
     * row, across rank boundaries. Each rank continues the group it starts
     * in from the running value the previous rank hands it (a chain of
     * small messages), so its first piece holds the running value so far,
     * and the group's owner takes the last such value instead of adding
     * partials. */
    bool chained = p > 1 && (((op == OP_SUM || op == OP_PROD) && t == KD_FLOAT64) ||
                             op == OP_MEAN);
    if (chained) {
        int64_t carry[3] = {-1, 0, 0}, send[3]; /* group id, value bits, valid */
        if (c->rank > 0)
            MPI_Recv(carry, 3, MPI_INT64_T, c->rank - 1, KD_TAG_SEGMENT, c->comm, MPI_STATUS_IGNORE);
        if (np && carry[2] && carry[0] == gfirst && !gs[0]) {
            double acc;
            memcpy(&acc, &carry[1], sizeof acc);
            pt[0].v.f = continue_acc(pv, t, op, gs, n, acc);
        }
        if (np) {
            send[0] = gfirst + np - 1;
            memcpy(&send[1], &pt[np - 1].v.f, sizeof(double));
            send[2] = 1;
        } else {
            memcpy(send, carry, sizeof send);
        }
        if (c->rank < p - 1)
            MPI_Send(send, 3, MPI_INT64_T, c->rank + 1, KD_TAG_SEGMENT, c->comm);
    }
    memset(rec, 0, sizeof rec);
    rec[0] = np;
    if (np) {
        rec[1] = gfirst;
        rec[2] = pt[0].v.i;
        rec[3] = pt[0].cnt;
        rec[4] = gfirst + np - 1;
        rec[5] = pt[np - 1].v.i;
        rec[6] = pt[np - 1].cnt;
    }
    MPI_Allgather(rec, 7, MPI_INT64_T, all, 7, MPI_INT64_T, c->comm);
    int64_t own_from = 0;
    if (np) {
        for (int r = c->rank - 1; r >= 0; r--)
            if (all[7 * r]) {
                if (all[7 * r + 4] == gfirst)
                    own_from = 1; /* an earlier rank holds the group's start */
                break;
            }
        if (own_from < np) { /* my last piece may go on on later ranks */
            int64_t g = gfirst + np - 1;
            for (int r = c->rank + 1; r < p; r++) {
                if (!all[7 * r])
                    continue;
                if (all[7 * r + 1] != g)
                    break;
                part b;
                b.v.i = all[7 * r + 2];
                b.cnt = all[7 * r + 3];
                if (chained) { /* b holds the running value: it replaces */
                    pt[np - 1].v = b.v;
                    pt[np - 1].cnt += b.cnt;
                } else {
                    combine(&pt[np - 1], &b, t, op);
                }
                if (all[7 * r] > 1)
                    break;
            }
        }
    }
    int64_t nown = np - own_from;
    for (int64_t q = 0; q < nown; q++)
        finish(&pt[own_from + q], t, op, res + (size_t)q * ow);
    rc = ks_to_block(c, res, ow, np ? gfirst + own_from : 0, nown, G, out->data);
out:
    free(pt);
    free(all);
    free(res);
    return c->failed ? -1 : 0;
}

/* Collective: check the segments of a grouping of Nk rows (strictly
 * increasing, starting at 0, below Nk) and mark their rows: *gs (malloc'd,
 * this rank's block of Nk rows) is 1 where a group starts. */
static int mark_starts(kd_cmd *c, kd_array *seg, int64_t Nk, uint8_t **gs)
{
    const int64_t *s = seg->data;
    int rc = 0;
    for (int64_t i = 0; i < seg->n && !rc; i++)
        if (s[i] < 0 || s[i] >= Nk || (i > 0 && s[i] <= s[i - 1]))
            rc = -1;
    /* across ranks: each block's first must follow the previous block's last */
    int64_t mine[3] = {seg->n > 0, seg->n ? s[0] : 0, seg->n ? s[seg->n - 1] : 0};
    int64_t *all = malloc(sizeof mine * (size_t)c->nranks);
    int64_t lo, hi;
    kd_block(Nk, c->nranks, c->rank, &lo, &hi);
    uint8_t *g = calloc((size_t)(hi - lo) + 1, 1), *ones = malloc((size_t)seg->n + 1);
    if (!all || !g || !ones) {
        free(all);
        free(g);
        free(ones);
        return kd_agree(c, kd_fail(c, "MemoryError", "out of memory"));
    }
    MPI_Allgather(mine, 3, MPI_INT64_T, all, 3, MPI_INT64_T, c->comm);
    int64_t last = -1;
    bool any = false;
    for (int r = 0; r < c->nranks && !rc; r++)
        if (all[3 * r]) {
            if ((!any && all[3 * r + 1] != 0) || all[3 * r + 1] <= last)
                rc = -1;
            any = true;
            last = all[3 * r + 2];
        }
    if (!any && seg->size == 0 && Nk > 0)
        rc = -1;
    if (kd_agree(c, rc ? kd_fail(c, "ValueError", "segments must start at 0 and increase "
                                 "strictly below the number of grouped rows (%lld)",
                                 (long long)Nk) : 0)) {
        free(all);
        free(g);
        free(ones);
        return -1;
    }
    memset(ones, 1, (size_t)seg->n);
    rc = ks_scatter(c, g, 1, Nk, s, ones, seg->n);
    free(all);
    free(ones);
    if (rc) {
        free(g);
        return -1;
    }
    *gs = g;
    return 0;
}

/* Collective: the rank's block of values[perm] (kd_alloc_bytes). */
static void *permuted(kd_cmd *c, kd_array *perm, kd_array *values)
{
    size_t w = kd_dtype_size(values->dtype);
    void *pv = kd_alloc_bytes(w * (size_t)perm->n + 8);
    if (kd_agree(c, pv ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        return NULL;
    if (ks_gather(c, values->data, w, values->size, perm->data, perm->n, pv, true)) {
        kd_free_bytes(pv, w * (size_t)perm->n + 8);
        return NULL;
    }
    return pv;
}

/* Collective: flags, in the rows' order, of the rows that bring a new
 * non-NaN value to their group: the rows sorted by (group, value). */
static int distinct_flags(kd_cmd *c, const void *pv, kd_dtype t, const uint8_t *gs,
                          int64_t Nk, uint8_t *flags)
{
    int64_t lo, hi, n, nflag = 0, before = 0;
    kd_block(Nk, c->nranks, c->rank, &lo, &hi);
    n = hi - lo;
    int64_t *gid = kd_alloc_bytes((size_t)n * 8 + 8);
    if (kd_agree(c, gid ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        return -1;
    for (int64_t i = 0; i < n; i++)
        nflag += gs[i];
    MPI_Exscan(&nflag, &before, 1, MPI_INT64_T, MPI_SUM, c->comm);
    if (c->rank == 0)
        before = 0;
    int64_t g = before - 1;
    for (int64_t i = 0; i < n; i++) {
        g += gs[i];
        gid[i] = g;
    }
    ks_src src[2] = {{KD_INT64, gid}, {t, pv}};
    ks_plan pl;
    uint64_t *words[KS_MAX_KEYS] = {0}, *w = NULL;
    int64_t *st = NULL, k = 0;
    void *val = NULL;
    int rc = -1;
    if (ks_plan_make_src(c, &pl, src, 2, Nk) || ks_run(c, &pl, NULL, words) ||
        ks_run_starts(c, &pl, words, Nk, &st, &k))
        goto out;
    memset(flags, 0, (size_t)n);
    /* a run of equal (group, value) rows counts unless its value is NaN */
    w = malloc(8 * (size_t)(k + 1));
    val = malloc(8 * (size_t)(k + 1));
    if (kd_agree(c, (w && val) ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        goto out;
    int s = pl.stage[1];
    for (int64_t j = 0; j < k; j++)
        w[j] = s >= 0 ? words[s][st[j] - lo] : 0;
    ks_decode(&pl, 1, w, k, val);
    for (int64_t j = 0; j < k; j++)
        flags[st[j] - lo] = t == KD_FLOAT64 ? !isnan(((double *)val)[j]) : 1;
    rc = 0;
out:
    ks_free_words(words, pl.nstages, n);
    kd_free_bytes(gid, (size_t)n * 8 + 8);
    free(st);
    free(w);
    free(val);
    return rc;
}

/* groupby_reduce(permutation, segments, op[, values]) -> array */
static int cmd_groupby_reduce(kd_cmd *c)
{
    kd_array *perm, *seg, *values = NULL;
    const char *opname;
    if (kd_arg_array(c, "permutation", &perm) || kd_arg_array(c, "segments", &seg) ||
        kd_arg_str(c, "op", &opname))
        return -1;
    int op = -1;
    for (int i = 0; i < OP_N; i++)
        if (!strcmp(opname, op_names[i]))
            op = i;
    if (op < 0)
        return kd_fail(c, "ValueError", "groupby: unsupported reduction '%.40s' (sum, mean, "
                       "min, max, count, size, first, nunique)", opname);
    if (perm->dtype != KD_INT64 || seg->dtype != KD_INT64)
        return kd_fail(c, "TypeError", "groupby: permutation and segments must be int64");
    /* size reads no values, but a name given must still name an array */
    if ((op != OP_SIZE || kd_has_arg(c, "values")) && kd_arg_array(c, "values", &values))
        return -1;
    if (op == OP_SIZE)
        values = NULL;
    kd_dtype t = values ? values->dtype : KD_INT64;
    uint8_t *gs = NULL;
    void *pv = NULL;
    int rc = -1;
    if (mark_starts(c, seg, perm->size, &gs))
        return -1;
    if (values && !(pv = permuted(c, perm, values)))
        goto out;
    if (op == OP_NUNIQUE) {
        uint8_t *fl = kd_alloc_bytes((size_t)perm->n + 8);
        if (kd_agree(c, fl ? 0 : kd_fail(c, "MemoryError", "out of memory")))
            goto out;
        if (distinct_flags(c, pv, t, gs, perm->size, fl)) {
            kd_free_bytes(fl, (size_t)perm->n + 8);
            goto out;
        }
        kd_free_bytes(pv, kd_dtype_size(t) * (size_t)perm->n + 8);
        pv = fl;
        t = KD_BOOL;
    }
    kd_array *out = kd_new_array(c, result_dtype(op, values ? values->dtype : KD_INT64),
                                 seg->size);
    if (!out || segmented_reduce(c, pv, t, op, gs, perm->n, seg->size, out))
        goto out;
    kd_result_array(c, "array", out);
    rc = 0;
out:
    free(gs);
    if (pv)
        kd_free_bytes(pv, kd_dtype_size(t) * (size_t)perm->n + 8);
    return rc;
}

/* groupby_broadcast(permutation, segments, values, permute, length) -> array:
 * each grouped row gets its group's value; with permute the rows come back
 * in their original order (length rows; rows dropped from the grouping get
 * 0, or NaN for float64) */
static int cmd_groupby_broadcast(kd_cmd *c)
{
    kd_array *perm, *seg, *values;
    bool permute = true;
    int64_t length;
    if (kd_arg_array(c, "permutation", &perm) || kd_arg_array(c, "segments", &seg) ||
        kd_arg_array(c, "values", &values) || kd_arg_bool(c, "permute", &permute) ||
        kd_arg_i64(c, "length", &length))
        return -1;
    if (perm->dtype != KD_INT64 || seg->dtype != KD_INT64)
        return kd_fail(c, "TypeError", "groupby: permutation and segments must be int64");
    if (values->size != seg->size)
        return kd_fail(c, "ValueError", "broadcast: %lld values for %lld groups",
                       (long long)values->size, (long long)seg->size);
    if (length < perm->size)
        return kd_fail(c, "ValueError", "broadcast: length %lld is below the %lld grouped "
                       "rows", (long long)length, (long long)perm->size);
    uint8_t *gs = NULL;
    if (mark_starts(c, seg, perm->size, &gs))
        return -1;
    const int64_t n = perm->n;
    size_t w = kd_dtype_size(values->dtype);
    int64_t nflag = 0, before = 0, *gid = malloc(8 * (size_t)(n + 1));
    uint8_t *pv = malloc(w * (size_t)(n + 1));
    int rc = -1;
    if (kd_agree(c, (gid && pv) ? 0 : kd_fail(c, "MemoryError", "out of memory")))
        goto out;
    for (int64_t i = 0; i < n; i++)
        nflag += gs[i];
    MPI_Exscan(&nflag, &before, 1, MPI_INT64_T, MPI_SUM, c->comm);
    if (c->rank == 0)
        before = 0;
    int64_t g = before - 1;
    for (int64_t i = 0; i < n; i++) {
        g += gs[i];
        gid[i] = g;
    }
    if (ks_gather(c, values->data, w, values->size, gid, n, pv, false))
        goto out;
    kd_array *out;
    if (!permute) {
        if (!(out = kd_new_array(c, values->dtype, perm->size)))
            goto out;
        memcpy(out->data, pv, w * (size_t)n);
    } else {
        const int64_t *pi = perm->data;
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            bad |= pi[i] < 0 || pi[i] >= length;
        if (kd_agree(c, bad ? kd_fail(c, "IndexError", "broadcast: the permutation points "
                                      "outside the %lld rows", (long long)length) : 0))
            goto out;
        if (!(out = kd_new_array(c, values->dtype, length)))
            goto out;
        if (values->dtype == KD_FLOAT64)
            for (int64_t i = 0; i < out->n; i++)
                ((double *)out->data)[i] = NAN;
        else
            memset(out->data, 0, w * (size_t)out->n);
        if (ks_scatter(c, out->data, w, length, pi, pv, n))
            goto out;
    }
    kd_result_array(c, "array", out);
    rc = 0;
out:
    free(gs);
    free(gid);
    free(pv);
    return rc;
}

void kd_register_groupby(void)
{
    kd_register("groupby", cmd_groupby);
    kd_register("groupby_reduce", cmd_groupby_reduce);
    kd_register("groupby_broadcast", cmd_groupby_broadcast);
}
