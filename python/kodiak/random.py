# SPDX-License-Identifier: Apache-2.0
"""random.py — `ak.random`: NumPy's Generator (`ak.random.default_rng`) and
the legacy functions (`seed`, `rand`, `randint`, `uniform`,
`standard_normal`), with Arkouda's names.

Every draw is counter based and made on the server (see
docs/RANDOM.md): element i of a draw is a hash of (stream key, i), where i is
the element's global index, so a seeded Generator gives the same arrays
whatever the number of ranks. The Generator keeps only its seed and a count
of the draws it made; draw k uses the stream key splitmix64(seed, k), so two
Generators with one seed give the same sequence of arrays. The bits are not
NumPy's."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import creation
from .dtypes import bool_, float64, int64, resolve_dtype, uint64
from .pdarrayclass import pdarray
from .stats import quiet

__all__ = ["Generator", "default_rng", "seed", "rand", "randint", "uniform",
           "standard_normal"]

_M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """The splitmix64 finaliser of a 64-bit integer (the server's mix64)."""
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & _M64
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & _M64
    return z ^ (z >> 31)


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_size(size):
    """None (one value) or a non-negative int size; NumPy also takes a
    1-tuple."""
    if size is None:
        return None
    if isinstance(size, tuple):
        if len(size) != 1:
            raise ValueError(f"size {size}: pdarrays are one-dimensional")
        size = size[0]
    return creation._size(size)


def _draw_count(size):
    """How many values to draw for `size` (checked): 1 for None (one value,
    given back as a scalar by _scalar_or_array), else the size."""
    n = _check_size(size)
    return 1 if n is None else n


def _scalar_or_array(arr: pdarray, size):
    """A NumPy scalar when size was None (NumPy's result), else arr."""
    if size is None:
        return arr.to_ndarray()[0]
    return arr


def _check_scale(scale):
    if isinstance(scale, pdarray) or np.ndim(scale) != 0:
        raise TypeError("scale must be a scalar")
    if scale < 0:
        raise ValueError("scale < 0")


class Generator:
    """A seeded source of random pdarrays with numpy.random.Generator's
    methods (Arkouda's ak.random.Generator). Make one with
    ak.random.default_rng(seed).

    Parameters
    ----------
    seed : int, optional
        Non-negative; default: a fresh random one.

    Examples
    --------
    >>> rng = ak.random.default_rng(17)
    >>> rng.integers(0, 10, 5).dtype
    dtype('int64')
    """

    def __init__(self, seed: Optional[int] = None):
        if seed is None:
            seed = _fresh_seed()
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer, not {type(seed).__name__}")
        if seed < 0:
            raise ValueError("Seed must be between 0 and 2**64 - 1")
        self._seed = int(seed) & _M64
        self._draws = 0

    def __repr__(self):
        return "Generator(kodiak counter-based)"

    def _stream(self) -> int:
        """The seed (63 bits, as the server's commands take) of the next draw."""
        k = _splitmix64(self._seed ^ _splitmix64(self._draws + 0x632be59bd9b4e019))
        self._draws += 1
        return k >> 1

    # ---- integers and reals -----------------------------------------------------------
    def integers(self, low: int, high: Optional[int] = None, size: Optional[int] = None,
                 dtype: Any = int64, endpoint: bool = False) -> pdarray | np.integer:
        """Random integers in [low, high) ([low, high] with endpoint), as
        numpy.random.Generator.integers.

        Parameters
        ----------
        low : int
            Lowest value (or, without `high`, one past the highest, low 0).
        high : int, optional
        size : int, optional
            Number of values; None gives one value, not an array.
        dtype : dtype-like, optional
            int64 (default), uint64 or bool.
        endpoint : bool, optional
            Whether high itself may come out.

        Returns
        -------
        pdarray, or a NumPy scalar when size is None

        Raises
        ------
        ValueError
            low >= high (low > high with endpoint), or a bound outside dtype.
        TypeError
            `dtype` is not an integer dtype a pdarray holds.

        Examples
        --------
        >>> r = ak.random.default_rng(1).integers(5, 10, 1000)
        >>> bool((r >= 5).all() and (r < 10).all())
        True
        """
        dt = resolve_dtype(dtype)
        if dt not in (int64, uint64, bool_):
            raise TypeError(f"Unsupported dtype {np.dtype(dt)!r} for integers")
        if high is None:
            low, high = 0, low
        low, high = int(low), int(high)
        if endpoint:
            high += 1
        if low >= high:
            raise ValueError("low > high" if endpoint else "low >= high")
        lo_ok = {int64: -2**63, uint64: 0, bool_: 0}[dt]
        hi_ok = {int64: 2**63, uint64: 2**64, bool_: 2}[dt]
        if low < lo_ok:
            raise ValueError(f"low is out of bounds for {np.dtype(dt).name}")
        if high > hi_ok:
            raise ValueError(f"high is out of bounds for {np.dtype(dt).name}")
        k = _draw_count(size)
        # bool: drawn as int64 in [low, high), then cast
        r = creation.randint(low, high, k, int64 if dt == bool_ else dt, seed=self._stream())
        if dt == bool_:
            r = r.astype(bool_)
        return _scalar_or_array(r, size)

    def random(self, size: Optional[int] = None) -> pdarray | np.float64:
        """Random floats in [0, 1), as numpy.random.Generator.random.

        Parameters
        ----------
        size : int, optional
            Number of values; None gives one value.

        Returns
        -------
        pdarray (float64), or a numpy.float64 when size is None

        Raises
        ------
        ValueError
            `size` is negative.

        Examples
        --------
        >>> x = ak.random.default_rng(2).random(100)
        >>> bool((x >= 0).all() and (x < 1).all())
        True
        """
        r = creation.uniform(_draw_count(size), 0.0, 1.0, seed=self._stream())
        return _scalar_or_array(r, size)

    def uniform(self, low: float = 0.0, high: float = 1.0,
                size: Optional[int] = None) -> pdarray | np.float64:
        """Random floats in [low, high), as numpy.random.Generator.uniform.

        Parameters
        ----------
        low, high : float, optional
            The bounds (default 0 and 1).
        size : int, optional
            Number of values; None gives one value.

        Returns
        -------
        pdarray (float64), or a numpy.float64 when size is None

        Raises
        ------
        OverflowError
            high - low is not finite (as NumPy: 'Range exceeds valid bounds').

        Examples
        --------
        >>> u = ak.random.default_rng(3).uniform(-1, 1, 100)
        >>> bool((u >= -1).all() and (u < 1).all())
        True
        """
        k = _draw_count(size)
        if not np.isfinite(float(high) - float(low)):
            raise OverflowError("Range exceeds valid bounds")
        r = creation.uniform(k, float(low), float(high), seed=self._stream())
        return _scalar_or_array(r, size)

    def standard_normal(self, size: Optional[int] = None) -> pdarray | np.float64:
        """Values from the standard normal distribution, as
        numpy.random.Generator.standard_normal (Box-Muller on the server).

        Parameters
        ----------
        size : int, optional
            Number of values; None gives one value.

        Returns
        -------
        pdarray (float64), or a numpy.float64 when size is None

        Raises
        ------
        ValueError
            `size` is negative.

        Examples
        --------
        >>> z = ak.random.default_rng(4).standard_normal(100000)
        >>> bool(abs(z.mean()) < 0.02)
        True
        """
        r = creation.standard_normal(_draw_count(size), seed=self._stream())
        return _scalar_or_array(r, size)

    def normal(self, loc: float = 0.0, scale: float = 1.0,
               size: Optional[int] = None) -> pdarray | np.float64:
        """Values from the normal distribution N(loc, scale**2), as
        numpy.random.Generator.normal.

        Parameters
        ----------
        loc : float, optional
            Mean (default 0).
        scale : float, optional
            Standard deviation, >= 0 (default 1).
        size : int, optional
            Number of values; None gives one value.

        Returns
        -------
        pdarray (float64), or a numpy.float64 when size is None

        Raises
        ------
        ValueError
            scale < 0.

        Examples
        --------
        >>> x = ak.random.default_rng(5).normal(10.0, 2.0, 100000)
        >>> bool(abs(x.mean() - 10) < 0.05)
        True
        """
        _check_scale(scale)
        z = creation.standard_normal(_draw_count(size), seed=self._stream())
        with quiet():
            return _scalar_or_array(z * float(scale) + float(loc), size)

    def exponential(self, scale: float = 1.0,
                    size: Optional[int] = None) -> pdarray | np.float64:
        """Values from the exponential distribution of mean `scale`, as
        numpy.random.Generator.exponential (-scale * log1p(-u), u uniform
        in [0, 1)).

        Parameters
        ----------
        scale : float, optional
            The mean, >= 0 (default 1).
        size : int, optional
            Number of values; None gives one value.

        Returns
        -------
        pdarray (float64), or a numpy.float64 when size is None

        Raises
        ------
        ValueError
            scale < 0.

        Examples
        --------
        >>> x = ak.random.default_rng(6).exponential(2.0, 100000)
        >>> bool(abs(x.mean() - 2) < 0.05 and (x >= 0).all())
        True
        """
        _check_scale(scale)
        from .numeric import log1p  # noqa: F401 — one of numeric's EFUNCS
        u = creation.uniform(_draw_count(size), 0.0, 1.0, seed=self._stream())
        with quiet():
            return _scalar_or_array(log1p(-u) * -float(scale), size)

    # ---- permutations and samples ---------------------------------------------------
    def _random_order(self, n: int) -> pdarray:
        """A random permutation of range(n): the stable order of n random
        64-bit keys (the same whatever the number of ranks)."""
        from .sorting import argsort
        keys = creation.randint(0, 2**64, n, uint64, seed=self._stream())
        return argsort(keys)

    def permutation(self, x: int | pdarray) -> pdarray:
        """A randomly permuted range(x), or a permuted copy of pdarray x, as
        numpy.random.Generator.permutation.

        Parameters
        ----------
        x : int or pdarray

        Returns
        -------
        pdarray

        Raises
        ------
        TypeError
            x is neither an integer nor a pdarray.
        ValueError
            x is a negative integer.

        Examples
        --------
        >>> p = ak.random.default_rng(7).permutation(10)
        >>> sorted(p.to_list())
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        """
        if isinstance(x, pdarray):
            return x[self._random_order(x.size)]
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
            raise TypeError(f"x must be an integer or a pdarray, not {type(x).__name__}")
        if x < 0:
            raise ValueError("negative dimensions are not allowed")
        return self._random_order(int(x))

    def shuffle(self, x: pdarray) -> None:
        """Permute the elements of pdarray x in place, as
        numpy.random.Generator.shuffle.

        Parameters
        ----------
        x : pdarray

        Returns
        -------
        None

        Raises
        ------
        TypeError
            x is not a pdarray.

        Examples
        --------
        >>> a = ak.arange(5)
        >>> ak.random.default_rng(8).shuffle(a)
        >>> sorted(a.to_list())
        [0, 1, 2, 3, 4]
        """
        if not isinstance(x, pdarray):
            raise TypeError(f"shuffle needs a pdarray, not {type(x).__name__}")
        x[:] = x[self._random_order(x.size)]

    def choice(self, a: int | pdarray, size: Optional[int] = None, replace: bool = True,
               p: Optional[Any] = None) -> pdarray | np.generic:
        """A random sample of range(a) or of the elements of pdarray a, as
        numpy.random.Generator.choice.

        Without replacement and without p the sample is the first `size`
        elements of a random permutation; with p it is drawn by weighted
        random keys (Efraimidis–Spirakis: the `size` smallest of
        Exp(1) / p), which is sampling without replacement with
        probabilities p. With replacement and p, each value is the first
        whose cumulative probability exceeds a uniform draw.

        Parameters
        ----------
        a : int or pdarray
            The population: range(a), or a's elements.
        size : int, optional
            Number of values; None gives one value.
        replace : bool, optional
            Whether a value may be drawn more than once (default True).
        p : pdarray or array_like of float, optional
            The probability of each element of the population (they must
            sum to 1); default uniform.

        Returns
        -------
        pdarray, or a NumPy scalar when size is None

        Raises
        ------
        ValueError
            a is an empty population (with size > 0), p is not of a's size,
            has negative or NaN entries or does not sum to 1, or without
            replacement size exceeds the population (or p's non-zero
            entries).
        TypeError
            a is neither an integer nor a pdarray.

        Examples
        --------
        >>> s = ak.random.default_rng(9).choice(100, 10, replace=False)
        >>> len(set(s.to_list()))
        10
        """
        from .numeric import cumsum, log1p
        from .sorting import argsort
        if isinstance(a, pdarray):
            pop = a.size
        elif isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"a must be an integer or a pdarray, not {type(a).__name__}")
        else:
            pop = int(a)
            if pop < 0:
                raise ValueError("a must be a positive integer unless no samples are taken")
        k = _draw_count(size)
        if pop == 0 and k > 0:
            raise ValueError("a cannot be empty unless no samples are taken")
        pw = None
        if p is not None:
            if isinstance(p, pdarray):
                pw = p.astype(float64) if p.dtype != float64 else p
            else:
                pn = np.asarray(p, dtype=np.float64)
                if pn.ndim != 1:
                    raise ValueError("p must be 1-dimensional")
                pw = creation.array(pn)
            if pw.size != pop:
                raise ValueError("a and p must have same size")
            if pop:
                from .numeric import isnan
                if bool((pw < 0).any()) or bool(isnan(pw).any()):
                    raise ValueError("probabilities are not non-negative")
                if abs(float(pw.sum()) - 1.0) > np.sqrt(np.finfo(np.float64).eps):
                    raise ValueError("probabilities do not sum to 1")
        if replace:
            if pw is None:
                idx = creation.randint(0, max(pop, 1), k, int64, seed=self._stream())
            else:
                cdf = cumsum(pw)
                cdf = cdf / cdf[pop - 1]
                u = creation.uniform(k, 0.0, 1.0, seed=self._stream())
                from .search import searchsorted
                idx = searchsorted(cdf, u, side="right")
                idx[idx >= pop] = pop - 1  # u above the rounded last sum
        else:
            if k > pop:
                raise ValueError("Cannot take a larger sample than population when "
                                 "replace is False")
            if pw is None:
                idx = self._random_order(pop)[0:k]
            else:
                if int((pw > 0).sum()) < k:
                    raise ValueError("Fewer non-zero entries in p than size")
                u = creation.uniform(pop, 0.0, 1.0, seed=self._stream())
                from .numeric import where
                # Exp(1) / p, and inf where p == 0 (no division by zero: a
                # user's ak.seterr(divide='raise') must not trip here)
                pos = pw > 0
                with quiet():
                    keys = where(pos, (log1p(-u) * -1.0) / where(pos, pw, 1.0), np.inf)
                idx = argsort(keys)[0:k]
        out = a[idx] if isinstance(a, pdarray) else idx
        return _scalar_or_array(out, size)


def default_rng(seed: Optional[int | Generator] = None) -> Generator:
    """A new Generator, as numpy.random.default_rng (a Generator passed in is
    returned unchanged).

    Parameters
    ----------
    seed : int or Generator, optional
        Non-negative; default: a fresh random one.

    Returns
    -------
    Generator

    Raises
    ------
    TypeError
        `seed` is not an integer.
    ValueError
        `seed` is negative.

    Examples
    --------
    >>> a = ak.random.default_rng(42).random(5)
    >>> b = ak.random.default_rng(42).random(5)
    >>> bool((a == b).all())
    True
    """
    if isinstance(seed, Generator):
        return seed
    return Generator(seed)


# ---- the legacy functions: one module-wide Generator ------------------------------------
_global = Generator()


def seed(seed: Optional[int] = None) -> None:
    """Reseed the generator the legacy functions use, as numpy.random.seed.

    Parameters
    ----------
    seed : int, optional
        Non-negative; default: a fresh random one.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        `seed` is negative.

    Examples
    --------
    >>> ak.random.seed(1); a = ak.random.rand(3)
    >>> ak.random.seed(1); b = ak.random.rand(3)
    >>> bool((a == b).all())
    True
    """
    global _global
    _global = Generator(seed)


def rand(*size: int) -> pdarray | np.float64:
    """Random floats in [0, 1), as numpy.random.rand (no argument: one
    value).

    Parameters
    ----------
    *size : int
        At most one: the number of values.

    Returns
    -------
    pdarray (float64), or a numpy.float64 without arguments

    Raises
    ------
    ValueError
        More than one dimension, or a negative size.

    Examples
    --------
    >>> ak.random.rand(4).size
    4
    """
    if len(size) > 1:
        raise ValueError(f"size {size}: pdarrays are one-dimensional")
    return _global.random(size[0] if size else None)


def randint(low: int, high: Optional[int] = None, size: Optional[int] = None,
            dtype: Any = int64, seed: Optional[int] = None) -> pdarray | np.integer:
    """Random integers in [low, high), as numpy.random.randint and
    Arkouda's ak.random.randint (without `high`: [0, low)).

    Parameters
    ----------
    low : int
    high : int, optional
    size : int, optional
        Number of values; None gives one value.
    dtype : dtype-like, optional
        int64 (default), uint64 or bool.
    seed : int, optional
        A seed for this call; default: the module's generator (see seed()).

    Returns
    -------
    pdarray, or a NumPy scalar when size is None

    Raises
    ------
    ValueError
        low >= high.

    Examples
    --------
    >>> r = ak.random.randint(3, size=100, seed=1)
    >>> bool((r >= 0).all() and (r < 3).all())
    True
    """
    g = _global if seed is None else Generator(seed)
    return g.integers(low, high, size, dtype)


def uniform(low: float = 0.0, high: float = 1.0, size: Optional[int] = None,
            seed: Optional[int] = None) -> pdarray | np.float64:
    """Random floats in [low, high), as numpy.random.uniform.

    Parameters
    ----------
    low, high : float, optional
    size : int, optional
        Number of values; None gives one value.
    seed : int, optional
        A seed for this call; default: the module's generator.

    Returns
    -------
    pdarray (float64), or a numpy.float64 when size is None

    Raises
    ------
    ValueError
        `size` is negative.

    Examples
    --------
    >>> ak.random.uniform(0, 5, 3, seed=2).size
    3
    """
    g = _global if seed is None else Generator(seed)
    return g.uniform(low, high, size)


def standard_normal(size: Optional[int] = None, seed: Optional[int] = None) -> pdarray | np.float64:
    """Values from the standard normal distribution, as
    numpy.random.standard_normal.

    Parameters
    ----------
    size : int, optional
        Number of values; None gives one value.
    seed : int, optional
        A seed for this call; default: the module's generator.

    Returns
    -------
    pdarray (float64), or a numpy.float64 when size is None

    Raises
    ------
    ValueError
        `size` is negative.

    Examples
    --------
    >>> ak.random.standard_normal(3, seed=2).size
    3
    """
    g = _global if seed is None else Generator(seed)
    return g.standard_normal(size)
