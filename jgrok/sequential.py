"""Group-sequential comparisons of two run groups: look at the accumulating seeds at planned points and stop once
the log-rank test has decided, keeping the type I error at its nominal level (Jennison and Turnbull 2000,
"Group Sequential Methods with Applications to Clinical Trials", ch. 7).

  design        K looks, the k-th after n_k = k x look seeds per group (information fraction t_k = k / K: every
                run is trained to the full budget before its look, so the expected number of runs that reach 99% val
                acc, which the log-rank statistic's information is, grows in proportion to the seeds). Two-sided
                alpha (default 0.05). Fixed before the first look.
  statistic     Z_k = (O - E) / sqrt(V) of group A at look k over all seeds so far (the log-rank score; Z^2 is the
                log-rank chi^2 of jgrok.power.logrank_chi2 (jgrok.power.logrank_z)); positive: A reaches 99% sooner than expected.
  spending      Lan and DeMets (1983, Biometrika 70:659): the type I error spent by information fraction t is
                  O'Brien-Fleming type  alpha(t) = 2 (2 - 2 Phi(z_{1-alpha/4} / sqrt(t)))   (default: spends
                                        little early, so the last look is nearly the fixed test)
                  Pocock type           alpha(t) = alpha log(1 + (e - 1) t)
                each side of the two-sided test spending half (the convention of R's gsDesign and rpact, whose
                published boundaries the tests check)
  boundaries    c_1 .. c_K with P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1}) under the null,
                where (Z_k sqrt(t_k)) is a Brownian motion in t (the canonical joint distribution of the log-rank
                statistics, Tsiatis 1982); computed by recursive numerical integration (Armitage, McPherson and Rowe
                1969) on a grid of GRID points. No Python library jgrok depends on has it (R's gsDesign and rpact do);
                the tests check the published O'Brien-Fleming-type values for K = 5.
  decision      stop at the first look with |Z_k| >= c_k: "A groks faster" or "B groks faster"; otherwise at the last
                look, "no difference detected".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jgrok import power

GRID = 1201
SPENDING = ("obrien-fleming", "pocock")


def spent(t, alpha: float = 0.05, kind: str = "obrien-fleming") -> np.ndarray:
    """The type I error spent by information fraction t (module docstring)."""
    from scipy.stats import norm

    t = np.clip(np.asarray(t, float), 0.0, 1.0)
    if kind == "obrien-fleming":
        with np.errstate(divide="ignore"):
            side = 2 - 2 * norm.cdf(norm.ppf(1 - alpha / 4) / np.sqrt(np.where(t > 0, t, 1)))
            return np.where(t > 0, 2 * side, 0.0)
    if kind == "pocock":
        return alpha * np.log1p((math.e - 1) * t)
    raise ValueError(f"spending function {kind!r} is not one of {', '.join(SPENDING)}")


def boundaries(K: int, alpha: float = 0.05, kind: str = "obrien-fleming", t=None) -> np.ndarray:
    """The two-sided critical values c_1 .. c_K of |Z_k| at information fractions t (default k / K)."""
    from scipy.optimize import brentq
    from scipy.stats import norm

    t = np.arange(1, K + 1) / K if t is None else np.asarray(t, float)
    inc = np.diff(np.r_[0.0, spent(t, alpha, kind)])
    c = np.empty(K)
    c[0] = norm.ppf(1 - inc[0] / 2)
    # density of S_1 = Z_1 sqrt(t_1) on the continuation region, on a grid
    s = np.linspace(-c[0], c[0], GRID) * math.sqrt(t[0])
    w = _simpson(s) * norm.pdf(s, scale=math.sqrt(t[0]))
    for k in range(1, K):
        sd = math.sqrt(t[k] - t[k - 1])
        root_t = math.sqrt(t[k])

        def crossing(ck):
            hi, lo = (ck * root_t - s) / sd, (-ck * root_t - s) / sd
            return float(w @ (norm.sf(hi) + norm.cdf(lo)))

        target = inc[k]
        if target <= 0:
            c[k] = np.inf
        else:
            c[k] = brentq(lambda ck: crossing(ck) - target, 1e-6, 40.0, xtol=1e-10)
        # the density of S_k on its continuation region
        new = np.linspace(-c[k], c[k], GRID) * root_t if np.isfinite(c[k]) else np.linspace(-8, 8, GRID) * root_t
        dens = norm.pdf((new[:, None] - s[None, :]) / sd) / sd @ w
        s, w = new, _simpson(new) * dens
    return c


def _simpson(x: np.ndarray) -> np.ndarray:
    """Simpson's weights on an odd number of equally spaced points x."""
    n = len(x)
    h = (x[-1] - x[0]) / (n - 1)
    wts = np.ones(n)
    wts[1:-1:2], wts[2:-1:2] = 4, 2
    return wts * h / 3


@dataclass
class Outcome:
    """The sequential rule applied to many trials at once."""

    look: np.ndarray       # [trials] 1-based look where it stopped (K where it never crossed)
    crossed: np.ndarray    # [trials] bool: stopped for a difference
    sign: np.ndarray       # [trials] +1: A faster, -1: B faster, 0: no difference detected
    z: np.ndarray          # [trials, K] the statistic at every look (NaN after the stop)
    bounds: np.ndarray     # [K]


def run(ta, ea, tb, eb, look: int, alpha: float = 0.05, kind: str = "obrien-fleming") -> Outcome:
    """The rule on [trials, n] arrays of both groups, their seeds in look order: looks after look, 2 look, .. n
    seeds per group; n must be a multiple of look."""
    ta, ea, tb, eb = (np.atleast_2d(np.asarray(x)) for x in (ta, ea, tb, eb))
    n = ta.shape[1]
    if look < 1 or n % look:
        raise ValueError(f"the look size {look} does not divide the {n} seeds per group")
    K = n // look
    c = boundaries(K, alpha, kind)
    z = np.stack([power.logrank_z(ta[:, :m], ea[:, :m], tb[:, :m], eb[:, :m]) for m in range(look, n + 1, look)], axis=1)
    hit = np.abs(z) >= c[None, :]
    crossed = hit.any(axis=1)
    first = np.where(crossed, hit.argmax(axis=1), K - 1)
    sign = np.where(crossed, np.sign(z[np.arange(len(z)), first]), 0).astype(int)
    z = np.where(np.arange(K)[None, :] <= first[:, None], z, np.nan)
    return Outcome(first + 1, crossed, sign, z, c)
