# SPDX-License-Identifier: Apache-2.0
"""quantile, percentile (all of NumPy's methods), median, cov and corr
against NumPy on random data of every dtype, with ties, NaN, infinities and
the extremes of each dtype, at 1, 2 and 3 ranks. quantile and median equal
NumPy's to the bit; cov and corr are sums in another order than NumPy's, so
they agree to a few ULP."""
import warnings

import numpy as np
import pytest

from test_sorting import data

METHODS = ["inverted_cdf", "averaged_inverted_cdf", "closest_observation",
           "interpolated_inverted_cdf", "hazen", "weibull", "linear", "median_unbiased",
           "normal_unbiased", "lower", "higher", "midpoint", "nearest"]
QS = [0.0, 0.001, 0.1, 0.25, 1 / 3, 0.5, 0.5001, 0.75, 0.9, 0.999, 1.0]


def finite(n, dtype, seed):
    x = data(n, dtype, "distinct", seed)
    if dtype == np.float64:
        x = x[np.isfinite(x)]
    return x


def same(got, ref):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.dtype == ref.dtype, (got.dtype, ref.dtype)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [1, 4, 1001])
@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_quantile_every_method_is_numpys(ak, method, n, dtype):
    x = finite(n, dtype, seed=n)
    pa = ak.array(x)
    same(ak.quantile(pa, QS, method=method), np.quantile(x, QS, method=method))
    for q in (0.0, 0.37, 1.0):
        got, ref = ak.quantile(pa, q, method=method), np.quantile(x, q, method=method)
        assert np.ndim(got) == 0
        same(got, ref)


@pytest.mark.parametrize("method", ["linear", "lower", "nearest", "midpoint", "hazen"])
def test_quantile_of_uint64_bool_and_ties(ak, method):
    u = data(999, np.uint64, "dups", seed=1)
    same(ak.quantile(ak.array(u), QS, method=method), np.quantile(u, QS, method=method))
    u2 = data(999, np.uint64, "distinct", seed=2)
    same(ak.quantile(ak.array(u2), QS, method=method), np.quantile(u2, QS, method=method))
    b = data(101, np.bool_, "dups", seed=3)
    try:
        ref = np.quantile(b, QS, method=method)
    except TypeError as e:  # NumPy cannot subtract bools to interpolate
        with pytest.raises(TypeError, match="boolean subtract"):
            ak.quantile(ak.array(b), QS, method=method)
        assert "boolean subtract" in str(e)
    else:
        same(ak.quantile(ak.array(b), QS, method=method), ref)
    i = data(5000, np.int64, "dups", seed=4)
    same(ak.quantile(ak.array(i), QS, method=method), np.quantile(i, QS, method=method))


def test_quantile_at_the_extremes_of_int64_is_numpys(ak):
    x = np.array([-2**63, 2**63 - 1, 0, -1, 2**62], dtype=np.int64)
    for method in METHODS:
        with np.errstate(all="ignore"):
            ref = np.quantile(x, QS, method=method)
        same(ak.quantile(ak.array(x), QS, method=method), ref)


def test_nan_propagates_and_infinities_interpolate_as_numpy(ak):
    x = data(1000, np.float64, "distinct", seed=5)  # holds NaN and infinities
    assert np.isnan(x).any()
    for method in ("linear", "lower", "hazen"):
        with np.errstate(invalid="ignore"):  # inf - inf, in both
            same(ak.quantile(ak.array(x), QS, method=method), np.quantile(x, QS, method=method))
    assert np.isnan(ak.median(ak.array(x)))
    y = x[~np.isnan(x)]
    with np.errstate(invalid="ignore"):
        ref = np.quantile(y, QS)
        got = ak.quantile(ak.array(y), QS)
    same(got, ref)
    same(ak.median(ak.array(y)), np.median(y))


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64, np.bool_])
def test_median_is_numpys(ak, n, dtype):
    x = finite(n, dtype, seed=n + 10)
    if x.size == 0:
        x = np.zeros(1, dtype)
    same(ak.median(ak.array(x)), np.median(x))


def test_percentile_is_numpys(ak):
    x = finite(777, np.float64, seed=6)
    ps = [0, 1, 12.5, 50, 99, 100]
    for method in ("linear", "weibull", "inverted_cdf"):
        same(ak.percentile(ak.array(x), ps, method=method), np.percentile(x, ps, method=method))
    same(ak.percentile(ak.array(x), 37), np.percentile(x, 37))
    same(ak.percentile(ak.array(x), 37, keepdims=True), np.percentile(x, 37, keepdims=True))


def test_quantile_and_median_errors_are_numpys(ak):
    a = ak.array([1.0, 2.0])
    with pytest.raises(ValueError, match=r"Quantiles must be in the range \[0, 1\]"):
        ak.quantile(a, 1.5)
    with pytest.raises(ValueError, match=r"Percentiles must be in the range \[0, 100\]"):
        ak.percentile(a, [50, 101])
    with pytest.raises(ValueError, match="not a valid method"):
        ak.quantile(a, 0.5, method="cubic")
    with pytest.raises(IndexError) as numpys:
        np.quantile(np.zeros(0), 0.5)
    with pytest.raises(IndexError) as ours:
        ak.quantile(ak.array(np.zeros(0)), 0.5)
    assert str(ours.value) == str(numpys.value)
    with pytest.raises(np.AxisError):
        ak.quantile(a, 0.5, axis=1)
    with pytest.raises(TypeError):
        ak.quantile([1.0, 2.0], 0.5)
    with pytest.warns(RuntimeWarning):
        assert np.isnan(ak.median(ak.array(np.zeros(0))))
    assert a.sum() == 3.0


@pytest.mark.parametrize("n", [2, 3, 1000, 20001])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.int64, np.float64),
                                    (np.bool_, np.uint64)])
def test_cov_and_corr_are_numpys(ak, n, dtypes):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 100).astype(dtypes[0]) if dtypes[0] != np.bool_ \
        else rng.integers(0, 2, n).astype(bool)
    y = 0.5 * x.astype(np.float64) + rng.standard_normal(n) * 30
    y = np.abs(y).astype(dtypes[1])
    ref_cov = np.cov(x, y)[0, 1]
    ref_corr = np.corrcoef(x, y)[0, 1]
    got_cov = ak.cov(ak.array(x), ak.array(y))
    got_corr = ak.corr(ak.array(x), ak.array(y))
    assert isinstance(got_cov, np.float64) and isinstance(got_corr, np.float64)
    np.testing.assert_allclose(got_cov, ref_cov, rtol=1e-12, atol=1e-12 * abs(ref_cov))
    np.testing.assert_allclose(got_corr, ref_corr, rtol=1e-12, atol=1e-13)


def test_cov_corr_nan_constant_and_errors(ak):
    x = np.array([1.0, 2.0, np.nan, 4.0])
    y = np.array([2.0, 1.0, 0.0, 3.0])
    assert np.isnan(ak.cov(ak.array(x), ak.array(y))) and np.isnan(np.cov(x, y)[0, 1])
    assert np.isnan(ak.corr(ak.array(x), ak.array(y)))
    c = np.ones(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(ak.corr(ak.array(c), ak.arange(5))) == \
            np.isnan(np.corrcoef(c, np.arange(5))[0, 1])
    assert ak.cov(ak.array(c), ak.arange(5)) == np.cov(c, np.arange(5))[0, 1]
    with pytest.raises(ValueError, match="same size"):
        ak.cov(ak.arange(3), ak.arange(4))
    with pytest.raises(TypeError):
        ak.corr([1, 2], ak.arange(2))
    with pytest.warns(RuntimeWarning):
        assert np.isnan(ak.cov(ak.arange(1), ak.arange(1)))


def test_cov_corr_of_fewer_than_two_warn_at_the_callers_line(ak):
    # cov and corr share their checks (stats._moments): the warning must
    # still name the user's line, as NumPy's does
    for fn in (ak.cov, ak.corr):
        with pytest.warns(RuntimeWarning, match="Degrees of freedom") as rec:
            assert np.isnan(fn(ak.arange(1), ak.arange(1)))
        assert rec[0].filename == __file__, fn.__name__
