"""TensorBoard logs of a scan (tensorboardX) in OUT/tb/, written off the training path.

Layout (one TensorBoard *run* per folder, so that TensorBoard overlays groups and runs in one chart):

  tb/<task>/<axis>=<value>,...   one per group of runs: the runs of one task that share every varying non-seed
                                 axis value (``tb/<task>/all`` when none vary), e.g. ``tb/x_plus_y/wd=0.5``.
                                 Scalars ``<metric>/mean``, ``<metric>/median``, ``<metric>/q10``, ``<metric>/q90``
                                 (mean, median, 10% and 90% quantiles across the group's runs with a finite value
                                 at that step) and histograms across runs ``hist/<metric>``.
  tb/run_<id>                    one per run chosen by ``engine.tb_runs`` (default 0:16): scalars ``<metric>``
                                 and, at the end, its hparams with ``hparam/final_val_acc``, ``hparam/final_val_loss``
                                 and ``hparam/step_val_acc_99`` (first eval step with val acc > 0.99; the budget if
                                 never).

Metrics at each evaluation step: train_loss and train_acc (mean over the updates since the previous evaluation),
val_loss, val_acc (full validation split) and weight_norm (global L2 norm of the parameters). In the scalars
dashboard each metric is one section: the chart ``<metric>`` has one line per chosen run, ``<metric>/median`` etc.
one line per group.

The engine hands over copies of each chunk's new evaluations and returns at once; a single writer thread computes
the statistics and writes every event file, so the accelerator never waits for the logs.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
import warnings
from pathlib import Path

import numpy as np

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "weight_norm")
HIST = ("val_acc", "val_loss", "weight_norm")
QUANTILES = (("q10", 0.1), ("median", 0.5), ("q90", 0.9))
HPARAMS = ("task", "seed", "split_seed", "order_seed", "lr", "wd", "init", "init_scale", "optimizer", "filter")
FINALS = ("final_val_acc", "final_val_loss", "step_val_acc_99")


def parse_runs(text: str) -> set[int]:
    """Run ids of ``engine.tb_runs``: a comma list of ids and half-open ranges A:B; 'none' or '' for none."""
    ids: set[int] = set()
    if str(text).strip().lower() == "none":
        return ids
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            a, b = part.split(":")
            ids.update(range(int(a), int(b)))
        else:
            ids.add(int(part))
    return ids


def group_name(row: dict, group_axes: list[str]) -> str:
    """The TensorBoard run (folder under tb/) of a run's group: 'x_plus_y/wd=0.5,init=xavier_uniform'."""
    axes = ",".join(f"{a}={row[a]:g}" if isinstance(row[a], float) else f"{a}={row[a]}" for a in group_axes)
    return f"{row['task']}/{_safe(axes or 'all')}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


class Logger:
    """Write a scan's TensorBoard logs; ``log`` is called by the engine after every chunk, ``close`` at the end."""

    def __init__(self, out: Path, rows: list[dict], tb_runs: str, group_axes: list[str]):
        self.dir = Path(out) / "tb"
        self.rows = rows
        chosen = parse_runs(tb_runs)
        self.selected = [r["run"] for r in rows if r["run"] in chosen]
        self.groups: dict[str, list[int]] = {}  # TensorBoard run name -> run ids
        for r in rows:
            self.groups.setdefault(group_name(r, group_axes), []).append(r["run"])
        self.writers: dict = {}  # TensorBoard run name -> SummaryWriter, opened by the writer thread
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jgrok-tb")
        self.futures = []
        self.busy_s = 0.0  # seconds the writer thread spent computing statistics and writing

    def log(self, steps: np.ndarray, values: dict, runs: list[int]) -> None:
        """steps [e]; values: metric -> [r, e] for the runs ``runs`` (one program's). Copies and returns at once."""
        self.futures.append(self.pool.submit(self._write, np.array(steps), {k: np.array(v) for k, v in values.items()},
                                             list(runs)))

    def _writer(self, name: str):
        if name not in self.writers:
            from tensorboardX import SummaryWriter

            self.writers[name] = SummaryWriter(str(self.dir / name), max_queue=1000, flush_secs=30)
        return self.writers[name]

    def _write(self, steps, values, runs):
        t0 = time.perf_counter()
        try:
            self._write_events(steps, values, runs)
        finally:
            self.busy_s += time.perf_counter() - t0

    def _write_events(self, steps, values, runs):
        pos = {r: i for i, r in enumerate(runs)}
        steps = [int(s) for s in steps]
        finite = {k: np.where(np.isfinite(v), v, np.nan) for k, v in values.items()}
        for name, members in self.groups.items():
            idx = [pos[r] for r in members if r in pos]
            if not idx:
                continue
            w = self._writer(name)
            for k in METRICS:
                x_NxE = finite[k][idx]
                with warnings.catch_warnings():  # a step where every run has stopped gives NaN and is skipped
                    warnings.simplefilter("ignore", RuntimeWarning)
                    stats = {"mean": np.nanmean(x_NxE, axis=0)}
                    qs = np.nanquantile(x_NxE, [q for _, q in QUANTILES], axis=0)
                stats.update({s: qs[i] for i, (s, _) in enumerate(QUANTILES)})
                for stat, v_E in stats.items():
                    for step, v in zip(steps, v_E):
                        if np.isfinite(v):
                            w.add_scalar(f"{k}/{stat}", float(v), step)
            for k in HIST:
                for j, step in enumerate(steps):
                    x = finite[k][idx, j]
                    x = x[np.isfinite(x)]
                    if len(x):
                        w.add_histogram(f"hist/{k}", x, step)
        for run in self.selected:
            if run not in pos:
                continue
            w = self._writer(f"run_{run}")
            for k in METRICS:
                for step, v in zip(steps, finite[k][pos[run]]):
                    if np.isfinite(v):
                        w.add_scalar(k, float(v), step)

    def close(self, summary: list[dict] | None = None) -> None:
        """Wait for the writer thread, add the chosen runs' hparams (given the scan's summary rows) and close."""
        try:
            for f in self.futures:
                f.result()
        finally:
            self.pool.shutdown()
        if summary is not None:
            from tensorboardX.summary import hparams

            by_run = {int(s["run"]): s for s in summary}
            rows = {r["run"]: r for r in self.rows}
            for run in self.selected:
                s = by_run.get(run)
                if s is None:
                    continue
                hp = {k: rows[run][k] for k in HPARAMS if k in rows[run]}
                hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hp.items()}
                final = {f"hparam/{k}": float(s[k]) for k in FINALS}
                w = self._writer(f"run_{run}")
                for summ in hparams(hp, final):
                    w.file_writer.add_summary(summ)
                for k, v in final.items():
                    w.add_scalar(k, v)
        for w in self.writers.values():
            w.close()
