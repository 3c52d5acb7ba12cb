#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""check_layers.py ORDER OBJ... — libfam's files call each other only
downwards: ORDER is a comma-separated list of file names (without .c),
lowest layer first, as src/fam/fam_internal.h lists them; OBJ are the
object files of libfam. A call from one file to a function defined in a
file later in ORDER (a cycle between layers) fails, naming both files and
the function. An object missing from ORDER fails too, so a new file has to
take its place in the list. Registered as ctest build.fam_layers."""
import os
import subprocess
import sys


def symbols(obj):
    """(defined, undefined) global symbols of one object file."""
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "TDBR":
            defined.add(f[2])
        elif len(f) == 2 and f[0] == "U":
            undefined.add(f[1])
    return defined, undefined


def main():
    order = sys.argv[1].split(",")
    rank = {name: i for i, name in enumerate(order)}
    files = {}
    for obj in sys.argv[2:]:
        name = os.path.basename(obj).split(".")[0]
        if name not in rank:
            print(f"check_layers: {name}.c is not in the layer order {order}")
            return 1
        files[name] = symbols(obj)
    owner = {s: n for n, (d, _) in files.items() for s in d}
    bad = []
    for name, (_, undefined) in sorted(files.items()):
        for s in sorted(undefined):
            o = owner.get(s)
            if o and o != name and rank[o] > rank[name]:
                bad.append(f"{name}.c calls {s} from {o}.c, a layer above it")
    for b in bad:
        print("check_layers:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
