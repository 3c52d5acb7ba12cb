# SPDX-License-Identifier: Apache-2.0
"""rowsets.py — the set functions on rows of several columns, as Arkouda's
unique, in1d, intersect1d, union1d, setdiff1d and setxor1d take a list of
equal-size pdarrays (multi-key data): row i is (c[0][i], c[1][i], ...).

Results come back as a list of pdarrays, one per column, with the rows in
lexicographic order (first column most significant), as NumPy orders the
rows of a structured array. Everything is made of the server's stable
coargsort: rows are sorted, and a row starts a new distinct value when some
column differs from the row before it. Two NaNs count as one value in
unique (as numpy.unique and pandas' drop_duplicates) but a NaN matches
nothing in in1d (as numpy.in1d), so it is never in an intersection."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .pdarrayclass import pdarray

# no public names: sorting.py's functions hand lists of pdarrays here
__all__: list[str] = []


def is_rows(x) -> bool:
    """Whether x is a list or tuple of pdarrays (multi-key data)."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and \
        all(isinstance(c, pdarray) for c in x)


def check_rows(cols, what="arrays") -> list[pdarray]:
    cols = list(cols)
    if not cols:
        raise ValueError(f"{what}: need at least one array")
    for c in cols:
        if not isinstance(c, pdarray):
            raise TypeError(f"{what}: every column must be a pdarray, not {type(c).__name__}")
    if any(c.size != cols[0].size for c in cols):
        raise ValueError(f"{what}: all columns must have the same size")
    return cols


def _pair(a, b, fn):
    """Two row sets with the same number of columns, each column of the two
    cast to their common dtype."""
    a, b = check_rows(a, fn), check_rows(b, fn)
    if len(a) != len(b):
        raise ValueError(f"{fn}: both operands must have the same number of columns "
                         f"({len(a)} != {len(b)})")
    out_a, out_b = [], []
    for x, y in zip(a, b):
        t = np.result_type(x.dtype, y.dtype)
        out_a.append(x if x.dtype == t else x.astype(t))
        out_b.append(y if y.dtype == t else y.astype(t))
    return out_a, out_b


def _differs(col, nan_equal):
    """bool of size n-1: whether sorted column col[i+1] differs from col[i]."""
    from .numeric import isnan
    prev, nxt = col[:-1], col[1:]
    d = prev != nxt
    if col.dtype == np.float64 and nan_equal:
        d = d & ~(isnan(prev) & isnan(nxt))
    return d


def _starts(sorted_cols, nan_equal):
    """bool: whether each row of the sorted columns starts a run of equal
    rows."""
    from .creation import array
    from .numeric import concatenate
    n = sorted_cols[0].size
    if n == 0:
        return array(np.zeros(0, dtype=bool))
    d = None
    for c in sorted_cols:
        dc = _differs(c, nan_equal)
        d = dc if d is None else d | dc
    return concatenate([array(np.ones(1, dtype=bool)), d])


def _concat_rows(a, b):
    from .numeric import concatenate
    return [concatenate([x, y]) for x, y in zip(a, b)]


def unique(cols: Sequence[pdarray], return_counts: bool = False):
    """The distinct rows, sorted; with return_counts also how often each
    occurs (int64)."""
    from .numeric import concatenate
    from .sorting import coargsort
    cols = check_rows(cols, "unique")
    perm = coargsort(cols)
    s = [c[perm] for c in cols]
    first = _starts(s, nan_equal=True)
    u = [c[first] for c in s]
    if not return_counts:
        return u
    from .numeric import flatnonzero
    from .creation import array
    pos = flatnonzero(first)
    ends = concatenate([pos[1:], array(np.array([cols[0].size], dtype=np.int64))]) \
        if pos.size else pos
    return u, ends - pos


def in1d(a: Sequence[pdarray], b: Sequence[pdarray], invert: bool = False) -> pdarray:
    """bool of a's rows: whether each occurs among b's rows."""
    from .creation import ones, zeros
    from .numeric import concatenate, cumsum
    from .sorting import coargsort
    a, b = _pair(a, b, "in1d")
    na, nb = a[0].size, b[0].size
    # b's rows before equal rows of a: a row of a is in b iff its run of
    # equal rows starts with a row of b
    tag = concatenate([ones(na, dtype=np.int64), zeros(nb, dtype=np.int64)])
    keys = _concat_rows(a, b)
    perm = coargsort(keys + [tag])
    s = [c[perm] for c in keys]
    first = _starts(s, nan_equal=False)
    run = cumsum(first) - 1
    run_starts_in_b = (perm >= na)[first]
    hit_sorted = run_starts_in_b[run]
    hit = zeros(na + nb, dtype=np.bool_)
    hit[perm] = hit_sorted
    res = hit[0:na]
    return ~res if invert else res


def _lexsorted(cols):
    from .sorting import coargsort
    perm = coargsort(cols)
    return [c[perm] for c in cols]


def intersect1d(a, b, assume_unique=False):
    a, b = _pair(a, b, "intersect1d")
    if not assume_unique:
        a, b = unique(a), unique(b)
        m = in1d(a, b)
        return [c[m] for c in a]
    m = in1d(a, b)
    return _lexsorted([c[m] for c in a])


def union1d(a, b):
    a, b = _pair(a, b, "union1d")
    return unique(_concat_rows(a, b))


def setdiff1d(a, b, assume_unique=False):
    a, b = _pair(a, b, "setdiff1d")
    if not assume_unique:
        a = unique(a)
    m = in1d(a, b, invert=True)
    return [c[m] for c in a]


def setxor1d(a, b, assume_unique=False):
    a, b = _pair(a, b, "setxor1d")
    if not assume_unique:
        a, b = unique(a), unique(b)
    ma, mb = in1d(a, b, invert=True), in1d(b, a, invert=True)
    return _lexsorted(_concat_rows([c[ma] for c in a], [c[mb] for c in b]))
