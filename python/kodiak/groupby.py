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

GROUPBY_REDUCTION_TYPES = frozenset(["sum", "mean", "min", "max", "count", "nunique", "first"])


class GroupBy:
    """Group an array, or the rows of a list of arrays, by value.

    Attributes: keys, nkeys, permutation (int64: the rows in group order),
    segments (int64: where each group starts in permuted order), unique_keys
    (a pdarray, or a list of pdarrays for several keys, ascending), ngroups,
    length (rows of the keys). size() gives the rows per group."""

    Reductions = GROUPBY_REDUCTION_TYPES

    def __init__(self, keys, assume_sorted=False, dropna=True):
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
        self.unique_keys = uk[0] if single else uk

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

    def aggregate(self, values, operator, skipna=True):
        op = str(operator).lower()
        if op not in self.Reductions:
            raise ValueError(f"Unsupported reduction: {operator}\nMust be one of "
                             f"{sorted(self.Reductions)}")
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
