"""``python -m jgrok.aiscientist --out_dir run_0``: a drop-in for the AI-Scientist grokking template's experiment.py.

Trains the template's four datasets (x_div_y, x_minus_y, x_plus_y, permutation) for every seed as one jgrok
scan, then writes what the template writes, so its plot.py and the AI-Scientist pipeline read it unchanged:

- ``final_info.json``: ``{dataset: {"means": {k_mean}, "stderrs": {k_stderr}, "final_info_dict": {k: [per seed]}}}``
  with k in final_train_loss, final_val_loss, final_train_acc, final_val_acc, step_val_acc_99 (stderr =
  population std / n, as the template computes it);
- ``all_results.npy``: a pickled dict with keys ``{dataset}_{seed}_final_info`` (dict of the k above),
  ``{dataset}_{seed}_train_info`` (list of {"train_loss", "train_accuracy", "step"} per evaluation) and
  ``{dataset}_{seed}_val_info`` (list of {"val_loss", "val_accuracy", "step"}).

The full jgrok results folder (summary, curves, plots) is kept in ``OUT_DIR/jgrok``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jgrok import scan as scan_cli
from jgrok.errors import ConfigError, UserError
from jgrok.results_folder import open_scan

DATASETS = ("x_div_y", "x_minus_y", "x_plus_y", "permutation")


def convert(scan_dir: Path, out_dir: Path) -> None:
    scan = open_scan(scan_dir)
    summary, m = scan.summary, scan.metrics()  # both in run-id order
    steps = [int(s) for s in m["eval_step"]]
    all_results, final_infos = {}, {}
    for dataset in DATASETS:
        idx = [i for i, r in enumerate(summary) if r["task"] == dataset]
        if not idx:
            continue
        infos = []
        for i in idx:
            r = summary[i]
            info = {"final_train_loss": float(r["final_train_loss"]), "final_val_loss": float(r["final_val_loss"]),
                    "final_train_acc": float(r["final_train_acc"]), "final_val_acc": float(r["final_val_acc"]),
                    "step_val_acc_99": int(r["step_val_acc_99"])}
            seed = r["seed"]
            all_results[f"{dataset}_{seed}_final_info"] = info
            all_results[f"{dataset}_{seed}_train_info"] = [
                {"train_loss": float(m["train_loss"][i, j]), "train_accuracy": float(m["train_acc"][i, j]),
                 "step": s} for j, s in enumerate(steps)]
            all_results[f"{dataset}_{seed}_val_info"] = [
                {"val_loss": float(m["val_loss"][i, j]), "val_accuracy": float(m["val_acc"][i, j]), "step": s}
                for j, s in enumerate(steps)]
            infos.append(info)
        d = {k: [x[k] for x in infos] for k in infos[0]}
        final_infos[dataset] = {
            "means": {f"{k}_mean": float(np.mean(v)) for k, v in d.items()},
            "stderrs": {f"{k}_stderr": float(np.std(v) / len(v)) for k, v in d.items()},
            "final_info_dict": d,
        }
    (out_dir / "final_info.json").write_text(json.dumps(final_infos))
    with open(out_dir / "all_results.npy", "wb") as f:
        np.save(f, all_results)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m jgrok.aiscientist", description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", default="run_0")
    p.add_argument("--seeds", default="0:3", help="seeds (A:B or a list); the template runs 3")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--steps", help="updates per run (default: the template's 7500)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    out_dir = Path(args.out_dir)
    try:
        for name in args.datasets.split(","):
            if name not in DATASETS:
                raise ConfigError(f"Dataset '{name}' is not one of the template's: {', '.join(DATASETS)}.")
        if (out_dir / "final_info.json").exists():
            raise ConfigError(f"{out_dir}/final_info.json already exists; choose another --out_dir.")
    except UserError as e:
        print(f"jgrok.aiscientist: error: {e}", file=sys.stderr)
        return 2
    scan_args = ["--config", "ai_scientist", "--task", args.datasets, "--seeds", args.seeds,
                 "--out", str(out_dir / "jgrok")]
    scan_args += [x for kv in args.set for x in ("--set", kv)]
    if args.steps:
        scan_args += ["--steps", args.steps]
    if args.quiet:
        scan_args.append("--quiet")
    code = scan_cli.main(scan_args)
    if code:
        return code
    convert(out_dir / "jgrok", out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
