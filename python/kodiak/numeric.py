"""numeric.py — (being written)."""
__all__ = []
