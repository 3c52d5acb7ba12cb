# SPDX-License-Identifier: Apache-2.0
"""dataset.py — the FAM dataset store from Python: ak.DatasetStore and
Dataset, tables kept in fabric-attached memory as ordered batches, shared
by every compute server and C program attached to the same memory servers.

    store = ak.DatasetStore("taxi")                 # create or attach
    trip = store.ingest("Trip", ["jan.csv", "feb.csv"], batch_rows=1_000_000,
                        parse_dates=["pickup_datetime"])
    trip["fare_amount"]                             # the whole column, a pdarray
    trip.head()                                     # a pandas DataFrame
    store.ingest("Trip", "mar.csv")                 # appends: same columns

Everything is done by kodiakd (src/kodiakd/kd_cmd_ds.c, on libdataset): a
Dataset holds only the store's and the dataset's names, so every access
reads the catalog as it is then (a batch another server or program has
committed meanwhile is seen). Reading a column, each rank reads from FAM
the rows of its own block. An ingest writes uncommitted batches (one
command per file, so a tqdm bar can follow the files) and makes them all
visible in one commit at the end; if anything fails, nothing of it is
visible and its batches are deleted."""
from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Union

import numpy as np

from . import client
from .categorical import Categorical
from .io import ParserWarning, _columns_from_reply, _dtype_text, _names
from .pdarrayclass import pdarray

if TYPE_CHECKING:
    import pandas

__all__ = ["DatasetStore", "Dataset"]

# ds_reclaim's safe age: the 24 h commit deadline plus an hour (dataset.h)
RECLAIM_AGE = 25 * 3600

# The NumPy dtype each store dtype reads back as (text: Categorical).
_NP = {"int64": np.dtype(np.int64), "uint64": np.dtype(np.uint64),
       "float64": np.dtype(np.float64), "bool": np.dtype(bool),
       "datetime64[s]": np.dtype("datetime64[ns]"), "text": np.dtype(object)}

_FRAME = 1 << 20  # bytes per request frame (KD_FRAME_MAX)


def _msg(cmd, args, frames=()):
    return client.generic_msg(cmd, args, frames)


def _split(buf):
    """bytes -> frames of at most _FRAME bytes (at least one)."""
    mv = memoryview(buf).cast("B")
    return [mv[i:i + _FRAME] for i in range(0, max(len(mv), 1), _FRAME)] or [mv]


def _progress(files, progress):
    """A tqdm bar over the files' bytes, or None (KODIAK_PROGRESS as the client's)."""
    setting = os.environ.get("KODIAK_PROGRESS", "auto")
    if progress is False or (progress is None and setting == "0"):
        return None
    total = 0
    for f in files:
        try:
            total += os.path.getsize(f)
        except OSError:
            pass
    if progress is None:
        import sys
        shown = setting == "1" or "ipykernel" in sys.modules or (
            hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
        if not shown or (len(files) < 2 and total < (64 << 20)):
            return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc="kodiak: ingest", leave=False)


class DatasetStore:
    """A dataset store: named tables kept in FAM as ordered batches, with
    their catalog in FAM too. Several compute servers and C programs may
    attach to one store at once.

    Parameters
    ----------
    name : str
        The store's name (letters, digits, '_', '-', '.'; at most 64).
    create : bool
        Create the store if it does not exist (default); False: it must.
    mode : int
        Permission bits of what the store creates (0o644: others may read;
        over tcp, writers need 0o666, docs/SECURITY.md).

    Raises
    ------
    KeyError
        create=False and there is no such store.
    ValueError
        A bad name.

    Examples
    --------
    >>> store = ak.DatasetStore("doc_store")
    >>> _ = store.ingest("T", {"a": np.arange(3), "b": np.array(["x", "y", "x"])})
    >>> store.list(), "T" in store, len(store["T"])
    (['T'], True, 3)
    >>> store.destroy()
    """

    def __init__(self, name: str, create: bool = True, mode: int = 0o644) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a dataset store's name is a str, not {type(name).__name__}")
        self.name = name
        _msg("ds_open", {"store": name, "create": bool(create), "mode": int(mode)})

    def __repr__(self) -> str:
        return f"DatasetStore({self.name!r})"

    def _info_all(self):
        res, _ = _msg("ds_list", {"store": self.name})
        return res["datasets"]

    def list(self) -> List[str]:
        """The datasets' names, in creation order.

        Returns
        -------
        list of str

        Examples
        --------
        >>> ak.DatasetStore("doc_list").list()
        []
        >>> ak.DatasetStore("doc_list").destroy()
        """
        return [d["name"] for d in self._info_all()]

    def describe(self) -> "pandas.DataFrame":
        """One row per dataset: name, kind, rows, batches, columns.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_describe")
        >>> _ = s.ingest("T", {"a": np.arange(4)}, batch_rows=3)
        >>> s.describe()[["name", "rows", "batches"]].values.tolist()
        [['T', 4, 2]]
        >>> s.destroy()
        """
        import pandas as pd
        return pd.DataFrame([{"name": d["name"], "kind": d["kind"], "rows": d["rows"],
                              "batches": len(d["batches"]),
                              "columns": len(d["columns"])} for d in self._info_all()],
                            columns=["name", "kind", "rows", "batches", "columns"])

    def __getitem__(self, name: str) -> "Dataset":
        """store[name]: the dataset `name`.

        Parameters
        ----------
        name : str

        Returns
        -------
        Dataset

        Raises
        ------
        KeyError
            There is no such dataset.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_getitem")
        >>> s["nope"]
        Traceback (most recent call last):
        ...
        KeyError: ...
        >>> s.destroy()
        """
        if not isinstance(name, str):
            raise TypeError(f"a dataset's name is a str, not {type(name).__name__}")
        ds = Dataset(self, name)
        ds._info()  # KeyError if there is none
        return ds

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and name in self.list()

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def drop(self, name: str) -> None:
        """Remove dataset `name` from the catalog (atomically) and free its
        batches.

        Parameters
        ----------
        name : str

        Raises
        ------
        KeyError
            There is no such dataset.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_drop")
        >>> _ = s.ingest("T", {"a": np.arange(3)})
        >>> s.drop("T"); s.list()
        []
        >>> s.destroy()
        """
        _msg("ds_drop", {"store": self.name, "dataset": name})

    def reclaim(self, min_age: int = RECLAIM_AGE) -> dict:
        """Free what crashed writers left: uncommitted batches and old
        catalog snapshots created more than `min_age` seconds ago.

        Parameters
        ----------
        min_age : int
            Seconds. The default (25 h) never frees a batch that a live
            writer may still commit; smaller ages (down to 0) are for when
            no ingest is running anywhere.

        Returns
        -------
        dict
            arrays, categories, snapshots freed; kept_young: unreferenced
            items left because they are younger than min_age.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_reclaim")
        >>> s.reclaim(0)["arrays"]
        0
        >>> s.destroy()
        """
        res, _ = _msg("ds_reclaim", {"store": self.name, "min_age": int(min_age)})
        return {k: res[k] for k in ("arrays", "categories", "snapshots", "kept_young")}

    def verify(self, codes: bool = False) -> int:
        """Check the catalog against FAM: every batch's arrays and
        categories are there and of the right size (and, with codes=True,
        every text code names a category).

        Parameters
        ----------
        codes : bool
            Also read every text column's codes.

        Returns
        -------
        int
            The number of arrays checked.

        Raises
        ------
        RuntimeError
            The store is not consistent (the message names the problem).

        Examples
        --------
        >>> s = ak.DatasetStore("doc_verify")
        >>> _ = s.ingest("T", {"a": np.arange(3), "b": np.array(["x", "y", "z"])})
        >>> s.verify(codes=True)
        2
        >>> s.destroy()
        """
        res, _ = _msg("ds_verify", {"store": self.name, "codes": bool(codes)})
        return int(res["checked"])

    def destroy(self) -> None:
        """Delete the whole store: every dataset and the catalog.

        Examples
        --------
        >>> ak.DatasetStore("doc_destroy").destroy()
        """
        _msg("ds_destroy", {"store": self.name})

    def ingest(self, name: str, data: Any, batch_rows: Optional[int] = None,
               dtypes: Optional[dict] = None, usecols: Optional[Iterable[str]] = None,
               parse_dates: Optional[Iterable[str]] = None, on_bad_lines: str = "error",
               progress: Optional[bool] = None) -> "Dataset":
        """Append rows to dataset `name` (created if it does not exist), all
        in one atomic commit.

        Parameters
        ----------
        name : str
            The dataset.
        data : str, path, list of them, pandas.DataFrame or dict
            CSV files on the server's filesystem (each becomes one or more
            batches, in order; parsed by every rank in parallel, as
            ak.read_csv), or a DataFrame, or a dict of NumPy arrays,
            pdarrays or Categoricals (text becomes a categorical column).
        batch_rows : int, optional
            Rows per batch (default 2^20); a file or the data becomes
            ceil(rows / batch_rows) batches.
        dtypes : dict, optional
            Column -> "int64", "float64", "bool" or "str", as read_csv. For
            an existing dataset the columns not given take its dtypes.
        usecols : list of str, optional
            The columns to keep.
        parse_dates : list of str, optional
            Date-time text columns, stored as datetime64[s].
        on_bad_lines : {"error", "skip"}
            As read_csv: "skip" leaves bad rows out and warns how many.
        progress : bool, optional
            A tqdm bar over the files (default: in a terminal or notebook
            when there are several files or 64 MiB).

        Returns
        -------
        Dataset

        Raises
        ------
        ValueError
            Bad input (naming file, line and column), or columns and dtypes
            that differ from the existing dataset's. Nothing is then
            visible of this ingest.
        FileNotFoundError, PermissionError
            A file that does not exist or that kodiakd cannot read.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_ingest")
        >>> t = s.ingest("T", {"a": np.arange(5)}, batch_rows=2)
        >>> len(t), t.num_batches
        (5, 3)
        >>> _ = s.ingest("T", {"a": np.arange(2)})
        >>> t["a"]
        array([0, 1, 2, 3, 4, 0, 1])
        >>> s.ingest("T", {"a": np.zeros(2)})
        Traceback (most recent call last):
        ...
        ValueError: ...
        >>> s.destroy()
        """
        if not isinstance(name, str):
            raise TypeError(f"a dataset's name is a str, not {type(name).__name__}")
        if on_bad_lines not in ("error", "skip"):
            raise ValueError(f"ingest: on_bad_lines must be 'error' or 'skip', not "
                             f"{on_bad_lines!r}")
        args = {}
        if batch_rows is not None:
            if isinstance(batch_rows, bool) or not isinstance(batch_rows, (int, np.integer)):
                raise TypeError("ingest: batch_rows must be an int")
            if batch_rows < 1:
                raise ValueError(f"ingest: batch_rows must be at least 1, not {batch_rows}")
            args["batch_rows"] = int(batch_rows)
        files = _files(data)
        if files is not None:
            args["on_bad_lines"] = on_bad_lines
            if dtypes:
                args["dtypes"] = {str(k): _dtype_text(k, v) for k, v in dict(dtypes).items()}
            u = _names(usecols, "usecols")
            if u is not None:
                args["usecols"] = u
            p = _names(parse_dates, "parse_dates")
            if p:
                args["parse_dates"] = p
            columns = None
        else:
            columns = _data_columns(data, dtypes, usecols, parse_dates)
        res, _ = _msg("ds_ingest_begin", {"store": self.name, "dataset": name})
        token = res["token"]
        skipped = 0
        try:
            if files is not None:
                bar = _progress(files, progress)
                try:
                    for f in files:
                        r, _ = _msg("ds_ingest_csv", {"token": token, "files": [f], **args})
                        skipped += int(r.get("skipped", 0))
                        if bar is not None:
                            try:
                                bar.update(os.path.getsize(f))
                            except OSError:
                                pass
                finally:
                    if bar is not None:
                        bar.close()
            else:
                cols, frames = [], []
                for cname, (kind, arr, cats) in columns.items():
                    entry = {"name": cname, "array": arr.name, "dtype": kind}
                    if kind == "text":
                        cb = [c.encode("utf-8", "surrogateescape") for c in cats]
                        offs = np.zeros(len(cb) + 1, dtype=np.int64)
                        offs[1:] = np.cumsum([len(b) for b in cb], dtype=np.int64)
                        f0 = len(frames)
                        frames.extend(_split(offs.tobytes()))
                        f1 = len(frames)
                        frames.extend(_split(b"".join(cb)))
                        entry.update(ncat=len(cb), frames=[f0, f1, len(frames)])
                    cols.append(entry)
                _msg("ds_ingest_arrays", {"token": token, "columns": cols, **args},
                     frames)
            _msg("ds_ingest_commit", {"token": token})
        except BaseException:
            try:
                _msg("ds_ingest_abort", {"token": token})
            except Exception:  # the server may be gone: ds_reclaim frees the batches
                pass
            raise
        if skipped:
            warnings.warn(f"ingest skipped {skipped} bad row(s) (on_bad_lines='skip')",
                          ParserWarning, stacklevel=2)
        return Dataset(self, name)


def _files(data):
    """The absolute file names data names, or None if it is not files."""
    if isinstance(data, (str, bytes, os.PathLike)):
        data = [data]
    if isinstance(data, (list, tuple)) and all(isinstance(x, (str, bytes, os.PathLike))
                                               for x in data):
        if not data:
            raise ValueError("ingest: no file names given")
        return [os.path.abspath(os.fsdecode(f)) for f in data]
    return None


def _text_column(values):
    """Object/str values -> (codes int64 ndarray, categories list of str)."""
    import pandas as pd
    cat = values if isinstance(values, pd.Categorical) else pd.Categorical(values)
    cats = [str(c) for c in cat.categories]
    if len(set(cats)) != len(cats):  # categories that are equal as text: merge them
        u, inv = np.unique(np.array(cats, dtype=object), return_inverse=True)
        codes = np.where(cat.codes < 0, -1, inv[np.maximum(cat.codes, 0)]).astype(np.int64)
        return codes, list(u)
    return np.asarray(cat.codes, dtype=np.int64), cats


def _data_columns(data, dtypes, usecols, parse_dates):
    """A DataFrame or dict -> {name: (store dtype, pdarray, categories or None)}."""
    import pandas as pd
    if isinstance(data, pd.DataFrame):
        items = [(str(k), data[k]) for k in data.columns]
    elif isinstance(data, dict):
        items = [(k, v) for k, v in data.items()]
    else:
        raise TypeError(f"ingest: data must be CSV file names, a pandas DataFrame or a dict "
                        f"of arrays, not {type(data).__name__}")
    if not items:
        raise ValueError("ingest: no columns given")
    u = _names(usecols, "usecols")
    if u is not None:
        missing = [c for c in u if c not in dict(items)]
        if missing:
            raise ValueError(f"ingest: usecols names columns the data does not have: {missing}")
        items = [(k, v) for k, v in items if k in u]
    dates = set(_names(parse_dates, "parse_dates") or [])
    dtypes = {str(k): _dtype_text(k, v) for k, v in dict(dtypes or {}).items()}
    out = {}
    for k, v in items:
        if not isinstance(k, str):
            raise TypeError(f"ingest: column names are str, not {k!r}")
        if isinstance(v, Categorical):
            out[k] = ("text", v.codes, list(v.categories))
            continue
        if isinstance(v, pdarray):
            if k in dtypes or k in dates:
                raise TypeError(f"ingest: column {k!r} is a pdarray: cast it before, not "
                                f"with dtypes/parse_dates")
            out[k] = (np.dtype(v.dtype).name, v, None)
            continue
        if isinstance(v, pd.Series):
            v = v.array if isinstance(v.dtype, pd.CategoricalDtype) else v.to_numpy()
        if not isinstance(v, pd.Categorical):
            v = np.asarray(v)
            if v.ndim != 1:
                raise ValueError(f"ingest: column {k!r} is not one-dimensional")
        if k in dates:
            v = pd.to_datetime(v).to_numpy()
        if k in dtypes:
            t = dtypes[k]
            v = np.asarray(v, dtype=object) if t == "str" else np.asarray(v).astype(t)
        if isinstance(v, pd.Categorical) or v.dtype.kind in "OUS":
            codes, cats = _text_column(v)
            from .creation import array
            out[k] = ("text", array(codes, dtype=np.int64), cats)
        elif v.dtype.kind == "M":
            secs = v.astype("datetime64[s]").astype(np.int64)  # NaT: the int64 minimum
            from .creation import array
            out[k] = ("datetime64[s]", array(secs, dtype=np.int64), None)
        elif v.dtype.kind in "iu" and v.dtype != np.uint64:
            from .creation import array
            out[k] = ("int64", array(v.astype(np.int64), dtype=np.int64), None)
        elif v.dtype.kind in "biuf":
            from .creation import array
            a = array(v)
            out[k] = (np.dtype(a.dtype).name, a, None)
        else:
            raise TypeError(f"ingest: column {k!r} has dtype {v.dtype}, which a dataset "
                            f"cannot hold (int64, uint64, float64, bool, text, datetime)")
    n = {len(a) for _, a, _ in out.values()}
    if len(n) > 1:
        raise ValueError(f"ingest: the columns have different lengths {sorted(n)}")
    return out


class Dataset:
    """One dataset of a store: columns of equal length, kept in FAM as
    ordered batches. A proxy: every access reads the catalog as it is
    then, so batches appended by other servers are seen.

    Parameters
    ----------
    store : DatasetStore
    name : str

    Examples
    --------
    >>> s = ak.DatasetStore("doc_dataset")
    >>> t = s.ingest("T", {"x": np.arange(4), "s": np.array(["b", "a", "b", "c"])},
    ...              batch_rows=3)
    >>> t.columns, t.num_batches, len(t)
    (['x', 's'], 2, 4)
    >>> t["s"].to_ndarray()
    array(['b', 'a', 'b', 'c'], dtype=object)
    >>> t.batch(1)["x"]
    array([3])
    >>> s.destroy()
    """

    def __init__(self, store: DatasetStore, name: str) -> None:
        self.store = store
        self.name = name

    def _info(self):
        res, _ = _msg("ds_info", {"store": self.store.name, "dataset": self.name})
        return res

    @property
    def columns(self) -> List[str]:
        """The column names, in order."""
        return [c["name"] for c in self._info()["columns"]]

    @property
    def dtypes(self) -> Dict[str, str]:
        """Column -> store dtype ("int64", "uint64", "float64", "bool",
        "text", "datetime64[s]")."""
        return {c["name"]: c["dtype"] for c in self._info()["columns"]}

    @property
    def num_batches(self) -> int:
        """The number of batches committed now."""
        return len(self._info()["batches"])

    @property
    def batch_rows(self) -> List[int]:
        """The rows of each batch, in order."""
        return list(self._info()["batches"])

    @property
    def kind(self) -> str:
        """"base" (ingested) or a derived kind ("index", "column")."""
        return self._info()["kind"]

    def __len__(self) -> int:
        return int(self._info()["rows"])

    @property
    def size(self) -> int:
        return len(self)

    def _read(self, columns=None, start=None, stop=None):
        args = {"store": self.store.name, "dataset": self.name}
        if columns is not None:
            args["columns"] = list(columns)
        if start is not None:
            args["start"] = int(start)
        if stop is not None:
            args["stop"] = int(stop)
        try:
            res, frames = _msg("ds_read", args)
        except MemoryError as e:
            what = "the column(s)" if columns is None else ", ".join(repr(c) for c in columns)
            raise MemoryError(
                f"{e}. {what} of dataset '{self.name}' do not fit in the compute server's "
                f"memory: aggregate on the server instead (ds.sum(col), ds.mean(col), "
                f"ds.groupby(key).mean(col), ds.value_counts(col)) or iterate batch by batch "
                f"(for b in ds.batches(): ...)") from None
        return _columns_from_reply(res, frames)

    def __getitem__(self, key: Union[str, List[str]]) -> Union[pdarray, Categorical, dict]:
        """ds["col"]: the whole column, as a pdarray (text: Categorical,
        categories unified over the batches; date-times: int64 seconds);
        ds[["a", "b"]]: a dict of them.

        Parameters
        ----------
        key : str or list of str

        Returns
        -------
        pdarray, Categorical or dict

        Raises
        ------
        KeyError
            No such column.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_ds_getitem")
        >>> t = s.ingest("T", {"x": np.array([1.5, 2.5])})
        >>> t["x"]
        array([1.5, 2.5])
        >>> s.destroy()
        """
        if isinstance(key, str):
            return self._read([key])[key]
        if isinstance(key, (list, tuple)) and all(isinstance(k, str) for k in key):
            return self._read(key)
        raise TypeError(f"a dataset is indexed by a column name or a list of them, not "
                        f"{type(key).__name__}")

    def to_dict(self, columns: Optional[Iterable[str]] = None) -> dict:
        """Every column (or those named) as {name: pdarray | Categorical}.

        Parameters
        ----------
        columns : list of str, optional
            The columns to read (default: all, in order).

        Returns
        -------
        dict

        Examples
        --------
        >>> s = ak.DatasetStore("doc_to_dict")
        >>> t = s.ingest("T", {"x": np.arange(3), "y": np.ones(3)})
        >>> t.to_dict(["y"])
        {'y': array([1., 1., 1.])}
        >>> s.destroy()
        """
        return self._read(None if columns is None else list(columns))

    def batch(self, i: int) -> dict:
        """Batch `i` (negative counts from the end) as {column: pdarray |
        Categorical}.

        Parameters
        ----------
        i : int

        Returns
        -------
        dict

        Raises
        ------
        IndexError
            No such batch.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_batch")
        >>> t = s.ingest("T", {"x": np.arange(5)}, batch_rows=2)
        >>> t.batch(-1)["x"], t.batch(1)["x"]
        (array([4]), array([2, 3]))
        >>> s.destroy()
        """
        rows = self.batch_rows
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError("a batch number is an int")
        j = int(i) + len(rows) if i < 0 else int(i)
        if not 0 <= j < len(rows):
            raise IndexError(f"batch {i} is out of range: dataset '{self.name}' has "
                             f"{len(rows)} batches")
        start = int(sum(rows[:j]))
        return self._read(None, start, start + rows[j])

    def head(self, n: int = 5) -> "pandas.DataFrame":
        """The first n rows as a pandas DataFrame (text decoded, NaN where
        missing; date-times as datetime64[ns]), as pandas.read_csv of the
        same data gives.

        Parameters
        ----------
        n : int

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_head")
        >>> t = s.ingest("T", {"x": np.arange(4), "s": np.array(["a", "b", "c", "d"])})
        >>> t.head(2)
           x  s
        0  0  a
        1  1  b
        >>> s.destroy()
        """
        return self._frame(self._read(None, 0, max(0, int(n))))

    def to_pandas(self) -> "pandas.DataFrame":
        """The whole dataset as a pandas DataFrame (it must fit in the
        client's memory), as head() gives its first rows.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> s = ak.DatasetStore("doc_to_pandas")
        >>> t = s.ingest("T", {"x": np.arange(2)})
        >>> t.to_pandas()
           x
        0  0
        1  1
        >>> s.destroy()
        """
        return self._frame(self._read())

    def _frame(self, cols):
        import pandas as pd
        dtypes = self.dtypes
        data = {}
        for k, v in cols.items():
            if isinstance(v, Categorical):
                data[k] = v.to_ndarray()
            elif dtypes.get(k) == "datetime64[s]":
                data[k] = v.to_ndarray().astype("datetime64[s]").astype("datetime64[ns]")
            else:
                data[k] = v.to_ndarray()
        return pd.DataFrame(data, columns=list(cols))

    def __repr__(self) -> str:
        info = self._info()
        rows, nb = int(info["rows"]), len(info["batches"])
        if not info["columns"]:
            return f"Dataset({self.name!r}: no columns)"
        import pandas as pd
        k = 5
        df = self._frame(self._read(None, 0, k))
        with pd.option_context("display.max_columns", 20, "display.width", 100):
            body = repr(df)
        if rows > k:
            body += "\n..."
        return (f"Dataset '{self.name}' of store '{self.store.name}'\n{body}\n\n"
                f"[{rows} rows x {len(info['columns'])} columns, {nb} batches]")


# sum, mean, ..., groupby, value_counts and batches (ds_agg.py attaches them)
from . import ds_agg  # noqa: E402,F401
