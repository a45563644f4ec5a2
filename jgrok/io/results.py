"""The results folder of a scan: what is written, and what every number in it means.

OUT/config.yaml      the resolved config; ``engine.wave_size`` and ``lanes`` hold the lane width W actually used
OUT/metrics.npz      ``run`` [R], ``eval_step`` [E], per-run curves [R, E] (train_loss, train_acc, val_loss,
                     val_acc, weight_norm, norm/<group>, optional train_full_*), ``step_loss`` / ``step_acc``
                     [R, S] per update. NaN after a run diverged.
OUT/summary.csv      one row per run (see SUMMARY_COLUMNS)
OUT/final_info.json  the AI-Scientist format, one block per task and group of varying axes

Definitions (per run, from the curves at eval steps):
  step_train_acc_99  first eval step with train acc > 0.99 (train acc = mean over the updates since the
                     previous eval); the step budget if never
  step_val_acc_99    first eval step with val acc > 0.99 (full validation split); the step budget if never
  grok_delay         step_val_acc_99 - step_train_acc_99
  reached_*_99       1 if the threshold was crossed within the budget, else 0
  final_*            the value at the last evaluation with a finite value (for a diverged run: the last
                     evaluation before it diverged)
  diverged_step      0-based index of the update whose loss or parameters were not finite; empty if none
  stopped_step       updates a run did before its stop rule (train.stop_when, train.patience) fired: the step
                     of the evaluation that met the rule for the patience-th consecutive time; -1 if never.
                     Its curves end there, so final_* are the values at that evaluation
  stderr (final_info.json) = population std / n, as the AI-Scientist template computes it
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from jgrok import grid as grid_mod

THRESHOLD = 0.99
FINAL_KEYS = ("final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "step_val_acc_99")
SUMMARY_COLUMNS = ("run",) + grid_mod.COLUMNS + (
    "lanes", "step_train_acc_99", "step_val_acc_99", "grok_delay", "reached_train_99", "reached_val_99",
    "final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "final_weight_norm", "diverged_step",
    "stopped_step")


def first_step_above(curve_RxE: np.ndarray, eval_step_E: np.ndarray, budget: int, threshold: float = THRESHOLD):
    """(steps[R], reached[R]): first eval step whose value is > threshold; the budget where never."""
    above = np.nan_to_num(curve_RxE, nan=-np.inf) > threshold
    reached = above.any(axis=1)
    first = np.where(reached, eval_step_E[np.argmax(above, axis=1)], budget)
    return first.astype(np.int64), reached


def last_finite(curve_RxE: np.ndarray) -> np.ndarray:
    """The last finite value of each row (NaN if none)."""
    finite = np.isfinite(curve_RxE)
    idx = curve_RxE.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    vals = curve_RxE[np.arange(len(curve_RxE)), idx]
    return np.where(finite.any(axis=1), vals, np.nan)


def summarize(rows: list[dict], metrics: dict, eval_step: np.ndarray, budget: int, lanes: int,
              diverged_step: np.ndarray, stopped_step: np.ndarray | None = None) -> list[dict]:
    st, rt = first_step_above(metrics["train_acc"], eval_step, budget)
    sv, rv = first_step_above(metrics["val_acc"], eval_step, budget)
    out = []
    finals = {k: last_finite(metrics[k]) for k in ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm")}
    for i, r in enumerate(rows):
        d = {c: r[c] for c in ("run",) + grid_mod.COLUMNS}
        d.update(lanes=lanes, step_train_acc_99=int(st[i]), step_val_acc_99=int(sv[i]),
                 grok_delay=int(sv[i] - st[i]), reached_train_99=int(rt[i]), reached_val_99=int(rv[i]))
        for k, v in finals.items():
            d[f"final_{k}"] = float(v[i])
        d["diverged_step"] = int(diverged_step[i]) if diverged_step[i] >= 0 else ""
        d["stopped_step"] = -1 if stopped_step is None else int(stopped_step[i])
        out.append(d)
    return out


def group_label(row: dict, group_axes: list[str]) -> str:
    """The final_info.json key of a run: its task, then the varying non-seed axes, e.g. 'x_div_y|wd=0.1'."""
    parts = [row["task"]] + [f"{a}={row[a]}" for a in group_axes]
    return "|".join(parts)


def group_axes(rows: list[dict]) -> list[str]:
    """Axes that vary between runs, other than task and the seeds (which are replicates)."""
    return [a for a in grid_mod.varying(rows) if a not in ("task", "seed", "split_seed", "order_seed")]


def final_info(summary: list[dict]) -> dict:
    """``{group: {"means": {k_mean}, "stderrs": {k_stderr}, "final_info_dict": {k: [per run]}}}``."""
    axes = group_axes(summary)
    groups: dict[str, list[dict]] = {}
    for r in summary:
        groups.setdefault(group_label(r, axes), []).append(r)
    out = {}
    for label, members in groups.items():
        d = {k: [_num(m[k]) for m in members] for k in FINAL_KEYS}
        out[label] = {
            "means": {f"{k}_mean": _num(np.mean(v)) for k, v in d.items()},
            "stderrs": {f"{k}_stderr": _num(np.std(v) / len(v)) for k, v in d.items()},
            "final_info_dict": d,
        }
    return out


def _num(x):
    x = float(x)
    return None if math.isnan(x) else (int(x) if x.is_integer() and abs(x) < 2**53 else x)


def write(out: Path, cfg_text: str, rows: list[dict], metrics: dict, eval_step: np.ndarray, step_loss: np.ndarray,
          step_acc: np.ndarray, summary: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(cfg_text)
    arrays = {"run": np.array([r["run"] for r in rows]), "eval_step": eval_step, "step_loss": step_loss,
              "step_acc": step_acc, **metrics}
    _atomic(out / "metrics.npz", lambda f: np.savez(f, **arrays))
    write_summary(out / "summary.csv", summary)
    (out / "final_info.json").write_text(json.dumps(final_info(summary), indent=1))


def write_summary(path: Path, summary: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_COLUMNS)
        w.writeheader()
        for r in summary:
            w.writerow({k: r[k] for k in SUMMARY_COLUMNS})


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def _atomic(path: Path, write_fn) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write_fn(f)
    tmp.replace(path)


def distribution_lines(summary: list[dict], budget: int, top: int = 5) -> list[str]:
    """The end-of-scan report: per group, quantiles of steps to 99% val acc and the share that reached it."""
    axes = group_axes(summary)
    groups: dict[str, list[dict]] = {}
    for r in summary:
        groups.setdefault(group_label(r, axes), []).append(r)
    lines = []
    for label, members in groups.items():
        steps = np.array([m["step_val_acc_99"] for m in members if int(m["reached_val_99"])], float)
        n = len(members)
        div = sum(1 for m in members if m["diverged_step"] != "")
        head = f"{label}: {len(steps)}/{n} runs reached 99% val acc ({100 * len(steps) / n:.1f}%)"
        if div:
            head += f", {div} diverged"
        lines.append(head)
        if len(steps):
            q = np.percentile(steps, [10, 25, 50, 75, 90])
            lines.append("  steps to 99% val acc among them: p10 {:.0f}  p25 {:.0f}  median {:.0f}  p75 {:.0f}  "
                         "p90 {:.0f}  (budget {})".format(*q, budget))
            fastest = sorted(members, key=lambda m: (m["step_val_acc_99"], m["run"]))[:top]
            lines.append("  fastest runs: " + ", ".join(
                f"run {m['run']} (seed {m['seed']}) at {m['step_val_acc_99']}" for m in fastest
                if int(m["reached_val_99"])))
    return lines


def merge(done: list) -> tuple[list[dict], dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Concatenate the programs' results in run-id order."""
    rows = [r for d in done for r in d.rows]
    order = np.argsort([r["run"] for r in rows], kind="stable")
    keys = sorted(set.intersection(*(set(d.metrics) for d in done)))
    cat = lambda xs: np.concatenate(xs, axis=0)[order]  # noqa: E731
    metrics = {k: cat([d.metrics[k] for d in done]) for k in keys}
    lanes = done[0].lanes
    stopped = cat([d.stopped_step if d.stopped_step is not None else np.full(len(d.rows), -1, np.int32)
                   for d in done])
    return ([rows[i] for i in order], metrics, done[0].eval_step, cat([d.step_loss for d in done]),
            cat([d.step_acc for d in done]), cat([d.diverged_step for d in done]), lanes, stopped)


def save_scan(out: Path, cfg_text: str, done: list) -> list[dict]:
    """Write metrics.npz, summary.csv, final_info.json (and config.yaml) for finished programs."""
    rows, metrics, eval_step, step_loss, step_acc, diverged, lanes, stopped = merge(done)
    budget = done[0].prog.cfg.train.steps
    summary = summarize(rows, metrics, eval_step, budget, lanes, diverged, stopped)
    write(out, cfg_text, rows, metrics, eval_step, step_loss, step_acc, summary)
    return summary


def merge_shards(out: Path) -> int:
    """Merge OUT/shards/process_<i>/ (the results of a multi-process scan, one share of the runs each) into
    OUT/summary.csv, OUT/metrics.npz, OUT/final_info.json and OUT/config.yaml, in run-id order. Returns the
    number of shards; ConfigError if one is missing or unfinished."""
    import yaml

    from jgrok.errors import ConfigError

    out = Path(out)
    shards = sorted((out / "shards").glob("process_*"), key=lambda p: int(p.name.split("_")[1]))
    if not shards:
        raise ConfigError(f"{out / 'shards'} holds no process_<i> folders; pass the --out folder of a scan.")
    cfgs = [yaml.safe_load((p / "config.yaml").read_text()) if (p / "config.yaml").is_file() else None
            for p in shards]
    n = int(str(cfgs[0].get("process", "0/1")).split("/")[1]) if cfgs[0] else len(shards)
    names = {p.name for p in shards}
    for i in range(n):
        p = out / "shards" / f"process_{i}"
        if f"process_{i}" not in names or not (p / "summary.csv").is_file() or not (p / "metrics.npz").is_file():
            raise ConfigError(f"Shard {p} is missing or unfinished; run (or --resume) process {i} of {n} first.")
    summary = [r for p in shards for r in read_summary(p / "summary.csv")]
    order = np.argsort([int(r["run"]) for r in summary], kind="stable")
    summary = [summary[i] for i in order]
    parts = [dict(np.load(p / "metrics.npz")) for p in shards]
    arrays = {}
    for k in parts[0]:
        if k == "eval_step":
            arrays[k] = parts[0][k]
        else:
            arrays[k] = np.concatenate([d[k] for d in parts], axis=0)[order]
    _atomic(out / "metrics.npz", lambda f: np.savez(f, **arrays))
    write_summary(out / "summary.csv", summary)
    (out / "final_info.json").write_text(json.dumps(final_info(summary), indent=1))
    cfg = dict(cfgs[0])
    cfg.pop("only", None)
    cfg.pop("process", None)
    lanes = sorted({c.get("lanes") for c in cfgs})
    cfg["lanes"] = lanes[0] if len(lanes) == 1 else lanes
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return n
