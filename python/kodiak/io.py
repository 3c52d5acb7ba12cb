# SPDX-License-Identifier: Apache-2.0
"""io.py — ak.read_csv: CSV files read by kodiakd's ranks in parallel into
pdarrays (numbers, bools, date-times) and Categoricals (text), with
pandas.read_csv's results (docs/CSV.md says where they differ).

The files are read by the server, on its filesystem: a relative path is
made absolute against the client's working directory first (the same
thing on one host). A long read shows the client's tqdm bar (client.py,
KODIAK_PROGRESS) with the time it has taken: kodiakd answers once, at the
end, so the bar cannot show a fraction done; if the protocol gains
progress messages, _read_csv_request is the one place to read them."""
from __future__ import annotations

import os
import warnings
from typing import Dict, Iterable, Optional, Union

import numpy as np

from . import client
from .categorical import Categorical
from .pdarrayclass import create_pdarray, pdarray

__all__ = ["read_csv"]  # and ParserWarning (kodiak/__init__.py exports it)


class ParserWarning(UserWarning):
    """read_csv(on_bad_lines="skip") skipped rows (as pandas.errors.ParserWarning)."""


_DTYPES = {"int64": "int64", "int": "int64", "float64": "float64", "float": "float64",
           "bool": "bool", "str": "str", "object": "str", "category": "str",
           "string": "str", "O": "str"}


def _dtype_text(col, t):
    """The server's name for a dtypes= entry."""
    if t is str or t is object:
        return "str"
    if t is int:
        return "int64"
    if t is float:
        return "float64"
    if t is bool:
        return "bool"
    name = str(t) if isinstance(t, str) else None
    if name is None:
        try:
            name = np.dtype(t).name
        except TypeError:
            name = None
    name = {"bool_": "bool", "object_": "str", "str_": "str"}.get(name, name)
    if name not in _DTYPES:
        raise TypeError(f"read_csv: dtype {t!r} of column {col!r} is not supported (int64, "
                        f"float64, bool or str; date-times through parse_dates)")
    return _DTYPES[name]


def _names(arg, what):
    if arg is None:
        return None
    if isinstance(arg, str):
        arg = [arg]
    out = list(arg)
    for x in out:
        if not isinstance(x, str):
            raise TypeError(f"read_csv: {what} must name columns by their header names "
                            f"(str), not {x!r}")
    return out


def read_csv(filenames: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
             dtypes: Optional[dict] = None, usecols: Optional[Iterable[str]] = None,
             parse_dates: Optional[Iterable[str]] = None, on_bad_lines: str = "error",
             header: int = 0) -> Dict[str, Union[pdarray, Categorical]]:
    """Read CSV files, in order, as one table: every rank of kodiakd parses
    its own byte range of each file.

    Parameters
    ----------
    filenames : str, path or list of them
        Files on the server's filesystem, each with the same header line.
    dtypes : dict, optional
        Column name -> "int64", "float64", "bool" or "str" (numpy dtypes and
        int/float/bool/str work too); other columns are inferred as pandas
        infers them (int64; float64 when a value is missing; bool; else text).
    usecols : list of str, optional
        The columns to keep (kept in the file's order, as pandas).
    parse_dates : list of str, optional
        Columns of ISO date-time text ("2017-01-01 00:32:05") returned as
        int64 seconds since 1970-01-01 (naive times taken as UTC; missing:
        the int64 minimum, NaT's value).
    on_bad_lines : {"error", "skip"}
        "error": a row with the wrong number of fields, or a field that does
        not read as its column's dtypes= type, raises ValueError naming file,
        line and column; "skip": such rows are left out, and a ParserWarning
        says how many.
    header : int
        Only 0 (the first line names the columns).

    Returns
    -------
    dict
        Column name -> pdarray (int64, float64, bool; date-times as int64)
        or Categorical (text).

    Raises
    ------
    FileNotFoundError, PermissionError
        A file that does not exist or that kodiakd's user cannot read.
    ValueError
        Bad input (with file, line and column), differing headers, unknown
        column names.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.TemporaryDirectory()
    >>> path = os.path.join(d.name, "t.csv")
    >>> _ = open(path, "w").write('a,b,c\\n1,x,2.5\\n2,"y, z",\\n')
    >>> t = ak.read_csv(path)
    >>> t["a"], t["b"].to_ndarray(), t["c"]
    (array([1, 2]), array(['x', 'y, z'], dtype=object), array([2.5, nan]))
    >>> d.cleanup()
    """
    if header != 0:
        raise NotImplementedError("read_csv: only header=0 (a header line) is supported")
    if on_bad_lines not in ("error", "skip"):
        raise ValueError(f"read_csv: on_bad_lines must be 'error' or 'skip', not "
                         f"{on_bad_lines!r}")
    if isinstance(filenames, (str, bytes, os.PathLike)):
        filenames = [filenames]
    files = [os.path.abspath(os.fsdecode(f)) for f in filenames]
    if not files:
        raise ValueError("read_csv: no file names given")
    args = {"files": files, "on_bad_lines": on_bad_lines}
    if dtypes:
        args["dtypes"] = {str(k): _dtype_text(k, v) for k, v in dict(dtypes).items()}
    u = _names(usecols, "usecols")
    if u is not None:
        args["usecols"] = u
    p = _names(parse_dates, "parse_dates")
    if p:
        args["parse_dates"] = p
    return _read_csv_request(args)


def _columns_from_reply(res, frames):
    """read_csv's (and ds_read's) reply as {name: pdarray | Categorical}:
    frame 0 holds each categorical column's ncategories + 1 byte offsets
    into frame 1, in column order."""
    offs = np.frombuffer(frames[0], dtype=np.int64) if len(frames) > 0 else np.empty(0, np.int64)
    text = bytes(frames[1]) if len(frames) > 1 else b""
    out, at = {}, 0
    for col in res["columns"]:
        arr = create_pdarray(res, col["key"])
        if col["kind"] == "categorical":
            n = int(col["ncategories"])
            o = offs[at:at + n + 1]
            at += n + 1
            cats = [text[o[i]:o[i + 1]].decode("utf-8", "surrogateescape") for i in range(n)]
            out[col["name"]] = Categorical(arr, np.array(cats, dtype=str))
        else:
            out[col["name"]] = arr
    return out


def _read_csv_request(args):
    res, frames = client.generic_msg("read_csv", args)
    out = _columns_from_reply(res, frames)
    if res.get("skipped"):
        warnings.warn(f"read_csv skipped {res['skipped']} bad row(s) (on_bad_lines='skip')",
                      ParserWarning, stacklevel=3)
    return out
