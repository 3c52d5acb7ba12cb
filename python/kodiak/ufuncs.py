# SPDX-License-Identifier: Apache-2.0
"""ufuncs.py — more of NumPy's and Arkouda's functions on pdarrays: the
binary functions (arctan2, hypot, minimum, maximum, fmin, fmax), Arkouda's
bit functions (popcount, parity, clz, ctz, rotl, rotr), comparisons of
whole arrays (isclose, allclose, array_equal), logspace and geomspace,
hstack, vstack and dot, the constants nan, inf, pi and e, and the dtype
helpers dtype, result_type and can_cast.

The binary and bit functions are server commands (binop and efunc in
kd_cmd_ops.c / kd_cmd_math.c); the result dtype is NumPy's, found as ops.py
finds it (the function run on one-element NumPy arrays). The rest are exact
compositions of existing commands: each says which."""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Iterable, Optional

import numpy as np

from . import client, pdarrayclass
from .dtypes import bool_, dtype_name, float64, int64, uint64
from .fpe import errstate
from .numeric import concatenate, isfinite, isnan, ufunc_call
from .ops import (_numpy_says, as_scalar, check_sizes, is_pdarray, operand_args, pdarray_dtype,
                  proto, wire_scalar)

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .pdarrayclass import pdarray

__all__ = ["allclose", "arctan2", "array_equal", "can_cast", "clz", "ctz", "dot", "e",
           "fmax", "fmin", "geomspace", "hstack", "hypot", "inf", "isclose", "logspace",
           "maximum", "minimum", "nan", "parity", "pi", "popcount", "result_type", "rotl",
           "rotr", "vstack"]

# NumPy's constants, as Arkouda re-exports them
nan = np.nan
inf = np.inf
pi = np.pi
e = np.e
# NumPy's dtype class: ak.dtype("int64") == ak.int64 (kodiak/__init__.py
# exports it; not in __all__, being NumPy's own class)
dtype = np.dtype


def _operand(x, fn):
    """x as a pdarray or a scalar NumPy promotes like x; TypeError otherwise."""
    if is_pdarray(x):
        return x
    s = as_scalar(x)
    if s is None:
        raise TypeError(f"ak.{fn}: operands must be pdarrays or numbers, not {type(x).__name__}")
    wire_scalar(s)  # OverflowError beyond uint64
    return s


def _binfunc(x1, x2, name, npfn, out, where):
    """name(x1, x2) by the server's binop, NumPy's result dtype."""
    x1, x2 = _operand(x1, name), _operand(x2, name)
    if not (is_pdarray(x1) or is_pdarray(x2)):
        raise TypeError(f"ak.{name} needs at least one pdarray operand (numpy.{name} "
                        f"does scalars)")
    check_sizes(x1, x2)

    def compute(a, b):
        rt = pdarray_dtype(_numpy_says(npfn, proto(a), proto(b)).dtype)
        args = {"op": name, "ct": dtype_name(rt), "rt": dtype_name(rt)}
        operand_args(args, "a", a)
        operand_args(args, "b", b)
        res, _ = client.generic_msg("binop", args)
        return pdarrayclass.create_pdarray(res)
    return ufunc_call(name, compute, [x1, x2], out, where)


_BINARY_DOC = {
    "arctan2": ("Element-wise arc tangent of x1/x2 in the right quadrant, as "
                "numpy.arctan2", "float64", "ak.arctan2(ak.array([1.0, -1.0]), "
                "ak.array([-1.0, -1.0]))", "array([ 2.35619449, -2.35619449])"),
    "hypot": ("Element-wise sqrt(x1**2 + x2**2) without overflow in the squares, as "
              "numpy.hypot", "float64", "ak.hypot(ak.array([3.0, 5.0]), 4)",
              "array([5.        , 6.40312424])"),
    "minimum": ("Element-wise smaller of x1 and x2, as numpy.minimum: a NaN on either "
                "side gives NaN", "NumPy's promotion of the two dtypes",
                "ak.minimum(ak.array([1.0, np.nan, 3.0]), 2)", "array([ 1., nan,  2.])"),
    "maximum": ("Element-wise larger of x1 and x2, as numpy.maximum: a NaN on either "
                "side gives NaN", "NumPy's promotion of the two dtypes",
                "ak.maximum(ak.array([1, 5, 3]), ak.array([4, 2, 3]))", "array([4, 5, 3])"),
    "fmin": ("Element-wise smaller of x1 and x2, as numpy.fmin: a NaN beside a number "
             "gives the number", "NumPy's promotion of the two dtypes",
             "ak.fmin(ak.array([1.0, np.nan, 3.0]), 2)", "array([1., 2., 2.])"),
    "fmax": ("Element-wise larger of x1 and x2, as numpy.fmax: a NaN beside a number "
             "gives the number", "NumPy's promotion of the two dtypes",
             "ak.fmax(ak.array([np.nan, 1.0]), ak.array([0.5, np.nan]))",
             "array([0.5, 1. ])"),
}


def _make_binary(name):
    npfn = getattr(np, name)

    def fn(x1: pdarray | Any, x2: pdarray | Any, /, out: Optional[pdarray] = None, *,
           where: pdarray | bool = True) -> pdarray:
        return _binfunc(x1, x2, name, npfn, out, where)
    first, rt, call, shown = _BINARY_DOC[name]
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"""{first}.

    Parameters
    ----------
    x1, x2 : pdarray or scalar
        At least one a pdarray; two pdarrays must have the same size.
    out : pdarray, optional
        Where to put the result (NumPy's same_kind casting); it is returned.
    where : pdarray of bool or bool, optional
        Compute only where True; elsewhere the result keeps out's value, or
        without out x1's (Arkouda's rule: "the original value").

    Returns
    -------
    pdarray
        {rt}, as NumPy (bool inputs of arctan2/hypot: float64).

    Raises
    ------
    TypeError
        No pdarray operand, or an operand that is not a number.
    ValueError
        Two pdarrays of different sizes.

    Examples
    --------
    >>> {call}
    {shown}
    """
    return fn


for _n in _BINARY_DOC:
    globals()[_n] = _make_binary(_n)


# ---- Arkouda's bit functions -------------------------------------------------------------

def _need_int(pda, fn):
    if not is_pdarray(pda):
        raise TypeError(f"ak.{fn} needs a pdarray, not {type(pda).__name__}")
    if pda.dtype not in (int64, uint64):
        raise TypeError(f"ak.{fn} needs an int64 or uint64 pdarray, not {pda.dtype}")
    return pda


_BITS_DOC = {
    "popcount": ("The number of bits set (1) in each element",
                 "ak.popcount(ak.array([0, 7, -1]))", "array([ 0,  3, 64])"),
    "parity": ("1 where an element has an odd number of bits set, else 0",
               "ak.parity(ak.array([0, 7, 3]))", "array([0, 1, 0])"),
    "clz": ("The number of 0 bits above the highest 1 bit of each element (64 for 0)",
            "ak.clz(ak.array([1, 0, -1]))", "array([63, 64,  0])"),
    "ctz": ("The number of 0 bits below the lowest 1 bit of each element (64 for 0)",
            "ak.ctz(ak.array([8, 0, 1]))", "array([ 3, 64,  0])"),
}


def _make_bits(name):
    def fn(pda: pdarray) -> pdarray:
        _need_int(pda, name)
        res, _ = client.generic_msg("efunc", {"op": name, "array": pda.name})
        return pdarrayclass.create_pdarray(res)
    first, call, shown = _BITS_DOC[name]
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"""{first}, as Arkouda's {name} (on the 64 bits of the two's
    complement for int64).

    Parameters
    ----------
    pda : pdarray
        int64 or uint64.

    Returns
    -------
    pdarray
        Of pda's dtype.

    Raises
    ------
    TypeError
        Not a pdarray, or not int64/uint64.

    Examples
    --------
    >>> {call}
    {shown}
    """
    return fn


for _n in _BITS_DOC:
    globals()[_n] = _make_bits(_n)


def _rotate(x, rot, name):
    if is_pdarray(x):
        _need_int(x, name)
        dt = x.dtype
    else:
        s = as_scalar(x)
        if s is None or isinstance(s, (builtins.bool, np.bool_, builtins.float, np.floating)):
            raise TypeError(f"ak.{name}: x must be an int64/uint64 pdarray or an integer, "
                            f"not {type(x).__name__}")
        dt = pdarray_dtype(np.asarray(s).dtype) if isinstance(s, np.generic) else \
            (int64 if -2**63 <= s < 2**63 else uint64)
        x = s
    if is_pdarray(rot):
        _need_int(rot, name)
    else:
        r = as_scalar(rot)
        if r is None or isinstance(r, (builtins.bool, np.bool_, builtins.float, np.floating)):
            raise TypeError(f"ak.{name}: rot must be an integer or an integer pdarray, not "
                            f"{type(rot).__name__}")
        rot = r
    if not (is_pdarray(x) or is_pdarray(rot)):
        raise TypeError(f"ak.{name} needs a pdarray for x or rot")
    check_sizes(x, rot)
    args = {"op": name, "ct": dtype_name(dt), "rt": dtype_name(dt)}
    operand_args(args, "a", x)
    if is_pdarray(rot):
        args["b"] = rot.name
    else:  # the count's bits, as the dtype it is used in (mod 64 anyway)
        args["sb"] = {"dtype": "int64", "value": str(builtins.int(rot) % 64)}
    res, _ = client.generic_msg("binop", args)
    return pdarrayclass.create_pdarray(res)


def rotl(x: pdarray | int, rot: pdarray | int) -> pdarray:
    """Rotate the 64 bits of each element left by rot (taken modulo 64), as
    Arkouda's rotl.

    Parameters
    ----------
    x : pdarray or int
        int64 or uint64 values.
    rot : pdarray or int
        Rotation counts (integers; the same size as x if a pdarray).

    Returns
    -------
    pdarray
        Of x's dtype.

    Raises
    ------
    TypeError
        Float or bool operands, or neither is a pdarray.
    ValueError
        Two pdarrays of different sizes.

    Examples
    --------
    >>> ak.rotl(ak.array([1, -2**63], dtype=ak.int64), 1)
    array([2, 1])
    """
    return _rotate(x, rot, "rotl")


def rotr(x: pdarray | int, rot: pdarray | int) -> pdarray:
    """Rotate the 64 bits of each element right by rot (taken modulo 64), as
    Arkouda's rotr.

    Parameters
    ----------
    x : pdarray or int
        int64 or uint64 values.
    rot : pdarray or int
        Rotation counts (integers; the same size as x if a pdarray).

    Returns
    -------
    pdarray
        Of x's dtype.

    Raises
    ------
    TypeError
        Float or bool operands, or neither is a pdarray.
    ValueError
        Two pdarrays of different sizes.

    Examples
    --------
    >>> ak.rotr(ak.array([1, 4], dtype=ak.uint64), 1)
    array([9223372036854775808,                   2], dtype=uint64)
    """
    return _rotate(x, rot, "rotr")


# ---- whole-array comparisons (compositions of element-wise commands) -------------------

def isclose(a: pdarray | Any, b: pdarray | Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> pdarray:
    """Element-wise |a - b| <= atol + rtol * |b|, as numpy.isclose: infinities
    are close only to themselves, NaN to nothing (to NaN with equal_nan).

    Composed of element-wise commands, as NumPy computes it (b in float64).

    Parameters
    ----------
    a, b : pdarray or scalar
        At least one a pdarray; two pdarrays must have the same size.
    rtol : float, optional
        Relative tolerance (NumPy's default 1e-05).
    atol : float, optional
        Absolute tolerance (NumPy's default 1e-08).
    equal_nan : bool, optional
        Whether NaN is close to NaN.

    Returns
    -------
    pdarray
        bool.

    Raises
    ------
    TypeError
        No pdarray operand, or an operand that is not a number.
    ValueError
        Two pdarrays of different sizes.

    Examples
    --------
    >>> a = ak.array([1.0, 1.1, np.nan, np.inf])
    >>> ak.isclose(a, ak.array([1.0 + 1e-9, 1.0, np.nan, np.inf]))
    array([ True, False, False,  True])
    """
    a, b = _operand(a, "isclose"), _operand(b, "isclose")
    if not (is_pdarray(a) or is_pdarray(b)):
        raise TypeError("ak.isclose needs at least one pdarray operand")
    check_sizes(a, b)
    b = b.astype(float64) if is_pdarray(b) else np.float64(b)

    def each(f, npf, x):
        return f(x) if is_pdarray(x) else npf(x)
    with errstate(all="ignore"):
        fin = each(isfinite, np.isfinite, a) & each(isfinite, np.isfinite, b)
        close = (abs(a - b) <= atol + rtol * abs(b)) & fin
        res = close | ((a == b) & ~fin)
        if equal_nan:
            res = res | (each(isnan, np.isnan, a) & each(isnan, np.isnan, b))
    return res


def allclose(a: pdarray | Any, b: pdarray | Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> builtins.bool:
    """Whether every element of isclose(a, b, ...) is True, as numpy.allclose.

    Parameters
    ----------
    a, b : pdarray or scalar
    rtol : float, optional
        Relative tolerance.
    atol : float, optional
        Absolute tolerance.
    equal_nan : bool, optional
        Whether NaN is close to NaN.

    Returns
    -------
    bool

    Raises
    ------
    TypeError, ValueError
        As isclose.

    Examples
    --------
    >>> ak.allclose(ak.array([1e10, 1e-8]), ak.array([1.00001e10, 1e-9]))
    True
    """
    return builtins.bool(isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan).all())


def array_equal(a1: pdarray, a2: pdarray, equal_nan: bool = False) -> builtins.bool:
    """Whether two pdarrays have the same size and elements, as
    numpy.array_equal (NaN equals NaN only with equal_nan).

    Parameters
    ----------
    a1, a2 : pdarray
    equal_nan : bool, optional
        Whether NaN in the same places count as equal.

    Returns
    -------
    bool

    Raises
    ------
    TypeError
        An argument is not a pdarray.

    Examples
    --------
    >>> ak.array_equal(ak.array([1.0, np.nan]), ak.array([1.0, np.nan]), equal_nan=True)
    True
    >>> ak.array_equal(ak.array([1, 2]), ak.array([1, 2, 3]))
    False
    """
    for a in (a1, a2):
        if not is_pdarray(a):
            raise TypeError(f"ak.array_equal compares pdarrays, not {type(a).__name__}")
    if a1.size != a2.size:
        return False
    eq = a1 == a2
    if equal_nan:
        eq = eq | (isnan(a1) & isnan(a2))
    return builtins.bool(eq.all())


# ---- sequences -------------------------------------------------------------------------

def _real(x, what):
    if is_pdarray(x) or as_scalar(x) is None:
        raise TypeError(f"{what} must be a number (pdarrays are one-dimensional: numpy's "
                        f"array start/stop would make two dimensions), not {type(x).__name__}")
    return x


def logspace(start: float, stop: float, num: int = 50, endpoint: builtins.bool = True,
             base: float = 10.0, dtype: Optional[DTypeLike] = None) -> pdarray:
    """num numbers spaced evenly on a log scale, base**linspace(start, stop),
    as numpy.logspace (and with NumPy's rounding: ak.linspace, then power).

    Parameters
    ----------
    start, stop : float
        The exponents of the first and last value.
    num : int, optional
        How many values (default 50).
    endpoint : bool, optional
        Whether base**stop is the last value (default True).
    base : float, optional
        The base (default 10.0).
    dtype : dtype-like, optional
        The result's dtype (default float64; others: cast as astype).

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        start, stop or base is not a number.
    ValueError
        num < 0.

    Examples
    --------
    >>> ak.logspace(0, 3, 4)
    array([   1.,   10.,  100., 1000.])
    >>> ak.logspace(0, 3, 4, base=2.0)
    array([1., 2., 4., 8.])
    """
    from .creation import linspace
    _real(start, "start"), _real(stop, "stop"), _real(base, "base")
    y = linspace(start, stop, num, endpoint=endpoint)
    with errstate(all="ignore"):
        r = float(base) ** y if y.size else y
    return r if dtype is None else r.astype(dtype)


def geomspace(start: float, stop: float, num: int = 50, endpoint: builtins.bool = True,
              dtype: Optional[DTypeLike] = None) -> pdarray:
    """num numbers spaced evenly on a log scale from start to stop (a
    geometric progression), as numpy.geomspace: NumPy's recipe, logspace of
    the log10s with the end points set exactly and the sign put back.

    Parameters
    ----------
    start, stop : float
        The first and (with endpoint) last value; not zero.
    num : int, optional
        How many values (default 50).
    endpoint : bool, optional
        Whether stop is the last value (default True).
    dtype : dtype-like, optional
        The result's dtype (default float64).

    Returns
    -------
    pdarray

    Raises
    ------
    ValueError
        start or stop is zero ("Geometric sequence cannot include zero"), or num < 0.
    TypeError
        start or stop is not a number.

    Examples
    --------
    >>> ak.geomspace(1, 1000, 4)
    array([   1.,   10.,  100., 1000.])
    >>> ak.geomspace(-1, -1000, 4)
    array([   -1.,   -10.,  -100., -1000.])
    """
    _real(start, "start"), _real(stop, "stop")
    if start == 0 or stop == 0:
        raise ValueError("Geometric sequence cannot include zero")
    start, stop = np.float64(start), np.float64(stop)
    sign = 1.0
    if start < 0 and stop < 0:
        start, stop, sign = -start, -stop, -1.0
    with np.errstate(all="ignore"):
        ls, le = np.log10(start), np.log10(stop)
    r = logspace(float(ls), float(le), num, endpoint=endpoint)
    if r.size > 0:
        r[0] = start
        if r.size > 1 and endpoint:
            r[r.size - 1] = stop
    if sign < 0:
        r = -r
    return r if dtype is None else r.astype(dtype)


# ---- stacking and dot ---------------------------------------------------------------------

def hstack(tup: Iterable[pdarray]) -> pdarray:
    """The pdarrays one after the other, as numpy.hstack of one-dimensional
    arrays (which is concatenate).

    Parameters
    ----------
    tup : sequence of pdarray

    Returns
    -------
    pdarray
        Of NumPy's promoted dtype.

    Raises
    ------
    ValueError
        tup is empty.
    TypeError
        An element is not a pdarray.

    Examples
    --------
    >>> ak.hstack([ak.array([1, 2]), ak.array([3])])
    array([1, 2, 3])
    """
    return concatenate(list(tup))


def vstack(tup: Iterable[pdarray]) -> pdarray:
    """numpy.vstack of one-dimensional arrays, flattened row by row: a pdarray
    has one dimension, so the (k, n) result NumPy would make is returned as
    its k*n elements in row-major order, np.vstack(tup).ravel() (reshape the
    to_ndarray() to (k, n) to see the rows). As NumPy, every array must have
    the same size.

    Parameters
    ----------
    tup : sequence of pdarray
        k arrays of the same size n.

    Returns
    -------
    pdarray
        k*n elements, NumPy's promoted dtype.

    Raises
    ------
    ValueError
        tup is empty, or the sizes differ (NumPy's message).
    TypeError
        An element is not a pdarray.

    Examples
    --------
    >>> ak.vstack([ak.array([1, 2]), ak.array([3, 4])])
    array([1, 2, 3, 4])
    """
    arrays = list(tup)
    for a in arrays:
        if not is_pdarray(a):
            raise TypeError(f"vstack takes pdarrays, not {type(a).__name__}")
    for i, a in enumerate(arrays[1:], 1):
        if a.size != arrays[0].size:
            raise ValueError(f"all the input array dimensions except for the concatenation "
                             f"axis must match exactly, but along dimension 1, the array at "
                             f"index 0 has size {arrays[0].size} and the array at index {i} "
                             f"has size {a.size}")
    return concatenate(arrays)


def dot(pda1: pdarray | Any, pda2: pdarray | Any) -> pdarray | np.generic:
    """numpy.dot of one-dimensional arrays: the sum of the element-wise
    products (a NumPy scalar of NumPy's dtype; bool: whether any pair is
    True); with a scalar, the element-wise product.

    Parameters
    ----------
    pda1, pda2 : pdarray or scalar
        At least one a pdarray; two pdarrays must have the same size.

    Returns
    -------
    numpy scalar or pdarray

    Raises
    ------
    TypeError
        No pdarray operand.
    ValueError
        Two pdarrays of different sizes (NumPy's "not aligned" message).

    Examples
    --------
    >>> ak.dot(ak.array([1, 2, 3]), ak.array([4, 5, 6]))
    32
    >>> ak.dot(ak.array([1.5, 2.0]), 2)
    array([3., 4.])
    """
    if not (is_pdarray(pda1) or is_pdarray(pda2)):
        raise TypeError("ak.dot needs a pdarray operand")
    if not (is_pdarray(pda1) and is_pdarray(pda2)):
        return pda1 * pda2
    if pda1.size != pda2.size:
        raise ValueError(f"shapes ({pda1.size},) and ({pda2.size},) not aligned: {pda1.size} "
                         f"(dim 0) != {pda2.size} (dim 0)")
    rt = np.result_type(proto(pda1), proto(pda2))
    if rt == bool_:
        return np.bool_((pda1 & pda2).any())
    return (pda1 * pda2).sum().astype(rt)


# ---- dtype helpers -------------------------------------------------------------------------

def _as_dtype_arg(x):
    """A pdarray stands for an array of its dtype (no value-based casting)."""
    return np.empty(1, x.dtype) if is_pdarray(x) else x


def result_type(*arrays_and_dtypes: Any) -> np.dtype:
    """The dtype NumPy's promotion gives for these pdarrays, scalars and
    dtypes, as numpy.result_type (a pdarray counts as an array of its dtype).

    Parameters
    ----------
    *arrays_and_dtypes : pdarray, scalar or dtype-like

    Returns
    -------
    numpy.dtype

    Raises
    ------
    TypeError
        As numpy.result_type.

    Examples
    --------
    >>> ak.result_type(ak.array([1, 2]), 1.5)
    dtype('float64')
    >>> ak.result_type(ak.int64, ak.uint64)
    dtype('float64')
    """
    return np.result_type(*[_as_dtype_arg(x) for x in arrays_and_dtypes])


def can_cast(from_: Any, to: DTypeLike, casting: str = "safe") -> builtins.bool:
    """Whether a cast from a dtype (or a pdarray's dtype, or a scalar) to
    `to` is allowed under `casting`, as numpy.can_cast.

    Parameters
    ----------
    from_ : pdarray, dtype-like or scalar
    to : dtype-like
    casting : str, optional
        'no', 'equiv', 'safe' (default), 'same_kind' or 'unsafe'.

    Returns
    -------
    bool

    Raises
    ------
    TypeError, ValueError
        As numpy.can_cast.

    Examples
    --------
    >>> ak.can_cast(ak.array([1, 2]), ak.float64)
    True
    >>> ak.can_cast(ak.float64, ak.int64)
    False
    """
    return builtins.bool(np.can_cast(from_.dtype if is_pdarray(from_) else from_, to, casting))
