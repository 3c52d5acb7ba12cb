# SPDX-License-Identifier: Apache-2.0
"""categorical.py — ak.Categorical: a text column as int64 codes (a pdarray
held by kodiakd) into a sorted array of categories (kept by the client),
as Arkouda's Categorical and pandas' astype("category").

read_csv makes them for text columns: categories are every distinct value
in the order pandas sorts them (Python's str order), code i means
categories[i], and a missing value (an empty field, "NA", ...) is code -1,
as in pandas.Categorical.codes."""
from __future__ import annotations

import numpy as np

from .pdarrayclass import pdarray

__all__ = ["Categorical"]


class Categorical:
    """A categorical array: ``codes`` (pdarray of int64, -1 for missing) and
    ``categories`` (NumPy array of str, sorted).

    Parameters
    ----------
    codes : pdarray
        int64 codes into categories; -1 is a missing value.
    categories : np.ndarray
        The distinct values (str), sorted.

    Examples
    --------
    >>> import kodiak as ak
    >>> c = ak.Categorical(ak.array([1, 0, -1, 1]), np.array(["a", "b"]))
    >>> c.to_ndarray()
    array(['b', 'a', nan, 'b'], dtype=object)
    >>> len(c), c.size
    (4, 4)
    """

    def __init__(self, codes: pdarray, categories: np.ndarray) -> None:
        """
        Parameters
        ----------
        codes : pdarray
            int64 codes into categories; -1 is a missing value.
        categories : np.ndarray
            The distinct values (str), sorted.

        Raises
        ------
        TypeError
            If codes is not an int64 pdarray.
        """
        if not isinstance(codes, pdarray) or codes.dtype != np.int64:
            raise TypeError("Categorical codes must be an int64 pdarray")
        self.codes = codes
        self.categories = np.asarray(categories, dtype=str)

    @property
    def size(self) -> int:
        """Number of elements."""
        return self.codes.size

    @property
    def shape(self) -> tuple:
        return (self.size,)

    @property
    def ndim(self) -> int:
        return 1

    @property
    def dtype(self) -> str:
        return "category"

    def __len__(self) -> int:
        return self.size

    def to_ndarray(self) -> np.ndarray:
        """The values as a NumPy object array of str (NaN where missing, as
        pandas' object columns hold them).

        Returns
        -------
        np.ndarray
            dtype object, one str (or NaN) per element.

        Examples
        --------
        >>> ak.Categorical(ak.array([0, 0]), np.array(["x"])).to_ndarray()
        array(['x', 'x'], dtype=object)
        """
        codes = self.codes.to_ndarray()
        cats = np.empty(len(self.categories) + 1, dtype=object)
        cats[:-1] = self.categories.astype(object)
        cats[-1] = np.nan
        return cats[codes]  # code -1 picks the NaN at the end

    def tolist(self) -> list:
        """The values as a Python list of str (NaN where missing).

        Returns
        -------
        list
            One str (or NaN) per element.

        Examples
        --------
        >>> ak.Categorical(ak.array([1, 0]), np.array(["x", "y"])).tolist()
        ['y', 'x']
        """
        return self.to_ndarray().tolist()

    def __iter__(self):
        return iter(self.to_ndarray())

    def _printable(self) -> np.ndarray:
        opts = np.get_printoptions()
        if self.size <= opts["threshold"]:
            return self.to_ndarray()
        k = opts["edgeitems"]
        head = Categorical(self.codes[:k], self.categories).to_ndarray()
        tail = Categorical(self.codes[self.size - k:], self.categories).to_ndarray()
        filler = np.repeat(head[:1], opts["threshold"] + 1)
        return np.concatenate([head, filler, tail])

    def __repr__(self) -> str:
        body = np.array_repr(self._printable())
        body = body[len("array("):] if body.startswith("array(") else body
        return "Categorical(" + body

    def __str__(self) -> str:
        return np.array_str(self._printable())

    def info(self) -> str:
        """A one-line description: the codes' server name and the sizes.

        Returns
        -------
        str
            "Categorical: <n> codes in pdarray '<name>', <k> categories".

        Examples
        --------
        >>> ak.Categorical(ak.array([0, 0]), np.array(["x"])).info()  # doctest: +ELLIPSIS
        "Categorical: 2 codes in pdarray 'id_...', 1 categories"
        """
        return (f"Categorical: {self.size} codes in pdarray '{self.codes.name}', "
                f"{len(self.categories)} categories")
