# SPDX-License-Identifier: Apache-2.0
"""paths.py — where Kodiak's files and programs are: the state directory
($KODIAK_HOME, default ~/.kodiak), the connect file ($KODIAK_CONNECT_FILE,
default <state dir>/connect.json), cluster.json, and the kodiakd and famd
binaries ($KODIAK_BUILD, else the repository's build/, else PATH). Both
client.py and launcher.py ask here; neither asks the other."""
from __future__ import annotations

import os
import shutil

__all__ = ["state_dir", "default_connect_file", "state_file", "find_binary"]


def state_dir() -> str:
    """The launcher's directory: $KODIAK_HOME, else ~/.kodiak.

    Returns
    -------
    str
        The directory (it may not exist yet).

    Examples
    --------
    >>> from kodiak import paths
    >>> import os
    >>> paths.state_dir() == (os.environ.get("KODIAK_HOME") or
    ...                       os.path.expanduser("~/.kodiak"))
    True
    """
    return os.environ.get("KODIAK_HOME") or os.path.join(os.path.expanduser("~"), ".kodiak")


def default_connect_file() -> str:
    """Where `kodiak up` and ak.start() write the connect file.

    Returns
    -------
    str
        $KODIAK_CONNECT_FILE, else connect.json in the state directory.

    Examples
    --------
    >>> from kodiak import paths
    >>> import os
    >>> paths.default_connect_file() == (os.environ.get("KODIAK_CONNECT_FILE") or
    ...     os.path.join(paths.state_dir(), "connect.json"))
    True
    """
    env = os.environ.get("KODIAK_CONNECT_FILE")
    if env:
        return env
    return os.path.join(state_dir(), "connect.json")


def state_file() -> str:
    """Where the launcher records the cluster it started (cluster.json).

    Returns
    -------
    str
        cluster.json in the state directory.

    Examples
    --------
    >>> from kodiak import paths
    >>> import os
    >>> paths.state_file() == os.path.join(paths.state_dir(), "cluster.json")
    True
    """
    return os.path.join(state_dir(), "cluster.json")


def find_binary(name: str) -> str:
    """The path of one of Kodiak's programs.

    Parameters
    ----------
    name : str
        "kodiakd" or "famd".

    Returns
    -------
    str
        $KODIAK_BUILD/name if KODIAK_BUILD is set, else <repo>/build/name,
        else name found on PATH.

    Raises
    ------
    FileNotFoundError
        No executable of that name where KODIAK_BUILD says, or, without
        KODIAK_BUILD, neither in the repository's build/ nor on PATH.

    Examples
    --------
    >>> from kodiak import paths
    >>> import os
    >>> os.path.basename(paths.find_binary("kodiakd"))
    'kodiakd'
    """
    env = os.environ.get("KODIAK_BUILD")
    if env:
        path = os.path.join(env, name)
        if os.access(path, os.X_OK):
            return path
        raise FileNotFoundError(f"{name} not found in KODIAK_BUILD={env}")
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.normpath(os.path.join(here, "..", "..", "build", name))
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"cannot find {name}: not in {os.path.dirname(path)} and not "
                            f"on PATH (build with `make build`, or set KODIAK_BUILD)")
