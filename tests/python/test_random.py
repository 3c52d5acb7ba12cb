# SPDX-License-Identifier: Apache-2.0
"""ak.random: the Generator (default_rng) and the legacy functions. A seeded
stream is the same whatever the number of ranks (checked against servers of
1, 2 and 3 ranks in one test, and against a NumPy transcription of the
algorithm docs/RANDOM.md describes); distributions are checked with fixed
seeds (moments and Kolmogorov-Smirnov distances within bounds NumPy's own
generator also meets); errors are NumPy's."""
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from conftest import Server  # noqa: E402

N = 100_000
M64 = (1 << 64) - 1


def _mix64(z):
    """splitmix64's finaliser on a uint64 ndarray (docs/RANDOM.md)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
    return z ^ (z >> np.uint64(31))


def _stream_seed(seed, draw):
    """The seed of draw number `draw` of default_rng(seed), as the docs say."""
    def mix(z):
        z &= M64
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
        return z ^ (z >> 31)
    return mix(seed ^ mix(draw + 0x632be59bd9b4e019)) >> 1


def _reference_random(seed63, n):
    """uniform [0, 1) numbers of a stream, computed here from the docs."""
    with np.errstate(over="ignore"):
        key = _mix64(np.array([seed63 ^ 0x6a09e667f3bcc909], dtype=np.uint64))[0]
        i = np.arange(1, n + 1, dtype=np.uint64)
        r = _mix64(key + i * np.uint64(0x9e3779b97f4a7c15))
    return (r >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _ks(x, cdf):
    """Kolmogorov-Smirnov distance of sample x to a continuous cdf."""
    x = np.sort(x)
    f = cdf(x)
    n = x.size
    return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


KS_BOUND = 1.95 / math.sqrt(N)  # alpha = 0.001


def _draws(ak):
    rng = ak.random.default_rng(1234)
    return {
        "integers": rng.integers(-5, 1000, 5000).to_ndarray(),
        "random": rng.random(5000).to_ndarray(),
        "normal": rng.normal(1.0, 3.0, 5000).to_ndarray(),
        "exponential": rng.exponential(2.0, 5000).to_ndarray(),
        "choice": rng.choice(1000, 300, replace=False).to_ndarray(),
        "choice_p": rng.choice(5, 500, p=[0.1, 0.2, 0.3, 0.4, 0.0]).to_ndarray(),
        "choice_p_norep": rng.choice(50, 20, replace=False, p=np.arange(50) / 1225).to_ndarray(),
        "permutation": rng.permutation(4001).to_ndarray(),
    }


def test_a_seeded_generator_gives_the_same_arrays_at_1_2_and_3_ranks():
    import kodiak as ak
    got = []
    for nranks in (1, 2, 3):
        s = Server(nranks)
        try:
            ak.connect(connect_file=s.connect_file)
            got.append(_draws(ak))
        finally:
            ak.disconnect()
            s.stop()
    for key in got[0]:
        np.testing.assert_array_equal(got[0][key], got[1][key], err_msg=key)
        np.testing.assert_array_equal(got[0][key], got[2][key], err_msg=key)


def test_random_is_the_documented_counter_based_stream(ak):
    rng = ak.random.default_rng(99)
    rng.integers(0, 10, 3)  # draw 0; random() below is draw 1
    got = rng.random(1000).to_ndarray()
    np.testing.assert_array_equal(got, _reference_random(_stream_seed(99, 1), 1000))


def test_two_generators_with_one_seed_agree_and_successive_draws_differ(ak):
    a, b = ak.random.default_rng(5), ak.random.default_rng(5)
    x1, y1 = a.random(100).to_ndarray(), b.random(100).to_ndarray()
    x2 = a.random(100).to_ndarray()
    np.testing.assert_array_equal(x1, y1)
    assert not np.array_equal(x1, x2)
    assert not np.array_equal(x1, ak.random.default_rng(6).random(100).to_ndarray())


def test_uniform_random_and_integers_are_uniform(ak):
    rng = ak.random.default_rng(11)
    u = rng.random(N).to_ndarray()
    assert u.min() >= 0 and u.max() < 1
    assert _ks(u, lambda x: x) < KS_BOUND
    v = rng.uniform(-3.0, 5.0, N).to_ndarray()
    assert v.min() >= -3 and v.max() < 5
    assert _ks(v, lambda x: (x + 3) / 8) < KS_BOUND
    r = rng.integers(0, 10, N).to_ndarray()
    counts = np.bincount(r, minlength=10)
    assert r.min() == 0 and r.max() == 9 and counts.size == 10
    chi2 = ((counts - N / 10) ** 2 / (N / 10)).sum()
    assert chi2 < 27.9  # 9 degrees of freedom, alpha = 0.001
    e = rng.integers(3, 5, 1000, endpoint=True).to_ndarray()
    assert set(np.unique(e)) == {3, 4, 5}


def test_integer_bounds_and_dtypes(ak):
    rng = ak.random.default_rng(12)
    x = rng.integers(2**64 - 4, size=2000, dtype=ak.uint64, endpoint=True)
    assert x.dtype == np.uint64
    b = rng.integers(0, 2, 1000, dtype=ak.bool)
    assert b.dtype == np.bool_ and 300 < b.to_ndarray().sum() < 700
    one = rng.integers(7)
    assert isinstance(one, np.integer) and 0 <= one < 7
    full = rng.integers(-2**63, 2**63, 1000).to_ndarray()
    assert full.min() < -2**61 and full.max() > 2**61


def test_normal_and_exponential_match_their_distributions(ak):
    rng = ak.random.default_rng(13)
    z = rng.standard_normal(N).to_ndarray()
    phi = np.vectorize(lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2))))
    assert _ks(z, phi) < KS_BOUND
    x = rng.normal(10.0, 2.0, N).to_ndarray()
    assert abs(x.mean() - 10) < 6 * 2 / math.sqrt(N)
    assert abs(x.std() - 2) < 0.03
    e = rng.exponential(3.0, N).to_ndarray()
    assert e.min() >= 0
    assert _ks(e, lambda t: 1 - np.exp(-t / 3)) < KS_BOUND
    assert isinstance(rng.normal(), np.float64)
    assert isinstance(rng.exponential(), np.float64)


def test_choice_without_replacement_has_no_repeats(ak):
    rng = ak.random.default_rng(14)
    s = rng.choice(1000, 1000, replace=False).to_ndarray()
    np.testing.assert_array_equal(np.sort(s), np.arange(1000))
    pop = ak.arange(0, 3000, 3)
    t = rng.choice(pop, 400, replace=False).to_ndarray()
    assert np.unique(t).size == 400 and np.all(t % 3 == 0)
    assert not np.all(np.diff(t) > 0)  # a random order, not the population's
    w = rng.choice(100, 50, replace=False, p=np.full(100, 0.01)).to_ndarray()
    assert np.unique(w).size == 50


def test_choice_respects_p(ak):
    rng = ak.random.default_rng(15)
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    s = rng.choice(5, N, p=p).to_ndarray()
    freq = np.bincount(s, minlength=5) / N
    assert freq[4] == 0
    np.testing.assert_allclose(freq, p, atol=6 * math.sqrt(0.25 / N))
    s2 = rng.choice(ak.array([10, 20, 30]), 1000, p=ak.array([0.0, 1.0, 0.0])).to_ndarray()
    assert set(s2) == {20}
    # without replacement, zero-probability items never come out
    p3 = np.r_[np.full(10, 0.1), np.zeros(10)]
    s3 = rng.choice(20, 10, replace=False, p=p3).to_ndarray()
    np.testing.assert_array_equal(np.sort(s3), np.arange(10))
    # and heavier items come first more often: first pick of [0.9, 0.05, 0.05]
    firsts = [int(rng.choice(3, 1, replace=False, p=[0.9, 0.05, 0.05])[0]) for _ in range(30)]
    assert firsts.count(0) > 18  # 27 expected


def test_permutation_and_shuffle_are_permutations(ak):
    rng = ak.random.default_rng(16)
    p = rng.permutation(10_001).to_ndarray()
    np.testing.assert_array_equal(np.sort(p), np.arange(10_001))
    assert not np.array_equal(p, np.arange(10_001))
    x = np.random.default_rng(0).standard_normal(5000)
    px = rng.permutation(ak.array(x)).to_ndarray()
    np.testing.assert_array_equal(np.sort(px), np.sort(x))
    a = ak.array(x)
    rng.shuffle(a)
    got = a.to_ndarray()
    np.testing.assert_array_equal(np.sort(got), np.sort(x))
    assert not np.array_equal(got, x)
    assert rng.permutation(0).size == 0


def test_size_none_gives_a_scalar_and_size_0_an_empty_array(ak):
    rng = ak.random.default_rng(17)
    assert isinstance(rng.random(), np.float64)
    assert isinstance(rng.choice(5), np.integer)
    assert rng.random(0).size == 0 and rng.choice(5, 0).size == 0


def test_legacy_functions_follow_the_module_seed(ak):
    ak.random.seed(3)
    a, b = ak.random.rand(100).to_ndarray(), ak.random.randint(0, 7, 100).to_ndarray()
    ak.random.seed(3)
    np.testing.assert_array_equal(a, ak.random.rand(100).to_ndarray())
    np.testing.assert_array_equal(b, ak.random.randint(0, 7, 100).to_ndarray())
    assert b.min() >= 0 and b.max() < 7
    np.testing.assert_array_equal(ak.random.uniform(0, 1, 10, seed=4).to_ndarray(),
                                  ak.random.uniform(0, 1, 10, seed=4).to_ndarray())
    assert isinstance(ak.random.rand(), np.float64)


@pytest.mark.parametrize("call, exc, match", [
    (lambda r: r.integers(5, 5), ValueError, "low >= high"),
    (lambda r: r.integers(-1, 5, dtype="uint64"), ValueError, "low is out of bounds"),
    (lambda r: r.integers(0, 2**64, 3), ValueError, "high is out of bounds"),
    (lambda r: r.integers(0, 5, dtype="float64"), TypeError, "Unsupported dtype"),
    (lambda r: r.random(-1), ValueError, "negative"),
    (lambda r: r.normal(0, -1, 3), ValueError, "scale < 0"),
    (lambda r: r.exponential(-1, 3), ValueError, "scale < 0"),
    (lambda r: r.choice(5, 6, replace=False), ValueError, "larger sample than population"),
    (lambda r: r.choice(5, 3, p=[0.5, 0.5]), ValueError, "same size"),
    (lambda r: r.choice(3, 3, p=[0.5, 0.6, -0.1]), ValueError, "non-negative"),
    (lambda r: r.choice(3, 3, p=[0.5, 0.6, 0.1]), ValueError, "do not sum to 1"),
    (lambda r: r.choice(3, 3, p=[0.5, 0.5, np.nan]), ValueError, "non-negative"),
    (lambda r: r.choice(3, 2, replace=False, p=[1.0, 0, 0]), ValueError, "Fewer non-zero"),
    (lambda r: r.choice(0, 2), ValueError, "empty"),
    (lambda r: r.choice("abc", 2), TypeError, "integer or a pdarray"),
    (lambda r: r.permutation(2.5), TypeError, "integer or a pdarray"),
    (lambda r: r.shuffle([1, 2]), TypeError, "pdarray"),
])
def test_bad_arguments_raise_numpys_errors(ak, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ak.random.default_rng(0))
    assert ak.arange(3).sum() == 3  # the server still answers


def test_seed_must_be_a_non_negative_integer(ak):
    with pytest.raises(ValueError):
        ak.random.default_rng(-1)
    with pytest.raises(TypeError):
        ak.random.default_rng(1.5)
    g = ak.random.default_rng(1)
    assert ak.random.default_rng(g) is g
