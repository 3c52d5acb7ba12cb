# SPDX-License-Identifier: Apache-2.0
"""session.py — what joins the client's connection (client.py) to the local
cluster the launcher runs (launcher.py): ak.start(), ak.stop() and
ak.shutdown(). It imports both, so that neither imports the other."""
from __future__ import annotations

from typing import Optional, Union

from . import client, launcher

__all__ = ["start", "stop", "shutdown"]


def start(fam_servers: int = 2, ranks: int = 2, memory_limit: Union[int, str, None] = None,
          pool_size: Union[int, str] = "1G", provider: str = "shm", port: int = 0,
          timeout: float = 60.0, persistent: bool = False,
          request_timeout: Optional[float] = None, hostfile: Optional[str] = None,
          launcher_cmd: str = "ssh", auth: str = "none",
          munge_socket: Optional[str] = None) -> dict:
    """Start a local cluster (as `kodiak up`) and connect to it.

    Parameters
    ----------
    fam_servers : int
        How many famd memory servers to start (0: none, no FAM arrays).
    ranks : int
        How many kodiakd MPI ranks.
    memory_limit : int or str, optional
        Bytes of arrays each rank may hold (e.g. "4G"); None: kodiakd's default.
    pool_size : int or str
        Each famd's memory pool (e.g. "1G").
    provider : str
        The fabric between libfam and famd: "shm" or "tcp".
    port : int
        kodiakd's TCP port (0: any free port).
    timeout : float
        Seconds the cluster may take to get ready.
    persistent : bool
        Each famd keeps its pool in a file and its port across restarts
        (see launcher.up).
    request_timeout : float, optional
        Seconds a client waits for each answer (None: kodiakd's default,
        600; 0: no limit).
    hostfile : str, optional
        Run on many hosts as `kodiak up --hostfile` (docs/DEPLOY.md): famd
        on its memory hosts, kodiakd's ranks on its compute hosts;
        fam_servers, ranks, pool_size and persistent are then the file's,
        and provider is "tcp" unless another cross-host one is given.
    launcher_cmd : str
        With hostfile: the command that runs a shell command on a host
        (`CMD HOST 'command'`; default "ssh").
    auth : str
        With hostfile: "none" (famd takes a client on another host for
        nobody) or "munge" (famd --auth munge: kodiakd's ranks are the user
        who runs them, by MUNGE credential; munged must run on every host).
    munge_socket : str, optional
        With auth="munge": munged's socket on every host, when not
        /run/munge/munge.socket.2.

    Returns
    -------
    dict
        The server's info (version, ranks, memory_limit, pid, ...).

    Raises
    ------
    ClusterRunning
        A cluster already runs: ak.connect() uses that one.
    LaunchError
        The cluster could not be started (the message quotes the log).

    Examples
    --------
    >>> info = ak.start(fam_servers=0, ranks=1)  # doctest: +SKIP
    >>> info["ranks"]  # doctest: +SKIP
    1
    """
    if hostfile is not None:
        state = launcher.up_hosts(hostfile, launcher=launcher_cmd,
                                  provider="tcp" if provider == "shm" else provider,
                                  port=port, timeout=max(timeout, 120.0),
                                  memory_limit=memory_limit, request_timeout=request_timeout,
                                  auth=auth, munge_socket=munge_socket)
        try:
            return client.connect(connect_file=state["connect_file"])
        except BaseException:
            launcher.down()
            raise
    if auth != "none" or munge_socket is not None:
        raise ValueError("auth and munge_socket go with hostfile (on one host famd takes "
                         "each client's identity from its Unix socket)")
    state = launcher.up(fam_servers=fam_servers, ranks=ranks, memory_limit=memory_limit,
                        pool_size=pool_size, provider=provider, port=port, timeout=timeout,
                        persistent=persistent, request_timeout=request_timeout)
    try:
        return client.connect(connect_file=state["connect_file"])
    except BaseException:
        launcher.down()
        raise


def stop(timeout: float = 10.0) -> list:
    """Disconnect and stop the cluster ak.start() / `kodiak up` started.

    Its arrays are lost. Safe when nothing runs.

    Parameters
    ----------
    timeout : float
        Seconds each process may take to stop before it is killed.

    Returns
    -------
    list of str
        What was done, one line each (empty if nothing ran).

    Examples
    --------
    >>> ak.stop()  # doctest: +SKIP
    ['stopped kodiakd (1 ranks, mpirun pid 4242) by shutdown command']
    """
    client.disconnect()
    return launcher.down(timeout=timeout)


def shutdown() -> None:
    """Stop the server (all its arrays are lost) and disconnect.

    If it is the kodiakd of the local cluster `kodiak up` / ak.start()
    launched, the rest of that cluster (its famd processes) is stopped too,
    as `kodiak down`.

    Returns
    -------
    None

    Raises
    ------
    ConnectionError
        Not connected to a kodiak server.

    Examples
    --------
    >>> ak.shutdown()  # doctest: +SKIP
    """
    ep = client._conn.endpoint
    try:
        client.generic_msg("shutdown")
    finally:
        client.disconnect()
        state = launcher._read_json(launcher.state_file())
        if state and ep and state.get("port") and ep.endswith(f":{state['port']}"):
            launcher.down()
