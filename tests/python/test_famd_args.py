# SPDX-License-Identifier: Apache-2.0
"""test_famd_args.py — famd refuses a bad command-line value at once (exit
status 2, a message naming the option and what it wants) instead of
starting with a number it cannot honour: --spin-us beyond the 32 bits
HELLO's reply carries it in, or not a number; --max-conns out of range;
a --pool-size it cannot read. A good value starts famd as usual."""
import os
import subprocess

import pytest

from conftest import BUILD

FAMD = os.path.join(BUILD, "famd")


def run_famd(*args):
    return subprocess.run([FAMD, "--port", "0", "--pool-size", "32M", *args],
                          capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("opt,value,want", [
    ("--spin-us", "5000000000", "want 0 to 4294967295"),
    ("--spin-us", "-1", "want 0 to 4294967295"),
    ("--spin-us", "2ms", "want 0 to 4294967295"),
    ("--spin-us", "", "want 0 to 4294967295"),
    ("--max-conns", "0", "want 1 to 1000000"),
    ("--max-conns", "lots", "want 1 to 1000000"),
    ("--pool-size", "big", "bad --pool-size"),
    ("--quota-backup-bytes", "lots", "bad --quota-backup-bytes"),
    ("--quota-backup-bytes", "120%", "bad --quota-backup-bytes"),
])
def test_a_bad_value_is_refused_at_start(opt, value, want):
    r = run_famd(opt, value)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert opt in r.stderr and want in r.stderr, r.stderr
    assert "famd ready" not in r.stdout


def test_a_good_spin_starts_famd():
    p = subprocess.Popen([FAMD, "--port", "0", "--pool-size", "32M", "--spin-us",
                          "4294967295"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("famd ready"), line
    finally:
        p.terminate()
        p.wait(20)
