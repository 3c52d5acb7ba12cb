"""ops.py — operators, astype and the element-wise methods of pdarray (being written)."""


class _OpsMixin:
    pass
