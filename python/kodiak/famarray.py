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
import numbers

import numpy as np

from . import client
from .dtypes import DTYPE_NAMES, decode_scalar, dtype_name, encode_scalar, resolve_dtype
from .indexing import _IndexMixin

__all__ = ["FamRegion", "FamArray", "fam_region", "fam_array"]


def _pdarray_type():
    from .pdarray import pdarray
    return pdarray


def _created(result):
    from .pdarray import create_pdarray
    return create_pdarray(result)


def _region_name(region):
    if isinstance(region, FamRegion):
        return region.name
    if isinstance(region, str):
        return region
    raise TypeError(f"a FAM region is a FamRegion or its name, not {type(region).__name__}")


class FamRegion:
    """A region of FAM that holds FAM arrays (interleaved: every array in it
    is striped over all memory servers)."""

    def __init__(self, name, size=None):
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

    def create(self, name, dtype, size):
        """A new zero-filled FamArray `name` of `size` elements of `dtype`
        (int64, uint64, float64, bool). FileExistsError if the name is taken,
        MemoryError if the region or the memory servers are full."""
        size = _size(size)
        res, _ = client.generic_msg("fam_create", {"region": self.name, "name": _name(name),
                                                   "dtype": dtype_name(resolve_dtype(dtype)),
                                                   "size": size})
        return FamArray._from_result(res["fam"], self)

    def lookup(self, name):
        """The existing FamArray `name` (KeyError if there is none)."""
        res, _ = client.generic_msg("fam_lookup", {"region": self.name, "name": _name(name)})
        return FamArray._from_result(res["fam"], self)

    def __getitem__(self, name):
        return self.lookup(name)

    def __contains__(self, name):
        return name in self.list()

    def list(self):
        """The names of the FAM arrays in this region, sorted."""
        res, _ = client.generic_msg("fam_region_list", {"region": self.name})
        return list(res["names"])

    def destroy(self):
        """Delete the region and every array in it."""
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


def fam_region(name, size=None, create=True):
    """Create the FAM region `name` (size: its limit in bytes, default 1 GiB)
    or look it up if it exists. create=False: look up only (KeyError if it
    does not exist)."""
    args = {"region": _name(name), "create": bool(create)}
    if size is not None:
        args["size"] = _size(size)
    res, _ = client.generic_msg("fam_region", args)
    return FamRegion(res["region"], res.get("size"))


def fam_array(pda, region=None, name=None, reg=None):
    """A new FamArray `name` in `region` (also spelled `reg`, as in
    `ak.fam_array(pda, reg, name)`) holding a copy of pdarray `pda`."""
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
    """A typed one-dimensional array in FAM (see the module's doc)."""

    def __init__(self, name, region, dtype, size):
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

    def __len__(self):
        return self.size

    @property
    def shape(self):
        return (self.size,)

    @property
    def ndim(self):
        return 1

    @property
    def itemsize(self):
        return self.dtype.itemsize

    @property
    def nbytes(self):
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
    def __getitem__(self, key):
        kind, k = self._key(key)
        if kind == "int":
            res, _ = client.generic_msg("fam_get_item", self._args(index=k))
            return decode_scalar(res["value"])
        if kind == "slice":
            start, stop, step = k
            res, _ = client.generic_msg("fam_get_slice", self._args(start=start, stop=stop,
                                                                     step=step))
            return _created(res)
        if kind == "mask":
            k = self._index(k)
        res, _ = client.generic_msg("fam_gather", self._args(index=k.name))
        return _created(res)

    def to_pdarray(self):
        """The whole array, paged into a new pdarray."""
        res, _ = client.generic_msg("fam_to_pdarray", self._args())
        return _created(res)

    def to_ndarray(self):
        return self.to_pdarray().to_ndarray()

    def __array__(self, dtype=None):
        a = self.to_ndarray()
        return a if dtype is None else a.astype(dtype)

    # ---- writing ------------------------------------------------------------------------
    def __setitem__(self, key, value):
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

    def add(self, idx, values):
        """fa[idx[i]] += values[i] for every i, atomically: exact with repeated
        indices and with other ranks or programs adding at once (np.add.at)."""
        k = self._index(idx)
        args, keep = self._rhs(values, k.size)
        client.generic_msg("fam_add", self._args(index=k.name, **args))
        del keep

    def fetch_add(self, idx, values):
        """As add, and return a pdarray of each element's value just before
        its own update."""
        k = self._index(idx)
        args, keep = self._rhs(values, k.size)
        res, _ = client.generic_msg("fam_fetch_add", self._args(index=k.name, **args))
        del keep
        return _created(res)

    def delete(self):
        """Delete the array from FAM."""
        client.generic_msg("fam_delete", self._args())
