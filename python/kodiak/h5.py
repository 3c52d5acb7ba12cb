# SPDX-License-Identifier: Apache-2.0
"""h5.py — h5py keeps files in FAM: `import kodiak.h5` registers HDF5's
virtual file driver "fam" (libh5fam) with h5py, so

    h5py.File("region/file.h5", "w", driver="fam")

creates the file in FAM region "region" (the region must exist: `famh5
mkregion`). The memory servers and the provider come from $FAM_SERVERS and
$FAM_PROVIDER, or from the keywords `servers=` and `provider=` of
h5py.File. libh5fam is loaded from $KODIAK_BUILD, else the repository's
build/, else the system's library path; it must use the same libhdf5 as
h5py (Debian's python3-h5py and libh5fam both link libhdf5_serial.so.103),
which load() checks."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Optional

import h5py

__all__ = ["load", "register", "stats", "reset_stats", "DRIVER"]

DRIVER = "fam"
_lib: Optional[ctypes.CDLL] = None


class _Stats(ctypes.Structure):
    _fields_ = [("reads", ctypes.c_uint64), ("writes", ctypes.c_uint64),
                ("fam_gets", ctypes.c_uint64), ("fam_puts", ctypes.c_uint64),
                ("fam_other", ctypes.c_uint64), ("read_bytes", ctypes.c_uint64),
                ("write_bytes", ctypes.c_uint64)]


def _library_path() -> str:
    env = os.environ.get("KODIAK_BUILD")
    if env:
        path = os.path.join(env, "libh5fam.so")
        if os.path.exists(path):
            return path
        raise FileNotFoundError(f"libh5fam.so not found in KODIAK_BUILD={env}")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, "..", "..", "build", "libh5fam.so"))
    if os.path.exists(path):
        return path
    found = ctypes.util.find_library("h5fam")
    if found:
        return found
    raise FileNotFoundError("cannot find libh5fam: not in the repository's build/ nor on "
                            "the library path (build it, or set KODIAK_BUILD)")


def _mapped_hdf5() -> set:
    """The HDF5 core libraries mapped into this process (real paths)."""
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split(maxsplit=5)[-1].strip()
            base = os.path.basename(path)
            if base.startswith("libhdf5") and ".so" in base and "_hl" not in base \
                    and "cpp" not in base and "fortran" not in base:
                out.add(os.path.realpath(path))
    return out


def load() -> ctypes.CDLL:
    """Load libh5fam (once) and check it shares h5py's HDF5 library.

    Returns
    -------
    ctypes.CDLL
        The loaded library.

    Raises
    ------
    FileNotFoundError
        libh5fam cannot be found.
    RuntimeError
        libh5fam and h5py use different HDF5 libraries: a driver registered
        in one is unknown to the other.

    Examples
    --------
    >>> import kodiak.h5
    >>> kodiak.h5.load() is kodiak.h5.load()
    True
    """
    global _lib
    if _lib is not None:
        return _lib
    lib = ctypes.CDLL(_library_path())
    lib.H5Pset_fapl_fam.argtypes = [ctypes.c_int64, ctypes.c_char_p, ctypes.c_char_p]
    lib.H5Pset_fapl_fam.restype = ctypes.c_int
    lib.h5fam_init.restype = ctypes.c_int64
    lib.h5fam_get_stats.argtypes = [ctypes.POINTER(_Stats)]
    lib.h5fam_reset_stats.argtypes = []
    # one HDF5 in the process: h5py's libhdf5 and libh5fam's must be the
    # same file, else the driver is registered in a library h5py never asks
    hdf5 = _mapped_hdf5()
    if len(hdf5) != 1:
        raise RuntimeError("libh5fam and h5py use different HDF5 libraries "
                           f"({', '.join(sorted(hdf5))}); rebuild libh5fam against "
                           f"the libhdf5 h5py links (HDF5 {h5py.version.hdf5_version})")
    _lib = lib
    return lib


def _set_fapl(plist, servers: Optional[str] = None, provider: Optional[str] = None) -> None:
    lib = load()
    rc = lib.H5Pset_fapl_fam(plist.id, servers.encode() if servers else None,
                             provider.encode() if provider else None)
    if rc < 0:
        raise ValueError(f"H5Pset_fapl_fam failed (servers={servers!r}, "
                         f"provider={provider!r})")


def register() -> None:
    """Register the driver "fam" with h5py (done by `import kodiak.h5`).

    Returns
    -------
    None

    Examples
    --------
    >>> import h5py, kodiak.h5
    >>> "fam" in h5py.registered_drivers()
    True
    """
    load()
    h5py.register_driver(DRIVER, _set_fapl)


def stats() -> dict:
    """Counters of the driver's work in this process since the last reset.

    Returns
    -------
    dict
        reads and writes (driver calls HDF5 made), fam_gets, fam_puts and
        fam_other (requests the driver sent to the memory servers),
        read_bytes and write_bytes (bytes of those driver calls).

    Examples
    --------
    >>> import kodiak.h5
    >>> sorted(kodiak.h5.stats())
    ['fam_gets', 'fam_other', 'fam_puts', 'read_bytes', 'reads', 'write_bytes', 'writes']
    """
    s = _Stats()
    load().h5fam_get_stats(ctypes.byref(s))
    return {name: getattr(s, name) for name, _ in _Stats._fields_}


def reset_stats() -> None:
    """Set the driver's counters to zero.

    Returns
    -------
    None

    Examples
    --------
    >>> import kodiak.h5
    >>> kodiak.h5.reset_stats(); kodiak.h5.stats()["reads"]
    0
    """
    load().h5fam_reset_stats()


register()
