# SPDX-License-Identifier: Apache-2.0
"""search.py — searching sorted pdarrays and finding extremes, with Arkouda's
names and NumPy's results: searchsorted, search_intervals, is_cosorted,
mink, maxk, argmink and argmaxk.

All are made of the server's stable sort and element-wise commands, so they
give the same answer whatever the number of ranks: searchsorted sorts the
needles together with the haystack (a needle before the equal haystack
values for side='left', after them for 'right') and counts the haystack
values ahead of each needle."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .pdarrayclass import _check_pdarray, pdarray

__all__ = ["searchsorted", "search_intervals", "is_cosorted", "mink", "maxk", "argmink",
           "argmaxk"]


def searchsorted(a: pdarray, v: pdarray | int | float, side: str = "left",
                 x2_sorted: bool = False) -> pdarray | np.int64:
    """Where each value of `v` would go into the sorted pdarray `a` to keep
    it sorted, as numpy.searchsorted (NaN sorts last, as in NumPy).

    Parameters
    ----------
    a : pdarray
        Sorted ascending (as NumPy, this is not checked).
    v : pdarray or scalar
        The values to place.
    side : {'left', 'right'}, optional
        'left': the first suitable position; 'right': the last.
    x2_sorted : bool, optional
        Arkouda's hint that v is sorted; ignored.

    Returns
    -------
    pdarray (int64) of v's size, or a numpy.int64 for a scalar v

    Raises
    ------
    TypeError
        `a` is not a pdarray.
    ValueError
        `side` is neither 'left' nor 'right'.

    Examples
    --------
    >>> a = ak.array([1, 2, 2, 3])
    >>> ak.searchsorted(a, ak.array([2, 0, 5]))
    array([1, 0, 4])
    >>> ak.searchsorted(a, ak.array([2, 0, 5]), side="right")
    array([3, 0, 4])
    """
    from .creation import array, ones, zeros
    from .numeric import concatenate, cumsum
    from .sorting import coargsort
    _check_pdarray(a, "a")
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right' (got {side!r})")
    scalar = not isinstance(v, pdarray)
    if scalar:
        if np.ndim(v) != 0:
            v = array(np.asarray(v))
            scalar = False
        else:
            v = array(np.asarray([v]))
    n, m = a.size, v.size
    common = np.result_type(a.dtype, v.dtype)
    if common == np.bool_:
        common = np.dtype(np.int64)
    aa = a if a.dtype == common else a.astype(common)
    vv = v if v.dtype == common else v.astype(common)
    # tag: which side of equal haystack values a needle goes
    if side == "left":
        tag = concatenate([ones(n, dtype=np.int64), zeros(m, dtype=np.int64)])
    else:
        tag = concatenate([zeros(n, dtype=np.int64), ones(m, dtype=np.int64)])
    perm = coargsort([concatenate([aa, vv]), tag])
    from_a = perm < n
    ahead = cumsum(from_a)                       # haystack values up to each place
    needle = ~from_a
    out = zeros(m, dtype=np.int64)
    out[perm[needle] - n] = ahead[needle]
    return out.to_ndarray()[0] if scalar else out


def search_intervals(vals: pdarray, intervals: tuple[pdarray, pdarray],
                     tiebreak: pdarray | None = None,
                     hierarchical: bool = True) -> pdarray:
    """For each value, the index of the closed interval [lo, hi] that holds
    it, or -1, as Arkouda's search_intervals for one-dimensional values.

    The intervals are given by their lower and upper bounds, sorted by lower
    bound; when intervals overlap, the one with the greatest lower bound at
    or below the value is tried (as Arkouda, which asks for non-overlapping
    intervals).

    Parameters
    ----------
    vals : pdarray
    intervals : (pdarray, pdarray)
        The lower and upper bounds, of one size, lower bounds ascending.
    tiebreak : pdarray, optional
        Not supported (Arkouda's choice among overlapping intervals).
    hierarchical : bool, optional
        For multi-dimensional intervals; ignored for one dimension.

    Returns
    -------
    pdarray
        int64, of vals' size.

    Raises
    ------
    TypeError
        `vals` or a bound is not a pdarray.
    ValueError
        Bounds of different sizes, a lower bound above its upper bound, or
        lower bounds not sorted.
    NotImplementedError
        `tiebreak` is given, or the values are a list of arrays.

    Examples
    --------
    >>> lo, hi = ak.array([0, 10, 20]), ak.array([5, 15, 25])
    >>> ak.search_intervals(ak.array([3, 7, 10, 25, 30]), (lo, hi))
    array([ 0, -1,  1,  2, -1])
    """
    from .creation import full
    from .numeric import where
    if tiebreak is not None:
        raise NotImplementedError("search_intervals: tiebreak is not supported")
    if isinstance(vals, (list, tuple)):
        raise NotImplementedError("search_intervals: multi-dimensional values are not "
                                  "supported; pass one pdarray")
    _check_pdarray(vals, "vals")
    if not isinstance(intervals, (tuple, list)) or len(intervals) != 2:
        raise ValueError("intervals must be a tuple of two pdarrays (lower and upper bounds)")
    lo = _check_pdarray(intervals[0], "lower bounds")
    hi = _check_pdarray(intervals[1], "upper bounds")
    if lo.size != hi.size:
        raise ValueError("lower and upper bounds must have the same size")
    if lo.size and bool((lo > hi).any()):
        raise ValueError("each lower bound must be <= its upper bound")
    if lo.size and not bool(lo.is_sorted()):
        raise ValueError("the intervals must be sorted by lower bound")
    if lo.size == 0:
        return full(vals.size, -1, dtype=np.int64)
    i = searchsorted(lo, vals, side="right") - 1
    safe = where(i < 0, 0, i)
    inside = (i >= 0) & (vals <= hi[safe])
    return where(inside, i, -1)


def is_cosorted(arrays: Sequence[pdarray]) -> np.bool_:
    """Whether the rows of equal-size arrays are in lexicographic order (the
    first array most significant), as Arkouda's is_cosorted: each row <=
    the next (a NaN beside any element makes it False, as is_sorted).

    Parameters
    ----------
    arrays : sequence of pdarray

    Returns
    -------
    numpy.bool_

    Raises
    ------
    TypeError
        An element is not a pdarray.
    ValueError
        No arrays, or arrays of different sizes.

    Examples
    --------
    >>> ak.is_cosorted([ak.array([1, 1, 2]), ak.array([5, 6, 0])])
    True
    >>> ak.is_cosorted([ak.array([1, 1, 2]), ak.array([6, 5, 0])])
    False
    """
    if isinstance(arrays, pdarray):
        arrays = [arrays]
    arrays = list(arrays)
    if not arrays:
        raise ValueError("is_cosorted needs at least one array")
    for x in arrays:
        _check_pdarray(x, "every array")
    if any(x.size != arrays[0].size for x in arrays):
        raise ValueError("All arrays must have the same size")
    if arrays[0].size < 2:
        return np.bool_(True)
    ok = arrays[-1][:-1] <= arrays[-1][1:]
    for x in reversed(arrays[:-1]):
        prev, nxt = x[:-1], x[1:]
        ok = (prev < nxt) | ((prev == nxt) & ok)
    return np.bool_(bool(ok.all()))


def _check_k(pda, k, fn):
    _check_pdarray(pda, "pda")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{fn}: k must be an integer, not {type(k).__name__}")
    if k < 1:
        raise ValueError(f"{fn}: k must be 1 or greater")
    if pda.size == 0:
        raise ValueError(f"{fn}: must be a non-empty pdarray")
    return min(int(k), pda.size)


def argmink(pda: pdarray, k: int) -> pdarray:
    """The indices of the k smallest values, smallest first, as Arkouda's
    argmink: numpy.argsort(pda, kind='stable')[:k] (equal values: the first
    occurrences, in order; NaN last).

    Parameters
    ----------
    pda : pdarray
    k : int
        How many (all of them if k exceeds the size).

    Returns
    -------
    pdarray
        int64.

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or k is not an integer.
    ValueError
        k < 1, or pda is empty.

    Examples
    --------
    >>> ak.argmink(ak.array([5, 1, 4, 1, 9]), 3)
    array([1, 3, 2])
    """
    from .sorting import argsort
    k = _check_k(pda, k, "argmink")
    return argsort(pda)[0:k]


def argmaxk(pda: pdarray, k: int) -> pdarray:
    """The indices of the k largest values, in ascending order of value (the
    largest last), as Arkouda's argmaxk:
    numpy.argsort(pda, kind='stable')[-k:] (so NaN, sorting last, counts as
    the largest, as in NumPy's sort).

    Parameters
    ----------
    pda : pdarray
    k : int
        How many (all of them if k exceeds the size).

    Returns
    -------
    pdarray
        int64.

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or k is not an integer.
    ValueError
        k < 1, or pda is empty.

    Examples
    --------
    >>> ak.argmaxk(ak.array([5, 1, 4, 1, 9]), 2)
    array([0, 4])
    """
    from .sorting import argsort
    k = _check_k(pda, k, "argmaxk")
    return argsort(pda)[pda.size - k:pda.size]


def mink(pda: pdarray, k: int) -> pdarray:
    """The k smallest values, ascending, as Arkouda's mink:
    numpy.sort(pda)[:k].

    Parameters
    ----------
    pda : pdarray
    k : int
        How many (all of them if k exceeds the size).

    Returns
    -------
    pdarray
        Of pda's dtype.

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or k is not an integer.
    ValueError
        k < 1, or pda is empty.

    Examples
    --------
    >>> ak.mink(ak.array([5, 1, 4, 1, 9]), 3)
    array([1, 1, 4])
    """
    return pda[argmink(pda, k)]


def maxk(pda: pdarray, k: int) -> pdarray:
    """The k largest values, ascending (the largest last), as Arkouda's
    maxk: numpy.sort(pda)[-k:].

    Parameters
    ----------
    pda : pdarray
    k : int
        How many (all of them if k exceeds the size).

    Returns
    -------
    pdarray
        Of pda's dtype.

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or k is not an integer.
    ValueError
        k < 1, or pda is empty.

    Examples
    --------
    >>> ak.maxk(ak.array([5, 1, 4, 1, 9]), 2)
    array([5, 9])
    """
    return pda[argmaxk(pda, k)]
