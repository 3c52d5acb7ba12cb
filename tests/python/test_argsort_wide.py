# SPDX-License-Identifier: Apache-2.0
"""argsort of keys too wide to share a 64-bit word with the element's index
(full-range int64 and float64): the engine finds the element at each
boundary between two ranks' output blocks, sends every (key, index) pair
once to the rank its sorted position falls in, and sorts there. These tests
aim at its edges - runs of one key across the boundaries, the extremes of
int64, -0.0/+0.0, NaN of either sign, ranks holding nothing - at 1, 2 and 3
ranks, always against numpy.argsort(kind="stable")."""
import time

import numpy as np
import pytest

from conftest import Server, owned

import kodiak

I64_MIN, I64_MAX = -2**63, 2**63 - 1


def check(ak, x):
    np.testing.assert_array_equal(ak.argsort(ak.array(x)).to_ndarray(),
                                  np.argsort(x, kind="stable"))


@pytest.mark.parametrize("n", [2, 3, 7, 1000, 100003])
def test_full_range_int64_with_its_extremes(ak, n):
    rng = np.random.default_rng(n)
    x = rng.integers(I64_MIN, I64_MAX, n, dtype=np.int64, endpoint=True)
    x[rng.random(n) < 0.1] = I64_MIN
    x[rng.random(n) < 0.1] = I64_MAX
    x[rng.random(n) < 0.1] = -1
    x[0], x[-1] = I64_MAX, I64_MIN  # n = 2: one rank holds nothing at 3 ranks
    check(ak, x)


@pytest.mark.parametrize("share", [0.5, 0.9, 0.999])
def test_one_key_repeated_across_every_rank_boundary(ak, share):
    """Most elements hold one key: the boundaries fall inside its run, and
    each rank must send the right number of them left, in index order."""
    rng = np.random.default_rng(7)
    n = 100003
    x = rng.integers(I64_MIN, I64_MAX, n, dtype=np.int64)
    x[rng.random(n) < share] = -123456789
    check(ak, x)


def test_two_runs_of_the_extremes_only(ak):
    rng = np.random.default_rng(8)
    x = np.where(rng.random(100003) < 0.5, I64_MIN, I64_MAX).astype(np.int64)
    check(ak, x)


def test_keys_equal_in_their_top_bits(ak):
    """The boundary search narrows the key from its top bits: keys sharing
    the top 40 bits and differing below, plus one far away to keep the range
    wide."""
    rng = np.random.default_rng(9)
    x = (np.int64(0x1234567890) << np.int64(24)) + rng.integers(0, 2**24, 100003)
    x[5] = I64_MIN
    check(ak, x)


@pytest.mark.parametrize("n", [2, 7, 1000, 100003])
def test_float64_zeros_nans_and_infinities(ak, n):
    rng = np.random.default_rng(n + 1)
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    r = rng.random(n)
    x[r < 0.1] = 0.0
    x[(r >= 0.1) & (r < 0.2)] = -0.0
    x[(r >= 0.2) & (r < 0.25)] = np.nan
    x[(r >= 0.25) & (r < 0.3)] = -np.nan
    x[(r >= 0.3) & (r < 0.32)] = np.inf
    x[(r >= 0.32) & (r < 0.34)] = -np.inf
    x[0], x[-1] = -np.inf, np.inf
    check(ak, x)


def test_float64_mostly_nan(ak):
    rng = np.random.default_rng(10)
    x = np.full(100003, np.nan)
    x[rng.random(x.size) < 0.01] = -1e300
    x[7] = 1e300
    check(ak, x)


def test_float64_standard_normal(ak):
    """Normal values crowd into a few exponents: a skewed key distribution."""
    check(ak, np.random.default_rng(11).standard_normal(200003))


@pytest.mark.parametrize("kind", ["one", "few", "adjacent", "normal"])
def test_crowded_keys_in_blocks_too_large_for_the_cache(ak, kind):
    """Over 65536 pairs a rank's first local pass groups neighbouring values
    of the top 16 bits: one value holding most keys, a few crowded values,
    crowded values beside sparse ones, and float64's crowded exponents."""
    rng = np.random.default_rng(13)
    n = 300007
    x = rng.integers(I64_MIN, I64_MAX, n, dtype=np.int64)
    r = rng.random(n)
    if kind == "one":
        x[r < 0.95] = 2**40
    elif kind == "few":
        x[r < 0.9] = rng.choice(np.array([-2**62, -5, 0, 3, 2**61]), n)[r < 0.9]
    elif kind == "adjacent":  # dense keys in the top-16-bit values either side of 0
        x[r < 0.7] = rng.integers(-2**48, 2**48, n)[r < 0.7]
        x[r < 0.3] = 2**47
    else:
        x = rng.standard_normal(n)
    check(ak, x)


def test_all_equal_int64_keys_are_the_identity(ak):
    check(ak, np.full(100003, I64_MIN, dtype=np.int64))


# ---- how the data moves: one exchange for a full-range key ---------------------------------

@pytest.fixture(scope="module")
def traced():
    """2 ranks with KD_SORT_TRACE: rank 0 prints each phase of a sort."""
    yield from owned(Server(2, env={"KD_SORT_TRACE": "1"}))


def test_a_full_range_key_crosses_the_ranks_once(traced):
    """Before: seven distributed radix passes (each an MPI_Alltoallv) and a
    gather; now the pairs move once, to the rank that sorts them."""
    kodiak.connect(connect_file=traced.connect_file)
    try:
        x = np.random.default_rng(12).integers(I64_MIN, I64_MAX, 10**5, dtype=np.int64)
        start = len(traced.output())
        np.testing.assert_array_equal(kodiak.argsort(kodiak.array(x)).to_ndarray(),
                                      np.argsort(x, kind="stable"))
        deadline = time.time() + 20
        while "stage sorted" not in traced.output()[start:] and time.time() < deadline:
            time.sleep(0.05)
        log = traced.output()[start:]
        phases = [line.split("s  ", 1)[1] for line in log.splitlines()
                  if line.startswith("sort ")]
        assert "stage sorted" in phases, log
        assert phases.count("alltoallv") == 1, log
        assert "splitters" in phases, log
    finally:
        kodiak.disconnect()
    assert traced.alive(), traced.output()
