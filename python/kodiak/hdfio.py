# SPDX-License-Identifier: Apache-2.0
"""hdfio.py — HDF5 datasets into and out of pdarrays, with Arkouda's names:
ak.read_hdf, pdarray.to_hdf, ak.to_hdf (docs/H5FAM.md).

kodiakd's ranks do the I/O themselves (src/kodiakd/kd_cmd_h5.c): each rank
reads its own rows of each dataset as an HDF5 hyperslab, and writes its own
rows, so no data travels through the client. A name "fam://REGION/NAME" is
an HDF5 file kept in FAM (the driver "fam", as `import kodiak.h5` gives
h5py); any other name is a local file on the server's filesystem (made
absolute against the client's working directory, as read_csv)."""
from __future__ import annotations

import glob
import os
from typing import Iterable, List, Mapping, Optional, Union

from . import client
from .pdarrayclass import create_pdarray, pdarray

__all__ = ["read_hdf", "to_hdf"]

FAM_PREFIX = "fam://"


def _file_name(f) -> str:
    """A file name as kodiakd takes it: fam:// names as they are, local
    names made absolute."""
    if isinstance(f, (bytes, os.PathLike)):
        f = os.fsdecode(f)
    if not isinstance(f, str):
        raise TypeError(f"an HDF5 file name is a str or path, not {type(f).__name__}")
    if not f:
        raise ValueError("an HDF5 file name is not empty")
    if f.startswith(FAM_PREFIX):
        rest = f[len(FAM_PREFIX):]
        if rest.count("/") != 1 or rest.startswith("/") or rest.endswith("/"):
            raise ValueError(f"{f!r}: a file in FAM is named fam://REGION/NAME")
        return f
    return os.path.abspath(f)


def read_hdf(filenames: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]],
             datasets: Optional[Union[str, List[str]]] = None, iterative: bool = False,
             strictTypes: bool = True, allow_errors: bool = False,
             calc_string_offsets: bool = False,
             tag_data: bool = False) -> Union[pdarray, Mapping[str, pdarray]]:
    """Read one-dimensional HDF5 datasets into pdarrays: every rank of
    kodiakd reads its own rows of each dataset straight from the file.

    Parameters
    ----------
    filenames : str, path or list of them
        "fam://REGION/NAME" for a file kept in FAM, else a file on the
        server's filesystem (a glob pattern such as "out_LOCALE*.h5" is
        expanded, sorted, as Arkouda's). Several files are read as one: a dataset's
        rows from each file, in file order (Arkouda's concatenation).
    datasets : str or list of str, optional
        Dataset paths ("/group/dset" or "group/dset"); None reads every
        dataset of the first file.
    iterative : bool
        As Arkouda: one request per dataset (the result is the same).
    strictTypes : bool
        True: a dataset must have the same type in every file. False: types
        that differ are converted to their common NumPy dtype.
    allow_errors, tag_data : bool
        Only False (files that fail to read raise an exception).
    calc_string_offsets : bool
        Accepted for Arkouda's signature; kodiak reads no string datasets.

    Returns
    -------
    pdarray or dict
        A pdarray when `datasets` is one str; else a dict dataset name ->
        pdarray (names as given, or as h5py's keys for datasets=None).
        Integers become int64 (uint64 stays uint64), floats float64 and
        h5py's bool enum bool, as NumPy converts them.

    Raises
    ------
    FileNotFoundError, PermissionError
        A missing file or FAM region; one kodiakd's user may not read.
    KeyError
        A missing dataset.
    TypeError
        Strings, compound or other non-numeric datasets; types that differ
        between files with strictTypes=True.
    ValueError
        Not an HDF5 file, a truncated or damaged one; a dataset that is not
        one-dimensional.

    Examples
    --------
    >>> import h5py, tempfile, os
    >>> d = tempfile.TemporaryDirectory()
    >>> path = os.path.join(d.name, "t.h5")
    >>> with h5py.File(path, "w") as f:
    ...     f["x"] = np.arange(5, dtype=np.int32)
    ...     f["g/y"] = np.array([True, False])
    >>> ak.read_hdf(path, datasets="x")
    array([0, 1, 2, 3, 4])
    >>> sorted(ak.read_hdf(path).items())
    [('g/y', array([ True, False])), ('x', array([0, 1, 2, 3, 4]))]
    >>> ak.read_hdf([path, path], datasets=["x"])["x"]
    array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    >>> d.cleanup()
    """
    if allow_errors:
        raise NotImplementedError("read_hdf: allow_errors=True is not supported (a file "
                                  "that fails to read raises an exception)")
    if tag_data:
        raise NotImplementedError("read_hdf: tag_data=True is not supported")
    if isinstance(filenames, (str, bytes, os.PathLike)):
        filenames = [filenames]
    files = []
    for f in filenames:
        f = _file_name(f)
        # a local glob pattern, as Arkouda's (on the one host client and
        # server share; a pattern that matches nothing is left to fail)
        matched = sorted(glob.glob(f)) if not f.startswith(FAM_PREFIX) and \
            glob.has_magic(f) else []
        files.extend(matched or [f])
    if not files:
        raise ValueError("read_hdf: no file names given")
    one = isinstance(datasets, str)
    names = None
    if datasets is not None:
        names = [datasets] if one else list(datasets)
        if not names:
            raise ValueError("read_hdf: datasets is an empty list")
        for n in names:
            if not isinstance(n, str) or not n:
                raise TypeError(f"read_hdf: a dataset name is a non-empty str, not {n!r}")
    if iterative and names is not None and len(names) > 1:
        out = {n: read_hdf(files, n, strictTypes=strictTypes) for n in names}
        return out
    args = {"files": files, "strict_types": bool(strictTypes)}
    if names is not None:
        args["datasets"] = names
    res, _ = client.generic_msg("read_hdf", args)
    out = {a["dataset"]: create_pdarray(res, a["key"]) for a in res["arrays"]}
    if one:
        return out[datasets]
    return out


def _check_mode(mode: str, file_type: str) -> None:
    if mode not in ("truncate", "append"):
        raise ValueError(f"to_hdf: mode must be 'truncate' or 'append', not {mode!r}")
    if file_type not in ("single", "distribute"):
        raise ValueError(f"to_hdf: file_type must be 'single' or 'distribute', not "
                         f"{file_type!r}")


def _pdarray_to_hdf(self, prefix_path: str, dataset: str = "array", mode: str = "truncate",
                    file_type: str = "single") -> List[str]:
    """Write this array to an HDF5 file as a one-dimensional dataset
    (pdarray.to_hdf, Arkouda's signature; kodiak's default file_type is
    "single").

    Parameters
    ----------
    prefix_path : str
        "fam://REGION/NAME" (a file in FAM) or a local file name.
    dataset : str
        The dataset's path in the file (groups on the way are created).
    mode : {"truncate", "append"}
        "truncate" makes a new file (replacing one of that name);
        "append" adds the dataset to the file (made if missing); a dataset
        of that name already there raises ValueError.
    file_type : {"single", "distribute"}
        "single": one file, written by the ranks in turn (each its own rows,
        as a hyperslab). "distribute": one file per rank, all at once,
        named as Arkouda's, NAME_LOCALE0000.EXT ...; read_hdf of the list
        gives the array back.

    Returns
    -------
    list of str
        The files written.

    Raises
    ------
    ValueError, FileNotFoundError, PermissionError, MemoryError
        Bad arguments, a missing directory or FAM region, no permission, a
        full pool. Nothing of a failed write is left: a file it made is
        removed, a dataset it added is unlinked.

    Examples
    --------
    >>> import h5py, tempfile, os
    >>> d = tempfile.TemporaryDirectory()
    >>> path = os.path.join(d.name, "w.h5")
    >>> ak.arange(0, 6, 1).to_hdf(path, dataset="g/a") == [path]
    True
    >>> h5py.File(path, "r")["g/a"][:]
    array([0, 1, 2, 3, 4, 5])
    >>> d.cleanup()
    """
    _check_mode(mode, file_type)
    if not isinstance(dataset, str) or not dataset:
        raise TypeError(f"to_hdf: dataset is a non-empty str, not {dataset!r}")
    name = _file_name(prefix_path)
    res, _ = client.generic_msg("to_hdf", {"array": self.name, "file": name,
                                           "dataset": dataset, "mode": mode,
                                           "file_type": file_type})
    return list(res["files"])


pdarray.to_hdf = _pdarray_to_hdf


def to_hdf(columns: Union[Mapping[str, pdarray], List[pdarray]], prefix_path: str,
           names: Optional[List[str]] = None, mode: str = "truncate",
           file_type: str = "single") -> None:
    """Write several pdarrays as datasets of one HDF5 file (Arkouda's
    ak.to_hdf): a dict's keys, or `names`, are the dataset names.

    Parameters
    ----------
    columns : dict or list of pdarray
        The arrays.
    prefix_path : str
        "fam://REGION/NAME" or a local file name.
    names : list of str, optional
        Dataset names for a list of arrays (default "array0", "array1"...).
    mode : {"truncate", "append"}
        "truncate": a new file holding just these; "append": added to it.
    file_type : {"single", "distribute"}
        As pdarray.to_hdf.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        Names that do not match the columns, or as pdarray.to_hdf. Each
        array is one pdarray.to_hdf: the failing one leaves nothing, the
        ones before it stay written.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.TemporaryDirectory()
    >>> path = os.path.join(d.name, "t.h5")
    >>> ak.to_hdf({"a": ak.arange(0, 3, 1), "b": ak.ones(3)}, path)
    >>> ak.read_hdf(path, datasets=["a", "b"])
    {'a': array([0, 1, 2]), 'b': array([1., 1., 1.])}
    >>> d.cleanup()
    """
    _check_mode(mode, file_type)
    if isinstance(columns, Mapping):
        if names is not None:
            raise ValueError("to_hdf: names= is for a list of arrays, not a dict")
        items = list(columns.items())
    else:
        cols = list(columns)
        names = list(names) if names is not None else [f"array{i}" for i in range(len(cols))]
        if len(names) != len(cols):
            raise ValueError(f"to_hdf: {len(names)} names for {len(cols)} arrays")
        items = list(zip(names, cols))
    if not items:
        raise ValueError("to_hdf: no arrays given")
    for n, a in items:
        if not isinstance(a, pdarray):
            raise TypeError(f"to_hdf: column {n!r} is a {type(a).__name__}, not a pdarray")
    for i, (n, a) in enumerate(items):
        a.to_hdf(prefix_path, dataset=str(n), mode=mode if i == 0 else "append",
                 file_type=file_type)
