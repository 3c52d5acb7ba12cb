"""groupby.py — (being written)."""
__all__ = []
