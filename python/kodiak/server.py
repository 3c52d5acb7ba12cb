"""server.py — what the server holds: its symbol table and memory per rank."""
from . import client


def list_symbols():
    """Names of the arrays the server holds, oldest first."""
    res, _ = client.generic_msg("list_symbols")
    return [s["name"] for s in res["symbols"]]


def symbol_info():
    """[{name, dtype, size}] of every array the server holds."""
    res, _ = client.generic_msg("list_symbols")
    return res["symbols"]


def get_mem_status():
    """Per rank: {rank, used, limit, available} in bytes (used and limit count
    array data; available is the node's free memory)."""
    res, _ = client.generic_msg("memory")
    return res["ranks"]


def get_mem_used():
    """Bytes of arrays held, summed over the ranks."""
    return sum(r["used"] for r in get_mem_status())


def get_mem_avail():
    """Bytes the ranks may still allocate under their memory limits."""
    return sum(max(0, r["limit"] - r["used"]) for r in get_mem_status())
