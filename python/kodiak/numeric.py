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
