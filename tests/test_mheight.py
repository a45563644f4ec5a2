"""Exact m-heights: fast vertex enumeration vs linear programs, infinite cases, file formats, CLI.

LP cost (measured 2026-11-22, 2-core CPU, scipy linprog highs, ~1.2 ms per LP): the published family
n(n-1)C(n-2,m-1)2^m takes ~2.5 s per code for m = 2 and ~6.6 min per code for (10, k, 6), so here it runs on
(9, 4, 2) and the infinite cases only (benchmarks/mheight_generator.py also checks it on (10, 6, 2), (9, 5, 3),
(10, 5, 3)); every group is checked against the equivalent reduced family n C(n-1,m-1) (0.1-1.9 s per code).
"""

import itertools
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from jgrok.errors import ConfigError
from jgrok.tasks import mheight_codes as mheight
from tests.mheight_lp import lp_height, lp_height_reduced

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _G(P):
    return np.hstack([np.eye(P.shape[0]), P])


def _codes(n, k, m, count, integer=False):
    return mheight.generate_group(n, k, m, count, mheight.group_rng(123, n, k, m, integer), integer=integer)


@pytest.mark.slow
@pytest.mark.parametrize("group", mheight.GROUPS, ids=lambda g: "%d-%d-%d" % g)
def test_fast_matches_reduced_lp(group):
    n, k, m = group
    count = 4 if m == 2 else 2  # LP cost per code: ~0.1 s for m = 2, 0.4-1.9 s for larger m
    P, h = _codes(n, k, m, count)
    lp = np.array([lp_height_reduced(_G(p), m) for p in P])
    assert np.all(np.isfinite(h)) and np.all(h >= 1.0)
    np.testing.assert_allclose(h, lp, rtol=1e-6)


@pytest.mark.slow
def test_fast_matches_published_lp():
    n, k, m = 9, 4, 2  # 2016 LPs per code
    P, h = _codes(n, k, m, 2)
    lp = np.array([lp_height(_G(p), m) for p in P])
    np.testing.assert_allclose(h, lp, rtol=1e-6)


def _structured(scale=1.0):
    """(9, 6, 2) integer codes: repeated rows and a zero row pattern give weight-2 codewords (m=2 >= d_min)."""
    rng = np.random.default_rng(5)
    P = rng.integers(-100, 101, (6, 3)).astype(np.float64)
    repeated = P.copy()
    repeated[1] = repeated[0]  # u = e0 - e1 is the codeword (1, -1, 0, ..., 0)
    zeros = P.copy()
    zeros[0] = [1, 0, 0]  # u = e0 gives weight 2
    weight3 = P.copy()
    weight3[0] = [0, -12, 37]  # weight 3: finite for m = 2
    return np.stack([repeated, zeros, weight3]) * scale


@pytest.mark.parametrize("scale", [1.0, 0.37], ids=["integer", "real"])
def test_infinite_cases_agree(scale):
    P = _structured(scale)
    h = mheight.m_heights(P, 9, 6, 2)
    assert np.isinf(h[0]) and np.isinf(h[1]) and np.isfinite(h[2])
    for p, v in zip(P[:2], h[:2]):
        assert lp_height(_G(p), 2) == np.inf
        assert lp_height_reduced(_G(p), 2) == np.inf
    np.testing.assert_allclose(h[2], lp_height_reduced(_G(P[2]), 2), rtol=1e-6)
    assert np.all(np.isinf(mheight.m_heights(P[2:], 9, 6, 3)))  # weight-3 codeword: m = 3 >= d_min


def _has_low_weight(G, m):
    """Brute force: some n-m columns of G have rank < k (a nonzero codeword vanishes there)."""
    k, n = G.shape
    return any(np.linalg.matrix_rank(G[:, list(R)]) < k for R in itertools.combinations(range(n), n - m))


@pytest.mark.parametrize("group", [(9, 6, 3), (10, 4, 6)], ids=lambda g: "%d-%d-%d" % g)
def test_integer_codes_keep_and_flag_infinite(group):
    n, k, m = group
    P, h = _codes(n, k, m, 150, integer=True)
    assert len(h) == 150 and np.all(P == np.round(P)) and np.abs(P).max() <= 100
    expected = np.array([_has_low_weight(_G(p), m) for p in P])
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(np.isinf(h), expected)
    finite = np.flatnonzero(~expected)[: 1 if m <= 3 else 0]  # LP cost: 0.4 s per code for m = 3, 2 s for m = 6
    lp = [lp_height_reduced(_G(P[i]), m) for i in finite]
    np.testing.assert_allclose(h[finite], lp, rtol=1e-6)


def test_chunking_and_seeding_do_not_change_results():
    P, h = _codes(10, 5, 3, 20)
    np.testing.assert_array_equal(mheight.m_heights(P, 10, 5, 3, chunk=1), h)
    alone = mheight.generate([(9, 4, 2)], 6, seed=7)
    mixed = mheight.generate([(10, 5, 3), (9, 4, 2)], 6, seed=7)
    P_alone, h_alone = mheight.group_arrays(alone, 9, 4, 2)
    P_mixed, h_mixed = mheight.group_arrays(mixed, 9, 4, 2)
    np.testing.assert_array_equal(P_alone, P_mixed)
    np.testing.assert_array_equal(h_alone, h_mixed)


def test_bad_inputs_raise_config_error():
    with pytest.raises(ConfigError):
        mheight.m_heights(np.zeros((2, 4, 5)), 9, 4, 6)
    with pytest.raises(ConfigError):
        mheight.m_heights(np.zeros((2, 4, 4)), 9, 4, 2)
    with pytest.raises(ConfigError):
        mheight.generate_group(9, 4, 2, 0, np.random.default_rng(0))


def _small_table():
    data = mheight.generate([(9, 4, 2), (10, 6, 3)], 3, seed=1)
    P = _structured()[:1]
    rows = list(mheight.rows(data)) + [(9, 6, 2, P[0], float(mheight.m_heights(P, 9, 6, 2)[0]))]
    return mheight.make_table(rows, seed=1)


def test_npz_and_course_round_trip(tmp_path):
    data = _small_table()
    assert data["P"].shape == (7, 6, 5) and data["infinite"].tolist() == [False] * 6 + [True]
    mheight.save_npz(tmp_path / "d.npz", data)
    loaded = mheight.load_npz(tmp_path / "d.npz")
    assert sorted(loaded) == sorted(data)
    for key in data:
        np.testing.assert_array_equal(loaded[key], data[key])

    mheight.write_course(tmp_path / "s.pkl", tmp_path / "h.pkl", data)
    with open(tmp_path / "s.pkl", "rb") as f:
        samples = pickle.load(f)
    with open(tmp_path / "h.pkl", "rb") as f:
        heights = pickle.load(f)
    assert [s[:3] for s in samples[:4]] == [[9, 4, 2]] * 3 + [[10, 6, 3]]
    assert samples[3][3].shape == (6, 4) and all(isinstance(v, float) for v in heights)
    assert heights[-1] == float("inf")
    back = mheight.read_course(tmp_path / "s.pkl", tmp_path / "h.pkl")
    for key in ["P", "n", "k", "m", "h", "infinite"]:
        np.testing.assert_array_equal(back[key], data[key])


def _cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "jgrok.mheight", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def test_cli_generate_and_user_errors(tmp_path):
    args = ["generate", "--per-group", "4", "--seed", "3", "--groups", "9,4,2;10,6,3", "--integer"]
    course = ["--course-samples", "c/s.pkl", "--course-heights", "c/h.pkl"]
    r = _cli(*args, "--out", "out/d.npz", *course, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = mheight.load_npz(tmp_path / "out/d.npz")
    assert data["n"].tolist() == [9] * 4 + [10] * 4 and bool(data["integer"]) and int(data["seed"]) == 3
    for g in [(9, 4, 2), (10, 6, 3)]:
        P, h = mheight.group_arrays(data, *g)
        np.testing.assert_array_equal(h, mheight.m_heights(P, *g))
    assert len(mheight.read_course(tmp_path / "c/s.pkl", tmp_path / "c/h.pkl")["h"]) == 8

    bad = [
        [*args, "--out", "out/d.npz"],  # existing output
        [*args, "--out", "out/e.npz", *course],  # existing course files
        ["generate", "--per-group", "4", "--groups", "9,4,6", "--out", "out/e.npz"],  # m > n - k
        ["generate", "--per-group", "4", "--groups", "9;4", "--out", "out/e.npz"],
        ["generate", "--per-group", "0", "--out", "out/e.npz"],
    ]
    for argv in bad:
        r = _cli(*argv, cwd=tmp_path)
        assert r.returncode == 2, (argv, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out/e.npz").exists()
    r = _cli(*args, "--out", "out/d.npz", "--overwrite", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
