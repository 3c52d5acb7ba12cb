# SPDX-License-Identifier: Apache-2.0
"""groupby.py — GroupBy: group the rows of one or more key arrays and reduce
other arrays per group, with Arkouda's names and pandas' results.

The server sorts the keys (stable radix sort, first key most significant),
so groups come in ascending key order and the rows of a group keep their
original order. Rows whose float key is NaN are left out (dropna=True, as
pandas and Arkouda)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, Union

import numpy as np

from . import client
from .dtypes import bool_
from .pdarrayclass import _check_pdarray, create_pdarray, pdarray

if TYPE_CHECKING:
    # what the reductions return: (unique_keys, one value per group)
    GroupResult = tuple[Union[pdarray, tuple[pdarray, ...]], pdarray]

__all__ = ["GroupBy", "GROUPBY_REDUCTION_TYPES"]

# The server's reductions, and those made of them here (any, all, var, std,
# argmin, argmax, median).
_SERVER_REDUCTIONS = frozenset(["sum", "prod", "mean", "min", "max", "count", "nunique",
                                "first"])
GROUPBY_REDUCTION_TYPES = _SERVER_REDUCTIONS | frozenset(["any", "all", "var", "std",
                                                          "argmin", "argmax", "median"])


class GroupBy:
    """Group an array, or the rows of a list of arrays, by value, as
    Arkouda's GroupBy (results as pandas' groupby gives them).

    Parameters
    ----------
    keys : pdarray or sequence of pdarray
        One key array, or several of the same size (a row's key is then the
        tuple of its values, the first array most significant).
    assume_sorted : bool, optional
        Arkouda's hint; the keys are sorted anyway.
    dropna : bool, optional
        Leave out rows with a NaN key (default True, as pandas).

    Attributes
    ----------
    keys, nkeys, length : the keys as given, how many arrays, rows
    permutation : pdarray
        int64: the rows in group order.
    segments : pdarray
        int64: where each group starts in permuted order.
    unique_keys : pdarray or tuple of pdarray
        Each group's key, ascending (a tuple for several key arrays).
    ngroups : int

    Raises
    ------
    TypeError
        A key is not a pdarray, or assume_sorted/dropna is not a bool (as
        when a second key array is passed on its own instead of in a list).
    ValueError
        No keys, or key arrays of different sizes.

    Examples
    --------
    >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
    >>> g.unique_keys, g.ngroups
    (array([0, 1, 2]), 3)
    >>> g.sum(ak.array([10, 20, 30, 40, 50]))
    (array([0, 1, 2]), array([70, 40, 40]))
    >>> ak.GroupBy([ak.array([1, 1, 0]), ak.array([2.5, 0.5, 9.0])]).unique_keys
    (array([0, 1, 1]), array([9. , 0.5, 2.5]))
    """

    Reductions = GROUPBY_REDUCTION_TYPES

    def __init__(self, keys: pdarray | Sequence[pdarray], assume_sorted: bool = False,
                 dropna: bool = True) -> None:
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
        _check_pdarray(values, "values")
        if values.size != self.length:
            raise ValueError("Attempt to group array using key array of different length")
        res, _ = client.generic_msg("groupby_reduce", {
            "permutation": self.permutation.name, "segments": self.segments.name,
            "values": values.name, "op": op})
        return self.unique_keys, create_pdarray(res)

    def size(self) -> GroupResult:
        """The number of rows in each group.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            int64.

        Examples
        --------
        >>> ak.GroupBy(ak.array([1, 0, 1, 2, 0])).size()
        (array([0, 1, 2]), array([2, 2, 1]))
        """
        res, _ = client.generic_msg("groupby_reduce", {
            "permutation": self.permutation.name, "segments": self.segments.name,
            "op": "size"})
        return self.unique_keys, create_pdarray(res)

    def count(self, values: pdarray | None = None) -> GroupResult:
        """The rows in each group, or with `values` the non-NaN values in each
        group (pandas' count).

        Parameters
        ----------
        values : pdarray, optional
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            int64.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1]))
        >>> g.count(ak.array([1.0, 2.0, np.nan]))
        (array([0, 1]), array([1, 1]))
        """
        if values is None:
            return self.size()
        return self._reduce(values, "count")

    def sum(self, values: pdarray, skipna: bool = True) -> GroupResult:
        """The sum of each group's values (bool counts the Trues), as pandas.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            NumPy's sum dtype (int64 for bool).

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.sum(v)
        (array([0, 1, 2]), array([70, 40, 40]))
        """
        return self._reduce(values, "sum")

    def prod(self, values: pdarray, skipna: bool = True) -> GroupResult:
        """The product of each group's values, multiplied in row order, as
        pandas (1 for an empty product; integers wrap).

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            NumPy's prod dtype (int64 for bool).

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.prod(v)
        (array([0, 1, 2]), array([1000,  300,   40]))
        """
        return self._reduce(values, "prod")

    def mean(self, values: pdarray, skipna: bool = True) -> GroupResult:
        """The mean of each group's values, as pandas.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            float64 (NaN for a group of NaNs).

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.mean(v)
        (array([0, 1, 2]), array([35., 20., 40.]))
        """
        return self._reduce(values, "mean")

    def min(self, values: pdarray, skipna: bool = True) -> GroupResult:
        """The smallest value of each group, as pandas.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            values' dtype.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.min(v)
        (array([0, 1, 2]), array([20, 10, 40]))
        """
        return self._reduce(values, "min")

    def max(self, values: pdarray, skipna: bool = True) -> GroupResult:
        """The largest value of each group, as pandas.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            values' dtype.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.max(v)
        (array([0, 1, 2]), array([50, 30, 40]))
        """
        return self._reduce(values, "max")

    def nunique(self, values: pdarray) -> GroupResult:
        """The number of distinct values in each group, NaN not counted
        (pandas' nunique).

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            int64.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([0, 0, 0, 1]))
        >>> g.nunique(ak.array([5, 5, 6, 7]))
        (array([0, 1]), array([2, 1]))
        """
        return self._reduce(values, "nunique")

    def first(self, values: pdarray) -> GroupResult:
        """The value of each group's first row (in the original order).

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            values' dtype.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.first(v)
        (array([0, 1, 2]), array([20, 10, 40]))
        """
        return self._reduce(values, "first")

    def any(self, values: pdarray) -> GroupResult:
        """Whether any value of each group is nonzero.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            bool.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.any(v > 35)
        (array([0, 1, 2]), array([ True, False,  True]))
        """
        return self._reduce(self._truth(values), "max")

    def all(self, values: pdarray) -> GroupResult:
        """Whether every value of each group is nonzero.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            bool.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.all(v > 15)
        (array([0, 1, 2]), array([ True, False,  True]))
        """
        return self._reduce(self._truth(values), "min")

    def _truth(self, values):
        _check_pdarray(values, "values")
        return values if values.dtype == bool_ else values != 0

    def var(self, values: pdarray, ddof: int = 1) -> GroupResult:
        """The variance of each group's values, as pandas (NaN skipped). Two
        passes, as NumPy: each group's mean, then the squares about it.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        ddof : int, optional
            Delta degrees of freedom (default 1, pandas').

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            float64; NaN where a group has ddof or fewer values.

        Raises
        ------
        TypeError
            `values` is not a pdarray, or is bool.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.var(v)
        (array([0, 1, 2]), array([450., 200.,  nan]))
        """
        from .fpe import errstate
        from .numeric import isnan, where
        v = self._float(values)
        _, mean = self._reduce(v, "mean")
        _, n = self._reduce(v, "count")
        # pandas does not warn: the 0/0 of groups of ddof or fewer values
        # (replaced by NaN) are this recipe's, not the user's
        with errstate(all="ignore"):
            d = v - self.broadcast(mean)
            _, ss = self._reduce(where(isnan(d), 0.0, d * d), "sum")
            return self.unique_keys, where(n > ddof, ss / (n - ddof), np.nan)

    def std(self, values: pdarray, ddof: int = 1) -> GroupResult:
        """The standard deviation of each group's values: the square root of
        var, as pandas.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        ddof : int, optional
            Delta degrees of freedom (default 1, pandas').

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            float64; NaN where a group has ddof or fewer values.

        Raises
        ------
        TypeError
            `values` is not a pdarray, or is bool.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.std(v)
        (array([0, 1, 2]), array([21.21320344, 14.14213562,         nan]))
        """
        from .numeric import sqrt
        keys, v = self.var(values, ddof=ddof)
        return keys, sqrt(v)

    def median(self, values: pdarray, skipna: bool = True) -> GroupResult:
        """The median of each group's values, as pandas (NaN skipped): the
        middle value, or the mean of the middle two.

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            float64 (NaN for a group of NaNs).

        Raises
        ------
        TypeError
            `values` is not a pdarray, or is bool.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.median(v)
        (array([0, 1, 2]), array([35., 20., 40.]))
        """
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

    def argmin(self, values: pdarray) -> GroupResult:
        """The row (index in values) of each group's first minimum, NaN
        skipped (pandas' idxmin).

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            int64; -1 for a group of NaNs.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.argmin(v)
        (array([0, 1, 2]), array([1, 0, 3]))
        """
        return self._arg(values, "min")

    def argmax(self, values: pdarray) -> GroupResult:
        """The row (index in values) of each group's first maximum, NaN
        skipped (pandas' idxmax).

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            int64; -1 for a group of NaNs.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` has a size other than the keys'.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.argmax(v)
        (array([0, 1, 2]), array([4, 2, 3]))
        """
        return self._arg(values, "max")

    def _arg(self, values, op):
        from .creation import arange
        from .numeric import where
        _, best = self._reduce(values, op)
        rows = where(values == self.broadcast(best), arange(self.length), self.length)
        _, first = self._reduce(rows, "min")
        return self.unique_keys, where(first == self.length, -1, first)

    def _float(self, values):
        _check_pdarray(values, "values")
        if values.dtype == bool_:
            raise TypeError("var/std/median of bool values is not supported")
        return values.astype(np.float64)

    def aggregate(self, values: pdarray, operator: str, skipna: bool = True) -> GroupResult:
        """The reduction named `operator` of each group's values (Arkouda's
        aggregate; also spelled agg).

        Parameters
        ----------
        values : pdarray
            One value per row of the keys.
        operator : str
            One of GroupBy.Reductions ('sum', 'mean', 'median', ...), any case.
        skipna : bool, optional
            pandas' flag; NaN values are always skipped.

        Returns
        -------
        unique_keys : pdarray or tuple of pdarray
        result : pdarray
            As the method of that name.

        Raises
        ------
        ValueError
            `operator` is not a known reduction, or `values` has a size
            other than the keys'.
        TypeError
            `values` is not a pdarray.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> v = ak.array([10, 20, 30, 40, 50])
        >>> g.aggregate(v, 'max')
        (array([0, 1, 2]), array([50, 30, 40]))
        """
        op = str(operator).lower()
        if op not in self.Reductions:
            raise ValueError(f"Unsupported reduction: {operator}\nMust be one of "
                             f"{sorted(self.Reductions)}")
        if op not in _SERVER_REDUCTIONS:
            return getattr(self, op)(values)
        return self._reduce(values, op)

    agg = aggregate

    # ---- back to the rows ---------------------------------------------------------------
    def broadcast(self, values: pdarray, permute: bool = True) -> pdarray:
        """One value per group spread to the rows of the group, as Arkouda's
        broadcast.

        Parameters
        ----------
        values : pdarray
            One value per group (in unique_keys' order).
        permute : bool, optional
            True (default): the rows in the keys' original order; False: in
            grouped order.

        Returns
        -------
        pdarray
            `length` values of values' dtype.

        Raises
        ------
        TypeError
            `values` is not a pdarray.
        ValueError
            `values` does not hold one value per group.

        Examples
        --------
        >>> g = ak.GroupBy(ak.array([1, 0, 1, 2, 0]))
        >>> g.broadcast(ak.array([100, 200, 300]))
        array([200, 100, 200, 300, 100])
        >>> g.broadcast(ak.array([100, 200, 300]), permute=False)
        array([100, 100, 200, 200, 300])
        """
        _check_pdarray(values, "values")
        if values.size != self.ngroups:
            raise ValueError(f"broadcast needs one value per group ({self.ngroups}), "
                             f"not {values.size}")
        res, _ = client.generic_msg("groupby_broadcast", {
            "permutation": self.permutation.name, "segments": self.segments.name,
            "values": values.name, "permute": bool(permute), "length": self.length})
        return create_pdarray(res)

    def __repr__(self):
        return f"GroupBy({self.nkeys} key(s), {self.length} rows, {self.ngroups} groups)"
