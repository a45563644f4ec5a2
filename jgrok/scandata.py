"""A finished scan as the readers use it: summary rows typed, curves aligned with them, run groups, grokking times
with their censoring, and the log-rank test between run groups. ``jgrok.open_scan(OUT).data()`` gives it, and
jgrok.report, jgrok.analyze, jgrok.plots and jgrok.analysis read a scan through it:

    d = jgrok.open_scan("runs/wd").data()
    d.rows               # summary.csv, one dict per run in run-id order, cells typed (jgrok.io.results.parse_value)
    d.curves["val_acc"]  # float [runs, evals] of metrics.npz, row i = the run of d.rows[i]; d.eval_step_E: the
                         # update count of each evaluation
    d.own("fourier_spectrum", i)  # run i's own values of a curve padded across shapes (jgrok.io.results.PAD)
    d.groups             # {(task, run-group label): row indices}, in jgrok.rungroup.by_label's order
    d.grok_times()       # {label: jgrok.stats.grok_time of its steps to 99% val acc}
    d.logrank()          # {task: jgrok.stats.logrank_steps between its run groups}, for tasks with several

Definitions:
  run group              the runs that share every non-seed axis value (jgrok.rungroup: labels and order)
  steps to 99% val acc   ``step_val_acc_99``: first eval step with val acc > 0.99; the budget if never. As time to
                         an event, a run that never got there (``reached_val_99`` = 0) is censored at the budget
  budget                 ``train.steps`` of config.yaml (the last eval step where it has none); for a regression
                         scan the last eval step
  phase grid             ``phase_grids``: the runs of an X x Y grid of two varying axes, per cell the count of
                         each phase (jgrok.stats.phases) and the Kaplan-Meier median grokking delay
                         (jgrok.stats.delay_km); one grid per task and value of any other varying axis
  fraction points        ``fraction_points``: per line (task and the other varying axes) and training fraction
                         (the ``fraction`` column), jgrok.stats.grok_time of its runs' steps to 99% val acc
The functions below take summary rows (typed or as csv gives them) and row indices, for readers that hold rows of
their own.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from jgrok import rungroup, stats
from jgrok.errors import ConfigError
from jgrok.io import results

REQUIRED_COLUMNS = ("run", "task", "step_train_acc_99", "step_val_acc_99", "reached_val_99", "final_train_acc",
                    "final_val_acc", "diverged_step")
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm")  # every classification scan has these
REGRESSION_CURVES = ("train_loss", "val_loss", "weight_norm")


@dataclass
class ScanData:
    """One finished scan, typed and aligned (module docstring)."""

    out: Path
    cfg: dict                      # config.yaml as the mapping it holds
    rows: list[dict]               # summary.csv, typed, in run-id order
    eval_step_E: np.ndarray        # 1-based update counts of the evaluations
    curves: dict[str, np.ndarray]  # [R, E] arrays of metrics.npz, row i = the run of rows[i]
    budget: int                    # the value of step_val_acc_99 for runs that never got there
    per_epoch: float | None = field(default=None)  # updates per epoch of a regression scan; None otherwise
    # each padded curve's ``pad/`` extents (jgrok.io.results.PAD), aligned with rows: int [R, ndim - 1]; a
    # scan whose programs all have one shape has none
    pads: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def regression(self) -> bool:
        return self.per_epoch is not None

    @cached_property
    def group_axes(self) -> list[str]:
        """The non-seed axes that vary between runs, in label order (``jgrok.rungroup.axes``)."""
        return rungroup.axes(self.rows)

    @cached_property
    def groups(self) -> dict[tuple[str, str], np.ndarray]:
        """{(task, run-group label): row indices}."""
        return groups(self.rows, self.group_axes)

    def own(self, name: str, i: int) -> np.ndarray:
        """Row i of curve ``name`` without its padding (jgrok.io.results.PAD): the run's own values."""
        return results.own({name: self.curves[name], **({results.PAD + name: self.pads[name]}
                                                         if name in self.pads else {})}, name, i)

    def column(self, key: str, idx=None) -> np.ndarray:
        """One summary column over the rows idx (all by default) as floats (None -> NaN)."""
        return column(self.rows, range(len(self.rows)) if idx is None else idx, key)

    def grok_times(self) -> dict[str, dict]:
        """{run-group label: ``jgrok.stats.grok_time``} of steps to 99% val acc."""
        return grok_times(self.rows, self.groups, self.budget)

    def logrank(self) -> dict[str, dict]:
        """{task: log-rank test of steps to 99% val acc between its run groups}, for tasks with several."""
        return logrank(self.rows, self.groups, self.budget)


def column(rows: list[dict], idx, key: str) -> np.ndarray:
    """One summary column over the rows idx as floats (None or '' -> NaN)."""
    return np.array([np.nan if rows[i][key] is None or rows[i][key] == "" else float(rows[i][key]) for i in idx])


def groups(rows: list[dict], group_axes: list[str]) -> dict[tuple[str, str], np.ndarray]:
    """{(task, run-group label): row indices} in ``jgrok.rungroup.by_label``'s order."""
    return {(str(rows[idx[0]]["task"]), label): np.array(idx)
            for label, idx in rungroup.by_label(rows, list(group_axes)).items()}


def steps_reached(rows: list[dict], idx) -> tuple[np.ndarray, np.ndarray]:
    """(steps to 99% val acc as floats, reached flags) of the rows idx: the time and the event of each run."""
    return column(rows, idx, "step_val_acc_99"), column(rows, idx, "reached_val_99") > 0


def grok_times(rows: list[dict], by_group: dict, budget: int) -> dict[str, dict]:
    """{run-group label: ``jgrok.stats.grok_time`` of its steps to 99% val acc} (the numbers the report, the
    printout, the figures and analyze show)."""
    return {label: stats.grok_time(*steps_reached(rows, idx), budget) for (_, label), idx in by_group.items()}


def logrank(rows: list[dict], by_group: dict, budget: int) -> dict[str, dict]:
    """{task: ``jgrok.stats.logrank_steps`` of steps to 99% val acc between the task's run groups} for every task
    with more than one run group; never-reached runs are censored at the budget. The one log-rank assembly that
    the printout, report.md and the survival figures show."""
    out = {}
    for task in dict.fromkeys(t for t, _ in by_group):
        idx_groups = [idx for (t, _), idx in by_group.items() if t == task]
        if len(idx_groups) > 1:
            times = [steps_reached(rows, idx) for idx in idx_groups]
            out[task] = stats.logrank_steps([s for s, _ in times], [r for _, r in times], budget)
    return out


# ------------------------------------------------------------------------------------------------- from a folder

def load(folder) -> ScanData:
    """The ScanData of a jgrok.results_folder.ResultsFolder (a regression scan's when it is one); ConfigError (one
    sentence) unless the folder holds a finished scan."""
    return _regression(folder) if folder.regression else _classification(folder)


def _finished_rows(folder, required) -> list[dict]:
    out = folder.out
    if not folder.finished or not (out / "metrics.npz").is_file():
        raise ConfigError(f"{out} is not a finished jgrok results folder (it has no summary.csv or metrics.npz); "
                          "pass the --out folder of a finished scan.")
    rows = folder.summary
    missing = [c for c in required if c not in rows[0]] if rows else []
    if missing or not rows:
        raise ConfigError(f"{out / 'summary.csv'} is not a jgrok summary (missing columns: "
                          f"{', '.join(missing) or 'no rows'}); pass the --out folder of a finished scan.")
    return rows


def _aligned(folder, rows, arrays, names) -> dict[str, np.ndarray]:
    """The curves ``names`` of metrics.npz with their rows in the order of the summary rows."""
    pos = {int(r): i for i, r in enumerate(arrays["run"])}
    if any(r["run"] not in pos for r in rows):
        raise ConfigError(f"summary.csv and metrics.npz in {folder.out} list different runs; rerun the scan.")
    order = np.array([pos[r["run"]] for r in rows])
    return {k: arrays[k][order] for k in names}


def _classification(folder) -> ScanData:
    rows = _finished_rows(folder, REQUIRED_COLUMNS)
    npz = folder.out / "metrics.npz"
    try:
        arrays = folder.metrics()
        eval_step_E, _ = np.asarray(arrays["eval_step"]), arrays["run"]
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{npz} cannot be read as jgrok metrics ({e}); pass the --out folder of a finished "
                          "scan.") from None
    names = [k for k in arrays if k not in ("run", "eval_step") and not k.startswith(("step_", results.PAD))]
    lacking = [k for k in CURVES if k not in names]
    if lacking:
        raise ConfigError(f"{npz} lacks the curves {', '.join(lacking)}; pass the --out folder of a finished scan.")
    cfg = folder.saved
    budget = (cfg.get("train") or {}).get("steps") or int(eval_step_E[-1])
    pads = {k[len(results.PAD):]: v for k, v in
            _aligned(folder, rows, arrays, [k for k in arrays if k.startswith(results.PAD)]).items()}
    return ScanData(folder.out, cfg, rows, eval_step_E, _aligned(folder, rows, arrays, names), int(budget),
                    pads=pads)


def _regression(folder) -> ScanData:
    try:
        rows = folder.summary
        arrays = folder.metrics()
        eval_step_E, per_epoch = np.asarray(arrays["eval_step"]), float(arrays["updates_per_epoch"])
        curves = _aligned(folder, rows, arrays, REGRESSION_CURVES)
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{folder.out} is not a finished jgrok regression results folder ({e}); pass the --out "
                          "folder of a finished scan.") from None
    return ScanData(folder.out, folder.saved, rows, eval_step_E, curves, int(eval_step_E[-1]), per_epoch)


# ------------------------------------------------------------------------------------------ phases and fractions

def level_columns(rows: list[dict], acc: float) -> tuple[str, str, str, str]:
    """(step_train_acc_L, reached_train_L, step_val_acc_L, reached_val_L) of the accuracy level ``acc``;
    ConfigError when the summary has no such columns (the scan did not track that threshold)."""
    from jgrok.config import threshold_label

    lab = threshold_label(acc)
    cols = (f"step_train_acc_{lab}", f"reached_train_{lab}", f"step_val_acc_{lab}", f"reached_val_{lab}")
    if rows and any(c not in rows[0] for c in cols):
        raise ConfigError(f"This scan's summary has no columns for accuracy {acc:g} ({cols[2]}); pick a level it "
                          f"tracked (0.99, or one of its --threshold values), or scan again with --threshold {acc:g}.")
    return cols


def phases_of(rows: list[dict], idx, acc: float, delay: float) -> np.ndarray:
    """jgrok.stats.phases of the rows idx at accuracy level ``acc`` and delay ``delay``."""
    tr, rtr, va, rva = level_columns(rows, acc)
    return stats.phases(column(rows, idx, tr), column(rows, idx, rtr) > 0, column(rows, idx, va),
                        column(rows, idx, rva) > 0, delay)


def delay_of(rows: list[dict], idx, acc: float, budget: int) -> stats.KaplanMeier:
    """jgrok.stats.delay_km of the rows idx at accuracy level ``acc``."""
    tr, rtr, va, rva = level_columns(rows, acc)
    return stats.delay_km(column(rows, idx, tr), column(rows, idx, rtr) > 0, column(rows, idx, va),
                          column(rows, idx, rva) > 0, budget)


def varying(rows: list[dict]) -> list[str]:
    """The non-seed axes that vary (jgrok.rungroup.axes), and ``fraction`` where summary rows carry it and it
    varies (a per-run column of the task; once it is an axis of jgrok.axes it is among the former)."""
    out = rungroup.axes(rows)
    if rows and "fraction" in rows[0] and "fraction" not in out and len({rungroup.value_text(r["fraction"])
                                                                       for r in rows}) > 1:
        out.append("fraction")
    return out


def phase_axes(rows: list[dict], requested: str | None) -> tuple[str, str] | None:
    """The two axes of the phase diagram: ``requested`` ('lr,wd'; ConfigError unless two different axes that vary
    in the scan), else the two varying axes when exactly two vary, else None."""
    vary = varying(rows)
    if requested is None:
        return (vary[0], vary[1]) if len(vary) == 2 else None
    names = [n.strip() for n in requested.split(",") if n.strip()]
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(f"--phase takes two different axes as X,Y (e.g. lr,wd), not '{requested}'.")
    bad = [n for n in names if n not in vary]
    if bad:
        raise ConfigError(f"--phase: {', '.join(bad)} does not vary in this scan (varying: "
                          f"{', '.join(vary) or 'none'}); name two of the varying axes.")
    return names[0], names[1]


@dataclass
class PhaseGrid:
    """The phase diagram of one task (and one value of every other varying axis): cell [i, j] holds the runs with
    the i-th value of x and the j-th value of y (values ascending)."""

    title: str               # the task and the other axes' values, as run-group labels write them
    x: str
    y: str
    xs: list                 # the values of x, ascending (as the summary holds them)
    ys: list
    counts: np.ndarray       # [X, Y, 4] runs per phase (jgrok.stats.PHASES order)
    delay: np.ndarray        # [X, Y, 3] Kaplan-Meier median grokking delay, its 95% interval; NaN where none
    delay_k: np.ndarray      # [X, Y] runs whose val got there among those that reached the level on train
    delay_n: np.ndarray      # [X, Y] runs that reached the level on train
    acc: float
    threshold: float         # delay D
    budget: int

    @property
    def n(self) -> np.ndarray:
        return self.counts.sum(axis=-1)


def _ascending(values) -> list:
    def rank(v):
        t = rungroup.value_text(v)
        try:
            return 0, float(t), ""
        except ValueError:
            return 1, 0.0, t
    return sorted(dict.fromkeys(values), key=rank)


def phase_grids(rows: list[dict], x: str, y: str, budget: int, acc: float = stats.PHASE_ACC,
                delay: float = stats.PHASE_DELAY) -> list[PhaseGrid]:
    """One PhaseGrid per task and value of the varying axes other than x and y (module docstring)."""
    others = [a for a in varying(rows) if a not in (x, y)]
    text = rungroup.value_text
    panels = groups(rows, others)
    out = []
    for (_, title), idx in panels.items():
        xs = _ascending(text(rows[i][x]) for i in idx)
        ys = _ascending(text(rows[i][y]) for i in idx)
        ph = phases_of(rows, idx, acc, delay)
        counts = np.zeros((len(xs), len(ys), len(stats.PHASES)), int)
        cell = {}
        for i, p in zip(idx, ph):
            key = (xs.index(text(rows[i][x])), ys.index(text(rows[i][y])))
            counts[key + (p,)] += 1
            cell.setdefault(key, []).append(i)
        med = np.full((len(xs), len(ys), 3), np.nan)
        k_, n_ = np.zeros((len(xs), len(ys)), int), np.zeros((len(xs), len(ys)), int)
        for key, members in cell.items():
            km = delay_of(rows, members, acc, budget)
            med[key] = km.median()
            n_[key], k_[key] = km.n, int(km.events.sum())
        out.append(PhaseGrid(title, x, y, xs, ys, counts, med, k_, n_, acc, delay, budget))
    return out


def fraction_points(rows: list[dict], budget: int) -> dict[str, list[tuple[float, dict]]]:
    """{line label: [(fraction, jgrok.stats.grok_time of its runs)] by ascending fraction}: the points of the
    fraction figure, one line per task and value of the other varying axes; {} unless a ``fraction`` column
    varies."""
    if "fraction" not in varying(rows):
        return {}
    others = [a for a in varying(rows) if a != "fraction"]
    out: dict[str, list] = {}
    for (_, label), idx in groups(rows, others).items():
        by_f: dict[float, list] = {}
        for i in idx:
            by_f.setdefault(float(rows[i]["fraction"]), []).append(i)
        out[label] = [(f, stats.grok_time(*steps_reached(rows, members), budget))
                      for f, members in sorted(by_f.items())]
    return out
