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
from . import derived as _derived

if TYPE_CHECKING:
    import pandas

__all__ = ["DatasetStore", "Dataset", "filter"]

# ds_reclaim's safe age: the 24 h commit deadline plus an hour (dataset.h)
RECLAIM_AGE = 25 * 3600

# The NumPy dtype each store dtype reads back as (text: Categorical).
_NP = {"int64": np.dtype(np.int64), "uint64": np.dtype(np.uint64),
       "float64": np.dtype(np.float64), "bool": np.dtype(bool),
       "datetime64[s]": np.dtype("datetime64[ns]"), "text": np.dtype(object)}

_FRAME = 1 << 20  # bytes per request frame (KD_FRAME_MAX)

# head() and repr read the rows they show a span at a time: one ds_read
# covers at most this many rows of a dataset (times its columns' 8 bytes
# in the compute server's memory), however far apart an index's rows are
_HEAD_SPAN = 4096
_LINEAGE_MAX = 32  # index datasets followed down a chain (as the server's DSD_DEPTH)


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
        # dataset name -> (catalog version, its family's infos): Dataset._catalog
        self._cat_cache = {}
        _msg("ds_open", {"store": name, "create": bool(create), "mode": int(mode)})

    def __repr__(self) -> str:
        return f"DatasetStore({self.name!r})"

    _CAT_CACHE_NAMES = 256  # names whose family list is kept (Dataset._catalog)

    def _remember(self, version, infos) -> None:
        """Keep a family's list of catalog `version` (ds_refresh {dataset}),
        under the name of each of its datasets (each one's family is that
        same list); the least recently listed names go when more than
        _CAT_CACHE_NAMES are kept."""
        entry = (version, infos)
        for d in infos:
            self._cat_cache.pop(d["name"], None)
            self._cat_cache[d["name"]] = entry
        while len(self._cat_cache) > self._CAT_CACHE_NAMES:
            del self._cat_cache[next(iter(self._cat_cache))]

    def _info_all(self, all: bool = True):  # noqa: A002 — list(all=True)'s name
        """The catalog's datasets; all=False: the user's only (see list)."""
        res, _ = _msg("ds_list", {"store": self.name})
        return [d for d in res["datasets"] if all or d["kind"] != "column"]

    def list(self, all: bool = False) -> List[str]:  # noqa: A002 — a flag, as `ls --all`
        """The datasets' names, in creation order: those ingested and the
        filters (index datasets); with all=True also the store's internal
        datasets, one per gathered or derived column ("<dataset>[<column>]",
        kind "column"), which a user reads as columns of their dataset.

        Parameters
        ----------
        all : bool
            Include the internal datasets.

        Returns
        -------
        list of str

        Examples
        --------
        >>> s = ak.DatasetStore("doc_list")
        >>> t = s.ingest("T", {"a": np.arange(4)})
        >>> _ = t.derive("b", t.col("a") * 2)
        >>> s.list(), s.list(all=True)
        (['T'], ['T', 'T[b]'])
        >>> s.destroy()
        """
        return [d["name"] for d in self._info_all(all)]

    def describe(self, all: bool = False) -> "pandas.DataFrame":  # noqa: A002 — as list
        """One row per dataset: name, kind, rows, batches, columns (the
        datasets list(all) names).

        Parameters
        ----------
        all : bool
            Include the internal datasets (see list).

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
                              "columns": len(d["columns"])} for d in self._info_all(all)],
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
        # every name store[name] opens, the internal datasets' too
        return isinstance(name, str) and name in self.list(all=True)

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def drop(self, name: str) -> None:
        """Remove dataset `name` from the catalog (atomically) and free its
        batches, with every dataset derived from it (filters of it, and
        columns gathered or derived on it, down the chain), in one commit.

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
        self._cat_cache = {}
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
        if _hdf5_files(data):  # HDF5 files: one dataset per column (ingest_hdf)
            if dtypes or parse_dates:
                raise TypeError("ingest: dtypes= and parse_dates= are for CSV files; an "
                                "HDF5 dataset's column keeps the dataset's type")
            return self.ingest_hdf(name, data, datasets=usecols, batch_rows=batch_rows,
                                   progress=progress)
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


    def ingest_hdf(self, name: str, files: Any, datasets: Optional[Iterable[str]] = None,
                   batch_rows: Optional[int] = None,
                   progress: Optional[bool] = None) -> "Dataset":
        """Append the rows of HDF5 files to dataset `name` (created if it
        does not exist), one HDF5 dataset per column, all in one atomic
        commit. ingest() calls this for file names that are HDF5 ("fam://",
        .h5/.hdf5/.he5/.hdf, or HDF5's signature at the start).

        Each file is read by kodiakd's ranks, each its own rows (as
        ak.read_hdf), and its rows become ceil(rows / batch_rows) batches;
        no data goes through the client. A file's columns are held in the
        ranks' memory while its batches are written.

        Parameters
        ----------
        name : str
            The dataset of the store.
        files : str or list of str
            "fam://REGION/NAME" (an HDF5 file in FAM) or local file names.
        datasets : list of str, optional
            The HDF5 datasets to ingest (default: all of the first file's);
            a column is named after the last part of its path ("g/fare"
            -> "fare"), so those must differ.
        batch_rows : int, optional
            Rows per batch (default 2^20).
        progress : bool, optional
            A tqdm bar over the files.

        Returns
        -------
        Dataset

        Raises
        ------
        FileNotFoundError, KeyError, TypeError, ValueError
            As ak.read_hdf; datasets of a file with different lengths, or
            columns that differ from the existing dataset's. Nothing of the
            ingest is then visible.

        Examples
        --------
        >>> import h5py, tempfile, os
        >>> d = tempfile.TemporaryDirectory()
        >>> path = os.path.join(d.name, "t.h5")
        >>> with h5py.File(path, "w") as f:
        ...     f["g/a"] = np.arange(5)
        ...     f["g/b"] = np.linspace(0, 1, 5)
        >>> s = ak.DatasetStore("doc_ingest_hdf")
        >>> t = s.ingest_hdf("T", path, batch_rows=2)
        >>> t.columns, t.num_batches
        (['a', 'b'], 3)
        >>> t["a"]
        array([0, 1, 2, 3, 4])
        >>> s.destroy()
        >>> d.cleanup()
        """
        from .hdfio import _file_name, read_hdf
        if isinstance(files, (str, bytes, os.PathLike)):
            files = [files]
        files = [_file_name(f) for f in files]
        if not files:
            raise ValueError("ingest_hdf: no file names given")
        wanted = None if datasets is None else _names(datasets, "datasets")
        args = {}
        if batch_rows is not None:
            if isinstance(batch_rows, bool) or not isinstance(batch_rows, (int, np.integer)):
                raise TypeError("ingest_hdf: batch_rows must be an int")
            if batch_rows < 1:
                raise ValueError(f"ingest_hdf: batch_rows must be at least 1, not {batch_rows}")
            args["batch_rows"] = int(batch_rows)
        res, _ = _msg("ds_ingest_begin", {"store": self.name, "dataset": name})
        token = res["token"]
        bar = _progress([f for f in files if not f.startswith("fam://")], progress)
        try:
            for f in files:
                cols = read_hdf(f, datasets=wanted if wanted is not None else None)
                if wanted is None:  # every later file: the first one's datasets
                    wanted = list(cols)
                entries, seen = [], {}
                for path, arr in cols.items():
                    cname = path.rstrip("/").rsplit("/", 1)[-1]
                    if cname in seen:
                        raise ValueError(f"ingest_hdf: datasets {seen[cname]!r} and {path!r} "
                                         f"would both be column {cname!r}")
                    seen[cname] = path
                    entries.append({"name": cname, "array": arr.name,
                                    "dtype": np.dtype(arr.dtype).name})
                sizes = {arr.size for arr in cols.values()}
                if len(sizes) > 1:
                    raise ValueError(f"ingest_hdf: the datasets of {f!r} have different "
                                     f"lengths {sorted(sizes)}: a table's columns are equal")
                _msg("ds_ingest_arrays", {"token": token, "columns": entries, **args})
                del cols  # frees the file's arrays on the server
                if bar is not None and not f.startswith("fam://"):
                    bar.update(os.path.getsize(f))
            _msg("ds_ingest_commit", {"token": token})
        except BaseException:
            try:
                _msg("ds_ingest_abort", {"token": token})
            except Exception:  # the server may be gone: ds_reclaim frees the batches
                pass
            raise
        finally:
            if bar is not None:
                bar.close()
        return Dataset(self, name)


_HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".hdf")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _hdf5_files(data):
    """Whether data names HDF5 files (by fam://, suffix, or signature)."""
    if isinstance(data, (str, bytes, os.PathLike)):
        data = [data]
    if not isinstance(data, (list, tuple)) or not data or \
            not all(isinstance(x, (str, bytes, os.PathLike)) for x in data):
        return False
    for x in data:
        x = os.fsdecode(x)
        if x.startswith("fam://") or x.lower().endswith(_HDF5_SUFFIXES):
            return True
        try:
            with open(x, "rb") as fh:
                if fh.read(8) == _HDF5_SIGNATURE:
                    return True
        except OSError:
            pass
    return False


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
        # "base", "index" or "column" as last seen: only a hint (a name may be
        # dropped and made again as another kind), checked by each read
        self._kind = None

    def _info(self):
        args = {"store": self.store.name, "dataset": self.name}
        res, _ = _msg("ds_info", args)
        self._kind = res["kind"]
        if res["kind"] != "base":  # derived: brought up to date first (derived.py)
            done, _ = _msg("ds_refresh", {"store": self.store.name})
            if done["processed"]:
                res, _ = _msg("ds_info", args)
        return res

    def _catalog(self):
        """{name: info} of this dataset's family (every dataset of the store
        whose lineage tops out where this one's does: its base, the base's
        other filters and columns, its own), derived ones up to date. One
        round trip: ds_refresh brings everything derived current and says
        the catalog version it left, with that version's list of the family
        when it is not the one this store object last listed for this name
        (a version's catalog never changes). The reply does not grow with
        the rest of the store."""
        cached = self.store._cat_cache.get(self.name)
        # the list comes back only if it is not the version known (-1: none)
        known = int(cached[0]) if cached is not None and cached[0] is not None else -1
        args = {"store": self.store.name, "known": known, "dataset": self.name}
        done, _ = _msg("ds_refresh", args)
        if "datasets" in done:
            infos = done["datasets"]
            self.store._remember(done.get("version"), infos)
        elif cached is not None and "version" in done and cached[0] == done["version"]:
            infos = cached[1]
        else:
            res, _ = _msg("ds_list", {"store": self.store.name})
            infos = res["datasets"]  # the whole store's: kept under this name only
            self.store._cat_cache.pop(self.name, None)
            self.store._cat_cache[self.name] = (res.get("version"), infos)
        cat = {d["name"]: d for d in infos}
        if self.name not in cat:
            raise KeyError(f"dataset store '{self.store.name}' has no dataset '{self.name}'")
        return cat

    def _columns(self, cat=None, name=None) -> Dict[str, str]:
        """The columns a user sees, {name: dtype}: a base dataset's own, an
        index dataset's base's (gathered on reading), then the derived
        columns ("<name>[<column>]" datasets made by derive)."""
        cat = self._catalog() if cat is None else cat
        name = self.name if name is None else name
        info = cat[name]
        if info["kind"] == "index" and info["base"] in cat:
            cols = self._columns(cat, info["base"])
        else:
            cols = {c["name"]: c["dtype"] for c in info["columns"]}
        for d in cat.values():
            n = d["name"]
            if d["kind"] == "column" and d["base"] == name and n == f"{name}[{n[len(name) + 1:-1]}]" \
                    and '"derive"' in d["expr"] and len(d["columns"]) == 1:
                cols[d["columns"][0]["name"]] = d["columns"][0]["dtype"]
        return cols

    def _source(self, cat, column, dtype):
        """The dataset that stores `column` of this one (gathering it into
        "<name>[<column>]" the first time for an index dataset)."""
        info = cat[self.name]
        if info["kind"] != "index" and any(c["name"] == column for c in info["columns"]):
            return self.name
        own = f"{self.name}[{column}]"
        if own in cat:
            return own
        if info["kind"] == "index":
            return _derived.gather_dataset(self, column, dtype)
        raise KeyError(f"dataset '{self.name}' has no column '{column}'")

    @property
    def columns(self) -> List[str]:
        """The column names, in order (derived columns last; an index
        dataset's are its base's, gathered through the index)."""
        return list(self._columns())

    @property
    def dtypes(self) -> Dict[str, str]:
        """Column -> store dtype ("int64", "uint64", "float64", "bool",
        "text", "datetime64[s]")."""
        return self._columns()

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
        if columns is not None and self._kind == "base":
            try:  # columns a base dataset stores: one command, as before issue 14
                got = self._read_from(self.name, columns, start, stop, kind="base")
                if got is not None:
                    return got
                # dropped and made again as a derived dataset: from the catalog, below
            except KeyError:
                pass  # a gathered or derived column, or no such dataset: below
        cat = self._catalog()
        cols = self._columns(cat)
        want = list(cols) if columns is None else list(columns)
        for c in want:
            if c not in cols:
                raise KeyError(f"dataset '{self.name}' has no column '{c}'")
        srcs = {c: self._source(cat, c, cols[c]) for c in want}
        if all(v == self.name for v in srcs.values()):
            return self._read_from(self.name, columns, start, stop)
        out = {}
        for c in want:
            out.update(self._read_from(srcs[c], [c], start, stop))
        return out

    def _read_from(self, dataset, columns=None, start=None, stop=None, kind=None):
        """{column: pdarray} of `dataset` as stored; with `kind`, None (and
        nothing kept) if the dataset is not of that kind at the version
        read."""
        args = {"store": self.store.name, "dataset": dataset}
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
        out = _columns_from_reply(res, frames)  # owns the arrays: freed if dropped below
        if kind is not None and res.get("dataset_kind") != kind:
            if dataset == self.name:
                self._kind = res.get("dataset_kind")
            return None
        return out

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
            v = self._read([key])[key]
            if isinstance(v, pdarray):  # it remembers its lineage (derived.py)
                v = _derived._tag(v, _derived.ColumnExpr(self, {"col": key}, v.dtype))
            return v
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
        cat = self._catalog()
        return self._head(cat, self._columns(cat), n)

    def _head(self, cat, cols, n):
        """head(n) from a catalog just read and this dataset's columns in it."""
        k = min(max(0, int(n)), int(cat[self.name]["rows"]))
        got = self._rows_at(cat, self.name, list(cols), np.arange(k, dtype=np.int64))
        return self._frame(got, cols)

    def _rows_at(self, cat, name, columns, pos, depth=0):
        """{column: NumPy array} of `columns` of dataset `name` at its rows
        `pos` (int64, ascending), reading only spans of at most _HEAD_SPAN
        rows around them. A column an index dataset does not hold (nor
        "<name>[<column>]") is its base's at the base rows the index picks
        there, and so on down a chain: nothing is gathered whole, so head()
        and repr work on a derived dataset far larger than the compute
        server's memory."""
        if depth > _LINEAGE_MAX:
            raise RuntimeError(f"dataset '{self.name}': a lineage longer than {_LINEAGE_MAX}")
        info = cat[name]
        through = info["kind"] == "index" and info["base"] in cat
        stored = set() if through else {c["name"] for c in info["columns"]}
        where, via = {}, []
        for c in columns:
            if c in stored:
                where.setdefault(name, []).append(c)
            elif f"{name}[{c}]" in cat:  # a derived column, or one gathered before
                where.setdefault(f"{name}[{c}]", []).append(c)
            elif through:
                via.append(c)
            else:
                raise KeyError(f"dataset '{self.name}' has no column '{c}'")
        out = {}
        for src, cs in where.items():
            out.update(self._spans(src, cs, pos))
        if via:  # index rows -> row numbers within the base's batch -> the base's rows
            local = self._spans(name, ["index"], pos)["index"]
            mine = np.cumsum([0] + [int(r) for r in info["batches"]])
            b = np.searchsorted(mine, pos, side="right") - 1
            first = np.cumsum([0] + [int(r) for r in cat[info["base"]]["batches"]])
            out.update(self._rows_at(cat, info["base"], via, first[b] + local, depth + 1))
        return {c: out[c] for c in columns}

    def _spans(self, dataset, columns, pos):
        """{column: NumPy array} of stored `columns` of `dataset` at rows
        `pos` (ascending): one ds_read per span of at most _HEAD_SPAN rows
        holding rows wanted, the rows picked out of it."""
        order = None
        if len(pos) > 1 and np.any(pos[1:] < pos[:-1]):  # index rows are ascending; be sure
            order = np.argsort(pos, kind="stable")
            pos = pos[order]
        if len(pos) and pos[0] < 0:
            raise RuntimeError(f"dataset '{dataset}': row {int(pos[0])} of an index is "
                               f"negative (a damaged store: run store.verify())")
        parts = {c: [] for c in columns}
        i = 0
        while True:
            lo = int(pos[i]) if i < len(pos) else 0
            j = int(np.searchsorted(pos, lo + _HEAD_SPAN, side="left")) if i < len(pos) else i
            hi = int(pos[j - 1]) + 1 if j > i else lo
            got = self._read_from(dataset, columns, lo, hi)
            for c in columns:
                parts[c].append(got[c].to_ndarray()[pos[i:j] - lo])
            del got
            i = j
            if i >= len(pos):
                break
        out = {c: np.concatenate(v) if len(v) > 1 else v[0] for c, v in parts.items()}
        if order is not None:
            for c, v in out.items():
                back = np.empty_like(v)
                back[order] = v
                out[c] = back
        return out

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

    def _frame(self, cols, dtypes=None):
        """{column: pdarray | Categorical | NumPy array} -> a DataFrame
        (date-times as datetime64[ns])."""
        import pandas as pd
        dtypes = self.dtypes if dtypes is None else dtypes
        data = {}
        for k, v in cols.items():
            v = v if isinstance(v, np.ndarray) else v.to_ndarray()
            if dtypes.get(k) == "datetime64[s]":
                v = v.astype("datetime64[s]").astype("datetime64[ns]")
            data[k] = v
        return pd.DataFrame(data, columns=list(cols))

    def __repr__(self) -> str:
        cat = self._catalog()
        info = cat[self.name]
        rows, nb = int(info["rows"]), len(info["batches"])
        cols = self._columns(cat)
        if not info["columns"] or not cols:
            return f"Dataset({self.name!r}: no columns)"
        import pandas as pd
        k = 5
        df = self._head(cat, cols, k)  # the rows shown only (head)
        with pd.option_context("display.max_columns", 20, "display.width", 100):
            body = repr(df)
        if rows > k:
            body += "\n..."
        if info["kind"] != "base":
            body = f"{_derived.lineage(info)}, {info['base_batches']} base batches\n{body}"
        return (f"Dataset '{self.name}' of store '{self.store.name}'\n{body}\n\n"
                f"[{rows} rows x {len(cols)} columns, {nb} batches]")

    # ---- derived datasets (issue 14: derived.py, kd_cmd_dsderive.c) -------------------
    def filter(self, column: str, op: str, value: Any = None, value2: Any = None) -> "Dataset":
        """ak.filter(self, column, op, value): the rows passing, as a derived
        index dataset kept in the store (see ak.filter).

        Parameters
        ----------
        column : str
        op : str
            eq ne lt le gt ge between isin.
        value : Any
        value2 : Any
            between: the upper bound.

        Returns
        -------
        Dataset

        Examples
        --------
        >>> s = ak.DatasetStore("doc_ds_filter")
        >>> t = s.ingest("T", {"x": np.array([5, -1, 7])})
        >>> t.filter("x", "between", 0, 6)["x"]
        array([5])
        >>> s.destroy()
        """
        return _derived.filter(self, column, op, value, value2)

    def __and__(self, other):
        return _derived.combine(self, other, "&")

    def __or__(self, other):
        return _derived.combine(self, other, "|")

    def col(self, column: str) -> "_derived.ColumnExpr":
        """A lazy reference to `column`, for expressions passed to derive
        (nothing is read: ds.col("a") - ds.col("b")).

        Parameters
        ----------
        column : str

        Returns
        -------
        ColumnExpr

        Raises
        ------
        KeyError
            No such column.
        TypeError
            A text column.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_col")
        >>> t = s.ingest("T", {"a": np.array([1, 2])})
        >>> (t.col("a") * 1.5).dtype
        dtype('float64')
        >>> s.destroy()
        """
        # the store's last catalog list answers without a round trip when it
        # knows the column (only its dtype is needed here: the server checks
        # the expression when it computes it); else the catalog now
        cached = self.store._cat_cache.get(self.name)
        cat = {d["name"]: d for d in cached[1]} if cached is not None else {}
        dt = self._columns(cat) if self.name in cat else {}
        if column not in dt:
            dt = self.dtypes
        if column not in dt:
            raise KeyError(f"dataset '{self.name}' has no column '{column}'")
        return _derived.ColumnExpr(self, {"col": column}, _derived._np_dtype(dt[column], column))

    def derive(self, name: str, expression: Any) -> "Dataset":
        """Add column `name` computed by `expression` from this dataset's
        columns (ds["a"] - ds["b"], ds.col("a") * 2, ak.where(...), abs,
        .astype), evaluated by the server batch by batch, stored in FAM and
        kept up to date as the base grows. NumPy's dtypes and values, as
        the same expression on pdarrays.

        Parameters
        ----------
        name : str
            The new column's name (no '[' or ']').
        expression : Any
            A ColumnExpr, or a pdarray computed from this dataset's columns.

        Returns
        -------
        Dataset
            self (now with the column).

        Raises
        ------
        ValueError
            A column of that name exists, or the expression uses another
            dataset's columns.
        TypeError
            Not an expression of this dataset's columns.

        Examples
        --------
        >>> s = ak.DatasetStore("doc_derive")
        >>> t = s.ingest("T", {"a": np.array([1, 2]), "b": np.array([10, 20])})
        >>> t.derive("c", t["b"] - t["a"])["c"]
        array([ 9, 18])
        >>> s.destroy()
        """
        _derived.derive(self, name, expression)
        return self

    @property
    def lineage(self) -> Optional[str]:
        """How a derived dataset is made (None for a base dataset)."""
        info = self._info()
        return None if info["kind"] == "base" else _derived.lineage(info)

    def stats(self) -> dict:
        """How current this dataset is and what this server did to keep it
        so: base_batches (base batches it covers), updates and batches
        (updates of it that computed batches, and batches computed, by the
        connected server), last (batches the latest update computed), solo
        (updates of them that the server's rank 0 did alone: an update of
        few new rows, docs/DATASET.md).

        Returns
        -------
        dict

        Examples
        --------
        >>> s = ak.DatasetStore("doc_stats")
        >>> t = s.ingest("T", {"a": np.arange(5)}, batch_rows=2)
        >>> f = t.filter("a", "ge", 1)
        >>> st = f.stats()
        >>> st["base_batches"], st["last"]
        (3, 3)
        >>> s.destroy()
        """
        info = self._info()
        res, _ = _msg("ds_derive_stats", {"store": self.store.name})
        st = res["datasets"].get(self.name, {"updates": 0, "batches": 0, "last": 0, "solo": 0})
        return {"base_batches": int(info["base_batches"]), **{k: int(v) for k, v in st.items()}}


def filter(ds: Dataset, column: str, op: str, value: Any = None,  # noqa: A001 — the issue's name
           value2: Any = None) -> Dataset:
    """The rows of `ds` whose `column` passes `op value`, as a derived index
    dataset kept in the store: made the first time, reused after, brought
    up to date whenever `ds` grows (derived.py, docs/DATASET.md).

    Parameters
    ----------
    ds : Dataset
        A base or derived dataset.
    column : str
        A column of ds (stored, gathered or derived).
    op : str
        "eq", "ne", "lt", "le", "gt", "ge" (NumPy's comparisons: NaN passes
        only "ne"), "between" (lo <= x <= hi, as pandas' Series.between),
        "isin" (a list; as pandas' isin, NaN in the list finds NaN).
    value : Any
        Numbers for number and bool columns, str for text ones, anything
        pandas.Timestamp takes for date-times; between: lo (or (lo, hi));
        isin: the list.
    value2 : Any
        between: hi.

    Returns
    -------
    Dataset
        The index dataset "<ds>.<column>_<op>_<value>".

    Raises
    ------
    KeyError
        No such column.
    ValueError
        An unknown op, or a dataset of that name made otherwise.
    TypeError
        A value of the wrong kind for the column.

    Examples
    --------
    >>> s = ak.DatasetStore("doc_filter")
    >>> t = s.ingest("T", {"x": np.arange(6)}, batch_rows=4)
    >>> big = ak.filter(t, "x", "gt", 3)
    >>> big.name, len(big), big["x"]
    ('T.x_gt_3', 2, array([4, 5]))
    >>> s.destroy()
    """
    return _derived.filter(ds, column, op, value, value2)


# sum, mean, ..., groupby, value_counts and batches (ds_agg.py attaches them)
from . import ds_agg  # noqa: E402,F401
