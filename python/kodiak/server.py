# SPDX-License-Identifier: Apache-2.0
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


def get_config():
    """The server's configuration, with Arkouda's keys where they apply:
    numLocales (kodiakd ranks), numPUs and maxTaskPar (cores of this host),
    physicalMemory (bytes of this host), serverHostname and ServerPort (what
    the client is connected to), arkoudaVersion and kodiakVersion (this
    client's version; the protocol version is serverProtocol), memoryLimit
    (bytes of arrays per rank) and serverPid."""
    import os
    from . import __version__
    info = client.server_info()
    host, _, port = (client._conn.endpoint or "tcp://:0")[len("tcp://"):].rpartition(":")
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        phys = 0
    cores = os.cpu_count() or 1
    return {"numLocales": int(info["ranks"]), "numPUs": cores, "maxTaskPar": cores,
            "physicalMemory": int(phys), "serverHostname": host, "ServerPort": int(port),
            "arkoudaVersion": __version__, "kodiakVersion": __version__,
            "serverProtocol": int(info["version"]),
            "memoryLimit": int(info["memory_limit"]), "serverPid": int(info["pid"])}
