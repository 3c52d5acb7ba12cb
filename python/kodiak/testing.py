# SPDX-License-Identifier: Apache-2.0
"""testing.py — ak.testing: assertions for users' own tests of pdarrays,
with the names and signatures of Arkouda's arkouda.testing (a subset:
assert_equal, assert_almost_equal, assert_arkouda_array_equal and its short
name assert_arrays_equal, assert_is_sorted). The comparisons run in the
server (ak.array_equal / ak.isclose); only a failure fetches the arrays, to
say where they differ."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .ops import is_pdarray

if TYPE_CHECKING:
    from .pdarrayclass import pdarray

__all__ = ["assert_almost_equal", "assert_arkouda_array_equal", "assert_arrays_equal",
           "assert_equal", "assert_is_sorted"]


def _fail(obj, what, left, right, err_msg):
    """An AssertionError naming the first differing position."""
    msg = f"{obj} are different\n\n{what}"
    if is_pdarray(left) and is_pdarray(right) and left.size == right.size:
        ln, rn = left.to_ndarray(), right.to_ndarray()
        with np.errstate(all="ignore"):
            eq = ln == rn
            if "f" in (ln.dtype.kind, rn.dtype.kind):
                eq |= np.isnan(ln.astype(np.float64)) & np.isnan(rn.astype(np.float64))
        diff = ~eq
        n = int(diff.sum())
        if n:
            i = int(np.flatnonzero(diff)[0])
            msg += (f"\n{obj} values are different ({round(100 * n / ln.size, 5)} %)"
                    f"\nfirst at [{i}]: left {ln[i]!r}, right {rn[i]!r}")
    if err_msg:
        msg = f"{err_msg}\n{msg}"
    raise AssertionError(msg)


def assert_arkouda_array_equal(left: pdarray, right: pdarray, check_dtype: bool = True,
                               err_msg: Optional[str] = None, check_same: Optional[str] = None,
                               obj: str = "pdarray") -> None:
    """Check that two pdarrays are equal (same size, dtype with check_dtype,
    and elements; NaN equals NaN), as arkouda.testing.assert_arkouda_array_equal.

    Parameters
    ----------
    left, right : pdarray
    check_dtype : bool, optional
        Whether the dtypes must be the same (default True).
    err_msg : str, optional
        Put before the message of a failure.
    check_same : {None, 'copy', 'same'}, optional
        'same': left and right must be the same server array; 'copy': they
        must not be.
    obj : str, optional
        What the message calls the arrays.

    Raises
    ------
    AssertionError
        They differ.
    TypeError
        An argument is not a pdarray.

    Examples
    --------
    >>> ak.testing.assert_arkouda_array_equal(ak.array([1.0, np.nan]), ak.array([1.0, np.nan]))
    >>> ak.testing.assert_arkouda_array_equal(ak.array([1, 2]), ak.array([1, 3]))
    Traceback (most recent call last):
    ...
    AssertionError: pdarray are different
    ...
    """
    from .ufuncs import array_equal
    for a in (left, right):
        if not is_pdarray(a):
            raise TypeError(f"{obj}: expected a pdarray, not {type(a).__name__}")
    if check_same == "same" and left.name != right.name:
        raise AssertionError(f"{err_msg + ': ' if err_msg else ''}{obj}: left and right are "
                             f"not the same array")
    if check_same == "copy" and left.name == right.name:
        raise AssertionError(f"{err_msg + ': ' if err_msg else ''}{obj}: left and right are "
                             f"the same array, not copies")
    if left.size != right.size:
        _fail(obj, f"{obj} shapes are different\n[left]:  ({left.size},)\n"
                   f"[right]: ({right.size},)", left, right, err_msg)
    if check_dtype and left.dtype != right.dtype:
        _fail(obj, f'Attribute "dtype" are different\n[left]:  {left.dtype}\n'
                   f"[right]: {right.dtype}", left, right, err_msg)
    if not array_equal(left, right, equal_nan=left.dtype.kind == "f" or
                       right.dtype.kind == "f"):
        _fail(obj, "values differ", left, right, err_msg)


assert_arrays_equal = assert_arkouda_array_equal


def assert_equal(left: Any, right: Any, **kwargs: Any) -> None:
    """Check that two objects are equal, as arkouda.testing.assert_equal:
    pdarrays with assert_arkouda_array_equal, anything else with ==.

    Parameters
    ----------
    left, right : pdarray or any
    **kwargs
        Passed on to assert_arkouda_array_equal for pdarrays.

    Raises
    ------
    AssertionError
        They differ.

    Examples
    --------
    >>> ak.testing.assert_equal(ak.arange(3), ak.array([0, 1, 2]))
    >>> ak.testing.assert_equal(1.5, 1.5)
    """
    if is_pdarray(left) or is_pdarray(right):
        if not (is_pdarray(left) and is_pdarray(right)):
            raise AssertionError(f"{type(left).__name__} != {type(right).__name__}: only one "
                                 f"is a pdarray")
        assert_arkouda_array_equal(left, right, **kwargs)
        return
    both_nan = isinstance(left, float) and isinstance(right, float) and left != left \
        and right != right
    if not both_nan and not left == right:
        raise AssertionError(f"{left!r} != {right!r}")


def assert_almost_equal(left: Any, right: Any, rtol: float = 1.0e-5, atol: float = 1.0e-8,
                        **kwargs: Any) -> None:
    """Check that two pdarrays (or numbers) are equal within rtol and atol,
    NaN equal to NaN, as arkouda.testing.assert_almost_equal.

    Parameters
    ----------
    left, right : pdarray or number
    rtol : float, optional
        Relative tolerance (default 1e-5).
    atol : float, optional
        Absolute tolerance (default 1e-8).
    **kwargs
        check_dtype (default False here), err_msg, obj.

    Raises
    ------
    AssertionError
        They differ by more.

    Examples
    --------
    >>> ak.testing.assert_almost_equal(ak.array([1.0, 2.0]), ak.array([1.0, 2.0 + 1e-9]))
    """
    from .ufuncs import isclose
    obj = kwargs.get("obj", "pdarray")
    err_msg = kwargs.get("err_msg")
    if is_pdarray(left) and is_pdarray(right):
        if left.size != right.size:
            _fail(obj, f"{obj} shapes are different\n[left]:  ({left.size},)\n"
                       f"[right]: ({right.size},)", left, right, err_msg)
        if kwargs.get("check_dtype", False) and left.dtype != right.dtype:
            _fail(obj, f'Attribute "dtype" are different\n[left]:  {left.dtype}\n'
                       f"[right]: {right.dtype}", left, right, err_msg)
        if not isclose(left, right, rtol=rtol, atol=atol, equal_nan=True).all():
            _fail(obj, f"values differ by more than rtol={rtol}, atol={atol}", left, right,
                  err_msg)
        return
    if is_pdarray(left) or is_pdarray(right):
        raise AssertionError(f"{type(left).__name__} != {type(right).__name__}: only one is "
                             f"a pdarray")
    if not np.isclose(left, right, rtol=rtol, atol=atol, equal_nan=True):
        raise AssertionError(f"{left!r} != {right!r} within rtol={rtol}, atol={atol}")


def assert_is_sorted(seq: pdarray) -> None:
    """Check that a pdarray is sorted (ascending), as
    arkouda.testing.assert_is_sorted.

    Parameters
    ----------
    seq : pdarray

    Raises
    ------
    AssertionError
        It is not.

    Examples
    --------
    >>> ak.testing.assert_is_sorted(ak.array([1, 1, 2]))
    """
    if not is_pdarray(seq):
        raise TypeError(f"assert_is_sorted takes a pdarray, not {type(seq).__name__}")
    if not seq.is_sorted():
        raise AssertionError("pdarray is not sorted")
