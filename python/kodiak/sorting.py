"""sorting.py — (being written)."""
__all__ = []
