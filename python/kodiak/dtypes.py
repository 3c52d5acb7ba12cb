# SPDX-License-Identifier: Apache-2.0
"""dtypes.py — the four dtypes a pdarray may have, and how scalars travel.

A scalar crosses the wire as {"dtype": name, "value": text}: decimal text
keeps every int64/uint64 bit and repr() keeps every float64 bit (JSON
numbers would lose both)."""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

int64 = np.dtype(np.int64)
uint64 = np.dtype(np.uint64)
float64 = np.dtype(np.float64)
bool_ = np.dtype(np.bool_)
bool = bool_  # noqa: A001 — Arkouda spells it ak.bool too

DTYPES = (int64, uint64, float64, bool_)
DTYPE_NAMES = {"int64": int64, "uint64": uint64, "float64": float64, "bool": bool_}
# Arkouda's and NumPy's generic spellings
_ALIASES = {"int": int64, "float": float64, "uint": uint64, "bool_": bool_, "i8": int64,
            "u8": uint64, "f8": float64}


def dtype_name(dt: DTypeLike) -> str:
    """The name of a pdarray dtype: 'int64', 'uint64', 'float64' or 'bool'.

    Parameters
    ----------
    dt : dtype-like
        Anything resolve_dtype takes.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        A dtype a pdarray cannot hold.

    Examples
    --------
    >>> from kodiak.dtypes import dtype_name
    >>> dtype_name(ak.bool), dtype_name(float)
    ('bool', 'float64')
    """
    dt = resolve_dtype(dt)
    return "bool" if dt == bool_ else dt.name


def resolve_dtype(dt: DTypeLike) -> np.dtype:
    """The NumPy dtype for a dtype-like, as np.dtype with Arkouda's
    spellings too ('int', 'float', 'uint', 'bool_').

    Parameters
    ----------
    dt : dtype-like
        ak.int64, 'int64', int, np.float64, np.dtype('u8'), ...

    Returns
    -------
    numpy.dtype
        int64, uint64, float64 or bool.

    Raises
    ------
    TypeError
        A dtype a pdarray cannot hold (int32, strings, objects, ...).

    Examples
    --------
    >>> from kodiak.dtypes import resolve_dtype
    >>> resolve_dtype(int), resolve_dtype("uint")
    (dtype('int64'), dtype('uint64'))
    >>> resolve_dtype(np.int32)
    Traceback (most recent call last):
    ...
    TypeError: unsupported dtype int32: pdarrays hold int64, uint64, float64 or bool
    """
    if isinstance(dt, str) and dt in DTYPE_NAMES:
        return DTYPE_NAMES[dt]
    if isinstance(dt, str) and dt in _ALIASES:
        return _ALIASES[dt]
    if dt is builtins.int:
        return int64
    if dt is builtins.float:
        return float64
    if dt is builtins.bool:
        return bool_
    try:
        d = np.dtype(dt)
    except TypeError:
        raise TypeError(f"unsupported dtype {dt!r}: pdarrays hold int64, uint64, "
                        f"float64 or bool") from None
    if d not in DTYPES:
        raise TypeError(f"unsupported dtype {d}: pdarrays hold int64, uint64, float64 "
                        f"or bool")
    return d


def scalar_dtype(value: Any) -> np.dtype:
    """The dtype NumPy gives a Python or NumPy scalar on its own (a Python
    int beyond int64 is uint64, as np.array(value) makes it).

    Parameters
    ----------
    value : scalar
        A Python or NumPy bool, int or float.

    Returns
    -------
    numpy.dtype

    Raises
    ------
    OverflowError
        A Python int beyond uint64.
    TypeError
        Not a number, or a NumPy scalar of a dtype a pdarray cannot hold.

    Examples
    --------
    >>> from kodiak.dtypes import scalar_dtype
    >>> scalar_dtype(1), scalar_dtype(2**63), scalar_dtype(True)
    (dtype('int64'), dtype('uint64'), dtype('bool'))
    """
    if isinstance(value, (np.bool_, builtins.bool)):
        return bool_
    if isinstance(value, np.generic):
        return resolve_dtype(value.dtype)
    if isinstance(value, int):
        if -2**63 <= value < 2**63:
            return int64
        if 0 <= value < 2**64:
            return uint64
        raise OverflowError(f"Python int {value} does not fit in int64 or uint64")
    if isinstance(value, float):
        return float64
    raise TypeError(f"unsupported scalar {value!r} of type {type(value).__name__}")


def encode_scalar(value: Any, dtype: Optional[DTypeLike] = None) -> dict:
    """A scalar as it crosses the wire: {"dtype": name, "value": text},
    exact for every int64/uint64/float64 value.

    Parameters
    ----------
    value : scalar
    dtype : dtype-like, optional
        The dtype to send it as; default: the scalar's own (scalar_dtype).

    Returns
    -------
    dict

    Raises
    ------
    TypeError, OverflowError
        As scalar_dtype and resolve_dtype.

    Examples
    --------
    >>> from kodiak.dtypes import encode_scalar
    >>> encode_scalar(0.1)
    {'dtype': 'float64', 'value': '0.1'}
    >>> encode_scalar(3, ak.uint64)
    {'dtype': 'uint64', 'value': '3'}
    """
    dt = resolve_dtype(dtype) if dtype is not None else scalar_dtype(value)
    if dt == bool_:
        text = "True" if value else "False"
    elif dt == float64:
        text = repr(float(value))
    else:
        text = str(int(value))
    return {"dtype": dtype_name(dt), "value": text}


def decode_scalar(obj: dict) -> np.generic:
    """The NumPy scalar a wire scalar {"dtype", "value"} stands for (the
    inverse of encode_scalar).

    Parameters
    ----------
    obj : dict
        {"dtype": 'int64' | 'uint64' | 'float64' | 'bool', "value": text}.

    Returns
    -------
    numpy scalar

    Raises
    ------
    KeyError
        An unknown dtype name, or a missing key.
    ValueError
        Text that is not a number.

    Examples
    --------
    >>> from kodiak.dtypes import decode_scalar
    >>> x = decode_scalar({"dtype": "uint64", "value": "18446744073709551615"})
    >>> x, type(x)
    (18446744073709551615, <class 'numpy.uint64'>)
    """
    dt = DTYPE_NAMES[obj["dtype"]]
    text = obj["value"]
    if dt == bool_:
        return np.bool_(text in ("True", "true", "1"))
    if dt == float64:
        return np.float64(float(text))
    return dt.type(int(text))


def is_scalar(value: Any) -> builtins.bool:  # (the name bool is a dtype here)
    """Whether `value` is a Python int or float, or any NumPy scalar.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool

    Examples
    --------
    >>> from kodiak.dtypes import is_scalar
    >>> is_scalar(3), is_scalar(np.float64(1.5)), is_scalar([3])
    (True, True, False)
    """
    return isinstance(value, (builtins.int, builtins.float, np.generic))
