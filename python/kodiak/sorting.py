# SPDX-License-Identifier: Apache-2.0
"""sorting.py — sorting and set functions on pdarrays, with NumPy's results:
sort, argsort, coargsort, unique, value_counts, in1d, histogram and the
set functions intersect1d, union1d, setdiff1d and setxor1d.

The server sorts with a distributed stable radix sort, so argsort equals
numpy.argsort(a, kind="stable") and coargsort equals numpy.lexsort(keys[::-1])
whatever the number of ranks. Floats sort as NumPy sorts them: -0.0 equals
0.0 and NaN comes last."""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from . import client
from .dtypes import dtype_name
from .pdarrayclass import _check_pdarray, create_pdarray, pdarray
from . import rowsets

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["sort", "argsort", "coargsort", "unique", "value_counts", "in1d", "isin",
           "histogram", "intersect1d", "union1d", "setdiff1d", "setxor1d"]


class SortingAlgorithm(Enum):
    """Arkouda's choice of sort algorithm. kodiakd has one, a distributed
    stable radix sort, and uses it for both names.

    Parameters
    ----------
    value : str
        'RadixSortLSD' or 'TwoArrayRadixSort'.

    Examples
    --------
    >>> ak.SortingAlgorithm("RadixSortLSD")
    <SortingAlgorithm.RadixSortLSD: 'RadixSortLSD'>
    """
    RadixSortLSD = "RadixSortLSD"
    TwoArrayRadixSort = "TwoArrayRadixSort"


def _check_algorithm(algorithm):
    """Arkouda's algorithm argument: a SortingAlgorithm or its name."""
    if algorithm is None or isinstance(algorithm, SortingAlgorithm):
        return
    if algorithm not in SortingAlgorithm.__members__:
        raise ValueError(f"unknown sorting algorithm {algorithm!r}: use one of "
                         f"{', '.join(SortingAlgorithm.__members__)}")


def _flip(perm):
    """perm in reverse order (Arkouda's descending sorts: the stable
    ascending order reversed, so equal values come last-first)."""
    return perm[::-1]


def sort(pda: pdarray, algorithm: SortingAlgorithm | str = SortingAlgorithm.RadixSortLSD,
         axis: int = -1) -> pdarray:
    """A sorted copy of `pda`, ascending, NaN last, as numpy.sort.

    Parameters
    ----------
    pda : pdarray
    algorithm : SortingAlgorithm or str, optional
        Arkouda's choice of sort (RadixSortLSD or TwoArrayRadixSort); both
        are the server's stable radix sort.
    axis : int, optional
        0 or -1 (a pdarray has one axis).

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `pda` is not a pdarray.
    ValueError
        An unknown algorithm.
    numpy.exceptions.AxisError
        An axis other than 0 or -1.

    Examples
    --------
    >>> ak.sort(ak.array([3.0, np.nan, -1.0, 2.0]))
    array([-1.,  2.,  3., nan])
    >>> ak.sort(ak.array([2, 1]), algorithm="TwoArrayRadixSort")
    array([1, 2])
    """
    _check_algorithm(algorithm)
    if axis not in (0, -1):
        raise np.AxisError(axis, 1)
    _check_pdarray(pda, "pda")
    res, _ = client.generic_msg("sort", {"array": pda.name})
    return create_pdarray(res)


def argsort(pda: pdarray, algorithm: Optional[str] = None,
            ascending: bool = True) -> pdarray:
    """The stable permutation that sorts `pda`, as
    numpy.argsort(pda, kind='stable'): pda[argsort(pda)] is sorted and
    equal values keep their order.

    Parameters
    ----------
    pda : pdarray
    algorithm : SortingAlgorithm or str, optional
        Arkouda's choice of sort; both are the server's stable radix sort.
    ascending : bool, optional
        False: the ascending permutation reversed, as Arkouda's
        argsort(ascending=False) (equal values then come last-first, NaN
        first): numpy.argsort(pda, kind='stable')[::-1].

    Returns
    -------
    pdarray
        int64 positions.

    Raises
    ------
    TypeError
        `pda` is not a pdarray.
    ValueError
        An unknown algorithm.

    Examples
    --------
    >>> ak.argsort(ak.array([3, 1, 2, 1]))
    array([1, 3, 2, 0])
    >>> ak.argsort(ak.array([3, 1, 2, 1]), ascending=False)
    array([0, 2, 3, 1])
    """
    _check_algorithm(algorithm)
    _check_pdarray(pda, "pda")
    res, _ = client.generic_msg("argsort", {"array": pda.name})
    perm = create_pdarray(res)
    return perm if ascending else _flip(perm)


def coargsort(arrays: Sequence[pdarray] | pdarray, algorithm: Optional[str] = None,
              ascending: bool = True) -> pdarray:
    """The stable permutation that sorts the rows of several equal-size
    arrays lexicographically, the first array most significant, as
    numpy.lexsort(arrays[::-1]) and Arkouda's coargsort.

    Parameters
    ----------
    arrays : sequence of pdarray, or a pdarray
        The keys; they may differ in dtype.
    algorithm : SortingAlgorithm or str, optional
        Arkouda's choice of sort; both are the server's stable radix sort.
    ascending : bool, optional
        False: the ascending permutation reversed, as Arkouda
        (numpy.lexsort(arrays[::-1])[::-1]).

    Returns
    -------
    pdarray
        int64 positions.

    Raises
    ------
    TypeError
        A key is not a pdarray.
    ValueError
        No keys, keys of different sizes, or an unknown algorithm.

    Examples
    --------
    >>> ak.coargsort([ak.array([1, 1, 0]), ak.array([2, 1, 1])])
    array([2, 1, 0])
    >>> ak.coargsort([ak.array([1, 1, 0]), ak.array([2, 1, 1])], ascending=False)
    array([0, 1, 2])
    """
    _check_algorithm(algorithm)
    if isinstance(arrays, pdarray):
        arrays = [arrays]
    arrays = list(arrays)
    if not arrays:
        raise ValueError("coargsort needs at least one array")
    for a in arrays:
        _check_pdarray(a, "every key")
    if any(a.size != arrays[0].size for a in arrays):
        raise ValueError("coargsort: all arrays must have the same size")
    res, _ = client.generic_msg("coargsort", {"arrays": [a.name for a in arrays]})
    perm = create_pdarray(res)
    return perm if ascending else _flip(perm)


def unique(pda: pdarray | Sequence[pdarray],
           return_counts: bool = False) -> pdarray | list | tuple:
    """The sorted distinct values of `pda`, as numpy.unique (all NaNs count
    as one value, last); for a list of equal-size pdarrays, the distinct
    rows (as Arkouda's multi-key unique), lexicographically sorted.

    Parameters
    ----------
    pda : pdarray, or list of pdarray
    return_counts : bool, optional
        Also return how often each value occurs.

    Returns
    -------
    pdarray, or (pdarray, pdarray)
        The values, and with return_counts the int64 counts (for a list:
        a list of pdarrays, one per column, in place of the values).

    Raises
    ------
    TypeError
        `pda` is not a pdarray (nor a list of them).
    ValueError
        A list of pdarrays of different sizes.

    Examples
    --------
    >>> ak.unique(ak.array([3.0, 1.0, 3.0, np.nan, np.nan]))
    array([ 1.,  3., nan])
    >>> ak.unique(ak.array([2, 1, 2]), return_counts=True)
    (array([1, 2]), array([1, 2]))
    >>> ak.unique([ak.array([1, 0, 1]), ak.array([5, 7, 5])])
    [array([0, 1]), array([7, 5])]
    """
    if rowsets.is_rows(pda):
        return rowsets.unique(pda, return_counts)
    _check_pdarray(pda, "pda")
    res, _ = client.generic_msg("unique", {"array": pda.name,
                                           "return_counts": bool(return_counts)})
    u = create_pdarray(res)
    if return_counts:
        return u, create_pdarray(res, "counts")
    return u


def value_counts(pda: pdarray) -> tuple[pdarray, pdarray]:
    """The distinct values and how often each occurs, sorted by value, as
    Arkouda's value_counts: unique(pda, return_counts=True).

    Parameters
    ----------
    pda : pdarray

    Returns
    -------
    (pdarray, pdarray)
        The values and their int64 counts.

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.value_counts(ak.array([5, 5, 7]))
    (array([5, 7]), array([2, 1]))
    """
    return unique(pda, return_counts=True)


def in1d(pda1: pdarray | Sequence[pdarray], pda2: pdarray | ArrayLike | Sequence[pdarray],
         assume_unique: bool = False, invert: bool = False) -> pdarray:
    """Whether each element of `pda1` occurs in `pda2`, as numpy.in1d
    (compared after NumPy's type promotion; NaN occurs nowhere). With lists
    of equal-size pdarrays (rows of several columns, as Arkouda's multi-key
    in1d): whether each row of pda1 is a row of pda2.

    Parameters
    ----------
    pda1 : pdarray, or list of pdarray
    pda2 : pdarray or array_like, or list of pdarray
        The values to look for (a list or NumPy array is sent first).
    assume_unique : bool, optional
        NumPy's hint; ignored.
    invert : bool, optional
        Whether each element does *not* occur.

    Returns
    -------
    pdarray
        bool, of pda1's size.

    Raises
    ------
    TypeError
        `pda1` is not a pdarray, or `pda2` cannot be a pdarray.
    ValueError
        Lists of columns of different sizes or different numbers.

    Examples
    --------
    >>> ak.in1d([ak.array([1, 1]), ak.array([2, 3])], [ak.array([1]), ak.array([3])])
    array([False,  True])
    >>> ak.in1d(ak.array([1, 2, 3]), ak.array([2, 5]))
    array([False,  True, False])
    >>> ak.in1d(ak.array([1, 2, 3]), [2, 5], invert=True)
    array([ True, False,  True])
    """
    if rowsets.is_rows(pda1) or isinstance(pda1, (list, tuple)):
        if not isinstance(pda2, (list, tuple)):
            raise TypeError("in1d: with a list of columns, pda2 must be a list of columns too")
        return rowsets.in1d(pda1, pda2, invert=bool(invert))
    _check_pdarray(pda1, "pda1")
    if not isinstance(pda2, pdarray):
        from .creation import array
        pda2 = array(pda2)
    common = np.result_type(pda1.dtype, pda2.dtype)
    res, _ = client.generic_msg("in1d", {"a": pda1.name, "b": pda2.name,
                                         "dtype": dtype_name(common),
                                         "invert": bool(invert)})
    return create_pdarray(res)


def isin(element: pdarray, test_elements: pdarray | ArrayLike,
         invert: bool = False) -> pdarray:
    """Whether each element occurs in `test_elements`: numpy.isin for
    one-dimensional pdarrays (see in1d).

    Parameters
    ----------
    element : pdarray
    test_elements : pdarray or array_like
    invert : bool, optional
        Whether each element does *not* occur.

    Returns
    -------
    pdarray
        bool, of element's size.

    Raises
    ------
    TypeError
        `element` is not a pdarray.

    Examples
    --------
    >>> ak.isin(ak.array([1.0, 2.5]), ak.array([2.5]))
    array([False,  True])
    """
    return in1d(element, test_elements, invert=invert)


def _as_pdarray(x):
    """x, or x (a list or NumPy array) sent to the server."""
    from .creation import array
    return x if isinstance(x, pdarray) else array(x)


def _set_args(pda1, pda2):
    """Both operands as pdarrays of their common dtype."""
    a, b = _as_pdarray(pda1), _as_pdarray(pda2)
    common = np.result_type(a.dtype, b.dtype)
    if a.dtype != common:
        a = a.astype(common)
    if b.dtype != common:
        b = b.astype(common)
    return a, b


def intersect1d(pda1: pdarray | ArrayLike, pda2: pdarray | ArrayLike,
                assume_unique: bool = False) -> pdarray:
    """The sorted values found in both operands, as numpy.intersect1d.

    Parameters
    ----------
    pda1, pda2 : pdarray or array_like, or lists of pdarray
        Lists of numbers and NumPy arrays are sent to the server first;
        lists of equal-size pdarrays are rows of several columns (as
        Arkouda's multi-key set functions): the result is then a list of
        pdarrays, one per column, rows sorted lexicographically.
    assume_unique : bool, optional
        The caller says neither holds repeats (a repeat then stays a
        repeat, as in NumPy).

    Returns
    -------
    pdarray
        Of the operands' common dtype.

    Raises
    ------
    TypeError
        An operand cannot be a pdarray (e.g. strings, a scalar).

    Examples
    --------
    >>> ak.intersect1d(ak.array([1, 2, 3, 3]), ak.array([3, 1, 7]))
    array([1, 3])
    """
    if rowsets.is_rows(pda1) or rowsets.is_rows(pda2):
        return rowsets.intersect1d(pda1, pda2, assume_unique)
    a, b = _set_args(pda1, pda2)
    if not assume_unique:
        a, b = unique(a), unique(b)
        return a[in1d(a, b)]
    return sort(a[in1d(a, b)])


def union1d(pda1: pdarray | ArrayLike, pda2: pdarray | ArrayLike) -> pdarray:
    """The sorted distinct values found in either operand, as numpy.union1d.

    Parameters
    ----------
    pda1, pda2 : pdarray or array_like, or lists of pdarray
        Lists of numbers and NumPy arrays are sent to the server first;
        lists of equal-size pdarrays are rows of several columns (as
        Arkouda's multi-key set functions): the result is then a list of
        pdarrays, one per column, rows sorted lexicographically.

    Returns
    -------
    pdarray
        Of the operands' common dtype.

    Raises
    ------
    TypeError
        An operand cannot be a pdarray (e.g. strings, a scalar).

    Examples
    --------
    >>> ak.union1d(ak.array([3, 1]), [2, 1])
    array([1, 2, 3])
    """
    if rowsets.is_rows(pda1) or rowsets.is_rows(pda2):
        return rowsets.union1d(pda1, pda2)
    from .numeric import concatenate
    a, b = _set_args(pda1, pda2)
    return unique(concatenate([a, b]))


def setdiff1d(pda1: pdarray | ArrayLike, pda2: pdarray | ArrayLike,
              assume_unique: bool = False) -> pdarray:
    """The distinct values of `pda1` not found in `pda2`, sorted, as
    numpy.setdiff1d.

    Parameters
    ----------
    pda1, pda2 : pdarray or array_like, or lists of pdarray
        Lists of numbers and NumPy arrays are sent to the server first;
        lists of equal-size pdarrays are rows of several columns (as
        Arkouda's multi-key set functions): the result is then a list of
        pdarrays, one per column, rows sorted lexicographically.
    assume_unique : bool, optional
        The caller says pda1 holds no repeats; the result then keeps
        pda1's order.

    Returns
    -------
    pdarray
        Of pda1's dtype.

    Raises
    ------
    TypeError
        An operand cannot be a pdarray (e.g. strings, a scalar).

    Examples
    --------
    >>> ak.setdiff1d(ak.array([5, 1, 2, 5]), ak.array([2]))
    array([1, 5])
    """
    if rowsets.is_rows(pda1) or rowsets.is_rows(pda2):
        return rowsets.setdiff1d(pda1, pda2, assume_unique)
    a, b = _as_pdarray(pda1), _as_pdarray(pda2)
    if not assume_unique:
        a = unique(a)
    return a[in1d(a, b, invert=True)]  # pda1's dtype, as NumPy


def setxor1d(pda1: pdarray | ArrayLike, pda2: pdarray | ArrayLike,
             assume_unique: bool = False) -> pdarray:
    """The sorted values found in exactly one of the operands, as
    numpy.setxor1d.

    Parameters
    ----------
    pda1, pda2 : pdarray or array_like, or lists of pdarray
        Lists of numbers and NumPy arrays are sent to the server first;
        lists of equal-size pdarrays are rows of several columns (as
        Arkouda's multi-key set functions): the result is then a list of
        pdarrays, one per column, rows sorted lexicographically.
    assume_unique : bool, optional
        The caller says neither holds repeats.

    Returns
    -------
    pdarray
        Of the operands' common dtype.

    Raises
    ------
    TypeError
        An operand cannot be a pdarray (e.g. strings, a scalar).

    Examples
    --------
    >>> ak.setxor1d(ak.array([1, 2, 3]), ak.array([2, 3, 4]))
    array([1, 4])
    """
    if rowsets.is_rows(pda1) or rowsets.is_rows(pda2):
        return rowsets.setxor1d(pda1, pda2, assume_unique)
    from .numeric import concatenate
    a, b = _set_args(pda1, pda2)
    if not assume_unique:
        a, b = unique(a), unique(b)
    return sort(concatenate([a[in1d(a, b, invert=True)], b[in1d(b, a, invert=True)]]))


def histogram(pda: pdarray, bins: int = 10) -> tuple[pdarray, pdarray]:
    """Counts of values in `bins` equal-width bins between pda.min() and
    pda.max(), the last bin closed, as numpy.histogram(pda, bins).

    Parameters
    ----------
    pda : pdarray
    bins : int, optional
        Number of bins (default 10).

    Returns
    -------
    hist : pdarray
        int64 counts, `bins` of them.
    bin_edges : pdarray
        float64, bins + 1 values.

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or `bins` is not an integer.
    ValueError
        `bins` is less than 1.

    Examples
    --------
    >>> ak.histogram(ak.array([1.0, 2.0, 2.5, 4.0]), bins=3)
    (array([1, 2, 1]), array([1., 2., 3., 4.]))
    """
    _check_pdarray(pda, "pda")
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)):
        raise TypeError("histogram: bins must be an integer number of equal-width bins")
    if bins < 1:
        raise ValueError("`bins` must be positive, when an integer")
    res, _ = client.generic_msg("histogram", {"array": pda.name, "bins": int(bins)})
    return create_pdarray(res, "hist"), create_pdarray(res, "edges")
