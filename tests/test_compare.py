"""Comparisons between run groups (jgrok.compare) and the seeds they need (jgrok.power): each number against a
library or a brute-force definition, planted effects recovered, and the command line."""

import math
from itertools import product

import numpy as np
import pytest
from statsmodels.duration.survfunc import survdiff

from jgrok import analyze, compare, power, stats
from tests.test_plots_report import write_scan

BUDGET = 2000


def _groups(rng, n_a, n_b, hr, budget=BUDGET, scale=900.0, every=50):
    """Exponential times on an eval grid of ``every`` steps; A's hazard hr times B's; censored at the budget."""
    def one(n, h):
        t = np.ceil(rng.exponential(scale / h, n) / every) * every
        return np.minimum(t, budget), t <= budget
    return (*one(n_a, hr), *one(n_b, 1.0))


def test_vectorised_logrank_is_statsmodels_survdiff_and_the_old_implementation():
    rng = np.random.default_rng(0)
    ta, ea, tb, eb = (np.stack(x) for x in zip(*[_groups(rng, 30, 40, 1.4) for _ in range(6)]))
    chi2 = power.logrank_chi2(ta, ea, tb, eb)
    for i in range(6):
        t, e, g = np.r_[ta[i], tb[i]], np.r_[ea[i], eb[i]].astype(int), np.r_[np.ones(30), np.zeros(40)]
        assert chi2[i] == pytest.approx(survdiff(t, e, g)[0], rel=1e-9)
        assert chi2[i] == pytest.approx(stats.logrank([ta[i], tb[i]], [ea[i], eb[i]])["chi2"], rel=1e-9)
        assert compare.logrank_p(t, e, g) == pytest.approx(stats.logrank([ta[i], tb[i]], [ea[i], eb[i]])["p"])


def test_sign_statistic_is_the_logrank_test_stratified_by_seed():
    rng = np.random.default_rng(1)
    ta, ea, tb, eb = (np.stack(x) for x in zip(*[_groups(rng, 25, 25, 1.6) for _ in range(6)]))
    chi2 = power.sign_chi2(ta, ea, tb, eb)
    strata = np.r_[np.arange(25), np.arange(25)]
    for i in range(6):
        t, e, g = np.r_[ta[i], tb[i]], np.r_[ea[i], eb[i]].astype(int), np.r_[np.ones(25), np.zeros(25)]
        assert chi2[i] == pytest.approx(survdiff(t, e, g, strata=strata)[0], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("n", [7, 8, 9, 20])
def test_median_of_censored_samples_is_the_kaplan_meier_median(n):
    rng = np.random.default_rng(n)
    for _ in range(40):
        t = rng.integers(1, 12, n) * 100.0
        e = rng.random(n) < rng.choice([0.3, 0.5, 0.8, 1.0])
        t = np.where(e, t, BUDGET)
        km = stats.kaplan_meier(t, e).median()[0]
        got = compare.median_censored(np.where(e, t, BUDGET + 1), BUDGET)
        assert (np.isinf(got) and np.isnan(km)) or got == km


def test_probability_first_is_the_pair_count_with_ties_half():
    rng = np.random.default_rng(2)
    ta, ea, tb, eb = _groups(rng, 13, 17, 1.5, every=300)
    xa, xb = np.where(ea, ta, np.inf), np.where(eb, tb, np.inf)
    brute = np.mean([1.0 if a < b else 0.5 if a == b else 0.0 for a, b in product(xa, xb)])
    got = compare._p_first(compare._censored(ta, ea, BUDGET), compare._censored(tb, eb, BUDGET))
    assert got == pytest.approx(brute)


def test_planted_hazard_ratio_is_recovered_with_intervals_that_cover_it():
    rng = np.random.default_rng(3)
    ta, ea, tb, eb = _groups(rng, 400, 400, 2.0, every=10)
    c = compare.compare("t", "t wd=1", "t wd=0.5", "wd", ta, ea, range(400), tb, eb, range(1000, 1400), BUDGET,
                        B=400)
    assert not c.paired and c.hr_lo < 2.0 < c.hr_hi and c.logrank_p < 1e-6
    assert c.diff < 0 and c.diff_lo < c.diff < c.diff_hi
    assert 0.5 < c.p_first_lo < c.p_first < c.p_first_hi
    assert c.sentence().startswith("wd=1 groks faster than wd=0.5 (hazard ratio ")
    # the same samples with A and B swapped: the reciprocal
    d = compare.compare("t", "t wd=0.5", "t wd=1", "wd", tb, eb, range(400), ta, ea, range(400), BUDGET, B=100)
    assert d.hr == pytest.approx(1 / c.hr, rel=1e-6) and d.p_first == pytest.approx(1 - c.p_first)
    assert d.sentence().startswith("wd=1 groks faster than wd=0.5")


def test_shared_seeds_are_paired_and_seed_luck_is_measured():
    """Each seed has a luck factor that scales its time in both settings: the rank correlation finds it and the
    paired test sees the difference with fewer seeds than the unpaired one needs."""
    rng = np.random.default_rng(4)
    n = 60
    luck = rng.exponential(1.0, n)
    ta = np.ceil(600 * luck * np.exp(0.15 * rng.standard_normal(n)) / 10) * 10
    tb = np.ceil(780 * luck * np.exp(0.15 * rng.standard_normal(n)) / 10) * 10
    ea, eb = ta <= BUDGET, tb <= BUDGET
    ta, tb = np.minimum(ta, BUDGET), np.minimum(tb, BUDGET)
    order = rng.permutation(n)  # B's runs in another order: pairing lines them up by seed
    c = compare.compare("t", "t init=a", "t init=b", "init", ta, ea, np.arange(n), tb[order], eb[order], order,
                        BUDGET, B=300)
    assert c.paired and c.pairs == n and c.rho > 0.8 and c.rho_p < 1e-10
    assert c.paired_p < 1e-6 < c.logrank_p
    pw = power.for_comparison(c, ta, ea, np.arange(n), tb[order], eb[order], order, BUDGET, trials=300)
    assert pw.is_paired and pw.paired is not None and pw.simulated is not None and pw.paired < pw.simulated / 3
    assert "Seed luck persists across init: Spearman rho" in c.sentence()


def test_schoenfeld_matches_the_textbook_number_and_the_simulation_agrees():
    # hazard ratio 2, alpha 0.05 two-sided, 80% power: 65.3 events (Schoenfeld 1981; Collett's tables give 66)
    assert 2 * power.schoenfeld(2.0, 1.0) == pytest.approx(4 * (1.959964 + 0.841621) ** 2 / math.log(2) ** 2)
    assert 2 * power.schoenfeld(2.0, 1.0) == pytest.approx(65.3, abs=0.1)
    assert math.isnan(power.schoenfeld(1.0, 0.5)) and math.isnan(power.schoenfeld(float("nan"), 0.5))
    rng = np.random.default_rng(5)
    ta, ea, tb, eb = _groups(rng, 200, 200, 1.0, every=10, budget=20000)
    c = compare.compare("t", "t a", "t b", None, ta, ea, range(200), tb, eb, range(200, 400), 20000, B=50)
    pw = power.for_comparison(c, ta, ea, range(200), tb, eb, range(200, 400), 20000, hr=1.6, trials=400)
    assert pw.formula == pytest.approx(power.schoenfeld(1.6, np.r_[ea, eb].mean()))
    assert 0.7 * pw.formula < pw.simulated < 1.3 * pw.formula


def test_find_group_by_label_or_axis_words():
    by_group = {("t", "t wd=1 init=a"): [0], ("t", "t wd=1 init=b"): [1], ("t", "t wd=2 init=a"): [2]}
    assert compare.find_group(by_group, "wd=2") == ("t", "t wd=2 init=a")
    assert compare.find_group(by_group, "t wd=1 init=b") == ("t", "t wd=1 init=b")
    with pytest.raises(compare.ConfigError, match="matches 2 run groups"):
        compare.find_group(by_group, "wd=1")
    with pytest.raises(compare.ConfigError, match="no run group matches 'wd=3'; the run groups are"):
        compare.find_group(by_group, "wd=3")


def test_report_and_analyze_show_comparisons_and_seeds_needed(tmp_path, capsys):
    from jgrok import report

    write_scan(tmp_path, {"wd": [0.1, 1.0], "seed": list(range(16))}, never=(1, 4))
    assert report.main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Comparisons" in md and "| wd=1 | wd=0.1 | 16 vs 16 |" in md
    assert "## Seeds needed (this scan as a pilot)" in md and "seed rank correlation" in md
    capsys.readouterr()
    assert analyze.main([str(tmp_path), "--compare", "wd=0.1", "wd=1", "--effect", "1.5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wd=1 groks faster than wd=0.1") or out.startswith("wd=0.1 groks faster than wd=1")
    assert "at hazard ratio 1.5:" in out and (tmp_path / "analysis" / "compare.md").is_file()


@pytest.mark.parametrize("args, words", [
    (["--compare", "wd=3", "wd=1"], "no run group matches 'wd=3'"),
    (["--compare", "wd=1", "wd=1"], "name the same run group"),
    (["--power", "--effect", "1"], "--effect 1 is no difference"),
    (["--power", "--effect", "-2"], "--effect must be in"),
    (["--effect", "1.5"], "give it with --compare A B or --power"),
])
def test_bad_comparison_arguments_exit_2_with_one_sentence(tmp_path, capsys, args, words):
    write_scan(tmp_path, {"wd": [0.1, 1.0], "seed": list(range(4))})
    capsys.readouterr()
    assert analyze.main([str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_power_needs_two_groups(tmp_path, capsys):
    write_scan(tmp_path, {"seed": list(range(4))})
    assert analyze.main([str(tmp_path), "--power"]) == 2
    assert "no two run groups of one task that differ in one axis" in capsys.readouterr().err


def test_seeds_for_a_precise_share_and_median():
    # a share of 0.2 to +-5%: 1.96^2 0.2 0.8 / 0.05^2 = 246 by the normal approximation; the Wilson grid value
    n = power.seeds_for_share(0.2, 0.05)
    assert n == 248 and power.share_half_width(0.2, n) <= 0.05 < power.share_half_width(0.2, n - 8)
    assert power.seeds_for_share(0.5, 0.5) == 2 and power.seeds_for_share(0.5, 1e-4) is None
    # a median from exponential runs: the spread shrinks like 1 / sqrt(n)
    rng = np.random.default_rng(3)
    t = np.minimum(np.ceil(rng.exponential(1000, 4000) / 25) * 25, 5000)
    km = stats.kaplan_meier(t, t < 5000)
    w64, w256 = (power.median_half_width(km, n, 5000) for n in (64, 256))
    assert w256 < w64 and w64 / w256 == pytest.approx(2, rel=0.25)
    n = power.seeds_for_median(km, 5000, w64)
    assert 48 <= n <= 80  # the grid value near 64 (the same random numbers at every n)


def test_analyze_gives_the_seeds_for_precise_estimates(tmp_path, capsys):
    write_scan(tmp_path, {"wd": [0.1, 1.0], "seed": list(range(16))}, never=(1, 4))
    capsys.readouterr()
    assert analyze.main([str(tmp_path), "--share-within", "0.1", "--median-within", "100"]) == 0
    out = capsys.readouterr().out
    assert "share that reached 99% val acc" in out and "super-run share (factor 1/3)" in out
    assert "Kaplan-Meier median" in out and "seeds for ± 100 steps" in out
    md = (tmp_path / "analysis" / "seeds_needed.md").read_text()
    assert "| run group | estimate | this scan | wanted (95%) | seeds needed | cost |" in md
    for args, words in ((["--share-within", "0.7"], "--share-within must be in"),
                        (["--median-within", "0"], "--median-within must be in"),
                        (["--power", "--share-within", "0.1"], "an analysis of their own")):
        assert analyze.main([str(tmp_path), *args]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
