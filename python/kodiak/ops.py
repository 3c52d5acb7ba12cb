# SPDX-License-Identifier: Apache-2.0
"""ops.py — operators, astype, reductions and scans of pdarray (the mixin
_OpsMixin, a base of pdarray), and the helpers numeric.py shares.

How result dtypes are found. NumPy's promotion rules (with NumPy 1.24's
value-based casting of Python and NumPy scalars) are reproduced exactly by
running the same operation on one-element NumPy arrays of the operands'
dtypes, with the scalars themselves: its dtype is the result dtype, and its
errors (bool - bool, int64 ** -1, int64 += 1.5, float64 & 1, ...) are raised
as they are. The server is told the dtype to compute in (`ct`, NumPy's
inner-loop dtype) and the result dtype (`rt`); kd_cmd_ops.c does the rest.

pdarrays hold int64, uint64, float64 and bool only. Where NumPy's result
would be a smaller type (bool // bool is int8, bool + np.float32(1) is
float32), the result is the pdarray dtype of the same kind (int64, uint64,
float64): for bool operands the values are the same."""
from __future__ import annotations

import builtins
import operator
import warnings
import weakref
from typing import TYPE_CHECKING

import numpy as np

from . import client, pdarrayclass  # pdarrayclass imports ops: use its names at call time
from .dtypes import bool_, dtype_name, encode_scalar, float64, int64, resolve_dtype, uint64

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .pdarrayclass import pdarray

BINARY = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
    "&": operator.and_, "|": operator.or_, "^": operator.xor,
    "<<": operator.lshift, ">>": operator.rshift,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
INPLACE = {
    "+": operator.iadd, "-": operator.isub, "*": operator.imul, "/": operator.itruediv,
    "//": operator.ifloordiv, "%": operator.imod, "**": operator.ipow,
    "&": operator.iand, "|": operator.ior, "^": operator.ixor,
    "<<": operator.ilshift, ">>": operator.irshift,
}
COMPARISONS = frozenset(("<", "<=", ">", ">=", "==", "!="))


def is_pdarray(x):
    return isinstance(x, _OpsMixin)


def pdarray_dtype(dt):
    """The pdarray dtype for a NumPy result dtype: itself, or the one of the
    same kind (int8 -> int64, float32 -> float64)."""
    dt = np.dtype(dt)
    kind = {"b": bool_, "i": int64, "u": uint64, "f": float64}.get(dt.kind)
    if kind is None:
        raise TypeError(f"the result would have dtype {dt}, which a pdarray cannot hold")
    return kind


def as_scalar(x):
    """x as a scalar NumPy promotes like x, or None if x is not a number."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, (builtins.bool, builtins.int, builtins.float)):
        return x
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x
    return None


def wire_scalar(x):
    """{"dtype","value"} of a scalar operand (its exact value; the server
    casts it to the dtype it computes in)."""
    if isinstance(x, np.generic):
        x = x.item()
    return encode_scalar(x)


def proto(x):
    """What stands for an operand when NumPy works out a dtype: one element
    (none for an empty pdarray: NumPy checks values, as in int ** -1, only
    when there are elements)."""
    return np.ones(builtins.min(x.size, 1), x.dtype) if is_pdarray(x) else x


def check_sizes(x, y, what="operands could not be broadcast together"):
    if is_pdarray(x) and is_pdarray(y) and x.size != y.size:
        raise ValueError(f"{what}: sizes {x.size} and {y.size}")


def operand_args(args, key, x):
    """Put operand x into a request as an array name (key) or scalar (s+key)."""
    if is_pdarray(x):
        args[key] = x.name
    else:
        args["s" + key] = wire_scalar(x)


def _numpy_says(fn, *args):
    """fn(*args) under NumPy, with its exceptions as plain Python ones."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args)
        except TypeError as e:  # UFuncTypeError and friends
            raise TypeError(str(e)) from None


# Arrays at least this big get the deferred product below (smaller ones
# are sent at once: one more round trip costs more than a pass over them).
ELIDE_BYTES = 1 << 18


# Deferred scalar multiplies, for STREAM's triad. `b * alpha` on a large
# float64 array is not sent at once: the pdarray it returns holds the
# command and sends it the first time anything uses its name. If the first
# use is `a + (b * alpha)` (or a - ..., or ... - a), the client sends one
# fused command (axpy): one pass over memory instead of two, with the same
# rounding as the two operations. The product itself stays deferred: if
# anything uses it later it is computed then, from its operand, so fusing
# needs no guess about whether the product was a temporary. A deferred
# array keeps its operand alive, and the operand computes its deferred
# dependents before it is written to (in-place operators, __setitem__), so
# a deferred array always has the value it had when made. (There is no
# other temporary elision: telling a temporary from a live operand by its
# reference count is a guess that explicit dunder calls defeat.)
def defer(result_dtype, size, cmd, args, base):
    from .pdarrayclass import pdarray
    p = pdarray(None, result_dtype, size)
    p._pending = (cmd, args)
    p._base = base
    p._alpha = args.get("sb") or args.get("sa")
    if base._dependents is None:
        base._dependents = {}
    base._dependents[id(p)] = weakref.ref(p)  # pdarrays are not hashable (== is elementwise)
    return p


def _fusable(p):
    """p is a deferred float64 `base * alpha` not yet sent."""
    return is_pdarray(p) and p._pending is not None and p._pending[0] == "binop" and \
        p._pending[1]["op"] == "*" and p.dtype == float64


def fused_axpy(x, y, op):
    """a + b*alpha, a - b*alpha, b*alpha - a as one command, or None."""
    if op not in ("+", "-") or not (is_pdarray(x) and is_pdarray(y)):
        return None
    for p, other, form in ((y, x, "x+ay" if op == "+" else "x-ay"),
                           (x, y, "x+ay" if op == "+" else "ay-x")):
        if _fusable(p) and other.dtype == float64 and other.size == p.size \
                and p._base.dtype == float64 and p._alpha["dtype"] == "float64":
            res, _ = client.generic_msg("axpy", {"x": other.name, "y": p._base.name,
                                                 "alpha": p._alpha, "form": form})
            return pdarrayclass.create_pdarray(res)
    return None


def binop(x, y, op):
    """x OP y where x or y is a pdarray and the other a pdarray or scalar;
    NotImplemented for operands of other kinds."""
    for v in (x, y):
        if isinstance(v, (np.ndarray, list, tuple)) and not (
                isinstance(v, np.ndarray) and v.ndim == 0):
            # == would otherwise fall back to identity and say False
            raise TypeError(f"pdarray {op} {type(v).__name__}: convert it with ak.array() "
                            f"first (the data of a pdarray stays on the server)")
        if not is_pdarray(v) and as_scalar(v) is None:
            return NotImplemented
    x = x if is_pdarray(x) else as_scalar(x)
    y = y if is_pdarray(y) else as_scalar(y)
    check_sizes(x, y)
    for v in (x, y):
        if not is_pdarray(v):
            wire_scalar(v)  # OverflowError for ints beyond uint64, before NumPy guesses
    px, py = proto(x), proto(y)
    rt = pdarray_dtype(_numpy_says(BINARY[op], px, py).dtype)
    ct = pdarray_dtype(np.result_type(px, py)) if op in COMPARISONS else rt
    fused = fused_axpy(x, y, op)
    if fused is not None:
        return fused
    args = {"op": op, "ct": dtype_name(ct), "rt": dtype_name(rt)}
    operand_args(args, "a", x)
    operand_args(args, "b", y)
    size = x.size if is_pdarray(x) else y.size
    arr = x if is_pdarray(x) else y
    if op == "*" and rt == float64 and arr.dtype == float64 and \
            not (is_pdarray(x) and is_pdarray(y)) and arr.nbytes >= ELIDE_BYTES:
        return defer(rt, size, "binop", args, arr)
    res, _ = client.generic_msg("binop", args)
    return pdarrayclass.create_pdarray(res)


def _unlike(x, value):
    """x == obj / x != obj for an obj no element can equal (None, a string):
    as NumPy, every element compares unequal."""
    from .creation import full
    return full(x.size, value, dtype=bool_)


def inplace(x, y, op):
    """x OP= y: the result keeps x's dtype and name (NumPy's same_kind rule
    decides what is allowed)."""
    if not is_pdarray(y) and as_scalar(y) is None:
        return NotImplemented
    y = y if is_pdarray(y) else as_scalar(y)
    check_sizes(x, y)
    if not is_pdarray(y):
        wire_scalar(y)
    px, py = proto(x), proto(y)
    _numpy_says(INPLACE[op], px, py)  # raises where NumPy would
    x._before_write()
    ct = pdarray_dtype(_numpy_says(BINARY[op], proto(x), py).dtype)
    args = {"op": op, "ct": dtype_name(ct), "rt": dtype_name(x.dtype), "a": x.name,
            "out": x.name}
    operand_args(args, "b", y)
    client.generic_msg("binop", args)
    return x


def unop(x, op):
    res, _ = client.generic_msg("unop", {"op": op, "array": x.name})
    return pdarrayclass.create_pdarray(res)


def reduce(x, op, **kw):
    res, _ = client.generic_msg("reduce", {"op": op, "array": x.name, **kw})
    from .dtypes import decode_scalar
    return decode_scalar(res["value"])


def check_axis(method, axis, keepdims=None):
    """Raise what ndarray.<method>(axis=..., keepdims=...) of a one-dimensional
    array raises for these arguments (numpy's AxisError for an axis other
    than 0 or -1, TypeError for a float, ValueError for a repeated axis):
    NumPy itself checks them, on a one-element array."""
    kw = {"axis": axis}
    if keepdims is not None:
        kw["keepdims"] = keepdims
    getattr(np.zeros(1), method)(**kw)


def keep(value, keepdims):
    """A reduction's value, or with keepdims a one-element pdarray of it."""
    if not keepdims:
        return value
    from .creation import array
    return array(np.array([value]))


def reduce_axis(x, op, axis, keepdims):
    """x.<op>(axis=axis, keepdims=keepdims) for a reduction the server does
    in one command: the arguments checked as NumPy checks them, then the
    reduction, then keepdims."""
    check_axis(op, axis, keepdims)
    return keep(reduce(x, op), keepdims)


def _scalar_fpe(kind, ufunc="scalar divide"):
    """NumPy's warning of a division done on the result of a reduction."""
    from .fpe import report
    report({"ufunc": ufunc, "flags": [kind]})


def _var_std(x, op, ddof):
    """var or std, with NumPy's warnings when size - ddof <= 0: "Degrees of
    freedom", then the flags of its divisions (0/0 invalid, s/0 divide)."""
    few = x.size - ddof <= 0
    if few:
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=3)
        if x.size == 0:
            _scalar_fpe("invalid", "divide")
    v = reduce(x, op, ddof=ddof)
    if few:
        _scalar_fpe("invalid" if np.isnan(v) else "divide")
    return v


def _ddof(ddof):
    if isinstance(ddof, (builtins.bool, np.bool_)) or not isinstance(
            ddof, (builtins.int, builtins.float, np.integer, np.floating)):
        raise TypeError(f"ddof must be a number, not {type(ddof).__name__}")
    return float(ddof)


def _binary(op):
    def fwd(self, other):
        return binop(self, other, op)

    def rev(self, other):
        return binop(other, self, op)

    def inp(self, other):
        return inplace(self, other, op)
    return fwd, rev, inp


class _OpsMixin:
    """Operators and element-wise/reduction methods of pdarray."""

    __add__, __radd__, __iadd__ = _binary("+")
    __sub__, __rsub__, __isub__ = _binary("-")
    __mul__, __rmul__, __imul__ = _binary("*")
    __truediv__, __rtruediv__, __itruediv__ = _binary("/")
    __floordiv__, __rfloordiv__, __ifloordiv__ = _binary("//")
    __mod__, __rmod__, __imod__ = _binary("%")
    __pow__, __rpow__, __ipow__ = _binary("**")
    __and__, __rand__, __iand__ = _binary("&")
    __or__, __ror__, __ior__ = _binary("|")
    __xor__, __rxor__, __ixor__ = _binary("^")
    __lshift__, __rlshift__, __ilshift__ = _binary("<<")
    __rshift__, __rrshift__, __irshift__ = _binary(">>")

    def __lt__(self, other):
        return binop(self, other, "<")

    def __le__(self, other):
        return binop(self, other, "<=")

    def __gt__(self, other):
        return binop(self, other, ">")

    def __ge__(self, other):
        return binop(self, other, ">=")

    def __eq__(self, other):
        r = binop(self, other, "==")
        return _unlike(self, False) if r is NotImplemented else r

    def __ne__(self, other):
        r = binop(self, other, "!=")
        return _unlike(self, True) if r is NotImplemented else r

    __hash__ = None  # like ndarray: == is element-wise

    def __divmod__(self, other):
        q = binop(self, other, "//")
        return NotImplemented if q is NotImplemented else (q, binop(self, other, "%"))

    def __rdivmod__(self, other):
        q = binop(other, self, "//")
        return NotImplemented if q is NotImplemented else (q, binop(other, self, "%"))

    # ---- unary --------------------------------------------------------------------
    def __neg__(self):
        if self.dtype == bool_:
            raise TypeError("The numpy boolean negative, the `-` operator, is not supported, "
                            "use the `~` operator or the logical_not function instead.")
        return unop(self, "neg")

    def __invert__(self):
        if self.dtype == float64:
            raise TypeError("ufunc 'invert' not supported for the input types, and the inputs "
                            "could not be safely coerced to any supported types according to "
                            "the casting rule ''safe''")
        return unop(self, "invert")

    def __abs__(self):
        return unop(self, "abs")

    def __pos__(self):
        if self.dtype == bool_:
            # NumPy 1.24 only warns that this is ill-defined; NumPy 2 raises
            raise TypeError("unary + is not defined for a bool pdarray (NumPy's ufunc "
                            "'positive' has no loop for bool)")
        return self.astype(self.dtype)

    def round(self, decimals: int = 0) -> pdarray:
        """Round to `decimals` digits, halves to even, as ndarray.round (and
        Python's round(a)); see ak.round.

        Parameters
        ----------
        decimals : int, optional
            Digits after the point (default 0; negative: left of it).

        Returns
        -------
        pdarray
            Same dtype; integer arrays come back unchanged for decimals >= 0.

        Raises
        ------
        TypeError
            `decimals` is not an integer.
        NotImplementedError
            An integer array with decimals < 0.

        Examples
        --------
        >>> ak.array([0.25, 1.35, -0.45]).round(1)
        array([ 0.2,  1.4, -0.4])
        >>> round(ak.array([0.5, 1.5, -2.5]))
        array([ 0.,  2., -2.])
        """
        from .numeric import round as _round
        return _round(self, decimals)

    def __round__(self, ndigits=None):
        return self.round(0 if ndigits is None else ndigits)

    # ---- casts ----------------------------------------------------------------------
    def astype(self, dtype: DTypeLike) -> pdarray:
        """A copy cast to `dtype`, with ndarray.astype's rules (float -> int
        truncates toward zero; NaN and out-of-range floats give what NumPy
        gives on x86-64).

        Parameters
        ----------
        dtype : dtype-like
            int64, uint64, float64 or bool (or a spelling of one).

        Returns
        -------
        pdarray

        Raises
        ------
        TypeError
            The dtype is not one a pdarray can hold.

        Examples
        --------
        >>> ak.array([1.9, -1.9, 0.0]).astype(ak.int64)
        array([ 1, -1,  0])
        >>> ak.array([0, 2]).astype("bool")
        array([False,  True])
        """
        res, _ = client.generic_msg("astype", {"array": self.name,
                                               "dtype": dtype_name(resolve_dtype(dtype))})
        return pdarrayclass.create_pdarray(res)

    # ---- reductions (NumPy scalars, NumPy's dtypes) -----------------------------------
    def sum(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Sum of the elements, as ndarray.sum: a NumPy scalar of NumPy's
        dtype (int64 for bool and int64, uint64, float64; integers wrap).

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy scalar

        Examples
        --------
        >>> ak.arange(5).sum()
        10
        >>> ak.array([True, True, False]).sum()
        2
        >>> ak.zeros(0).sum()
        0.0
        """
        return reduce_axis(self, "sum", axis, keepdims)

    def prod(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Product of the elements, as ndarray.prod (NumPy's dtype; 1 for
        an empty array; integers wrap).

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy scalar

        Examples
        --------
        >>> ak.arange(1, 6).prod()
        120
        >>> ak.array([0.5, 4.0]).prod()
        2.0
        """
        return reduce_axis(self, "prod", axis, keepdims)

    def min(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Smallest element, as ndarray.min (NaN if any element is NaN).

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy scalar
            Of the array's dtype.

        Raises
        ------
        ValueError
            The array is empty.

        Examples
        --------
        >>> ak.array([3, -1, 2]).min()
        -1
        >>> ak.array([1.0, np.nan]).min()
        nan
        """
        return reduce_axis(self, "min", axis, keepdims)

    def max(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Largest element, as ndarray.max (NaN if any element is NaN).

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy scalar
            Of the array's dtype.

        Raises
        ------
        ValueError
            The array is empty.

        Examples
        --------
        >>> ak.array([3, -1, 2]).max()
        3
        """
        return reduce_axis(self, "max", axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Position of the first smallest element, as ndarray.argmin (of the
        first NaN if there is one).

        Parameters
        ----------
        axis : None, 0 or -1, optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy.int64

        Raises
        ------
        ValueError
            The array is empty.

        Examples
        --------
        >>> ak.array([3, -1, 2, -1]).argmin()
        1
        """
        return reduce_axis(self, "argmin", axis, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Position of the first largest element, as ndarray.argmax (of the
        first NaN if there is one).

        Parameters
        ----------
        axis : None, 0 or -1, optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy.int64

        Raises
        ------
        ValueError
            The array is empty.

        Examples
        --------
        >>> ak.array([3, 5, 2, 5]).argmax()
        1
        """
        return reduce_axis(self, "argmax", axis, keepdims)

    def any(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Whether any element is nonzero (True, NaN count), as ndarray.any;
        False for an empty array.

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy.bool_

        Examples
        --------
        >>> ak.array([0, 0, 3]).any()
        True
        >>> ak.zeros(0).any()
        False
        """
        return reduce_axis(self, "any", axis, keepdims)

    def all(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.generic | pdarray:
        """Whether every element is nonzero, as ndarray.all; True for an
        empty array.

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy.bool_

        Examples
        --------
        >>> ak.array([1, 2, 0]).all()
        False
        """
        return reduce_axis(self, "all", axis, keepdims)

    def mean(self, axis: int | tuple | None = None, keepdims: bool = False) -> np.float64 | pdarray:
        """Arithmetic mean as float64, as ndarray.mean (NaN, with NumPy's
        RuntimeWarning, for an empty array).

        Parameters
        ----------
        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.

        Returns
        -------
        numpy.float64

        Examples
        --------
        >>> ak.arange(5).mean()
        2.0
        """
        check_axis("mean", axis, keepdims)
        if self.size == 0:
            warnings.warn("Mean of empty slice.", RuntimeWarning, stacklevel=2)
            _scalar_fpe("invalid")  # NumPy's 0/0, as ak.seterr says
        return keep(reduce(self, "mean"), keepdims)

    def var(self, ddof: int | float = 0, axis: int | tuple | None = None,
            keepdims: bool = False) -> np.float64 | pdarray:
        """Variance as float64, as ndarray.var: the mean of the squared
        deviations from the mean, divided by size - ddof.

        Parameters
        ----------
        ddof : int or float, optional
            Delta degrees of freedom (default 0, NumPy's).

        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.
        Returns
        -------
        numpy.float64
            NaN with NumPy's RuntimeWarning for an empty array.

        Raises
        ------
        TypeError
            `ddof` is not a number.

        Examples
        --------
        >>> ak.array([1.0, 2.0, 3.0, 4.0]).var()
        1.25
        >>> ak.array([1.0, 2.0, 3.0, 4.0]).var(ddof=1)
        1.6666666666666667
        """
        check_axis("var", axis, keepdims)
        return keep(_var_std(self, "var", _ddof(ddof)), keepdims)

    def std(self, ddof: int | float = 0, axis: int | tuple | None = None,
            keepdims: bool = False) -> np.float64 | pdarray:
        """Standard deviation as float64: the square root of var(ddof), as
        ndarray.std.

        Parameters
        ----------
        ddof : int or float, optional
            Delta degrees of freedom (default 0, NumPy's).

        axis : None, 0 or -1 (or a tuple of them), optional
            NumPy's axis: a pdarray has one, so each gives the same value;
            any other is numpy's AxisError.
        keepdims : bool, optional
            True: the result is a one-element pdarray, as NumPy's keepdims.
        Returns
        -------
        numpy.float64

        Raises
        ------
        TypeError
            `ddof` is not a number.

        Examples
        --------
        >>> ak.array([1.0, 3.0]).std()
        1.0
        """
        check_axis("std", axis, keepdims)
        return keep(_var_std(self, "std", _ddof(ddof)), keepdims)

    def is_sorted(self, axis: int | None = None) -> np.bool_:
        """Whether every element is <= the next, as numpy.all(a[:-1] <= a[1:])
        (so a NaN beside any element makes it False).

        Parameters
        ----------
        axis : None, 0 or -1, optional
            NumPy's axis: a pdarray has one, so each gives the same result;
            any other is numpy's AxisError.

        Returns
        -------
        numpy.bool_

        Examples
        --------
        >>> ak.array([1, 2, 2, 5]).is_sorted()
        True
        >>> ak.array([1.0, np.nan, 2.0]).is_sorted()
        False
        """
        check_axis("argmin", axis)
        return reduce(self, "is_sorted")

    # ---- scans ----------------------------------------------------------------------
    def cumsum(self, axis: int | None = None) -> pdarray:
        """Running sums, as ndarray.cumsum (NumPy's dtype: bool gives int64).

        Parameters
        ----------
        axis : None, 0 or -1, optional
            NumPy's axis: a pdarray has one, so each gives the same result;
            any other is numpy's AxisError.

        Returns
        -------
        pdarray

        Examples
        --------
        >>> ak.arange(1, 6).cumsum()
        array([ 1,  3,  6, 10, 15])
        >>> ak.array([True, False, True]).cumsum()
        array([1, 1, 2])
        """
        check_axis("cumsum", axis)
        res, _ = client.generic_msg("scan", {"op": "cumsum", "array": self.name})
        return pdarrayclass.create_pdarray(res)

    def cumprod(self, axis: int | None = None) -> pdarray:
        """Running products, as ndarray.cumprod (NumPy's dtype: bool gives
        int64).

        Parameters
        ----------
        axis : None, 0 or -1, optional
            NumPy's axis: a pdarray has one, so each gives the same result;
            any other is numpy's AxisError.

        Returns
        -------
        pdarray

        Examples
        --------
        >>> ak.arange(1, 6).cumprod()
        array([  1,   2,   6,  24, 120])
        """
        check_axis("cumprod", axis)
        res, _ = client.generic_msg("scan", {"op": "cumprod", "array": self.name})
        return pdarrayclass.create_pdarray(res)
