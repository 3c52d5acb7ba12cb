/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_ops.c — element-wise arithmetic, casts, where and concatenate on
 * pdarrays, with NumPy's results (reductions and scans: kd_cmd_reduce.c).
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
#include "kd_ds.h"

#include <fenv.h>
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
    /* NumPy's binary functions (ak.arctan2, ...) and Arkouda's rotations */
    OP_ARCTAN2, OP_HYPOT, OP_MINIMUM, OP_MAXIMUM, OP_FMIN, OP_FMAX, OP_ROTL, OP_ROTR,
    OP_SQRT, /* internal: float64 array ** 0.5 */
    OP_COUNT
};

static const char *op_names[OP_COUNT] = {
    "+", "-", "*", "/", "//", "%", "**", "&", "|", "^", "<<", ">>",
    "<", "<=", ">", ">=", "==", "!=",
    "arctan2", "hypot", "minimum", "maximum", "fmin", "fmax", "rotl", "rotr", "sqrt"};

/* NumPy's ufunc for each operator, as its floating-point warnings name it */
static const char *op_ufunc[OP_COUNT] = {
    "add", "subtract", "multiply", "divide", "floor_divide", "remainder", "power",
    "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "arctan2", "hypot", "minimum", "maximum", "fmin", "fmax", "rotl", "rotr", "sqrt"};

static bool is_minmax(int op)
{
    return op >= OP_MINIMUM && op <= OP_FMAX;
}

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
            is_comparison(op) || is_minmax(op))
            return NULL;
        return "has no bool loop (compute it in int64)";
    case KD_FLOAT64:
        if ((op >= OP_AND && op <= OP_RSHIFT) || op == OP_ROTL || op == OP_ROTR)
            return "is not supported for float64 (bitwise, shift and rotate operators need "
                   "integers or bool)";
        return NULL;
    default:
        if (op == OP_DIV || op == OP_ARCTAN2 || op == OP_HYPOT)
            return "has no integer loop (it computes in float64)";
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

/* the remainder part of f_divmod alone: the quotient it does not need
 * could overflow and raise a flag NumPy's remainder does not report */
static inline double f_mod(double a, double b)
{
    double mod = fmod(a, b);
    if (!b)
        return mod;
    if (mod) {
        if (isless(b, 0) != isless(mod, 0))
            mod += b;
    } else {
        mod = copysign(0.0, b);
    }
    return mod;
}

/* Arkouda's rotations of the 64 bits (the count is taken modulo 64) */
static inline uint64_t rotl64(uint64_t a, uint64_t b)
{
    b &= 63;
    return (a << b) | (a >> ((64 - b) & 63));
}

static inline uint64_t rotr64(uint64_t a, uint64_t b)
{
    b &= 63;
    return (a >> b) | (a << ((64 - b) & 63));
}

/* NumPy's minimum and maximum propagate NaN (either side); fmin and fmax
 * ignore a NaN beside a number. Of two equal values (0.0 and -0.0) NumPy
 * gives the second, as the x86 minpd/maxpd it runs. */
static inline double f_minimum(double a, double b) { return isnan(a) ? a : a < b ? a : b; }
static inline double f_maximum(double a, double b) { return isnan(a) ? a : a > b ? a : b; }
static inline double f_fmin(double a, double b) { return isnan(b) ? a : a < b ? a : b; }
static inline double f_fmax(double a, double b) { return isnan(b) ? a : a > b ? a : b; }

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
    case OP_MINIMUM:
    case OP_FMIN: EW(o, a < b ? a : b);
    case OP_MAXIMUM:
    case OP_FMAX: EW(o, a > b ? a : b);
    case OP_ROTL: EW(o, (int64_t)rotl64((uint64_t)a, (uint64_t)b));
    case OP_ROTR: EW(o, (int64_t)rotr64((uint64_t)a, (uint64_t)b));
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
    case OP_MINIMUM:
    case OP_FMIN: EW(o, a < b ? a : b);
    case OP_MAXIMUM:
    case OP_FMAX: EW(o, a > b ? a : b);
    case OP_ROTL: EW(o, rotl64(a, b));
    case OP_ROTR: EW(o, rotr64(a, b));
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
    case OP_ARCTAN2: EW(o, atan2(a, b));
    case OP_HYPOT: EW(o, hypot(a, b));
    case OP_MINIMUM: EW(o, f_minimum(a, b));
    case OP_MAXIMUM: EW(o, f_maximum(a, b));
    case OP_FMIN: EW(o, f_fmin(a, b));
    case OP_FMAX: EW(o, f_fmax(a, b));
    COMPARISONS(ob);
    default: break;
    }
}

static void kern_bool(int op, const uint8_t *x, const uint8_t *y, void *out, int64_t n)
{
    uint8_t *o = out;
    switch (op) {
    case OP_ADD: /* NumPy: logical or */
    case OP_MAXIMUM:
    case OP_FMAX:
    case OP_OR: EW(o, a | b);
    case OP_MUL: /* NumPy: logical and */
    case OP_MINIMUM:
    case OP_FMIN:
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
                   "& | ^ << >> < <= > >= == != arctan2 hypot minimum maximum fmin fmax "
                   "rotl rotr)", c->cmd, s);
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

/* NumPy's flags for integer // and %: divide for a zero divisor, overflow
 * for INT64_MIN // -1 (this rank's block) */
static int int_div_flags(const operand *x, const operand *y, kd_dtype ct, bool floordiv)
{
    int64_t n = x->arr ? x->arr->n : y->arr->n;
    _Alignas(64) uint64_t xbuf[CH], ybuf[CH];
    prepare(x, ct, xbuf);
    prepare(y, ct, ybuf);
    int flags = 0;
    for (int64_t off = 0; off < n; off += CH) {
        int64_t m = n - off < CH ? n - off : CH;
        const uint64_t *yp = chunk_of(y, ct, off, m, ybuf);
        bool zero = false, ovf = false;
        for (int64_t i = 0; i < m; i++)
            zero |= yp[i] == 0;
        if (floordiv && ct == KD_INT64) {
            const int64_t *xp = chunk_of(x, ct, off, m, xbuf);
            const int64_t *ys = (const int64_t *)yp;
            for (int64_t i = 0; i < m; i++)
                ovf |= xp[i] == INT64_MIN && ys[i] == -1;
        }
        flags |= (zero ? KD_FPE_DIVIDE : 0) | (ovf ? KD_FPE_OVERFLOW : 0);
    }
    return flags;
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

    /* NumPy's floating-point error flags (see kd_fpe_report): the integer
     * ones NumPy raises itself are found by looking at the divisors */
    bool fpe = !is_comparison(op) && !is_minmax(op) && op != OP_ROTL && op != OP_ROTR;
    int flags = 0;
    const char *ufunc = op_ufunc[op];
    if (fpe && ct != KD_FLOAT64 && (op == OP_FLOORDIV || op == OP_MOD))
        flags = int_div_flags(&x, &y, ct, op == OP_FLOORDIV);
    if (op == OP_POW && ct == KD_FLOAT64 && x.arr && !y.arr) { /* NumPy's fast paths */
        double e;
        kd_scalar_cast(&y.s, KD_FLOAT64, &e);
        ufunc = e == -1.0 ? "reciprocal" : e == 2.0 ? "square" : ufunc;
    }
    if (fpe && ct == KD_FLOAT64)
        feclearexcept(FE_ALL_EXCEPT);

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
    if (fpe && ct == KD_FLOAT64)
        flags |= kd_fpe_flags();
    if (fpe)
        kd_fpe_report(c, flags, ufunc);
    kd_result_array(c, "array", res);
    return 0;
}

/* ---- fused multiply by a scalar and add (STREAM's triad) ------------------------ */

/* the flags of axpy's multiplies and of its adds, apart (volatile: the
 * values are computed only for their flags) */
static void axpy_flags(const double *xp, const double *yp, double alpha, int f, int64_t n,
                       int *mul, int *add)
{
    _Alignas(64) double t[CH];
    volatile double sink = 0;
    for (int64_t off = 0; off < n; off += CH) {
        int64_t m = n - off < CH ? n - off : CH;
        feclearexcept(FE_ALL_EXCEPT);
        for (int64_t i = 0; i < m; i++)
            t[i] = yp[off + i] * alpha;
        *mul |= kd_fpe_flags();
        feclearexcept(FE_ALL_EXCEPT);
        for (int64_t i = 0; i < m; i++)
            sink = f == 0 ? xp[off + i] + t[i] : f == 1 ? xp[off + i] - t[i] : t[i] - xp[off + i];
        *add |= kd_fpe_flags();
    }
    (void)sink;
}

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
    feclearexcept(FE_ALL_EXCEPT);
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
    /* NumPy would warn for the multiply and the add/subtract separately: in
     * the rare case of a flag, find which raised what (a second pass) */
    int mul = 0, add = 0;
    if (kd_fpe_flags())
        axpy_flags(xp, yp, alpha, f, res->n, &mul, &add);
    kd_fpe_report(c, mul, "multiply");
    kd_fpe_report(c, add, f == 0 ? "add" : "subtract");
    kd_result_array(c, "array", res);
    return 0;
}

/* ---- unary operators ------------------------------------------------------------------ */

/* Element-wise op ("neg", "invert", "abs") over n elements of dtype t, into
 * out (dtype t). NULL, or why NumPy refuses (nothing written). Also used
 * for derived columns (kd_cmd_dsderive.c). */
const char *kd_ew_unop(const char *op, kd_dtype t, const void *in, void *out, int64_t n)
{
    int which = !strcmp(op, "neg") ? 0 : !strcmp(op, "invert") ? 1 : !strcmp(op, "abs") ? 2 : -1;
    if (which < 0)
        return "unknown operator (neg, invert, abs)";
    if (which == 0 && t == KD_BOOL)
        return "The numpy boolean negative, the `-` operator, is not supported, use the `~` "
               "operator or the logical_not function instead.";
    if (which == 1 && t == KD_FLOAT64)
        return "ufunc 'invert' not supported for the input types, and the inputs could not "
               "be safely coerced to any supported types according to the casting rule "
               "''safe''";
    switch (t * 3 + which) {
#define UN(T, EXPR)                                                                 \
    do {                                                                            \
        const T *x = in;                                                            \
        T *o = out;                                                                 \
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
    return NULL;
}

static int cmd_unop(kd_cmd *c)
{
    const char *op;
    kd_array *a;
    if (kd_arg_str(c, "op", &op) || kd_arg_array(c, "array", &a))
        return -1;
    if (strcmp(op, "neg") && strcmp(op, "invert") && strcmp(op, "abs"))
        return kd_fail(c, "ValueError", "unop: unknown operator '%.20s' (neg, invert, abs)", op);
    const char *why = kd_ew_unop(op, a->dtype, a->data, a->data, 0);
    if (why)
        return kd_fail(c, "TypeError", "%s", why);
    kd_array *r = kd_new_array(c, a->dtype, a->size);
    if (!r)
        return -1;
    kd_ew_unop(op, a->dtype, a->data, r->data, a->n);
    kd_result_array(c, "array", r);
    return 0;
}

/* Element-wise x OP y (op as binop names it) over n elements already in
 * dtype ct; out gets bool for a comparison, else ct. `y_half` says y is the
 * scalar 0.5 and x was float64 (NumPy's sqrt fast path for **). NULL, or
 * why there is no such loop (nothing written): an integer ** with a
 * negative exponent is refused too, as binop does. For derived columns
 * (kd_cmd_dsderive.c): the same kernels as binop. */
const char *kd_ew_binop(const char *opname, kd_dtype ct, const void *x, const void *y,
                        bool y_half, void *out, int64_t n)
{
    int op = -1;
    for (int i = 0; i < OP_SQRT; i++)
        if (strcmp(opname, op_names[i]) == 0)
            op = i;
    if (op < 0)
        return "unknown operator";
    const char *why = op_unsupported(op, ct);
    if (why)
        return why;
    if (op == OP_POW && (ct == KD_INT64 || ct == KD_UINT64)) {
        const int64_t *e = y;
        int64_t neg = 0;
        for (int64_t i = 0; i < n; i++)
            neg |= e[i];
        if (ct == KD_INT64 && neg < 0)
            return "Integers to negative integer powers are not allowed.";
    }
    if (op == OP_POW && ct == KD_FLOAT64 && y_half)
        op = OP_SQRT;
    kernel(op, ct, x, y, out, n);
    return NULL;
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
    kd_register("where", cmd_where);
    kd_register("concatenate", cmd_concatenate);
}
