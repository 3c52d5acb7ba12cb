"""sorting.py — sorting and set functions on pdarrays, with NumPy's results:
sort, argsort, coargsort, unique, value_counts, in1d, histogram and the
set functions intersect1d, union1d, setdiff1d and setxor1d.

The server sorts with a distributed stable radix sort, so argsort equals
numpy.argsort(a, kind="stable") and coargsort equals numpy.lexsort(keys[::-1])
whatever the number of ranks. Floats sort as NumPy sorts them: -0.0 equals
0.0 and NaN comes last."""
import numpy as np

from . import client
from .dtypes import dtype_name
from .pdarray import create_pdarray, pdarray

__all__ = ["sort", "argsort", "coargsort", "unique", "value_counts", "in1d", "isin",
           "histogram", "intersect1d", "union1d", "setdiff1d", "setxor1d"]


def _check(a, what="argument"):
    if not isinstance(a, pdarray):
        raise TypeError(f"{what} must be a pdarray, not {type(a).__name__}")
    return a


def sort(pda):
    """A sorted copy of pda (ascending; NaN last, as numpy.sort)."""
    res, _ = client.generic_msg("sort", {"array": _check(pda, "pda").name})
    return create_pdarray(res)


def argsort(pda, algorithm=None, ascending=True):
    """The stable permutation that sorts pda: pda[argsort(pda)] is sorted and
    equal values keep their order (numpy.argsort(pda, kind='stable'))."""
    if not ascending:
        raise NotImplementedError("argsort: only ascending order is supported")
    res, _ = client.generic_msg("argsort", {"array": _check(pda, "pda").name})
    return create_pdarray(res)


def coargsort(arrays, algorithm=None, ascending=True):
    """The stable permutation that sorts rows of several equal-size arrays
    lexicographically, the first array most significant
    (numpy.lexsort(arrays[::-1])). The arrays may differ in dtype."""
    if isinstance(arrays, pdarray):
        arrays = [arrays]
    arrays = list(arrays)
    if not arrays:
        raise ValueError("coargsort needs at least one array")
    if not ascending:
        raise NotImplementedError("coargsort: only ascending order is supported")
    for a in arrays:
        _check(a, "every key")
    if any(a.size != arrays[0].size for a in arrays):
        raise ValueError("coargsort: all arrays must have the same size")
    res, _ = client.generic_msg("coargsort", {"arrays": [a.name for a in arrays]})
    return create_pdarray(res)


def unique(pda, return_counts=False):
    """The sorted distinct values of pda (all NaNs count as one value, as
    numpy.unique), and with return_counts how often each occurs (int64)."""
    res, _ = client.generic_msg("unique", {"array": _check(pda, "pda").name,
                                           "return_counts": bool(return_counts)})
    u = create_pdarray(res)
    if return_counts:
        return u, create_pdarray(res, "counts")
    return u


def value_counts(pda):
    """(distinct values, counts), sorted by value, as Arkouda's value_counts."""
    return unique(pda, return_counts=True)


def in1d(pda1, pda2, assume_unique=False, invert=False):
    """A bool pdarray: True where pda1's element occurs in pda2 (compared
    after NumPy's type promotion; NaN occurs nowhere), negated by invert."""
    _check(pda1, "pda1")
    if not isinstance(pda2, pdarray):
        from .creation import array
        pda2 = array(pda2)
    common = np.result_type(pda1.dtype, pda2.dtype)
    res, _ = client.generic_msg("in1d", {"a": pda1.name, "b": pda2.name,
                                         "dtype": dtype_name(common),
                                         "invert": bool(invert)})
    return create_pdarray(res)


def isin(element, test_elements, invert=False):
    """numpy.isin for one-dimensional pdarrays."""
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


def intersect1d(pda1, pda2, assume_unique=False):
    """The sorted values found in both pda1 and pda2 (numpy.intersect1d).
    assume_unique: the caller says neither holds repeats (a repeat then
    stays a repeat, as in NumPy)."""
    a, b = _set_args(pda1, pda2)
    if not assume_unique:
        a, b = unique(a), unique(b)
        return a[in1d(a, b)]
    return sort(a[in1d(a, b)])


def union1d(pda1, pda2):
    """The sorted distinct values found in pda1 or pda2 (numpy.union1d)."""
    from .numeric import concatenate
    a, b = _set_args(pda1, pda2)
    return unique(concatenate([a, b]))


def setdiff1d(pda1, pda2, assume_unique=False):
    """The distinct values of pda1 not found in pda2, sorted, of pda1's
    dtype (numpy.setdiff1d); with assume_unique, in pda1's order."""
    a, b = _as_pdarray(pda1), _as_pdarray(pda2)
    if not assume_unique:
        a = unique(a)
    return a[in1d(a, b, invert=True)]  # pda1's dtype, as NumPy


def setxor1d(pda1, pda2, assume_unique=False):
    """The sorted values found in exactly one of pda1 and pda2
    (numpy.setxor1d)."""
    from .numeric import concatenate
    a, b = _set_args(pda1, pda2)
    if not assume_unique:
        a, b = unique(a), unique(b)
    return sort(concatenate([a[in1d(a, b, invert=True)], b[in1d(b, a, invert=True)]]))


def histogram(pda, bins=10):
    """(hist, bin_edges) as numpy.histogram(pda, bins): `bins` equal-width
    bins between pda.min() and pda.max(), the last bin closed; hist is int64,
    bin_edges float64 with bins + 1 values."""
    _check(pda, "pda")
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)):
        raise TypeError("histogram: bins must be an integer number of equal-width bins")
    if bins < 1:
        raise ValueError("`bins` must be positive, when an integer")
    res, _ = client.generic_msg("histogram", {"array": pda.name, "bins": int(bins)})
    return create_pdarray(res, "hist"), create_pdarray(res, "edges")
