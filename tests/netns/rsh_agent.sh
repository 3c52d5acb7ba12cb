#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# rsh_agent.sh — an rsh/ssh stand-in for test hosts made by netns.py: runs
# `CMD...` on HOST (a namespace name or a host address) with
# `ip netns exec`. mpirun uses it as `--mca plm_rsh_agent rsh_agent.sh`, and
# `kodiak up --launcher` to start famd on a host. Like ssh, it joins its
# arguments into one shell command line.
[ $# -ge 2 ] || { echo "usage: rsh_agent.sh HOST CMD..." >&2; exit 2; }
host=$1; shift
exec /usr/bin/python3 "$(dirname "$0")/netns.py" exec "$host" sh -c "$*"
