"""Figures of a results folder: ``make_plots(OUT)`` writes OUT/plots/*.png.

Per task (``<task>`` in the file name):
  train_loss_, val_loss_, train_acc_, val_acc_<task>.png   one line per run group: mean over its runs, band = mean
                                                            +- standard error (x = update step)
  quantiles_<task>.png     per run group: median and 10-90% quantile band of val acc and train acc, a few runs thin
  steps_hist_<task>.png    per run group: histogram of steps to 99% val acc; runs that never got there as one bar
  steps_ecdf_<task>.png    per run group: share of runs with val acc > 0.99 by each step (stays below 1 when some
                           never got there)
  survival_<task>.png      per run group: Kaplan-Meier share of runs not yet at 99% val acc vs update step, 95% band,
                           median (with interval) in the legend, log-rank test between run groups in the title
Regression scans (task mheight; x = epoch = update step / updates per epoch, losses are MSEs of log2 h):
  loss_<task>.png          train and val loss per run group, mean +- s.e. over runs (log y); ticks at the drop epochs
  val_loss_runs_<task>.png per run group: the val loss of up to 8 runs, each with its detected drop marked
  weight_norm_<task>.png   global weight norm per run group, mean +- s.e.
summary_plot.png           per run group: final train / val acc (mean +- s.e.) and the Kaplan-Meier median of steps
                           to 99% val acc with its 95% interval and k/n reached, as bars
run_<id>.png               one run: losses (log y), accuracies and weight norms on one step axis
phase_<panel>_<x>_<y>.png  (``phase_figure``, written by jgrok.analysis.phases) a phase diagram: cells coloured by
                           their majority phase (jgrok.stats.phases), and the Kaplan-Meier median grokking delay
fraction.png               (``fraction_figure``, ditto) steps to 99% val acc against the training fraction

Definitions (every curve is read at the eval steps of metrics.npz; NaN after a run stopped is skipped):
  run group            the runs that share every non-seed axis value, labelled as ``jgrok.rungroup`` says
                       (seeds are replicates and never split run groups)
  mean, s.e., KM       over the runs of a run group with a finite value at that step; as defined in jgrok.stats
  steps to 99% val acc ``step_val_acc_99`` of summary.csv: first eval step with val acc > 0.99; the budget if never
  final train/val acc  ``final_*_acc`` of summary.csv: the last finite evaluation of the run

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas and never touch pyplot, so making plots
changes no global backend or state (safe in a notebook or a thread) and never opens a window.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

from jgrok import rungroup, stats
from jgrok.errors import ConfigError
from jgrok.results_folder import open_scan
from jgrok.scandata import ScanData, column, steps_reached

CURVES = (("train_loss", "train loss"), ("val_loss", "val loss"), ("train_acc", "train accuracy"),
          ("val_acc", "val accuracy"))
THIN_RUNS = 5  # individual runs drawn thin in the quantile figure
TRAIN_C, VAL_C = "tab:blue", "tab:orange"


def select_runs(rows: list[dict], extra=None) -> list[int]:
    """Run ids to draw alone: the fastest, the median and the slowest run by steps to 99% val acc (ties broken by
    run id; at most 3), then the ``extra`` ids; ConfigError for an id that is not in the scan."""
    by_speed = sorted(rows, key=lambda r: (r["step_val_acc_99"], r["run"]))
    picks = [by_speed[i]["run"] for i in dict.fromkeys((0, (len(by_speed) - 1) // 2, len(by_speed) - 1))]
    ids = {r["run"] for r in rows}
    for rid in extra or ():
        if rid not in ids:
            raise ConfigError(f"Run {rid} is not in this scan (ids {min(ids)}..{max(ids)}); choose another --runs.")
        picks.append(rid)
    return list(dict.fromkeys(picks))


def make_plots(out_dir, runs_to_show=None) -> list[Path]:
    """Write every figure of the module docstring into OUT/plots/ and return their paths."""
    return plot_scan(open_scan(out_dir).data(), runs_to_show)


def plot_scan(scan: ScanData, runs_to_show=None) -> list[Path]:
    """``make_plots`` for a scan already read (``jgrok.open_scan(OUT).data()``); for a regression scan, the figures
    of ``plot_regression``."""
    if scan.regression:
        return plot_regression(scan)
    show = select_runs(scan.rows, runs_to_show)
    plot_dir = scan.out / "plots"
    plot_dir.mkdir(exist_ok=True)
    keys = scan.group_axes
    by_group = scan.groups
    paths = []
    for task in dict.fromkeys(t for t, _ in by_group):
        g = {label: idx for (t, label), idx in by_group.items() if t == task}
        for key, title in CURVES:
            paths.append(save(_mean_curves(scan, g, key, title, task), plot_dir / f"{key}_{safe_name(task)}.png"))
        paths.append(save(_quantiles(scan, g, task), plot_dir / f"quantiles_{safe_name(task)}.png"))
        paths.append(save(_steps_hist(scan, g, task), plot_dir / f"steps_hist_{safe_name(task)}.png"))
        paths.append(save(_steps_ecdf(scan, g, task), plot_dir / f"steps_ecdf_{safe_name(task)}.png"))
        paths.append(save(_survival(scan, g, task), plot_dir / f"survival_{safe_name(task)}.png"))
    paths.append(save(_summary(scan, by_group), plot_dir / "summary_plot.png"))
    step_loss = _step_loss(scan, show)
    for rid in show:
        paths.append(save(_run(scan, rid, keys, step_loss.get(rid)), plot_dir / f"run_{rid}.png"))
    return paths


# ---------------------------------------------------------------------------------------------------- statistics

def quiet(fn, *a, **k):
    """NaN-aware reductions warn on all-NaN columns (steps where every run had stopped); those give NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*a, **k)


mean_se = stats.mean_se_columns  # mean and s.e. of each column over its finite values (jgrok.stats)


# ------------------------------------------------------------------------------------------------------- figures

def figure(w, h) -> Figure:
    """A w x h inch figure on the Agg canvas (no pyplot), laid out by matplotlib's constrained layout."""
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as a PNG (110 dpi) and return its path."""
    fig.savefig(path, dpi=110)
    return path


def _colors(n):
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    return [cmap(i) if n <= 20 else cmap(i / max(n - 1, 1)) for i in range(n)]


def _step_axis(ax, budget):
    """At most ~6 ticks on an update-step axis, written as 10k, 20k, ... for long budgets."""
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    if budget >= 10_000:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k" if v else "0"))


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log-axis ticks to label, written as plain numbers (0.01, 0.5, 4)."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log_y(ax):
    """Log y axis labelled 0.01, 0.1, 1 (and 4, 6 on the minor ticks matplotlib labels when the axis spans
    less than a decade or two) rather than 10^-2 and 6x10^0."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def legend(ax, n):
    """Inside the axes for a few entries, outside on the right for many."""
    if n <= 4:
        ax.legend(fontsize="small", framealpha=0.8)
    else:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _mean_curves(scan, g, key, title, task) -> Figure:
    fig = figure(8, 4.5)
    ax = fig.add_subplot()
    x = scan.eval_step_E
    for color, (label, idx) in zip(_colors(len(g)), g.items()):
        mean, se = mean_se(scan.curves[key][idx])
        lo, hi = mean - se, mean + se
        if key.endswith("loss"):
            lo = np.maximum(lo, mean / 10)  # keep the band drawable on a log axis
        ax.plot(x, mean, color=color, lw=1.5, label=f"{label} (n={len(idx)})")
        ax.fill_between(x, lo, hi, color=color, alpha=0.25, lw=0)
    if key.endswith("loss"):
        _log_y(ax)
    else:
        ax.set_ylim(-0.02, 1.02)
    ax.set(xlabel="update step", ylabel=title, title=f"{title} on {task}: mean ± s.e. over runs")
    _step_axis(ax, scan.budget)
    ax.grid(alpha=0.3)
    legend(ax, len(g))
    return fig


def _grid_axes(fig_w_per, fig_h_per, n, sharey=True):
    """n panels in a near-square grid (at most 4 columns); x tick labels on the lowest panel of each column."""
    cols = min(n, 4, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    fig = figure(fig_w_per * cols + 0.5, fig_h_per * rows + 0.6)
    axes = fig.subplots(rows, cols, sharex=True, sharey=sharey, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[max(0, n - cols):n]:
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig, axes[:n], cols


def _thin_runs(rows, idx) -> list[int]:
    """Up to THIN_RUNS row indices spread evenly over the group's ranking by steps to 99% val acc."""
    order = sorted(idx, key=lambda i: (rows[i]["step_val_acc_99"], rows[i]["run"]))
    picks = np.linspace(0, len(order) - 1, min(THIN_RUNS, len(order))).round().astype(int)
    return [order[p] for p in dict.fromkeys(picks)]


def _quantiles(scan, g, task) -> Figure:
    fig, axes, cols = _grid_axes(4.2, 3.0, len(g))
    x = scan.eval_step_E
    for k, (ax, (label, idx)) in enumerate(zip(axes, g.items())):
        for key, color, name in (("train_acc", TRAIN_C, "train"), ("val_acc", VAL_C, "val")):
            q10, q50, q90 = quiet(np.nanquantile, scan.curves[key][idx], [0.1, 0.5, 0.9], axis=0)
            ax.fill_between(x, q10, q90, color=color, alpha=0.22, lw=0, label=f"{name} acc 10–90%")
            ax.plot(x, q50, color=color, lw=1.6, label=f"{name} acc median")
        for j, i in enumerate(_thin_runs(scan.rows, idx)):
            ax.plot(x, scan.curves["val_acc"][i], color="0.25", lw=0.6, alpha=0.6,
                    label="val acc of single runs" if j == 0 else None)
        reached = int(column(scan.rows, idx, "reached_val_99").sum())
        ax.set_title(f"{label}\n{len(idx)} runs, {reached} reached 99% val acc", fontsize="small")
        ax.set_ylim(-0.02, 1.02)
        _panel(ax, k, cols, len(g), scan.budget, "accuracy", "update step")
    return _legend_below(fig, axes[0], 3, f"{task}: accuracy quantiles across runs")


def _steps_hist(scan, g, task) -> Figure:
    fig, axes, cols = _grid_axes(4.2, 2.8, len(g), sharey=False)
    edges = np.linspace(0, scan.budget, 31)
    width = edges[1] - edges[0]
    for k, (ax, (label, idx)) in enumerate(zip(axes, g.items())):
        steps, reached = steps_reached(scan.rows, idx)
        ax.hist(steps[reached], bins=edges, color=VAL_C, alpha=0.85, label="reached 99% val acc")
        n_never = int((~reached).sum())
        ax.bar(scan.budget + 1.5 * width, n_never, width=width * 1.6, color="0.55", hatch="//",
               label="never reached")
        if n_never:
            ax.annotate(str(n_never), (scan.budget + 1.5 * width, n_never), ha="center", va="bottom",
                        fontsize="x-small")
        ax.axvline(scan.budget, color="0.3", lw=0.8, ls=":")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of runs
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12)  # room for the count above the 'never reached' bar
        ax.set_title(f"{label} ({len(idx)} runs)", fontsize="small")
        _panel(ax, k, cols, len(g), scan.budget, "runs", "steps to 99% val acc (dotted: budget)")
    return _legend_below(fig, axes[0], 2, f"{task}: steps to 99% val acc")


def _panel(ax, k, cols, n, budget, ylabel, xlabel):
    """Grid and step axis of panel k of n in a ``_grid_axes`` figure; the y label on the first column, the x label
    on the lowest panel of each column."""
    ax.grid(alpha=0.3)
    _step_axis(ax, budget)
    if k % cols == 0:
        ax.set_ylabel(ylabel)
    if k >= n - cols:
        ax.set_xlabel(xlabel)


def _legend_below(fig, ax, ncols, title) -> Figure:
    """The legend of ``ax`` below all panels, and the figure's title."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize="small")
    fig.suptitle(title)
    return fig


def _steps_ecdf(scan, g, task) -> Figure:
    fig = figure(8, 4.5)
    ax = fig.add_subplot()
    for color, (label, idx) in zip(_colors(len(g)), g.items()):
        steps, reached = steps_reached(scan.rows, idx)
        steps = np.sort(steps[reached])
        share = np.arange(1, len(steps) + 1) / len(idx)
        xs = np.concatenate([[0], steps, [scan.budget]])
        ys = np.concatenate([[0], share, [share[-1] if len(share) else 0]])
        ax.step(xs, ys, where="post", color=color, lw=1.6,
                label=f"{label} ({len(steps)}/{len(idx)} reached)")
    if not any(column(scan.rows, idx, "reached_val_99").any() for idx in g.values()):
        ax.text(0.5, 0.5, f"no run reached 99% val acc within {scan.budget} updates", transform=ax.transAxes,
                ha="center", va="center", color="0.3")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, scan.budget)
    ax.set(xlabel="update step", ylabel="share of runs with val acc > 0.99",
           title=f"{task}: steps to 99% val acc (ECDF over all runs; stays below 1 if some never reached)")
    ax.title.set_fontsize("medium")
    _step_axis(ax, scan.budget)
    ax.grid(alpha=0.3)
    legend(ax, len(g))
    return fig


def summary_values(scan, by_group) -> dict[str, dict]:
    """The numbers of summary_plot.png per run group: {final_train_acc: (mean, s.e.), final_val_acc: (mean, s.e.),
    steps: grok_time dict (its Kaplan-Meier median and interval are drawn)}."""
    times = scan.grok_times()
    return {label: {"final_train_acc": stats.mean_se(column(scan.rows, idx, "final_train_acc")),
                    "final_val_acc": stats.mean_se(column(scan.rows, idx, "final_val_acc")), "steps": times[label]}
            for (_, label), idx in by_group.items()}


def _summary(scan, by_group) -> Figure:
    values = summary_values(scan, by_group)
    labels = list(values)
    n = len(by_group)
    fig = figure(12, 1.4 + 0.32 * n)
    axes = fig.subplots(1, 3, sharey=True)
    y = np.arange(n)
    colors = _colors(n)
    for ax, key, title in ((axes[0], "final_train_acc", "final train acc\n(mean ± s.e. over runs)"),
                           (axes[1], "final_val_acc", "final val acc\n(mean ± s.e. over runs)")):
        means = np.array([values[lb][key][0] for lb in labels])
        ses = np.nan_to_num(np.array([values[lb][key][1] for lb in labels]))
        bars = ax.barh(y, np.nan_to_num(means), xerr=ses, color=colors, alpha=0.85, capsize=2)
        ax.bar_label(bars, [stats.fmt_num(m, "{:.3f}") for m in means], fontsize="x-small", padding=4)
        ax.set_title(title, fontsize="medium")
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, 1.2)
        ax.set_xticks(np.linspace(0, 1, 6))
    ax = axes[2]
    g = [values[lb]["steps"] for lb in labels]
    med = np.array([t["km_median"] for t in g])
    lo = np.array([t["km_lo"] for t in g])
    hi = np.array([t["km_hi"] if np.isfinite(t["km_hi"]) else scan.budget for t in g])
    shown = np.where(np.isfinite(med), med, scan.budget)  # median not reached: a hatched bar to the budget
    ax.barh(y, shown, color=colors, alpha=0.85, hatch=[None if np.isfinite(m) else "//" for m in med])
    ok = np.isfinite(med)
    ax.errorbar(med[ok], y[ok], xerr=[med[ok] - np.nan_to_num(lo[ok], nan=0), hi[ok] - med[ok]], fmt="none",
                ecolor="0.2", capsize=2, lw=1)
    for yi, m, top, t in zip(y, med, np.where(ok, hi, shown), g):  # written right of the interval
        ax.text(top + 0.02 * scan.budget, yi, (stats.fmt_num(m) if np.isfinite(m) else f"> {scan.budget}")
                + f" ({t['k']}/{t['n']})", va="center", fontsize="x-small")
    ax.set_title("steps to 99% val acc: Kaplan-Meier median\n(95% CI; k/n reached it)", fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    ax.axvline(scan.budget, color="0.3", lw=0.8, ls=":")
    ax.set_xlim(0, scan.budget * 1.45)
    _step_axis(ax, scan.budget)
    axes[0].set_yticks(y, labels, fontsize="small" if n <= 12 else "x-small")
    axes[0].invert_yaxis()
    fig.suptitle("Per run group")
    return fig


def _survival(scan, g, task) -> Figure:
    """Kaplan-Meier curves of steps to 99% val acc per run group, with 95% bands; log-rank test in the title when
    the task has several run groups."""
    fig = figure(8, 4.5)
    ax = fig.add_subplot()
    times = scan.grok_times()
    for color, label in zip(_colors(len(g)), g):
        t = times[label]
        x, s, lo, hi = t["km"].steps(scan.budget)
        ax.step(x, s, where="post", color=color, lw=1.6,
                label=f"{label}: median {stats.fmt_median(t)}, {t['k']}/{t['n']} reached")
        ax.fill_between(x, lo, hi, step="post", color=color, alpha=0.18, lw=0)
    ax.axhline(0.5, color="0.4", lw=0.7, ls=":")
    title = f"{task}: share of runs not yet at 99% val acc (Kaplan-Meier, 95% band)"
    if len(g) > 1:
        title += "\n" + stats.fmt_logrank(scan.logrank()[task])
    ax.set(xlabel="update step", ylabel="share not yet at 99% val acc", title=title)
    ax.title.set_fontsize("medium")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, scan.budget)
    _step_axis(ax, scan.budget)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower left")
    return fig


def _step_loss(scan, show) -> dict[int, np.ndarray]:
    """Per-update batch loss of the shown runs, {run id: float[S]} (empty when metrics.npz has none)."""
    folder = open_scan(scan.out)
    if "step_loss" not in folder.arrays:
        return {}
    return dict(zip(show, folder.rows_of("step_loss", show)))


def _run(scan, rid, keys, step_loss_S) -> Figure:
    i = next(j for j, r in enumerate(scan.rows) if r["run"] == rid)
    row, x = scan.rows[i], scan.eval_step_E
    fig = figure(8.5, 8)
    ax_loss, ax_acc, ax_norm = fig.subplots(3, 1, sharex=True)
    if step_loss_S is not None:
        finite = np.flatnonzero(np.isfinite(step_loss_S))
        n = finite[-1] + 1 if len(finite) else 0  # updates before the run stopped
        every = max(1, n // 4000)  # at most ~4000 points
        s = np.arange(1, n + 1)[::every]
        v = step_loss_S[:n:every]
        ax_loss.plot(s, np.where(v > 0, v, np.nan), color=TRAIN_C, lw=0.4, alpha=0.3, label="train batch loss")
    for key, color, name in (("train_loss", TRAIN_C, "train"), ("val_loss", VAL_C, "val")):
        v = scan.curves[key][i]
        ax_loss.plot(x, np.where(v > 0, v, np.nan), color=color, lw=1.5, label=f"{name} loss")
        ax_acc.plot(x, scan.curves[key.replace("loss", "acc")][i], color=color, lw=1.5, label=f"{name} acc")
    _log_y(ax_loss)
    ax_acc.axhline(0.99, color="0.4", lw=0.7, ls=":")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_norm.plot(x, scan.curves["weight_norm"][i], color="k", lw=1.6, label="all parameters")
    layers = sorted(k for k in scan.curves if k.startswith("norm/"))
    for color, k in zip(_colors(len(layers)), layers):
        ax_norm.plot(x, scan.curves[k][i], color=color, lw=0.9, alpha=0.9, label=k[len("norm/"):])
    marks = [("step_train_acc_99", "reached_train_99", TRAIN_C, "train acc > 0.99"),
             ("step_val_acc_99", "reached_val_99", VAL_C, "val acc > 0.99")]
    for step_key, reached_key, color, name in marks:
        if row.get(reached_key):
            for ax in (ax_loss, ax_acc, ax_norm):
                ax.axvline(row[step_key], color=color, lw=1, ls="--",
                           label=f"{name} at step {row[step_key]}" if ax is ax_acc else None)
    if row.get("diverged_step") is not None:
        for ax in (ax_loss, ax_acc, ax_norm):
            ax.axvline(row["diverged_step"] + 1, color="tab:red", lw=1.2,
                       label=f"diverged at update {row['diverged_step'] + 1}" if ax is ax_acc else None)
    if not np.isfinite(scan.curves["val_acc"][i]).any():
        ax_acc.text(0.5, 0.5, "no finite evaluation", transform=ax_acc.transAxes, ha="center", color="tab:red")
    ax_loss.set_ylabel("loss (log)")
    ax_acc.set_ylabel("accuracy")
    ax_norm.set_ylabel("L2 norm")
    ax_norm.set_xlabel("update step")
    ax_norm.set_xlim(0, scan.budget * 1.01)  # the whole budget, so a run that stopped early shows it
    _step_axis(ax_norm, scan.budget)
    for ax, n in ((ax_loss, 3), (ax_acc, 5), (ax_norm, len(layers) + 1)):
        ax.grid(alpha=0.3)
        legend(ax, n)
    seed_cols = [k for k in rungroup.SEED_COLUMNS if row.get(k) is not None]
    same = all(row[k] == row.get("seed") for k in seed_cols)
    seeds = f"seed {row['seed']}" if same and "seed" in row else ", ".join(f"{k} {row[k]}" for k in seed_cols)
    label = rungroup.label(row, keys)
    notes = ([] if row.get("diverged_step") is None else [f"diverged at update {row['diverged_step'] + 1}"]) + \
        ([] if row.get("reached_val_99") else ["never reached 99% val acc"])
    status = f" ({'; '.join(notes)})" if notes else ""
    fig.suptitle(f"run {rid}: {row['task']}, {seeds}" + ("" if label == str(row["task"]) else f"\n{label}") + status)
    return fig


# ------------------------------------------------------------------------------------- phases and fractions

PHASE_COLORS = ("tab:green", "tab:blue", "tab:orange", "0.65")  # stats.PHASES order
PHASE_SHORT = ("compr.", "grok", "memo.", "conf.")


def _cell_edges(values) -> tuple[np.ndarray, np.ndarray, str]:
    """(cell centres, cell edges, scale) of an axis of a phase diagram: numbers that are all positive and span a
    factor 10 or more on a log axis (edges at geometric midpoints), other numbers on a linear axis (edges at
    midpoints), names and single values as evenly spaced cells ("cells")."""
    try:
        v = np.array([float(x) for x in values])
    except ValueError:
        v = None
    if v is None or len(v) < 2:
        return np.arange(len(values), dtype=float), np.arange(len(values) + 1) - 0.5, "cells"
    log = bool((v > 0).all() and v.max() / v.min() >= 10)
    u = np.log(v) if log else v
    mid = (u[1:] + u[:-1]) / 2
    e = np.concatenate([[u[0] - (mid[0] - u[0])], mid, [u[-1] + (u[-1] - mid[-1])]])
    return v, (np.exp(e) if log else e), ("log" if log else "linear")


def _cell_axes(ax, grid):
    """Scales, limits and ticks (at the axis values) of a phase-diagram panel; returns (x centres, y centres,
    x edges, y edges)."""
    out = []
    for values, name, set_scale, set_lim, set_ticks, set_label in (
            (grid.xs, grid.x, ax.set_xscale, ax.set_xlim, ax.set_xticks, ax.set_xlabel),
            (grid.ys, grid.y, ax.set_yscale, ax.set_ylim, ax.set_yticks, ax.set_ylabel)):
        c, e, scale = _cell_edges(values)
        set_scale("log" if scale == "log" else "linear")
        set_lim(e[0], e[-1])
        set_ticks(c, [rungroup.value_text(x) for x in values], minor=False)
        set_ticks([], minor=True)
        set_label(name + (" (log scale)" if scale == "log" else " (cells evenly spaced)" if scale == "cells" else ""))
        out.append((c, e, scale))
    (xc, xe, xs), (yc, ye, ys) = out
    mid = lambda e, i, sc: math.sqrt(e[i] * e[i + 1]) if sc == "log" else (e[i] + e[i + 1]) / 2  # noqa: E731
    return ([mid(xe, i, xs) for i in range(len(xc))], [mid(ye, j, ys) for j in range(len(yc))], xe, ye)


def phase_figure(grid) -> Figure:
    """A phase diagram (a jgrok.scandata.PhaseGrid): left, each cell coloured by its runs' majority phase with its
    share written in (ties: the earlier phase of jgrok.stats.PHASES) and the other phases' counts below; right, the
    Kaplan-Meier median grokking delay per cell."""
    from matplotlib.patches import Patch, Rectangle

    fig = figure(13, 5.2)
    ax, ax2 = fig.subplots(1, 2)
    n = grid.n
    delays = grid.delay[..., 0]
    fin = np.isfinite(delays) & (delays > 0)
    lo, hi = (np.log10(delays[fin].min()), np.log10(delays[fin].max())) if fin.any() else (0.0, 1.0)
    cmap = matplotlib.colormaps["viridis"]
    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1)
    for a in (ax, ax2):
        xm, ym, xe, ye = _cell_axes(a, grid)
    for i in range(len(grid.xs)):
        for j in range(len(grid.ys)):
            box = dict(xy=(xe[i], ye[j]), width=xe[i + 1] - xe[i], height=ye[j + 1] - ye[j])
            if n[i, j] == 0:
                continue
            c = grid.counts[i, j]
            top = int(np.argmax(c))
            ax.add_patch(Rectangle(**box, color=PHASE_COLORS[top], alpha=0.35 + 0.6 * c[top] / n[i, j], lw=0))
            rest = " ".join(f"{PHASE_SHORT[p]} {c[p]}" for p in range(len(c)) if p != top and c[p])
            ax.text(xm[i], ym[j], f"{PHASE_SHORT[top]} {c[top]}/{n[i, j]}" + (f"\n{rest}" if rest else ""),
                    ha="center", va="center", fontsize="x-small")
            med, mlo, mhi = grid.delay[i, j]
            if grid.delay_n[i, j] == 0:
                ax2.add_patch(Rectangle(**box, color="0.85", lw=0))
                ax2.text(xm[i], ym[j], "train never\nfit", ha="center", va="center", fontsize="x-small")
            elif not np.isfinite(med):
                ax2.add_patch(Rectangle(**box, facecolor="white", edgecolor="0.5", hatch="//", lw=0))
                ax2.text(xm[i], ym[j], f"not reached\n({grid.delay_k[i, j]}/{grid.delay_n[i, j]} val)",
                         ha="center", va="center", fontsize="x-small")
            else:
                ax2.add_patch(Rectangle(**box, color=cmap(norm(np.log10(max(med, 1.0)))), lw=0))
                ax2.text(xm[i], ym[j], f"{med:.0f}\n({grid.delay_k[i, j]}/{grid.delay_n[i, j]})", ha="center",
                         va="center", fontsize="x-small", color="white" if norm(np.log10(max(med, 1.0))) < 0.6
                         else "black")
    a = f"{100 * grid.acc:g}%"
    ax.set_title(f"majority phase per cell (its runs / all runs), D = {grid.threshold:g} updates", fontsize="medium")
    ax.legend(handles=[Patch(color=c, label=p) for c, p in zip(PHASE_COLORS, ("comprehension", "grokking",
                                                                              "memorisation", "confusion"))],
              fontsize="x-small", loc="upper left", bbox_to_anchor=(0, -0.12), ncols=4)
    ax2.set_title(f"median grokking delay (steps to {a} val − train; Kaplan-Meier,\nk/n: val got there / "
                  "train got there)", fontsize="medium")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax2, label="log10 median delay (updates)")
    fig.suptitle(f"{grid.title}: phases at {a} accuracy within {grid.budget} updates")
    return fig


def fraction_figure(points: dict, budget: int) -> Figure:
    """Steps to 99% val acc against the training fraction (jgrok.scandata.fraction_points): per line and fraction
    the Kaplan-Meier median with its 95% interval (an arrow where the interval is open past the budget) and the
    share of runs that got there; a point whose median was not reached is an open marker at the budget with an
    arrow and a label, never a value."""
    fig = figure(8.5, 5)
    ax = fig.add_subplot()
    meds = [t["km_median"] for pts in points.values() for _, t in pts if np.isfinite(t["km_median"])]
    log = bool(meds) and min(meds) > 0 and budget / min(meds) >= 10
    xs = [x for pts in points.values() for x, _ in pts]
    span = (max(xs) - min(xs)) or 1.0
    for li, (color, (label, pts)) in enumerate(zip(_colors(len(points)), points.items())):
        # lines side by side (dodged by 1% of the fraction range each), so that equal points stay visible
        f = np.array([x for x, _ in pts]) + (li - (len(points) - 1) / 2) * 0.01 * span
        med = np.array([t["km_median"] for _, t in pts])
        lo = np.array([t["km_lo"] for _, t in pts])
        hi = np.array([t["km_hi"] for _, t in pts])
        ok = np.isfinite(med)
        ax.plot(f[ok], med[ok], "-o", color=color, lw=1.5, ms=5, label=label)
        ax.errorbar(f[ok], med[ok], yerr=[med[ok] - lo[ok], np.where(np.isfinite(hi[ok]), hi[ok], budget) - med[ok]],
                    fmt="none", ecolor=color, capsize=3, lw=1)
        open_hi = ok & ~np.isfinite(hi)
        ax.plot(f[open_hi], np.full(open_hi.sum(), budget), "^", color=color, ms=6)  # interval open past budget
        ax.plot(f[~ok], np.full((~ok).sum(), budget), "o", mfc="none", mec=color, ms=8, mew=1.5,
                label=f"{label}: median not reached" if (~ok).any() else None)
        for x, m, (_, t) in zip(f, med, pts):
            y = m if np.isfinite(m) else budget
            ax.annotate(f"{t['k']}/{t['n']}" + ("" if np.isfinite(m) else "\nnot reached"), (x, y),
                        textcoords="offset points", xytext=(6, 4 if np.isfinite(m) else -18 - 20 * li),
                        fontsize="x-small", color=color)
    ax.axhline(budget, color="0.3", lw=0.8, ls=":", label=f"budget ({budget} updates)")
    if log:
        _log_y(ax)
    else:
        ax.set_ylim(0, budget * 1.1)
    ax.set_xticks(sorted(set(xs)), [f"{x:g}" for x in sorted(set(xs))])
    ax.set(xlabel="training fraction (lines dodged sideways)", ylabel="steps to 99% val acc (Kaplan-Meier median)",
           title="steps to 99% val acc against the training fraction: KM median, 95% CI; k/n reached 99%")
    ax.title.set_fontsize("medium")
    ax.grid(alpha=0.3)
    legend(ax, 2 * len(points) + 1)
    return fig


def safe_name(name: str) -> str:
    """A label as a file-name part: every character but letters, digits and _ . - becomes _."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


# ---------------------------------------------------------------------------------------------------- regression

RUNS_PER_PANEL = 8


def plot_regression(scan: ScanData) -> list[Path]:
    """The regression figures of the module docstring."""
    plot_dir = scan.out / "plots"
    plot_dir.mkdir(exist_ok=True)
    by_group = scan.groups
    x = scan.eval_step_E / scan.per_epoch
    paths = []
    for task in dict.fromkeys(t for t, _ in by_group):
        g = {label: idx for (t, label), idx in by_group.items() if t == task}
        colors = _colors(len(g))
        fig = figure(12, 4.5)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, key, title in ((axes[0], "train_loss", "train loss"), (axes[1], "val_loss", "val loss")):
            for color, (label, idx) in zip(colors, g.items()):
                mean, se = mean_se(scan.curves[key][idx])
                ax.plot(x, mean, color=color, lw=1.5, label=f"{label} (n={len(idx)})")
                ax.fill_between(x, np.maximum(mean - se, mean / 10), mean + se, color=color, alpha=0.25, lw=0)
                drops = column(scan.rows, idx, "drop_epoch")
                for d in drops[np.isfinite(drops)]:
                    ax.axvline(d, color=color, lw=0.8, ls=":", alpha=0.8)
            ax.set_yscale("log")
            ax.set(xlabel="epoch", title=f"{title} (MSE of log2 h) on {task}; dotted: drop epochs")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("mean ± s.e. over runs")
        legend(axes[1], len(g))
        paths.append(save(fig, plot_dir / f"loss_{safe_name(task)}.png"))

        fig, axes, _ = _grid_axes(4.2, 3.2, len(g))
        for ax, (label, idx) in zip(axes, g.items()):
            found = sum(bool(scan.rows[i]["dropped"]) for i in idx)
            for j, i in enumerate(idx[:RUNS_PER_PANEL]):
                line, = ax.plot(x, scan.curves["val_loss"][i], lw=0.9, alpha=0.85)
                d = scan.rows[i]["drop_epoch"]
                if d is not None:
                    y = np.interp(d, x, np.nan_to_num(scan.curves["val_loss"][i], nan=np.nanmax(
                        scan.curves["val_loss"][i])))
                    ax.plot([d], [y], "o", color=line.get_color(), ms=5)
            ax.set_yscale("log")
            ax.set_title(f"{label}\n{len(idx)} runs, {found} with a drop (dots)", fontsize="small")
            ax.grid(alpha=0.3)
            ax.set_xlabel("epoch")
        fig.suptitle(f"{task}: val loss of single runs")
        paths.append(save(fig, plot_dir / f"val_loss_runs_{safe_name(task)}.png"))

        fig = figure(8, 4.5)
        ax = fig.add_subplot()
        for color, (label, idx) in zip(colors, g.items()):
            mean, se = mean_se(scan.curves["weight_norm"][idx])
            ax.plot(x, mean, color=color, lw=1.5, label=f"{label} (n={len(idx)})")
            ax.fill_between(x, mean - se, mean + se, color=color, alpha=0.25, lw=0)
        ax.set(xlabel="epoch", ylabel="global L2 norm of all parameters", title=f"weight norm on {task}")
        ax.grid(alpha=0.3)
        legend(ax, len(g))
        paths.append(save(fig, plot_dir / f"weight_norm_{safe_name(task)}.png"))
    return paths
