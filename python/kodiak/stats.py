# SPDX-License-Identifier: Apache-2.0
"""stats.py — order statistics and moments of pdarrays with NumPy's results:
quantile, percentile (NumPy's 13 methods), median, cov and corr.

quantile sorts the array on the server (NaN last), fetches only the order
statistics the requested quantiles need (two per quantile at most) and
interpolates them here with NumPy's formulas (Hyndman & Fan's virtual index
and NumPy's lerp), so results equal numpy.quantile's to the bit. A NaN in
the data makes every quantile NaN, as in NumPy."""
from __future__ import annotations

from typing import Any

import numpy as np

from .pdarrayclass import _check_pdarray, pdarray

__all__ = ["quantile", "percentile", "median", "cov", "corr"]

_CONTINUOUS = {  # method -> (alpha, beta) of H&F's virtual index n*q + alpha + q*(1-alpha-beta) - 1
    "interpolated_inverted_cdf": (0.0, 1.0),
    "hazen": (0.5, 0.5),
    "weibull": (0.0, 0.0),
    "median_unbiased": (1.0 / 3.0, 1.0 / 3.0),
    "normal_unbiased": (3.0 / 8.0, 3.0 / 8.0),
}
METHODS = ("inverted_cdf", "averaged_inverted_cdf", "closest_observation",
           "interpolated_inverted_cdf", "hazen", "weibull", "linear", "median_unbiased",
           "normal_unbiased", "lower", "higher", "midpoint", "nearest")


def quiet():
    """A context in which the server's floating-point flags of the
    intermediate steps made here are not reported (ak.errstate(all='ignore')
    where the client has it): NumPy's function warns only for its own
    result, not for the steps inside."""
    import contextlib
    import importlib
    try:
        return importlib.import_module(".fpe", __package__).errstate(all="ignore")
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def _discrete(index, take_previous):
    """An integer index: floor(index) where take_previous(gamma, index),
    else floor(index) + 1; negative ones become 0."""
    prev = np.floor(index)
    gamma = index - prev
    res = np.where(take_previous(gamma, index), prev, prev + 1).astype(np.intp)
    res[res < 0] = 0
    return res


_PARITY = []


def _closest_observation_parity():
    """Which order statistic NumPy's 'closest_observation' takes at an exact
    tie: NumPy 1.x keeps the even 0-based index, NumPy 2 the odd one (H&F's
    even 1-based one). Asked of the NumPy at hand once, so results are
    always that NumPy's."""
    if not _PARITY:
        _PARITY.append(0 if np.quantile(np.arange(4), 0.375,
                                        method="closest_observation") == 0 else 1)
    return _PARITY[0]


def _virtual_index(n, q, method):
    """NumPy's virtual index of each quantile q among n sorted values: an
    integer array (no interpolation) or a float array."""
    if method == "linear":
        return (n - 1) * q
    if method == "lower":
        return np.floor((n - 1) * q).astype(np.intp)
    if method == "higher":
        return np.ceil((n - 1) * q).astype(np.intp)
    if method == "nearest":
        return np.around((n - 1) * q).astype(np.intp)
    if method == "midpoint":
        return 0.5 * (np.floor((n - 1) * q) + np.ceil((n - 1) * q))
    if method == "inverted_cdf":
        return _discrete(n * q - 1, lambda g, _: g == 0)
    if method == "closest_observation":
        parity = _closest_observation_parity()
        return _discrete(n * q - 1 - 0.5, lambda g, i: (g == 0) & (np.floor(i) % 2 == parity))
    if method == "averaged_inverted_cdf":
        return n * q - 1
    alpha, beta = _CONTINUOUS[method]
    return n * q + (alpha + q * (1 - alpha - beta)) - 1


def _gamma(method, vidx, prev):
    g = vidx - prev
    if method == "midpoint":
        g = np.where(vidx % 1 == 0, 0.0, 0.5)
    elif method == "averaged_inverted_cdf":
        g = np.where(g == 0, 0.5, 1.0)
    return np.asarray(g, dtype=vidx.dtype)


def _lerp(a, b, t):
    """NumPy's interpolation: a + (b-a)*t, or b - (b-a)*(1-t) when t >= 0.5."""
    d = np.subtract(b, a)  # NumPy's TypeError for bool, as numpy.quantile
    out = np.asarray(np.add(a, d * t))
    np.subtract(b, d * (1 - t), out=out, where=t >= 0.5)
    return out


def _order_stats(s: pdarray, idx: np.ndarray) -> np.ndarray:
    """The values of sorted pdarray s at the (few) positions idx."""
    from .creation import array
    if idx.size == 0:
        return np.empty(0, dtype=s.dtype)
    u, inv = np.unique(idx, return_inverse=True)
    return s[array(u.astype(np.int64))].to_ndarray()[inv]


def _quantile(a, q, method, what, scale):
    _check_pdarray(a, "a")
    if method not in METHODS:
        raise ValueError(f"{method!r} is not a valid method. Use one of: {METHODS}")
    if isinstance(q, pdarray):
        q = q.to_ndarray()
    qa = np.true_divide(np.asanyarray(q), scale) if scale != 1 else np.asanyarray(q)
    if qa.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numbers, not {qa.dtype}")
    qa = qa.astype(np.float64) if qa.dtype.kind != "f" else qa
    if qa.ndim > 1:
        raise ValueError(f"{what}: pdarrays are one-dimensional; give a scalar or a list")
    if not (np.all(0 <= qa) and np.all(qa <= 1)):
        raise ValueError(f"{what}s must be in the range [0, {scale * 1 if scale != 1 else 1}]")
    from .sorting import sort
    n = a.size
    if n == 0:
        raise IndexError("cannot do a non-empty take from an empty axes.")  # NumPy's words
    data = a if a.dtype != np.bool_ else a.astype(np.int64)
    s = sort(data)
    qv = np.atleast_1d(qa)
    vidx = np.asanyarray(_virtual_index(n, qv, method))
    if np.issubdtype(vidx.dtype, np.integer):
        result = _order_stats(s, vidx)
    else:
        prev = np.floor(vidx)
        nxt = prev + 1
        above = vidx >= n - 1
        prev[above] = -1
        nxt[above] = -1
        below = vidx < 0
        prev[below] = 0
        nxt[below] = 0
        prev, nxt = prev.astype(np.intp), nxt.astype(np.intp)
        g = _gamma(method, vidx, prev)
        ps = _order_stats(s, np.where(prev < 0, n + prev, prev))
        ns = _order_stats(s, np.where(nxt < 0, n + nxt, nxt))
        if a.dtype == np.bool_:
            ps, ns = ps.astype(np.bool_), ns.astype(np.bool_)
        result = _lerp(ps, ns, g)
    if data.dtype == np.float64:
        last = s[n - 1]
        if np.isnan(last):
            result = np.full(result.shape, np.nan, dtype=np.result_type(result, np.float64))
    if a.dtype == np.bool_ and np.issubdtype(result.dtype, np.integer):
        result = result.astype(np.bool_)
    if np.ndim(q) == 0:
        return result[0]
    return result


def _quantile_api(a, q, axis, method, keepdims, what, scale):
    """quantile and percentile once their arguments are named: the axis
    checked, then _quantile, then keepdims."""
    if axis not in (None, 0, -1):
        raise np.AxisError(axis, 1)
    r = _quantile(a, q, method, what, scale)
    return np.atleast_1d(r) if keepdims else r


def quantile(a: pdarray, q: Any = 0.5, axis: int | None = None, method: str = "linear",
             keepdims: bool = False) -> Any:
    """The q-th quantiles of the values of `a`, as numpy.quantile (every
    method NumPy has; a NaN in `a` makes them NaN).

    Parameters
    ----------
    a : pdarray
    q : float or array_like of float, optional
        In [0, 1] (default 0.5).
    axis : None, 0 or -1, optional
        A pdarray has one axis.
    method : str, optional
        'linear' (default), 'lower', 'higher', 'midpoint', 'nearest',
        'inverted_cdf', 'averaged_inverted_cdf', 'closest_observation',
        'interpolated_inverted_cdf', 'hazen', 'weibull', 'median_unbiased'
        or 'normal_unbiased', as NumPy.
    keepdims : bool, optional
        Give a 1-element array for a scalar q.

    Returns
    -------
    numpy scalar for a scalar q, else a numpy.ndarray (float64; the
    discontinuous methods keep a's dtype, as NumPy)

    Raises
    ------
    TypeError
        `a` is not a pdarray.
    ValueError
        A q outside [0, 1], or an unknown method.
    IndexError
        `a` is empty (as NumPy).
    numpy.exceptions.AxisError
        An axis other than None, 0 or -1.

    Examples
    --------
    >>> a = ak.array([1.0, 4.0, 2.0, 3.0])
    >>> ak.quantile(a, 0.5)
    2.5
    >>> ak.quantile(a, [0.25, 0.75], method="lower")
    array([1., 3.])
    """
    return _quantile_api(a, q, axis, method, keepdims, "Quantile", 1)


def percentile(a: pdarray, q: Any = 50, axis: int | None = None, method: str = "linear",
               keepdims: bool = False) -> Any:
    """The q-th percentiles of the values of `a`, as numpy.percentile
    (quantile of q / 100).

    Parameters
    ----------
    a : pdarray
    q : float or array_like of float, optional
        In [0, 100] (default 50).
    axis : None, 0 or -1, optional
    method : str, optional
        As quantile.
    keepdims : bool, optional
        Give a 1-element array for a scalar q.

    Returns
    -------
    numpy scalar for a scalar q, else a numpy.ndarray

    Raises
    ------
    TypeError
        `a` is not a pdarray.
    ValueError
        A q outside [0, 100], or an unknown method.
    IndexError
        `a` is empty (as NumPy).

    Examples
    --------
    >>> ak.percentile(ak.arange(11), [10, 90])
    array([1., 9.])
    """
    return _quantile_api(a, q, axis, method, keepdims, "Percentile", 100)


def median(pda: pdarray) -> np.float64:
    """The median of the values, as numpy.median: the middle value, or the
    mean of the two middle ones; NaN if any value is NaN, and NaN (with
    NumPy's RuntimeWarning) for an empty array.

    Parameters
    ----------
    pda : pdarray

    Returns
    -------
    numpy.float64

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.median(ak.array([3, 1, 4, 1]))
    2.0
    """
    import warnings
    from .sorting import sort
    _check_pdarray(pda, "pda")
    n = pda.size
    if n == 0:
        warnings.warn("Mean of empty slice.", RuntimeWarning, stacklevel=3)
        return np.float64(np.nan)
    data = pda.astype(np.int64) if pda.dtype == np.bool_ else pda
    s = sort(data)
    if data.dtype == np.float64 and np.isnan(s[n - 1]):
        return np.float64(np.nan)
    mid = _order_stats(s, np.array([(n - 1) // 2, n // 2]))
    return np.float64(np.mean(mid[:1] if n % 2 else mid))


def _moments(x, y, fn):
    """What cov and corr (named fn in errors) share: x and y checked, as
    float64, and their deviations from their means: (n, dx, dy), or
    (n, None, None) with NumPy's warning when n < 2."""
    _check_pdarray(x, "x")
    _check_pdarray(y, "y")
    if x.size != y.size:
        raise ValueError(f"{fn}: x and y must have the same size ({x.size} != {y.size})")
    fx = x.astype(np.float64) if x.dtype != np.float64 else x
    fy = y.astype(np.float64) if y.dtype != np.float64 else y
    n = fx.size
    if n < 2:
        import warnings
        # stacklevel 3: the warning names the line that called cov or corr
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=3)
        return n, None, None
    with quiet():
        return n, fx - fx.mean(), fy - fy.mean()


def cov(x: pdarray, y: pdarray) -> np.float64:
    """The sample covariance of x and y, as numpy.cov(x, y)[0, 1] and
    Arkouda's cov: sum((x - mean x) * (y - mean y)) / (n - 1).

    Parameters
    ----------
    x, y : pdarray
        Of one size (bool and integers are taken as float64).

    Returns
    -------
    numpy.float64
        NaN if a value is NaN; NaN with NumPy's RuntimeWarning for fewer than
        two values.

    Raises
    ------
    TypeError
        x or y is not a pdarray.
    ValueError
        x and y differ in size.

    Examples
    --------
    >>> ak.cov(ak.array([1.0, 2.0, 3.0]), ak.array([1.0, 0.0, -1.0]))
    -1.0
    """
    n, dx, dy = _moments(x, y, "cov")
    if dx is None:
        return np.float64(np.nan)
    with quiet():
        return np.float64((dx * dy).sum() / (n - 1))


def corr(x: pdarray, y: pdarray) -> np.float64:
    """The Pearson correlation of x and y, as numpy.corrcoef(x, y)[0, 1] and
    Arkouda's corr (clipped to [-1, 1], as NumPy).

    Parameters
    ----------
    x, y : pdarray
        Of one size.

    Returns
    -------
    numpy.float64
        NaN if a value is NaN or an array is constant.

    Raises
    ------
    TypeError
        x or y is not a pdarray.
    ValueError
        x and y differ in size.

    Examples
    --------
    >>> ak.corr(ak.array([1.0, 2.0, 3.0]), ak.array([2.0, 4.0, 6.5]))
    0.99...
    """
    _, dx, dy = _moments(x, y, "corr")
    if dx is None:
        return np.float64(np.nan)
    with quiet():
        sxy, sxx, syy = (dx * dy).sum(), (dx * dx).sum(), (dy * dy).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.float64(sxy) / np.sqrt(np.float64(sxx)) / np.sqrt(np.float64(syy))
    return np.float64(np.clip(c, -1, 1)) if not np.isnan(c) else c
