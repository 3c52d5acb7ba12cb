"""launcher.py — (being written)."""
__all__ = []
