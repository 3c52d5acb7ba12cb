# SPDX-License-Identifier: Apache-2.0
"""test_layout.py — the Python package's modules depend on each other in one
direction: client.py (the connection) and launcher.py (the local cluster)
never import each other, anywhere in the file; both take the wire format
from wire.py and the file and program locations from paths.py, which import
neither. The names users and tests reach through client and launcher stay
there."""
import ast
import os
import subprocess

import pytest

import kodiak
from kodiak import client, launcher, paths, session, wire

PKG = os.path.dirname(os.path.abspath(kodiak.__file__))


def imported_modules(module):
    """The kodiak modules `module` (a file name in the package, without .py)
    imports, at module level or inside functions, in any spelling: `from .
    import x`, `from .x import y`, `from kodiak import x`, `import kodiak.x`."""
    with open(os.path.join(PKG, module + ".py")) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("kodiak."):
                    out.add(a.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom):
            inside = node.level == 1 or (node.level == 0 and node.module and
                                         node.module.split(".")[0] == "kodiak")
            if not inside:
                continue
            mod = node.module if node.level == 1 else node.module.partition(".")[2]
            if mod:
                out.add(mod.split(".")[0])
            else:  # from . import a, b / from kodiak import a, b
                out.update(a.name for a in node.names)
    return out


def test_the_finder_sees_every_spelling_of_an_import():
    # the modules that do import others, so a blind finder cannot pass
    assert {"client", "launcher"} <= imported_modules("session")
    assert {"paths", "wire"} <= imported_modules("client")
    assert {"paths", "wire"} <= imported_modules("launcher")
    assert "client" in imported_modules("server")


def test_client_and_launcher_do_not_import_each_other():
    assert "launcher" not in imported_modules("client"), imported_modules("client")
    assert "session" not in imported_modules("client")
    assert "client" not in imported_modules("launcher"), imported_modules("launcher")
    assert "session" not in imported_modules("launcher")


def test_wire_and_paths_import_no_other_kodiak_module():
    assert imported_modules("wire") == set()
    assert imported_modules("paths") == set()


def test_the_names_users_and_tests_reach_stay_where_they_were():
    assert client.PROTOCOL_VERSION == wire.PROTOCOL_VERSION
    assert client.KodiakError is wire.KodiakError is kodiak.KodiakError
    assert client.ServerBusyError is kodiak.ServerBusyError
    assert client.RequestTimeoutError is kodiak.RequestTimeoutError
    assert client.state_dir is paths.state_dir
    assert client.default_connect_file is paths.default_connect_file
    assert launcher.state_file is paths.state_file
    for name in ("start", "stop", "shutdown"):
        assert getattr(kodiak, name) is getattr(session, name)
    for name in ("cluster_status", "LaunchError", "ClusterRunning", "connect",
                 "disconnect", "connected", "server_info"):
        assert hasattr(kodiak, name), name


def test_every_source_file_names_its_licence():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, ".git")):
        pytest.fail("the SPDX check lists files with git: run it from a clone")
    r = subprocess.run(["/usr/bin/python3", os.path.join(root, "scripts", "spdx.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
