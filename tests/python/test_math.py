# SPDX-License-Identifier: Apache-2.0
"""Element-wise math functions (ak.sqrt, ak.log, ak.isnan, ak.round, ...)
against NumPy, for every dtype, at 1, 2 and 3 ranks."""
import numpy as np
import pytest

from test_ops import data

EFUNCS = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
          "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
          "arcsinh", "arccosh", "arctanh", "floor", "ceil", "trunc", "rint",
          "isnan", "isinf", "isfinite", "logical_not", "sign", "square"]
DTYPES = [np.int64, np.uint64, np.float64, np.bool_]
DT_IDS = ["i64", "u64", "f64", "bool"]
# functions that NumPy may compute with SIMD code (SVML on AVX-512) that is
# not correctly rounded; kodiakd uses the C library. Exact elsewhere.
MAX_ULPS = 4
EXACT = {"sqrt", "floor", "ceil", "trunc", "rint", "isnan", "isinf", "isfinite",
         "logical_not", "sign", "square"}


def expected(name, x):
    with np.errstate(all="ignore"):
        exp = getattr(np, name)(x)
    # pdarrays have no float16 or int8: NumPy's bool results widen
    kind = exp.dtype.kind
    return exp.astype({"f": np.float64, "i": np.int64, "u": np.uint64, "b": np.bool_}[kind])


def check(got, exp, exact):
    assert got.dtype == exp.dtype, (got.dtype, exp.dtype)
    if exp.dtype != np.float64 or exact:
        np.testing.assert_array_equal(got, exp)
        if exp.dtype == np.float64:
            ok = ~np.isnan(exp)
            np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(exp[ok]))
        return
    fin = np.isfinite(exp) & (exp != 0)
    np.testing.assert_array_equal(got[~fin], exp[~fin])
    np.testing.assert_array_max_ulp(got[fin], exp[fin], maxulp=MAX_ULPS)


@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("name", EFUNCS)
def test_function_matches_numpy(ak, name, dt):
    for n in (0, 1, 7, 1001):
        x = data(dt, n, 21)
        if name == "sign" and dt == np.bool_:
            with pytest.raises(TypeError, match="sign is not defined for bool"):
                ak.sign(ak.array(x))
            continue
        got = getattr(ak, name)(ak.array(x)).to_ndarray()
        # for bool input NumPy rounds float functions to float16: compare
        # with the float64 result of the same values instead
        src = x.astype(np.float64) if dt == np.bool_ and name not in (
            "isnan", "isinf", "isfinite", "logical_not", "square") else x
        check(got, expected(name, src), name in EXACT)


def test_values_at_the_edges_of_each_domain(ak):
    x = np.array([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -0.5, np.inf, -np.inf, np.nan,
                  1e-310, 1e308, 710.0, -745.5])
    a = ak.array(x)
    for name in EFUNCS:
        check(getattr(ak, name)(a).to_ndarray(), expected(name, x), name in EXACT)


@pytest.mark.parametrize("decimals", [0, 1, 2, -1, -2])
def test_round_halves_to_even_at_any_decimals_like_numpy(ak, decimals):
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 1.25, 1.35, 12345.678, -0.0, np.nan,
                  np.inf, 15.0, 25.0, 0.125])
    a = ak.array(x)
    np.testing.assert_array_equal(ak.round(a, decimals).to_ndarray(), np.round(x, decimals))
    np.testing.assert_array_equal(a.round(decimals).to_ndarray(), x.round(decimals))
    np.testing.assert_array_equal(round(a).to_ndarray(), np.round(x))


def test_round_of_an_integer_array_is_a_copy(ak):
    x = np.array([5, -3, 2**62], dtype=np.int64)
    a = ak.array(x)
    r = ak.round(a)
    assert r.name != a.name and r.dtype == np.int64
    np.testing.assert_array_equal(r.to_ndarray(), x)
    with pytest.raises(TypeError, match="decimals must be an integer"):
        ak.round(a, 1.5)


def test_functions_need_a_pdarray(ak):
    with pytest.raises(TypeError, match="ak.sqrt needs a pdarray"):
        ak.sqrt([1.0, 4.0])
    with pytest.raises(TypeError, match="ak.isnan needs a pdarray"):
        ak.isnan(np.array([1.0]))


def test_unknown_function_is_refused_by_the_server(ak):
    from kodiak import client
    a = ak.arange(5)
    with pytest.raises(ValueError, match="unknown function 'gamma'"):
        client.generic_msg("efunc", {"op": "gamma", "array": a.name})
    assert a.tolist() == [0, 1, 2, 3, 4]


def test_power_and_count_nonzero(ak):
    x = np.array([0.0, 1.5, -2.0, 0.0, np.nan])
    a = ak.array(x)
    np.testing.assert_array_equal(ak.power(a, 2).to_ndarray(), np.power(x, 2))
    np.testing.assert_array_equal(ak.power(2, a).to_ndarray(), np.power(2, x))
    assert ak.count_nonzero(a) == np.count_nonzero(x)
    b = np.array([True, False, True])
    assert ak.count_nonzero(ak.array(b)) == 2
