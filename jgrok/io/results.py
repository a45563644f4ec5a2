"""The results folder of a scan: what is written, and what every number in it means.

OUT/config.yaml      the resolved config; ``engine.wave_size`` and ``lanes`` hold the lane width W actually used
OUT/metrics.npz      ``run`` [R], ``eval_step`` [E], per-run curves [R, E] (train_loss, train_acc, val_loss,
                     val_acc, weight_norm, norm/<group>, optional train_full_*, and the progress measures of
                     ``train.measures``, jgrok.measures; ``fourier_spectrum`` is [R, E, F]), ``step_loss`` /
                     ``step_acc`` [R, S] per update. NaN after a run diverged.
OUT/summary.csv      one row per run (see SUMMARY_COLUMNS)
OUT/final_info.json  the AI-Scientist format, one block per run group (jgrok.rungroup label), each with a
                     "definitions" entry saying what its means and stderrs are

Definitions (per run, from the curves at eval steps):
  step_train_acc_99  first eval step with train acc > 0.99 (train acc = mean over the updates since the
                     previous eval); the step budget if never
  step_val_acc_99    first eval step with val acc > 0.99 (full validation split); the step budget if never
  grok_delay         step_val_acc_99 - step_train_acc_99
  reached_*_99       1 if the threshold was crossed within the budget, else 0
  step_*_acc_<L>, reached_*_<L>   the same for every other threshold of train.thresholds (``--threshold``), e.g.
                     step_val_acc_95 for 0.95 (L = the threshold in percent, see jgrok.config.threshold_label);
                     written after the fixed columns, and step_val_acc_<L> also into final_info.json
  final_*            the value at the last evaluation with a finite value (for a diverged run: the last
                     evaluation before it diverged)
  diverged_step      0-based index of the update whose loss or parameters were not finite; empty if none
  n_train            the run's training-set size, floor(N x fraction) for an operation table (its training set
                     is the first n_train pairs of its split seed's permutation); the task's for a regression
  stderr (final_info.json) = population std / n, as the AI-Scientist template computes it; means and stderrs are
                     over the n runs that have a value (a run that diverged before its first evaluation has
                     none: null in final_info_dict)

The task kind (jgrok.tasks.kinds) says which columns a scan's summary has. A regression scan has no accuracies:
metrics.npz holds no train_acc / val_acc / step_acc (it holds ``updates_per_epoch`` [], ceil(n_train /
batch_size), instead), and summary.csv has REGRESSION_COLUMNS instead, with
  drop_step          eval step (update count) of the sudden val-loss drop found by jgrok.tasks.drop.detect
                     (its module docstring defines it); empty if the run has none
  drop_epoch         drop_step / updates per epoch (ceil(n_train / batch_size)); empty if none
  dropped            1 if a drop was found, else 0
  drop_factor        how many times the smoothed val loss fell over the detector's window; empty if none
  min_val_loss       the smallest val loss of any evaluation
  (losses are mean squared errors of log2 h)
  stopped_step       updates a run did before its stop rule (train.stop_when, train.patience) fired: the step
                     of the evaluation that met the rule for the patience-th consecutive time; -1 if never.
                     Its curves end there, so final_* are the values at that evaluation
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from jgrok import rungroup
from jgrok.tasks import kinds
from jgrok.tasks.kinds import THRESHOLD, first_step_above, last_finite  # noqa: F401 - read through this module

W_NOTE = ("results are bit-identical for the same config and W (in any lane, beside any neighbours, re-trained "
          "alone with --only, or resumed); at another W they agree only at rounding level per update, and "
          "rounding differences can grow over many updates.")
FINAL_KEYS = kinds.CLASSIFY.final_keys
REGRESSION_FINAL_KEYS = kinds.REGRESS.final_keys
SUMMARY_COLUMNS = ("run",) + rungroup.COLUMNS + ("n_train",) + kinds.CLASSIFY.columns
REGRESSION_COLUMNS = ("run",) + rungroup.COLUMNS + ("n_train",) + kinds.REGRESS.columns


def is_regression(summary: list[dict]) -> bool:
    return not kinds.of_summary(summary).has_accuracy


def columns(kind: kinds.TaskKind, summary: list[dict]) -> tuple[str, ...]:
    """summary.csv's columns for a scan of this task kind: run, the run-group columns, the kind's own columns and
    the extra-threshold columns its rows carry."""
    return ("run",) + rungroup.COLUMNS + ("n_train",) * bool(summary and "n_train" in summary[0]) + kind.columns \
        + threshold_columns(summary)


def extra_thresholds(thresholds) -> list[tuple[float, str]]:
    """(threshold, label) of every threshold besides THRESHOLD (whose columns are always written)."""
    from jgrok.config import threshold_label

    return [(t, threshold_label(t)) for t in thresholds if t != THRESHOLD]


def threshold_columns(summary: list[dict]) -> tuple[str, ...]:
    """The extra-threshold columns present in summary rows (in their order)."""
    return tuple(k for k in (summary[0] if summary else {}) if k not in SUMMARY_COLUMNS
                 and k.startswith(("step_train_acc_", "step_val_acc_", "reached_train_", "reached_val_")))


def summarize(rows: list[dict], metrics: dict, eval_step: np.ndarray, budget: int, lanes: int,
              diverged_step: np.ndarray, stopped_step: np.ndarray | None = None, thresholds=(),
              kind: kinds.TaskKind = kinds.CLASSIFY, per_epoch: int = 1) -> list[dict]:
    """One summary row per run: its run-group columns, then the task kind's columns (definitions in the module
    docstring); ``per_epoch``: updates per epoch, for a kind that counts epochs."""
    values = kind.summary_values(metrics, eval_step, budget=budget, per_epoch=per_epoch,
                                 thresholds=extra_thresholds(thresholds))
    out = []
    for i, r in enumerate(rows):
        d = {"run": r["run"], **rungroup.columns(r), **({"n_train": r["n_train"]} if "n_train" in r else {}),
             "lanes": lanes, **values[i]}
        d["diverged_step"] = int(diverged_step[i]) if diverged_step[i] >= 0 else ""
        if "stopped_step" in kind.columns:
            d["stopped_step"] = -1 if stopped_step is None else int(stopped_step[i])
        out.append(d)
    return out


def group_label(row: dict, group_axes: list[str]) -> str:
    """The final_info.json key of a run: its run group's label (jgrok.rungroup), e.g. 'x_div_y wd=0.1'."""
    return rungroup.label(row, group_axes)


def group_axes(rows: list[dict]) -> list[str]:
    """Axes that vary between runs, other than task and the seeds (which are replicates)."""
    return rungroup.axes(rows)


# what final_info.json's numbers are, written into every block of it (readers of the template's format take
# "means", "stderrs" and "final_info_dict" and ignore this key)
FINAL_INFO_DEFINITIONS = {
    "stderrs": "population std / n over the runs with a value: the AI-Scientist template's formula, kept for its "
               "readers; it is not the standard error (sample std / sqrt(n)) that report.md, the plots and the "
               "printout use (jgrok.stats)",
    "step_val_acc_99": "first eval step with val acc > 0.99; never-reached runs counted at the budget (so its mean "
                       "is a lower bound when some never reached it; report.md has the Kaplan-Meier median)",
}


def final_info(summary: list[dict]) -> dict:
    """``{run group: {"means": {k_mean}, "stderrs": {k_stderr}, "final_info_dict": {k: [per run]},
    "definitions": FINAL_INFO_DEFINITIONS}}``."""
    out = {}
    keys = kinds.of_summary(summary).final_keys
    keys += tuple(k for k in threshold_columns(summary) if k.startswith("step_val_acc_"))
    for label, members in by_group(summary).items():
        d = {k: [_num(m[k]) for m in members] for k in keys}
        # empty cells (e.g. drop_epoch of a run without a drop) are None here and left out of mean and stderr
        present = {k: [x for x in v if x is not None] for k, v in d.items()}
        out[label] = {
            "means": {f"{k}_mean": _num(np.mean(v)) if v else None for k, v in present.items()},
            "stderrs": {f"{k}_stderr": _num(np.std(v) / len(v)) if v else None for k, v in present.items()},
            "final_info_dict": d,
            "definitions": {k: v for k, v in FINAL_INFO_DEFINITIONS.items() if k == "stderrs" or k in keys},
        }
    return out


def _num(x):
    if isinstance(x, str) and x == "":
        return None
    x = float(x)
    return None if math.isnan(x) else (int(x) if x.is_integer() and abs(x) < 2**53 else x)


def write(out: Path, cfg_text: str, rows: list[dict], metrics: dict, eval_step: np.ndarray, step_loss: np.ndarray,
          step_acc: np.ndarray, summary: list[dict]) -> None:
    """Write the results files, each atomically (a temporary file renamed into place), summary.csv last: a folder
    with summary.csv holds complete results, one without it is resumable from its checkpoints."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_text(out / "config.yaml", cfg_text)
    arrays = {"run": np.array([r["run"] for r in rows]), "eval_step": eval_step, "step_loss": step_loss,
              **({} if step_acc is None else {"step_acc": step_acc}), **metrics}
    _atomic(out / "metrics.npz", lambda f: np.savez(f, **arrays))
    atomic_text(out / "final_info.json", json.dumps(final_info(summary), indent=1))
    write_summary(out / "summary.csv", summary)


def write_summary(path: Path, summary: list[dict]) -> None:
    names = columns(kinds.of_summary(summary), summary)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=names)
    w.writeheader()
    for r in summary:
        w.writerow({k: r[k] for k in names})
    atomic_text(path, buf.getvalue())


def atomic_text(path: Path, text: str) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def read_summary(path: Path) -> list[dict]:
    """summary.csv as csv gives it (strings; '' where empty), for copying it on; readers want ``parse_summary``."""
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def parse_value(v):
    """A summary.csv cell with its type: '' -> None, 'True'/'False' -> bool, then int, float, or the string itself.
    Values that are not strings are returned as they are, so parsing twice changes nothing."""
    if not isinstance(v, str):
        return v
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v


def parse_summary(rows: list[dict]) -> list[dict]:
    """Summary rows with every cell typed by ``parse_value`` (the one parser every reader of summary.csv uses)."""
    return [{k: parse_value(v) for k, v in r.items()} for r in rows]


def npz_rows(path, key: str, idx) -> np.ndarray:
    """Rows ``idx`` of one array in an .npz without reading the rest (memory-mapped when stored uncompressed,
    as np.savez writes it); for step_loss [R, S] of a large scan this reads a few rows instead of gigabytes."""
    idx = np.asarray(idx, int)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with np.load(path) as z:
                return z[key][idx]
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            header_len = f.tell()
    with open(path, "rb") as f:  # the member's data starts after its local file header (30 bytes + name + extra)
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    start = info.header_offset + 30 + name_len + extra_len + header_len
    arr = np.memmap(path, dtype=dtype, mode="r", offset=start, shape=shape, order="F" if fortran else "C")
    return np.array(arr[idx])


def _atomic(path: Path, write_fn) -> None:
    """Write through ``path.tmp`` and rename: a reader (or a process killed midway) sees the old file or the new
    one, never half of one; a failed write removes its temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write_fn(f)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def by_group(summary: list[dict]) -> dict[str, list[dict]]:
    """Runs of a summary by run-group label (jgrok.rungroup.by_label's order), in run order within each."""
    return {label: [summary[i] for i in idx] for label, idx in rungroup.by_label(summary).items()}


def merge(done: list) -> tuple[list[dict], dict, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Concatenate the programs' results in run-id order (curves of other shapes padded: ``stack``)."""
    rows = [r for d in done for r in d.rows]
    order = np.argsort([r["run"] for r in rows], kind="stable")
    metrics = stack([d.metrics for d in done], [len(d.rows) for d in done], order)
    cat = lambda xs: np.concatenate(xs, axis=0)[order]  # noqa: E731
    lanes = done[0].lanes
    stopped = cat([d.stopped_step if d.stopped_step is not None else np.full(len(d.rows), -1, np.int32)
                   for d in done])
    steps = {tuple(d.eval_step) for d in done}
    assert len(steps) == 1, "every program of a scan evaluates at the same steps (jgrok.grid.programs)"
    return ([rows[i] for i in order], metrics, done[0].eval_step, cat([d.step_loss for d in done]),
            cat([d.step_acc for d in done]), cat([d.diverged_step for d in done]), lanes, stopped)


# Padding. Programs of other shapes (jgrok.axes' shape axes: another p, d_model or n_layers) write curves of other
# shapes: fourier_spectrum [R, E, F] has F = p // 2 frequencies, a one-layer model has no norm/block1_* curves. In
# metrics.npz they lie side by side in one array each, padded with NaN at the end of every axis after the runs
# axis, and ``pad/<name>`` (int32 [R, ndim - 1]) holds each run's own extent of those axes (0 where the run's model
# has no such curve); an array without a ``pad/`` key is unpadded. ``own`` cuts a run's own values out again.
PAD = "pad/"


def stack(pieces: list[dict], sizes: list[int], order) -> dict:
    """The per-run arrays of several parts of a scan (each {name: [R_i, ...]}, ``sizes`` their R_i) as one array
    each, rows in ``order``: padded with NaN where the parts' shapes differ or a part lacks the array, with its
    ``pad/`` key (see PAD); a part's own ``pad/`` keys (a shard or look that was padded already) carry over."""
    names = list(dict.fromkeys(k for p in pieces for k in p if not k.startswith(PAD)))
    out = {}
    for k in names:
        have = [p[k] for p in pieces if k in p]
        tails = {a.shape[1:] for a in have}
        if len(have) == len(pieces) and len(tails) == 1 and not any(PAD + k in p for p in pieces):
            out[k] = np.concatenate(have, axis=0)[order]
            continue
        ndim = have[0].ndim - 1
        tail = tuple(max(t[d] for t in tails) for d in range(ndim))
        dtype = np.result_type(have[0].dtype, np.float32)  # NaN needs a float
        arrays, extents = [], []
        for p, n in zip(pieces, sizes):
            a = np.full((n,) + tail, np.nan, dtype)
            if k in p:
                a[(slice(None),) + tuple(slice(0, m) for m in p[k].shape[1:])] = p[k]
                ext = p[PAD + k] if PAD + k in p else np.tile(np.array(p[k].shape[1:], np.int32), (n, 1))
            else:
                ext = np.zeros((n, ndim), np.int32)
            arrays.append(a)
            extents.append(np.asarray(ext, np.int32).reshape(n, ndim))
        out[k] = np.concatenate(arrays, axis=0)[order]
        out[PAD + k] = np.concatenate(extents, axis=0)[order]
    return out


def own(arrays: dict, name: str, i: int) -> np.ndarray:
    """Row ``i`` of the array ``name`` of metrics.npz (``arrays``: its arrays) without its padding (see PAD): the
    run's own values, e.g. its own F frequencies of ``fourier_spectrum``; empty where its model has no such curve."""
    row = arrays[name][i]
    if PAD + name not in arrays:
        return row
    return row[tuple(slice(0, int(m)) for m in arrays[PAD + name][i])]


def save_scan(out: Path, cfg_text: str, done: list) -> list[dict]:
    """Write metrics.npz, summary.csv, final_info.json (and config.yaml) for finished programs."""
    from jgrok import config as config_mod
    from jgrok import train

    n_train = {r["run"]: train.row_n_train(d.prog, r) for d in done for r in d.rows}
    rows, metrics, eval_step, step_loss, step_acc, diverged, lanes, stopped = merge(done)
    rows = [r | {"n_train": n_train[r["run"]]} for r in rows]  # summary.csv's n_train: each run's own
    prog = done[0].prog

    kind = prog.kind
    if not kind.has_accuracy:  # leave the all-NaN accuracy arrays out
        metrics = {k: v for k, v in metrics.items() if not k.endswith("_acc")}
        step_acc = None
    per_epoch = config_mod.updates_per_epoch(prog.cfg.train, prog.n_train) if kind.epochs else 1
    summary = summarize(rows, metrics, eval_step, prog.cfg.train.steps, lanes, diverged, stopped,
                        config_mod.parse_thresholds(prog.cfg.train.thresholds), kind, per_epoch)
    if kind.epochs:
        metrics["updates_per_epoch"] = np.array(per_epoch)
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
    cfg = dict(cfgs[0])
    cfg.pop("only", None)
    cfg.pop("process", None)
    lanes = sorted({c.get("lanes") for c in cfgs})
    cfg["lanes"] = lanes[0] if len(lanes) == 1 else lanes
    merge_parts(out, shards, yaml.safe_dump(cfg, sort_keys=False))
    return n


def merge_parts(out: Path, parts: list[Path], cfg_text: str) -> None:
    """Merge finished results folders that each hold some runs of one scan (a multi-process scan's shards, a
    sequential scan's looks) into OUT's summary.csv, metrics.npz and final_info.json, in run-id order, with
    ``cfg_text`` as OUT/config.yaml."""
    summary = [r for p in parts for r in read_summary(p / "summary.csv")]
    order = np.argsort([int(r["run"]) for r in summary], kind="stable")
    summary = [summary[i] for i in order]
    pieces = [dict(np.load(p / "metrics.npz")) for p in parts]
    shared = {k: v for k, v in pieces[0].items() if k == "eval_step" or v.ndim == 0}  # eval steps, updates per epoch
    arrays = {**shared, **stack([{k: v for k, v in d.items() if k not in shared} for d in pieces],
                                [len(d["run"]) for d in pieces], order)}
    # each file atomically, summary.csv last: as for a single process, a folder with summary.csv is complete
    atomic_text(out / "config.yaml", cfg_text)
    _atomic(out / "metrics.npz", lambda f: np.savez(f, **arrays))
    atomic_text(out / "final_info.json", json.dumps(final_info(summary), indent=1))
    write_summary(out / "summary.csv", summary)
