# SPDX-License-Identifier: Apache-2.0
"""famarray.py — FAM regions and FAM arrays: typed one-dimensional arrays
that live in fabric-attached memory, striped over the memory servers, and
outlive the compute server.

    reg = ak.fam_region("demo")                       # create or look up
    fa = reg.create("aName", ak.int64, 100_000_000)   # zero-filled
    fa[ak.randint(0, 100_000_000, 10_000)] = ak.arange(0, 10_000, 1)
    c = fa[idx]; s = fa[10:20]; fa[5:8] = 7; fa.add(idx, 1)

A FamArray is a proxy: its data stays in FAM and every operation is one
command that each kodiakd rank runs on its own share (its block of the
index and value pdarrays, or of the slice), talking to the memory servers
itself. Other programs (C/MPI programs linking libfamarray, other compute
servers) open the same array by region and name.

Semantics are NumPy's where they apply: negative indices count from the
end, values are converted to the array's dtype as NumPy's assignment does,
an out-of-range index raises IndexError and writes nothing. With repeated
indices in fa[idx] = values the last one wins, as in NumPy: with several
ranks (which write their shares at the same time) the client first keeps
only each index's last occurrence (a stable argsort of the indices).
Another program writing the same elements at the same time may interleave.
fa.add / fa.fetch_add are exact with repeats (atomic in the memory server),
as np.add.at."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from . import client, pdarrayclass
from .dtypes import DTYPE_NAMES, decode_scalar, dtype_name, encode_scalar, resolve_dtype
from .indexing import _IndexMixin

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .indexing import Key
    from .pdarrayclass import pdarray

__all__ = ["FamRegion", "FamArray", "fam_region", "fam_array"]


def _pdarray_type():
    return pdarrayclass.pdarray


def _region_name(region):
    if isinstance(region, FamRegion):
        return region.name
    if isinstance(region, str):
        return region
    raise TypeError(f"a FAM region is a FamRegion or its name, not {type(region).__name__}")


class FamRegion:
    """A region of FAM that holds FAM arrays (interleaved: every array in it
    is striped over all memory servers).

    A proxy that holds only the name: make or find the region itself with
    fam_region.

    Parameters
    ----------
    name : str
        The region's name.
    size : int, optional
        Its size limit in bytes, as the server reported it.

    Examples
    --------
    >>> reg = ak.fam_region("doc_FamRegion")
    >>> reg, reg == "doc_FamRegion", reg == ak.FamRegion("doc_FamRegion")
    (FamRegion('doc_FamRegion'), True, True)
    >>> reg.destroy()
    """

    def __init__(self, name: str, size: Optional[int] = None) -> None:
        self.name = name
        self.size = size  # the region's size limit in bytes, as the server said

    def __repr__(self):
        return f"FamRegion({self.name!r})"

    def __eq__(self, other):
        if isinstance(other, str):  # fa.region == "demo"
            return other == self.name
        return isinstance(other, FamRegion) and other.name == self.name

    def __hash__(self):
        return hash(("FamRegion", self.name))

    def create(self, name: str, dtype: DTypeLike, size: int) -> FamArray:
        """A new zero-filled FamArray in this region.

        Parameters
        ----------
        name : str
            The array's name, unique in the region.
        dtype : dtype-like
            int64, uint64, float64 or bool.
        size : int
            Number of elements.

        Returns
        -------
        FamArray

        Raises
        ------
        FileExistsError
            The name is taken.
        MemoryError
            The region or the memory servers are full.
        TypeError
            `name` is not a str, `size` not an integer, or the dtype not one
            a FAM array holds.
        ValueError
            `size` is negative.

        Examples
        --------
        >>> reg = ak.fam_region("doc_create")
        >>> reg.create("x", ak.float64, 3)
        FamArray('x', region='doc_create', dtype=float64, size=3)
        >>> reg.create("x", ak.int64, 3)
        Traceback (most recent call last):
        ...
        FileExistsError: ...
        >>> reg.destroy()
        """
        size = _size(size)
        res, _ = client.generic_msg("fam_create", {"region": self.name, "name": _name(name),
                                                   "dtype": dtype_name(resolve_dtype(dtype)),
                                                   "size": size})
        return FamArray._from_result(res["fam"], self)

    def lookup(self, name: str) -> FamArray:
        """The existing FamArray `name` of this region (also reg[name]).

        Parameters
        ----------
        name : str

        Returns
        -------
        FamArray

        Raises
        ------
        KeyError
            There is no such array.
        TypeError
            `name` is not a str.

        Examples
        --------
        >>> reg = ak.fam_region("doc_lookup")
        >>> _ = reg.create("x", ak.int64, 4)
        >>> reg.lookup("x").size
        4
        >>> reg.lookup("nope")
        Traceback (most recent call last):
        ...
        KeyError: ...
        >>> reg.destroy()
        """
        res, _ = client.generic_msg("fam_lookup", {"region": self.name, "name": _name(name)})
        return FamArray._from_result(res["fam"], self)

    def __getitem__(self, name: str) -> FamArray:
        """reg[name]: the existing FamArray `name` (see lookup).

        Parameters
        ----------
        name : str

        Returns
        -------
        FamArray

        Raises
        ------
        KeyError
            There is no such array.

        Examples
        --------
        >>> reg = ak.fam_region("doc_region_getitem")
        >>> _ = reg.create("x", ak.bool, 2)
        >>> reg["x"]
        FamArray('x', region='doc_region_getitem', dtype=bool, size=2)
        >>> reg.destroy()
        """
        return self.lookup(name)

    def __contains__(self, name: str) -> bool:
        return name in self.list()

    def list(self) -> list[str]:
        """The names of the FAM arrays in this region, sorted (also
        `name in reg`).

        Returns
        -------
        list of str

        Examples
        --------
        >>> reg = ak.fam_region("doc_list")
        >>> _ = reg.create("b", ak.int64, 1); _ = reg.create("a", ak.int64, 1)
        >>> reg.list(), "a" in reg
        (['a', 'b'], True)
        >>> reg.destroy()
        """
        res, _ = client.generic_msg("fam_region_list", {"region": self.name})
        return list(res["names"])

    def destroy(self) -> None:
        """Delete the region and every array in it.

        Raises
        ------
        KeyError
            There is no such region.

        Examples
        --------
        >>> reg = ak.fam_region("doc_destroy")
        >>> _ = reg.create("x", ak.int64, 10)
        >>> reg.destroy()
        >>> ak.fam_region("doc_destroy", create=False)
        Traceback (most recent call last):
        ...
        KeyError: ...
        """
        client.generic_msg("fam_region_destroy", {"region": self.name})


def _name(name):
    if not isinstance(name, str):
        raise TypeError(f"a FAM name is a str, not {type(name).__name__}")
    return name


def _size(size):
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (numbers.Integral, np.integer)):
        raise TypeError(f"size must be an integer, not {type(size).__name__}")
    size = int(size)
    if size < 0:
        raise ValueError(f"negative dimensions are not allowed (size {size})")
    return size


def fam_region(name: str, size: Optional[int] = None, create: bool = True) -> FamRegion:
    """Create the FAM region `name`, or look it up if it exists.

    Parameters
    ----------
    name : str
    size : int, optional
        Its limit in bytes when created (default 1 GiB).
    create : bool, optional
        False: look up only.

    Returns
    -------
    FamRegion

    Raises
    ------
    KeyError
        create=False and there is no such region.
    TypeError
        `name` is not a str, or `size` not an integer.
    ValueError
        `size` is negative.

    Examples
    --------
    >>> reg = ak.fam_region("doc_fam_region", size=1 << 20)
    >>> ak.fam_region("doc_fam_region", create=False)
    FamRegion('doc_fam_region')
    >>> reg.destroy()
    """
    args = {"region": _name(name), "create": bool(create)}
    if size is not None:
        args["size"] = _size(size)
    res, _ = client.generic_msg("fam_region", args)
    return FamRegion(res["region"], res.get("size"))


def fam_array(pda: pdarray, region: FamRegion | str | None = None,
              name: Optional[str] = None, reg: FamRegion | str | None = None) -> FamArray:
    """A new FamArray holding a copy of a pdarray.

    Parameters
    ----------
    pda : pdarray
        The data.
    region : FamRegion or str
        The region (it must exist), or its name.
    name : str
        The new array's name.
    reg : FamRegion or str, optional
        Another spelling of `region`.

    Returns
    -------
    FamArray

    Raises
    ------
    TypeError
        No region or name, or `pda` is not a pdarray.
    FileExistsError
        The name is taken.
    KeyError
        There is no such region.
    MemoryError
        The region or the memory servers are full.

    Examples
    --------
    >>> reg = ak.fam_region("doc_fam_array")
    >>> fa = ak.fam_array(ak.arange(5), reg, "a")
    >>> fa
    FamArray('a', region='doc_fam_array', dtype=int64, size=5)
    >>> fa.to_ndarray()
    array([0, 1, 2, 3, 4])
    >>> reg.destroy()
    """
    if region is None:
        region = reg
    if region is None or name is None:
        raise TypeError("fam_array needs a region and a name")
    pdarray = _pdarray_type()
    if not isinstance(pda, pdarray):
        raise TypeError(f"fam_array takes a pdarray, not {type(pda).__name__}")
    reg = region if isinstance(region, FamRegion) else FamRegion(_region_name(region))
    res, _ = client.generic_msg("fam_from_pdarray", {"array": pda.name, "region": reg.name,
                                                     "name": _name(name)})
    return FamArray._from_result(res["fam"], reg)


class FamArray(_IndexMixin):
    """A typed one-dimensional array in FAM (see the module's doc).

    A proxy: make one with FamRegion.create or fam_array, find one with
    FamRegion.lookup.

    Parameters
    ----------
    name : str
        The array's name in its region.
    region : FamRegion or str
    dtype : dtype-like
    size : int
        Number of elements.

    Examples
    --------
    >>> reg = ak.fam_region("doc_FamArray")
    >>> fa = reg.create("x", ak.int64, 4)
    >>> fa[1:3] = 5
    >>> fa[fa.to_pdarray() == 0], len(fa), fa.nbytes
    (array([0, 0]), 4, 32)
    >>> reg.destroy()
    """

    def __init__(self, name: str, region: FamRegion | str, dtype: DTypeLike,
                 size: int) -> None:
        self.name = name
        self.region = region if isinstance(region, FamRegion) else FamRegion(region)
        self.dtype = resolve_dtype(dtype)
        self.size = int(size)

    @classmethod
    def _from_result(cls, d, region):
        if region.name != d["region"]:
            region = FamRegion(d["region"])
        return cls(d["name"], region, DTYPE_NAMES[d["dtype"]], d["size"])

    def __repr__(self):
        return (f"FamArray({self.name!r}, region={self.region.name!r}, "
                f"dtype={dtype_name(self.dtype)}, size={self.size})")

    def __len__(self) -> int:
        return self.size

    @property
    def shape(self) -> tuple[int]:
        """(size,), as ndarray.shape."""
        return (self.size,)

    @property
    def ndim(self) -> int:
        """1: FAM arrays are one-dimensional."""
        return 1

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array (size * itemsize)."""
        return self.size * self.dtype.itemsize

    def _args(self, **kw):
        kw["region"] = self.region.name
        kw["name"] = self.name
        return kw

    def _before_write(self):
        pass  # nothing is deferred on a FamArray (see pdarray._before_write)

    def _index(self, idx):
        """An index argument: an int64/uint64 pdarray (bool masks become the
        positions they select)."""
        kind, k = self._key(idx)
        if kind == "mask":
            # the positions the mask selects, and no index of the whole array
            from .numeric import flatnonzero
            return flatnonzero(k)
        if kind != "index":
            raise IndexError("FamArray.add and fetch_add take an array of indices")
        return k

    def _rhs(self, value, n):
        """values as request arguments in this array's dtype (NumPy's
        conversions), and what to keep alive while the request runs."""
        pdarray = _pdarray_type()
        if isinstance(value, pdarray):
            if value.dtype != self.dtype:
                value = value.astype(self.dtype)
            if value.size == 1 and n != 1:  # broadcast, as NumPy
                return {"value": encode_scalar(value[0], self.dtype)}, None
            return {"values": value.name}, value
        args, keep = self._value("index", value)
        if keep is not None and keep.size == 1 and n != 1:
            return {"value": encode_scalar(keep[0], self.dtype)}, None
        return args, keep

    # ---- reading -----------------------------------------------------------------------
    def __getitem__(self, key: Key) -> pdarray | np.generic:
        """fa[key]: elements read from FAM, as NumPy indexes.

        Parameters
        ----------
        key : int, slice, Ellipsis, pdarray, list, range or numpy.ndarray
            The keys a pdarray takes: an integer (negative counts from the
            end), a slice, a bool mask of fa's size, or int64/uint64
            positions (lists and NumPy arrays too).

        Returns
        -------
        numpy scalar
            For an integer key.
        pdarray
            For any other key: the elements, now in kodiakd's memory.

        Raises
        ------
        IndexError
            An index out of range or a mask of another size.

        Examples
        --------
        >>> reg = ak.fam_region("doc_fa_getitem")
        >>> fa = ak.fam_array(ak.arange(10, 15), reg, "x")
        >>> fa[-1], fa[1:3], fa[ak.array([4, 0])]
        (14, array([11, 12]), array([14, 10]))
        >>> fa[5]
        Traceback (most recent call last):
        ...
        IndexError: ...
        >>> reg.destroy()
        """
        kind, k = self._key(key)
        if kind == "int":
            res, _ = client.generic_msg("fam_get_item", self._args(index=k))
            return decode_scalar(res["value"])
        if kind == "slice":
            start, stop, step = k
            res, _ = client.generic_msg("fam_get_slice", self._args(start=start, stop=stop,
                                                                     step=step))
            return pdarrayclass.create_pdarray(res)
        if kind == "mask":
            k = self._index(k)
        res, _ = client.generic_msg("fam_gather", self._args(index=k.name))
        return pdarrayclass.create_pdarray(res)

    def to_pdarray(self) -> pdarray:
        """The whole array, copied into a new pdarray.

        Returns
        -------
        pdarray

        Examples
        --------
        >>> reg = ak.fam_region("doc_to_pdarray")
        >>> reg.create("x", ak.float64, 3).to_pdarray()
        array([0., 0., 0.])
        >>> reg.destroy()
        """
        res, _ = client.generic_msg("fam_to_pdarray", self._args())
        return pdarrayclass.create_pdarray(res)

    def to_ndarray(self) -> np.ndarray:
        """The whole array, copied into a NumPy array.

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> reg = ak.fam_region("doc_to_ndarray")
        >>> ak.fam_array(ak.array([True, False]), reg, "x").to_ndarray()
        array([ True, False])
        >>> reg.destroy()
        """
        return self.to_pdarray().to_ndarray()

    def __array__(self, dtype: Optional[DTypeLike] = None) -> np.ndarray:
        a = self.to_ndarray()
        return a if dtype is None else a.astype(dtype)

    # ---- writing ------------------------------------------------------------------------
    def __setitem__(self, key: Key, value: Any) -> None:
        """fa[key] = value: write elements in FAM, as NumPy assigns.

        Parameters
        ----------
        key : int, slice, Ellipsis, pdarray, list, range or numpy.ndarray
            The keys __getitem__ takes.
        value : scalar, pdarray, numpy.ndarray or list
            One value for every selected element, or one for all; converted
            to fa's dtype as NumPy's assignment converts it. With repeated
            indices the last value wins (but see the module's doc).

        Raises
        ------
        IndexError
            An index out of range (nothing is written).
        ValueError
            A value array of the wrong size, or a value NumPy cannot convert.
        TypeError
            A value that is not a number or an array of numbers.

        Examples
        --------
        >>> reg = ak.fam_region("doc_fa_setitem")
        >>> fa = reg.create("x", ak.int64, 6)
        >>> fa[0] = 9
        >>> fa[1:3] = ak.array([1, 2])
        >>> fa[ak.array([5, 5])] = ak.array([7, 8])
        >>> fa.to_ndarray()
        array([9, 1, 2, 0, 0, 8])
        >>> reg.destroy()
        """
        kind, k = self._key(key)
        if kind == "int":
            i = k + self.size if k < 0 else k
            if not 0 <= i < self.size:
                raise IndexError(f"index {k} is out of bounds for axis 0 with size {self.size}")
            args, keep = self._rhs(value, 1)
            client.generic_msg("fam_put_slice", self._args(start=i, stop=i + 1, step=1,
                                                           **args))
            del keep
            return
        if kind == "slice":
            start, stop, step = k
            n = len(range(start, stop, step))
            args, keep = self._rhs(value, n)
            client.generic_msg("fam_put_slice", self._args(start=start, stop=stop, step=step,
                                                           **args))
            del keep
            return
        if kind == "mask":
            k = self._index(k)
        args, keep = self._rhs(value, k.size)
        client.generic_msg("fam_scatter", self._args(index=k.name, **args))
        del keep

    def add(self, idx: pdarray | Any, values: pdarray | Any) -> None:
        """fa[idx[i]] += values[i] for every i, atomically, as np.add.at:
        exact with repeated indices and with other ranks or programs adding
        at once.

        Parameters
        ----------
        idx : pdarray, list or numpy.ndarray
            int64/uint64 positions, or a bool mask of fa's size.
        values : scalar or pdarray, list or numpy.ndarray
            One value per index, or one for all, converted to fa's dtype.

        Raises
        ------
        IndexError
            `idx` is not an index array or mask, or an index is out of
            range (nothing is added).
        ValueError
            `values` has the wrong size.

        Examples
        --------
        >>> reg = ak.fam_region("doc_add")
        >>> fa = reg.create("x", ak.int64, 3)
        >>> fa.add(ak.array([0, 2, 2, 2]), 1)
        >>> fa.to_ndarray()
        array([1, 0, 3])
        >>> reg.destroy()
        """
        k = self._index(idx)
        args, keep = self._rhs(values, k.size)
        client.generic_msg("fam_add", self._args(index=k.name, **args))
        del keep

    def fetch_add(self, idx: pdarray | Any, values: pdarray | Any) -> pdarray:
        """As add, and return each element's value just before its own
        update.

        Parameters
        ----------
        idx : pdarray, list or numpy.ndarray
            int64/uint64 positions, or a bool mask of fa's size.
        values : scalar or pdarray, list or numpy.ndarray
            One value per index, or one for all.

        Returns
        -------
        pdarray
            The old values, one per index, in fa's dtype.

        Raises
        ------
        IndexError
            `idx` is not an index array or mask, or an index is out of range.
        ValueError
            `values` has the wrong size.

        Examples
        --------
        >>> reg = ak.fam_region("doc_fetch_add")
        >>> fa = ak.fam_array(ak.array([10, 20]), reg, "x")
        >>> fa.fetch_add(ak.array([1, 0]), ak.array([5, 6]))
        array([20, 10])
        >>> fa.to_ndarray()
        array([16, 25])
        >>> reg.destroy()
        """
        k = self._index(idx)
        args, keep = self._rhs(values, k.size)
        res, _ = client.generic_msg("fam_fetch_add", self._args(index=k.name, **args))
        del keep
        return pdarrayclass.create_pdarray(res)

    def delete(self) -> None:
        """Delete the array from FAM.

        Raises
        ------
        KeyError
            The array no longer exists.

        Examples
        --------
        >>> reg = ak.fam_region("doc_delete")
        >>> fa = reg.create("x", ak.int64, 2)
        >>> fa.delete()
        >>> reg.list()
        []
        >>> reg.destroy()
        """
        client.generic_msg("fam_delete", self._args())
