/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_index.c — pdarray[...] and pdarray[...] = ... on the server: one
 * element, slices with any step, boolean masks, and integer index arrays
 * (gather and scatter with random indices), with NumPy's semantics.
 *
 * Every array is block-distributed (kd_block), so a result of k elements is
 * spread the same way as any other array of k elements. Slices and masks
 * select, on each rank, a run of consecutive elements of the result: rank r
 * holds result elements [from[r].lo, from[r].hi) before the move and wants
 * [to[r].lo, to[r].hi) after it. Every rank can work out every other rank's
 * pieces, so one MPI_Alltoallv moves everything to its place with no count
 * exchange and no reordering afterwards (move_pieces).
 *
 * Integer index arrays need a real all-to-all: each rank buckets its
 * indices by owner (a counting sort: count, prefix sums, place), exchanges
 * the counts (MPI_Alltoall) and the indices as offsets into the owner's
 * block (MPI_Alltoallv, 32-bit when every block is under 2^32 elements),
 * the owner answers with the values (MPI_Alltoallv back) and each rank puts
 * them back in index order by walking its owners again with one cursor per
 * rank. Gathers run in rounds of at most GATHER_CHUNK indices per rank, so
 * temporaries stay bounded and every MPI count fits an int.
 *
 * NumPy's rules kept here:
 *   - negative indices count from the end; any index out of range is an
 *     IndexError ("index 10 is out of bounds for axis 0 with size 10") and
 *     nothing is written, since every index is checked (and the ranks agree)
 *     before any data moves;
 *   - uint64 index arrays are read as int64, as NumPy converts them to intp:
 *     2**64 - 1 means -1, the last element;
 *   - a[idx] = values with repeated indices keeps the value that comes last
 *     in index order (owners apply updates source rank by source rank, each
 *     in index order, in a single round);
 *   - values are cast to the target's dtype as ndarray.astype does (unsafe
 *     casting): float to int truncates, NaN and out-of-range floats give
 *     INT64_MIN, int64 and uint64 wrap into each other;
 *   - a value array of one element is broadcast to every selected element. */
#include "kd.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* indices per rank per gather round: bounds the temporaries (~24 bytes per
 * index) and keeps each rank's receive total under 2^31 */
#define GATHER_CHUNK ((int64_t)1 << 22)

/* ---- small helpers ----------------------------------------------------------------- */

static int fail_oom(kd_cmd *c, size_t bytes)
{
    return kd_fail(c, "MemoryError", "%s: rank %d is out of memory for %zu bytes of "
                   "temporaries", c->cmd, c->rank, bytes);
}

/* Grow a kd_alloc_bytes buffer to at least `need` bytes (contents dropped). */
static int grow(kd_cmd *c, void **p, size_t *cap, size_t need)
{
    if (need <= *cap && *p)
        return 0;
    kd_free_bytes(*p, *cap);
    *p = kd_alloc_bytes(need);
    *cap = *p ? need : 0;
    return *p ? 0 : fail_oom(c, need);
}

static void release(void **p, size_t *cap)
{
    kd_free_bytes(*p, *cap);
    *p = NULL;
    *cap = 0;
}

static int fail_index(kd_cmd *c, int64_t i, int64_t size)
{
    return kd_fail(c, "IndexError", "index %lld is out of bounds for axis 0 with size %lld",
                   (long long)i, (long long)size);
}

/* floor(a / b) for b > 0, without overflow */
static int64_t floordiv(__int128 a, __int128 b)
{
    __int128 q = a / b;
    if (a % b != 0 && a < 0)
        q--;
    return (int64_t)q;
}

/* Collective: element i (already in range) of `a`, as 8 bytes on every rank
 * (a bool in the first byte). */
static uint64_t fetch_element(kd_cmd *c, const kd_array *a, int64_t i)
{
    uint64_t v = 0;
    int owner = kd_owner(a->size, c->nranks, i);
    if (owner == c->rank)
        memcpy(&v, (const char *)a->data + (size_t)(i - a->lo) * kd_dtype_size(a->dtype),
               kd_dtype_size(a->dtype));
    MPI_Bcast(&v, 8, MPI_BYTE, owner, c->comm);
    return v;
}

static void scalar_from_bits(kd_dtype t, uint64_t v, kd_scalar *s)
{
    s->dtype = t;
    switch (t) {
    case KD_INT64: memcpy(&s->v.i, &v, 8); break;
    case KD_UINT64: s->v.u = v; break;
    case KD_FLOAT64: memcpy(&s->v.f, &v, 8); break;
    default: s->v.b = (v & 0xff) != 0; break;
    }
}

/* ---- moving runs of a sequence between layouts ------------------------------------- */

/* a run [lo, hi) of a global sequence (a slice's or a mask's result) */
typedef struct {
    int64_t lo, hi;
} seg;

/* One move of a sequence from one layout to another. */
typedef struct {
    seg *from;   /* from[r]: the run rank r holds, in order, before the move */
    seg *to;     /* to[r]: the run rank r wants, in order, after it */
    int64_t *n;  /* nranks scratch values (counts of a mask) */
    int *cnt;    /* 4 * nranks: send counts, send displs, recv counts, recv displs */
} plan;

/* Collective (agrees on allocation failure). */
static int plan_init(kd_cmd *c, plan *p)
{
    size_t P = (size_t)c->nranks;
    p->from = malloc(P * sizeof(seg));
    p->to = malloc(P * sizeof(seg));
    p->n = malloc(P * sizeof(int64_t));
    p->cnt = malloc(4 * P * sizeof(int));
    int rc = (p->from && p->to && p->n && p->cnt) ? 0 : fail_oom(c, P * 48);
    return kd_agree(c, rc);
}

static void plan_free(plan *p)
{
    free(p->from);
    free(p->to);
    free(p->n);
    free(p->cnt);
}

/* to[r] = rank r's block of a `size`-element array */
static void plan_blocks(kd_cmd *c, seg *s, int64_t size)
{
    for (int r = 0; r < c->nranks; r++)
        kd_block(size, c->nranks, r, &s[r].lo, &s[r].hi);
}

static int64_t seg_len(seg s)
{
    return s.hi > s.lo ? s.hi - s.lo : 0;
}

/* Collective: move the sequence (elements of dtype t) from `send` (this
 * rank's from-run) into `recv` (this rank's to-run). Fails on every rank
 * alike if a run is over 2^31 elements (every rank sees every run). */
static int plan_move(kd_cmd *c, plan *p, kd_dtype t, const void *send, void *recv)
{
    int P = c->nranks, me = c->rank;
    for (int r = 0; r < P; r++)
        if (seg_len(p->from[r]) > INT_MAX || seg_len(p->to[r]) > INT_MAX)
            return kd_fail(c, "ValueError", "%s: a rank would move more than 2^31 elements "
                           "in one message; use more ranks", c->cmd);
    int *sc = p->cnt, *sd = sc + P, *rc = sd + P, *rd = rc + P;
    seg mine = p->from[me], want = p->to[me];
    for (int r = 0; r < P; r++) {
        int64_t lo = mine.lo > p->to[r].lo ? mine.lo : p->to[r].lo;
        int64_t hi = mine.hi < p->to[r].hi ? mine.hi : p->to[r].hi;
        sc[r] = hi > lo ? (int)(hi - lo) : 0;
        sd[r] = hi > lo ? (int)(lo - mine.lo) : 0;
        lo = p->from[r].lo > want.lo ? p->from[r].lo : want.lo;
        hi = p->from[r].hi < want.hi ? p->from[r].hi : want.hi;
        rc[r] = hi > lo ? (int)(hi - lo) : 0;
        rd[r] = hi > lo ? (int)(lo - want.lo) : 0;
    }
    MPI_Datatype mt = kd_dtype_mpi(t);
    MPI_Alltoallv(send, sc, sd, mt, recv, rc, rd, mt, c->comm);
    return 0;
}

/* ---- slices ----------------------------------------------------------------------------- */

/* Check a normalised slice (what Python's slice.indices gives) against an
 * array of `size` elements; *len gets its number of elements. */
static int slice_check(kd_cmd *c, int64_t size, int64_t start, int64_t stop, int64_t step,
                       int64_t *len)
{
    if (step == 0)
        return kd_fail(c, "ValueError", "slice step cannot be zero");
    __int128 n;
    if (step > 0)
        n = stop > start ? ((__int128)stop - start + step - 1) / step : 0;
    else
        n = start > stop ? ((__int128)start - stop - step - 1) / -(__int128)step : 0;
    if (n > 0) {
        __int128 last = start + (n - 1) * (__int128)step;
        if (start < 0 || start >= size || last < 0 || last >= size)
            return kd_fail(c, "IndexError", "%s: slice (%lld, %lld, %lld) reaches outside an "
                           "array of size %lld", c->cmd, (long long)start, (long long)stop,
                           (long long)step, (long long)size);
    }
    *len = (int64_t)n;
    return 0;
}

/* The slice positions j (element start + j*step) that fall in [lo, hi). */
static seg slice_part(int64_t start, int64_t step, int64_t len, int64_t lo, int64_t hi)
{
    int64_t jlo, jhi;
    if (step > 0) {
        jlo = -floordiv((__int128)start - lo, step); /* ceil((lo - start) / step) */
        jhi = -floordiv((__int128)start - hi, step);
    } else {
        jlo = floordiv((__int128)start - hi, -(__int128)step) + 1;
        jhi = floordiv((__int128)start - lo, -(__int128)step) + 1;
    }
    if (jlo < 0)
        jlo = 0;
    if (jhi > len)
        jhi = len;
    if (jhi < jlo)
        jhi = jlo;
    seg s = {jlo, jhi};
    return s;
}

static int slice_args(kd_cmd *c, kd_array *a, int64_t *start, int64_t *step, int64_t *len)
{
    int64_t stop;
    if (kd_arg_i64(c, "start", start) || kd_arg_i64(c, "stop", &stop) ||
        kd_arg_i64(c, "step", step))
        return -1;
    return slice_check(c, a->size, *start, stop, *step, len);
}

/* index_slice(array, start, stop, step) -> array */
static int cmd_index_slice(kd_cmd *c)
{
    kd_array *a;
    int64_t start, step, len;
    if (kd_arg_array(c, "array", &a) || slice_args(c, a, &start, &step, &len))
        return -1;
    kd_array *r = kd_new_array(c, a->dtype, len);
    plan p;
    if (!r || plan_init(c, &p))
        return -1;
    size_t w = kd_dtype_size(a->dtype);
    for (int q = 0; q < c->nranks; q++) {
        int64_t lo, hi;
        kd_block(a->size, c->nranks, q, &lo, &hi);
        p.from[q] = slice_part(start, step, len, lo, hi);
    }
    plan_blocks(c, p.to, len);
    seg mine = p.from[c->rank];
    int64_t m = seg_len(mine);
    void *buf = NULL;
    size_t cap = 0;
    const void *send;
    int rc = 0;
    if (step == 1) {
        send = m ? (const char *)a->data + (size_t)(start + mine.lo - a->lo) * w : a->data;
    } else {
        rc = grow(c, &buf, &cap, (size_t)m * w);
        send = buf;
    }
    if (kd_agree(c, rc)) {
        plan_free(&p);
        return -1;
    }
    if (step != 1 && m > 0) {
        int64_t first = start + mine.lo * step - a->lo; /* local index of position mine.lo */
        if (w == 8) {
            const uint64_t *s = a->data;
            uint64_t *d = buf;
            for (int64_t j = 0; j < m; j++)
                d[j] = s[first + j * step];
        } else {
            const uint8_t *s = a->data;
            uint8_t *d = buf;
            for (int64_t j = 0; j < m; j++)
                d[j] = s[first + j * step];
        }
    }
    rc = plan_move(c, &p, a->dtype, send, r->data);
    release(&buf, &cap);
    plan_free(&p);
    if (rc)
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

/* ---- the right-hand side of an assignment -------------------------------------------- */

typedef struct {
    kd_array *arr;  /* the values, or NULL for a scalar */
    uint64_t bits;  /* the scalar in the target's dtype (a bool in the low byte) */
} rhs;

/* "value": a scalar, or "values": an array name */
static int rhs_parse(kd_cmd *c, const kd_array *target, rhs *v)
{
    v->arr = NULL;
    v->bits = 0;
    if (kd_has_arg(c, "values"))
        return kd_arg_array(c, "values", &v->arr);
    kd_scalar s;
    if (kd_arg_scalar(c, "value", &s))
        return -1;
    kd_scalar_cast(&s, target->dtype, &v->bits);
    return 0;
}

enum fit_kind { FIT_SLICE, FIT_MASK, FIT_INDEX };

/* Collective: make the values fit `want` selected elements. One element is
 * broadcast (it becomes the scalar); any other mismatch is NumPy's ValueError. */
static int rhs_fit(kd_cmd *c, const kd_array *target, rhs *v, int64_t want, enum fit_kind k)
{
    if (!v->arr || v->arr->size == want)
        return 0;
    long long have = (long long)v->arr->size, w = (long long)want;
    if (have == 1) {
        uint64_t e = fetch_element(c, v->arr, 0);
        v->bits = 0;
        kd_cast(&e, v->arr->dtype, &v->bits, target->dtype, 1);
        v->arr = NULL;
        return 0;
    }
    if (k == FIT_SLICE)
        return kd_fail(c, "ValueError", "could not broadcast input array from shape (%lld,) "
                       "into shape (%lld,)", have, w);
    if (k == FIT_MASK)
        return kd_fail(c, "ValueError", "NumPy boolean array indexing assignment cannot "
                       "assign %lld input values to the %lld output values where the mask "
                       "is true", have, w);
    return kd_fail(c, "ValueError", "shape mismatch: value array of shape (%lld,) could not "
                   "be broadcast to indexing result of shape (%lld,)", have, w);
}

/* The local block of the values in the target's dtype: the values' own
 * memory when the dtypes agree, else a cast copy in *tmp. Collective. */
static int rhs_local(kd_cmd *c, const kd_array *target, const rhs *v, void **tmp,
                     size_t *cap, const void **out)
{
    *out = v->arr->data;
    if (v->arr->dtype == target->dtype)
        return kd_agree(c, 0);
    int rc = grow(c, tmp, cap, (size_t)v->arr->n * kd_dtype_size(target->dtype));
    if (kd_agree(c, rc))
        return -1;
    kd_cast(v->arr->data, v->arr->dtype, *tmp, target->dtype, v->arr->n);
    *out = *tmp;
    return 0;
}

/* setitem_slice(array, start, stop, step, value | values) */
static int cmd_setitem_slice(kd_cmd *c)
{
    kd_array *a;
    int64_t start, step, len;
    rhs v;
    if (kd_arg_array(c, "array", &a) || slice_args(c, a, &start, &step, &len) ||
        rhs_parse(c, a, &v) || rhs_fit(c, a, &v, len, FIT_SLICE))
        return -1;
    size_t w = kd_dtype_size(a->dtype);
    seg mine = slice_part(start, step, len, a->lo, a->lo + a->n);
    int64_t m = seg_len(mine);
    int64_t first = m ? start + mine.lo * step - a->lo : 0; /* local index of position mine.lo */
    if (!v.arr) {
        if (w == 8) {
            uint64_t *d = a->data;
            for (int64_t j = 0; j < m; j++)
                d[first + j * step] = v.bits;
        } else {
            uint8_t *d = a->data, b = (uint8_t)v.bits;
            for (int64_t j = 0; j < m; j++)
                d[first + j * step] = b;
        }
        return 0;
    }
    plan p;
    void *tmp = NULL, *buf = NULL;
    size_t tcap = 0, bcap = 0;
    const void *send;
    if (plan_init(c, &p))
        return -1;
    if (rhs_local(c, a, &v, &tmp, &tcap, &send)) {
        plan_free(&p);
        return -1;
    }
    plan_blocks(c, p.from, len);
    for (int q = 0; q < c->nranks; q++) {
        int64_t lo, hi;
        kd_block(a->size, c->nranks, q, &lo, &hi);
        p.to[q] = slice_part(start, step, len, lo, hi);
    }
    int rc = grow(c, &buf, &bcap, (size_t)m * w);
    if (!kd_agree(c, rc))
        rc = plan_move(c, &p, a->dtype, send, buf);
    else
        rc = -1;
    if (!rc) { /* everything arrived: only now is the array written */
        if (w == 8) {
            const uint64_t *s = buf;
            uint64_t *d = a->data;
            for (int64_t j = 0; j < m; j++)
                d[first + j * step] = s[j];
        } else {
            const uint8_t *s = buf;
            uint8_t *d = a->data;
            for (int64_t j = 0; j < m; j++)
                d[first + j * step] = s[j];
        }
    }
    release(&tmp, &tcap);
    release(&buf, &bcap);
    plan_free(&p);
    return rc;
}

/* ---- one element -------------------------------------------------------------------------- */

static int int_index(kd_cmd *c, const kd_array *a, int64_t *i)
{
    if (kd_arg_i64(c, "index", i))
        return -1;
    if (*i < -a->size || *i >= a->size)
        return fail_index(c, *i, a->size);
    if (*i < 0)
        *i += a->size;
    return 0;
}

/* index_int(array, index) -> value */
static int cmd_index_int(kd_cmd *c)
{
    kd_array *a;
    int64_t i;
    if (kd_arg_array(c, "array", &a) || int_index(c, a, &i))
        return -1;
    kd_scalar s;
    scalar_from_bits(a->dtype, fetch_element(c, a, i), &s);
    kd_result_scalar(c, "value", &s);
    return 0;
}

/* setitem_int(array, index, value | values of one element) */
static int cmd_setitem_int(kd_cmd *c)
{
    kd_array *a;
    int64_t i;
    rhs v;
    if (kd_arg_array(c, "array", &a) || int_index(c, a, &i) || rhs_parse(c, a, &v))
        return -1;
    if (v.arr && v.arr->size != 1)
        return kd_fail(c, "ValueError", "setting an array element with a sequence.");
    if (rhs_fit(c, a, &v, 0, FIT_SLICE)) /* size 1 != 0: fetched and cast */
        return -1;
    if (i >= a->lo && i < a->lo + a->n) {
        size_t w = kd_dtype_size(a->dtype);
        if (w == 8)
            ((uint64_t *)a->data)[i - a->lo] = v.bits;
        else
            ((uint8_t *)a->data)[i - a->lo] = (uint8_t)v.bits;
    }
    return 0;
}

/* ---- boolean masks ---------------------------------------------------------------------------- */

static int mask_arg(kd_cmd *c, const kd_array *a, kd_array **m)
{
    if (kd_arg_array(c, "mask", m))
        return -1;
    if ((*m)->dtype != KD_BOOL)
        return kd_fail(c, "TypeError", "%s: the mask must be a bool array, not %s", c->cmd,
                       kd_dtype_name((*m)->dtype));
    if ((*m)->size != a->size)
        return kd_fail(c, "IndexError", "boolean index did not match indexed array along "
                       "dimension 0; dimension is %lld but corresponding boolean dimension "
                       "is %lld", (long long)a->size, (long long)(*m)->size);
    return 0;
}

/* Collective: this rank's count of True, every rank's run of the result in
 * p->n / p->from, and the total. */
static int64_t mask_runs(kd_cmd *c, const kd_array *m, plan *p)
{
    const uint8_t *b = m->data;
    int64_t cnt = 0;
    for (int64_t k = 0; k < m->n; k++)
        cnt += b[k] != 0;
    MPI_Allgather(&cnt, 1, MPI_INT64_T, p->n, 1, MPI_INT64_T, c->comm);
    int64_t pos = 0;
    for (int r = 0; r < c->nranks; r++) {
        p->from[r].lo = pos;
        pos += p->n[r];
        p->from[r].hi = pos;
    }
    return pos;
}

/* index_mask(array, mask) -> array of the selected elements, in order */
static int cmd_index_mask(kd_cmd *c)
{
    kd_array *a, *m;
    plan p;
    if (kd_arg_array(c, "array", &a) || mask_arg(c, a, &m) || plan_init(c, &p))
        return -1;
    int64_t total = mask_runs(c, m, &p);
    kd_array *r = kd_new_array(c, a->dtype, total);
    if (!r) {
        plan_free(&p);
        return -1;
    }
    plan_blocks(c, p.to, total);
    size_t w = kd_dtype_size(a->dtype);
    void *buf = NULL;
    size_t cap = 0;
    int rc = grow(c, &buf, &cap, (size_t)(p.n[c->rank] + 1) * w); /* +1: branch-free pack */
    if (kd_agree(c, rc)) {
        plan_free(&p);
        return -1;
    }
    const uint8_t *mb = m->data;
    int64_t t = 0;
    if (w == 8) {
        const uint64_t *s = a->data;
        uint64_t *d = buf;
        for (int64_t k = 0; k < a->n; k++) {
            d[t] = s[k];
            t += mb[k] != 0;
        }
    } else {
        const uint8_t *s = a->data;
        uint8_t *d = buf;
        for (int64_t k = 0; k < a->n; k++) {
            d[t] = s[k];
            t += mb[k] != 0;
        }
    }
    rc = plan_move(c, &p, a->dtype, buf, r->data);
    release(&buf, &cap);
    plan_free(&p);
    if (rc)
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

/* flatnonzero(mask) -> int64 array of the positions of mask's True
 * elements, in order (NumPy's flatnonzero of a bool array): the index a
 * mask stands for, made without an index of the whole array first. */
static int cmd_flatnonzero(kd_cmd *c)
{
    kd_array *m;
    plan p;
    if (kd_arg_array(c, "mask", &m))
        return -1;
    if (m->dtype != KD_BOOL)
        return kd_fail(c, "TypeError", "flatnonzero: the mask must be a bool array, not %s",
                       kd_dtype_name(m->dtype));
    if (plan_init(c, &p))
        return -1;
    int64_t total = mask_runs(c, m, &p);
    kd_array *r = kd_new_array(c, KD_INT64, total);
    if (!r) {
        plan_free(&p);
        return -1;
    }
    plan_blocks(c, p.to, total);
    void *buf = NULL;
    size_t cap = 0;
    int rc = grow(c, &buf, &cap, (size_t)(p.n[c->rank] + 1) * 8); /* +1: branch-free pack */
    if (kd_agree(c, rc)) {
        plan_free(&p);
        return -1;
    }
    const uint8_t *mb = m->data;
    int64_t *d = buf, t = 0;
    for (int64_t k = 0; k < m->n; k++) {
        d[t] = m->lo + k;
        t += mb[k] != 0;
    }
    rc = plan_move(c, &p, KD_INT64, buf, r->data);
    release(&buf, &cap);
    plan_free(&p);
    if (rc)
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

/* setitem_mask(array, mask, value | values): values has mask.sum() elements */
static int cmd_setitem_mask(kd_cmd *c)
{
    kd_array *a, *m;
    rhs v;
    plan p;
    if (kd_arg_array(c, "array", &a) || mask_arg(c, a, &m) || rhs_parse(c, a, &v) ||
        plan_init(c, &p))
        return -1;
    int64_t total = mask_runs(c, m, &p);
    if (rhs_fit(c, a, &v, total, FIT_MASK)) {
        plan_free(&p);
        return -1;
    }
    size_t w = kd_dtype_size(a->dtype);
    const uint8_t *mb = m->data;
    if (!v.arr) {
        if (w == 8) {
            uint64_t *d = a->data, x = v.bits;
            for (int64_t k = 0; k < a->n; k++)
                d[k] = mb[k] ? x : d[k];
        } else {
            uint8_t *d = a->data, x = (uint8_t)v.bits;
            for (int64_t k = 0; k < a->n; k++)
                d[k] = mb[k] ? x : d[k];
        }
        plan_free(&p);
        return 0;
    }
    /* the values move from their blocks to the runs the masks select */
    for (int r = 0; r < c->nranks; r++)
        p.to[r] = p.from[r];
    plan_blocks(c, p.from, total);
    void *tmp = NULL, *buf = NULL;
    size_t tcap = 0, bcap = 0;
    const void *send;
    int rc = -1;
    if (!rhs_local(c, a, &v, &tmp, &tcap, &send)) {
        rc = grow(c, &buf, &bcap, (size_t)(seg_len(p.to[c->rank]) + 1) * w);
        rc = kd_agree(c, rc);
        if (!rc)
            rc = plan_move(c, &p, a->dtype, send, buf);
    }
    if (!rc) {
        int64_t t = 0;
        if (w == 8) {
            const uint64_t *s = buf;
            uint64_t *d = a->data;
            for (int64_t k = 0; k < a->n; k++) {
                uint8_t on = mb[k] != 0; /* before the write: the mask may be the array */
                d[k] = on ? s[t] : d[k];
                t += on;
            }
        } else {
            const uint8_t *s = buf;
            uint8_t *d = a->data;
            for (int64_t k = 0; k < a->n; k++) {
                uint8_t on = mb[k] != 0; /* before the write: the mask may be the array */
                d[k] = on ? s[t] : d[k];
                t += on;
            }
        }
    }
    release(&tmp, &tcap);
    release(&buf, &bcap);
    plan_free(&p);
    return rc;
}

/* ---- integer index arrays: gather and scatter ------------------------------------------------ */

/* Where each global index of the target lives. The owner of i is within
 * two above est(i) = floor(i * mul / 2^64), mul = floor(2^64 * nranks / size):
 * est(i) <= floor(i * nranks / size) <= owner(i) <= floor(i * nranks / size) + 1
 * and est(i) falls short of floor(i * nranks / size) by at most one. Two
 * branch-free comparisons with the block starts finish the job. */
typedef struct {
    int nranks;
    uint64_t mul;  /* floor(2^64 * nranks / size); 0 when size <= nranks */
    int64_t *bnd;  /* nranks + 2 entries: block starts, then size, then INT64_MAX */
} owner_map;

static inline int owner_of(const owner_map *m, int64_t i)
{
    if (!m->mul) /* tiny arrays: a walk over the blocks */
        return kd_owner(m->bnd[m->nranks], m->nranks, i);
    int r = (int)(((unsigned __int128)(uint64_t)i * m->mul) >> 64);
    r += i >= m->bnd[r + 1];
    r += i >= m->bnd[r + 1];
    return r;
}

/* The state of one gather or scatter: buffers grow as needed and are reused
 * from round to round. */
typedef struct {
    owner_map map;
    int wide;         /* offsets travel as uint64 (a block of >= 2^32 elements), else uint32 */
    size_t ow;        /* bytes per offset: 4 or 8 */
    int *cnt;         /* 5 * nranks: send counts, send displs, recv counts, recv displs, cursors */
    uint16_t *own;    /* owner of each index of the round */
    size_t own_cap;
    void *soff, *roff, *sval, *rval; /* offsets and values, sent and received */
    size_t soff_cap, roff_cap, sval_cap, rval_cap;
} xchg;

static int xchg_init(kd_cmd *c, xchg *x, const kd_array *a)
{
    int P = c->nranks;
    memset(x, 0, sizeof *x);
    if (P > 65535)
        return kd_agree(c, kd_fail(c, "ValueError", "%s: index arrays need at most 65535 "
                                   "ranks", c->cmd));
    x->map.nranks = P;
    x->map.mul = a->size > P ? (uint64_t)(((unsigned __int128)P << 64) / (uint64_t)a->size) : 0;
    x->map.bnd = malloc(sizeof(int64_t) * (size_t)(P + 2));
    x->cnt = malloc(sizeof(int) * 5 * (size_t)P);
    int rc = (x->map.bnd && x->cnt) ? 0 : fail_oom(c, (size_t)P * 28);
    if (!rc) {
        int64_t lo, hi, most = 0;
        for (int r = 0; r < P; r++) {
            kd_block(a->size, P, r, &lo, &hi);
            x->map.bnd[r] = lo;
            if (hi - lo > most)
                most = hi - lo;
        }
        x->map.bnd[P] = a->size;
        x->map.bnd[P + 1] = INT64_MAX;
        x->wide = most > (int64_t)UINT32_MAX;
        x->ow = x->wide ? 8 : 4;
    }
    return kd_agree(c, rc);
}

static void xchg_free(xchg *x)
{
    free(x->map.bnd);
    free(x->cnt);
    kd_free_bytes(x->own, x->own_cap);
    release(&x->soff, &x->soff_cap);
    release(&x->roff, &x->roff_cap);
    release(&x->sval, &x->sval_cap);
    release(&x->rval, &x->rval_cap);
}

/* Check every local index against `size`; IndexError names the first bad one. */
static int check_indices(kd_cmd *c, const int64_t *idx, int64_t n, int64_t size)
{
    uint64_t span = 2 * (uint64_t)size, off = (uint64_t)size;
    int bad = 0;
    for (int64_t k = 0; k < n; k++)
        bad |= (uint64_t)idx[k] + off >= span;
    if (!bad)
        return 0;
    for (int64_t k = 0; k < n; k++)
        if ((uint64_t)idx[k] + off >= span)
            return fail_index(c, idx[k], size);
    return 0;
}

static int index_arg(kd_cmd *c, kd_array **idx)
{
    if (kd_arg_array(c, "index", idx))
        return -1;
    if ((*idx)->dtype != KD_INT64 && (*idx)->dtype != KD_UINT64)
        return kd_fail(c, "IndexError", "arrays used as indices must be of integer (or "
                       "boolean) type");
    return 0;
}

/* Count pass and count exchange for the indices idx[0..n) (checked): owner
 * of each in x->own, counts and displacements in x->cnt; *rtotal gets the
 * number this rank receives. Collective; fails on every rank if a count
 * does not fit an int or a buffer cannot be had. */
static int xchg_plan(kd_cmd *c, xchg *x, const int64_t *idx, int64_t n, int64_t size,
                     size_t w, int64_t *rtotal)
{
    int P = c->nranks;
    int *sc = x->cnt, *sd = sc + P, *rc = sd + P, *rd = rc + P;
    int bad = n > INT_MAX;
    if (!bad && grow(c, (void **)&x->own, &x->own_cap, (size_t)n * sizeof(uint16_t)))
        bad = 2;
    if (bad) /* keep the collectives in step: send zero counts, then fail */
        n = 0;
    memset(sc, 0, sizeof(int) * (size_t)P);
    for (int64_t k = 0; k < n; k++) {
        int64_t v = idx[k];
        v += (v >> 63) & size;
        int r = owner_of(&x->map, v);
        x->own[k] = (uint16_t)r;
        sc[r]++;
    }
    MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, c->comm);
    int64_t s = 0, t = 0;
    for (int r = 0; r < P; r++) {
        sd[r] = (int)s;
        s += sc[r];
        rd[r] = t > INT_MAX ? 0 : (int)t;
        t += rc[r];
    }
    *rtotal = t;
    if (bad == 1)
        kd_fail(c, "ValueError", "%s: a rank holds more than 2^31 indices; use more ranks",
                c->cmd);
    else if (!bad && t > INT_MAX)
        bad = kd_fail(c, "ValueError", "%s: a rank would receive more than 2^31 indices; "
                      "use more ranks", c->cmd);
    else if (!bad && (grow(c, &x->soff, &x->soff_cap, (size_t)n * x->ow + 1) ||
                      grow(c, &x->roff, &x->roff_cap, (size_t)t * x->ow + 1) ||
                      grow(c, &x->sval, &x->sval_cap, (size_t)n * w + 1) ||
                      grow(c, &x->rval, &x->rval_cap, (size_t)t * w + 1)))
        bad = 1;
    return kd_agree(c, bad ? -1 : 0);
}

/* Bucket pass: the offsets (index - owner's first index) in owner order. */
#define BUCKET_LOOP(OT)                                          \
    do {                                                         \
        OT *so = x->soff;                                        \
        for (int64_t k = 0; k < n; k++) {                        \
            int64_t v = idx[k];                                  \
            v += (v >> 63) & size;                               \
            int r = x->own[k];                                   \
            so[cur[r]++] = (OT)(v - bnd[r]);                     \
        }                                                        \
    } while (0)

static void xchg_bucket(kd_cmd *c, xchg *x, const int64_t *idx, int64_t n, int64_t size)
{
    int P = c->nranks;
    int *cur = x->cnt + 4 * P;
    const int64_t *bnd = x->map.bnd;
    memcpy(cur, x->cnt + P, sizeof(int) * (size_t)P);
    if (x->wide)
        BUCKET_LOOP(uint64_t);
    else
        BUCKET_LOOP(uint32_t);
}

/* Owner side of a gather: the values at the received offsets. The loads are
 * random; prefetching a few ahead keeps several cache misses in flight. */
#define GATHER_LOOP(OT, VT)                                           \
    do {                                                              \
        const OT *o = x->roff;                                        \
        const VT *s = data;                                           \
        VT *d = x->rval;                                              \
        int64_t t = 0;                                                \
        for (; t + 16 < rtotal; t++) {                                \
            __builtin_prefetch(&s[o[t + 16]]);                        \
            d[t] = s[o[t]];                                           \
        }                                                             \
        for (; t < rtotal; t++)                                       \
            d[t] = s[o[t]];                                           \
    } while (0)

/* Back in index order: one cursor per owner. */
#define UNPERMUTE_LOOP(VT)                                            \
    do {                                                              \
        const VT *s = x->sval;                                        \
        VT *d = out;                                                  \
        for (int64_t k = 0; k < n; k++)                               \
            d[k] = s[cur[x->own[k]]++];                               \
    } while (0)

/* Collective: out[k] = data[idx[k]] for the n (checked) indices of one round. */
static int gather_round(kd_cmd *c, xchg *x, const kd_array *a, const int64_t *idx,
                        int64_t n, void *out)
{
    int P = c->nranks;
    size_t w = kd_dtype_size(a->dtype);
    int64_t rtotal;
    if (xchg_plan(c, x, idx, n, a->size, w, &rtotal))
        return -1;
    xchg_bucket(c, x, idx, n, a->size);
    int *sc = x->cnt, *sd = sc + P, *rc = sd + P, *rd = rc + P, *cur = rd + P;
    MPI_Datatype ot = x->wide ? MPI_UINT64_T : MPI_UINT32_T, vt = kd_dtype_mpi(a->dtype);
    MPI_Alltoallv(x->soff, sc, sd, ot, x->roff, rc, rd, ot, c->comm);
    const void *data = a->data;
    if (x->wide && w == 8)
        GATHER_LOOP(uint64_t, uint64_t);
    else if (x->wide)
        GATHER_LOOP(uint64_t, uint8_t);
    else if (w == 8)
        GATHER_LOOP(uint32_t, uint64_t);
    else
        GATHER_LOOP(uint32_t, uint8_t);
    MPI_Alltoallv(x->rval, rc, rd, vt, x->sval, sc, sd, vt, c->comm);
    memcpy(cur, sd, sizeof(int) * (size_t)P);
    if (w == 8)
        UNPERMUTE_LOOP(uint64_t);
    else
        UNPERMUTE_LOOP(uint8_t);
    return 0;
}

/* Without other ranks: a plain gather with the negative indices folded in. */
#define LOCAL_GATHER_LOOP(VT)                                         \
    do {                                                              \
        const VT *s = a->data;                                        \
        VT *d = r->data;                                              \
        for (int64_t k = 0; k < n; k++) {                             \
            int64_t v = ix[k];                                        \
            d[k] = s[v + ((v >> 63) & size)];                         \
        }                                                             \
    } while (0)

/* index_gather(array, index) -> array[index] */
static int cmd_index_gather(kd_cmd *c)
{
    kd_array *a, *idx;
    if (kd_arg_array(c, "array", &a) || index_arg(c, &idx))
        return -1;
    if (kd_agree(c, check_indices(c, idx->data, idx->n, a->size)))
        return -1;
    kd_array *r = kd_new_array(c, a->dtype, idx->size);
    if (!r)
        return -1;
    const int64_t *ix = idx->data;
    int64_t n = idx->n, size = a->size;
    if (c->nranks == 1) {
        if (kd_dtype_size(a->dtype) == 8)
            LOCAL_GATHER_LOOP(uint64_t);
        else
            LOCAL_GATHER_LOOP(uint8_t);
        kd_result_array(c, "array", r);
        return 0;
    }
    xchg x;
    if (xchg_init(c, &x, a)) {
        xchg_free(&x);
        return -1;
    }
    /* the same number of rounds on every rank: enough for the largest block */
    int64_t chunk = GATHER_CHUNK, most = 0, lo, hi;
    if (chunk > INT_MAX / c->nranks)
        chunk = INT_MAX / c->nranks;
    for (int q = 0; q < c->nranks; q++) {
        kd_block(idx->size, c->nranks, q, &lo, &hi);
        if (hi - lo > most)
            most = hi - lo;
    }
    int64_t rounds = (most + chunk - 1) / chunk;
    size_t w = kd_dtype_size(a->dtype);
    int rc = 0;
    for (int64_t k = 0; k < rounds && !rc; k++) {
        int64_t k0 = k * chunk < n ? k * chunk : n;
        int64_t k1 = k0 + chunk < n ? k0 + chunk : n;
        rc = gather_round(c, &x, a, ix + k0, k1 - k0, (char *)r->data + (size_t)k0 * w);
    }
    xchg_free(&x);
    if (rc)
        return -1;
    kd_result_array(c, "array", r);
    return 0;
}

/* Scatter: the owner applies (offset, value) pairs in the order received,
 * i.e. source rank by source rank, each in index order: the last wins. */
#define APPLY_LOOP(OT, VT)                                            \
    do {                                                              \
        const OT *o = x.roff;                                         \
        VT *d = a->data;                                              \
        if (vals) {                                                   \
            const VT *s = x.rval;                                     \
            for (int64_t t = 0; t < rtotal; t++)                      \
                d[o[t]] = s[t];                                       \
        } else {                                                      \
            VT sv = (VT)v.bits;                                       \
            for (int64_t t = 0; t < rtotal; t++)                      \
                d[o[t]] = sv;                                         \
        }                                                             \
    } while (0)

#define PACK_VALUES_LOOP(VT)                                          \
    do {                                                              \
        const VT *s = vals;                                           \
        VT *d = x.sval;                                               \
        for (int64_t k = 0; k < n; k++)                               \
            d[cur[x.own[k]]++] = s[k];                                \
    } while (0)

#define LOCAL_SCATTER_LOOP(VT)                                        \
    do {                                                              \
        VT *d = a->data;                                              \
        if (vals) {                                                   \
            const VT *s = vals;                                       \
            for (int64_t k = 0; k < n; k++) {                         \
                int64_t i = ix[k];                                    \
                d[i + ((i >> 63) & size)] = s[k];                     \
            }                                                         \
        } else {                                                      \
            VT sv = (VT)v.bits;                                       \
            for (int64_t k = 0; k < n; k++) {                         \
                int64_t i = ix[k];                                    \
                d[i + ((i >> 63) & size)] = sv;                       \
            }                                                         \
        }                                                             \
    } while (0)

/* setitem_scatter(array, index, value | values): array[index] = values */
static int cmd_setitem_scatter(kd_cmd *c)
{
    kd_array *a, *idx;
    rhs v;
    if (kd_arg_array(c, "array", &a) || index_arg(c, &idx) || rhs_parse(c, a, &v) ||
        rhs_fit(c, a, &v, idx->size, FIT_INDEX))
        return -1;
    if (kd_agree(c, check_indices(c, idx->data, idx->n, a->size)))
        return -1;
    const int64_t *ix = idx->data;
    int64_t n = idx->n, size = a->size, rtotal;
    size_t w = kd_dtype_size(a->dtype);
    void *tmp = NULL;
    size_t tcap = 0;
    const void *vals = NULL;
    if (v.arr && rhs_local(c, a, &v, &tmp, &tcap, &vals))
        return -1;
    if (c->nranks == 1) {
        /* a[a] = ... or a[i] = a: read the indices and values as they were
         * before the first write, as NumPy does */
        void *copy = NULL;
        size_t ccap = 0;
        bool alias_ix = idx == a, alias_vals = vals == a->data;
        if ((alias_ix || alias_vals) &&
            grow(c, &copy, &ccap, (size_t)n * (alias_ix ? 8 : 0) + (size_t)n * w + 1)) {
            release(&tmp, &tcap);
            return -1;
        }
        if (alias_ix) {
            memcpy(copy, ix, (size_t)n * 8);
            ix = copy;
        }
        if (alias_vals) {
            void *vcopy = (char *)copy + (alias_ix ? (size_t)n * 8 : 0);
            memcpy(vcopy, vals, (size_t)n * w);
            vals = vcopy;
        }
        if (w == 8)
            LOCAL_SCATTER_LOOP(uint64_t);
        else
            LOCAL_SCATTER_LOOP(uint8_t);
        release(&copy, &ccap);
        release(&tmp, &tcap);
        return 0;
    }
    int P = c->nranks, rc = -1;
    xchg x;
    if (!xchg_init(c, &x, a) && !xchg_plan(c, &x, ix, n, size, w, &rtotal)) {
        int *sc = x.cnt, *sd = sc + P, *rcn = sd + P, *rd = rcn + P, *cur = rd + P;
        MPI_Datatype ot = x.wide ? MPI_UINT64_T : MPI_UINT32_T, vt = kd_dtype_mpi(a->dtype);
        xchg_bucket(c, &x, ix, n, size);
        MPI_Alltoallv(x.soff, sc, sd, ot, x.roff, rcn, rd, ot, c->comm);
        if (vals) {
            memcpy(cur, sd, sizeof(int) * (size_t)P);
            if (w == 8)
                PACK_VALUES_LOOP(uint64_t);
            else
                PACK_VALUES_LOOP(uint8_t);
            MPI_Alltoallv(x.sval, sc, sd, vt, x.rval, rcn, rd, vt, c->comm);
        }
        if (x.wide && w == 8)
            APPLY_LOOP(uint64_t, uint64_t);
        else if (x.wide)
            APPLY_LOOP(uint64_t, uint8_t);
        else if (w == 8)
            APPLY_LOOP(uint32_t, uint64_t);
        else
            APPLY_LOOP(uint32_t, uint8_t);
        rc = 0;
    }
    xchg_free(&x);
    release(&tmp, &tcap);
    return rc;
}

void kd_register_index(void)
{
    kd_register("index_int", cmd_index_int);
    kd_register("index_slice", cmd_index_slice);
    kd_register("index_mask", cmd_index_mask);
    kd_register("flatnonzero", cmd_flatnonzero);
    kd_register("index_gather", cmd_index_gather);
    kd_register("setitem_int", cmd_setitem_int);
    kd_register("setitem_slice", cmd_setitem_slice);
    kd_register("setitem_mask", cmd_setitem_mask);
    kd_register("setitem_scatter", cmd_setitem_scatter);
}
