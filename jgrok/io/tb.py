"""TensorBoard logs of a scan (tensorboardX) in OUT/tb/, written off the training path.

Layout: one TensorBoard *run* per folder, so that TensorBoard draws groups (or chosen runs) as lines of one chart.

  tb/<run-group label>           one per run group, named by its label (jgrok.rungroup: ``tb/x_plus_y wd=0.5``,
                                 ``tb/x_plus_y`` when no axis varies), the same label results and plots use.
                                 Scalars ``<tag>/mean``, ``<tag>/median``, ``<tag>/q10``, ``<tag>/q90``: mean, median,
                                 10% and 90% quantiles across the run group's runs with a finite value at that step;
                                 histograms across its runs ``spread/<metric>``.
  tb/run_<id> <axes> <seeds>     one per run chosen by ``engine.tb_runs`` (``select_runs``), named by
                                 ``jgrok.rungroup.run_name`` (``tb/run_0004 wd=1 seed=3``; ids zero-padded so that
                                 they sort): scalars ``<tag>`` and, at the end, the run's hparams (task, seed and the
                                 axes that vary in the scan) with, as metrics for the HPARAMS tab, ``steps_to_99_val_acc``
                                 (first eval step with val acc > 0.99; the budget if never; written once at the last
                                 step) and the last values of the val acc, val loss, train acc and weight norm curves.

Custom Scalars: a layout (written with the first run group's events) holds one margin chart per metric, category
"run groups: median and 10-90% band across runs": each run group's ``<tag>/median`` as a line between its
``<tag>/q10`` and ``<tag>/q90``.

Tags (metric of metrics.npz -> tag): train_acc -> accuracy/train, val_acc -> accuracy/val, train_loss -> loss/train,
val_loss -> loss/val, weight_norm -> weight_norm, and every scalar progress measure (``train.measures``,
jgrok.measures) -> measures/<key>, e.g. measures/restricted_loss. train_* = mean over the updates since the
previous evaluation; val_* = the full validation split; weight_norm = global L2 norm of the parameters.
TensorBoard sections follow the first part of a tag, so accuracy and loss come first: the chart ``accuracy/val``
has one line per chosen run, ``accuracy/val/median`` one line per group.

The engine hands over copies of each chunk's new evaluations and returns at once; a single writer thread computes
the statistics and writes every event file, so the accelerator never waits for the logs.
"""

from __future__ import annotations

import concurrent.futures
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from jgrok import rungroup, runids
from jgrok.errors import ConfigError
from jgrok.tasks import kinds

TAGS = {"train_acc": "accuracy/train", "val_acc": "accuracy/val", "train_loss": "loss/train", "val_loss": "loss/val",
        "weight_norm": "weight_norm"}
METRICS = tuple(TAGS)
HIST = ("val_acc", "val_loss", "weight_norm")
STATS = ("mean", "median", "q10", "q90")
QUANTILES = (("q10", 0.1), ("median", 0.5), ("q90", 0.9))
STEPS_TAG = "steps_to_99_val_acc"
HEADLINE_TAGS = {"step_val_acc_99": STEPS_TAG}  # summary column -> hparams metric, where the names differ
HPARAM_FINALS = ("val_acc", "val_loss", "train_acc", "weight_norm")


def logged(values: dict) -> list[str]:
    """The metrics of ``values`` that get TensorBoard scalars: METRICS, then the scalar progress measures."""
    from jgrok import measures

    scalar = [k for name in measures.NAMES for k in measures.KEYS[name] if k not in measures.SPECTRA]
    return [k for k in METRICS if k in values] + [k for k in scalar if k in values]


def tag(metric: str) -> str:
    return TAGS.get(metric, f"measures/{metric}")


AUTO_RUNS = 16


def parse_runs(text: str) -> set[int]:
    """Run ids of an ``engine.tb_runs`` list: a comma list of ids and half-open ranges A:B; 'none' or '' for none
    (jgrok.runids)."""
    return set(runids.parse_optional(text))


def select_runs(tb_runs: str, rows: list[dict], groups: dict[str, list[int]]) -> list[int]:
    """The run ids whose own curves are logged, in the order of ``rows``. 'auto': AUTO_RUNS runs taken from every
    group in turn, each group's runs in order (so a scan over wd shows runs of every wd; with one group these are
    its first AUTO_RUNS runs); otherwise the ids of ``parse_runs`` that are in the scan."""
    if str(tb_runs).strip().lower() == "auto":
        chosen: set[int] = set()
        queues = [list(members) for members in groups.values()]
        while len(chosen) < AUTO_RUNS and any(queues):
            for q in queues:
                if q and len(chosen) < AUTO_RUNS:
                    chosen.add(q.pop(0))
    else:
        chosen = parse_runs(tb_runs)
    return [r["run"] for r in rows if r["run"] in chosen]


def group_name(row: dict, group_axes: list[str]) -> str:
    """The TensorBoard run (folder under tb/) of a run's run group: its label, 'x_plus_y wd=0.5 init=xavier_uniform'
    (characters a folder name cannot hold replaced by _)."""
    return _safe(rungroup.label(row, group_axes))


def check_runs(tb_runs: str, run_ids) -> None:
    """ConfigError when ``engine.tb_runs`` names a run id that is not among ``run_ids`` (the runs of this scan),
    as --only does."""
    text = str(tb_runs).strip().lower()
    if text in ("auto", "none"):
        return
    ids = sorted(set(run_ids))
    bad = sorted(parse_runs(tb_runs) - set(ids))
    if bad:
        raise ConfigError(f"--tb-runs names run {bad[0]}, which is not in this scan (runs "
                          f"{_ranges(ids)}); choose ids among them, auto or none.")


def _ranges(ids: list[int]) -> str:
    """'0 to 7' for a contiguous list, else the first few ids."""
    if ids and ids[-1] - ids[0] + 1 == len(ids):
        return f"{ids[0]} to {ids[-1]}"
    return ", ".join(map(str, ids[:6])) + (", ..." if len(ids) > 6 else "")


def custom_scalars_layout(metrics) -> dict:
    """The Custom Scalars layout of the module docstring for the metrics a scan logs."""
    return {"run groups: median and 10-90% band across runs": {
        tag(k): ["Margin", [f"{tag(k)}/median", f"{tag(k)}/q10", f"{tag(k)}/q90"]] for k in logged(metrics)}}


def summary_writer_class():
    """tensorboardX.SummaryWriter. tensorboardX imports torch when it can, only to accept torch tensors (which
    jgrok never passes); that import takes seconds of CPU, so unless torch is already loaded it is kept out."""
    if "tensorboardX" not in sys.modules and "torch" not in sys.modules:
        sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
        try:
            import tensorboardX  # noqa: F401
        finally:
            del sys.modules["torch"]
    from tensorboardX import SummaryWriter

    return SummaryWriter


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.,=+ -]", "_", name)


def hparam_keys(rows: list[dict], group_axes: list[str]) -> list[str]:
    """Columns of the HPARAMS tab: task, the seeds (split and order seed only where they differ from the model
    seed), then the varying axes; constant settings are in config.yaml."""
    seeds = rungroup.seed_columns(rows)
    return ["task"] + seeds + [a for a in group_axes if a not in seeds]


class Logger:
    """Write a scan's TensorBoard logs; ``log`` is called by the engine after every chunk, ``close`` at the end."""

    def __init__(self, out: Path, rows: list[dict], tb_runs: str, group_axes: list[str]):
        self.dir = Path(out) / "tb"
        self.rows = rows
        by_id = {r["run"]: r for r in rows}
        self.run_name = lambda run: _safe(rungroup.run_name(by_id[run], rows, group_axes))  # noqa: E731
        self.hparams = hparam_keys(rows, group_axes) if rows else []
        self.groups: dict[str, list[int]] = {}  # TensorBoard run name -> run ids
        for r in rows:
            self.groups.setdefault(group_name(r, group_axes), []).append(r["run"])
        self.selected = select_runs(tb_runs, rows, self.groups)
        self.writers: dict = {}  # TensorBoard run name -> SummaryWriter, opened by the writer thread
        self.layout_written = False
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="jgrok-tb")
        self.futures = []
        self.busy_s = 0.0  # seconds the writer thread spent computing statistics and writing
        self.last_step = 0
        self.SummaryWriter = summary_writer_class()  # imported here, before training starts

    def log(self, steps: np.ndarray, values: dict, runs: list[int]) -> None:
        """steps [e]; values: metric -> [r, e] for the runs ``runs`` (one program's). Copies and returns at once."""
        self.futures.append(self.pool.submit(self._write, np.array(steps), {k: np.array(v) for k, v in values.items()},
                                             list(runs)))

    def _writer(self, name: str, first_step: int | None = None):
        """The writer of one TensorBoard run, opened at its first write. A resumed scan logs again from its last
        checkpoint: ``purge_step`` tells TensorBoard to drop what an earlier session wrote from that step on."""
        if name not in self.writers:
            self.writers[name] = self.SummaryWriter(str(self.dir / name), purge_step=first_step, max_queue=1000,
                                                    flush_secs=30)
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
        self.last_step = max([self.last_step] + steps)
        finite = {k: np.where(np.isfinite(v), v, np.nan) for k, v in values.items()}
        for name, members in self.groups.items():
            idx = [pos[r] for r in members if r in pos]
            if not idx:
                continue
            w = self._writer(name, steps[0])
            if not self.layout_written:
                w.add_custom_scalars(custom_scalars_layout(finite))
                self.layout_written = True
            for k in logged(finite):  # only the metrics a scan has (no accuracies without them)
                x_NxE = finite[k][idx]
                with warnings.catch_warnings():  # a step where every run has stopped gives NaN and is skipped
                    warnings.simplefilter("ignore", RuntimeWarning)
                    stats = {"mean": np.nanmean(x_NxE, axis=0)}
                    qs = np.nanquantile(x_NxE, [q for _, q in QUANTILES], axis=0)
                stats.update({s: qs[i] for i, (s, _) in enumerate(QUANTILES)})
                for stat, v_E in stats.items():
                    for step, v in zip(steps, v_E):
                        if np.isfinite(v):
                            w.add_scalar(f"{tag(k)}/{stat}", float(v), step)
            for k in HIST:
                if k not in finite:
                    continue
                for j, step in enumerate(steps):
                    x = finite[k][idx, j]
                    x = x[np.isfinite(x)]
                    if len(x):
                        w.add_histogram(f"spread/{k}", x, step)
        for run in self.selected:
            if run not in pos:
                continue
            w = self._writer(self.run_name(run), steps[0])
            for k in logged(finite):
                for step, v in zip(steps, finite[k][pos[run]]):
                    if np.isfinite(v):
                        w.add_scalar(tag(k), float(v), step)

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
            kind = kinds.of_summary(summary)
            rows = {r["run"]: r for r in self.rows}
            for run in self.selected:
                s = by_run.get(run)
                if s is None:
                    continue
                hp = {k: rows[run][k] for k in self.hparams}
                hp = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hp.items()}
                # the task kind's headline values first (steps to 99%; a regression's drop epoch and lowest val
                # loss), then the curves' last finite values: TensorBoard shows the first five
                final = {HEADLINE_TAGS.get(k, k): float(s[k]) for k in kind.headline if s.get(k, "") != ""}
                final.update({TAGS[k]: float(s[f"final_{k}"]) for k in HPARAM_FINALS if s.get(f"final_{k}", "") != ""})
                w = self._writer(self.run_name(run))
                for summ in hparams(hp, final):
                    w.file_writer.add_summary(summ)
                if STEPS_TAG in final:
                    w.add_scalar(STEPS_TAG, final[STEPS_TAG], self.last_step)
        for w in self.writers.values():
            w.close()

    def close_quietly(self) -> None:
        """Stop logging after a storage fault: wait for pending writes, close the event files, and swallow their
        errors (a full disk must end in the scan's one-sentence message, not in tracebacks at exit)."""
        for f in self.futures:
            try:
                f.result()
            except Exception:  # noqa: BLE001
                pass
        self.pool.shutdown()
        for w in self.writers.values():
            for fw in list(getattr(w, "all_writers", {}).values()) or [w]:
                try:
                    fw.close()
                except Exception:  # noqa: BLE001 - the flush hit the fault again; mark closed so atexit does not retry
                    ev = getattr(fw, "event_writer", None)
                    if ev is not None:
                        try:
                            ev._worker.stop()  # let its thread end before the queue goes away
                        except Exception:  # noqa: BLE001
                            pass
                        ev._closed = True
