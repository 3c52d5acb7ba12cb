# SPDX-License-Identifier: Apache-2.0
"""indexing.py — pdarray[...] and pdarray[...] = ..., with NumPy's semantics.

Keys a pdarray understands (anything else is NumPy's IndexError):
  a[i]          an integer, negative counts from the end -> a NumPy scalar
  a[i:j:k]      any slice, negative steps too              -> a new pdarray
  a[mask]       a bool pdarray of a's size                 -> the selected elements
  a[idx]        an int64/uint64 pdarray (uint64 is read as int64, as NumPy
                converts it to intp)                       -> a[idx[0]], a[idx[1]], ...
  a[...]        the whole array (a copy, like every result here: pdarrays
                have no views)
Lists and NumPy arrays are index arrays too (an empty list means no
elements). Out-of-range indices raise IndexError and leave the array as it
was.

Assignment takes the same keys and a scalar, a pdarray, a NumPy array or a
list. Values are converted to a's dtype exactly as NumPy's own assignment
would: a scalar goes through a one-element NumPy array with the same kind of
key (so NaN into an int array is NumPy's ValueError), a NumPy array or list
through an ndarray assignment (unsafe casting: 2.7 -> 2), and a pdarray is
cast on the server as ndarray.astype does. A value array must have as many
elements as the key selects, or one (broadcast). With repeated indices in
a[idx] = values the value that comes last in idx is kept, as NumPy does."""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import client, pdarrayclass  # pdarrayclass imports this module: use its names at call time
from .dtypes import decode_scalar, encode_scalar

if TYPE_CHECKING:
    from types import EllipsisType

    from .pdarrayclass import pdarray

    # what a[key] accepts (see the module's doc)
    Key = Union[int, np.integer, slice, EllipsisType, pdarray, list, range, np.ndarray, tuple]

_BAD_KEY = ("only integers, slices (`:`), ellipsis (`...`), numpy.newaxis (`None`) and "
            "integer or boolean arrays are valid indices")


def _pdarray_type():
    return pdarrayclass.pdarray


def _to_pdarray(nd):
    from .creation import array
    return array(nd)


class _IndexMixin:
    """__getitem__ and __setitem__ of pdarray."""

    def _key(self, key):
        """('int', i) | ('slice', (start, stop, step)) | ('mask', pdarray) |
        ('index', pdarray), or NumPy's IndexError / TypeError / ValueError."""
        pdarray = _pdarray_type()
        if isinstance(key, tuple):
            if len(key) == 0:
                key = Ellipsis
            elif len(key) == 1:
                key = key[0]
            else:
                raise IndexError(f"too many indices for array: array is 1-dimensional, "
                                 f"but {len(key)} were indexed")
        if key is Ellipsis:
            key = slice(None)
        if isinstance(key, slice):
            return "slice", key.indices(self.size)  # TypeError / ValueError as Python's
        if isinstance(key, (bool, np.bool_)):
            raise IndexError("a boolean scalar index would add an axis, which a "
                             "one-dimensional pdarray cannot have")
        if key is None:
            raise IndexError("numpy.newaxis (None) would add an axis, which a "
                             "one-dimensional pdarray cannot have")
        if isinstance(key, (numbers.Integral, np.integer)):
            i = int(key)
            if not -2**63 <= i < 2**63:
                raise IndexError(_BAD_KEY)
            return "int", i
        if isinstance(key, pdarray):
            return self._array_key(key)
        if isinstance(key, (list, np.ndarray, range)):
            nd = np.asarray(key)
            if nd.size == 0 and not isinstance(key, np.ndarray):
                nd = nd.astype(np.int64)  # a[[]]: NumPy takes an empty list as intp
            if nd.ndim != 1:
                if nd.ndim == 0:
                    return self._key(nd[()])
                raise IndexError(f"too many indices for array: array is 1-dimensional, "
                                 f"but {nd.ndim} were indexed")
            if nd.dtype.kind not in "biu":
                raise IndexError("arrays used as indices must be of integer (or boolean) "
                                 "type")
            if nd.dtype.kind == "u" and nd.dtype.itemsize < 8:
                nd = nd.astype(np.int64)
            return self._array_key(_to_pdarray(nd))
        if hasattr(key, "__index__"):
            return self._key(key.__index__())
        raise IndexError(_BAD_KEY)

    def _array_key(self, key):
        if key.dtype == np.bool_:
            if key.size != self.size:
                raise IndexError(f"boolean index did not match indexed array along "
                                 f"dimension 0; dimension is {self.size} but corresponding "
                                 f"boolean dimension is {key.size}")
            return "mask", key
        if key.dtype.kind in "iu":
            return "index", key
        raise IndexError("arrays used as indices must be of integer (or boolean) type")

    def __getitem__(self, key: Key) -> pdarray | np.generic:
        """a[key], as NumPy indexes a one-dimensional array.

        Parameters
        ----------
        key : int, slice, Ellipsis, pdarray, list, range or numpy.ndarray
            An integer (negative counts from the end); a slice (any step);
            ``...`` (the whole array); a bool pdarray of a's size (a mask);
            an int64/uint64 pdarray of positions (a gather); or a list,
            range or NumPy array, used as the pdarray they make.

        Returns
        -------
        numpy scalar
            For an integer key.
        pdarray
            For any other key: a new array (a copy; pdarrays have no views).

        Raises
        ------
        IndexError
            An index out of range, a mask of another size, a float array,
            more than one index, None or a bool scalar (all as NumPy).
        TypeError
            A slice of non-integers (as Python's).

        Examples
        --------
        >>> a = ak.arange(10, 15)
        >>> a[-1]
        14
        >>> a[1:4], a[::-2]
        (array([11, 12, 13]), array([14, 12, 10]))
        >>> a[a % 2 == 0]
        array([10, 12, 14])
        >>> a[ak.array([4, 0, 4])], a[[1, 2]]
        (array([14, 10, 14]), array([11, 12]))
        >>> a[5]
        Traceback (most recent call last):
        ...
        IndexError: index 5 is out of bounds for axis 0 with size 5
        """
        kind, k = self._key(key)
        if kind == "int":
            res, _ = client.generic_msg("index_int", {"array": self.name, "index": k})
            return decode_scalar(res["value"])
        if kind == "slice":
            start, stop, step = k
            res, _ = client.generic_msg("index_slice", {"array": self.name, "start": start,
                                                        "stop": stop, "step": step})
        elif kind == "mask":
            res, _ = client.generic_msg("index_mask", {"array": self.name, "mask": k.name})
        else:
            res, _ = client.generic_msg("index_gather", {"array": self.name,
                                                         "index": k.name})
        return pdarrayclass.create_pdarray(res)

    def _value(self, kind, value):
        """The assignment's right-hand side as request arguments (and the
        pdarray to keep alive while the request runs)."""
        pdarray = _pdarray_type()
        if isinstance(value, pdarray):
            return {"values": value.name}, value
        if isinstance(value, (numbers.Number, np.generic)) or \
                (isinstance(value, np.ndarray) and value.ndim == 0):
            # NumPy converts it, with the same kind of key, into a's dtype
            t = np.zeros(1, dtype=self.dtype)
            if kind == "int":
                t[0] = value
            elif kind == "slice":
                t[0:1] = value
            elif kind == "mask":
                t[np.ones(1, dtype=np.bool_)] = value
            else:
                t[np.zeros(1, dtype=np.int64)] = value
            return {"value": encode_scalar(t[0], self.dtype)}, None
        if isinstance(value, (str, bytes)) or value is None:
            np.zeros(1, dtype=self.dtype)[0:1] = value  # NumPy's own error
            raise TypeError(f"cannot assign {type(value).__name__} to a pdarray")
        try:
            n = len(value)
        except TypeError:
            raise TypeError(f"cannot assign a {type(value).__name__} to pdarray "
                            f"elements") from None
        t = np.empty(n, dtype=self.dtype)
        t[...] = value  # NumPy's conversion and errors (casting, shape)
        v = _to_pdarray(t)
        return {"values": v.name}, v

    def __setitem__(self, key: Key, value: Any) -> None:
        """a[key] = value, as NumPy assigns into a one-dimensional array.

        Parameters
        ----------
        key : int, slice, Ellipsis, pdarray, list, range or numpy.ndarray
            The keys __getitem__ takes.
        value : scalar, pdarray, numpy.ndarray or list
            One value for every selected element, or one value for all;
            converted to a's dtype as NumPy's assignment converts it. With
            repeated indices the value that comes last is kept.

        Raises
        ------
        IndexError
            As __getitem__ (nothing is written).
        ValueError
            A value array of the wrong size, or a value NumPy cannot convert
            (NaN into an integer array).
        TypeError
            A value that is not a number or an array of numbers.

        Examples
        --------
        >>> a = ak.zeros(5, dtype=ak.int64)
        >>> a[0] = 7
        >>> a[1:3] = 2.9
        >>> a[ak.array([4, 4])] = ak.array([8, 9])
        >>> a
        array([7, 2, 2, 0, 9])
        >>> a[a == 2] = -1
        >>> a
        array([ 7, -1, -1,  0,  9])
        """
        kind, k = self._key(key)
        args, keep = self._value(kind, value)
        self._before_write()
        args["array"] = self.name
        if kind == "int":
            args["index"] = k
            client.generic_msg("setitem_int", args)
        elif kind == "slice":
            args["start"], args["stop"], args["step"] = k
            client.generic_msg("setitem_slice", args)
        elif kind == "mask":
            args["mask"] = k.name
            client.generic_msg("setitem_mask", args)
        else:
            args["index"] = k.name
            client.generic_msg("setitem_scatter", args)
        del keep
