# SPDX-License-Identifier: Apache-2.0
"""Issue 17, part A — the breadth of the Arkouda/NumPy API against NumPy at
1, 2 and 3 ranks: axis= and keepdims on reductions and scans, the binary
functions (arctan2 ... fmax), Arkouda's bit functions, isclose/allclose/
array_equal, logspace/geomspace, hstack/vstack/dot, where with scalars,
out=/where=, ak.seterr/errstate (flags computed by kodiakd), dtype helpers
and ak.testing."""
import io
import operator
import warnings

import numpy as np
import pytest

from test_ops import data

DTYPES = [np.int64, np.uint64, np.float64, np.bool_]
DT_IDS = ["i64", "u64", "f64", "bool"]
SIZES = [0, 1, 7, 1001]


def quiet(fn, *args, **kw):
    """fn(*args) with NumPy's and kodiak's warnings silenced."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def close(got, exp, ulps):
    """As same(), but finite nonzero floats may differ by `ulps` units in the
    last place (NumPy's SIMD arctan2 is not correctly rounded)."""
    got = got.to_ndarray()
    exp = np.asarray(exp)
    assert got.dtype == exp.dtype == np.float64
    fin = np.isfinite(exp) & (exp != 0)
    same(got[~fin], exp[~fin])
    np.testing.assert_array_max_ulp(got[fin], exp[fin], maxulp=ulps)


def np_ref(npfn, x, y):
    """npfn(x, y), with NumPy's float16 results of bool inputs computed in
    float64 instead (pdarrays have no float16: the server computes float64)."""
    exp = quiet(npfn, x, y)
    if np.asarray(exp).dtype == np.float16:
        exp = quiet(npfn, np.asarray(x, np.float64), np.asarray(y, np.float64))
    return exp


def same(got, exp):
    """Same dtype and values, NaN where NumPy has NaN, and the sign of zero."""
    got = got.to_ndarray() if hasattr(got, "to_ndarray") else np.asarray(got)
    exp = np.asarray(exp)
    if exp.dtype.kind in "biuf":
        exp = exp.astype({"f": np.float64, "i": np.int64, "u": np.uint64, "b": np.bool_}[
            exp.dtype.kind])
    assert got.dtype == exp.dtype, (got.dtype, exp.dtype)
    np.testing.assert_array_equal(got, exp)
    if exp.dtype == np.float64:
        ok = ~np.isnan(exp)
        np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(exp[ok]))


# ---- axis= and keepdims ---------------------------------------------------------------------

REDUCTIONS = ["sum", "prod", "min", "max", "mean", "var", "std", "any", "all", "argmin",
              "argmax"]


@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_with_axis_and_keepdims_matches_numpy(ak, name, dt):
    tuple_ok = name not in ("argmin", "argmax")
    for n in (1, 7, 1001):
        x = data(dt, n, 5)
        a = ak.array(x)
        for axis in [None, 0, -1] + ([(0,), (-1,)] if tuple_ok else []):
            for keepdims in (False, True):
                exp = quiet(getattr(x, name), axis=axis, keepdims=keepdims)
                for got in (quiet(getattr(a, name), axis=axis, keepdims=keepdims),
                            quiet(getattr(ak, name), a, axis=axis, keepdims=keepdims)):
                    if keepdims:
                        assert isinstance(got, ak.pdarray) and got.size == 1
                        got = got.to_ndarray()
                        assert exp.shape == (1,)
                    else:
                        assert np.ndim(got) == 0
                        assert got.dtype == exp.dtype, (got.dtype, exp.dtype)
                    if np.asarray(exp).dtype == np.float64:
                        np.testing.assert_allclose(got, exp, rtol=1e-9, equal_nan=True)
                    else:
                        np.testing.assert_array_equal(got, exp)


@pytest.mark.parametrize("name", REDUCTIONS + ["cumsum", "cumprod", "is_sorted"])
def test_bad_axis_is_numpys_axiserror_with_numpys_message(ak, name):
    a = ak.arange(3)
    probe = "argmin" if name == "is_sorted" else name
    for axis in (1, -2, 5):
        with pytest.raises(np.AxisError) as want:
            getattr(np.arange(3), probe)(axis=axis)
        with pytest.raises(np.AxisError) as got:
            getattr(a, name)(axis=axis)
        assert str(got.value) == str(want.value)
        with pytest.raises(np.AxisError):
            getattr(ak, name)(a, axis=axis)
    with pytest.raises(TypeError):
        getattr(a, name)(axis=0.5)
    assert getattr(a, "size") == 3  # the array is untouched


def test_repeated_axis_and_tuple_axis_of_arg_functions_fail_as_numpy(ak):
    a = ak.arange(3)
    with pytest.raises(ValueError, match="duplicate value in 'axis'"):
        a.sum(axis=(0, 0))
    with pytest.raises(TypeError):
        a.argmax(axis=(0,))


@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
def test_scans_with_axis_match_numpy_and_bool_gives_int64(ak, dt):
    for n in SIZES:
        x = data(dt, n, 9)
        a = ak.array(x)
        for name in ("cumsum", "cumprod"):
            for axis in (None, 0, -1):
                exp = quiet(getattr(np, name), x, axis=axis)
                got = quiet(getattr(ak, name), a, axis=axis)
                if dt == np.float64:
                    assert got.dtype == exp.dtype
                    np.testing.assert_allclose(got.to_ndarray(), exp, rtol=1e-9)
                else:
                    same(got, exp)
                same(quiet(getattr(a, name), axis=axis), quiet(getattr(a, name)))
        assert bool(a.is_sorted(axis=0)) == bool(np.all(x[:-1] <= x[1:]))


def test_empty_reductions_with_keepdims(ak):
    a = ak.zeros(0)
    same(a.sum(keepdims=True), np.zeros(0).sum(keepdims=True))
    same(a.prod(axis=0, keepdims=True), np.zeros(0).prod(axis=0, keepdims=True))
    with pytest.raises(ValueError):
        a.max(axis=0, keepdims=True)


# ---- binary functions -----------------------------------------------------------------------

BINARY = ["arctan2", "hypot", "minimum", "maximum", "fmin", "fmax"]
SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e308, -1e-308, 5e-324])


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("dx", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("dy", DTYPES, ids=DT_IDS)
def test_binary_function_matches_numpy(ak, name, dx, dy):
    npfn, akfn = getattr(np, name), getattr(ak, name)

    def check(got, exp):
        close(got, exp, 2) if name == "arctan2" else same(got, exp)
    for n in (0, 1, 7, 1001):
        x, y = data(dx, n, 1), data(dy, n, 2)
        check(quiet(akfn, ak.array(x), ak.array(y)), np_ref(npfn, x, y))
    x = data(dx, 50, 3)
    for s in (0, 3, -2, 2.5, True, np.nan, np.uint64(7), -np.inf):
        check(quiet(akfn, ak.array(x), s), np_ref(npfn, x, s))
        check(quiet(akfn, s, ak.array(x)), np_ref(npfn, s, x))


@pytest.mark.parametrize("name", BINARY)
def test_binary_function_nan_inf_and_signed_zero_rules_are_numpys(ak, name):
    x = np.repeat(SPECIAL, SPECIAL.size)
    y = np.tile(SPECIAL, SPECIAL.size)
    got, exp = quiet(getattr(ak, name), ak.array(x), ak.array(y)), quiet(getattr(np, name), x, y)
    close(got, exp, 2) if name == "arctan2" else same(got, exp)


def test_binary_function_errors(ak):
    with pytest.raises(ValueError, match="sizes 3 and 2"):
        ak.maximum(ak.arange(3), ak.arange(2))
    with pytest.raises(TypeError, match="at least one pdarray"):
        ak.hypot(3.0, 4.0)
    with pytest.raises(TypeError, match="pdarrays or numbers"):
        ak.fmin(ak.arange(3), "a")
    with pytest.raises(OverflowError):
        ak.minimum(ak.arange(3), 2**70)


# ---- Arkouda's bit functions ----------------------------------------------------------------

def _bits_ref(name, v):
    u = int(v) % 2**64
    return {"popcount": bin(u).count("1"), "parity": bin(u).count("1") % 2,
            "clz": 64 - u.bit_length(), "ctz": (u & -u).bit_length() - 1 if u else 64}[name]


@pytest.mark.parametrize("name", ["popcount", "parity", "clz", "ctz"])
@pytest.mark.parametrize("dt", [np.int64, np.uint64], ids=["i64", "u64"])
def test_bit_function_matches_python_bit_arithmetic(ak, name, dt):
    for n in SIZES:
        x = data(dt, n, 4)
        exp = np.array([_bits_ref(name, v) for v in x], dtype=np.uint64).astype(dt)
        same(getattr(ak, name)(ak.array(x)), exp)
    if name == "popcount" and hasattr(np, "bitwise_count"):  # NumPy 2
        x = data(dt, 100, 5)
        same(ak.popcount(ak.array(x)), np.bitwise_count(x).astype(dt))


@pytest.mark.parametrize("name", ["popcount", "parity", "clz", "ctz"])
def test_bit_functions_refuse_float_and_bool(ak, name):
    for x in (ak.array([1.5]), ak.array([True])):
        with pytest.raises(TypeError, match="int64 or uint64"):
            getattr(ak, name)(x)


@pytest.mark.parametrize("dt", [np.int64, np.uint64], ids=["i64", "u64"])
def test_rotl_rotr_match_python_bit_arithmetic(ak, dt):
    x = data(dt, 301, 6)
    rot = np.random.default_rng(7).integers(-70, 140, x.size)
    mask = 2**64 - 1

    def rl(v, r):
        u, r = int(v) % 2**64, int(r) % 64
        return ((u << r) | (u >> (64 - r))) & mask

    def rr(v, r):
        return rl(v, (64 - int(r) % 64) % 64)

    for name, ref in (("rotl", rl), ("rotr", rr)):
        exp = np.array([ref(v, r) for v, r in zip(x, rot)], dtype=np.uint64).astype(dt)
        same(getattr(ak, name)(ak.array(x), ak.array(rot)), exp)
        exp = np.array([ref(v, 13) for v in x], dtype=np.uint64).astype(dt)
        same(getattr(ak, name)(ak.array(x), 13), exp)
        exp = np.array([ref(5, r) for r in rot], dtype=np.uint64).astype(np.int64)
        same(getattr(ak, name)(5, ak.array(rot)), exp)
    with pytest.raises(TypeError):
        ak.rotl(ak.array([1.0]), 1)
    with pytest.raises(TypeError):
        ak.rotr(ak.arange(3), 1.5)


# ---- whole-array comparisons ----------------------------------------------------------------

@pytest.mark.parametrize("dx", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("dy", DTYPES, ids=DT_IDS)
def test_isclose_allclose_array_equal_match_numpy(ak, dx, dy):
    for n in (0, 7, 301):
        x, y = data(dx, n, 11), data(dy, n, 11)
        if dx == dy == np.float64:
            y = quiet(lambda: y + y * 1e-6 * (np.arange(n) % 3 - 1))  # some close, some not
        a, b = ak.array(x), ak.array(y)
        for kw in ({}, {"equal_nan": True}, {"rtol": 1e-3, "atol": 0.5}):
            same(ak.isclose(a, b, **kw), quiet(np.isclose, x, y, **kw))
            assert ak.allclose(a, b, **kw) == quiet(np.allclose, x, y, **kw)
            assert type(ak.allclose(a, b, **kw)) is bool
        for en in (False, True):
            assert ak.array_equal(a, b, equal_nan=en) == quiet(np.array_equal, x, y, equal_nan=en)
            assert ak.array_equal(a, a, equal_nan=en) == quiet(np.array_equal, x, x, equal_nan=en)
    x = data(dx, 40, 12)
    for s in (0, 1.5, np.nan, np.inf):
        same(ak.isclose(ak.array(x), s), quiet(np.isclose, x, s))
        same(ak.isclose(s, ak.array(x), equal_nan=True), quiet(np.isclose, s, x, equal_nan=True))


def test_array_equal_of_different_sizes_is_false(ak):
    assert ak.array_equal(ak.arange(3), ak.arange(4)) is False
    with pytest.raises(TypeError):
        ak.array_equal(ak.arange(3), [0, 1, 2])


# ---- sequences, stacking, dot ---------------------------------------------------------------

def test_logspace_and_geomspace_match_numpy(ak):
    for args in ((0, 3, 4), (-2, 2, 9), (1.5, -1.5, 7), (0, 10, 0), (2, 2, 1)):
        for endpoint in (True, False):
            np.testing.assert_allclose(ak.logspace(*args, endpoint=endpoint).to_ndarray(),
                                       np.logspace(*args, endpoint=endpoint), rtol=1e-14)
            np.testing.assert_allclose(
                ak.logspace(*args, endpoint=endpoint, base=2.0).to_ndarray(),
                np.logspace(*args, endpoint=endpoint, base=2.0), rtol=1e-14)
    for args in ((1, 1000, 4), (-1, -1e6, 7), (3.5, 0.01, 11), (2, 9, 1), (1, 5, 0)):
        for endpoint in (True, False):
            got = ak.geomspace(*args, endpoint=endpoint).to_ndarray()
            exp = np.geomspace(*args, endpoint=endpoint)
            np.testing.assert_allclose(got, exp, rtol=1e-14)
            if exp.size:  # NumPy sets the end points exactly
                assert got[0] == exp[0] and (not endpoint or got[-1] == exp[-1])
    same(ak.logspace(0, 3, 4, dtype=ak.int64), np.logspace(0, 3, 4, dtype=np.int64))
    with pytest.raises(ValueError, match="Geometric sequence cannot include zero"):
        ak.geomspace(0, 10, 3)
    with pytest.raises(TypeError):
        ak.logspace(ak.arange(2), 3)


def test_hstack_vstack_dot_match_numpy(ak):
    x, y, z = data(np.int64, 7, 1), data(np.float64, 7, 2), data(np.bool_, 7, 3)
    a, b, c = ak.array(x), ak.array(y), ak.array(z)
    same(ak.hstack([a, b, c]), np.hstack([x, y, z]))
    same(ak.hstack((a,)), np.hstack((x,)))
    same(ak.vstack([a, b, c]), np.vstack([x, y, z]).ravel())
    with pytest.raises(ValueError) as want:
        np.vstack([x, y[:3]])
    with pytest.raises(ValueError) as got:
        ak.vstack([a, b[:3]])
    assert str(got.value) == str(want.value)
    with pytest.raises(ValueError):
        ak.hstack([])
    for p, q, pn, qn in ((a, a, x, x), (c, c, z, z), (a, c, x, z)):
        got, exp = ak.dot(p, q), np.dot(pn, qn)
        assert got == exp and got.dtype == exp.dtype
    got, exp = ak.dot(b, b), np.dot(y, y)
    assert got.dtype == exp.dtype and np.isclose(got, exp, rtol=1e-12)
    same(ak.dot(a, 3), np.dot(x, 3))
    with pytest.raises(ValueError) as want:
        np.dot(x, x[:3])
    with pytest.raises(ValueError) as got:
        ak.dot(a, a[:3])
    assert str(got.value) == str(want.value)


def test_fill_sets_every_element_as_ndarray_fill(ak):
    for dt, v in ((np.int64, 7.9), (np.float64, -2), (np.bool_, 3), (np.uint64, 2**64 - 1)):
        x = np.zeros(11, dt)
        a = ak.array(x)
        a.fill(v)
        x.fill(v)
        same(a, x)


# ---- where ------------------------------------------------------------------------------------

def test_where_with_a_scalar_condition_and_scalar_sides(ak):
    x, y = data(np.int64, 9, 1), data(np.float64, 9, 2)
    for cond in (True, False, 0, 2, np.bool_(True)):
        same(ak.where(cond, ak.array(x), ak.array(y)), np.where(cond, x, y))
        same(ak.where(cond, ak.array(x), 0.5), np.where(cond, x, 0.5))
        same(ak.where(cond, 7, ak.array(y)), np.where(cond, 7, y))
        got, exp = ak.where(cond, 1, 2.5), np.where(cond, 1, 2.5)[()]
        assert got == exp and type(got) is type(exp)
    c = data(np.bool_, 9, 3)
    same(ak.where(ak.array(c), 1, 2.5), np.where(c, 1, 2.5))
    same(ak.where(ak.array(c), True, 3), np.where(c, True, 3))
    with pytest.raises(ValueError):
        ak.where(True, ak.arange(3), ak.arange(4))
    with pytest.raises(TypeError):
        ak.where("yes", ak.arange(3), 1)


# ---- out= and where= ------------------------------------------------------------------------

def test_out_and_where_on_elementwise_functions_match_numpy(ak):
    x = np.abs(data(np.float64, 50, 4))
    m = data(np.bool_, 50, 5)
    for name in ("sqrt", "rint", "trunc", "floor", "abs", "isnan"):
        npfn, akfn = getattr(np, name), getattr(ak, name)
        exp = npfn(x).astype(np.float64) if name != "isnan" else npfn(x)
        out = ak.zeros(50, dtype=exp.dtype)
        res = akfn(ak.array(x), out=out)
        assert res is out
        same(out, exp)
        o2 = np.full(50, 3, exp.dtype)
        npfn(x, out=o2, where=m)
        out = ak.full(50, 3, dtype=exp.dtype)
        akfn(ak.array(x), out=out, where=ak.array(m))
        same(out, o2)
    # without out: where False keeps the input's value (Arkouda's rule)
    same(ak.sqrt(ak.array(x), where=ak.array(m)), np.where(m, np.sqrt(x), x))
    same(ak.sqrt(ak.array(x), where=False), x)
    same(ak.maximum(ak.array(x), 1.0, where=ak.array(m)), np.where(m, np.maximum(x, 1.0), x))
    xi = np.arange(50) - 20
    o2 = np.zeros(50)
    np.power(xi, 3, out=o2, where=m)
    out = ak.zeros(50)
    assert ak.power(ak.array(xi), 3, out=out, where=ak.array(m)) is out
    same(out, o2)
    # as NumPy, elements left out by where= are not computed: no warning
    y = np.array([4.0, -1.0, 0.0, 9.0])
    keep = np.array([True, False, False, True])
    with np.errstate(all="warn"), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        o = np.zeros(4)
        np.log(y, out=o, where=keep)
    assert _ak_warnings(lambda: ak.log(ak.array(y), out=ak.zeros(4),
                                       where=ak.array(keep))) == [str(m.message) for m in w] == []
    assert _ak_warnings(lambda: ak.log(ak.array(y), where=False)) == []
    with pytest.raises(TypeError, match="Cannot cast ufunc 'sqrt' output"):
        ak.sqrt(ak.array(x), out=ak.zeros(50, dtype=ak.int64))
    with pytest.raises(ValueError, match="non-broadcastable output"):
        ak.sqrt(ak.array(x), out=ak.zeros(3))
    with pytest.raises(TypeError):
        ak.sqrt(ak.array(x), where=ak.arange(50))


# ---- seterr / errstate ------------------------------------------------------------------------

def _numpy_warnings(fn):
    with np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"), \
            warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return sorted(str(x.message) for x in w if x.category is RuntimeWarning)


def _ak_warnings(fn):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fn()
    return sorted(str(x.message) for x in w if x.category is RuntimeWarning)


CASES = [
    ("float / 0", lambda m: m.array([1.0, 0.0, -1.0]) / 0.0),
    ("int // 0", lambda m: m.array([1, 2]) // m.array([0, 1])),
    ("uint % 0", lambda m: m.array([1, 2], dtype=np.uint64) % m.array([0, 1], dtype=np.uint64)),
    ("int / int", lambda m: m.array([1, 0]) / m.array([0, 0])),
    ("INT64_MIN // -1", lambda m: m.array([-2**63, 4]) // -1),
    ("exp overflow", lambda m: m.exp(m.array([1000.0, 1.0]))),
    ("sqrt invalid", lambda m: m.sqrt(m.array([-1.0, 4.0]))),
    ("log of 0", lambda m: m.log(m.array([0.0, 1.0]))),
    ("multiply overflow", lambda m: m.array([1e308]) * 10.0),
    ("inf - inf", lambda m: m.array([np.inf]) - np.inf),
    ("pow", lambda m: m.array([0.0, -1.0]) ** -0.5),
    ("clean", lambda m: m.array([1.0, 2.0]) + 1),
    ("comparison with nan", lambda m: m.array([np.nan, 1.0]) < 1.0),
]


@pytest.mark.parametrize("what,op", CASES, ids=[c[0] for c in CASES])
def test_default_warnings_are_numpys(ak, what, op):
    assert ak.geterr() == np.geterr() == {"divide": "warn", "over": "warn", "under": "ignore",
                                          "invalid": "warn"}

    def on_numpy():
        op(np)

    class NP:  # NumPy under the names the lambdas use
        array = staticmethod(np.array)
        exp, sqrt, log = np.exp, np.sqrt, np.log
    assert _ak_warnings(lambda: op(ak)) == _numpy_warnings(lambda: op(NP))


def _messages(fn):
    """The RuntimeWarning texts fn() gives (warn mode), or its exception."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            fn()
        except (TypeError, ValueError) as e:
            return type(e).__name__
    return sorted({str(x.message) for x in w if x.category is RuntimeWarning})


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "//", "%", "**"])
def test_warnings_of_every_operator_on_every_dtype_pair_are_numpys(ak, op):
    fn = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "//": operator.floordiv, "%": operator.mod, "**": operator.pow}[op]
    for dx in DTYPES:
        for dy in DTYPES:
            x, y = data(dx, 200, 1, small=op == "**"), data(dy, 200, 11, small=op == "**")
            with np.errstate(all="warn", under="ignore"):
                exp = _messages(lambda: fn(x, y))
            if isinstance(exp, str):
                continue  # an error NumPy raises (bool - bool, int ** -1): tested elsewhere
            assert _messages(lambda: fn(ak.array(x), ak.array(y))) == exp, (dx, dy)


def test_warnings_of_every_elementwise_function_are_numpys(ak):
    for name in ak.numeric.EFUNCS:
        for dt in (np.int64, np.float64):
            x = data(dt, 300, 3)
            with np.errstate(all="warn", under="ignore"):
                exp = _messages(lambda: getattr(np, name)(x))
            assert _messages(lambda: getattr(ak, name)(ak.array(x))) == exp, (name, dt)


def test_warnings_of_float_sums_products_and_scans_are_numpys(ak):
    cases = [data(np.float64, n, seed) for n, seed in ((0, 1), (7, 2), (1001, 3), (1001, 4))]
    cases += [np.where(np.isnan(x), 2.0, x) for x in cases]
    cases += [np.array(v) for v in ([1e308, 1e308], [np.inf, -np.inf], [1e-200, 1e-200],
                                    [np.inf, 1.0], [1.0, 2.0], [np.nan, 1.0])]
    for x in cases:
        a = ak.array(x)
        # NaN beside both infinities: whether inf + -inf is ever computed (an
        # invalid flag) depends on the order of the additions, NumPy's
        # pairwise or kodiak's fixed chunks; the scans' order is the same
        names = ("cumsum", "cumprod") if np.isnan(x).any() and np.isinf(x).any() else \
            ("sum", "prod", "mean", "cumsum", "cumprod")
        for name in names:
            with np.errstate(all="warn", under="ignore"):
                exp = _messages(lambda: getattr(np, name)(x))
            assert _messages(lambda: getattr(ak, name)(a)) == exp, (name, x[:4])
    for x in (np.zeros(0), np.ones(1), np.arange(3.0)):
        for ddof in (0, 1, 3, 5):
            for name in ("var", "std"):
                with np.errstate(all="warn", under="ignore"):
                    exp = _messages(lambda: getattr(x, name)(ddof=ddof))
                got = _messages(lambda: getattr(ak.array(x), name)(ddof=ddof))
                assert got == exp, (name, x, ddof)


def test_warnings_of_the_fused_triad_are_those_of_its_two_operations(ak):
    # a + b * alpha on big float64 arrays is one server command (axpy):
    # NumPy's warnings are still one per operation, multiply then add
    n = 1 << 16
    x, y = np.full(n, 1.0), np.full(n, 1e300)
    y[5], x[7], x[9] = np.inf, -np.inf, np.nan
    a, b = ak.array(x), ak.array(y)
    for fn in (lambda a, b: a + b * 1e10, lambda a, b: a - b * 1e10,
               lambda a, b: b * 1e10 - a, lambda a, b: a + b * 0.5):
        with np.errstate(all="warn", under="ignore"), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            exp = fn(x, y)
        with warnings.catch_warnings(record=True) as w2:
            warnings.simplefilter("always")
            got = fn(a, b).to_ndarray()
        assert [str(m.message) for m in w2] == [str(m.message) for m in w]
        np.testing.assert_array_equal(got, exp)


def test_raise_mode_raises_floatingpointerror_and_server_lives(ak, server):
    x = ak.array([1.0, 0.0])
    with ak.errstate(divide="raise", invalid="ignore"):
        with pytest.raises(FloatingPointError, match="divide by zero encountered in divide"):
            x / 0.0
        with pytest.raises(FloatingPointError, match="divide by zero encountered in floor_divide"):
            ak.arange(3) // 0
    with ak.errstate(all="raise"):
        with pytest.raises(FloatingPointError, match="invalid value encountered in sqrt"):
            ak.sqrt(ak.array([-1.0]))
        with pytest.raises(FloatingPointError, match="underflow encountered in multiply"):
            ak.array([1e-300]) * 1e-300
        same(x + 1, np.array([2.0, 1.0]))  # no error: no exception
    # in place, as NumPy: the error comes after the loop, the array keeps
    # the values written (and is not lost)
    a, n = ak.array([1.0, 2.0]), np.array([1.0, 2.0])
    for m in (np, ak):
        with m.errstate(divide="raise"), pytest.raises(FloatingPointError):
            (n if m is np else a).__itruediv__(0.0)
    same(a, n)
    same(a + 1, n + 1)
    assert ak.geterr()["divide"] == "warn"
    assert server.alive()


def test_ignore_call_print_log_modes(ak, capsys):
    x = ak.array([1.0])
    with ak.errstate(all="ignore"):
        assert _ak_warnings(lambda: x / 0) == []
    seen = []
    with ak.errstate(call=lambda kind, flag: seen.append((kind, flag)), divide="call"):
        x / 0
    assert seen == [("divide by zero", 1)]
    old = ak.seterr(over="print")
    try:
        x * 1e308 * 10
    finally:
        ak.seterr(**old)
    assert capsys.readouterr().out == "Warning: overflow encountered in multiply\n"
    log = io.StringIO()
    with ak.errstate(call=log, invalid="log"):
        ak.sqrt(ak.array([-1.0]))
    assert log.getvalue() == "Warning: invalid value encountered in sqrt\n"
    assert ak.geterrcall() is None


def test_seterr_rejects_unknown_modes_and_returns_old_settings(ak):
    with pytest.raises(ValueError, match="invalid error mode"):
        ak.seterr(divide="loud")
    with pytest.raises(ValueError):
        ak.seterrcall(42)
    old = ak.seterr(all="ignore", over="raise")
    try:
        assert ak.geterr() == {"divide": "ignore", "over": "raise", "under": "ignore",
                               "invalid": "ignore"}
    finally:
        assert ak.seterr(**old) == {"divide": "ignore", "over": "raise", "under": "ignore",
                                    "invalid": "ignore"}
    assert ak.geterr() == np.geterr()

    @ak.errstate(divide="ignore")
    def quiet_div():
        return ak.array([1.0]) / 0
    assert _ak_warnings(quiet_div) == []


# ---- dtype helpers and constants ----------------------------------------------------------

def test_dtype_helpers_and_constants_are_numpys(ak):
    assert (ak.nan != ak.nan, ak.inf, ak.pi, ak.e) == (True, np.inf, np.pi, np.e)
    assert ak.dtype("int64") == ak.int64 and ak.dtype(float) == np.float64
    for a, other in ((ak.arange(2), 1.5), (ak.arange(2), ak.array([1], dtype=ak.uint64)),
                     (ak.array([True]), 3), (ak.array([1.0]), np.int64)):
        on = np.empty(1, other.dtype) if isinstance(other, ak.pdarray) else other
        assert ak.result_type(a, other) == np.result_type(np.empty(1, a.dtype), on)
    for f, t in ((ak.int64, ak.float64), (ak.float64, ak.int64), (ak.uint64, ak.int64),
                 (ak.bool_, ak.uint64)):
        for casting in ("safe", "same_kind", "unsafe"):
            assert ak.can_cast(f, t, casting) == np.can_cast(f, t, casting)
    assert ak.can_cast(ak.arange(2), ak.float64) is True


# ---- ak.testing ----------------------------------------------------------------------------

def test_ak_testing_assertions(ak):
    t = ak.testing
    t.assert_equal(ak.arange(5), ak.arange(5))
    t.assert_arrays_equal(ak.array([1.0, np.nan]), ak.array([1.0, np.nan]))
    t.assert_arkouda_array_equal(ak.arange(3), ak.arange(3).astype(ak.float64),
                                 check_dtype=False)
    with pytest.raises(AssertionError, match="dtype"):
        t.assert_arkouda_array_equal(ak.arange(3), ak.arange(3).astype(ak.float64))
    with pytest.raises(AssertionError, match=r"first at \[3\]"):
        t.assert_equal(ak.arange(5), ak.array([0, 1, 2, 9, 4]))
    with pytest.raises(AssertionError, match="shapes"):
        t.assert_arrays_equal(ak.arange(5), ak.arange(4))
    a = ak.arange(3)
    t.assert_arkouda_array_equal(a, a, check_same="same")
    with pytest.raises(AssertionError):
        t.assert_arkouda_array_equal(a, a[:], check_same="same")
    t.assert_almost_equal(ak.array([1.0, 2.0]), ak.array([1.0, 2.0 + 1e-7]))
    with pytest.raises(AssertionError, match="rtol"):
        t.assert_almost_equal(ak.array([1.0, 2.0]), ak.array([1.0, 2.1]))
    t.assert_almost_equal(1.0, 1.0 + 1e-9)
    t.assert_is_sorted(ak.array([1, 1, 3]))
    with pytest.raises(AssertionError):
        t.assert_is_sorted(ak.array([2, 1]))
