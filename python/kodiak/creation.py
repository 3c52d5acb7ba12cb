"""creation.py — making pdarrays: from NumPy or lists, constants, ranges and
random numbers (counter-based on the server: the same seed gives the same
array whatever the number of ranks)."""
import numpy as np

from . import client
from .dtypes import bool_, dtype_name, encode_scalar, float64, int64, resolve_dtype, \
    scalar_dtype, uint64
from .pdarray import create_pdarray, pdarray


def _size(size):
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an integer, not {type(size).__name__}")
    if size < 0:
        raise ValueError("negative dimensions are not allowed")
    return int(size)


def _default_dtype(nd):
    """nd with its dtype widened to the pdarray dtype of the same kind
    (int8 -> int64, uint32 -> int64, float32 -> float64; an empty list is
    float64, as NumPy's)."""
    if nd.dtype.kind in "iu" and nd.dtype not in (np.dtype(np.int64), np.dtype(np.uint64)):
        return nd.astype(np.int64 if nd.dtype.kind == "i" or nd.dtype.itemsize < 8 else np.uint64)
    if nd.dtype.kind == "f" and nd.dtype != np.float64:
        return nd.astype(np.float64)
    if nd.size == 0 and nd.dtype.kind not in "iufb":
        return nd.astype(np.float64)
    return nd


def _as_ndarray(a, dtype=None):
    """A C-contiguous little-endian ndarray of a supported dtype."""
    if isinstance(a, pdarray):
        a = a.to_ndarray()
    if dtype is not None:
        # straight to the dtype, as np.array(a, dtype) does: a list of big
        # Python ints must not pass through float64 on the way
        nd = np.asarray(a, dtype=resolve_dtype(dtype))
    else:
        nd = _default_dtype(np.asarray(a))
    if nd.ndim != 1:
        if nd.ndim == 0:
            raise TypeError("ak.array needs a sequence, not a scalar")
        raise ValueError(f"pdarrays are one-dimensional; got shape {nd.shape}")
    resolve_dtype(nd.dtype)  # TypeError for strings, objects, complex, ...
    return np.ascontiguousarray(nd, dtype=nd.dtype.newbyteorder("<"))


def array(a, dtype=None):
    """A pdarray with the contents of a NumPy array, list or pdarray."""
    nd = _as_ndarray(a, dtype)
    vm = client.memory_path(nd.ctypes.data, nd.nbytes)
    if vm is not None:
        res, _ = client.generic_msg("array", {"dtype": dtype_name(nd.dtype), "size": nd.size,
                                              "vm": vm})
        if res.get("vm", True):
            return create_pdarray(res)
    res, _ = client.generic_msg("array", {"dtype": dtype_name(nd.dtype), "size": nd.size},
                                frames=client.split_frames(memoryview(nd).cast("B")))
    return create_pdarray(res)


def full(size, fill_value, dtype=None):
    size = _size(size)
    if dtype is None:
        dt = scalar_dtype(fill_value)
        value = fill_value
    else:
        # np.full's own conversion of the value to the dtype (an unsafe
        # copyto), so the result is exact: 2**64 - 1 stays itself as
        # uint64, 2**64 is a float64, 1.9 is 1 as int64
        dt = resolve_dtype(dtype)
        t = np.empty(1, dtype=dt)
        with np.errstate(all="ignore"):
            np.copyto(t, fill_value, casting="unsafe")
        value = t[0]
    res, _ = client.generic_msg("full", {"dtype": dtype_name(dt), "size": size,
                                         "value": encode_scalar(value, dt)})
    return create_pdarray(res)


def zeros(size, dtype=float64):
    return full(size, 0, dtype)


def ones(size, dtype=float64):
    return full(size, 1, dtype)


def zeros_like(pda):
    return zeros(pda.size, pda.dtype)


def ones_like(pda):
    return ones(pda.size, pda.dtype)


def full_like(pda, fill_value):
    return full(pda.size, fill_value, pda.dtype)


def arange(*args, dtype=int64, **kwargs):
    """arange(stop), arange(start, stop[, step]); integers, as numpy.arange.
    Arkouda's keyword `stride` is accepted for step."""
    if "stride" in kwargs:
        kwargs["step"] = kwargs.pop("stride")
    start, step = 0, 1
    if len(args) == 1:
        stop = args[0]
    elif len(args) == 2:
        start, stop = args
    elif len(args) == 3:
        start, stop, step = args
    elif not args and "stop" in kwargs:
        stop = kwargs.pop("stop")
    else:
        raise TypeError("arange() takes 1 to 3 positional arguments")
    start = kwargs.pop("start", start)
    step = kwargs.pop("step", step)
    if kwargs:
        raise TypeError(f"arange() got unexpected keyword arguments {sorted(kwargs)}")
    for v in (start, stop, step):
        if isinstance(v, (float, np.floating)):
            raise TypeError("ak.arange takes integers; use ak.linspace for floats")
    if resolve_dtype(dtype) == bool_ and len(range(int(start), int(stop), int(step))) > 2:
        raise TypeError("arange() is only supported for booleans when the result has at "
                        "most length 2 (as NumPy)")
    res, _ = client.generic_msg("arange", {"start": int(start), "stop": int(stop),
                                           "step": int(step),
                                           "dtype": dtype_name(dtype)})
    return create_pdarray(res)


def linspace(start, stop, num=50, endpoint=True, length=None):
    """num evenly spaced float64 values over [start, stop], as numpy.linspace
    (Arkouda calls num `length`: both are accepted)."""
    if length is not None:
        num = length
    res, _ = client.generic_msg("linspace", {"start": float(start), "stop": float(stop),
                                             "num": _size(num), "endpoint": bool(endpoint)})
    return create_pdarray(res)


def _seed(seed):
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    return int(seed) & (2**63 - 1)


def randint(low, high, size=1, dtype=int64, seed=None):
    """Random integers in [low, high) (float64: reals; bool: True/False)."""
    size = _size(size)
    dt = resolve_dtype(dtype)
    if dt in (int64, uint64) and (isinstance(low, float) or isinstance(high, float)):
        low, high = int(low), int(high)
    if dt != bool_ and size > 0 and not low < high:
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    if dt == uint64 and low < 0:
        raise ValueError("randint: low must be >= 0 for uint64")
    extra = {}
    top = {int64: 2**63, uint64: 2**64}.get(dt)
    if top is not None and int(low) < top and int(high) == top:
        # NumPy allows high one past the largest value; the wire cannot
        # carry it, so send the largest value and say it is included
        high, extra = top - 1, {"closed": True}
    res, _ = client.generic_msg("randint", {
        "low": encode_scalar(low, float64 if dt == float64 else None),
        "high": encode_scalar(high, float64 if dt == float64 else None),
        "size": size, "dtype": dtype_name(dt), "seed": _seed(seed), **extra})
    return create_pdarray(res)


def uniform(size, low=0.0, high=1.0, seed=None):
    """Random float64 in [low, high)."""
    res, _ = client.generic_msg("uniform", {"low": float(low), "high": float(high),
                                            "size": _size(size), "seed": _seed(seed)})
    return create_pdarray(res)


def standard_normal(size, seed=None):
    """Random float64 from the standard normal distribution."""
    res, _ = client.generic_msg("standard_normal", {"size": _size(size),
                                                    "seed": _seed(seed)})
    return create_pdarray(res)
