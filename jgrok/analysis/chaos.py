"""The chaos floor: how much of the seed-to-seed spread of grokking time is the training's own sensitivity.

Chosen runs are re-trained K + 1 times: perturbation 0 is the run itself (it must reproduce the scan's number), and
perturbation k = 1 .. K moves every initial parameter by one ulp up or down with a k-seeded sign pattern
(``jgrok.init.perturb_ulp``), everything else unchanged. With y = ln(steps to 99% val acc), censored at the budget:

  within-seed SD    sqrt of the mean over chosen runs of the sample variance of y over their K + 1 copies
  between-seed SD   sample SD of y over all runs of the chosen runs' group in the scan
  chaos share       within-seed variance / between-seed variance: the share of the seed-to-seed variance that
                    rounding-level noise alone produces (near 1: the seed hardly matters beyond chaos)
  super survival    for a super run of the scan (steps <= factor x the group's reference median, see
                    jgrok.analysis.seeds), the share of its perturbed copies (k >= 1) that are super too; below 1/2
                    the run's speed is not a property of its seed, and the report says so
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CHAOS_COLUMNS = ("source_run", "perturb", "seed", "split_seed", "order_seed", "step_val_acc_99", "reached_val_99")


def chaos_rows(rows: list[dict], runs: list[int], K: int) -> list[dict]:
    """Rows for perturbations 0..K of each chosen run; ``run`` renumbered, ``source_run`` the scan's id."""
    by_id = {r["run"]: r for r in rows}
    out = []
    for rid in runs:
        for k in range(K + 1):
            out.append(dict(by_id[rid], run=len(out), source_run=rid, perturb=k))
    return out


def write(path: Path, rows: list[dict], steps, reached) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CHAOS_COLUMNS)
        w.writeheader()
        for r, s, ok in zip(rows, steps, reached):
            w.writerow({**{k: r[k] for k in CHAOS_COLUMNS[:5]}, "step_val_acc_99": int(s), "reached_val_99": int(ok)})


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: int(v) for k, v in r.items()} for r in csv.DictReader(f)]


def summarise(chaos: list[dict], scan_steps: dict, group_steps: np.ndarray, threshold: float) -> dict:
    """chaos: rows of chaos.csv; scan_steps: {run id: steps in the scan}; group_steps: steps of every run of the
    group in the scan; threshold: the super-run threshold (factor x reference median) of that group."""
    by_run: dict[int, dict[int, int]] = {}
    for r in chaos:
        by_run.setdefault(r["source_run"], {})[r["perturb"]] = r["step_val_acc_99"]
    per = []
    variances = []
    for rid, ks in by_run.items():
        steps = np.array([ks[k] for k in sorted(ks)], float)
        y = np.log(steps)
        pert = np.array([ks[k] for k in sorted(ks) if k > 0], float)
        orig = scan_steps.get(rid)
        is_super = orig is not None and orig <= threshold
        survival = float(np.mean(pert <= threshold)) if len(pert) else np.nan
        variances.append(np.var(y, ddof=1) if len(y) > 1 else np.nan)
        per.append(dict(run=rid, scan_steps=orig, reproduced=(0 in ks and ks[0] == orig), k0=ks.get(0),
                        median=float(np.median(pert)) if len(pert) else np.nan,
                        lo=float(pert.min()) if len(pert) else np.nan, hi=float(pert.max()) if len(pert) else np.nan,
                        sd_log=float(np.std(y, ddof=1)) if len(y) > 1 else np.nan, is_super=is_super,
                        survival=survival, survives=(survival >= 0.5) if is_super else None))
    within = float(np.sqrt(np.nanmean(variances))) if variances else np.nan
    between = float(np.std(np.log(group_steps), ddof=1)) if len(group_steps) > 1 else np.nan
    return dict(per_run=per, within_sd=within, between_sd=between,
                chaos_share=within ** 2 / between ** 2 if between > 0 else np.nan,
                K=max((len(v) - 1 for v in by_run.values()), default=0))


def auto_runs(steps: np.ndarray, runs: np.ndarray, is_super: np.ndarray, n: int = 4) -> list[int]:
    """Up to n super runs (fastest first) and the n runs closest to the median steps."""
    order = np.lexsort((runs, steps))
    fast = [int(runs[i]) for i in order if is_super[i]][:n]
    med = np.median(steps)
    near = np.lexsort((runs, np.abs(steps - med)))
    mid = [int(runs[i]) for i in near if int(runs[i]) not in fast][:n]
    return fast + mid
