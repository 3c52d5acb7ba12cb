#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""notebook.py — make a Jupyter notebook from a Python script written in
"percent" cells, so that an example exists once and runs both ways:

    # %% [markdown]
    # # A title
    # Some text.

    # %%
    x = 1

A line `# %%` starts a code cell, `# %% [markdown]` a markdown cell (its
lines lose their leading `# `). Lines before the first marker (shebang,
SPDX line) stay out of the notebook. Outputs are not stored: the notebook
is made to be run.

    /usr/bin/python3 scripts/notebook.py SCRIPT NOTEBOOK          # write it
    /usr/bin/python3 scripts/notebook.py --check SCRIPT NOTEBOOK  # exit 1 if stale

tests/python/test_taxi_notebook.py checks examples/taxi.ipynb this way."""
import argparse
import json
import sys

MARK = "# %%"


def cells(text):
    """[(kind, source)] of a percent-format script, kind "code" or "markdown"."""
    out = []
    kind, lines = None, []

    def flush():
        while lines and not lines[-1].strip():
            lines.pop()
        if kind is not None:
            out.append((kind, "\n".join(lines)))

    for line in text.splitlines():
        if line.startswith(MARK):
            flush()
            rest = line[len(MARK):].strip()
            if rest not in ("", "[markdown]"):
                raise ValueError(f"unknown cell marker {line!r} (use '# %%' or "
                                 f"'# %% [markdown]')")
            kind, lines = ("markdown" if rest else "code"), []
        elif kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"a markdown cell holds only comment lines, not {line!r}")
            lines.append(line[2:] if line.startswith("# ") else line[1:])
        elif kind == "code":
            if lines or line.strip():
                lines.append(line)
    flush()
    if not out:
        raise ValueError(f"no '{MARK}' cell markers")
    return out


def notebook(text):
    """The notebook (nbformat 4, as a dict) of a percent-format script."""
    nb_cells = []
    for i, (kind, src) in enumerate(cells(text)):
        lines = src.splitlines(keepends=True)
        cell = {"cell_type": kind, "id": f"cell-{i:03d}", "metadata": {}, "source": lines}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        nb_cells.append(cell)
    return {"cells": nb_cells,
            "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                        "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def render(text):
    """The notebook file's text for a script's text."""
    return json.dumps(notebook(text), indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="do not write: exit 1 if NOTEBOOK is not what SCRIPT makes")
    p.add_argument("script")
    p.add_argument("notebook")
    a = p.parse_args(argv)
    with open(a.script, encoding="utf-8") as f:
        want = render(f.read())
    if a.check:
        try:
            with open(a.notebook, encoding="utf-8") as f:
                have = f.read()
        except FileNotFoundError:
            have = None
        if have != want:
            print(f"{a.notebook} is not made from {a.script}: run "
                  f"/usr/bin/python3 scripts/notebook.py {a.script} {a.notebook}",
                  file=sys.stderr)
            return 1
        return 0
    with open(a.notebook, "w", encoding="utf-8") as f:
        f.write(want)
    return 0


if __name__ == "__main__":
    sys.exit(main())
