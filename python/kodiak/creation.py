# SPDX-License-Identifier: Apache-2.0
"""creation.py — making pdarrays: from NumPy or lists, constants, ranges and
random numbers (counter-based on the server: the same seed gives the same
array whatever the number of ranks)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from . import client
from .dtypes import bool_, dtype_name, encode_scalar, float64, int64, resolve_dtype, \
    scalar_dtype, uint64
from .pdarrayclass import create_pdarray, pdarray

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

__all__ = ["arange", "array", "full", "full_like", "linspace", "ones", "ones_like", "randint",
           "standard_normal", "uniform", "zeros", "zeros_like"]


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


def array(a: ArrayLike | pdarray, dtype: Optional[DTypeLike] = None) -> pdarray:
    """A pdarray with the contents of a NumPy array, list, tuple or pdarray.

    As numpy.array: without `dtype`, NumPy's dtype for the data, widened to
    the pdarray dtype of the same kind (int8 -> int64, float32 -> float64);
    with `dtype`, the values go straight to it, so Python ints are exact
    for every int64/uint64 value.

    Parameters
    ----------
    a : array_like or pdarray
        One-dimensional data.
    dtype : dtype-like, optional
        int64, uint64, float64 or bool (or a spelling of one, e.g. 'int64').

    Returns
    -------
    pdarray
        A new array holding a copy of the data.

    Raises
    ------
    TypeError
        `a` is a scalar, or its dtype (strings, complex, ...) or `dtype` is
        not one a pdarray can hold.
    ValueError
        `a` is not one-dimensional.

    Examples
    --------
    >>> ak.array([1, 2, 3])
    array([1, 2, 3])
    >>> ak.array([2**64 - 1, 1], dtype=ak.uint64)
    array([18446744073709551615,                    1], dtype=uint64)
    >>> ak.array(np.array([0.5, 1.5], dtype=np.float32)).dtype
    dtype('float64')
    """
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


def full(size: int, fill_value: Any, dtype: Optional[DTypeLike] = None) -> pdarray:
    """A pdarray of `size` elements all equal to `fill_value` (numpy.full).

    Parameters
    ----------
    size : int
        Number of elements.
    fill_value : scalar
        The value; converted to `dtype` as numpy.full converts it (exactly
        for every int64/uint64 value).
    dtype : dtype-like, optional
        The dtype; default: the one NumPy gives `fill_value` on its own.

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `size` is not an integer, or the dtype is not one a pdarray holds.
    ValueError
        `size` is negative.
    OverflowError
        A Python int `fill_value` beyond uint64 with no `dtype`.

    Examples
    --------
    >>> ak.full(3, 7)
    array([7, 7, 7])
    >>> ak.full(2, 1.9, dtype=ak.int64)
    array([1, 1])
    """
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


def zeros(size: int, dtype: DTypeLike = float64) -> pdarray:
    """A pdarray of `size` zeros (numpy.zeros: float64 by default).

    Parameters
    ----------
    size : int
        Number of elements.
    dtype : dtype-like, optional
        int64, uint64, float64 (default) or bool.

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `size` is not an integer, or the dtype is not one a pdarray holds.
    ValueError
        `size` is negative.

    Examples
    --------
    >>> ak.zeros(3)
    array([0., 0., 0.])
    >>> ak.zeros(2, dtype=ak.bool)
    array([False, False])
    """
    return full(size, 0, dtype)


def ones(size: int, dtype: DTypeLike = float64) -> pdarray:
    """A pdarray of `size` ones (numpy.ones: float64 by default).

    Parameters
    ----------
    size : int
        Number of elements.
    dtype : dtype-like, optional
        int64, uint64, float64 (default) or bool.

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `size` is not an integer, or the dtype is not one a pdarray holds.
    ValueError
        `size` is negative.

    Examples
    --------
    >>> ak.ones(3, dtype=ak.int64)
    array([1, 1, 1])
    """
    return full(size, 1, dtype)


def zeros_like(pda: pdarray) -> pdarray:
    """Zeros of the size and dtype of `pda` (numpy.zeros_like).

    Parameters
    ----------
    pda : pdarray
        The array whose size and dtype are taken.

    Returns
    -------
    pdarray

    Examples
    --------
    >>> ak.zeros_like(ak.array([5, 6]))
    array([0, 0])
    """
    return zeros(pda.size, pda.dtype)


def ones_like(pda: pdarray) -> pdarray:
    """Ones of the size and dtype of `pda` (numpy.ones_like).

    Parameters
    ----------
    pda : pdarray
        The array whose size and dtype are taken.

    Returns
    -------
    pdarray

    Examples
    --------
    >>> ak.ones_like(ak.array([0.5, 2.5]))
    array([1., 1.])
    """
    return ones(pda.size, pda.dtype)


def full_like(pda: pdarray, fill_value: Any) -> pdarray:
    """`fill_value` at every element, with the size and dtype of `pda`
    (numpy.full_like).

    Parameters
    ----------
    pda : pdarray
        The array whose size and dtype are taken.
    fill_value : scalar
        The value, converted to pda's dtype as numpy.full converts it.

    Returns
    -------
    pdarray

    Examples
    --------
    >>> ak.full_like(ak.array([1, 2, 3]), 2.7)
    array([2, 2, 2])
    """
    return full(pda.size, fill_value, pda.dtype)


def arange(*args: int, dtype: DTypeLike = int64, **kwargs: int) -> pdarray:
    """Evenly spaced integers: arange(stop), arange(start, stop[, step]),
    as numpy.arange.

    Parameters
    ----------
    *args : int
        stop; or start, stop; or start, stop, step (also as keywords
        `start`, `stop`, `step`; Arkouda's keyword `stride` means step).
    dtype : dtype-like, optional
        int64 (default), uint64, float64 or bool.
    **kwargs : int
        start, stop, step or stride by keyword.

    Returns
    -------
    pdarray
        start, start + step, ... up to but not including stop.

    Raises
    ------
    TypeError
        Wrong number of arguments, an unknown keyword, a float bound (use
        linspace), or a bool dtype with more than two elements (as NumPy).

    Examples
    --------
    >>> ak.arange(5)
    array([0, 1, 2, 3, 4])
    >>> ak.arange(10, 0, -3)
    array([10,  7,  4,  1])
    >>> ak.arange(0, 6, stride=2)
    array([0, 2, 4])
    """
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


def linspace(start: float, stop: float, num: int = 50, endpoint: bool = True,
             length: Optional[int] = None) -> pdarray:
    """`num` evenly spaced float64 values over [start, stop], as
    numpy.linspace.

    Parameters
    ----------
    start, stop : float
        The first value and the last (or, without endpoint, the bound).
    num : int, optional
        Number of values (default 50).
    endpoint : bool, optional
        Include `stop` (default True).
    length : int, optional
        Arkouda's name for `num`; wins when given.

    Returns
    -------
    pdarray
        float64.

    Raises
    ------
    TypeError
        `num` is not an integer.
    ValueError
        `num` is negative.

    Examples
    --------
    >>> ak.linspace(0, 1, 5)
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    >>> ak.linspace(0, 1, 4, endpoint=False)
    array([0.  , 0.25, 0.5 , 0.75])
    """
    if length is not None:
        num = length
    res, _ = client.generic_msg("linspace", {"start": float(start), "stop": float(stop),
                                             "num": _size(num), "endpoint": bool(endpoint)})
    return create_pdarray(res)


def _seed(seed):
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    return int(seed) & (2**63 - 1)


def randint(low: int | float, high: int | float, size: int = 1, dtype: DTypeLike = int64,
            seed: Optional[int] = None) -> pdarray:
    """Random integers in [low, high), as Arkouda's randint (float64: reals
    in [low, high); bool: True/False whatever the bounds).

    The server's generator is counter-based: the same seed gives the same
    array whatever the number of ranks.

    Parameters
    ----------
    low, high : int or float
        The bounds; `high` may be one past the dtype's largest value.
    size : int, optional
        Number of values (default 1).
    dtype : dtype-like, optional
        int64 (default), uint64, float64 or bool.
    seed : int, optional
        Seed; default: a fresh random one.

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `size` is not an integer, or the dtype is not one a pdarray holds.
    ValueError
        `size` is negative, low >= high (not for bool), or low < 0 for
        uint64.

    Examples
    --------
    >>> r = ak.randint(0, 10, 1000, seed=1)
    >>> bool((r >= 0).all() and (r < 10).all()), r.dtype
    (True, dtype('int64'))
    >>> bool((ak.randint(0, 10, 5, seed=7) == ak.randint(0, 10, 5, seed=7)).all())
    True
    """
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


def uniform(size: int, low: float = 0.0, high: float = 1.0,
            seed: Optional[int] = None) -> pdarray:
    """Random float64 values drawn uniformly from [low, high), as Arkouda's
    uniform.

    Parameters
    ----------
    size : int
        Number of values.
    low, high : float, optional
        The bounds (default 0 and 1).
    seed : int, optional
        Seed; default: a fresh random one.

    Returns
    -------
    pdarray
        float64.

    Raises
    ------
    TypeError
        `size` is not an integer.
    ValueError
        `size` is negative.

    Examples
    --------
    >>> u = ak.uniform(1000, -1.0, 1.0, seed=3)
    >>> bool((u >= -1.0).all() and (u < 1.0).all())
    True
    """
    res, _ = client.generic_msg("uniform", {"low": float(low), "high": float(high),
                                            "size": _size(size), "seed": _seed(seed)})
    return create_pdarray(res)


def standard_normal(size: int, seed: Optional[int] = None) -> pdarray:
    """Random float64 values from the standard normal distribution (mean 0,
    standard deviation 1), as Arkouda's standard_normal.

    Parameters
    ----------
    size : int
        Number of values.
    seed : int, optional
        Seed; default: a fresh random one.

    Returns
    -------
    pdarray
        float64.

    Raises
    ------
    TypeError
        `size` is not an integer.
    ValueError
        `size` is negative.

    Examples
    --------
    >>> n = ak.standard_normal(100000, seed=5)
    >>> bool(abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05)
    True
    """
    res, _ = client.generic_msg("standard_normal", {"size": _size(size),
                                                    "seed": _seed(seed)})
    return create_pdarray(res)
