"""The statistics every summary of runs uses: the end-of-scan printout, report.md, the plots, ``analyze`` and
(where the AI-Scientist template's formula is not required) final_info.json. One definition of each number:

  mean, s.e.        mean and standard error over the n finite values: s.e. = sample std (ddof=1) / sqrt(n); no s.e.
                    for n < 2. (final_info.json's ``stderrs`` are the AI-Scientist template's population std / n and
                    are written by jgrok.io.results, labelled as the template's.)
  share k/n         with its 95% Wilson score interval (exact 0 and 1 at the ends: 0/8 -> 0-32%), computed by SciPy's
                    ``binomtest(k, n).proportion_ci(method="wilson")``
  steps to 99% val acc (``step_val_acc_99``): time-to-event data, censored at the budget for runs that never got
                    there. Every number over them says which runs it covers:
                      "among the k that reached it"        quantiles, mean and s.e. of the k runs that reached 99%
                      "never-reached counted at the budget" the same over all n runs, censored values at the budget
                      Kaplan-Meier                          the estimate that treats the budget as censoring
  Kaplan-Meier      S(t) = share of runs not yet at 99% val acc after t updates = prod over event steps s <= t of
                    (1 - d_s / n_s) (d_s runs reached 99% at s, n_s runs had not before s). Its variance is
                    Greenwood's, Var S = S^2 sum d / (n (n - d)); the 95% band is the log(-log) transform of it
                    (stays inside [0, 1]). S and the band are SciPy's ``ecdf`` of the censored times
                    (``sf.confidence_interval(method="log-log")``); Greenwood's s.e. is written out here, as SciPy
                    keeps it private. Median = first t with S(t) <= 0.5 (none if S stays above 0.5), or the
                    midpoint to the next event time where S is exactly 0.5 until then (as R's survfit, and as the
                    plain median of an even number of uncensored values); its 95%
                    interval is the Brookmeyer-Crowley one read off the band: from the first t where the lower band
                    is <= 0.5 to the first t where the upper band is (open-ended where the band never gets there).
  log-rank test     between run groups: chi^2 = (O - E)' V^-1 (O - E) over the first G - 1 groups, with O and E the
                    observed and expected events per group and V the hypergeometric covariance; p from the chi^2
                    distribution with G - 1 degrees of freedom (statsmodels ``survdiff`` computes chi^2, SciPy's
                    ``chi2.sf`` the p-value). It compares whole curves (censoring included), which a mean of
                    censored values does not.
  phase             a run's learning phase (Liu et al. 2022, "Towards Understanding Grokking: An Effective Theory
                    of Representation Learning", NeurIPS 2022, section 5), from its steps to the accuracy level A
                    on train and on val (``step_train_acc_<A>``, ``step_val_acc_<A>`` with their ``reached_*``
                    flags; A = 0.99 by default) within the budget, and a delay D (default 1000 updates):
                      comprehension  val reached A fewer than D updates after train did (or before it)
                      grokking       val reached A, D or more updates after train did
                      memorisation   train reached A, val never did within the budget
                      confusion      train never reached A (nor val)
                    A run whose val reached A while its train accuracy never did (an early stop on val acc that
                    fired before the train accuracy, a mean over the updates since the previous evaluation,
                    passed A) counts as comprehension. Liu et al. use A = 0.9, D = 1e3 and a budget of 1e5
                    steps (their code, ejmichaud/grokking-squared); jgrok's default level is its 99% columns.
                    Memorisation is censored like steps to val acc: a longer budget can turn it into grokking
                    (and, where train reached A less than D before the budget, into comprehension).
  grokking delay    val step - train step at level A of a run that reached A on train: time to an event that is
                    censored at budget - train step for runs whose val never got there. Its median per cell of a
                    phase diagram is the Kaplan-Meier median over the runs that reached A on train (``delay_km``).
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
    """The Wilson score interval for a share k/n (with n = 0: (0, 1)); SciPy's ``binomtest`` computes it."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import binomtest, norm

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=float(2 * norm.cdf(z) - 1), method="wilson")
    return (0.0 if k == 0 else float(ci.low)), (1.0 if k == n else float(ci.high))  # exact at the ends


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
    """Kaplan-Meier estimate of the share without the event, from times and event flags (0 = censored there):
    SciPy's ``ecdf`` of the censored data, read at the event times (module docstring)."""
    import warnings

    from scipy.stats import CensoredData, ecdf, norm

    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    ts = np.unique(time[event])
    at_risk = (time[None, :] >= ts[:, None]).sum(axis=1).astype(float)
    d = (event[None, :] & (time[None, :] == ts[:, None])).sum(axis=1).astype(float)
    if len(ts) == 0:  # no event: S stays 1
        empty = np.zeros(0)
        return KaplanMeier(ts, at_risk.astype(int), d.astype(int), empty, empty, empty, empty, len(time))
    sf = ecdf(CensoredData(uncensored=time[event], right=time[~event])).sf
    s = sf.evaluate(ts)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # the band is undefined where S is 0 (SciPy warns); it is S there
        band = sf.confidence_interval(confidence_level=float(2 * norm.cdf(z) - 1), method="log-log")
        lower, upper = band.low.evaluate(ts), band.high.evaluate(ts)
        g = np.cumsum(np.where(at_risk > d, d / (at_risk * (at_risk - d)), np.inf))  # Greenwood
        se = s * np.sqrt(g)
    ok = (s > 0) & (s < 1) & np.isfinite(g) & np.isfinite(lower) & np.isfinite(upper)
    lower, upper = np.where(ok, lower, s), np.where(ok, upper, s)
    lower, upper = np.minimum(lower, upper), np.maximum(lower, upper)
    return KaplanMeier(ts, at_risk.astype(int), d.astype(int), s, np.where(np.isfinite(se), se, np.nan),
                       lower, upper, len(time))


def logrank(times: list, events: list) -> dict:
    """The log-rank test between G groups (lists of per-group times and event flags): {chi2, df, p}, chi^2 from
    statsmodels' ``survdiff``. p is NaN when there is nothing to compare (one group, or no event at all)."""
    times = [np.asarray(t, float).ravel() for t in times]
    group = np.concatenate([np.full(len(t), g) for g, t in enumerate(times)]) if times else np.zeros(0)
    chi2, df, p = survdiff(np.concatenate(times) if times else np.zeros(0),
                           np.concatenate([np.asarray(e, bool).ravel() for e in events]) if events else np.zeros(0),
                           group)
    return dict(chi2=chi2, df=df, p=p)


def survdiff(time, event, group, strata=None) -> tuple[float, int, float]:
    """(chi^2, df, p) of the log-rank test between the groups of ``group`` over flat arrays, stratified where
    ``strata`` is given: statsmodels' ``survdiff`` for chi^2, SciPy's ``chi2.sf`` for p (survdiff's own p-value is
    1 - cdf, which rounds to 0 below about 1e-16). NaN when there is one group or no event."""
    import warnings

    from scipy.stats import chi2 as chi2_dist
    from statsmodels.duration.survfunc import survdiff as sm_survdiff

    event = np.asarray(event, bool)
    df = len(np.unique(group)) - 1
    if df < 1 or not event.any():
        return math.nan, df, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chi2, _ = sm_survdiff(np.asarray(time, float), event.astype(float), np.asarray(group), strata=strata)
    chi2 = float(chi2)
    return chi2, df, float(chi2_dist.sf(chi2, df)) if np.isfinite(chi2) else math.nan


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


PHASES = ("comprehension", "grokking", "memorisation", "confusion")  # the order of every count and colour
PHASE_ACC = 0.99     # default accuracy level A of the phases (summary.csv always has its columns)
PHASE_DELAY = 1000   # default delay D in updates (Liu et al.'s)


def phases(train_step, train_reached, val_step, val_reached, delay: float) -> np.ndarray:
    """Each run's phase as an index into PHASES (definitions in the module docstring), from its steps to the
    accuracy level on train and val, their reached flags and the delay D (in updates)."""
    train_step, val_step = np.asarray(train_step, float), np.asarray(val_step, float)
    train_reached, val_reached = np.asarray(train_reached, bool), np.asarray(val_reached, bool)
    late = train_reached & (val_step - train_step >= delay)
    return np.select([val_reached & ~late, val_reached & late, train_reached], [0, 1, 2], default=3)


def delay_km(train_step, train_reached, val_step, val_reached, budget: int) -> KaplanMeier:
    """Kaplan-Meier estimate of the grokking delay (val step - train step) over the runs that reached the level
    on train; a run whose val never got there is censored at budget - train step (module docstring)."""
    train_step, val_step = np.asarray(train_step, float), np.asarray(val_step, float)
    keep = np.asarray(train_reached, bool)
    val_reached = np.asarray(val_reached, bool)[keep]
    time = np.where(val_reached, val_step[keep], float(budget)) - train_step[keep]
    return kaplan_meier(time, val_reached)


def phase_definitions(acc: float, delay: float) -> str:
    """The phases' definitions in one paragraph, at level ``acc`` and delay ``delay`` (report.md prints it)."""
    a = f"{100 * acc:g}%"
    return (f"Phases (Liu et al. 2022; jgrok.stats): **comprehension**: val acc passed {a} fewer than {delay:g} "
            f"updates after train acc did (or first); **grokking**: val acc passed {a} {delay:g} or more updates "
            f"after train acc; **memorisation**: train acc passed {a}, val acc never did within the budget; "
            f"**confusion**: train acc never passed {a}. Liu et al. use 90% and 1000 updates of a 1e5 budget "
            "(set them with --phase-acc 0.9 on a scan made with --threshold 0.9, and --phase-delay). Grokking "
            f"delay: steps to {a} val minus steps to {a} train, its median the Kaplan-Meier median over the runs "
            "whose train acc got there (a run whose val acc never did is censored at the budget).")


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
