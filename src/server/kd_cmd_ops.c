/* kd_cmd_ops.c — element-wise arithmetic, casts, reductions, scans, where
 * and concatenate on pdarrays, with NumPy's results.
 *
 * Who decides dtypes. NumPy's type promotion (value-based casting of Python
 * scalars included) is intricate; the client reproduces it exactly by running
 * the operation on one-element NumPy arrays and sends two dtypes: `ct`, the
 * dtype the computation runs in (NumPy's inner-loop dtype), and `rt`, the
 * dtype of the result. The server casts each operand to ct, computes in ct,
 * and writes rt (bool for comparisons). The server checks every combination
 * it is given: an operator that has no loop for ct is a TypeError, whatever
 * the client believed.
 *
 * Commands (array arguments are names; "sa"/"sb" are scalars {dtype,value}):
 *   binop   {op, a|sa, b|sb, ct, rt[, out]}  -> array   (out: in place;
 *           "stream": true forces the streaming-store path, for tests)
 *   unop    {op: neg|invert|abs, array}      -> array
 *   astype  {array, dtype}                    -> array
 *   reduce  {op, array[, ddof]}               -> value  (a scalar)
 *   scan    {op: cumsum|cumprod, array}       -> array
 *   where   {cond, a|sa, b|sb, rt}            -> array
 *   concatenate {arrays: [names], rt}         -> array
 *   axpy    {x, y, alpha, form: "x+ay"|"x-ay"|"ay-x"} -> array (float64;
 *           the client's fusion of `a + b * alpha`: one pass, each element
 *           rounded exactly as the two separate operations round it)
 *
 * Speed. Element-wise work runs in chunks of CH elements: an operand whose
 * dtype is not ct is converted into a small buffer that stays in L1, a scalar
 * is broadcast into one once, and then one tight loop per (operator, ct)
 * runs over plain arrays, so the compiler vectorises it. The common case
 * (both operands already in ct, result in ct) touches no buffer at all except
 * a scalar's, and writes straight into the new array.
 *
 * NumPy's edge cases, as measured with NumPy 1.24 on x86-64:
 *   - integer + - * wrap around (done in uint64, where C defines it);
 *   - integer // and % by zero give 0; INT64_MIN // -1 is INT64_MIN;
 *     // floors and % takes the divisor's sign;
 *   - float // and % are NumPy's npy_floor_divide / npy_remainder;
 *   - shifts by a count outside [0, 64) give 0 (>> of a negative int64: -1);
 *   - integer ** a negative integer is a ValueError (checked before any
 *     element is written, so an in-place ** leaves its array intact);
 *   - float64 array ** scalar 0.5 is sqrt (NumPy's fast path: sqrt(-0.0) is
 *     -0.0 and sqrt(-inf) is nan where pow would give 0.0 and inf);
 *   - float to int casts out of range (and NaN) give INT64_MIN; to uint64
 *     they follow the x86 code NumPy runs (see kd_f64_to_u64 in kd.h). */
#include "kd.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* elements per chunk: three chunk buffers of 8-byte elements fit in L1 */
#define CH 1024

/* A result bigger than this (bytes per rank) is written with streaming
 * stores: it would not stay in the last-level cache anyway, and a normal
 * store first reads every line it writes (a third more memory traffic for
 * c = a + b). Smaller results are left in the cache for the next command. */
#define STREAM_MIN (16u << 20)

/* copy an L1-resident chunk to dst, bypassing the cache where the CPU can */
static void stream_out(void *dst, const void *src, size_t bytes)
{
    size_t i = 0;
#if defined(__SSE2__)
    char *d = dst;
    const char *s = src;
    if (((uintptr_t)d & 15) == 0 && ((uintptr_t)s & 15) == 0)
        for (; i + 16 <= bytes; i += 16)
            _mm_stream_si128((__m128i *)(d + i), _mm_load_si128((const __m128i *)(s + i)));
#endif
    memcpy((char *)dst + i, (const char *)src + i, bytes - i);
}

static void stream_done(void)
{
#if defined(__SSE2__)
    _mm_sfence(); /* streaming stores are weakly ordered: finish them */
#endif
}

/* ---- operands ------------------------------------------------------------------ */

/* One side of a binary operation: an array, or a scalar. */
typedef struct {
    kd_array *arr; /* NULL for a scalar */
    kd_scalar s;   /* the scalar, when arr is NULL */
} operand;

/* args[akey] names an array, or args[skey] is a scalar */
static int get_operand(kd_cmd *c, const char *akey, const char *skey, operand *o)
{
    memset(o, 0, sizeof *o);
    if (kd_has_arg(c, akey))
        return kd_arg_array(c, akey, &o->arr);
    if (kd_has_arg(c, skey))
        return kd_arg_scalar(c, skey, &o->s);
    return kd_fail(c, "TypeError", "%s: give an array '%s' or a scalar '%s'", c->cmd, akey, skey);
}

/* Where chunk [off, off + m) of an operand is, in dtype t: the array's own
 * memory when it already has dtype t, else `buf` after converting into it.
 * A scalar was broadcast into its buffer once (see prepare). */
static const void *chunk_of(const operand *o, kd_dtype t, int64_t off, int64_t m, void *buf)
{
    if (!o->arr)
        return buf;
    size_t w = kd_dtype_size(o->arr->dtype);
    const char *p = (const char *)o->arr->data + (size_t)off * w;
    if (o->arr->dtype == t)
        return p;
    kd_cast(p, o->arr->dtype, buf, t, m);
    return buf;
}

/* a scalar operand: fill its chunk buffer with the value in dtype t */
static void prepare(const operand *o, kd_dtype t, void *buf)
{
    if (o->arr)
        return;
    if (kd_dtype_size(t) == 1) {
        uint8_t v;
        kd_scalar_cast(&o->s, t, &v);
        memset(buf, v, CH);
    } else {
        uint64_t v, *p = buf;
        kd_scalar_cast(&o->s, t, &v);
        for (int i = 0; i < CH; i++)
            p[i] = v;
    }
}

/* ---- operators ------------------------------------------------------------------ */

enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
    OP_AND, OP_OR, OP_XOR, OP_LSHIFT, OP_RSHIFT,
    OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE,
    OP_SQRT, /* internal: float64 array ** 0.5 */
    OP_COUNT
};

static const char *op_names[OP_COUNT] = {
    "+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>",
    "<", "<=", ">", ">=", "==", "!=", "sqrt"};

static bool is_comparison(int op)
{
    return op >= OP_LT && op <= OP_NE;
}

/* Has NumPy a loop for op in dtype t? NULL if yes, else why not. */
static const char *op_unsupported(int op, kd_dtype t)
{
    switch (t) {
    case KD_BOOL:
        if (op == OP_SUB)
            return "numpy boolean subtract, the `-` operator, is not supported, use the "
                   "bitwise_xor, the `^` operator, or the logical_xor function instead.";
        if (op == OP_ADD || op == OP_MUL || op == OP_AND || op == OP_OR || op == OP_XOR ||
            is_comparison(op))
            return NULL;
        return "has no bool loop (compute it in int64)";
    case KD_FLOAT64:
        if (op >= OP_AND && op <= OP_RSHIFT)
            return "is not supported for float64 (bitwise and shift operators need "
                   "integers or bool)";
        return NULL;
    default:
        if (op == OP_DIV)
            return "has no integer loop (true division computes in float64)";
        return NULL;
    }
}

/* ---- element-wise kernels: one tight loop per (operator, dtype) ----------------- */

/* out[i] = EXPR(a = x[i], b = y[i]) for i < n */
#define EW(OUT, EXPR)                                                               \
    for (int64_t i = 0; i < n; i++) {                                               \
        __typeof__(x[0]) a = x[i], b = y[i];                                        \
        (OUT)[i] = (EXPR);                                                          \
    }                                                                               \
    break

#define COMPARISONS(OB)                                                             \
    case OP_LT: EW(OB, a < b);                                                      \
    case OP_LE: EW(OB, a <= b);                                                     \
    case OP_GT: EW(OB, a > b);                                                      \
    case OP_GE: EW(OB, a >= b);                                                     \
    case OP_EQ: EW(OB, a == b);                                                     \
    case OP_NE: EW(OB, a != b)

static inline uint64_t upow(uint64_t base, uint64_t e)
{
    uint64_t r = 1;
    while (e) {
        if (e & 1)
            r *= base;
        base *= base;
        e >>= 1;
    }
    return r;
}

static inline int64_t i_floordiv(int64_t a, int64_t b)
{
    if (b == 0)
        return 0;
    if (b == -1)
        return (int64_t)(0 - (uint64_t)a); /* INT64_MIN // -1 wraps, as NumPy */
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static inline int64_t i_mod(int64_t a, int64_t b)
{
    if (b == 0 || b == -1)
        return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

/* NumPy's npy_divmod for doubles: floor quotient, remainder with b's sign */
static double f_divmod(double a, double b, double *modulus)
{
    double mod = fmod(a, b), div, floordiv;
    if (!b) {
        *modulus = mod;
        return a / b;
    }
    div = (a - mod) / b;
    if (mod) {
        if (isless(b, 0) != isless(mod, 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = copysign(0.0, b);
    }
    if (div) {
        floordiv = floor(div);
        if (isgreater(div - floordiv, 0.5))
            floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, a / b);
    }
    *modulus = mod;
    return floordiv;
}

static inline double f_floordiv(double a, double b)
{
    double m;
    return b ? f_divmod(a, b, &m) : a / b;
}

static inline double f_mod(double a, double b)
{
    double m;
    if (!b)
        return fmod(a, b);
    f_divmod(a, b, &m);
    return m;
}

static void kern_i64(int op, const int64_t *x, const int64_t *y, void *out, int64_t n)
{
    int64_t *o = out;
    uint8_t *ob = out;
    switch (op) {
    case OP_ADD: EW(o, (int64_t)((uint64_t)a + (uint64_t)b));
    case OP_SUB: EW(o, (int64_t)((uint64_t)a - (uint64_t)b));
    case OP_MUL: EW(o, (int64_t)((uint64_t)a * (uint64_t)b));
    case OP_FLOORDIV: EW(o, i_floordiv(a, b));
    case OP_MOD: EW(o, i_mod(a, b));
    case OP_POW: EW(o, (int64_t)upow((uint64_t)a, (uint64_t)b)); /* b >= 0 checked */
    case OP_AND: EW(o, a & b);
    case OP_OR: EW(o, a | b);
    case OP_XOR: EW(o, a ^ b);
    case OP_LSHIFT: EW(o, (uint64_t)b < 64 ? (int64_t)((uint64_t)a << b) : 0);
    case OP_RSHIFT: EW(o, (uint64_t)b < 64 ? a >> b : (a < 0 ? -1 : 0));
    COMPARISONS(ob);
    default: break;
    }
}

static void kern_u64(int op, const uint64_t *x, const uint64_t *y, void *out, int64_t n)
{
    uint64_t *o = out;
    uint8_t *ob = out;
    switch (op) {
    case OP_ADD: EW(o, a + b);
    case OP_SUB: EW(o, a - b);
    case OP_MUL: EW(o, a * b);
    case OP_FLOORDIV: EW(o, b ? a / b : 0);
    case OP_MOD: EW(o, b ? a % b : 0);
    case OP_POW: EW(o, upow(a, b));
    case OP_AND: EW(o, a & b);
    case OP_OR: EW(o, a | b);
    case OP_XOR: EW(o, a ^ b);
    case OP_LSHIFT: EW(o, b < 64 ? a << b : 0);
    case OP_RSHIFT: EW(o, b < 64 ? a >> b : 0);
    COMPARISONS(ob);
    default: break;
    }
}

static void kern_f64(int op, const double *x, const double *y, void *out, int64_t n)
{
    double *o = out;
    uint8_t *ob = out;
    switch (op) {
    case OP_ADD: EW(o, a + b);
    case OP_SUB: EW(o, a - b);
    case OP_MUL: EW(o, a * b);
    case OP_DIV: EW(o, a / b);
    case OP_FLOORDIV: EW(o, f_floordiv(a, b));
    case OP_MOD: EW(o, f_mod(a, b));
    case OP_POW: EW(o, pow(a, b));
    case OP_SQRT: EW(o, ((void)b, sqrt(a)));
    COMPARISONS(ob);
    default: break;
    }
}

static void kern_bool(int op, const uint8_t *x, const uint8_t *y, void *out, int64_t n)
{
    uint8_t *o = out;
    switch (op) {
    case OP_ADD: /* NumPy: logical or */
    case OP_OR: EW(o, a | b);
    case OP_MUL: /* NumPy: logical and */
    case OP_AND: EW(o, a & b);
    case OP_XOR: EW(o, a ^ b);
    COMPARISONS(o);
    default: break;
    }
}

static void kernel(int op, kd_dtype t, const void *x, const void *y, void *out, int64_t n)
{
    switch (t) {
    case KD_INT64: kern_i64(op, x, y, out, n); break;
    case KD_UINT64: kern_u64(op, x, y, out, n); break;
    case KD_FLOAT64: kern_f64(op, x, y, out, n); break;
    default: kern_bool(op, x, y, out, n); break;
    }
}

/* ---- binop ------------------------------------------------------------------------ */

static int parse_op(kd_cmd *c, int *op)
{
    const char *s;
    if (kd_arg_str(c, "op", &s))
        return -1;
    for (int i = 0; i < OP_SQRT; i++)
        if (strcmp(s, op_names[i]) == 0) {
            *op = i;
            return 0;
        }
    return kd_fail(c, "ValueError", "%s: unknown operator '%.20s' (known: + - * / // %% ** "
                   "& | ^ << >> < <= > >= == !=)", c->cmd, s);
}

/* a negative exponent anywhere in y (this rank's block, or the scalar) once
 * it is cast to int64, the dtype an integer power computes in */
static bool has_negative_exponent(const operand *y)
{
    if (!y->arr) {
        int64_t e;
        kd_scalar_cast(&y->s, KD_INT64, &e);
        return e < 0;
    }
    if (y->arr->dtype != KD_INT64 && y->arr->dtype != KD_UINT64)
        return false;
    const int64_t *p = y->arr->data; /* uint64 above 2^63 casts to negative */
    int64_t neg = 0;
    for (int64_t i = 0; i < y->arr->n; i++)
        neg |= p[i];
    return neg < 0;
}

static int cmd_binop(kd_cmd *c)
{
    int op = 0;
    kd_dtype ct, rt;
    operand x, y;
    kd_array *out = NULL;
    if (parse_op(c, &op) || kd_arg_dtype(c, "ct", &ct) || kd_arg_dtype(c, "rt", &rt) ||
        get_operand(c, "a", "sa", &x) || get_operand(c, "b", "sb", &y))
        return -1;
    if (kd_has_arg(c, "out") && kd_arg_array(c, "out", &out))
        return -1;
    bool force = false; /* "stream": true takes the streaming path at any size (tests) */
    if (kd_has_arg(c, "stream") && kd_arg_bool(c, "stream", &force))
        return -1;
    const char *why = op_unsupported(op, ct);
    if (why)
        return kd_fail(c, "TypeError", "operator '%s' %s", op_names[op], why);
    if (is_comparison(op) && rt != KD_BOOL)
        return kd_fail(c, "TypeError", "comparison '%s' gives bool, not %s", op_names[op],
                       kd_dtype_name(rt));
    if (!x.arr && !y.arr)
        return kd_fail(c, "TypeError", "binop: at least one operand must be an array");
    if (x.arr && y.arr && x.arr->size != y.arr->size)
        return kd_fail(c, "ValueError", "operands could not be broadcast together: sizes "
                       "%lld and %lld", (long long)x.arr->size, (long long)y.arr->size);
    int64_t size = x.arr ? x.arr->size : y.arr->size;
    if (out && (out->size != size || out->dtype != rt))
        return kd_fail(c, "TypeError", "in-place '%s': the target is %lld x %s but the "
                       "result is %lld x %s", op_names[op], (long long)out->size,
                       kd_dtype_name(out->dtype), (long long)size, kd_dtype_name(rt));
    if (op == OP_POW && ct == KD_INT64 && size > 0 &&
        kd_agree(c, has_negative_exponent(&y) ? kd_fail(c, "ValueError", "Integers to "
                 "negative integer powers are not allowed.") : 0))
        return -1;
    /* NumPy's fast path: float64 array ** 0.5 is sqrt */
    if (op == OP_POW && ct == KD_FLOAT64 && x.arr && x.arr->dtype == KD_FLOAT64 && !y.arr) {
        double e;
        kd_scalar_cast(&y.s, KD_FLOAT64, &e);
        if (e == 0.5)
            op = OP_SQRT;
    }
    kd_array *res = out ? out : kd_new_array(c, rt, size);
    if (!res)
        return -1;

    _Alignas(64) uint64_t xbuf[CH], ybuf[CH], obuf[CH], cbuf[CH];
    prepare(&x, ct, xbuf);
    prepare(&y, ct, ybuf);
    kd_dtype kt = is_comparison(op) ? KD_BOOL : ct; /* what the kernel writes */
    size_t rw = kd_dtype_size(rt);
    bool stream = !out && (size_t)res->n * rw >= STREAM_MIN;
    stream = stream || (force && !out);
    for (int64_t off = 0; off < res->n; off += CH) {
        int64_t m = res->n - off < CH ? res->n - off : CH;
        const void *xp = chunk_of(&x, ct, off, m, xbuf);
        const void *yp = chunk_of(&y, ct, off, m, ybuf);
        void *dst = (char *)res->data + (size_t)off * rw;
        if (kt == rt && !stream) {
            kernel(op, ct, xp, yp, dst, m);
            continue;
        }
        kernel(op, ct, xp, yp, obuf, m);
        if (!stream) { /* here kt != rt */
            kd_cast(obuf, kt, dst, rt, m);
            continue;
        }
        const void *src = obuf;
        if (kt != rt) {
            kd_cast(obuf, kt, cbuf, rt, m);
            src = cbuf;
        }
        stream_out(dst, src, (size_t)m * rw);
    }
    if (stream)
        stream_done();
    kd_result_array(c, "array", res);
    return 0;
}

/* ---- fused multiply by a scalar and add (STREAM's triad) ------------------------ */

static int cmd_axpy(kd_cmd *c)
{
    kd_array *x, *y;
    kd_scalar sa;
    const char *form;
    double alpha;
    if (kd_arg_array(c, "x", &x) || kd_arg_array(c, "y", &y) ||
        kd_arg_scalar(c, "alpha", &sa) || kd_arg_str(c, "form", &form))
        return -1;
    int f = !strcmp(form, "x+ay") ? 0 : !strcmp(form, "x-ay") ? 1 : !strcmp(form, "ay-x") ? 2 : -1;
    if (f < 0)
        return kd_fail(c, "ValueError", "axpy: form must be x+ay, x-ay or ay-x");
    if (x->dtype != KD_FLOAT64 || y->dtype != KD_FLOAT64 || sa.dtype != KD_FLOAT64)
        return kd_fail(c, "TypeError", "axpy works on float64 arrays and a float64 scalar");
    if (x->size != y->size)
        return kd_fail(c, "ValueError", "operands could not be broadcast together: sizes "
                       "%lld and %lld", (long long)x->size, (long long)y->size);
    alpha = sa.v.f;
    kd_array *res = kd_new_array(c, KD_FLOAT64, x->size);
    if (!res)
        return -1;
    const double *xp = x->data, *yp = y->data;
    double *out = res->data;
    bool stream = (size_t)res->n * 8 >= STREAM_MIN;
    _Alignas(64) double buf[CH];
    for (int64_t off = 0; off < res->n; off += CH) {
        int64_t m = res->n - off < CH ? res->n - off : CH;
        double *d = stream ? buf : out + off;
        const double *a = xp + off, *b = yp + off;
        /* t = b * alpha is rounded before the sum, as in two operations */
        if (f == 0)
            for (int64_t i = 0; i < m; i++) { double t = b[i] * alpha; d[i] = a[i] + t; }
        else if (f == 1)
            for (int64_t i = 0; i < m; i++) { double t = b[i] * alpha; d[i] = a[i] - t; }
        else
            for (int64_t i = 0; i < m; i++) { double t = b[i] * alpha; d[i] = t - a[i]; }
        if (stream)
            stream_out(out + off, buf, (size_t)m * 8);
    }
    if (stream)
        stream_done();
    kd_result_array(c, "array", res);
    return 0;
}

/* ---- unary operators ------------------------------------------------------------------ */

static int cmd_unop(kd_cmd *c)
{
    const char *op;
    kd_array *a;
    if (kd_arg_str(c, "op", &op) || kd_arg_array(c, "array", &a))
        return -1;
    int which = !strcmp(op, "neg") ? 0 : !strcmp(op, "invert") ? 1 : !strcmp(op, "abs") ? 2 : -1;
    if (which < 0)
        return kd_fail(c, "ValueError", "unop: unknown operator '%.20s' (neg, invert, abs)", op);
    if (which == 0 && a->dtype == KD_BOOL)
        return kd_fail(c, "TypeError", "The numpy boolean negative, the `-` operator, is not "
                       "supported, use the `~` operator or the logical_not function instead.");
    if (which == 1 && a->dtype == KD_FLOAT64)
        return kd_fail(c, "TypeError", "ufunc 'invert' not supported for the input types, "
                       "and the inputs could not be safely coerced to any supported types "
                       "according to the casting rule ''safe''");
    kd_array *r = kd_new_array(c, a->dtype, a->size);
    if (!r)
        return -1;
    int64_t n = a->n;
    switch (a->dtype * 3 + which) {
#define UN(T, EXPR)                                                                 \
    do {                                                                            \
        const T *x = a->data;                                                       \
        T *o = r->data;                                                             \
        for (int64_t i = 0; i < n; i++) {                                           \
            T v = x[i];                                                             \
            o[i] = (EXPR);                                                          \
        }                                                                           \
    } while (0)
    case KD_INT64 * 3 + 0: UN(int64_t, (int64_t)(0 - (uint64_t)v)); break;
    case KD_INT64 * 3 + 1: UN(int64_t, ~v); break;
    case KD_INT64 * 3 + 2: UN(int64_t, v < 0 ? (int64_t)(0 - (uint64_t)v) : v); break;
    case KD_UINT64 * 3 + 0: UN(uint64_t, 0 - v); break;
    case KD_UINT64 * 3 + 1: UN(uint64_t, ~v); break;
    case KD_UINT64 * 3 + 2: UN(uint64_t, v); break;
    case KD_FLOAT64 * 3 + 0: UN(double, -v); break;
    case KD_FLOAT64 * 3 + 2: UN(double, fabs(v)); break;
    case KD_BOOL * 3 + 1: UN(uint8_t, !v); break;
    case KD_BOOL * 3 + 2: UN(uint8_t, v); break;
    default: break;
#undef UN
    }
    kd_result_array(c, "array", r);
    return 0;
}

/* ---- astype ----------------------------------------------------------------------------- */

static int cmd_astype(kd_cmd *c)
{
    kd_array *a;
    kd_dtype t;
    if (kd_arg_array(c, "array", &a) || kd_arg_dtype(c, "dtype", &t))
        return -1;
    kd_array *r = kd_new_array(c, t, a->size);
    if (!r)
        return -1;
    kd_cast(a->data, a->dtype, r->data, t, a->n);
    kd_result_array(c, "array", r);
    return 0;
}

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
    if (chunked(c, &f, &s))
        return -1;
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
        float_scan(c, prod, a->data, r->data, n);
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

/* ---- where ---------------------------------------------------------------------------------- */

static int cmd_where(kd_cmd *c)
{
    kd_array *cond;
    kd_dtype rt;
    operand x, y;
    if (kd_arg_array(c, "cond", &cond) || kd_arg_dtype(c, "rt", &rt) ||
        get_operand(c, "a", "sa", &x) || get_operand(c, "b", "sb", &y))
        return -1;
    const kd_array *arrs[2] = {x.arr, y.arr};
    for (int k = 0; k < 2; k++)
        if (arrs[k] && arrs[k]->size != cond->size)
            return kd_fail(c, "ValueError", "where: the condition has %lld elements but "
                           "'%s' has %lld", (long long)cond->size, k ? "b" : "a",
                           (long long)arrs[k]->size);
    kd_array *res = kd_new_array(c, rt, cond->size);
    if (!res)
        return -1;
    _Alignas(64) uint64_t xbuf[CH], ybuf[CH];
    _Alignas(64) uint8_t cbuf[CH];
    prepare(&x, rt, xbuf);
    prepare(&y, rt, ybuf);
    operand co = {.arr = cond};
    size_t w = kd_dtype_size(rt);
    for (int64_t off = 0; off < res->n; off += CH) {
        int64_t m = res->n - off < CH ? res->n - off : CH;
        const uint8_t *cp = chunk_of(&co, KD_BOOL, off, m, cbuf);
        const void *xp = chunk_of(&x, rt, off, m, xbuf);
        const void *yp = chunk_of(&y, rt, off, m, ybuf);
        void *dst = (char *)res->data + (size_t)off * w;
        if (w == 1) {
            const uint8_t *xa = xp, *ya = yp;
            uint8_t *o = dst;
            for (int64_t i = 0; i < m; i++)
                o[i] = cp[i] ? xa[i] : ya[i];
        } else { /* a mask select, branch-free so that it vectorises */
            const uint64_t *xa = xp, *ya = yp;
            uint64_t *o = dst;
            for (int64_t i = 0; i < m; i++) {
                uint64_t mask = 0 - (uint64_t)(cp[i] != 0);
                o[i] = (xa[i] & mask) | (ya[i] & ~mask);
            }
        }
    }
    kd_result_array(c, "array", res);
    return 0;
}

/* ---- concatenate ------------------------------------------------------------------------------ */

/* The result's blocks differ from the inputs': input k occupies global
 * [off_k, off_k + size_k) of the result, and every rank sends the part of
 * its block of k that falls into each rank's result block with one
 * MPI_Alltoallv per input (converted to the result dtype first). Both the
 * sent and the received pieces are contiguous, so data goes straight from
 * the input block into the result block. */
static int cmd_concatenate(kd_cmd *c)
{
    kd_array **in = NULL;
    int k = 0;
    kd_dtype rt;
    if (kd_arg_dtype(c, "rt", &rt) || kd_arg_array_list(c, "arrays", &in, &k))
        return -1;
    if (k == 0) {
        free(in);
        return kd_fail(c, "ValueError", "need at least one array to concatenate");
    }
    int64_t total = 0;
    for (int j = 0; j < k; j++) {
        if (in[j]->size > INT64_MAX / 16 - total) {
            free(in);
            return kd_fail(c, "ValueError", "concatenate: the result would be too large");
        }
        total += in[j]->size;
    }
    /* MPI counts and displacements are int: refuse blocks over 2^31 - 1 */
    int64_t biggest = total / c->nranks + 1;
    for (int j = 0; j < k; j++)
        if (in[j]->size / c->nranks + 1 > biggest)
            biggest = in[j]->size / c->nranks + 1;
    if (biggest > INT_MAX) {
        free(in);
        return kd_fail(c, "ValueError", "concatenate: blocks over 2^31 elements per rank "
                       "are not supported; use more ranks");
    }
    kd_array *res = kd_new_array(c, rt, total);
    int *cnt = malloc(sizeof(int) * 4 * (size_t)c->nranks);
    size_t w = kd_dtype_size(rt);
    size_t tmp_bytes = 0;
    for (int j = 0; j < k; j++)
        if (in[j]->dtype != rt && (size_t)in[j]->n * w > tmp_bytes)
            tmp_bytes = (size_t)in[j]->n * w;
    void *tmp = tmp_bytes ? kd_alloc_bytes(tmp_bytes) : NULL;
    int rc = (!cnt || (tmp_bytes && !tmp)) ? kd_fail(c, "MemoryError", "concatenate: rank "
                                                     "%d is out of memory", c->rank) : 0;
    if (!res || kd_agree(c, rc)) {
        free(in);
        free(cnt);
        kd_free_bytes(tmp, tmp_bytes);
        return -1;
    }
    int *scnt = cnt, *sdis = cnt + c->nranks, *rcnt = cnt + 2 * c->nranks,
        *rdis = cnt + 3 * c->nranks;
    int64_t base = 0; /* where input j starts in the result */
    for (int j = 0; j < k; j++) {
        kd_array *a = in[j];
        if (a->size == 0)
            continue;
        const void *src = a->data;
        if (a->dtype != rt) {
            kd_cast(a->data, a->dtype, tmp, rt, a->n);
            src = tmp;
        }
        for (int r = 0; r < c->nranks; r++) {
            int64_t rlo, rhi, slo, shi;
            /* what I send to r: my block of a, shifted, within r's result block */
            kd_block(total, c->nranks, r, &rlo, &rhi);
            int64_t lo = base + a->lo > rlo ? base + a->lo : rlo;
            int64_t hi = base + a->lo + a->n < rhi ? base + a->lo + a->n : rhi;
            scnt[r] = hi > lo ? (int)(hi - lo) : 0;
            sdis[r] = hi > lo ? (int)(lo - base - a->lo) : 0;
            /* what I get from r: r's block of a, shifted, within my result block */
            kd_block(a->size, c->nranks, r, &slo, &shi);
            lo = base + slo > res->lo ? base + slo : res->lo;
            hi = base + shi < res->lo + res->n ? base + shi : res->lo + res->n;
            rcnt[r] = hi > lo ? (int)(hi - lo) : 0;
            rdis[r] = hi > lo ? (int)(lo - res->lo) : 0;
        }
        MPI_Alltoallv(src, scnt, sdis, kd_dtype_mpi(rt), res->data, rcnt, rdis,
                      kd_dtype_mpi(rt), c->comm);
        base += a->size;
    }
    free(in);
    free(cnt);
    kd_free_bytes(tmp, tmp_bytes);
    kd_result_array(c, "array", res);
    return 0;
}

void kd_register_ops(void)
{
    kd_register("binop", cmd_binop);
    kd_register("axpy", cmd_axpy);
    kd_register("unop", cmd_unop);
    kd_register("astype", cmd_astype);
    kd_register("reduce", cmd_reduce);
    kd_register("scan", cmd_scan);
    kd_register("where", cmd_where);
    kd_register("concatenate", cmd_concatenate);
}
