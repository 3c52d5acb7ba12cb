#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""with_munged.py — run a command beside a munged of its own.

    with_munged.py CMD...

Starts munged with a fresh key, socket, pid, log and seed file in a new
temporary directory (mode 0755, so that clients running as other users,
e.g. a test's child that dropped to uid 65534, reach the socket), runs CMD
with FAM_MUNGE_SOCKET naming that socket, then stops munged and removes the
directory, also when CMD fails or this runner gets SIGTERM (a ctest
timeout). Exit status: CMD's.

munged's socket is a file: famd and clients in other network namespaces
(tests/netns/netns.py hosts) reach it too, as on a cluster where every host
runs a munged with the same key. The C tests' fixture starts famd with
`--auth munge --munge-socket $FAM_MUNGE_SOCKET` when FAM_TEST_AUTH=munge
(tests/fam/fixture.c)."""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def start(d):
    """munged in directory d; returns (process, socket path)."""
    sock = os.path.join(d, "munge.socket")
    key = os.path.join(d, "munge.key")
    with open(key, "wb") as f:
        f.write(secrets.token_bytes(1024))
    os.chmod(key, 0o600)
    log = open(os.path.join(d, "stderr"), "w+")
    p = subprocess.Popen(["munged", "--foreground", "--force", f"--socket={sock}",
                          f"--key-file={key}", f"--pid-file={d}/munged.pid",
                          f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            log.seek(0)
            raise SystemExit(f"with_munged.py: munged did not start: {log.read()}")
        time.sleep(0.02)
    return p, sock


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if shutil.which("munged") is None:
        print("with_munged.py: munged is not installed (scripts/setup.sh installs munge)",
              file=sys.stderr)
        return 1
    d = tempfile.mkdtemp(prefix="kodiak-munge-")
    os.chmod(d, 0o755)
    p = None
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        p, sock = start(d)
        return subprocess.run(argv, env={**os.environ, "FAM_MUNGE_SOCKET": sock}).returncode
    finally:
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
