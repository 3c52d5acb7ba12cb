#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""spdx.py [--check] — every source file of Kodiak names its licence in an
SPDX line near its top: `/* SPDX-License-Identifier: Apache-2.0 */` first in
C files, `# SPDX-License-Identifier: Apache-2.0` first (after a #! line) in
Python, shell, CMake and make files. Without --check, adds the line where it
is missing; with --check, lists the files without it and exits 1 if any
(tests/python/test_layout.py runs the check)."""
import os
import subprocess
import sys

TAG = "SPDX-License-Identifier: Apache-2.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def style(path):
    """'c' or 'hash' for a source file, None for anything else."""
    name = os.path.basename(path)
    if name.endswith((".c", ".h")):
        return "c"
    if name.endswith((".py", ".sh")) or name in ("CMakeLists.txt", "Makefile"):
        return "hash"
    if path in (".ci/run", "bin/kodiak"):
        return "hash"
    return None


def sources():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [p for p in out.splitlines() if style(p) and os.path.exists(os.path.join(ROOT, p))]


def has_tag(text):
    return any(TAG in line for line in text.splitlines()[:3])


def add_tag(path, text):
    if style(path) == "c":
        return f"/* {TAG} */\n" + text
    lines = text.splitlines(keepends=True)
    at = 1 if lines and lines[0].startswith("#!") else 0
    lines.insert(at, f"# {TAG}\n")
    return "".join(lines)


def main():
    check = sys.argv[1:] == ["--check"]
    missing = []
    for rel in sources():
        path = os.path.join(ROOT, rel)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if has_tag(text):
            continue
        missing.append(rel)
        if not check:
            with open(path, "w", encoding="utf-8") as f:
                f.write(add_tag(rel, text))
    for rel in missing:
        print(("no SPDX line: " if check else "added SPDX line: ") + rel)
    return 1 if check and missing else 0


if __name__ == "__main__":
    sys.exit(main())
