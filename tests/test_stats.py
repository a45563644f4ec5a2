"""jgrok.stats against textbook values: the Freireich et al. (1963) 6-MP leukaemia trial as analysed by Gehan (1965)
and in Kleinbaum & Klein, "Survival Analysis" (3rd ed., ch. 2): Kaplan-Meier estimates with Greenwood standard
errors, medians 23 and 8 weeks, and log-rank chi^2 = 16.79 on 1 df (p = 4.2e-5), as R's survfit/survdiff give."""

import math

import numpy as np
import pytest

from jgrok import stats

# weeks in remission; a '+' in the textbook (censored) is event 0 here
MP_T = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP_E = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
PL_T = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]
PL_E = [1] * 21


def test_kaplan_meier_and_greenwood_match_the_textbook():
    km = stats.kaplan_meier(MP_T, MP_E)
    assert km.time.tolist() == [6, 7, 10, 13, 16, 22, 23]
    assert km.at_risk.tolist() == [21, 17, 15, 12, 11, 7, 6]
    np.testing.assert_allclose(km.survival, [0.8571, 0.8067, 0.7529, 0.6902, 0.6275, 0.5378, 0.4482], atol=1e-4)
    np.testing.assert_allclose(km.se, [0.0764, 0.0869, 0.0963, 0.1068, 0.1141, 0.1282, 0.1346], atol=1e-4)
    assert km.at(5.9) == 1.0 and km.at(6) == pytest.approx(0.8571, abs=1e-4) and km.at(40) == km.survival[-1]
    assert np.all(km.lower <= km.survival) and np.all(km.survival <= km.upper)
    # the log(-log) band, written out for the first event time: S ** exp(+-z se / (S |ln S|))
    s, se = km.survival[0], km.se[0]
    w = stats.Z95 * se / (s * abs(math.log(s)))
    assert km.lower[0] == pytest.approx(s ** math.exp(w)) and km.upper[0] == pytest.approx(s ** math.exp(-w))
    assert km.median()[0] == 23
    pl = stats.kaplan_meier(PL_T, PL_E)
    assert pl.median()[0] == 8 and pl.survival[-1] == 0
    lo, hi = pl.median()[1:]
    assert lo < 8 < hi  # the Brookmeyer-Crowley interval holds the median


def test_logrank_matches_the_textbook():
    res = stats.logrank([MP_T, PL_T], [MP_E, PL_E])
    assert res["chi2"] == pytest.approx(16.79, abs=0.01)
    assert res["df"] == 1 and res["p"] == pytest.approx(4.17e-5, rel=0.02)
    same = stats.logrank([MP_T, MP_T], [MP_E, MP_E])
    assert same["chi2"] == pytest.approx(0) and same["p"] == pytest.approx(1)
    assert math.isnan(stats.logrank([MP_T], [MP_E])["p"])


def test_wilson_is_never_degenerate():
    lo, hi = stats.wilson(0, 8)
    assert lo == 0 and hi == pytest.approx(0.3244, abs=1e-4)
    lo, hi = stats.wilson(8, 8)
    assert hi == 1 and lo == pytest.approx(1 - 0.3244, abs=1e-4)
    lo, hi = stats.wilson(3, 10)
    assert lo == pytest.approx(0.1078, abs=1e-4) and hi == pytest.approx(0.6032, abs=1e-4)
    assert stats.fmt_share(0, 8) == "0/8 = 0.0% (95% CI 0.0–32.4%)"


def test_mean_se_and_censoring_labels():
    assert stats.mean_se([1, 2, 3, np.nan]) == (2.0, pytest.approx(1 / math.sqrt(3)))
    assert math.isnan(stats.mean_se([5])[1]) and math.isnan(stats.mean_se([])[0])
    m, s = stats.mean_se_columns(np.array([[1.0, np.nan], [3.0, 4.0]]))
    np.testing.assert_allclose(m, [2, 4])
    np.testing.assert_allclose(s, [1, 0])
    g = stats.grok_time([100, 200, 300, 1000], [1, 1, 1, 0], 1000)
    assert (g["k"], g["n"], g["mean"], g["mean_budget"], g["p50"]) == (3, 4, 200, 400, 200)
    assert g["km_median"] == 250  # S is 0.5 from the second event to the third: the midpoint
    assert "among the 3 that reached it" in stats.fmt_mean_reached(g)
    assert "never-reached counted at the budget" in stats.fmt_mean_budget(g)
    none = stats.grok_time([50, 50], [0, 0], 50)
    assert math.isnan(none["mean"]) and none["km_median"] != none["km_median"]
    assert stats.fmt_median(none).startswith("not reached")


def test_km_median_of_uncensored_runs_is_the_plain_median():
    for steps in ([1025, 1050, 1075, 1175, 1450, 1475, 1475, 1700], [3, 1, 2], [5, 5, 9, 9]):
        km = stats.kaplan_meier(steps, [1] * len(steps))
        assert km.median()[0] == np.median(steps)


def test_median_interval_open_above_the_budget():
    g = stats.grok_time([320, 340, 360, 380, 600, 600], [1, 1, 1, 1, 0, 0], 600)
    text = stats.fmt_median(g)
    assert np.isnan(g["km_hi"]) and text.endswith("to >600)") and text.startswith(stats.fmt_num(g["km_median"]))


# ---------------------------------------------------- the library calls against the NumPy code they replaced

def old_wilson(k, n, z=stats.Z95):
    """jgrok.stats.wilson as written out before SciPy's binomtest computed it."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def old_kaplan_meier(time, event, z=stats.Z95):
    """(times, survival, lower, upper) of jgrok.stats.kaplan_meier as written out before SciPy's ecdf."""
    time, event = np.asarray(time, float), np.asarray(event, bool)
    ts = np.unique(time[event])
    at_risk = np.array([(time >= t).sum() for t in ts], float)
    d = np.array([(event & (time == t)).sum() for t in ts], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.cumprod(1 - d / at_risk)
        g = np.cumsum(np.where(at_risk > d, d / (at_risk * (at_risk - d)), np.inf))
        ok = (s > 0) & (s < 1) & np.isfinite(g)
        w = np.where(ok, z * np.sqrt(np.where(ok, g, 0)) / np.log(np.where(ok, s, 0.5)), 0.0)
        lower, upper = np.where(ok, s ** np.exp(-w), s), np.where(ok, s ** np.exp(w), s)
    return ts, s, np.minimum(lower, upper), np.maximum(lower, upper)


def old_logrank(times, events):
    """chi^2 of jgrok.stats.logrank (G groups) as written out before statsmodels' survdiff computed it."""
    times = [np.asarray(t, float) for t in times]
    events = [np.asarray(e, bool) for e in events]
    G = len(times)
    all_t = np.unique(np.concatenate([t[e] for t, e in zip(times, events)]))
    O, E, V = np.zeros(G), np.zeros(G), np.zeros((G, G))
    for t in all_t:
        n_g = np.array([(tt >= t).sum() for tt in times], float)
        d_g = np.array([((tt == t) & ee).sum() for tt, ee in zip(times, events)], float)
        n, d = n_g.sum(), d_g.sum()
        O += d_g
        E += d * n_g / n
        if n > 1:
            V += d * (n - d) / (n * n * (n - 1)) * (np.diag(n_g * n) - np.outer(n_g, n_g))
    diff = (O - E)[:-1]
    return float(diff @ np.linalg.pinv(V[:-1, :-1]) @ diff)


def pilot_like(rng, groups, n, budget=2000):
    """Steps to 99% on an evaluation grid of 25 (many ties), censored at the budget, per group."""
    out = []
    for g in range(groups):
        t = np.minimum(np.ceil(rng.exponential(900 + 300 * g, n) / 25) * 25, budget)
        out.append((t, t < budget))
    return out


def test_library_statistics_agree_with_the_code_they_replaced():
    rng = np.random.default_rng(7)
    for k, n in [(0, 1), (1, 1), (0, 8), (3, 10), (8, 8), (17, 2048), (2047, 2048), (5, 64)]:
        assert stats.wilson(k, n) == pytest.approx(old_wilson(k, n), abs=1e-12)
    data = [(MP_T, MP_E), (PL_T, PL_E)] + pilot_like(rng, 3, 64) + pilot_like(rng, 1, 7, budget=900)
    for t, e in data:
        km = stats.kaplan_meier(t, e)
        ts, s, lo, hi = old_kaplan_meier(t, e)
        np.testing.assert_array_equal(km.time, ts)
        np.testing.assert_allclose(km.survival, s, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(km.lower, lo, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(km.upper, hi, rtol=1e-9, atol=1e-12)
    assert stats.logrank([MP_T, PL_T], [MP_E, PL_E])["chi2"] == pytest.approx(old_logrank([MP_T, PL_T], [MP_E, PL_E]),
                                                                              rel=1e-9)
    for groups in (2, 3, 5):
        g = pilot_like(rng, groups, 48)
        new = stats.logrank([t for t, _ in g], [e for _, e in g])
        assert new["df"] == groups - 1
        assert new["chi2"] == pytest.approx(old_logrank([t for t, _ in g], [e for _, e in g]), rel=1e-9)
    nothing = stats.logrank([[5, 5], [5, 5]], [[0, 0], [0, 0]])
    assert math.isnan(nothing["chi2"]) and math.isnan(nothing["p"])
    assert len(stats.kaplan_meier([5, 5], [0, 0]).survival) == 0
