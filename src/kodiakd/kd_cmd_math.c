/* SPDX-License-Identifier: Apache-2.0 */
/* kd_cmd_math.c — NumPy's element-wise math functions on pdarrays: sqrt,
 * log, exp, the trigonometric and hyperbolic functions, rounding, isnan and
 * friends, sign, square, logical_not.
 *
 * Command:
 *   efunc {op, array} -> array
 *
 * Arkouda's bit functions popcount, parity, clz, ctz take int64 or uint64
 * and keep the dtype (Chapel's BitOps: clz and ctz of 0 are 64). The float
 * functions report the floating-point flags they raise (kd_fpe_report),
 * under the function's NumPy name.
 *
 * Result dtypes follow NumPy 1.24 for int64, uint64 and float64 input. For
 * bool input NumPy computes the float functions in float16 (and square in
 * int8); pdarrays have neither, so the result is float64 (int64): the same
 * values, each exactly representable. sign of a bool array is a TypeError,
 * as in NumPy.
 *
 * The float functions call the C library (glibc's libm). NumPy on a machine
 * with AVX-512 uses SIMD versions of some of them (log, exp, sin, ...) that
 * may differ from libm in the last bits; the tests allow a few ULP there. */
#include "kd.h"

#include <fenv.h>
#include <math.h>
#include <string.h>

/* How an op's result dtype comes from its input's. */
typedef enum {
    EF_FLOAT,  /* computed in double, float64 result */
    EF_PRED,   /* a test of each value: bool result */
    EF_KEEP,   /* same dtype as the input (sign, square) */
    EF_BITS,   /* on the 64 bits of an int64/uint64: same dtype (popcount ...) */
} ef_kind;

/* One function: its NumPy name, how its dtype is chosen, and the double
 * version (for EF_FLOAT, and for float64 input of the others). */
typedef struct {
    const char *name;
    ef_kind kind;
    double (*f)(double);
} ef_op;

static double ef_sign(double v)
{
    /* NumPy: 1, -1, 0 for either zero, NaN for NaN */
    return v > 0 ? 1.0 : v < 0 ? -1.0 : v == 0 ? 0.0 : v;
}
static double ef_square(double v) { return v * v; }
static double ef_isnan(double v) { return isnan(v); }
static double ef_isinf(double v) { return isinf(v); }
static double ef_isfinite(double v) { return isfinite(v); }
static double ef_not(double v) { return v == 0; }

static uint64_t ef_popcount(uint64_t v) { return (uint64_t)__builtin_popcountll(v); }
static uint64_t ef_parity(uint64_t v) { return (uint64_t)__builtin_parityll(v); }
static uint64_t ef_clz(uint64_t v) { return v ? (uint64_t)__builtin_clzll(v) : 64; }
static uint64_t ef_ctz(uint64_t v) { return v ? (uint64_t)__builtin_ctzll(v) : 64; }

static const ef_op ef_ops[] = {
    {"sqrt", EF_FLOAT, sqrt},       {"cbrt", EF_FLOAT, cbrt},
    {"exp", EF_FLOAT, exp},         {"exp2", EF_FLOAT, exp2},
    {"expm1", EF_FLOAT, expm1},     {"log", EF_FLOAT, log},
    {"log2", EF_FLOAT, log2},       {"log10", EF_FLOAT, log10},
    {"log1p", EF_FLOAT, log1p},     {"sin", EF_FLOAT, sin},
    {"cos", EF_FLOAT, cos},         {"tan", EF_FLOAT, tan},
    {"arcsin", EF_FLOAT, asin},     {"arccos", EF_FLOAT, acos},
    {"arctan", EF_FLOAT, atan},     {"sinh", EF_FLOAT, sinh},
    {"cosh", EF_FLOAT, cosh},       {"tanh", EF_FLOAT, tanh},
    {"arcsinh", EF_FLOAT, asinh},   {"arccosh", EF_FLOAT, acosh},
    {"arctanh", EF_FLOAT, atanh},   {"floor", EF_FLOAT, floor},
    {"ceil", EF_FLOAT, ceil},       {"trunc", EF_FLOAT, trunc},
    {"rint", EF_FLOAT, rint},       {"isnan", EF_PRED, ef_isnan},
    {"isinf", EF_PRED, ef_isinf},   {"isfinite", EF_PRED, ef_isfinite},
    {"logical_not", EF_PRED, ef_not}, {"sign", EF_KEEP, ef_sign},
    {"square", EF_KEEP, ef_square},
    {"popcount", EF_BITS, NULL}, {"parity", EF_BITS, NULL},
    {"clz", EF_BITS, NULL},      {"ctz", EF_BITS, NULL},
};

/* the EF_BITS functions, by name */
static uint64_t (*ef_bits(const char *name))(uint64_t)
{
    return !strcmp(name, "popcount") ? ef_popcount : !strcmp(name, "parity") ? ef_parity
         : !strcmp(name, "clz") ? ef_clz : ef_ctz;
}

static const ef_op *ef_find(const char *name)
{
    for (size_t i = 0; i < sizeof ef_ops / sizeof ef_ops[0]; i++)
        if (!strcmp(ef_ops[i].name, name))
            return &ef_ops[i];
    return NULL;
}

/* The value of element i of a as a double (NumPy's cast). */
static inline double ef_get(const kd_array *a, int64_t i)
{
    switch (a->dtype) {
    case KD_INT64: return (double)((const int64_t *)a->data)[i];
    case KD_UINT64: return (double)((const uint64_t *)a->data)[i];
    case KD_FLOAT64: return ((const double *)a->data)[i];
    default: return ((const uint8_t *)a->data)[i] != 0;
    }
}

/* sign and square in the input's integer dtype, as NumPy (square wraps). */
static void ef_keep_int(const ef_op *op, const kd_array *a, kd_array *r)
{
    int sq = op->f == ef_square;
    int64_t n = a->n;
    if (a->dtype == KD_INT64) {
        const int64_t *x = a->data;
        int64_t *o = r->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = sq ? (int64_t)((uint64_t)x[i] * (uint64_t)x[i]) : (x[i] > 0) - (x[i] < 0);
    } else if (a->dtype == KD_UINT64) {
        const uint64_t *x = a->data;
        uint64_t *o = r->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = sq ? x[i] * x[i] : x[i] > 0;
    } else { /* bool square: int64 0 or 1 */
        const uint8_t *x = a->data;
        int64_t *o = r->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = x[i] != 0;
    }
}

static int cmd_efunc(kd_cmd *c)
{
    const char *name;
    kd_array *a;
    if (kd_arg_str(c, "op", &name) || kd_arg_array(c, "array", &a))
        return -1;
    const ef_op *op = ef_find(name);
    if (!op)
        return kd_fail(c, "ValueError", "efunc: unknown function '%.40s'", name);
    if (op->f == ef_sign && a->dtype == KD_BOOL)
        return kd_fail(c, "TypeError", "sign is not defined for bool arrays (NumPy's ufunc "
                       "'sign' has no loop for bool)");
    if (op->kind == EF_BITS && a->dtype != KD_INT64 && a->dtype != KD_UINT64)
        return kd_fail(c, "TypeError", "%s needs an int64 or uint64 array, not %s", op->name,
                       kd_dtype_name(a->dtype));
    kd_dtype rt = op->kind == EF_FLOAT ? KD_FLOAT64
                : op->kind == EF_PRED  ? KD_BOOL
                : a->dtype == KD_BOOL  ? KD_INT64 : a->dtype;
    kd_array *r = kd_new_array(c, rt, a->size);
    if (!r)
        return -1;
    int64_t n = a->n;
    /* the float functions, and square of float64, report their flags */
    bool fpe = op->kind == EF_FLOAT || (op->f == ef_square && a->dtype == KD_FLOAT64);
    if (fpe)
        feclearexcept(FE_ALL_EXCEPT);
    if (op->kind == EF_BITS) { /* int64 and uint64 have the same bits */
        const uint64_t *x = a->data;
        uint64_t *o = r->data;
        uint64_t (*f)(uint64_t) = ef_bits(op->name);
        for (int64_t i = 0; i < n; i++)
            o[i] = f(x[i]);
    } else if (op->kind == EF_KEEP && a->dtype != KD_FLOAT64) {
        ef_keep_int(op, a, r);
    } else if (rt == KD_FLOAT64) {
        double *o = r->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = op->f(ef_get(a, i));
    } else { /* a predicate */
        uint8_t *o = r->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = op->f(ef_get(a, i)) != 0;
    }
    if (fpe)
        kd_fpe_report(c, kd_fpe_flags(), op->name);
    kd_result_array(c, "array", r);
    return 0;
}

void kd_register_math(void)
{
    kd_register("efunc", cmd_efunc);
}
