# SPDX-License-Identifier: Apache-2.0
"""pdarrayclass.py — the client-side proxy of an array held by kodiakd's ranks
(named as Arkouda's module; `kodiak.pdarray` is the class), and
create_pdarray, the one place a command's result becomes a pdarray.

A pdarray knows only its server name, dtype and size; every operation is a
command to the server. Operators and methods live in mixins (ops.py,
indexing.py) so each family of commands keeps its Python and its C side
together."""
import numpy as np

from . import client
from .dtypes import DTYPE_NAMES, dtype_name, resolve_dtype
from .indexing import _IndexMixin
from .ops import _OpsMixin


class pdarray(_OpsMixin, _IndexMixin):
    """A one-dimensional array distributed over the ranks of kodiakd."""

    # NumPy must hand `ndarray OP pdarray` to our reflected operators
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, name, dtype, size):
        self._name = name
        self.dtype = resolve_dtype(dtype)
        self.size = int(size)
        self._endpoint = client._conn.endpoint
        self._pending = None     # deferred command (see ops.py): sent on first use
        self._dependents = None  # deferred arrays computed from this one

    @property
    def name(self):
        """The server's name for this array (a deferred array is computed
        now: see ops.defer)."""
        if self._pending is not None:
            cmd, args = self._pending
            res, _ = client.generic_msg(cmd, args)
            self._name = res["array"]["name"]
            self._pending = None
        return self._name

    @name.setter
    def name(self, value):
        self._name = value

    def _before_write(self):
        """Deferred arrays computed from this one see its current values:
        compute them before it changes."""
        if self._dependents:
            for ref in list(self._dependents.values()):
                d = ref()
                if d is not None:
                    d.name  # noqa: B018 — computes it
            self._dependents = None

    # ---- shape and size, as NumPy --------------------------------------------------
    @property
    def ndim(self):
        return 1

    @property
    def shape(self):
        return (self.size,)

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    def __len__(self):
        return self.size

    def __del__(self):
        try:
            if self._name is not None and self._endpoint is not None and \
                    self._endpoint == client._conn.endpoint:
                client.queue_free(self._name)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    # ---- data to the client ---------------------------------------------------------
    def to_ndarray(self):
        """A NumPy copy of the whole array."""
        out = np.empty(self.size, dtype=self.dtype)
        vm = client.memory_path(out.ctypes.data, out.nbytes)
        if vm is not None:
            res, _ = client.generic_msg("to_ndarray", {"array": self.name, "vm": vm})
            if res.get("vm"):
                return out
        _, frames = client.generic_msg("to_ndarray", {"array": self.name})
        # no copy: the array keeps the received frame (writable, ours alone)
        # alive through its buffer
        out = np.frombuffer(frames[0], dtype=self.dtype, count=self.size)
        return out if out.flags.writeable and out.flags.aligned else out.copy()

    def tolist(self):
        return self.to_ndarray().tolist()

    def to_list(self):
        """Arkouda's spelling of tolist()."""
        return self.tolist()

    def nonzero(self):
        """As ndarray.nonzero: a tuple of one pdarray of the positions of the
        elements that are not zero."""
        from .numeric import nonzero
        return nonzero(self)

    def fill(self, value):
        """Set every element to value, converted to this array's dtype as
        ndarray.fill converts it."""
        t = np.empty(1, dtype=self.dtype)
        t.fill(value)
        self[:] = t[0]

    def copy(self):
        """A new pdarray with the same values."""
        return self[:]

    def __iter__(self):
        return iter(self.to_ndarray())

    def __array__(self, dtype=None):
        a = self.to_ndarray()
        return a if dtype is None else a.astype(dtype)

    def __bool__(self):
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous. Use a.any() or a.all()")
        return bool(self.to_ndarray()[0])

    def argsort(self, algorithm=None, ascending=True):
        """ak.argsort(self, algorithm, ascending): the stable permutation that
        sorts this array (reversed when ascending is False, as Arkouda)."""
        from .sorting import argsort
        return argsort(self, algorithm=algorithm, ascending=ascending)

    # ---- printing like NumPy, fetching only what is shown ------------------------------
    def _printable(self):
        """A small ndarray that NumPy prints as it would print this array."""
        opts = np.get_printoptions()
        if self.size <= opts["threshold"]:
            return self.to_ndarray()
        k = opts["edgeitems"]
        head = self[:k].to_ndarray()
        tail = self[self.size - k:].to_ndarray()
        # NumPy formats only the edge items of a summarised array, so the
        # filler in the middle never shows and does not change widths
        filler = np.repeat(head[:1], opts["threshold"] + 1)
        return np.concatenate([head, filler, tail])

    def __repr__(self):
        return np.array_repr(self._printable())

    def __str__(self):
        return np.array_str(self._printable())

    def info(self):
        return f"pdarray '{self.name}': {self.size} x {dtype_name(self.dtype)}"


def _check_pdarray(x, what: str):
    """x, when it is a pdarray; else TypeError "<what> must be a pdarray, not
    <its type>" (the check search, sorting and stats make of arguments)."""
    if not isinstance(x, pdarray):
        raise TypeError(f"{what} must be a pdarray, not {type(x).__name__}")
    return x


def create_pdarray(result: dict, key: str = "array") -> pdarray:
    """The pdarray a command's result names.

    Parameters
    ----------
    result : dict
        A reply's result; ``result[key]`` is ``{"name", "dtype", "size"}``.
    key : str
        Which entry of the result holds the array.

    Returns
    -------
    pdarray
        A proxy of the server's array (freed on the server when collected).

    Raises
    ------
    KeyError
        If the result has no such entry.

    Examples
    --------
    >>> from kodiak.pdarrayclass import create_pdarray
    >>> create_pdarray({"array": {"name": "id_1", "dtype": "int64", "size": 3}}).size
    3
    """
    d = result[key]
    return pdarray(d["name"], DTYPE_NAMES[d["dtype"]], d["size"])
