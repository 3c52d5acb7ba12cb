# SPDX-License-Identifier: Apache-2.0
"""fpe.py — ak.seterr, ak.geterr, ak.seterrcall, ak.geterrcall and
ak.errstate: what happens when an operation on pdarrays divides by zero,
overflows, underflows or gives an invalid result, with NumPy's names,
modes and messages.

The server computes; the client decides. kodiakd's element-wise commands
(binop, axpy, efunc), its float64 sum/prod/mean and its scans look at each
rank's floating-point exception flags after the loop (fetestexcept, and
explicit checks for integer // and % by zero and INT64_MIN // -1, which
NumPy reports too), OR them over the ranks and send them in the reply as a
list of {"ufunc", "flags"}, one per NumPy operation. client.generic_msg hands them to
report() below, which does what the current settings say, exactly as NumPy
does for one ufunc call: 'ignore' nothing; 'warn' a RuntimeWarning;
'raise' a FloatingPointError (the result the server made is freed);
'call' the function given to seterrcall; 'print' a line on stdout; 'log'
the write method of the seterrcall object.

The settings belong to this client (a Python process), as NumPy's belong to
a thread; the default is NumPy's: warn for divide, over and invalid, ignore
under.

Where kodiak's flags can differ from NumPy's: a float64 sum of an array
holding NaN and both infinities (whether inf + -inf is ever computed depends
on the order of the additions: NumPy's is pairwise, kodiak's fixed chunks);
var/std report only NumPy's warnings for size - ddof <= 0; an element-wise
function with where= computes every element, so masked-out elements may warn
where NumPy skips them; a deferred `b * alpha` (ops.defer) warns when it is
computed, not when it is written."""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any, Optional

__all__ = ["errstate", "geterr", "geterrcall", "seterr", "seterrcall"]

MODES = ("ignore", "warn", "raise", "call", "print", "log")
KINDS = ("divide", "over", "under", "invalid")
# how NumPy words each kind in its messages
_WORDS = {"divide": "divide by zero", "over": "overflow", "under": "underflow",
          "invalid": "invalid value"}

_state = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}
_call: Optional[Any] = None


def geterr() -> dict:
    """The current handling of floating-point errors, as numpy.geterr.

    Returns
    -------
    dict
        {'divide': mode, 'over': mode, 'under': mode, 'invalid': mode}.

    Examples
    --------
    >>> ak.geterr()
    {'divide': 'warn', 'over': 'warn', 'under': 'ignore', 'invalid': 'warn'}
    """
    return dict(_state)


def seterr(all: Optional[str] = None, divide: Optional[str] = None,  # noqa: A002
           over: Optional[str] = None, under: Optional[str] = None,
           invalid: Optional[str] = None) -> dict:
    """Set how floating-point errors of pdarray operations are handled, as
    numpy.seterr.

    Parameters
    ----------
    all : str, optional
        The mode for every kind not given by its own argument.
    divide, over, under, invalid : str, optional
        'ignore', 'warn', 'raise', 'call', 'print' or 'log'.

    Returns
    -------
    dict
        The old settings (as geterr).

    Raises
    ------
    ValueError
        A mode that is not one of these.

    Examples
    --------
    >>> old = ak.seterr(divide="raise")
    >>> ak.geterr()["divide"]
    'raise'
    >>> _ = ak.seterr(**old)
    """
    new = {"divide": divide, "over": over, "under": under, "invalid": invalid}
    for k in KINDS:
        if new[k] is None:
            new[k] = all if all is not None else _state[k]
        if new[k] not in MODES:
            raise ValueError(f"invalid error mode {new[k]!r} for {k}: use one of "
                             f"{', '.join(repr(m) for m in MODES)}")
    old = geterr()
    _state.update(new)
    return old


def geterrcall() -> Optional[Any]:
    """The function (or object with a write method) used by the 'call' and
    'log' modes, as numpy.geterrcall.

    Returns
    -------
    callable, object or None

    Examples
    --------
    >>> ak.geterrcall() is None
    True
    """
    return _call


def seterrcall(func: Optional[Any]) -> Optional[Any]:
    """Set what the 'call' mode calls (func(kind_text, flag)) and the 'log'
    mode writes to (func.write(message)), as numpy.seterrcall.

    Parameters
    ----------
    func : callable, object with a write method, or None

    Returns
    -------
    The old one.

    Raises
    ------
    ValueError
        func is neither callable nor has a write method.

    Examples
    --------
    >>> old = ak.seterrcall(print)
    >>> ak.seterrcall(old) is print
    True
    """
    global _call
    if func is not None and not callable(func) and not callable(getattr(func, "write", None)):
        raise ValueError("Only callable can be used as callback")
    old, _call = _call, func
    return old


class errstate(contextlib.ContextDecorator):
    """Context manager (and decorator) for floating-point error handling, as
    numpy.errstate: the settings inside, the old ones restored after.

    Parameters
    ----------
    call : callable or object, optional
        As seterrcall, for the block.
    **kwargs : str
        all, divide, over, under, invalid: as seterr.

    Examples
    --------
    >>> with ak.errstate(divide="ignore"):
    ...     ak.array([1.0]) / 0
    array([inf])
    """

    _unset = object()

    def __init__(self, *, call: Any = _unset, **kwargs: str):
        self.call = call
        self.kwargs = kwargs
        self._old = self._oldcall = None

    def __enter__(self):
        self._old = seterr(**self.kwargs)
        if self.call is not errstate._unset:
            self._oldcall = seterrcall(self.call)

    def __exit__(self, *exc):
        seterr(**self._old)
        if self.call is not errstate._unset:
            seterrcall(self._oldcall)


_PKG = os.path.dirname(os.path.abspath(__file__))


def _stacklevel() -> int:
    """The warnings stacklevel of the first caller outside this package (the
    user's line, as NumPy's warnings show it)."""
    f, level = sys._getframe(1), 1
    while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) == _PKG:
        f, level = f.f_back, level + 1
    return level


# NumPy's bits for the call mode's second argument
_BITS = {"divide": 1, "over": 2, "under": 4, "invalid": 8}


def report(fpe: dict | list, result: Optional[dict] = None) -> None:
    """Act on the flags a command reported, as the settings say (called by
    client.generic_msg).

    Parameters
    ----------
    fpe : dict or list of dict
        {"ufunc": NumPy's name, "flags": kinds raised}, one per NumPy
        operation the command did, in order.
    result : dict, optional
        The command's result: its array is freed when an error is raised.

    Raises
    ------
    FloatingPointError
        A raised kind whose mode is 'raise'.
    """
    if isinstance(fpe, list):
        for one in fpe:
            report(one, result)
        return
    ufunc, flags = fpe.get("ufunc", "?"), [k for k in KINDS if k in fpe.get("flags", ())]
    # NumPy's order: divide, over, under, invalid; 'raise' wins at the first
    for kind in flags:
        mode = _state[kind]
        msg = f"{_WORDS[kind]} encountered in {ufunc}"
        if mode == "ignore":
            continue
        if mode == "raise":
            if result and isinstance(result.get("array"), dict):
                from . import client
                client.queue_free(result["array"]["name"])
            raise FloatingPointError(msg)
        if mode == "warn":
            warnings.warn(msg, RuntimeWarning, stacklevel=_stacklevel())
        elif mode == "print":
            print(f"Warning: {msg}")
        elif mode == "call":
            if not callable(_call):
                raise ValueError(f"Callback function {_call!r} is not callable "
                                 f"(ak.seterrcall sets it)")
            _call(_WORDS[kind], _BITS[kind])
        else:  # log
            if not callable(getattr(_call, "write", None)):
                raise ValueError(f"log mode: {_call!r} has no write method "
                                 f"(ak.seterrcall sets it)")
            _call.write(f"Warning: {msg}\n")

