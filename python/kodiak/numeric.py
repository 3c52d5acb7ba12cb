# SPDX-License-Identifier: Apache-2.0
"""numeric.py — NumPy/Arkouda-style functions on pdarrays: abs, cast,
reductions (sum ... std, is_sorted), scans, where and concatenate. The
element-wise machinery and the methods live in ops.py."""
from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Iterable, Optional

import numpy as np

from . import client, pdarrayclass
from .dtypes import dtype_name
from .ops import as_scalar, is_pdarray, operand_args, pdarray_dtype, proto, wire_scalar

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .pdarrayclass import pdarray

__all__ = ["abs", "all", "any", "argmax", "argmin", "cast", "concatenate", "cumprod",
           "cumsum", "is_sorted", "max", "mean", "min", "prod", "std", "sum", "var", "where"]


def _need(pda, fn):
    if not is_pdarray(pda):
        raise TypeError(f"ak.{fn} needs a pdarray, not {type(pda).__name__}")
    return pda


def abs(pda: pdarray, /, out: Optional[pdarray] = None, *,  # noqa: A001 — Arkouda's name
        where: pdarray | builtins.bool = True) -> pdarray:
    """Element-wise absolute value, as numpy.abs (the dtype is kept).

    Parameters
    ----------
    pda : pdarray
    out : pdarray, optional
        Where to put the result (NumPy's same_kind casting); it is returned.
    where : pdarray of bool or bool, optional
        Compute only where True; elsewhere out's value, or pda's without out.

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.abs(ak.array([-1.5, 2.0]))
    array([1.5, 2. ])
    """
    from .derived import ColumnExpr  # a lazy column expression stays one
    if isinstance(pda, ColumnExpr):
        return builtins.abs(pda)
    return ufunc_call("absolute", builtins.abs, [_need(pda, "abs")], out, where)


def cast(pda: pdarray, dt: DTypeLike) -> pdarray:
    """A copy of `pda` cast to `dt`: pda.astype(dt), with NumPy's rules.

    Parameters
    ----------
    pda : pdarray
    dt : dtype-like
        int64, uint64, float64 or bool (or a spelling of one).

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or `dt` is not a dtype a pdarray holds.

    Examples
    --------
    >>> ak.cast(ak.array([1.7, -2.2]), ak.int64)
    array([ 1, -2])
    """
    return _need(pda, "cast").astype(dt)


def sum(pda: pdarray, axis: int | tuple | None = None,  # noqa: A001
        keepdims: bool = False) -> np.generic | pdarray:
    """Sum of the elements, as numpy.sum (see pdarray.sum).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy scalar

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.sum(ak.arange(5))
    10
    """
    return _need(pda, "sum").sum(axis=axis, keepdims=keepdims)


def prod(pda: pdarray, axis: int | tuple | None = None,
         keepdims: bool = False) -> np.generic | pdarray:
    """Product of the elements, as numpy.prod (see pdarray.prod).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy scalar

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.prod(ak.array([2, 3, 4]))
    24
    """
    return _need(pda, "prod").prod(axis=axis, keepdims=keepdims)


def min(pda: pdarray, axis: int | tuple | None = None,  # noqa: A001
        keepdims: bool = False) -> np.generic | pdarray:
    """Smallest element, as numpy.min (see pdarray.min).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy scalar

    Raises
    ------
    TypeError
        `pda` is not a pdarray.
    ValueError
        `pda` is empty.

    Examples
    --------
    >>> ak.min(ak.array([3, -1, 2]))
    -1
    """
    return _need(pda, "min").min(axis=axis, keepdims=keepdims)


def max(pda: pdarray, axis: int | tuple | None = None,  # noqa: A001
        keepdims: bool = False) -> np.generic | pdarray:
    """Largest element, as numpy.max (see pdarray.max).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy scalar

    Raises
    ------
    TypeError
        `pda` is not a pdarray.
    ValueError
        `pda` is empty.

    Examples
    --------
    >>> ak.max(ak.array([3.5, -1.0]))
    3.5
    """
    return _need(pda, "max").max(axis=axis, keepdims=keepdims)


def argmin(pda: pdarray, axis: int | None = None, keepdims: bool = False) -> np.int64 | pdarray:
    """Position of the first smallest element, as numpy.argmin (see pdarray.argmin).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1, optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.int64

    Raises
    ------
    TypeError
        `pda` is not a pdarray.
    ValueError
        `pda` is empty.

    Examples
    --------
    >>> ak.argmin(ak.array([3, -1, -1]))
    1
    """
    return _need(pda, "argmin").argmin(axis=axis, keepdims=keepdims)


def argmax(pda: pdarray, axis: int | None = None, keepdims: bool = False) -> np.int64 | pdarray:
    """Position of the first largest element, as numpy.argmax (see pdarray.argmax).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1, optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.int64

    Raises
    ------
    TypeError
        `pda` is not a pdarray.
    ValueError
        `pda` is empty.

    Examples
    --------
    >>> ak.argmax(ak.array([3, 7, 7]))
    1
    """
    return _need(pda, "argmax").argmax(axis=axis, keepdims=keepdims)


def any(pda: pdarray, axis: int | tuple | None = None,  # noqa: A001
        keepdims: bool = False) -> np.bool_ | pdarray:
    """Whether any element is nonzero, as numpy.any (see pdarray.any).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.bool_

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.any(ak.array([0, 0, 1]))
    True
    """
    return _need(pda, "any").any(axis=axis, keepdims=keepdims)


def all(pda: pdarray, axis: int | tuple | None = None,  # noqa: A001
        keepdims: bool = False) -> np.bool_ | pdarray:
    """Whether every element is nonzero, as numpy.all (see pdarray.all).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.bool_

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.all(ak.array([1, 0, 1]))
    False
    """
    return _need(pda, "all").all(axis=axis, keepdims=keepdims)


def mean(pda: pdarray, axis: int | tuple | None = None,
         keepdims: bool = False) -> np.float64 | pdarray:
    """Arithmetic mean as float64, as numpy.mean (see pdarray.mean).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.float64

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.mean(ak.array([1, 2, 3, 4]))
    2.5
    """
    return _need(pda, "mean").mean(axis=axis, keepdims=keepdims)


def var(pda: pdarray, ddof: int | float = 0, axis: int | tuple | None = None,
        keepdims: bool = False) -> np.float64 | pdarray:
    """Variance as float64, as numpy.var (see pdarray.var).

    Parameters
    ----------
    pda : pdarray
    ddof : int or float, optional
        Delta degrees of freedom: the divisor is size - ddof (default 0).

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.float64

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or `ddof` is not a number.

    Examples
    --------
    >>> ak.var(ak.array([1, 2, 3]))
    0.6666666666666666
    """
    return _need(pda, "var").var(ddof=ddof, axis=axis, keepdims=keepdims)


def std(pda: pdarray, ddof: int | float = 0, axis: int | tuple | None = None,
        keepdims: bool = False) -> np.float64 | pdarray:
    """Standard deviation as float64, as numpy.std (see pdarray.std).

    Parameters
    ----------
    pda : pdarray
    ddof : int or float, optional
        Delta degrees of freedom: the divisor is size - ddof (default 0).

    axis : None, 0 or -1 (or a tuple of them), optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    keepdims : bool, optional
        True: a one-element pdarray instead of a scalar.
    Returns
    -------
    numpy.float64

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or `ddof` is not a number.

    Examples
    --------
    >>> ak.std(ak.array([1.0, 2.0, 4.0]), ddof=1)
    1.5275252316519465
    """
    return _need(pda, "std").std(ddof=ddof, axis=axis, keepdims=keepdims)


def is_sorted(pda: pdarray, axis: int | None = None) -> np.bool_:
    """Whether every element is <= the next (see pdarray.is_sorted).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1, optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    Returns
    -------
    numpy.bool_

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.is_sorted(ak.array([1, 1, 2]))
    True
    """
    return _need(pda, "is_sorted").is_sorted(axis=axis)


def cumsum(pda: pdarray, axis: int | None = None) -> pdarray:
    """Running sums, as numpy.cumsum (see pdarray.cumsum).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1, optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.cumsum(ak.array([1, 2, 3]))
    array([1, 3, 6])
    """
    return _need(pda, "cumsum").cumsum(axis=axis)


def cumprod(pda: pdarray, axis: int | None = None) -> pdarray:
    """Running products, as numpy.cumprod (see pdarray.cumprod).

    Parameters
    ----------
    pda : pdarray

    axis : None, 0 or -1, optional
        As NumPy's; a pdarray has one axis (others: numpy's AxisError).
    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.cumprod(ak.array([1, 2, 3, 4]))
    array([ 1,  2,  6, 24])
    """
    return _need(pda, "cumprod").cumprod(axis=axis)


def where(condition: pdarray | Any, A: pdarray | Any, B: pdarray | Any) -> pdarray | np.generic:
    """Element-wise A where condition is true, else B, as numpy.where.

    Parameters
    ----------
    condition : pdarray or scalar
        Usually bool; other dtypes count nonzero as true. A scalar chooses
        A or B as a whole (as NumPy broadcasts it).
    A, B : pdarray or scalar
        pdarrays of condition's size (of each other's, for a scalar
        condition), or scalars.

    Returns
    -------
    pdarray or numpy scalar
        Of the dtype numpy.where would give. A scalar condition with two
        scalars gives a NumPy scalar (NumPy: a 0-d array, which a pdarray
        cannot be).

    Raises
    ------
    TypeError
        `condition` is neither a pdarray nor a number, or A or B is neither
        a pdarray nor a number.
    ValueError
        A or B has a size other than condition's.
    OverflowError
        A Python int beyond uint64.

    Examples
    --------
    >>> a = ak.array([1, 2, 3, 4])
    >>> ak.where(a > 2, a, 0)
    array([0, 0, 3, 4])
    >>> ak.where(ak.array([True, False]), 1, 0.5)
    array([1. , 0.5])
    >>> ak.where(False, ak.array([1, 2]), 0.5)
    array([0.5, 0.5])
    """
    from . import derived  # lazy column expressions of datasets (issue 14)
    lazy = derived.where_hook(condition, A, B)
    if lazy is not None:
        return lazy
    if not is_pdarray(condition):
        return _where_scalar(condition, A, B)
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
    return derived.tag_where(pdarrayclass.create_pdarray(res), condition, A, B)


def _where_scalar(condition, A, B):
    """where() with a scalar condition: the chosen side, of NumPy's dtype."""
    c = as_scalar(condition)
    if c is None:
        raise TypeError(f"where: the condition must be a pdarray or a scalar, not "
                        f"{type(condition).__name__}")
    for v in (A, B):
        if not is_pdarray(v):
            if as_scalar(v) is None:
                raise TypeError(f"where: operands must be pdarrays or scalars, not "
                                f"{type(v).__name__}")
            wire_scalar(as_scalar(v))  # OverflowError beyond uint64
    if not (is_pdarray(A) or is_pdarray(B)):
        return np.where(c, as_scalar(A), as_scalar(B))[()]
    if is_pdarray(A) and is_pdarray(B) and A.size != B.size:
        raise ValueError(f"where: operands could not be broadcast together: sizes {A.size} "
                         f"and {B.size}")
    pa, pb = (proto(v) if is_pdarray(v) else as_scalar(v) for v in (A, B))
    rt = pdarray_dtype(np.where(np.ones(1, np.bool_), pa, pb).dtype)
    chosen = A if c else B
    if is_pdarray(chosen):
        return chosen.astype(rt)
    from .creation import full
    return full((A if is_pdarray(A) else B).size, as_scalar(chosen), dtype=rt)


def concatenate(arrays: Iterable[pdarray], ordered: bool = True) -> pdarray:
    """One pdarray holding the given pdarrays one after the other, as
    numpy.concatenate.

    Parameters
    ----------
    arrays : iterable of pdarray
    ordered : bool, optional
        Arkouda's flag; the order is always kept.

    Returns
    -------
    pdarray
        Of numpy.concatenate's dtype for the arrays' dtypes.

    Raises
    ------
    ValueError
        `arrays` is empty.
    TypeError
        An element of `arrays` is not a pdarray.

    Examples
    --------
    >>> ak.concatenate([ak.array([1, 2]), ak.array([0.5])])
    array([1. , 2. , 0.5])
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    for a in arrays:
        if not is_pdarray(a):
            raise TypeError(f"concatenate takes pdarrays, not {type(a).__name__}")
    rt = pdarray_dtype(np.concatenate([np.zeros(0, a.dtype) for a in arrays]).dtype)
    res, _ = client.generic_msg("concatenate", {"arrays": [a.name for a in arrays],
                                                "rt": dtype_name(rt)})
    return pdarrayclass.create_pdarray(res)


# ---- element-wise math (the server's efunc command) ------------------------------------

# NumPy's names; the result is float64 (bool for the predicates; sign and
# square keep the dtype, bool square gives int64).
EFUNCS = ["sqrt", "cbrt", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p",
          "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
          "arcsinh", "arccosh", "arctanh", "floor", "ceil", "trunc", "rint",
          "isnan", "isinf", "isfinite", "logical_not", "sign", "square"]


# An example for each (input, what NumPy prints); the doctests check them.
_EFUNC_EXAMPLES = {
    "sqrt": ("[1.0, 4.0, 9.0]", "array([1., 2., 3.])"),
    "cbrt": ("[1.0, 8.0, -27.0]", "array([ 1.,  2., -3.])"),
    "exp": ("[0.0, 1.0]", "array([1.        , 2.71828183])"),
    "exp2": ("[0, 3, 5]", "array([ 1.,  8., 32.])"),
    "expm1": ("[0.0, 1e-10]", "array([0.e+00, 1.e-10])"),
    "log": ("[1.0, np.e]", "array([0., 1.])"),
    "log2": ("[1, 8, 1024]", "array([ 0.,  3., 10.])"),
    "log10": ("[1, 10, 1000]", "array([0., 1., 3.])"),
    "log1p": ("[0.0, 1e-10]", "array([0.e+00, 1.e-10])"),
    "sin": ("[0.0, np.pi / 2]", "array([0., 1.])"),
    "cos": ("[0.0, np.pi]", "array([ 1., -1.])"),
    "tan": ("[0.0, np.pi / 4]", "array([0., 1.])"),
    "arcsin": ("[0.0, 1.0]", "array([0.        , 1.57079633])"),
    "arccos": ("[1.0, -1.0]", "array([0.        , 3.14159265])"),
    "arctan": ("[0.0, 1.0]", "array([0.        , 0.78539816])"),
    "sinh": ("[0.0, 1.0]", "array([0.        , 1.17520119])"),
    "cosh": ("[0.0, 1.0]", "array([1.        , 1.54308063])"),
    "tanh": ("[0.0, 1.0]", "array([0.        , 0.76159416])"),
    "arcsinh": ("[0.0, 1.0]", "array([0.        , 0.88137359])"),
    "arccosh": ("[1.0, 2.0]", "array([0.       , 1.3169579])"),
    "arctanh": ("[0.0, 0.5]", "array([0.        , 0.54930614])"),
    "floor": ("[-1.5, 1.5, 2.0]", "array([-2.,  1.,  2.])"),
    "ceil": ("[-1.5, 1.5, 2.0]", "array([-1.,  2.,  2.])"),
    "trunc": ("[-1.7, 1.7]", "array([-1.,  1.])"),
    "rint": ("[0.5, 1.5, 2.5]", "array([0., 2., 2.])"),
    "isnan": ("[1.0, np.nan, np.inf]", "array([False,  True, False])"),
    "isinf": ("[1.0, np.nan, -np.inf]", "array([False, False,  True])"),
    "isfinite": ("[1.0, np.nan, np.inf]", "array([ True, False, False])"),
    "logical_not": ("[0, 1, 2]", "array([ True, False, False])"),
    "sign": ("[-5, 0, 3]", "array([-1,  0,  1])"),
    "square": ("[-3, 2]", "array([9, 4])"),
}
_EFUNC_DTYPES = {"isnan": "bool", "isinf": "bool", "isfinite": "bool", "logical_not": "bool",
                 "sign": "pda's dtype", "square": "pda's dtype (int64 for bool)"}


def ufunc_call(name, compute, operands, out, where):
    """compute(*operands) with NumPy's out= and where= of a ufunc.

    Where where= is True the function's value, elsewhere out's (without out:
    the first pdarray operand's value, Arkouda's rule "the original value").
    As NumPy, the function runs only on the selected elements (x[where]),
    so elements left out raise no floating-point warning. With out, the
    values are written into out (NumPy's same_kind casting), which is
    returned."""
    arrays = [o for o in operands if is_pdarray(o)]
    size = arrays[0].size
    if isinstance(where, (builtins.bool, np.bool_)):
        where = builtins.bool(where)
    elif not is_pdarray(where):
        raise TypeError(f"where= takes a bool pdarray or a bool, not {type(where).__name__}")
    elif where.dtype != np.bool_:
        raise TypeError(f"Cannot cast array data from dtype('{where.dtype}') to "
                        f"dtype('bool') according to the rule 'safe'")
    elif where.size != size:
        raise ValueError(f"operands could not be broadcast together: where= has {where.size} "
                         f"elements, the operands {size}")
    if out is not None:
        if not is_pdarray(out):
            raise TypeError(f"out= must be a pdarray, not {type(out).__name__}")
        if out.size != size:
            raise ValueError(f"non-broadcastable output operand with shape ({out.size},) "
                             f"doesn't match the broadcast shape ({size},)")
    if where is True:
        r = compute(*operands)
    else:  # only the selected elements (none for where=False)
        key = where if is_pdarray(where) else slice(0, 0)
        r = compute(*[o[key] if is_pdarray(o) else o for o in operands])
    if out is not None and not np.can_cast(r.dtype, out.dtype, "same_kind"):
        raise TypeError(f"Cannot cast ufunc '{name}' output from dtype('{r.dtype}') to "
                        f"dtype('{out.dtype}') with casting rule 'same_kind'")
    if where is True:
        if out is None:
            return r
        out[:] = r
        return out
    res = out if out is not None else arrays[0].astype(r.dtype)
    if is_pdarray(where):
        res[where] = r
    return res


def _efunc(name):
    def fn(pda: pdarray, /, out: Optional[pdarray] = None, *,
           where: pdarray | builtins.bool = True) -> pdarray:
        def compute(x):
            res, _ = client.generic_msg("efunc", {"op": name, "array": x.name})
            return pdarrayclass.create_pdarray(res)
        return ufunc_call(name, compute, [_need(pda, name)], out, where)
    fn.__name__ = fn.__qualname__ = name
    arg, out = _EFUNC_EXAMPLES[name]
    fn.__doc__ = f"""Element-wise numpy.{name} of a pdarray.

    Parameters
    ----------
    pda : pdarray
    out : pdarray, optional
        Where to put the result (NumPy's same_kind casting); it is returned.
    where : pdarray of bool or bool, optional
        Compute only where True; elsewhere the result keeps out's value, or
        without out pda's (Arkouda's rule: "the original value").

    Returns
    -------
    pdarray
        {_EFUNC_DTYPES.get(name, "float64")}, as NumPy (where NumPy would
        give a smaller type, the pdarray dtype of the same kind).

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.{name}(ak.array({arg}))
    {out}
    """
    return fn


for _name in EFUNCS:
    globals()[_name] = _efunc(_name)
__all__ += EFUNCS + ["round", "power", "count_nonzero", "flatnonzero", "nonzero"]


def round(pda: pdarray, decimals: int = 0) -> pdarray:  # noqa: A001 — NumPy's name
    """Round to `decimals` digits, halves to even, as numpy.round (NumPy's
    recipe: scale, round, scale back).

    Parameters
    ----------
    pda : pdarray
    decimals : int, optional
        Digits after the point (default 0; negative: left of it).

    Returns
    -------
    pdarray
        Same dtype; integer arrays are returned unchanged for decimals >= 0.

    Raises
    ------
    TypeError
        `pda` is not a pdarray, or `decimals` is not an integer.
    NotImplementedError
        An integer array with decimals < 0.

    Examples
    --------
    >>> ak.round(ak.array([0.5, 1.5, 2.5]))
    array([0., 2., 2.])
    >>> ak.round(ak.array([1234.0, 5678.0]), -2)
    array([1200., 5700.])
    """
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


def power(x1: pdarray | Any, x2: pdarray | Any, /, out: Optional[pdarray] = None, *,
          where: pdarray | builtins.bool = True) -> pdarray:
    """x1 ** x2 element-wise, as numpy.power (NumPy's dtypes and errors).

    Parameters
    ----------
    x1, x2 : pdarray or scalar
        At least one is a pdarray; two pdarrays must have the same size.
    out : pdarray, optional
        Where to put the result (NumPy's same_kind casting); it is returned.
    where : pdarray of bool or bool, optional
        Compute only where True; elsewhere out's value, or without out x1's
        (x2's if x1 is a scalar).

    Returns
    -------
    pdarray

    Raises
    ------
    TypeError
        Neither operand is a pdarray.
    ValueError
        Integers to a negative integer power (as NumPy), or sizes differ.

    Examples
    --------
    >>> ak.power(ak.array([1, 2, 3]), 2)
    array([1, 4, 9])
    >>> ak.power(2, ak.array([0, 1, 3]))
    array([1, 2, 8])
    """
    if not (is_pdarray(x1) or is_pdarray(x2)):
        raise TypeError("ak.power needs a pdarray operand")
    return ufunc_call("power", lambda a, b: a ** b, [x1, x2], out, where)


def count_nonzero(pda: pdarray) -> int:
    """How many elements are not zero (not False), as numpy.count_nonzero.

    Parameters
    ----------
    pda : pdarray

    Returns
    -------
    int

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.count_nonzero(ak.array([0, 3, 0, -1]))
    2
    """
    _need(pda, "count_nonzero")
    return builtins.int((pda != 0).sum()) if pda.dtype != np.bool_ else builtins.int(pda.sum())


def flatnonzero(pda: pdarray) -> pdarray:
    """The positions of the elements that are not zero (not False), in
    order, as numpy.flatnonzero.

    Parameters
    ----------
    pda : pdarray

    Returns
    -------
    pdarray
        int64.

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.flatnonzero(ak.array([0, 3, 0, -1]))
    array([1, 3])
    """
    _need(pda, "flatnonzero")
    mask = pda if pda.dtype == np.bool_ else pda != 0
    res, _ = client.generic_msg("flatnonzero", {"mask": mask.name})
    return pdarrayclass.create_pdarray(res)


def nonzero(pda: pdarray) -> tuple[pdarray]:
    """The positions of the elements that are not zero, in a one-element
    tuple, as numpy.nonzero of a one-dimensional array.

    Parameters
    ----------
    pda : pdarray

    Returns
    -------
    tuple of one pdarray
        int64 positions.

    Raises
    ------
    TypeError
        `pda` is not a pdarray.

    Examples
    --------
    >>> ak.nonzero(ak.array([True, False, True]))
    (array([0, 2]),)
    """
    return (flatnonzero(pda),)
