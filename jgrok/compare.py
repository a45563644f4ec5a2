"""Comparisons between two run groups of one task: how much faster one groks, how sure that is, and whether seed luck
carries from one setting to the other. The numbers report.md, the end-of-scan printout and ``python -m
jgrok.analyze OUT --compare A B`` show, defined here once (power: jgrok.power).

Time to grokking is steps to 99% val acc (``step_val_acc_99``), censored at the budget for the runs that never got
there. For run groups A and B (A is the later group in label order unless named):

  log-rank p        the log-rank test of A against B (statsmodels ``survdiff``), censoring included
  hazard ratio      exp(beta) of a Cox proportional-hazards model with "run is in A" as its one covariate
                    (statsmodels ``PHReg``, Efron ties), with its 95% Wald interval. Above 1: at any step, a run of A
                    that has not grokked yet is that many times as likely to grok next as a run of B ("A groks 1.8x
                    faster"). No finite estimate when one group grokks entirely before the other starts.
  median difference Kaplan-Meier median of A minus that of B (negative: A is faster), with a 95% percentile
                    bootstrap interval (NumPy resampling; the median of a resample is ``median_censored``, the
                    Kaplan-Meier median for one common censoring time); a group whose curve stays above 0.5 has no
                    median, so a resample where it has none counts as +infinity.
  P(A first)        the probability that a run of A reaches 99% val acc before a run of B: over all (a, b) pairs of
                    runs, 1 where a got there at an earlier step, 1/2 where they got there at the same evaluation or
                    neither got there within the budget (both censored there, so neither is known to be first),
                    0 otherwise. It is the Mann-Whitney U of the two groups / (n_A n_B) with a never-reached run
                    placed after every run that reached it (scipy ``mannwhitneyu``); "probability of improvement" in
                    Agarwal et al. 2021. 95% percentile bootstrap interval.
  paired seeds      every run group of a jgrok scan trains the same seeds, and a seed's luck (its init and data
                    order) carries across settings. Where A and B hold the same seeds, the bootstraps resample seeds
                    (both of its runs together), and these numbers are added:
                      rho      Spearman rank correlation of a seed's steps in A and in B (never-reached at the budget),
                               with its p-value (``scipy.stats.spearmanr``)
                      paired p the log-rank test stratified by seed (``survdiff`` with the seed as stratum): within
                               each seed it asks only which setting got there first, so seed luck cancels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from jgrok import rungroup, stats
from jgrok.errors import ConfigError

BOOTSTRAP = 2000


@dataclass
class Comparison:
    """A against B (definitions in the module docstring)."""

    task: str
    a: str                 # run-group labels
    b: str
    axis: str | None       # the one axis they differ in (None: several)
    n_a: int
    n_b: int
    k_a: int               # runs that reached 99% val acc
    k_b: int
    logrank_p: float
    hr: float
    hr_lo: float
    hr_hi: float
    median_a: float        # NaN: the curve stays above 0.5
    median_b: float
    diff: float
    diff_lo: float
    diff_hi: float
    p_first: float
    p_first_lo: float
    p_first_hi: float
    budget: int = 0
    pairs: int = 0         # seeds that A and B share (0: not paired)
    rho: float = math.nan
    rho_p: float = math.nan
    paired_p: float = math.nan

    @property
    def paired(self) -> bool:
        return self.pairs > 0

    def short(self, label: str) -> str:
        """A label without the task and the axes A and B share: 'wd=1'."""
        other = self.b if label == self.a else self.a
        mine, theirs = label.split(" "), set(other.split(" "))
        return " ".join(p for p in mine[1:] if p not in theirs) or label

    def medians(self) -> str:
        """'1338 vs 2100', a median the curve never reaches as '>2000' (the budget)."""
        m = lambda v: stats.fmt_num(v) if np.isfinite(v) else f">{self.budget}"  # noqa: E731
        return f"{m(self.median_a)} vs {m(self.median_b)}"

    def difference(self) -> str:
        """The median difference with its interval; a bound where one median is beyond the budget."""
        if np.isfinite(self.diff):
            return fmt_interval(self.diff, self.diff_lo, self.diff_hi, "{:+.0f}")
        if np.isfinite(self.median_a) and not np.isfinite(self.median_b):
            return f"below {self.median_a - self.budget:+.0f}: {self.short(self.b)} has no median within the budget"
        if np.isfinite(self.median_b) and not np.isfinite(self.median_a):
            return f"above {self.budget - self.median_b:+.0f}: {self.short(self.a)} has no median within the budget"
        return "–: neither has a median within the budget"

    def sentence(self) -> str:
        """One line in plain words."""
        a, b = self.short(self.a), self.short(self.b)
        if np.isfinite(self.hr) and self.hr > 0:
            fast, slow, hr, lo, hi = (a, b, self.hr, self.hr_lo, self.hr_hi) if self.hr >= 1 else \
                (b, a, 1 / self.hr, 1 / self.hr_hi, 1 / self.hr_lo)
            head = f"{fast} groks faster than {slow} (hazard ratio {hr:.3g}, 95% CI {lo:.3g}–{hi:.3g}"
        else:
            head = f"{a} against {b} (hazard ratio: no finite estimate, the groups do not overlap"
        words = [head + f", log-rank p = {self.logrank_p:.3g}, {self.n_a} vs {self.n_b} seeds)"]
        words.append(f"Kaplan-Meier medians {self.medians()} steps (difference {self.difference()})")
        words.append(f"a run of {a} gets there before a run of {b} with probability "
                     f"{fmt_interval(self.p_first, self.p_first_lo, self.p_first_hi, '{:.2f}')}")
        line = "; ".join(words)
        if self.paired and np.isfinite(self.rho):
            line += (f". Seed luck persists across {self.axis or 'the two'}: Spearman rho "
                     f"{self.rho:.2f} (p = {self.rho_p:.2g}) over {self.pairs} shared seeds; paired by seed, "
                     f"log-rank p = {self.paired_p:.3g}")
        elif self.paired:
            line += (f". Over the {self.pairs} shared seeds the rank correlation is undefined (one group's steps "
                     f"are all equal); paired by seed, log-rank p = {self.paired_p:.3g}")
        return line + "."


def fmt_interval(v, lo, hi, fmt="{:.2f}") -> str:
    """'0.71 (95% CI 0.63–0.78)'; '–' without a value; an infinite end as '∞'."""
    if v is None or not np.isfinite(v):
        return "–"
    end = lambda x: ("+∞" if x > 0 else "−∞") if np.isinf(x) else ("?" if np.isnan(x) else fmt.format(x))  # noqa: E731
    return f"{fmt.format(v)} (95% CI {end(lo)} to {end(hi)})"


# ------------------------------------------------------------------------------------------------- which pairs

def axis_values(rows: list[dict], idx, group_axes: list[str]) -> dict[str, str]:
    """The axis values (as labels write them) of a run group's rows idx."""
    return {a: rungroup.value_text(rows[idx[0]][a]) for a in group_axes}


def differing(rows: list[dict], by_group: dict, group_axes: list[str], key_a, key_b) -> list[str]:
    """The axes whose values differ between two run groups (keys of ``by_group``)."""
    va, vb = (axis_values(rows, by_group[k], group_axes) for k in (key_a, key_b))
    return [a for a in group_axes if va[a] != vb[a]]


def one_axis_pairs(rows: list[dict], by_group: dict, group_axes: list[str]) -> list[tuple[str, str, str, str]]:
    """[(task, label A, label B, axis)] for every two run groups of a task that differ in exactly one axis; B is the
    earlier group in label order (the baseline), A the later."""
    out = []
    keys = list(by_group)
    for j, kb in enumerate(keys):
        for ka in keys[j + 1:]:
            if ka[0] != kb[0]:
                continue
            differ = differing(rows, by_group, group_axes, ka, kb)
            if len(differ) == 1:
                out.append((ka[0], ka[1], kb[1], differ[0]))
    return out


def find_group(by_group: dict, spec: str) -> tuple[str, str]:
    """The (task, label) named by ``spec``: a label, or ``axis=value`` words all of which the label holds
    (``'wd=1'``, ``'x_plus_y init=xavier_uniform'``); ConfigError unless exactly one run group matches."""
    words = spec.split()
    hits = [k for k in by_group if k[1] == spec] or [k for k in by_group if set(words) <= set(k[1].split(" "))]
    if len(hits) == 1:
        return hits[0]
    names = ", ".join(f"'{label}'" for _, label in by_group)
    if not hits:
        raise ConfigError(f"no run group matches '{spec}'; the run groups are {names}.")
    raise ConfigError(f"'{spec}' matches {len(hits)} run groups ({', '.join(repr(k[1]) for k in hits)}); name one "
                      "with more axis=value words.")


# ------------------------------------------------------------------------------------------------------ numbers

def _censored(steps, reached, budget) -> np.ndarray:
    """Steps with the never-reached runs placed after every reached step (budget + 1), for rank statistics."""
    return np.where(reached, np.asarray(steps, float), float(budget) + 1)


def median_censored(x: np.ndarray, budget: float, axis=-1) -> np.ndarray:
    """The Kaplan-Meier median (jgrok.stats.KaplanMeier.median) of samples where every censored value is budget + 1
    (the one censoring time of a scan), along ``axis``; +inf where the curve stays above 0.5. With one common
    censoring time after every event the Kaplan-Meier curve is the empirical one, so this is the sample median,
    except that S = 0.5 exactly until the censoring time keeps the last event (as KaplanMeier.median does)."""
    x = np.sort(np.moveaxis(np.asarray(x, float), axis, -1), axis=-1)
    n = x.shape[-1]
    cens = x > budget
    if n % 2:
        m = np.where(cens[..., n // 2], np.inf, x[..., n // 2])
    else:
        lo, hi = x[..., n // 2 - 1], x[..., n // 2]
        m = np.where(cens[..., n // 2 - 1], np.inf, np.where(cens[..., n // 2], lo, (lo + hi) / 2))
    return m


def _diff(ma, mb):
    with np.errstate(invalid="ignore"):
        d = ma - mb
    return np.where(np.isinf(ma) & np.isinf(mb), np.nan, d)


def _p_first(xa, xb, axis=-1):
    """P(a run of A is first), ties 1/2 (module docstring), along axis."""
    from scipy.stats import mannwhitneyu

    xa, xb = np.asarray(xa), np.asarray(xb)
    return mannwhitneyu(xb, xa, axis=axis, method="asymptotic").statistic / (xa.shape[axis] * xb.shape[axis])


def _interval(boot: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap values (NaN resamples dropped; infinite ends kept)."""
    boot = np.asarray(boot, float)
    boot = boot[~np.isnan(boot)]
    if len(boot) == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(boot, [0.025, 0.975], method="inverted_cdf")
    return float(lo), float(hi)


def _bootstrap(xa, xb, paired: bool, budget: float, B: int, seed: int):
    """(median differences, P(A first)) over B resamples: of seeds (both runs of a seed together) where paired, of
    each group's runs on their own otherwise."""
    rng = np.random.default_rng(seed)
    if paired:
        ia = ib = rng.integers(0, len(xa), (B, len(xa)))
    else:
        ia, ib = rng.integers(0, len(xa), (B, len(xa))), rng.integers(0, len(xb), (B, len(xb)))
    ra, rb = xa[ia], xb[ib]
    return _diff(median_censored(ra, budget), median_censored(rb, budget)), _p_first(ra, rb)


def cox(steps, reached, in_a, strata=None) -> tuple[float, float, float]:
    """(hazard ratio of A, 95% lower, upper) from statsmodels' PHReg (Efron ties); NaN where it has no finite
    estimate."""
    from statsmodels.duration.hazard_regression import PHReg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = PHReg(np.asarray(steps, float), np.asarray(in_a, float)[:, None], status=np.asarray(reached, int),
                        strata=strata, ties="efron").fit()
            b, (lo, hi) = float(fit.params[0]), fit.conf_int()[0]
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, IndexError):  # too few runs or events
            return math.nan, math.nan, math.nan
    if not (np.isfinite(b) and np.isfinite(lo) and np.isfinite(hi)) or abs(b) > 15:
        return math.nan, math.nan, math.nan  # separated groups: the likelihood has no maximum
    return math.exp(b), math.exp(lo), math.exp(hi)


def logrank_p(steps, reached, group, strata=None) -> float:
    """The log-rank p-value between the groups of ``group`` (jgrok.stats.survdiff; stratified where strata)."""
    return stats.survdiff(steps, reached, group, strata)[2]


def pairing(seeds_a, seeds_b) -> np.ndarray | None:
    """The order of B's runs that lines them up with A's seeds, where A and B hold the same seeds once each (and more
    than two); None otherwise (not paired)."""
    sa, sb = [int(s) for s in seeds_a], [int(s) for s in seeds_b]
    if len(sa) < 3 or len(set(sa)) != len(sa) or sorted(sa) != sorted(sb):
        return None
    pos = {s: i for i, s in enumerate(sb)}
    return np.array([pos[s] for s in sa])


def compare(task: str, a: str, b: str, axis: str | None, steps_a, reached_a, seeds_a, steps_b, reached_b, seeds_b,
            budget: int, B: int = BOOTSTRAP, seed: int = 0) -> Comparison:
    """A against B from their runs' steps to 99% val acc, reached flags and seeds (module docstring)."""
    from scipy.stats import spearmanr

    ta, ea = np.where(reached_a, np.asarray(steps_a, float), budget), np.asarray(reached_a, bool)
    tb, eb = np.where(reached_b, np.asarray(steps_b, float), budget), np.asarray(reached_b, bool)
    order = pairing(seeds_a, seeds_b)
    paired = order is not None
    if paired:  # B's runs in the order of A's seeds
        tb, eb = tb[order], eb[order]
    xa, xb = _censored(ta, ea, budget), _censored(tb, eb, budget)
    t, e = np.concatenate([ta, tb]), np.concatenate([ea, eb])
    g = np.r_[np.ones(len(ta)), np.zeros(len(tb))]
    hr, hr_lo, hr_hi = cox(t, e, g)
    ma, mb = float(median_censored(xa, budget)), float(median_censored(xb, budget))
    diffs, firsts = _bootstrap(xa, xb, paired, budget, B, seed)
    extra = {}
    if paired:
        strata = np.r_[np.arange(len(ta)), np.arange(len(tb))]
        with warnings.catch_warnings():  # a group whose steps are all equal has no rank correlation: NaN
            warnings.simplefilter("ignore")
            rho, rho_p = spearmanr(xa, xb)
        extra = dict(pairs=len(ta), rho=float(rho), rho_p=float(rho_p), paired_p=logrank_p(t, e, g, strata))
    fin = lambda v: math.nan if np.isinf(v) else v  # noqa: E731
    return Comparison(task, a, b, axis, len(ta), len(tb), int(ea.sum()), int(eb.sum()), logrank_p(t, e, g),
                      hr, hr_lo, hr_hi, fin(ma), fin(mb), float(_diff(np.float64(ma), np.float64(mb))),
                      *_interval(diffs), float(_p_first(xa, xb)), *_interval(firsts), int(budget), **extra)


def of_groups(rows: list[dict], by_group: dict, key_a, key_b, budget: int, axis=None, B: int = BOOTSTRAP,
              seed: int = 0) -> Comparison:
    """``compare`` of two run groups given by their (task, label) keys of ``by_group``."""
    return compare(key_a[0], key_a[1], key_b[1], axis, *group_runs(rows, by_group, key_a),
                   *group_runs(rows, by_group, key_b), budget, B, seed)


def group_runs(rows: list[dict], by_group: dict, key) -> tuple[np.ndarray, np.ndarray, list]:
    """(steps to 99% val acc, reached flags, model seeds) of the runs of one run group (a key of ``by_group``)."""
    from jgrok import scandata

    steps, reached = scandata.steps_reached(rows, by_group[key])
    return steps, reached, [rows[i]["seed"] for i in by_group[key]]


def all_pairs(rows: list[dict], by_group: dict, group_axes: list[str], budget: int, B: int = BOOTSTRAP,
              seed: int = 0) -> list[Comparison]:
    """The comparisons of every two run groups that differ in one axis (``one_axis_pairs``)."""
    return [of_groups(rows, by_group, (task, a), (task, b), budget, axis, B, seed)
            for task, a, b, axis in one_axis_pairs(rows, by_group, group_axes)]


# ------------------------------------------------------------------------------------------------------ wording

def table(comps: list[Comparison]) -> list[list]:
    """Rows of report.md's comparison table."""
    out = []
    for c in comps:
        hr = fmt_interval(c.hr, c.hr_lo, c.hr_hi) if np.isfinite(c.hr) else "no finite estimate"
        out.append([c.short(c.a), c.short(c.b), f"{c.n_a} vs {c.n_b}", hr,
                    c.medians(), c.difference(),
                    fmt_interval(c.p_first, c.p_first_lo, c.p_first_hi), f"{c.logrank_p:.3g}",
                    f"{c.rho:.2f} (p = {c.rho_p:.2g})" if c.paired and np.isfinite(c.rho) else "–",
                    f"{c.paired_p:.3g}" if c.paired else "–"])
    return out


TABLE_HEAD = ["A", "B", "seeds", "hazard ratio A/B (95% CI)", "KM medians", "median difference A − B (95% CI)",
              "P(A first) (95% CI)", "log-rank p", "seed rank correlation", "log-rank p paired by seed"]
