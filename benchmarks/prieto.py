"""Fidelity benchmark of the prieto_2025 preset (Prieto et al. 2025, Figure 1): train the scan, then summarise it
per variant as distributions over seeds, with the device, the date and the cost.

    python benchmarks/prieto.py --out /tmp/prieto --label "2-core CPU, shared" -- --seeds 0:16 --steps 300
    python benchmarks/prieto.py --out /tmp/prieto --summarise-only      # an existing results folder

Everything after ``--`` goes to ``python -m jgrok.scan --config prieto_2025``. Writes
benchmarks/results/prieto_<device>_<date>.json. Numbers per variant (over its runs = seeds):
  reached_val_99      runs whose val acc passed 0.99 within the budget
  steps_val_99        median of the first eval step with val acc > 0.99 among them
  steps_train_99      median of the first eval step with train acc > 0.99 (train acc = the full-batch accuracy
                      before each update, averaged over the updates since the previous evaluation), all runs
  final_train_acc / final_val_acc / final_train_loss / final_weight_norm: median, p10, p90 of summary.csv's
                      final values (the last evaluation)
  final_sc            softmax collapse at the final parameters: the share of training pairs whose float32 softmax
                      probability of the correct class is exactly 1 (computed here from the restored parameters,
                      whatever train.softmax_precision the run trained with); median, p10, p90
  final_logit_max     largest |logit| over the training pairs at the final parameters; median, p10, p90
  process_cpu_s, wall_s: process CPU time and wall-clock time of the scan (compilation included)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np


def _q(x) -> dict:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not len(x):
        return {"median": None, "p10": None, "p90": None}
    p10, med, p90 = np.percentile(x, [10, 50, 90])
    return {"median": float(med), "p10": float(p10), "p90": float(p90)}


def final_logit_stats(out: Path) -> dict[int, tuple[float, float]]:
    """{run: (softmax collapse share, largest |logit|)} on the training pairs at each run's final parameters."""
    import jax
    import jax.numpy as jnp

    import jgrok
    from jgrok import grid, train

    scan = jgrok.open_scan(out)
    res = {}
    for prog, table, members in grid.programs(scan.config, scan.runs):
        init_fn, _ = prog.compiled(1)
        perms = np.asarray(init_fn(jax.tree.map(np.asarray, grid.hyper(prog, members))).perm)
        for i, r in enumerate(members):
            params, = scan.restore([r["run"]])
            idx = perms[i][: prog.n_train]
            x, y = table.inputs[idx], table.targets[idx]
            with jax.enable_x64(train.needs_x64(prog.cfg)):
                logits = np.asarray(train.apply(prog, params, jnp.asarray(x)), np.float64)
            p_y = np.asarray(jax.nn.softmax(jnp.asarray(logits, jnp.float32), axis=-1))[np.arange(len(y)), y]
            res[r["run"]] = (float(np.mean(p_y == 1.0)), float(np.abs(logits).max()))
    return res


def summarise(out: Path) -> dict:
    import jgrok

    rows = jgrok.open_scan(out).summary
    stats = final_logit_stats(out)
    per = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        m = [r for r in rows if r["variant"] == v]
        reached = [int(r["step_val_acc_99"]) for r in m if int(r["reached_val_99"])]
        per[v] = {
            "runs": len(m),
            "reached_val_99": len(reached),
            "steps_val_99": float(np.median(reached)) if reached else None,
            "steps_train_99": float(np.median([int(r["step_train_acc_99"]) for r in m])),
            "reached_train_99": sum(int(r["reached_train_99"]) for r in m),
            **{k: _q([float(r[k]) for r in m]) for k in ("final_train_acc", "final_val_acc", "final_train_loss",
                                                         "final_weight_norm")},
            "final_sc": _q([stats[int(r["run"])][0] for r in m]),
            "final_logit_max": _q([stats[int(r["run"])][1] for r in m]),
        }
    return per


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--label", default="", help="device words for the record, e.g. '2-core CPU, AMD EPYC, shared'")
    p.add_argument("--summarise-only", action="store_true")
    p.add_argument("scan_args", nargs="*")
    a = p.parse_args(argv)
    out = Path(a.out)
    record = {"date": datetime.date.today().isoformat(), "device": a.label, "scan_args": a.scan_args}
    if not a.summarise_only:
        from jgrok import scan

        t0, c0 = time.perf_counter(), time.process_time()
        rc = scan.main(["--config", "prieto_2025", "--out", str(out), "--overwrite", "--no-tensorboard",
                        *a.scan_args], hard_exit=True)  # a second Ctrl-C ends this script at once
        record.update(wall_s=time.perf_counter() - t0, process_cpu_s=time.process_time() - c0, rc=rc)
        if rc:
            return rc
    record["variants"] = summarise(out)
    import jgrok

    cfg = jgrok.open_scan(out).saved
    record["steps"], record["eval_every"], record["lanes"] = cfg["train"]["steps"], cfg["train"]["eval_every"], \
        cfg.get("lanes")
    import jax

    dev = jax.devices()[0].platform
    path = Path(__file__).parent / "results" / f"prieto_{dev}_{record['date']}.json"
    path.write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
