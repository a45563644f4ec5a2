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
  futility      optional and non-binding (``--futility CP``): also stop at a look k < K where the conditional power
                under the current trend is below CP: with B = Z_k sqrt(t_k) and the drift theta = B / t_k that the
                seeds so far show, P(|B(1)| >= c_K) for B(1) ~ N(B + theta (1 - t_k), 1 - t_k) (stochastic
                curtailment, Lan, Simon and Halperin 1982; Jennison and Turnbull ch. 10). The efficacy boundaries do
                not change, so stopping for futility can only lower the type I error; it costs power, which
                benchmarks/sequential_error_rates.py measures.
  decision      stop at the first look with |Z_k| >= c_k: "A groks faster" or "B groks faster"; at a look that is
                futile, or after the last look, "no difference detected".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from jgrok import power

GRID = 1201
SPENDING = ("obrien-fleming", "pocock")  # = jgrok.config.SPENDING


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

    look: np.ndarray       # [trials] 1-based look where it stopped (K where it never stopped)
    crossed: np.ndarray    # [trials] bool: stopped for a difference
    sign: np.ndarray       # [trials] +1: A faster, -1: B faster, 0: no difference detected
    z: np.ndarray          # [trials, K] the statistic at every look (NaN after the stop)
    bounds: np.ndarray     # [K]


TESTS = {"logrank": power.logrank_z, "paired": power.paired_z}


def conditional_power(z, k, K: int, c_last: float) -> np.ndarray:
    """P(|Z_K| >= c_last) given Z at look k of K (1-based), under the drift the looks so far show (module
    docstring: futility)."""
    from scipy.stats import norm

    t = np.asarray(k, float) / K
    b = np.asarray(z, float) * np.sqrt(t)
    mean, sd = b / t, np.sqrt(np.maximum(1 - t, 1e-300))  # B(1) = B + theta (1 - t) = B / t
    return norm.sf((c_last - mean) / sd) + norm.cdf((-c_last - mean) / sd)


def run(ta, ea, tb, eb, look: int, alpha: float = 0.05, kind: str = "obrien-fleming", test: str = "logrank",
        K: int | None = None, futility: float = 0.0) -> Outcome:
    """The rule on [trials, n] arrays of both groups, their seeds in look order: looks after look, 2 look, .. n
    seeds per group; n must be a multiple of look. K: the looks of the design (default n / look); with fewer seeds
    than K looks hold, the rule as far as it has got (``look`` then says where it stopped or the last look so far).
    test: the statistic (TESTS): the log-rank score, or the paired sign statistic (jgrok.power.paired_z)."""
    ta, ea, tb, eb = (np.atleast_2d(np.asarray(x)) for x in (ta, ea, tb, eb))
    n = ta.shape[1]
    if look < 1 or n % look:
        raise ValueError(f"the look size {look} does not divide the {n} seeds per group")
    done = n // look
    K = done if K is None else K
    if done > K:
        raise ValueError(f"{n} seeds per group are more than the design's {K} looks of {look}")
    c = boundaries(K, alpha, kind)
    stat = TESTS[test]
    z = np.stack([stat(ta[:, :m], ea[:, :m], tb[:, :m], eb[:, :m]) for m in range(look, n + 1, look)], axis=1)
    hit = np.abs(z) >= c[None, :done]
    if futility > 0:  # a futile look (before the last) stops without a difference
        looks = np.arange(1, done + 1)
        futile = (conditional_power(z, looks[None, :], K, c[-1]) < futility) & (looks < K)[None, :] & ~hit
        stop = hit | futile
    else:
        stop = hit
    ends = stop.any(axis=1)
    first = np.where(ends, stop.argmax(axis=1), done - 1)
    crossed = hit[np.arange(len(z)), first]
    sign = np.where(crossed, np.sign(z[np.arange(len(z)), first]), 0).astype(int)
    z = np.where(np.arange(done)[None, :] <= first[:, None], z, np.nan)
    return Outcome(first + 1, crossed, sign, z, c)


# ----------------------------------------------------------------------------------- a scan that trains in looks

SPENDING_NAMES = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}
TEST_NAMES = {"logrank": "log-rank", "paired": "log-rank stratified by seed (paired)"}


def replicate(row: dict) -> tuple:
    """A run's seeds (the values of every seed axis): the replicate it is of its run group."""
    from jgrok.config import SEED_AXES

    return tuple(row.get(a) for a in SEED_AXES)


def look_rows(cfg, rows: list[dict]) -> list[list[dict]]:
    """The runs of every look of a scan with ``--until-decided`` (rows: its whole runs table): look k holds the
    replicates k N .. (k + 1) N - 1 (N = --look-every) in the order the grid lists them, both run groups of each."""
    order = list(dict.fromkeys(replicate(r) for r in rows))
    index = {key: i for i, key in enumerate(order)}
    N = cfg.sequential.look_every
    out = [[] for _ in range(len(order) // N)]
    for r in rows:
        out[index[replicate(r)] // N].append(r)
    return out


@dataclass
class Decision:
    """Where the sequential comparison of a scan stands after the looks trained so far (saved in sequential.json)."""

    axis: str
    a: str                 # run-group labels, "wd=0.5": A is the axis's first value, B its second
    b: str
    look: int              # seeds per run group per look
    K: int                 # looks of the design
    spending: str
    alpha: float
    test: str
    bounds: list           # [K] critical values of |Z|
    z: list                # [looks done] the statistic at each look (positive: A groks faster)
    reached_a: list        # [looks done] runs of A (B) that reached 99% val acc by that look
    reached_b: list
    futility: float = 0.0  # the conditional power below which a look stops for futility (0: never)

    @property
    def looks_done(self) -> int:
        return len(self.z)

    def power_left(self, k: int) -> float:
        """The conditional power under the current trend at look k (1-based; module docstring)."""
        return float(conditional_power(self.z[k - 1], k, self.K, self.bounds[-1]))

    def _stops(self, k: int) -> str | None:
        """'efficacy', 'futility' or None: what look k (1-based) decides."""
        if abs(self.z[k - 1]) >= self.bounds[k - 1]:
            return "efficacy"
        if self.futility > 0 and k < self.K and self.power_left(k) < self.futility:
            return "futility"
        return None

    @property
    def stopped_at(self) -> int | None:
        """The 1-based look that stopped the scan (for a difference or for futility), or None."""
        return next((k for k in range(1, self.looks_done + 1) if self._stops(k)), None)

    @property
    def crossed(self) -> bool:
        """True when the scan stopped because |Z| reached its boundary (a difference was detected)."""
        return self.stopped_at is not None and self._stops(self.stopped_at) == "efficacy"

    @property
    def finished(self) -> bool:
        return self.stopped_at is not None or self.looks_done >= self.K

    @property
    def seeds(self) -> int:
        return self.looks_done * self.look

    def verdict(self) -> str:
        """'wd=1.0 groks faster than wd=0.5', 'no difference detected' or 'undecided so far'."""
        k = self.stopped_at
        if not self.crossed:
            return "no difference detected" if self.finished else "undecided so far"
        fast, slow = (self.a, self.b) if self.z[k - 1] > 0 else (self.b, self.a)
        return f"{fast} groks faster than {slow}"

    def design(self) -> str:
        return (f"{self.K} looks of {self.look} seeds per run group, {SPENDING_NAMES[self.spending]} alpha spending "
                f"(Lan-DeMets), two-sided alpha {self.alpha:g}, {TEST_NAMES[self.test]} test"
                + (f", futility below conditional power {self.futility:g}" if self.futility > 0 else ""))

    def look_line(self, k: int) -> str:
        """One look, 1-based: its statistic against its boundary."""
        z, c = self.z[k - 1], self.bounds[k - 1]
        return (f"look {k} of {self.K} ({k * self.look} seeds per group; reached 99%: {self.reached_a[k - 1]} of "
                f"{self.a}, {self.reached_b[k - 1]} of {self.b}): Z = {z:+.2f}, boundary |Z| >= {c:.2f}"
                + (f", conditional power {self.power_left(k):.2f}" if self.futility > 0 and k < self.K else "")
                + f": {self.action(k)}")

    def action(self, k: int) -> str:
        """What look k (1-based) did: 'stop', 'stop for futility', 'continue' or 'stop (last look)'."""
        why = self._stops(k)
        return {"efficacy": "stop", "futility": "stop for futility"}.get(why) or (
            "continue" if k < self.K else "stop (last look)")

    def sentence(self) -> str:
        k, saved = self.stopped_at, 1 - self.looks_done / self.K
        if k is not None and not self.crossed:
            return (f"no difference detected: stopped for futility at look {k} of {self.K} ({self.seeds} of "
                    f"{self.K * self.look} seeds per group; Z = {self.z[k - 1]:+.2f}, conditional power "
                    f"{self.power_left(k):.2f} < {self.futility:g}), so {saved:.0%} of the planned seed-steps were "
                    "not trained.")
        if k is not None:
            return (f"{self.verdict()}: decided at look {k} of {self.K} ({self.seeds} of {self.K * self.look} seeds "
                    f"per group; Z = {self.z[k - 1]:+.2f}, boundary {self.bounds[k - 1]:.2f}), so "
                    f"{saved:.0%} of the planned seed-steps were not trained.")
        if self.finished:
            return (f"no difference detected after all {self.K} looks ({self.seeds} seeds per group; last Z = "
                    f"{self.z[-1]:+.2f}, boundary {self.bounds[-1]:.2f}) at alpha {self.alpha:g}.")
        return f"undecided after {self.looks_done} of {self.K} looks ({self.seeds} seeds per group)."

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(stopped_at=self.stopped_at, crossed=self.crossed, verdict=self.verdict(), seeds_per_group=self.seeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Decision:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def decide(cfg, looks: list[list[dict]], summary: list[dict]) -> Decision:
    """The rule applied to the looks trained so far: ``looks`` are look_rows' first looks (all of them trained),
    ``summary`` their typed summary rows (any order)."""
    from jgrok import config as config_mod
    from jgrok import rungroup

    s = cfg.sequential
    axis, values = s.until_decided, list(cfg.grid[s.until_decided])
    budget, N = cfg.train.steps, s.look_every
    by_run = {r["run"]: r for r in summary}
    t, e = ([[], []], [[], []])
    for lk in looks:  # per group, its runs in replicate order (the two groups' runs of a seed at the same place)
        order = {key: i for i, key in enumerate(dict.fromkeys(replicate(r) for r in lk))}
        for r in sorted(lk, key=lambda r: order[replicate(r)]):
            row, g = by_run[r["run"]], values.index(r[axis])
            reached = bool(row["reached_val_99"])
            t[g].append(float(row["step_val_acc_99"]) if reached else float(budget))
            e[g].append(reached)
    K = config_mod.replicates(cfg) // N
    z = [float(TESTS[s.test](np.asarray(t[0][:m])[None], np.asarray(e[0][:m])[None], np.asarray(t[1][:m])[None],
                             np.asarray(e[1][:m])[None])[0]) for m in range(N, len(t[0]) + 1, N)]
    cum = lambda flags: [int(np.sum(flags[: (k + 1) * N])) for k in range(len(looks))]  # noqa: E731
    labels = [f"{axis}={rungroup.value_text(v)}" for v in values]
    d = Decision(axis, *labels, N, K, s.spending, s.alpha, s.test, [float(c) for c in boundaries(K, s.alpha, s.spending)], z,
                 cum(e[0]), cum(e[1]), s.futility)
    k = d.stopped_at  # looks after the one that stopped do not count (the scan trains none)
    if k is not None and k < d.looks_done:
        d = dataclasses.replace(d, z=d.z[:k], reached_a=d.reached_a[:k], reached_b=d.reached_b[:k])
    return d
