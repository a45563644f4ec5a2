"""Progress measures over time: which measure moves first, and how well its timing predicts the grokking step.

Reads the curves that ``train.measures`` put into metrics.npz (formulas in jgrok.measures) and, as references,
the scan's own val_acc, val_loss, train_acc, train_loss and weight_norm curves. Per run group (task and
non-seed axis values), with s99 = step_val_acc_99 of a run (first eval step with val acc > 0.99):

  curves             median and 10%-90% quantiles across the group's runs with a finite value, at every eval
                     step (``curves vs steps``) and at every offset step - s99 (``aligned``, runs that reached
                     99% val acc only; offsets held by fewer than MIN_ALIGNED_SHARE of those runs are not drawn)
  crossing step      the first eval step at which a run's curve has covered at least half of its total change,
                     (m_e - m_first) / (m_last - m_first) >= CROSS_SHARE (0.5), m_first the value at the first
                     evaluation and m_last at the last finite one; none when m_last = m_first
  lead               s99 - crossing step (positive: the measure moved before val acc reached 99%)
  rank correlation   Spearman's rho between the crossing step and s99, over the runs that reached 99% val acc and
                     crossed; 95% percentile bootstrap interval over resampled runs (B resamples,
                     numpy default_rng(seed))
  early R^2          share of the variance of ln(s99) explained by a least-squares line in the measure's value at
                     the last evaluation at or before EARLY_SHARE (10%) of the budget, over the runs that reached
                     99% val acc; leave-one-out: 1 - sum (y_i - yhat_(-i))^2 / sum (y_i - mean y)^2, where
                     yhat_(-i) comes from the line fitted without run i, so a measure that carries no
                     information scores about 0 or below rather than the positive in-sample R^2 of noise
  predicts           the rank correlation's interval excludes 0, or the early R^2 is at least PREDICTS_R2 (0.1)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from jgrok import measures as measures_mod
from jgrok import plots

CROSS_SHARE = 0.5
EARLY_SHARE = 0.1
PREDICTS_R2 = 0.1
MIN_ALIGNED_SHARE = 0.25
MIN_RUNS = 5  # fewer runs that reached 99% than this: no correlations
REFERENCES = ("val_acc", "val_loss", "train_acc", "train_loss", "weight_norm")


def scalar_measures(curves: dict) -> list[str]:
    """The scalar measure curves present, in jgrok.measures order."""
    return [k for n in measures_mod.NAMES for k in measures_mod.KEYS[n]
            if k in curves and k not in measures_mod.SPECTRA]


def crossing_steps(curve_RxE: np.ndarray, eval_step_E: np.ndarray, share: float = CROSS_SHARE) -> np.ndarray:
    """float[R]: the crossing step of each run (module docstring); NaN where the curve does not move."""
    out = np.full(len(curve_RxE), np.nan)
    for r, m in enumerate(curve_RxE):
        ok = np.nonzero(np.isfinite(m))[0]
        if len(ok) < 2:
            continue
        first, last = m[ok[0]], m[ok[-1]]
        if last == first:
            continue
        frac = (m[ok] - first) / (last - first)
        hit = np.nonzero(frac >= share)[0]
        out[r] = eval_step_E[ok[hit[0]]]
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of average ranks; NaN when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)  # average ranks: ties share their mean rank
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_ci(x, y, B: int, seed: int) -> tuple[float, float, float]:
    """(rho, lo, hi): rho and its 95% percentile bootstrap interval over resampled pairs."""
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(B):
        i = rng.integers(0, len(x), len(x))
        v = spearman(x[i], y[i])
        if np.isfinite(v):
            boots.append(v)
    if not boots:
        return rho, float("nan"), float("nan")
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return rho, float(lo), float(hi)


def loo_r2(x: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out R^2 of a least-squares line y ~ a + b x (module docstring); NaN for constant x or y."""
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    X = np.stack([np.ones(n), x], 1)
    H = X @ np.linalg.pinv(X.T @ X) @ X.T
    resid = y - H @ y
    press = np.sum((resid / (1 - np.diag(H))) ** 2)  # leave-one-out residuals of a linear fit, in closed form
    return float(1 - press / np.sum((y - y.mean()) ** 2))


def early_values(curve_RxE: np.ndarray, eval_step_E: np.ndarray, budget: int) -> tuple[np.ndarray, int]:
    """(value[R], step): each run's value at the last evaluation at or before EARLY_SHARE x budget."""
    j = np.nonzero(eval_step_E <= EARLY_SHARE * budget)[0]
    j = int(j[-1]) if len(j) else 0
    return curve_RxE[:, j], int(eval_step_E[j])


def what_moves_first(curves: dict, eval_step_E: np.ndarray, s99: np.ndarray, reached: np.ndarray, budget: int,
                     B: int, seed: int) -> list[dict]:
    """One dict per measure (then per reference curve) of the group's runs (module docstring), earliest median
    crossing step first."""
    out = []
    for k in scalar_measures(curves) + [k for k in REFERENCES if k in curves]:
        c = curves[k]
        cross = crossing_steps(c, eval_step_E)
        early, early_step = early_values(c, eval_step_E, budget)
        d = dict(measure=k, reference=k in REFERENCES, moved=int(np.isfinite(cross).sum()), runs=len(c),
                 median_cross=float(np.nanmedian(cross)) if np.isfinite(cross).any() else float("nan"),
                 early_step=early_step)
        both = reached & np.isfinite(cross)
        d["median_lead"] = float(np.median(s99[both] - cross[both])) if both.any() else float("nan")
        d["n_rho"] = int(both.sum())
        d["rho"], d["rho_lo"], d["rho_hi"] = (spearman_ci(cross[both], s99[both], B, seed) if both.sum() >= MIN_RUNS
                                              else (float("nan"),) * 3)
        ok = reached & np.isfinite(early)
        d["n_r2"] = int(ok.sum())
        d["r2"] = loo_r2(early[ok], np.log(s99[ok])) if ok.sum() >= MIN_RUNS else float("nan")
        d["predicts"] = bool((np.isfinite(d["rho_lo"]) and (d["rho_lo"] > 0 or d["rho_hi"] < 0))
                             or (np.isfinite(d["r2"]) and d["r2"] >= PREDICTS_R2))
        out.append(d)
    out.sort(key=lambda d: (d["reference"], np.inf if not np.isfinite(d["median_cross"]) else d["median_cross"]))
    return out


def verdict(table: list[dict], n_reached: int) -> str:
    """One plain sentence on what predicts the grokking step in a group."""
    if n_reached < MIN_RUNS:
        return (f"Only {n_reached} run(s) reached 99% val acc, fewer than {MIN_RUNS}: too few to say whether any "
                "measure predicts the grokking step.")
    mine = [d for d in table if not d["reference"]]
    good = [d["measure"] for d in mine if d["predicts"]]
    if not good:
        return ("Nothing predicts: no measure's crossing step has a rank correlation with the grokking step whose "
                f"95% interval excludes 0, and no early value explains {PREDICTS_R2:.0%} or more of the variance of "
                "ln(steps to 99%) out of sample.")
    said = ", ".join(f"{d['measure']} (rho {d['rho']:.2f}, crossing a median {d['median_lead']:.0f} steps before "
                     f"step_val_acc_99)" for d in mine if d["predicts"])
    moved = [d for d in mine if np.isfinite(d["median_cross"])]
    first = ""
    if moved:
        m = moved[0]
        first = (f" {m['measure']} moves first (median crossing step {m['median_cross']:.0f})"
                 + ("." if m["predicts"] else ", but its timing does not predict the grokking step."))
    return f"Predicts the grokking step: {said}.{first}"


# ------------------------------------------------------------------------------------------------ figures

def _band(ax, x, v_RxE, color, min_runs=1):
    n = np.isfinite(v_RxE).sum(axis=0)
    q = plots.quiet(np.nanquantile, v_RxE, [0.1, 0.5, 0.9], axis=0)
    keep = n >= min_runs
    ax.fill_between(x[keep], q[0][keep], q[2][keep], color=color, alpha=0.25, lw=0, label="10–90%")
    ax.plot(x[keep], q[1][keep], color=color, lw=1.4, label="median")


def aligned(curve_RxE: np.ndarray, eval_step_E: np.ndarray, s99: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[O], values[R, O]): each run's curve against step - s99 on the union of offsets (NaN elsewhere)."""
    offs = np.unique((eval_step_E[None, :] - s99[:, None]).ravel())
    pos = {int(o): i for i, o in enumerate(offs)}
    out = np.full((len(curve_RxE), len(offs)), np.nan)
    for r in range(len(curve_RxE)):
        cols = [pos[int(s - s99[r])] for s in eval_step_E]
        out[r, cols] = curve_RxE[r]
    return offs, out


def figures(curves: dict, eval_step_E: np.ndarray, s99: np.ndarray, reached: np.ndarray, title: str, pdir: Path,
            name: str) -> list[Path]:
    """measures_<name>.png (median and 10–90% band against steps) and measures_aligned_<name>.png (against
    step - s99), one panel per scalar measure; fourier_spectrum_<name>.png (each run's spectrum sorted largest
    first as a share of its total, median over runs, against steps)."""
    keys = scalar_measures(curves)
    paths = []
    if not keys:
        return paths
    cols = min(3, len(keys))
    rows = -(-len(keys) // cols)
    for kind in ("steps", "aligned"):
        fig = plots.figure(4 * cols, 2.8 * rows)
        for i, k in enumerate(keys):
            ax = fig.add_subplot(rows, cols, i + 1)
            if kind == "steps":
                _band(ax, eval_step_E, curves[k], "tab:blue")
                ax.set(xlabel="update step")
            else:
                if reached.any():
                    offs, v = aligned(curves[k][reached], eval_step_E, s99[reached])
                    _band(ax, offs, v, "tab:purple", max(1, int(np.ceil(MIN_ALIGNED_SHARE * reached.sum()))))
                ax.axvline(0, color="black", lw=0.6)
                ax.set(xlabel="step - step_val_acc_99")
            if k in ("restricted_loss", "excluded_loss"):
                ax.set_yscale("log")
            ax.set_title(k, fontsize="medium")
            ax.grid(alpha=0.3)
        fig.suptitle(f"{title}: {len(s99)} runs" + (f", {int(reached.sum())} aligned" if kind == "aligned" else ""))
        path = pdir / f"measures_{'aligned_' if kind == 'aligned' else ''}{plots.safe_name(name)}.png"
        paths.append(plots.save(fig, path))
    if "fourier_spectrum" in curves:
        # runs use different key frequencies, so the median is taken over each run's spectrum sorted largest
        # first, as a share of its own total: how concentrated the spectrum is, whatever the frequencies
        spec = -np.sort(-curves["fourier_spectrum"], axis=2)
        with np.errstate(all="ignore"):
            # nansum: the NaN padding of runs with fewer frequencies (jgrok.io.results.PAD) sorts last, adds nothing
            spec = spec / np.nansum(spec, axis=2, keepdims=True)
        spec = plots.quiet(np.nanmedian, spec, axis=0)  # [E, F]
        fig = plots.figure(7, 3.6)
        ax = fig.add_subplot()
        F = spec.shape[1]
        im = ax.imshow(spec.T, aspect="auto", origin="lower", interpolation="nearest",
                       extent=(eval_step_E[0], eval_step_E[-1], 0.5, F + 0.5))
        fig.colorbar(im, ax=ax, label="share of the run's spectrum (median)")
        ax.set(xlabel="update step", ylabel="rank of frequency (1 = largest)",
               title=f"{title}: embedding Fourier spectrum, sorted per run")
        paths.append(plots.save(fig, pdir / f"fourier_spectrum_{plots.safe_name(name)}.png"))
    return paths
