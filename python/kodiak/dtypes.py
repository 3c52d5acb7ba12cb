"""dtypes.py — the four dtypes a pdarray may have, and how scalars travel.

A scalar crosses the wire as {"dtype": name, "value": text}: decimal text
keeps every int64/uint64 bit and repr() keeps every float64 bit (JSON
numbers would lose both)."""
import builtins

import numpy as np

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


def dtype_name(dt):
    """'int64', 'uint64', 'float64' or 'bool' for a kodiak dtype."""
    dt = resolve_dtype(dt)
    return "bool" if dt == bool_ else dt.name


def resolve_dtype(dt):
    """The NumPy dtype for a dtype-like (ak.int64, 'int64', int, np.float64,
    ...); TypeError for one a pdarray cannot hold."""
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


def scalar_dtype(value):
    """The dtype NumPy gives a Python or NumPy scalar on its own."""
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


def encode_scalar(value, dtype=None):
    """{"dtype", "value"} for the wire; dtype defaults to the scalar's own."""
    dt = resolve_dtype(dtype) if dtype is not None else scalar_dtype(value)
    if dt == bool_:
        text = "True" if value else "False"
    elif dt == float64:
        text = repr(float(value))
    else:
        text = str(int(value))
    return {"dtype": dtype_name(dt), "value": text}


def decode_scalar(obj):
    """A NumPy scalar from {"dtype", "value"}."""
    dt = DTYPE_NAMES[obj["dtype"]]
    text = obj["value"]
    if dt == bool_:
        return np.bool_(text in ("True", "true", "1"))
    if dt == float64:
        return np.float64(float(text))
    return dt.type(int(text))


def is_scalar(value):
    return isinstance(value, (builtins.int, builtins.float, np.generic))
