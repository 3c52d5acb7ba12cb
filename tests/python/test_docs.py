# SPDX-License-Identifier: Apache-2.0
"""test_docs.py — the protocol versions docs/PROTOCOL.md states are the ones
the code speaks (famd's FAMP_VERSION, kodiakd's KD_PROTOCOL_VERSION and the
Python client's PROTOCOL_VERSION, in wire.py), so the page cannot drift from the code."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(rel):
    with open(os.path.join(REPO, rel)) as f:
        return f.read()


def define(rel, name):
    m = re.search(rf"^#define\s+{name}\s+(\d+)\b", read(rel), re.M)
    assert m, f"{name} not defined in {rel}"
    return int(m.group(1))


def test_famd_version_in_framing_table():
    code = define("src/common/fam_proto.h", "FAMP_VERSION")
    m = re.search(r"^\|\s*4\s*\|\s*2\s*\|\s*`version`\s*\|\s*(\d+)", read("docs/PROTOCOL.md"), re.M)
    assert m, "PROTOCOL.md's framing table has no version row"
    assert int(m.group(1)) == code


def test_kodiakd_version_matches_client_and_docs():
    code = define("src/kodiakd/kd.h", "KD_PROTOCOL_VERSION")
    m = re.search(r"^PROTOCOL_VERSION\s*=\s*(\d+)", read("python/kodiak/wire.py"), re.M)
    assert m and int(m.group(1)) == code
    m = re.search(r"`wire\.py`\s*\((\d+) now\)", read("docs/PROTOCOL.md"))
    assert m, "PROTOCOL.md does not state the kodiakd protocol version"
    assert int(m.group(1)) == code
