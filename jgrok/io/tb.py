"""TensorBoard logs of a scan (tensorboardX) in OUT/tb/, written off the training path.

At every evaluation, per group of varying axes (``all`` when none vary): the mean, median, 10% and 90% quantiles
across runs of train/val loss and accuracy and weight norm (tags ``<group>/<metric>/<stat>``), histograms across
runs (``hist/<metric>``); a group is named like ``x_plus_y__wd_0.5`` (task, then each varying axis), and full per-run scalars for the runs chosen by ``engine.tb_runs`` (``run_<id>/<metric>``)
so that TensorBoard stays usable at thousands of runs. At the end, the hparams of those runs with their final
metrics. The engine hands over copies of each chunk's new evaluations; a single writer thread does the rest, so the
accelerator never waits for disk.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import numpy as np

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "weight_norm")
HIST = ("val_acc", "val_loss", "weight_norm")


def parse_runs(text: str) -> set[int]:
    ids: set[int] = set()
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


class Logger:
    def __init__(self, out: Path, rows: list[dict], tb_runs: str, group_axes: list[str]):
        from tensorboardX import SummaryWriter

        self.dir = Path(out) / "tb"
        self.writer = SummaryWriter(str(self.dir))
        self.rows = rows
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        chosen = parse_runs(tb_runs)
        self.selected = [r["run"] for r in rows if r["run"] in chosen]
        self.groups: dict[str, list[int]] = {}  # label -> run ids
        for r in rows:
            label = "__".join([r["task"]] + [f"{a}_{r[a]}" for a in group_axes])  # e.g. x_plus_y__wd_0.5
            self.groups.setdefault(label, []).append(r["run"])
        self.futures = []

    def log(self, steps: np.ndarray, values: dict, runs: list[int]) -> None:
        """steps [e]; values: metric -> [r, e] for the runs ``runs`` (one program's; copied, returns at once)."""
        self.futures.append(self.pool.submit(self._write, np.array(steps), {k: np.array(v) for k, v in values.items()},
                                             list(runs)))

    def _write(self, steps, values, runs):
        w = self.writer
        pos = {r: i for i, r in enumerate(runs)}
        for j, step in enumerate(steps):
            step = int(step)
            for label, members in self.groups.items():
                idx = [pos[r] for r in members if r in pos]
                if not idx:
                    continue
                for k in METRICS:
                    x = values[k][idx, j]
                    x = x[np.isfinite(x)]
                    if len(x) == 0:
                        continue
                    w.add_scalar(f"{label}/{k}/mean", float(x.mean()), step)
                    w.add_scalar(f"{label}/{k}/median", float(np.median(x)), step)
                    w.add_scalar(f"{label}/{k}/q10", float(np.quantile(x, 0.1)), step)
                    w.add_scalar(f"{label}/{k}/q90", float(np.quantile(x, 0.9)), step)
            for k in HIST:
                x = values[k][:, j]
                x = x[np.isfinite(x)]
                if len(x):
                    w.add_histogram(f"hist/{k}", x, step)
            for run in self.selected:
                if run not in pos:
                    continue
                for k in METRICS:
                    v = values[k][pos[run], j]
                    if np.isfinite(v):
                        w.add_scalar(f"run_{run}/{k}", float(v), step)

    def close(self, summary: list[dict] | None = None) -> None:
        for f in self.futures:
            f.result()
        if summary is not None:
            by_run = {int(s["run"]): s for s in summary}
            rows = {r["run"]: r for r in self.rows}
            for run in self.selected:
                r = rows[run]
                s = by_run.get(run)
                if s is None:
                    continue
                hp = {k: r[k] for k in ("task", "seed", "split_seed", "order_seed", "lr", "wd", "init", "init_scale",
                                        "optimizer", "filter")}
                final = {f"hparam/{k}": float(s[k]) for k in ("final_val_acc", "final_val_loss", "step_val_acc_99")}
                self.writer.add_hparams(hp, final, name=f"run_{r['run']}")
        self.writer.close()
        self.pool.shutdown()

    def close_quietly(self) -> None:
        """Stop logging after a storage fault: wait for pending writes, close the event files, and swallow their
        errors (a full disk must end in the scan's one-sentence message, not in tracebacks at exit)."""
        for f in self.futures:
            try:
                f.result()
            except Exception:  # noqa: BLE001
                pass
        self.pool.shutdown()
        for fw in list(getattr(self.writer, "all_writers", {}).values()) or [self.writer]:
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
