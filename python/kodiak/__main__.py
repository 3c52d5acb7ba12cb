# SPDX-License-Identifier: Apache-2.0
"""__main__.py — the `kodiak` command (also `python3 -m kodiak`): up, status
and down of a local cluster (see launcher.py for what runs and where its
files are)."""
import argparse
import sys

from . import client, launcher


def _bytes(n):
    if n is None:
        return "?"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _alive(flag):
    return {True: "alive", False: "DEAD", None: "?"}[flag]


def print_status(st, out=sys.stdout):
    """Print cluster_status()'s dict for people."""
    word = "running" if st["running"] else "NOT HEALTHY (see below; `kodiak down` clears it)"
    print(f"kodiak cluster: {word}", file=out)
    print(f"  kodiakd   tcp://{st['host']}:{st['port']}  {st['ranks']} ranks  mpirun pid "
          f"{st['mpirun']['pid']} {_alive(st['mpirun']['alive'])}"
          + ("" if st["answering"] or not st["mpirun"]["alive"]
             else f"  not answering: {st['error']}"), file=out)
    for r in st["kodiakd"]:
        mem = (f"arrays {_bytes(r['used'])} of {_bytes(r['limit'])}"
               if r["used"] is not None else "memory unknown")
        print(f"    rank {r['rank']}  pid {r['pid']} {_alive(r['alive'])}  {mem}", file=out)
    if st.get("compute"):  # a hostfile cluster: where the ranks run
        print("    on compute hosts " + ", ".join(f"{c['host']} ({c['ranks']} ranks)"
                                                  for c in st["compute"]), file=out)
    if st.get("auth") == "munge":
        print(f"  famd --auth munge (munged socket "
              f"{st.get('munge_socket') or launcher.MUNGE_SOCKET})", file=out)
    for i, f in enumerate(st["famd"]):
        where = f"on host {f['host']}  " if f.get("host") else ""
        print(f"  famd #{i}   {f['address']}  {where}pid {f['pid']} {_alive(f['alive'])}  "
              f"pool {_bytes(st['pool_size'])} ({st['provider']})", file=out)
    print(f"  connect file {st['connect_file']}", file=out)
    print(f"  state {st['state_file']}  logs in {st['logs']}", file=out)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="kodiak", description="Start, inspect and stop a local Kodiak cluster: famd "
        "memory servers and a kodiakd compute server under mpirun. Files live in "
        "$KODIAK_HOME (default ~/.kodiak).")
    sub = ap.add_subparsers(dest="what", required=True)
    u = sub.add_parser("up", help="start famd servers and kodiakd, detached")
    u.add_argument("--fam-servers", type=int, default=2, metavar="N",
                   help="famd memory servers (default 2; 0 for none)")
    u.add_argument("--ranks", type=int, default=2, metavar="R",
                   help="MPI ranks of kodiakd (default 2)")
    u.add_argument("--memory-limit", metavar="B",
                   help="bytes of arrays per rank, K/M/G suffixes (default: physical "
                        "memory / ranks)")
    u.add_argument("--pool-size", default="1G", metavar="SIZE",
                   help="volatile pool of each famd (default 1G, minimum 16M)")
    u.add_argument("--provider", choices=("shm", "tcp"), default=None,
                   help="libfabric provider of famd (default shm)")
    u.add_argument("--persistent", action="store_true",
                   help="famd pools in files under $KODIAK_HOME that survive `kodiak down` "
                        "(each famd comes back on the same port)")
    u.add_argument("--port", type=int, default=0, metavar="P",
                   help="kodiakd's port (default 0: any free port)")
    u.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for everything to be ready (default 60)")
    u.add_argument("--request-timeout", type=float, default=None, metavar="S",
                   help="seconds a client waits for each answer of kodiakd before it "
                        "raises TimeoutError (default 600; 0: no limit)")
    u.add_argument("--hostfile", metavar="FILE",
                   help="run on many hosts: famd on each 'memory HOST [pool=SIZE] "
                        "[data=DIR]' line, kodiakd ranks on each 'compute HOST [ranks=N]' "
                        "line (docs/DEPLOY.md); the provider is then tcp unless given")
    u.add_argument("--launcher", default="ssh", metavar="CMD",
                   help="with --hostfile: command that runs `CMD HOST 'shell command'` on a "
                        "host, to start and stop famd and as mpirun's rsh agent "
                        "(default ssh)")
    u.add_argument("--auth", choices=("none", "munge"), default=None,
                   help="with --hostfile: 'munge' starts famd with --auth munge, so that "
                        "kodiakd's ranks (and every libfam client) are who their MUNGE "
                        "credential says, not nobody; every host needs munged with the "
                        "cluster's key (docs/SECURITY.md). Default none")
    u.add_argument("--munge-socket", metavar="PATH",
                   help="with --auth munge: munged's socket on every host, when not "
                        "/run/munge/munge.socket.2")
    s = sub.add_parser("status", help="what runs; exit 1 if nothing, 2 if unhealthy")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    d = sub.add_parser("down", help="stop the cluster (safe when nothing runs)")
    d.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait at each step before escalating (default 10)")
    a = ap.parse_args(argv)

    if a.what == "up":
        try:
            if a.hostfile:
                launcher.up_hosts(a.hostfile, launcher=a.launcher, provider=a.provider or "tcp",
                                  port=a.port, timeout=max(a.timeout, 120.0),
                                  memory_limit=a.memory_limit,
                                  request_timeout=a.request_timeout, auth=a.auth or "none",
                                  munge_socket=a.munge_socket)
            elif a.auth or a.munge_socket:
                raise ValueError("--auth and --munge-socket go with --hostfile (on one host "
                                 "famd takes each client's identity from its Unix socket)")
            else:
                launcher.up(fam_servers=a.fam_servers, ranks=a.ranks, memory_limit=a.memory_limit,
                            pool_size=a.pool_size, provider=a.provider or "shm",
                            port=a.port, timeout=a.timeout, persistent=a.persistent,
                            request_timeout=a.request_timeout)
        except (launcher.LaunchError, ValueError, TypeError) as e:
            print(f"kodiak up: {e}", file=sys.stderr)
            return 1
        print_status(launcher.cluster_status())
        print("use it from Python:  import kodiak as ak; ak.connect()")
        return 0
    if a.what == "status":
        st = launcher.cluster_status()
        if a.json:
            import json
            print(json.dumps(st, indent=1))
        if st is None:
            if not a.json:
                print(f"kodiak: no cluster running (no {launcher.state_file()})")
            return 1
        if not a.json:
            print_status(st)
        return 0 if st["running"] else 2
    # down
    try:
        done = launcher.down(timeout=a.timeout)
    except launcher.LaunchError as e:
        print(f"kodiak down: {e}", file=sys.stderr)
        return 1
    if not done:
        print(f"kodiak: no cluster running (state in {client.state_dir()})")
    for line in done:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
