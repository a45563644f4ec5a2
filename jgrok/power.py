"""How many seeds a comparison needs, from a pilot scan: the seeds per run group at which a log-rank test at
two-sided alpha = 0.05 detects the difference with 80% power. Shown by report.md, the end-of-scan printout and
``python -m jgrok.analyze OUT --power [--effect 1.5]``.

  formula     Schoenfeld (1981, Biometrika 68:316): a log-rank test with equal groups needs
              D = 4 (z_{1-alpha/2} + z_{power})^2 / log(HR)^2 runs that reach 99% val acc in all, so
              n = D / (2 p) per group, with p the pilot's share of runs of the two groups that reached it within
              the budget and HR the pilot's Cox hazard ratio (jgrok.compare) or the one the user names. No library
              jgrok depends on has it (statsmodels' power module covers t, z, F and chi^2 tests of means and shares).
  simulation  the same question asked of the pilot itself: for a candidate n, draw n runs per group from each group's
              Kaplan-Meier curve (a run's step is the first step where S(t) <= u, u uniform; never-reached where S
              stays above u: inverse transform sampling, which for a curve with one censoring time at the budget is
              a bootstrap of its runs), test with the log-rank test, repeat TRIALS times; the power is the share of
              trials with p < alpha. For a named hazard ratio h, A is drawn from S_B(t)^h (proportional hazards)
              with S_B the pooled curve of the pilot's two groups. n is the smallest of a grid (1..16, then multiples of 8) whose
              power reaches the target, found by bisection with the same random numbers at every n.
  paired      where the pilot's groups share their seeds, the simulation also resamples seeds (a seed's two runs
              together) and tests with the log-rank test stratified by seed. With one run per group and seed, that
              test reduces to a sign test on the seeds where one setting got there first:
              chi^2 = (a - b)^2 / (a + b) (a: seeds where A got there at an earlier evaluation than B, b: the reverse),
              which is what the simulation computes (tests check it against statsmodels' stratified survdiff).
  one group   seeds for a precise estimate of one run group: for a share (that reached 99%; the super-run share
              of jgrok.analysis.seeds), the smallest n whose 95% Wilson interval at the pilot's share is at most
              +- the half-width asked for; for the Kaplan-Meier median, the smallest n for which 95% of simulated
              n-seed groups (drawn from the pilot's curve) have their median within +- the half-width (steps).
  cost        seeds x run groups x budget updates = seed-steps; time at the rate the pilot scan itself measured
              (OUT/timing.json, written by the scan: seed-steps per second including compilation) where it has one.

The simulated log-rank statistic is computed for all trials at once (``logrank_chi2``), because the library tests
take one sample at a time; it is checked against statsmodels' survdiff in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
POWER = 0.8
TRIALS = 1000
MAX_SEEDS = 8192


@dataclass
class Power:
    """Seeds per run group for one comparison (module docstring); None: more than MAX_SEEDS, NaN: not defined."""

    effect: str            # "pilot" or "HR 1.5"
    hr: float              # the hazard ratio powered for (A against B)
    formula: float         # Schoenfeld's n per group
    simulated: int | None  # smallest grid n with simulated power >= POWER
    paired: int | None     # the same, paired by seed (None where not paired or beyond MAX_SEEDS)
    is_paired: bool


def schoenfeld(hr: float, p_event: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Runs per group (equal groups) for a log-rank test to detect hazard ratio hr (module docstring)."""
    from scipy.stats import norm

    if not (np.isfinite(hr) and hr > 0 and hr != 1 and p_event > 0):
        return math.nan
    d = 4 * (norm.ppf(1 - alpha / 2) + norm.ppf(power)) ** 2 / math.log(hr) ** 2
    return d / (2 * p_event)


def logrank_chi2(ta, ea, tb, eb) -> np.ndarray:
    """The two-group log-rank chi^2 of every trial: times and event flags of shape [trials, n_a] and [trials, n_b]
    (the same definition as jgrok.stats.logrank and statsmodels' survdiff, all trials at once)."""
    return logrank_z(ta, ea, tb, eb) ** 2


def logrank_z(ta, ea, tb, eb) -> np.ndarray:
    """The signed log-rank score Z = (O - E) / sqrt(V) of group A for every trial ([trials, n_a], [trials, n_b]);
    positive: more of A's runs reach 99% val acc early than the pooled curve expects."""
    ta, tb = np.asarray(ta, float), np.asarray(tb, float)
    grid = np.unique(np.concatenate([ta.ravel(), tb.ravel()]))
    T, J = ta.shape[0], len(grid)

    def counts(t, e):
        j = np.searchsorted(grid, t) + J * np.arange(T)[:, None]
        d = np.bincount(j[np.asarray(e, bool)].ravel(), minlength=T * J).reshape(T, J)
        allc = np.bincount(j.ravel(), minlength=T * J).reshape(T, J)
        at_risk = t.shape[1] - np.concatenate([np.zeros((T, 1)), np.cumsum(allc, axis=1)[:, :-1]], axis=1)
        return d.astype(float), at_risk

    da, na = counts(ta, ea)
    db, nb = counts(tb, eb)
    d, n = da + db, na + nb
    with np.errstate(invalid="ignore", divide="ignore"):
        e_a = np.where(n > 0, d * na / n, 0.0)
        v = np.where(n > 1, d * (na / n) * (1 - na / n) * (n - d) / (n - 1), 0.0)
        o_e, var = (da - e_a).sum(axis=1), v.sum(axis=1)
        return np.where(var > 0, o_e / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)


def sign_chi2(ta, ea, tb, eb) -> np.ndarray:
    """The log-rank chi^2 stratified by seed with one run per group and seed, for every trial ([trials, seeds]):
    (a - b)^2 / (a + b) over the seeds where one run got there first (module docstring)."""
    return paired_z(ta, ea, tb, eb) ** 2


def paired_z(ta, ea, tb, eb) -> np.ndarray:
    """The signed square root of ``sign_chi2``: (a - b) / sqrt(a + b), positive where A got there first on more
    seeds (0 where no seed tells them apart)."""
    xa = np.where(ea, ta, np.inf)
    xb = np.where(eb, tb, np.inf)
    a, b = (xa < xb).sum(axis=-1), (xb < xa).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(a + b > 0, (a - b) / np.sqrt(np.maximum(a + b, 1)), 0.0)


def draw(km, u: np.ndarray, budget: int, h: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(steps, reached) of runs drawn by inverse transform from the curve S(t)^h of a jgrok.stats.KaplanMeier:
    the first event time where S^h <= u; the budget, never reached, where S^h stays above u."""
    s = km.survival ** h
    # s is non-increasing: the first index where s <= u
    j = np.searchsorted(-s, -u, side="left")
    got = j < len(s)
    t = np.where(got, km.time[np.minimum(j, len(s) - 1)] if len(s) else budget, budget)
    return t.astype(float), got


def _power_at(n, sample, test, trials, rng_seed) -> float:
    from scipy.stats import chi2

    rng = np.random.default_rng(rng_seed)  # the same random numbers at every n (common random numbers)
    ta, ea, tb, eb = sample(rng, trials, n)
    return float((chi2.sf(test(ta, ea, tb, eb), 1) < ALPHA).mean())


def smallest_n(sample, test, trials: int = TRIALS, rng_seed: int = 0, target: float = POWER) -> int | None:
    """The smallest n (any n up to 16, a multiple of 8 above) up to MAX_SEEDS whose simulated power reaches
    ``target`` (the same random numbers at every n keep the power near monotone in n); None beyond."""
    return smallest(lambda n: _power_at(n, sample, test, trials, rng_seed) >= target)


def smallest(ok) -> int | None:
    """The smallest n of the grid (any n up to 16, multiples of 8 above, up to MAX_SEEDS) with ok(n), for an ok
    that turns true as n grows: doubling from 2, then bisection; None when even MAX_SEEDS is not enough."""
    lo, hi = 1, 2
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_SEEDS:
            return None
    while hi - lo > (1 if hi <= 16 else 8):
        mid = (lo + hi) // 2 if hi <= 16 else (lo + hi) // 16 * 8
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------------------------- one group: a precise estimate

def share_half_width(p: float, n: int) -> float:
    """Half the width of the 95% Wilson interval of a share p observed over n runs (k = round(p n))."""
    from jgrok import stats

    lo, hi = stats.wilson(int(round(p * n)), n)
    return (hi - lo) / 2


def seeds_for_share(p: float, half_width: float) -> int | None:
    """Seeds for the 95% Wilson interval of a share near p to be at most +- half_width."""
    return smallest(lambda n: share_half_width(p, n) <= half_width)


def median_half_width(km, n: int, budget: int, trials: int = TRIALS, rng_seed: int = 0) -> float:
    """Half the width of the middle 95% of the Kaplan-Meier medians of ``trials`` simulated groups of n runs drawn
    from the curve km (inverse transform, as ``draw``): how far the median of an n-seed scan lands from scan to
    scan. Infinite when more than 2.5% of the simulated groups have no median within the budget."""
    from jgrok.compare import median_censored

    rng = np.random.default_rng(rng_seed)
    t, got = draw(km, rng.random((trials, n)), budget)
    med = median_censored(np.where(got, t, np.inf), budget)
    with np.errstate(invalid="ignore"):  # a share of medians at +inf: the upper percentile is inf
        lo, hi = np.percentile(med, [2.5, 97.5])
    return float((hi - lo) / 2) if np.isfinite(hi) else math.inf


def seeds_for_median(km, budget: int, half_width: float, trials: int = TRIALS, rng_seed: int = 0) -> int | None:
    """Seeds for the Kaplan-Meier median of a run group to land within +- half_width steps (95% of simulated
    scans), from the group's own curve."""
    return smallest(lambda n: median_half_width(km, n, budget, trials, rng_seed) <= half_width)


def for_comparison(comp, steps_a, reached_a, seeds_a, steps_b, reached_b, seeds_b, budget: int,
                   hr: float | None = None, trials: int = TRIALS, rng_seed: int = 0) -> Power:
    """Seeds per group for a jgrok.compare.Comparison: at the pilot's own difference (hr None) or at hazard ratio
    hr. Where the comparison is paired, B's runs are lined up with A's seeds (jgrok.compare.pairing)."""
    from jgrok import stats

    from jgrok.compare import pairing

    ea, eb = np.asarray(reached_a, bool), np.asarray(reached_b, bool)
    ta = np.where(ea, np.asarray(steps_a, float), budget)
    tb = np.where(eb, np.asarray(steps_b, float), budget)
    order = pairing(seeds_a, seeds_b)
    if order is not None:
        tb, eb = tb[order], eb[order]
    p_event = float(np.concatenate([ea, eb]).mean())
    if hr is None:
        km_a, km_b, h_a = stats.kaplan_meier(ta, ea), stats.kaplan_meier(tb, eb), 1.0
        powered, effect = comp.hr, "the pilot's"
    else:
        km_a = km_b = stats.kaplan_meier(np.concatenate([ta, tb]), np.concatenate([ea, eb]))
        h_a, powered, effect = hr, hr, f"hazard ratio {hr:g}"

    def sample(rng, trials, n):
        xa, ga = draw(km_a, rng.random((trials, n)), budget, h_a)
        xb, gb = draw(km_b, rng.random((trials, n)), budget)
        return xa, ga, xb, gb

    def sample_pairs(rng, trials, n):
        i = rng.integers(0, len(ta), (trials, n))
        return ta[i], ea[i], tb[i], eb[i]

    sim = smallest_n(sample, logrank_chi2, trials, rng_seed)
    paired = smallest_n(sample_pairs, sign_chi2, trials, rng_seed) if comp.paired and hr is None else None
    return Power(effect, powered, schoenfeld(powered, p_event), sim, paired, comp.paired and hr is None)


# ------------------------------------------------------------------------------------------------------ wording

def cost(n: int | None, groups: int, budget: int, rate: float | None) -> str:
    """'2 x 96 seeds = 384,000 seed-steps (~32 s at this scan's rate)'."""
    if n is None:
        return f"more than {MAX_SEEDS} seeds per group"
    steps = n * groups * budget
    text = f"{n} seeds per group = {steps:,} seed-steps"
    if rate:
        s = steps / rate
        text += f" (~{s:.0f} s" if s < 120 else f" (~{s / 60:.0f} min" if s < 7200 else f" (~{s / 3600:.1f} h"
        text += " at this scan's measured rate)"
    return text


def table(items: list, budget: int, rate: float | None) -> list[list]:
    """Rows of report.md's power table: items are (jgrok.compare.Comparison, Power)."""
    rows = []
    for comp, pw in items:
        formula = "–" if not np.isfinite(pw.formula) else f"{math.ceil(pw.formula)}"
        effect = (f"this scan's: {pw.hr:.3g}" if np.isfinite(pw.hr) else "this scan's: no finite estimate") \
            if pw.effect == "the pilot's" else f"named: {pw.hr:g}"
        rows.append([comp.short(comp.a), comp.short(comp.b), effect, formula, cost(pw.simulated, 2, budget, rate),
                     cost(pw.paired, 2, budget, rate) if pw.is_paired else "–"])
    return rows


TABLE_HEAD = ["A", "B", "effect (hazard ratio)", "seeds per group, Schoenfeld", "seeds per group, simulated",
              "simulated, paired by seed"]


def of_groups(rows: list[dict], by_group: dict, comp, budget: int, hr: float | None = None, trials: int = TRIALS,
              rng_seed: int = 0) -> Power:
    """``for_comparison`` of a jgrok.compare.Comparison between two run groups of ``by_group``."""
    from jgrok.compare import group_runs

    return for_comparison(comp, *group_runs(rows, by_group, (comp.task, comp.a)),
                          *group_runs(rows, by_group, (comp.task, comp.b)), budget, hr, trials, rng_seed)


def rate(out) -> float | None:
    """The seed-steps per second (compilation included) the scan in ``out`` measured (OUT/timing.json), or None."""
    import json
    from pathlib import Path

    try:
        t = json.loads((Path(out) / "timing.json").read_text())
        return float(t["seed_steps"]) / float(t["wall_s"]) if float(t["wall_s"]) > 0 else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lines(items: list, budget: int, rate_: float | None) -> list[str]:
    """The printout's lines: one per (comparison, Power)."""
    out = []
    for comp, pw in items:
        what = f"{comp.short(comp.a)} vs {comp.short(comp.b)} at " + (
            (f"this scan's hazard ratio {pw.hr:.3g}" if np.isfinite(pw.hr) else "this scan's difference")
            if pw.effect == "the pilot's" else pw.effect)
        text = f"{what}: {cost(pw.simulated, 2, budget, rate_)} for 80% power at alpha 0.05 (simulated"
        text += f"; Schoenfeld's formula {math.ceil(pw.formula)})" if np.isfinite(pw.formula) else ")"
        if pw.is_paired:
            text += f"; paired by seed: {cost(pw.paired, 2, budget, rate_)}"
        out.append(text)
    return out
