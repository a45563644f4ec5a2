"""The statistics every summary of runs uses: the end-of-scan printout, report.md, the plots, ``analyze`` and
(where the AI-Scientist template's formula is not required) final_info.json. One definition of each number:

  mean, s.e.        mean and standard error over the n finite values: s.e. = sample std (ddof=1) / sqrt(n); no s.e.
                    for n < 2. (final_info.json's ``stderrs`` are the AI-Scientist template's population std / n and
                    are written by jgrok.io.results, labelled as the template's.)
  share k/n         with its 95% Wilson score interval (exact 0 and 1 at the ends: 0/8 -> 0-32%)
  steps to 99% val acc (``step_val_acc_99``): time-to-event data, censored at the budget for runs that never got
                    there. Every number over them says which runs it covers:
                      "among the k that reached it"        quantiles, mean and s.e. of the k runs that reached 99%
                      "never-reached counted at the budget" the same over all n runs, censored values at the budget
                      Kaplan-Meier                          the estimate that treats the budget as censoring
  Kaplan-Meier      S(t) = share of runs not yet at 99% val acc after t updates = prod over event steps s <= t of
                    (1 - d_s / n_s) (d_s runs reached 99% at s, n_s runs had not before s). Its variance is
                    Greenwood's, Var S = S^2 sum d / (n (n - d)); the 95% band is the log(-log) transform of it
                    (stays inside [0, 1]). Median = first t with S(t) <= 0.5 (none if S stays above 0.5), or the
                    midpoint to the next event time where S is exactly 0.5 until then (as R's survfit, and as the
                    plain median of an even number of uncensored values); its 95%
                    interval is the Brookmeyer-Crowley one read off the band: from the first t where the lower band
                    is <= 0.5 to the first t where the upper band is (open-ended where the band never gets there).
  log-rank test     between run groups: chi^2 = (O - E)' V^-1 (O - E) over the first G - 1 groups, with O and E the
                    observed and expected events per group and V the hypergeometric covariance; p from the chi^2
                    distribution with G - 1 degrees of freedom. It compares whole curves (censoring included), which
                    a mean of censored values does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
QUANTILES = (10, 25, 50, 75, 90)
REACHED_NOTE = "among the {k} that reached it"
BUDGET_NOTE = "never-reached counted at the budget"


def mean_se(x) -> tuple[float, float]:
    """(mean, s.e.) over the finite values of x; s.e. = sample std / sqrt(n), NaN for n < 2; (NaN, NaN) if none."""
    x = np.asarray(x, float).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


def mean_se_columns(x_RxE: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``mean_se`` of every column over its finite values (NaN mean where none; s.e. 0 where n = 1, so that a band
    can still be drawn)."""
    finite = np.isfinite(x_RxE)
    n_E = finite.sum(axis=0)
    x0 = np.where(finite, x_RxE, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_E = np.where(n_E > 0, x0.sum(axis=0) / n_E, np.nan)
        ss_E = np.where(finite, (x0 - mean_E) ** 2, 0.0).sum(axis=0)
        se_E = np.where(n_E > 1, np.sqrt(ss_E / np.maximum(n_E - 1, 1)) / np.sqrt(np.maximum(n_E, 1)), 0.0)
    return mean_E, se_E


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a share k/n (with n = 0: (0, 1))."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)  # exact at the ends


@dataclass
class KaplanMeier:
    """The Kaplan-Meier estimate at its event times (definitions in the module docstring)."""

    time: np.ndarray       # [J] distinct event times, ascending
    at_risk: np.ndarray    # [J] n_s
    events: np.ndarray     # [J] d_s
    survival: np.ndarray   # [J] S just after each event time
    se: np.ndarray         # [J] Greenwood standard error of S
    lower: np.ndarray      # [J] 95% band (log(-log))
    upper: np.ndarray
    n: int

    def at(self, t: float) -> float:
        """S(t): the share not yet at the event after time t."""
        j = np.searchsorted(self.time, t, side="right")
        return 1.0 if j == 0 else float(self.survival[j - 1])

    def median(self) -> tuple[float, float, float]:
        """(median, lower, upper) with NaN where the curve or its band never reaches 0.5."""
        med = _first_at_or_below(self.time, self.survival)
        j = np.searchsorted(self.time, med)
        if np.isfinite(med) and abs(self.survival[j] - 0.5) < 1e-12 and j + 1 < len(self.time):
            med = (med + float(self.time[j + 1])) / 2  # S is exactly 0.5 until the next event: the midpoint
        return med, _first_at_or_below(self.time, self.lower), _first_at_or_below(self.time, self.upper)

    def steps(self, t_end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(t, S, lower, upper) as a step function from 0 to t_end, for drawing with ``where='post'``."""
        t = np.concatenate([[0.0], self.time, [t_end]])
        last = lambda a: a[-1] if len(a) else 1.0  # noqa: E731
        s = np.concatenate([[1.0], self.survival, [last(self.survival)]])
        lo = np.concatenate([[1.0], self.lower, [last(self.lower)]])
        hi = np.concatenate([[1.0], self.upper, [last(self.upper)]])
        return t, s, lo, hi


def _first_at_or_below(t, s, level=0.5) -> float:
    below = np.flatnonzero(np.asarray(s) <= level + 1e-12)
    return float(t[below[0]]) if len(below) else math.nan


def kaplan_meier(time, event, z: float = Z95) -> KaplanMeier:
    """Kaplan-Meier estimate of the share without the event, from times and event flags (0 = censored there)."""
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    ts = np.unique(time[event])
    at_risk = np.array([(time >= t).sum() for t in ts], float)
    d = np.array([(event & (time == t)).sum() for t in ts], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.cumprod(1 - d / at_risk)
        g = np.cumsum(np.where(at_risk > d, d / (at_risk * (at_risk - d)), np.inf))
        se = s * np.sqrt(g)
        # log(-log S) band: S ** exp(+-z sqrt(g) / log S); where S is 0 or 1 the band is S itself
        ok = (s > 0) & (s < 1) & np.isfinite(g)
        w = np.where(ok, z * np.sqrt(np.where(ok, g, 0)) / np.log(np.where(ok, s, 0.5)), 0.0)
        lower = np.where(ok, s ** np.exp(-w), s)
        upper = np.where(ok, s ** np.exp(w), s)
    lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
    return KaplanMeier(ts, at_risk.astype(int), d.astype(int), s, np.where(np.isfinite(se), se, np.nan),
                       lower, upper, len(time))


def logrank(times: list, events: list) -> dict:
    """The log-rank test between G groups (lists of per-group times and event flags): {chi2, df, p, observed,
    expected}. p is NaN when there is nothing to compare (one group, or no event at all)."""
    from scipy.stats import chi2 as chi2_dist

    times = [np.asarray(t, float) for t in times]
    events = [np.asarray(e, bool) for e in events]
    G = len(times)
    all_t = np.unique(np.concatenate([t[e] for t, e in zip(times, events)])) if G else np.array([])
    O, E = np.zeros(G), np.zeros(G)
    V = np.zeros((G, G))
    for t in all_t:
        n_g = np.array([(tt >= t).sum() for tt in times], float)
        d_g = np.array([((tt == t) & ee).sum() for tt, ee in zip(times, events)], float)
        n, d = n_g.sum(), d_g.sum()
        O += d_g
        E += d * n_g / n
        if n > 1:
            f = d * (n - d) / (n * n * (n - 1))
            V += f * (np.diag(n_g * n) - np.outer(n_g, n_g))
    df = G - 1
    if G < 2 or len(all_t) == 0:
        return dict(chi2=math.nan, df=df, p=math.nan, observed=O, expected=E)
    diff = (O - E)[:-1]
    chi2 = float(diff @ np.linalg.pinv(V[:-1, :-1]) @ diff)
    return dict(chi2=chi2, df=df, p=float(chi2_dist.sf(chi2, df)), observed=O, expected=E)


def logrank_steps(steps: list, reached: list, budget: int) -> dict:
    """``logrank`` of steps to 99% val acc between run groups (per group: steps, reached flags), the runs that
    never reached it censored at the budget."""
    reached = [np.asarray(r, bool) for r in reached]
    return logrank([np.where(r, np.asarray(s, float), budget) for s, r in zip(steps, reached)], reached)


def grok_time(steps, reached, budget: int) -> dict:
    """Every summary of steps to 99% val acc over one run group (steps: ``step_val_acc_99``, the budget where
    never; reached: ``reached_val_99``). Keys: n, k (reached), share, share_lo, share_hi (Wilson), p10 .. p90,
    mean, se (all "among the k that reached it"; NaN when k = 0, no s.e. when k < 2), mean_budget, se_budget
    ("never-reached counted at the budget"), km (KaplanMeier), km_median, km_lo, km_hi."""
    steps = np.asarray(steps, float)
    reached = np.asarray(reached, bool)
    k, n = int(reached.sum()), len(steps)
    got = steps[reached]
    q = np.percentile(got, QUANTILES) if k else np.full(len(QUANTILES), np.nan)
    lo, hi = wilson(k, n)
    mean, se = mean_se(got)
    mean_b, se_b = mean_se(np.where(reached, steps, budget))
    km = kaplan_meier(np.where(reached, steps, budget), reached)
    med, med_lo, med_hi = km.median()
    return dict(n=n, k=k, share=k / n if n else math.nan, share_lo=lo, share_hi=hi,
                **{f"p{p}": float(v) for p, v in zip(QUANTILES, q)}, mean=mean, se=se, mean_budget=mean_b,
                se_budget=se_b, budget=int(budget), km=km, km_median=med, km_lo=med_lo, km_hi=med_hi)


# ------------------------------------------------------------------------------------------------------ wording

def fmt_num(v, fmt="{:.0f}") -> str:
    return "–" if v is None or not np.isfinite(float(v)) else fmt.format(float(v))


def fmt_share(k: int, n: int) -> str:
    """'6/8 = 75.0% (95% CI 40.9–92.9%)' with the Wilson interval."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% (95% CI {100 * lo:.1f}–{100 * hi:.1f}%)" if n else "0/0"


def fmt_pm(mean, se, fmt="{:.0f}") -> str:
    """'1221 ± 77' (mean ± s.e.), '1221' without an s.e., '–' without a mean."""
    if mean is None or not np.isfinite(mean):
        return "–"
    return fmt.format(mean) + ("" if se is None or not np.isfinite(se) else " ± " + fmt.format(se))


def fmt_median(g: dict) -> str:
    """'1300 (95% CI 1100–1500)' of the Kaplan-Meier median; 'not reached' when fewer than half got there, and an
    open end where the band never falls to 0.5."""
    if not np.isfinite(g["km_median"]):
        return f"not reached (over half never got there within {g['budget']})"
    if np.isfinite(g["km_hi"]):
        return f"{fmt_num(g['km_median'])} (95% CI {fmt_num(g['km_lo'])}–{fmt_num(g['km_hi'])})"
    return f"{fmt_num(g['km_median'])} (95% CI {fmt_num(g['km_lo'])} to >{g['budget']})"


def fmt_mean_reached(g: dict) -> str:
    """'1221 ± 77 (mean ± s.e. among the 6 that reached it)'."""
    return f"{fmt_pm(g['mean'], g['se'])} (mean ± s.e. {REACHED_NOTE.format(k=g['k'])})"


def fmt_mean_budget(g: dict) -> str:
    """'1291 ± 60 (mean ± s.e. of all 8, never-reached counted at the budget)'."""
    return f"{fmt_pm(g['mean_budget'], g['se_budget'])} (mean ± s.e. of all {g['n']}, {BUDGET_NOTE})"


def fmt_logrank(res: dict) -> str:
    if not np.isfinite(res["chi2"]):
        return "log-rank test: nothing to compare"
    return f"log-rank chi² = {res['chi2']:.2f} on {res['df']} df, p = {res['p']:.3g}"
