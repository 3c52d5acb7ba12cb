"""numeric.py — NumPy/Arkouda-style functions on pdarrays: abs, cast,
reductions (sum ... std, is_sorted), scans, where and concatenate. The
element-wise machinery and the methods live in ops.py."""
import builtins

import numpy as np

from . import client
from .dtypes import dtype_name
from .ops import _new, as_scalar, is_pdarray, operand_args, pdarray_dtype, proto, wire_scalar

__all__ = ["abs", "all", "any", "argmax", "argmin", "cast", "concatenate", "cumprod",
           "cumsum", "is_sorted", "max", "mean", "min", "prod", "std", "sum", "var", "where"]


def _need(pda, fn):
    if not is_pdarray(pda):
        raise TypeError(f"ak.{fn} needs a pdarray, not {type(pda).__name__}")
    return pda


def abs(pda):  # noqa: A001 — Arkouda's name
    """Element-wise absolute value (the dtype is kept, as NumPy)."""
    return builtins.abs(_need(pda, "abs"))


def cast(pda, dt):
    """pda.astype(dt)."""
    return _need(pda, "cast").astype(dt)


def sum(pda):  # noqa: A001
    return _need(pda, "sum").sum()


def prod(pda):
    return _need(pda, "prod").prod()


def min(pda):  # noqa: A001
    return _need(pda, "min").min()


def max(pda):  # noqa: A001
    return _need(pda, "max").max()


def argmin(pda):
    return _need(pda, "argmin").argmin()


def argmax(pda):
    return _need(pda, "argmax").argmax()


def any(pda):  # noqa: A001
    return _need(pda, "any").any()


def all(pda):  # noqa: A001
    return _need(pda, "all").all()


def mean(pda):
    return _need(pda, "mean").mean()


def var(pda, ddof=0):
    return _need(pda, "var").var(ddof=ddof)


def std(pda, ddof=0):
    return _need(pda, "std").std(ddof=ddof)


def is_sorted(pda):
    """True if pda[i] <= pda[i + 1] for every i."""
    return _need(pda, "is_sorted").is_sorted()


def cumsum(pda):
    return _need(pda, "cumsum").cumsum()


def cumprod(pda):
    return _need(pda, "cumprod").cumprod()


def where(condition, A, B):
    """Element-wise A where condition is true, else B, as numpy.where: A and
    B are pdarrays of condition's size or scalars; the dtype is NumPy's."""
    _need(condition, "where")
    vals = []
    for v in (A, B):
        if is_pdarray(v):
            if v.size != condition.size:
                raise ValueError(f"where: the condition has {condition.size} elements but "
                                 f"an operand has {v.size}")
            vals.append(v)
        else:
            s = as_scalar(v)
            if s is None:
                raise TypeError(f"where: operands must be pdarrays or scalars, not "
                                f"{type(v).__name__}")
            wire_scalar(s)  # OverflowError beyond uint64
            vals.append(s)
    rt = pdarray_dtype(np.where(np.ones(1, np.bool_), proto(vals[0]), proto(vals[1])).dtype)
    args = {"cond": condition.name, "rt": dtype_name(rt)}
    operand_args(args, "a", vals[0])
    operand_args(args, "b", vals[1])
    res, _ = client.generic_msg("where", args)
    return _new(res)


def concatenate(arrays, ordered=True):
    """One pdarray holding the given pdarrays one after the other; the dtype
    is numpy.concatenate's. (`ordered` is Arkouda's: order is always kept.)"""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    for a in arrays:
        if not is_pdarray(a):
            raise TypeError(f"concatenate takes pdarrays, not {type(a).__name__}")
    rt = pdarray_dtype(np.concatenate([np.zeros(0, a.dtype) for a in arrays]).dtype)
    res, _ = client.generic_msg("concatenate", {"arrays": [a.name for a in arrays],
                                                "rt": dtype_name(rt)})
    return _new(res)


# ---- element-wise math (the server's efunc command) ------------------------------------

# NumPy's names; the result is float64 (bool for the predicates; sign and
# square keep the dtype, bool square gives int64).
EFUNCS = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
          "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
          "arcsinh", "arccosh", "arctanh", "floor", "ceil", "trunc", "rint",
          "isnan", "isinf", "isfinite", "logical_not", "sign", "square"]


def _efunc(name):
    def fn(pda):
        _need(pda, name)
        res, _ = client.generic_msg("efunc", {"op": name, "array": pda.name})
        return _new(res)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Element-wise numpy.{name} of a pdarray."
    return fn


for _name in EFUNCS:
    globals()[_name] = _efunc(_name)
__all__ += EFUNCS + ["round", "power", "count_nonzero", "flatnonzero", "nonzero"]


def round(pda, decimals=0):  # noqa: A001 — NumPy's and Arkouda's name
    """numpy.round: halves to even, at `decimals` digits (negative: left of
    the point). Integer arrays are returned unchanged for decimals >= 0."""
    _need(pda, "round")
    if isinstance(decimals, (builtins.bool, np.bool_)) or not isinstance(
            decimals, (builtins.int, np.integer)):
        raise TypeError(f"decimals must be an integer, not {type(decimals).__name__}")
    decimals = builtins.int(decimals)
    if pda.dtype != np.float64:
        if decimals >= 0:
            return pda[:]
        raise NotImplementedError("round of an integer array to decimals < 0")
    if decimals == 0:
        return rint(pda)  # noqa: F821 — made by the loop above
    # NumPy's own recipe: scale, round to even, scale back
    if decimals > 0:
        f = 10.0 ** decimals
        return rint(pda * f) / f  # noqa: F821
    f = 10.0 ** -decimals
    return rint(pda / f) * f  # noqa: F821


def power(x1, x2):
    """numpy.power: x1 ** x2 (one of them a pdarray)."""
    if not (is_pdarray(x1) or is_pdarray(x2)):
        raise TypeError("ak.power needs a pdarray operand")
    return x1 ** x2


def count_nonzero(pda):
    """How many elements are not zero (not False)."""
    _need(pda, "count_nonzero")
    return builtins.int((pda != 0).sum()) if pda.dtype != np.bool_ else builtins.int(pda.sum())


def flatnonzero(pda):
    """The int64 positions of the elements that are not zero (not False),
    in order, as numpy.flatnonzero."""
    _need(pda, "flatnonzero")
    mask = pda if pda.dtype == np.bool_ else pda != 0
    res, _ = client.generic_msg("flatnonzero", {"mask": mask.name})
    return _new(res)


def nonzero(pda):
    """A one-element tuple: the positions of the elements that are not zero,
    as numpy.nonzero of a one-dimensional array."""
    return (flatnonzero(pda),)
