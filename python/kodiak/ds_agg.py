# SPDX-License-Identifier: Apache-2.0
"""ds_agg.py — aggregation over a dataset of the store, computed by kodiakd
batch by batch (src/kodiakd/kd_cmd_dsagg.c), never by reading a whole
column into memory; and ds.batches(), to walk a dataset a batch at a time.

    trip.sum("fare_amount"); trip.mean("fare_amount"); trip.std("fare_amount")
    trip.min("pickup_datetime"); trip.count("tip"); trip.nunique("zone")
    trip.value_counts("payment_type")                  # a pandas Series
    trip.groupby("zone").mean("fare_amount")           # a pandas Series
    trip.groupby(["zone", "payment_type"])["fare_amount"].agg(["count", "mean"])
    for b in trip.batches(["fare_amount"]): ...        # {column: pdarray}

Results are pandas' for the same data: the whole-dataset reductions give
what `df[col].sum()` etc. give (NumPy scalars; NaN, NaT or None for an
empty column), the group-bys give what `df.groupby(keys)[col].<op>()`
gives (a Series named after the column, with the group keys as its index,
sorted, rows with a missing key dropped, text keys decoded as str,
date-times as datetime64[ns]), value_counts what `df[col].value_counts()`
gives. The methods are attached to `Dataset` when this module is imported
(kodiak/dataset.py imports it)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Union

import numpy as np

from . import client
from .dataset import Dataset

if TYPE_CHECKING:
    import pandas

__all__ = ["DatasetGroupBy", "DatasetSeriesGroupBy"]

_OPS = ("size", "count", "sum", "mean", "min", "max", "std", "var", "nunique")


def _decode(words, dtype, cats=None):
    """A frame of 64-bit words of a column of store dtype `dtype` as the
    NumPy array pandas would hold (text: object with NaN where missing)."""
    w = np.frombuffer(words, dtype=np.uint64) if len(words) else np.empty(0, np.uint64)
    if dtype == "float64":
        return w.view(np.float64).copy()
    if dtype == "uint64":
        return w.copy()
    if dtype == "bool":
        return w != 0
    if dtype == "datetime64[s]":  # the int64 minimum is NaT
        return w.view(np.int64).astype("datetime64[s]").astype("datetime64[ns]")
    if dtype == "text":
        codes = w.view(np.int64)
        out = np.empty(len(codes), dtype=object)
        ok = codes >= 0
        out[ok] = np.array(cats, dtype=object)[codes[ok]] if len(cats) else []
        out[~ok] = np.nan
        return out
    return w.view(np.int64).copy()


def _cats(offs, text):
    o = np.frombuffer(offs, dtype=np.int64)
    b = bytes(text)
    return [b[o[i]:o[i + 1]].decode("utf-8", "surrogateescape") for i in range(len(o) - 1)]


_table = "auto"  # the default `table` of _agg (bench/ds_agg_bench.py sets "hash")
_cache = True  # False: the server neither uses nor keeps per-batch partial results
               # (bench/ds_agg_bench.py times the folding itself)


def _agg(ds: Dataset, keys: List[str], value: Optional[str], ops: List[str], ddof: int = 1,
         table: Optional[str] = None):
    """One ds_agg request: ({key: values}, {op: values}) in the server's
    (unsorted) group order. table="hash" keeps the server from its
    direct-indexed table for small keys (the tests and the benchmark
    compare the two); None: _table."""
    table = _table if table is None else table
    args = {"store": ds.store.name, "dataset": ds.name, "keys": list(keys),
            "value": value, "ops": list(ops), "ddof": int(ddof), "table": table}
    if not _cache:
        args["cache"] = False
    try:
        res, frames = client.generic_msg("ds_agg", args)
    except MemoryError as e:
        raise MemoryError(f"{e} (aggregating dataset '{ds.name}')") from None
    at = 0
    kout = {}
    for k in res["keys"]:
        words = frames[at]
        at += 1
        cats = None
        if k["dtype"] == "text":
            cats = _cats(frames[at], frames[at + 1])
            at += 2
        kout[k["name"]] = _decode(words, k["dtype"], cats)
    raw = []
    for o in res["ops"]:
        raw.append((o["op"], o["dtype"], frames[at]))
        at += 1
    vcats = None
    if res.get("value_dtype") == "text":
        vcats = _cats(frames[at], frames[at + 1])
    oout = {}
    for op, dt, words in raw:
        oout[op] = _decode(words, dt, vcats)
    return kout, oout


def _names(x, what) -> List[str]:
    if isinstance(x, str):
        return [x]
    if isinstance(x, (list, tuple)) and x and all(isinstance(k, str) for k in x):
        return list(x)
    raise TypeError(f"{what} must be a column name or a non-empty list of them, not {x!r}")


def _scalar(v):
    """One result of a whole-dataset reduction as pandas returns it."""
    import pandas as pd
    if isinstance(v, np.datetime64):
        return pd.Timestamp(v) if not np.isnat(v) else pd.NaT
    return v


def _reduce(ds: Dataset, col: str, op: str, ddof: int = 1):
    if not isinstance(col, str):
        raise TypeError(f"{op}: a column name, not {type(col).__name__}")
    _, out = _agg(ds, [], col, [op], ddof)
    return _scalar(out[op][0])


def _by_key(r):
    """r sorted by its index, as r.sort_index()."""
    return r if r.index.is_monotonic_increasing else r.sort_index()


def _in_key_order(k: Dict[str, np.ndarray], o: Dict[str, np.ndarray]):
    """The groups (keys k, results o) in key order, as sort_index would put
    them, by NumPy's stable argsort where that is the same order: one
    numeric or date-time key (NaN and NaT last in both). pandas' own
    sort_index took 0.28 ms of a 1 ms group-by of 260 groups. Otherwise
    (several keys, text) k and o as they are, for _by_key."""
    if len(k) != 1:
        return k, o
    key = next(iter(k.values()))
    if not isinstance(key, np.ndarray) or key.dtype.kind not in "iufbM":
        return k, o
    order = np.argsort(key, kind="stable")
    if (order == np.arange(len(order))).all():
        return k, o
    return ({n: v[order] for n, v in k.items()},
            {n: (v[order] if isinstance(v, np.ndarray) and len(v) == len(order) else v)
             for n, v in o.items()})


def _index(kv: Dict[str, np.ndarray]):
    import pandas as pd
    names = list(kv)
    if len(names) == 1:
        return pd.Index(kv[names[0]], name=names[0])
    return pd.MultiIndex.from_arrays([kv[k] for k in names], names=names)


# ---- the Dataset methods ------------------------------------------------------------------

def _ds_sum(self, column: str) -> Any:
    """The sum of a column, as pandas' `df[column].sum()`: NaN skipped; int64
    and uint64 sums wrap around as NumPy's do; bool counts the Trues; 0 for
    no rows. Float64 sums are compensated (Neumaier) over the rows of each
    rank's batches in order, then over the ranks in order: within a few
    ulps of the exact sum, so of pandas'.

    Parameters
    ----------
    column : str

    Returns
    -------
    numpy.int64, numpy.uint64 or numpy.float64

    Raises
    ------
    KeyError
        No such column.
    TypeError
        A text or date-time column.

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_sum")
    >>> t = s.ingest("T", {"x": np.array([1.5, np.nan, 2.0])}, batch_rows=2)
    >>> t.sum("x")
    3.5
    >>> s.destroy()
    """
    return _reduce(self, column, "sum")


def _ds_mean(self, column: str) -> Any:
    """The mean of a column's non-missing values (the compensated sum over
    their count), as `df[column].mean()`; NaN when there are none.

    Parameters
    ----------
    column : str

    Returns
    -------
    numpy.float64

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_mean")
    >>> t = s.ingest("T", {"x": np.array([1, 2, 3, 6])}, batch_rows=3)
    >>> t.mean("x")
    3.0
    >>> s.destroy()
    """
    return _reduce(self, column, "mean")


def _ds_min(self, column: str) -> Any:
    """The least non-missing value of a column, as `df[column].min()`
    (text: the least string; date-times: a pandas Timestamp); NaN, None or
    NaT when there is none.

    Parameters
    ----------
    column : str

    Returns
    -------
    scalar

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_min")
    >>> t = s.ingest("T", {"x": np.array([4, -2, 7]), "s": np.array(["b", "a", "c"])})
    >>> t.min("x"), t.min("s")
    (-2, 'a')
    >>> s.destroy()
    """
    return _reduce(self, column, "min")


def _ds_max(self, column: str) -> Any:
    """The greatest non-missing value of a column, as `df[column].max()`.

    Parameters
    ----------
    column : str

    Returns
    -------
    scalar

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_max")
    >>> t = s.ingest("T", {"x": np.array([4.5, np.nan, 7.25])})
    >>> t.max("x")
    7.25
    >>> s.destroy()
    """
    return _reduce(self, column, "max")


def _ds_count(self, column: str) -> int:
    """The number of non-missing values of a column (NaN, NaT and missing
    text are not counted), as `df[column].count()`.

    Parameters
    ----------
    column : str

    Returns
    -------
    int

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_count")
    >>> t = s.ingest("T", {"x": np.array([1.0, np.nan, 3.0])})
    >>> t.count("x")
    2
    >>> s.destroy()
    """
    return int(_reduce(self, column, "count"))


def _ds_std(self, column: str, ddof: int = 1) -> Any:
    """The standard deviation of a column's non-missing values, with
    pandas' default ddof=1 (NumPy's np.std has ddof=0): sqrt(sum of squared
    deviations / (count - ddof)), NaN when count <= ddof. Computed per
    batch with Welford's method and combined across batches and ranks with
    Chan et al.'s parallel formula (stable: no sum of squares).

    Parameters
    ----------
    column : str
    ddof : int
        Delta degrees of freedom (default 1, as pandas).

    Returns
    -------
    numpy.float64

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_std")
    >>> t = s.ingest("T", {"x": np.array([2.0, 4, 4, 4, 5, 5, 7, 9])}, batch_rows=3)
    >>> float(t.std("x", ddof=0))
    2.0
    >>> s.destroy()
    """
    return _reduce(self, column, "std", ddof)


def _ds_var(self, column: str, ddof: int = 1) -> Any:
    """The variance of a column's non-missing values (ddof=1 as pandas),
    the square of std().

    Parameters
    ----------
    column : str
    ddof : int

    Returns
    -------
    numpy.float64

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_var")
    >>> t = s.ingest("T", {"x": np.array([1.0, 2.0, 3.0])})
    >>> float(t.var("x"))
    1.0
    >>> s.destroy()
    """
    return _reduce(self, column, "var", ddof)


def _ds_nunique(self, column: str) -> int:
    """The number of distinct non-missing values of a column, as
    `df[column].nunique()` (0.0 and -0.0 are one value).

    Parameters
    ----------
    column : str

    Returns
    -------
    int

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_nunique")
    >>> t = s.ingest("T", {"s": np.array(["a", "b", "a", "c"])}, batch_rows=2)
    >>> t.nunique("s")
    3
    >>> s.destroy()
    """
    return int(_reduce(self, column, "nunique"))


def _ds_value_counts(self, column: str, ascending: bool = False) -> "pandas.Series":
    """How many times each non-missing value of a column occurs, as
    `df[column].value_counts()`: a pandas Series, most frequent first
    (values with equal counts in the order of the values; pandas leaves
    their order unspecified), named as this pandas version names it.

    Parameters
    ----------
    column : str
    ascending : bool
        Least frequent first.

    Returns
    -------
    pandas.Series

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_vc")
    >>> t = s.ingest("T", {"s": np.array(["a", "b", "a", "c", "a", "c"])}, batch_rows=4)
    >>> t.value_counts("s").to_dict()
    {'a': 3, 'c': 2, 'b': 1}
    >>> s.destroy()
    """
    import pandas as pd
    if not isinstance(column, str):
        raise TypeError(f"value_counts: a column name, not {type(column).__name__}")
    k, o = _agg(self, [column], None, ["size"])
    r = _by_key(pd.Series(o["size"], index=_index(k)))
    r = r.sort_values(ascending=bool(ascending), kind="stable")
    if int(pd.__version__.split(".")[0]) >= 2:
        r.name = "count"
    else:
        r.name, r.index.name = column, None
    return r


def _ds_groupby(self, keys: Union[str, List[str]]) -> "DatasetGroupBy":
    """Group the rows by the values of one or more key columns, as
    `df.groupby(keys)`; aggregate with .size(), .count(col), .sum(col),
    .mean(col), .min(col), .max(col), .std(col), .var(col), .nunique(col)
    or ["col"].agg([...]). Rows with a missing key belong to no group
    (pandas' dropna=True).

    Parameters
    ----------
    keys : str or list of str

    Returns
    -------
    DatasetGroupBy

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_groupby")
    >>> t = s.ingest("T", {"k": np.array(["b", "a", "b"]), "x": np.array([1, 2, 3])})
    >>> t.groupby("k").sum("x").to_dict()
    {'a': 2, 'b': 4}
    >>> s.destroy()
    """
    return DatasetGroupBy(self, keys)


def _ds_batches(self, columns: Optional[List[str]] = None) -> Iterator[dict]:
    """The dataset one batch at a time, in order, as {column: pdarray |
    Categorical} (text categories of that batch only): the way to work on a
    dataset larger than the compute server's memory. Each batch's arrays
    are freed on the server when the loop moves on (unless kept). The
    batches are those committed when the loop starts.

    Parameters
    ----------
    columns : list of str, optional
        The columns to read (default: all).

    Yields
    ------
    dict

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_batches")
    >>> t = s.ingest("T", {"x": np.arange(5)}, batch_rows=2)
    >>> [int(b["x"].sum()) for b in t.batches()]
    [1, 5, 4]
    >>> s.destroy()
    """
    rows = self.batch_rows
    start = 0
    for n in rows:
        b = self._read(None if columns is None else list(columns), start, start + n)
        start += n
        yield b
        del b


for _name, _fn in [("sum", _ds_sum), ("mean", _ds_mean), ("min", _ds_min), ("max", _ds_max),
                   ("count", _ds_count), ("std", _ds_std), ("var", _ds_var),
                   ("nunique", _ds_nunique), ("value_counts", _ds_value_counts),
                   ("groupby", _ds_groupby), ("batches", _ds_batches)]:
    _fn.__name__ = _name
    _fn.__qualname__ = f"Dataset.{_name}"
    setattr(Dataset, _name, _fn)


# ---- group-by ------------------------------------------------------------------------------

class DatasetGroupBy:
    """The rows of a dataset grouped by key columns (ds.groupby(keys)).
    Each aggregation is one pass over the batches on the server; the
    result is the pandas object `df.groupby(keys)[col].<op>()` gives.

    Parameters
    ----------
    dataset : Dataset
    keys : str or list of str

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_dgb")
    >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
    >>> g = t.groupby("k")
    >>> g.mean("x").tolist(), g.size().tolist()
    ([2.0, 5.0], [2, 1])
    >>> s.destroy()
    """

    def __init__(self, dataset: Dataset, keys: Union[str, List[str]]) -> None:
        self.dataset = dataset
        self.keys = _names(keys, "groupby keys")

    def __repr__(self) -> str:
        return f"DatasetGroupBy({self.dataset.name!r}, keys={self.keys})"

    def __getitem__(self, column: Union[str, List[str]]) -> "DatasetSeriesGroupBy":
        """g["col"]: that column of each group, to aggregate (as pandas'
        SeriesGroupBy).

        Parameters
        ----------
        column : str

        Returns
        -------
        DatasetSeriesGroupBy

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_dgb_item")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
        >>> t.groupby("k")["x"].max().tolist()
        [3.0, 5.0]
        >>> s.destroy()
        """
        if not isinstance(column, str):
            raise TypeError(f"a grouped dataset is indexed by one column name, not {column!r}")
        return DatasetSeriesGroupBy(self, column)

    def _one(self, column, op, ddof=1):
        if isinstance(column, (list, tuple)):
            import pandas as pd
            return pd.concat([self._one(c, op, ddof) for c in column], axis=1)
        return DatasetSeriesGroupBy(self, column)._ops([op], ddof)[op]

    def size(self) -> "pandas.Series":
        """The rows of each group, as `df.groupby(keys).size()`.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_size")
        >>> t = s.ingest("T", {"k": np.array(["x", "y", "x"])})
        >>> t.groupby("k").size().to_dict()
        {'x': 2, 'y': 1}
        >>> s.destroy()
        """
        import pandas as pd
        k, o = _in_key_order(*_agg(self.dataset, self.keys, None, ["size"]))
        return _by_key(pd.Series(o["size"], index=_index(k)))

    def count(self, column: Union[str, List[str]]) -> "pandas.Series":
        """Non-missing values of a column per group (a list of columns: a
        DataFrame), as `df.groupby(keys)[column].count()`.

        Parameters
        ----------
        column : str or list of str

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gcount")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, np.nan, 5.0])})
        >>> t.groupby("k").count("x").tolist()
        [1, 1]
        >>> s.destroy()
        """
        return self._one(column, "count")

    def sum(self, column: Union[str, List[str]]) -> "pandas.Series":
        """The sum of a column per group, as `df.groupby(keys)[column].sum()`.

        Parameters
        ----------
        column : str or list of str

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gsum")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1, 2, 5])})
        >>> t.groupby("k").sum("x").tolist()
        [3, 5]
        >>> s.destroy()
        """
        return self._one(column, "sum")

    def mean(self, column: Union[str, List[str]]) -> "pandas.Series":
        """The mean of a column per group, as `df.groupby(keys)[column].mean()`.

        Parameters
        ----------
        column : str or list of str

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gmean")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1, 2, 5])})
        >>> t.groupby("k").mean("x").tolist()
        [1.5, 5.0]
        >>> s.destroy()
        """
        return self._one(column, "mean")

    def min(self, column: Union[str, List[str]]) -> "pandas.Series":
        """The least value of a column per group, as `df.groupby(keys)[column].min()`.

        Parameters
        ----------
        column : str or list of str

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gmin")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([4, 2, 5])})
        >>> t.groupby("k").min("x").tolist()
        [2, 5]
        >>> s.destroy()
        """
        return self._one(column, "min")

    def max(self, column: Union[str, List[str]]) -> "pandas.Series":
        """The greatest value of a column per group, as `df.groupby(keys)[column].max()`.

        Parameters
        ----------
        column : str or list of str

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gmax")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([4, 2, 5])})
        >>> t.groupby("k").max("x").tolist()
        [4, 5]
        >>> s.destroy()
        """
        return self._one(column, "max")

    def std(self, column: Union[str, List[str]], ddof: int = 1) -> "pandas.Series":
        """The standard deviation of a column per group (ddof=1 as pandas),
        as `df.groupby(keys)[column].std()`.

        Parameters
        ----------
        column : str or list of str
        ddof : int

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gstd")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
        >>> t.groupby("k").std("x").tolist()[0]
        1.4142135623730951
        >>> s.destroy()
        """
        return self._one(column, "std", ddof)

    def var(self, column: Union[str, List[str]], ddof: int = 1) -> "pandas.Series":
        """The variance of a column per group (ddof=1 as pandas).

        Parameters
        ----------
        column : str or list of str
        ddof : int

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gvar")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
        >>> t.groupby("k").var("x").tolist()[0]
        2.0
        >>> s.destroy()
        """
        return self._one(column, "var", ddof)

    def nunique(self, column: Union[str, List[str]]) -> "pandas.Series":
        """Distinct non-missing values of a column per group, as
        `df.groupby(keys)[column].nunique()`.

        Parameters
        ----------
        column : str or list of str

        Returns
        -------
        pandas.Series or pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_gnunique")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 1, 2]), "x": np.array([4, 4, 2, 5])})
        >>> t.groupby("k").nunique("x").tolist()
        [2, 1]
        >>> s.destroy()
        """
        return self._one(column, "nunique")


class DatasetSeriesGroupBy:
    """One column of a grouped dataset (ds.groupby(keys)[column]): the
    aggregations of DatasetGroupBy without the column argument, and agg()
    for several in one pass.

    Parameters
    ----------
    grouped : DatasetGroupBy
    column : str

    Examples
    --------
    >>> s = ak.DatasetStore("doc_agg_sgb")
    >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
    >>> t.groupby("k")["x"].agg(["count", "mean"])
       count  mean
    k
    1      2   2.0
    2      1   5.0
    >>> s.destroy()
    """

    def __init__(self, grouped: DatasetGroupBy, column: str) -> None:
        if not isinstance(column, str):
            raise TypeError(f"a column name, not {column!r}")
        self.grouped = grouped
        self.column = column

    def __repr__(self) -> str:
        return (f"DatasetSeriesGroupBy({self.grouped.dataset.name!r}, "
                f"keys={self.grouped.keys}, column={self.column!r})")

    def _ops(self, ops, ddof=1):
        import pandas as pd
        k, o = _in_key_order(*_agg(self.grouped.dataset, self.grouped.keys, self.column,
                                   ops, ddof))
        idx = _index(k)
        return {op: _by_key(pd.Series(o[op], index=idx, name=self.column)) for op in ops}

    def agg(self, ops: Union[str, List[str]], ddof: int = 1) -> "pandas.DataFrame":
        """Several aggregations of the column in one pass over the data: a
        DataFrame with one column per op (size, count, sum, mean, min, max,
        std, var, nunique), as `df.groupby(keys)[column].agg(ops)`.

        Parameters
        ----------
        ops : str or list of str
        ddof : int
            For std and var (default 1).

        Returns
        -------
        pandas.DataFrame (pandas.Series for one op given as a str)

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_agg")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
        >>> t.groupby("k")["x"].agg("sum").tolist()
        [4.0, 5.0]
        >>> s.destroy()
        """
        import pandas as pd
        single = isinstance(ops, str)
        names = [ops] if single else list(ops)
        bad = [o for o in names if o not in _OPS]
        if bad or not names:
            raise ValueError(f"agg: unknown operation(s) {bad} (one of {', '.join(_OPS)})")
        r = self._ops(names, ddof)
        if single:
            return r[names[0]]
        return pd.DataFrame({o: r[o] for o in names})

    def size(self) -> "pandas.Series":
        """Rows per group (missing values of the column included).

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_size")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, np.nan, 5.0])})
        >>> t.groupby("k")["x"].size().tolist()
        [2, 1]
        >>> s.destroy()
        """
        return self._ops(["size"])["size"]

    def count(self) -> "pandas.Series":
        """Non-missing values per group.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_count")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, np.nan, 5.0])})
        >>> t.groupby("k")["x"].count().tolist()
        [1, 1]
        >>> s.destroy()
        """
        return self._ops(["count"])["count"]

    def sum(self) -> "pandas.Series":
        """The sum per group.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_sum")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1, 2, 5])})
        >>> t.groupby("k")["x"].sum().tolist()
        [3, 5]
        >>> s.destroy()
        """
        return self._ops(["sum"])["sum"]

    def mean(self) -> "pandas.Series":
        """The mean per group.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_mean")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1, 2, 5])})
        >>> t.groupby("k")["x"].mean().tolist()
        [1.5, 5.0]
        >>> s.destroy()
        """
        return self._ops(["mean"])["mean"]

    def min(self) -> "pandas.Series":
        """The least value per group.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_min")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([4, 2, 5])})
        >>> t.groupby("k")["x"].min().tolist()
        [2, 5]
        >>> s.destroy()
        """
        return self._ops(["min"])["min"]

    def max(self) -> "pandas.Series":
        """The greatest value per group.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_max")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([4, 2, 5])})
        >>> t.groupby("k")["x"].max().tolist()
        [4, 5]
        >>> s.destroy()
        """
        return self._ops(["max"])["max"]

    def std(self, ddof: int = 1) -> "pandas.Series":
        """The standard deviation per group (ddof=1 as pandas).

        Parameters
        ----------
        ddof : int

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_std")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
        >>> t.groupby("k")["x"].std(ddof=0).tolist()
        [1.0, 0.0]
        >>> s.destroy()
        """
        return self._ops(["std"], ddof)["std"]

    def var(self, ddof: int = 1) -> "pandas.Series":
        """The variance per group (ddof=1 as pandas).

        Parameters
        ----------
        ddof : int

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_var")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([1.0, 3.0, 5.0])})
        >>> t.groupby("k")["x"].var().tolist()[0]
        2.0
        >>> s.destroy()
        """
        return self._ops(["var"], ddof)["var"]

    def nunique(self) -> "pandas.Series":
        """Distinct non-missing values per group.

        Returns
        -------
        pandas.Series

        Examples
        --------
        >>> s = ak.DatasetStore("doc_agg_sgb_nunique")
        >>> t = s.ingest("T", {"k": np.array([1, 1, 2]), "x": np.array([4, 4, 5])})
        >>> t.groupby("k")["x"].nunique().tolist()
        [1, 1]
        >>> s.destroy()
        """
        return self._ops(["nunique"])["nunique"]
