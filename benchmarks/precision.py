"""Do lower matmul precisions keep the grokking time within seed noise?

    python benchmarks/precision.py --config tiny_cpu --seeds 0:32 --precisions fp32,bf16 --json out.json

The same scan (config and seeds) is trained once per precision (``--precision``: fp32, tf32, bf16), with the stop
rule ``val_acc>0.99`` (patience 1) so that each run stops when it groks and compaction drops it. For every
precision it reports the distribution of y = ln(steps to 99% val accuracy) over the seeds, and for every lower
precision its comparison with fp32:
  shift          median over runs of the paired difference y_p - y_fp32 (the same run, i.e. the same seed and
                 settings, under both precisions)
  seed noise     the standard deviation of y_fp32 over seeds: the spread the seed alone causes
  shift / noise  how large the change is against that spread
  rank test      two-sided Mann-Whitney U p-value of y_p against y_fp32 (are the two distributions told apart?)
  |paired diff|  median absolute paired difference, against seed noise: how far each single run moves
Runs that never reach 99% count at the budget (censored) in every statistic. The verdict printed says "within
seed noise" when |shift| <= 0.5 x seed noise and the rank test does not separate the distributions (p >= 0.05).
On a CPU, tf32 is fp32 (XLA CPU has no TF32); bf16 runs as bf16 arithmetic there, so the numerical question is
the same as on a GPU, only slower.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402


def run_scan(config: str, seeds: str, precision: str, out: Path, extra: list[str]) -> tuple[dict, float]:
    import jgrok
    from jgrok import scan

    args = ["--config", config, "--seeds", seeds, "--precision", precision, "--stop-when", "val_acc>0.99",
            "--patience", "1", "--no-tensorboard", "--quiet", "--out", str(out), *extra]
    t0 = time.perf_counter()
    code = scan.main(args, hard_exit=True)  # a second Ctrl-C ends this script at once, as it does the CLI
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"precision.py: the {precision} scan failed (exit {code}): {' '.join(args)}")
    rows = jgrok.open_scan(out).summary
    by_run = {int(r["run"]): (int(r["step_val_acc_99"]), bool(int(r["reached_val_99"]))) for r in rows}
    return by_run, wall


def compare(base: dict, other: dict) -> dict:
    runs = sorted(base)
    y0 = np.log([base[r][0] for r in runs])
    y1 = np.log([other[r][0] for r in runs])
    noise = float(np.std(y0, ddof=1))
    diff = y1 - y0
    shift = float(np.median(diff))
    p = float(stats.mannwhitneyu(y1, y0, alternative="two-sided").pvalue)
    return {"shift": shift, "seed_noise": noise, "shift_over_noise": shift / noise if noise > 0 else float("nan"),
            "rank_test_p": p, "median_abs_paired_diff": float(np.median(np.abs(diff))),
            "identical_runs": int(np.sum(diff == 0)),
            "within_seed_noise": bool(abs(shift) <= 0.5 * noise and p >= 0.05)}


def describe(res: dict) -> dict:
    steps = np.array([v[0] for v in res.values()], float)
    reached = np.array([v[1] for v in res.values()])
    q10, q25, q50, q75, q90 = np.percentile(steps, [10, 25, 50, 75, 90])
    return {"runs": len(steps), "reached": int(reached.sum()), "median": q50, "q25": q25, "q75": q75, "q10": q10,
            "q90": q90, "mean_ln": float(np.mean(np.log(steps))), "sd_ln": float(np.std(np.log(steps), ddof=1))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="tiny_cpu")
    ap.add_argument("--seeds", default="0:32")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list; fp32 is always the baseline")
    ap.add_argument("--set", action="append", default=[], help="passed on to the scan (KEY=VALUE)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    import jax

    precisions = ["fp32"] + [p for p in a.precisions.split(",") if p.strip() and p != "fp32"]
    extra = [x for kv in a.set for x in ("--set", kv)]
    res, walls = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in precisions:
            res[prec], walls[prec] = run_scan(a.config, a.seeds, prec, Path(tmp) / prec, extra)
            print(f"{prec}: {walls[prec]:.1f} s", file=sys.stderr)
    dev = jax.local_devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    head = f"{kind} ({dev.platform}); --config {a.config} --seeds {a.seeds} {' '.join(extra)}"
    print(head)
    print(f"{'precision':<10}{'reached':>9}{'median':>8}{'q25-q75':>12}{'q10-q90':>12}{'sd ln':>7}{'wall s':>8}"
          f"{'shift':>8}{'/noise':>8}{'rank p':>8}{'|pair|':>8}{'same':>6}  verdict")
    rows = []
    for prec in precisions:
        d = describe(res[prec])
        c = compare(res["fp32"], res[prec]) if prec != "fp32" else None
        rows.append({"precision": prec, "wall_s": walls[prec], **d, **({"vs_fp32": c} if c else {}),
                     "steps_by_run": {r: v[0] for r, v in res[prec].items()}})
        iqr, q1090 = f"{d['q25']:.0f}-{d['q75']:.0f}", f"{d['q10']:.0f}-{d['q90']:.0f}"
        line = (f"{prec:<10}{d['reached']:>5}/{d['runs']:<3}{d['median']:>8.0f}{iqr:>12}{q1090:>12}"
                f"{d['sd_ln']:>7.3f}{walls[prec]:>8.1f}")
        if c:
            line += (f"{c['shift']:>+8.3f}{c['shift_over_noise']:>+8.2f}{c['rank_test_p']:>8.3f}"
                     f"{c['median_abs_paired_diff']:>8.3f}{c['identical_runs']:>6}  "
                     + ("within seed noise" if c["within_seed_noise"] else "NOT within seed noise"))
        print(line)
    result = {"header": head, "device": kind, "machine": platform.platform(), "jax": jax.__version__,
              "date": datetime.date.today().isoformat(), "rows": rows}
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
