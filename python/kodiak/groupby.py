"""groupby.py — GroupBy: group the rows of one or more key arrays and reduce
other arrays per group, with Arkouda's names and pandas' results.

The server sorts the keys (stable radix sort, first key most significant),
so groups come in ascending key order and the rows of a group keep their
original order. Rows whose float key is NaN are left out (dropna=True, as
pandas and Arkouda)."""
import numpy as np

from . import client
from .dtypes import bool_
from .pdarray import create_pdarray, pdarray

__all__ = ["GroupBy", "GROUPBY_REDUCTION_TYPES"]

# The server's reductions, and those made of them here (any, all, var, std,
# argmin, argmax, median).
_SERVER_REDUCTIONS = frozenset(["sum", "prod", "mean", "min", "max", "count", "nunique",
                                "first"])
GROUPBY_REDUCTION_TYPES = _SERVER_REDUCTIONS | frozenset(["any", "all", "var", "std",
                                                          "argmin", "argmax", "median"])


class GroupBy:
    """Group an array, or the rows of a list of arrays, by value.

    Attributes: keys, nkeys, permutation (int64: the rows in group order),
    segments (int64: where each group starts in permuted order), unique_keys
    (a pdarray, or a tuple of pdarrays for several keys, ascending), ngroups,
    length (rows of the keys). size() gives the rows per group."""

    Reductions = GROUPBY_REDUCTION_TYPES

    def __init__(self, keys, assume_sorted=False, dropna=True):
        for what, flag in (("assume_sorted", assume_sorted), ("dropna", dropna)):
            if not isinstance(flag, (bool, np.bool_)):
                hint = " (to group by several keys, pass them as a list: " \
                       "ak.GroupBy([a, b]))" if isinstance(flag, pdarray) else ""
                raise TypeError(f"GroupBy's {what} must be a bool, not "
                                f"{type(flag).__name__}{hint}")
        single = isinstance(keys, pdarray)
        klist = [keys] if single else list(keys)
        if not klist:
            raise ValueError("GroupBy needs at least one key array")
        for k in klist:
            if not isinstance(k, pdarray):
                raise TypeError(f"GroupBy keys must be pdarrays, not {type(k).__name__}")
        if any(k.size != klist[0].size for k in klist):
            raise ValueError("Key arrays must all be same size")
        res, _ = client.generic_msg("groupby", {"keys": [k.name for k in klist],
                                                "dropna": bool(dropna)})
        self.keys = keys
        self.nkeys = len(klist)
        self.dropna = dropna
        self.assume_sorted = assume_sorted
        self.length = klist[0].size
        self.permutation = create_pdarray(res, "permutation")
        self.segments = create_pdarray(res, "segments")
        self.ngroups = int(res["ngroups"])
        uk = [create_pdarray(res, f"key_{j}") for j in range(self.nkeys)]
        self.unique_keys = uk[0] if single else tuple(uk)  # a tuple, as Arkouda

    # ---- reductions ----------------------------------------------------------------
    def _reduce(self, values, op):
        if not isinstance(values, pdarray):
            raise TypeError(f"values must be a pdarray, not {type(values).__name__}")
        if values.size != self.length:
            raise ValueError("Attempt to group array using key array of different length")
        res, _ = client.generic_msg("groupby_reduce", {
            "permutation": self.permutation.name, "segments": self.segments.name,
            "values": values.name, "op": op})
        return self.unique_keys, create_pdarray(res)

    def size(self):
        """(unique_keys, rows in each group as int64)."""
        res, _ = client.generic_msg("groupby_reduce", {
            "permutation": self.permutation.name, "segments": self.segments.name,
            "op": "size"})
        return self.unique_keys, create_pdarray(res)

    def count(self, values=None):
        """(unique_keys, counts): rows per group, or with values the non-NaN
        values per group (pandas' count)."""
        if values is None:
            return self.size()
        return self._reduce(values, "count")

    def sum(self, values, skipna=True):
        """Sum per group (NaN skipped; bool counts Trues as int64)."""
        return self._reduce(values, "sum")

    def prod(self, values, skipna=True):
        """Product per group, multiplied in row order (NaN skipped, 1 for an
        empty product; integers wrap; bool gives int64), as pandas."""
        return self._reduce(values, "prod")

    def mean(self, values, skipna=True):
        """Mean per group as float64 (NaN skipped; NaN for a group of NaNs)."""
        return self._reduce(values, "mean")

    def min(self, values, skipna=True):
        return self._reduce(values, "min")

    def max(self, values, skipna=True):
        return self._reduce(values, "max")

    def nunique(self, values):
        """Distinct values per group, NaN not counted (pandas' nunique)."""
        return self._reduce(values, "nunique")

    def first(self, values):
        """The value of each group's first row (in the original order)."""
        return self._reduce(values, "first")

    def any(self, values):
        """(unique_keys, bool): whether any value of the group is nonzero."""
        return self._reduce(self._truth(values), "max")

    def all(self, values):
        """(unique_keys, bool): whether every value of the group is nonzero."""
        return self._reduce(self._truth(values), "min")

    def _truth(self, values):
        if not isinstance(values, pdarray):
            raise TypeError(f"values must be a pdarray, not {type(values).__name__}")
        return values if values.dtype == bool_ else values != 0

    def var(self, values, ddof=1):
        """Variance per group as float64 (pandas' default ddof=1; NaN
        skipped; NaN where a group has ddof or fewer values). Two passes, as
        NumPy: the mean of each group, then the squares about it."""
        from .numeric import isnan, where
        v = self._float(values)
        _, mean = self._reduce(v, "mean")
        _, n = self._reduce(v, "count")
        d = v - self.broadcast(mean)
        _, ss = self._reduce(where(isnan(d), 0.0, d * d), "sum")
        return self.unique_keys, where(n > ddof, ss / (n - ddof), np.nan)

    def std(self, values, ddof=1):
        """Standard deviation per group (see var)."""
        from .numeric import sqrt
        keys, v = self.var(values, ddof=ddof)
        return keys, sqrt(v)

    def median(self, values, skipna=True):
        """Median per group as float64 (NaN skipped; NaN for a group of
        NaNs), as pandas: the rows of each group sorted by value (one
        coargsort of group number and value), then the middle one, or the
        mean of the middle two."""
        from .creation import arange, zeros
        from .numeric import where
        from .sorting import coargsort
        v = self._float(values)
        _, n = self._reduce(v, "count")                          # non-NaN per group
        if self.ngroups == 0:
            return self.unique_keys, zeros(0, np.float64)
        pv = v[self.permutation]                                 # grouped order
        gid = self.broadcast(arange(self.ngroups), permute=False)
        sv = pv[coargsort([gid, pv])]                            # NaN last in a group
        start = self.segments
        lo = where(n > 0, start + (n - 1) // 2, 0)
        hi = where(n > 0, start + n // 2, 0)
        return self.unique_keys, where(n > 0, (sv[lo] + sv[hi]) / 2.0, np.nan)

    def argmin(self, values):
        """(unique_keys, int64): the index (in values) of each group's first
        minimum, NaN skipped (pandas' idxmin; -1 for a group of NaNs)."""
        return self._arg(values, "min")

    def argmax(self, values):
        """(unique_keys, int64): the index of each group's first maximum."""
        return self._arg(values, "max")

    def _arg(self, values, op):
        from .creation import arange
        from .numeric import where
        _, best = self._reduce(values, op)
        rows = where(values == self.broadcast(best), arange(self.length), self.length)
        _, first = self._reduce(rows, "min")
        return self.unique_keys, where(first == self.length, -1, first)

    def _float(self, values):
        if not isinstance(values, pdarray):
            raise TypeError(f"values must be a pdarray, not {type(values).__name__}")
        if values.dtype == bool_:
            raise TypeError("var/std/median of bool values is not supported")
        return values.astype(np.float64)

    def aggregate(self, values, operator, skipna=True):
        op = str(operator).lower()
        if op not in self.Reductions:
            raise ValueError(f"Unsupported reduction: {operator}\nMust be one of "
                             f"{sorted(self.Reductions)}")
        if op not in _SERVER_REDUCTIONS:
            return getattr(self, op)(values)
        return self._reduce(values, op)

    agg = aggregate

    # ---- back to the rows ---------------------------------------------------------------
    def broadcast(self, values, permute=True):
        """One value per group spread to the rows of the group: with permute
        (the default) in the keys' original order (length rows), otherwise
        in grouped order."""
        if not isinstance(values, pdarray):
            raise TypeError(f"values must be a pdarray, not {type(values).__name__}")
        if values.size != self.ngroups:
            raise ValueError(f"broadcast needs one value per group ({self.ngroups}), "
                             f"not {values.size}")
        res, _ = client.generic_msg("groupby_broadcast", {
            "permutation": self.permutation.name, "segments": self.segments.name,
            "values": values.name, "permute": bool(permute), "length": self.length})
        return create_pdarray(res)

    def __repr__(self):
        return f"GroupBy({self.nkeys} key(s), {self.length} rows, {self.ngroups} groups)"
