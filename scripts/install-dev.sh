#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install-dev.sh — make `import kodiak` and the `kodiak` command work for
# /usr/bin/python3 from anywhere, from this checkout (as `pip install -e`
# would): a kodiak.pth in Python's site directory pointing at python/, and a
# symlink /usr/local/bin/kodiak -> bin/kodiak. Only as root; otherwise it
# says what to put in the environment instead. Idempotent: nothing is
# rewritten when it is already in place. The last checkout to run it wins.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
py=/usr/bin/python3
bindir=${KODIAK_BIN_DIR:-/usr/local/bin}

if [ "$(id -u)" -ne 0 ]; then
  echo "install-dev: not root, so nothing installed. To use kodiak from anywhere:"
  echo "  export PYTHONPATH=$repo/python\${PYTHONPATH:+:\$PYTHONPATH}"
  echo "  export PATH=$repo/bin:\$PATH"
  exit 0
fi

# the first site directory (/usr/local/lib/python3.X/dist-packages on Debian)
site=${KODIAK_SITE_DIR:-$($py -c 'import site; print(site.getsitepackages()[0])')}
mkdir -p "$site" "$bindir"
pth="$site/kodiak.pth"
if [ "$(cat "$pth" 2>/dev/null || true)" != "$repo/python" ]; then
  echo "$repo/python" > "$pth.tmp.$$"
  mv "$pth.tmp.$$" "$pth"
  echo "install-dev: $pth -> $repo/python"
fi
if [ "$(readlink "$bindir/kodiak" 2>/dev/null || true)" != "$repo/bin/kodiak" ]; then
  ln -sfn "$repo/bin/kodiak" "$bindir/kodiak"
  echo "install-dev: $bindir/kodiak -> $repo/bin/kodiak"
fi
