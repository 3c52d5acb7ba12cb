"""indexing.py — pdarray[...] and pdarray[...] = ... (being written)."""


class _IndexMixin:
    pass
