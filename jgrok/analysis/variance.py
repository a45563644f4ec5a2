"""Variance decomposition of log(steps to 99% val acc) over two crossed seed factors.

Model (two-way random effects, balanced: every (a, b) cell holds the same number n >= 1 of runs)::

    y_abk = mu + A_a + B_b + AB_ab + e_abk,   A ~ N(0, s2_A), B ~ N(0, s2_B), AB ~ N(0, s2_AB), e ~ N(0, s2_e)

y = ln(steps to 99% val acc). A run that never reached 99% val acc enters at ln(budget): its true value is only
known to be larger (right-censored), so the components are those of the censored outcome; the report says how many
runs are censored. (Dropping them instead would condition on success and bias the seed effects more.)

Mean squares with a levels of A, b of B: MS_A (df a-1), MS_B (df b-1), MS_AB (df (a-1)(b-1)), MS_E (df ab(n-1)).
Expected mean squares: E MS_A = s2_e + n s2_AB + nb s2_A, E MS_B = s2_e + n s2_AB + na s2_B, E MS_AB = s2_e + n s2_AB,
E MS_E = s2_e. Estimates (method of moments, reported as computed, so they may be negative; a negative estimate
means "no evidence of this component" and counts as 0 in the shares):

    s2_A = (MS_A - MS_AB) / (nb),  s2_B = (MS_B - MS_AB) / (na),  s2_AB = (MS_AB - MS_E) / n,  s2_e = MS_E

With n = 1 (no replicates, the usual seed grid: re-running a cell gives the same bits) the interaction and the
residual cannot be separated: the component ``interaction + residual`` = MS_AB, and the report says so.

Intervals (95%, two-sided): for a difference of mean squares the modified large-sample (MLS) interval of Ting,
Burdick and Graybill (1990), which may include 0; for a single mean square the exact chi-square interval.
Tests: F_A = MS_A / MS_AB, F_B = MS_B / MS_AB, F_AB = MS_AB / MS_E, p-values from the F distribution.
A component is *found* when its test's p < 0.05.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05


def balanced_cube(y: np.ndarray, a: np.ndarray, b: np.ndarray):
    """(Y[a, b, n], a levels, b levels) if every cell holds the same number of values, else None."""
    al = list(dict.fromkeys(sorted(a.tolist(), key=_key)))
    bl = list(dict.fromkeys(sorted(b.tolist(), key=_key)))
    cells: dict = {}
    for yi, ai, bi in zip(y, a.tolist(), b.tolist()):
        cells.setdefault((ai, bi), []).append(yi)
    sizes = {len(v) for v in cells.values()}
    if len(cells) != len(al) * len(bl) or len(sizes) != 1 or len(al) < 2 or len(bl) < 2:
        return None
    n = sizes.pop()
    Y = np.array([[cells[(ai, bi)] for bi in bl] for ai in al], float)
    return Y, al, bl, n


def _key(v):
    try:
        return (0, [int(x) for x in str(v).split("/")])
    except ValueError:
        return (1, str(v))


def mls_interval(c1: float, ms1: float, df1: int, c2: float, ms2: float, df2: int, alpha: float = ALPHA):
    """Two-sided 1-alpha MLS interval for theta = c1 ms1 - c2 ms2 (c1, c2 > 0)."""
    a = alpha / 2
    F = lambda q, d1, d2: stats.f.ppf(1 - q, d1, d2)  # F value with q area to its right  # noqa: E731
    Finf = lambda q, d: stats.chi2.ppf(1 - q, d) / d  # noqa: E731
    G1, H1 = 1 - 1 / Finf(a, df1), 1 / Finf(1 - a, df1) - 1
    G2, H2 = 1 - 1 / Finf(a, df2), 1 / Finf(1 - a, df2) - 1
    Fa, F1a = F(a, df1, df2), F(1 - a, df1, df2)
    G12 = ((Fa - 1) ** 2 - G1 ** 2 * Fa ** 2 - H2 ** 2) / Fa
    H12 = ((1 - F1a) ** 2 - H1 ** 2 * F1a ** 2 - G2 ** 2) / F1a
    x1, x2 = c1 * ms1, c2 * ms2
    est = x1 - x2
    lo = est - math.sqrt(max(G1 ** 2 * x1 ** 2 + H2 ** 2 * x2 ** 2 + G12 * x1 * x2, 0.0))
    hi = est + math.sqrt(max(H1 ** 2 * x1 ** 2 + G2 ** 2 * x2 ** 2 + H12 * x1 * x2, 0.0))
    return lo, hi


def chi2_interval(ms: float, df: int, alpha: float = ALPHA):
    return df * ms / stats.chi2.ppf(1 - alpha / 2, df), df * ms / stats.chi2.ppf(alpha / 2, df)


def anova2(y: np.ndarray, a: np.ndarray, b: np.ndarray, names=("model seed", "data seed")) -> dict | None:
    """Two-way random-effects decomposition of y over factors a and b (module docstring); None when unbalanced."""
    cube = balanced_cube(np.asarray(y, float), np.asarray(a), np.asarray(b))
    if cube is None:
        return None
    Y, al, bl, n = cube
    na_, nb_ = len(al), len(bl)
    grand = Y.mean()
    ma, mb, mab = Y.mean(axis=(1, 2)), Y.mean(axis=(0, 2)), Y.mean(axis=2)
    ss_a = nb_ * n * np.sum((ma - grand) ** 2)
    ss_b = na_ * n * np.sum((mb - grand) ** 2)
    ss_ab = n * np.sum((mab - ma[:, None] - mb[None, :] + grand) ** 2)
    ss_e = np.sum((Y - mab[:, :, None]) ** 2)
    df_a, df_b, df_ab, df_e = na_ - 1, nb_ - 1, (na_ - 1) * (nb_ - 1), na_ * nb_ * (n - 1)
    ms_a, ms_b, ms_ab = ss_a / df_a, ss_b / df_b, ss_ab / df_ab
    ms_e = ss_e / df_e if df_e else np.nan
    comps = []

    def pval(num, dnum, den, dden):
        if not (den > 0):
            return 0.0 if num > 0 else 1.0
        return float(stats.f.sf(num / den, dnum, dden))

    for name, ms, df, c in ((names[0], ms_a, df_a, 1 / (n * nb_)), (names[1], ms_b, df_b, 1 / (n * na_))):
        est = c * (ms - ms_ab)
        lo, hi = mls_interval(c, ms, df, c, ms_ab, df_ab) if ms_ab > 0 else (est, est)
        comps.append(dict(name=name, estimate=est, lo=lo, hi=hi, p=pval(ms, df, ms_ab, df_ab), df=df))
    if n > 1:
        est = (ms_ab - ms_e) / n
        lo, hi = mls_interval(1 / n, ms_ab, df_ab, 1 / n, ms_e, df_e) if ms_e > 0 else (est, est)
        comps.append(dict(name="interaction", estimate=est, lo=lo, hi=hi, p=pval(ms_ab, df_ab, ms_e, df_e), df=df_ab))
        lo, hi = chi2_interval(ms_e, df_e) if ms_e > 0 else (0.0, 0.0)
        comps.append(dict(name="residual", estimate=ms_e, lo=lo, hi=hi, p=np.nan, df=df_e))
    else:
        lo, hi = chi2_interval(ms_ab, df_ab) if ms_ab > 0 else (0.0, 0.0)
        comps.append(dict(name="interaction + residual", estimate=ms_ab, lo=lo, hi=hi, p=np.nan, df=df_ab))
    total = sum(max(c["estimate"], 0.0) for c in comps)
    for c in comps:
        c["share"] = max(c["estimate"], 0.0) / total if total > 0 else np.nan
        c["found"] = bool(c["p"] < ALPHA) if np.isfinite(c["p"]) else None
    return dict(levels=(na_, nb_), n=n, components=comps, mean=float(grand),
                ms=dict(a=ms_a, b=ms_b, ab=ms_ab, e=ms_e), confounded=n == 1)


def log_steps(steps: np.ndarray) -> np.ndarray:
    """ln(steps to 99% val acc); never-reached runs are already at the budget (censored)."""
    return np.log(np.maximum(np.asarray(steps, float), 1.0))
