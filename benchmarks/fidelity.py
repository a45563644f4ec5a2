"""Does a preset land where its source landed? Train it over seeds and set its number beside the source's.

    python benchmarks/fidelity.py grokfast_ema --seeds 0:8 --json out.json
    python benchmarks/fidelity.py grokfast_ma --seeds 0:8 --steps 5000

Every preset with a CPU-reachable published number is listed in SOURCES: the source, its number, and the measure
that number is (here: steps to a validation-accuracy threshold). The preset is trained with the stop rule
``val_acc>=THRESHOLD`` (patience 1), so each run stops when it gets there and compaction drops it, up to
``--steps`` updates.

  steps to X% val acc   first evaluation step (update count) with val acc > X (full validation split, evaluated
                        as the preset says: once per epoch for the Grokfast presets); the budget if never
  median / quartiles    over the seeds, runs that never got there counted at the budget (censored)
  ratio                 median / the source's number

The source's number is one run (seed 0 of the source's torch generator); jgrok's seed s draws other random
numbers than the source's seed s, so the comparison is the source's number against the distribution over seeds.
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

# preset: (source, published number, threshold, what the number is)
SOURCES = {
    "grokfast_ema": ("ironjr/grokfast README, Grokfast (EMA) row, seed 0", 910, 0.95, "steps to 95% val acc"),
    "grokfast_ma": ("ironjr/grokfast README, Grokfast-MA row, seed 0", 790, 0.95, "steps to 95% val acc"),
    "grokfast_baseline": ("ironjr/grokfast README, Baseline row, seed 0", 39890, 0.95, "steps to 95% val acc"),
}


def measure(preset: str, seeds: str, steps: int, out: Path, extra: list[str]) -> dict:
    """Train the preset and return {run: (seed, steps to the threshold, reached)} and the wall time."""
    import jgrok
    from jgrok import scan
    from jgrok.io import results

    _, _, threshold, _ = SOURCES[preset]
    args = ["--config", preset, "--seeds", seeds, "--steps", str(steps), "--stop-when", f"val_acc>{threshold}",
            "--patience", "1", "--no-tensorboard", "--quiet", "--out", str(out), *extra]
    t0, c0 = time.perf_counter(), time.process_time()
    code = scan.main(args, hard_exit=True)  # a second Ctrl-C ends this script at once, as it does the CLI
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if code != 0:
        raise SystemExit(f"fidelity.py: the scan failed (exit {code}): {' '.join(args)}")
    saved = jgrok.open_scan(out)
    val_acc, eval_step = saved.curves("val_acc")
    step, reached = results.first_step_above(val_acc, eval_step, steps, threshold)
    runs = {int(r["run"]): (int(r["seed"]), int(step[i]), bool(reached[i]))  # both in run-id order
            for i, r in enumerate(saved.summary)}
    return {"runs": runs, "wall_s": wall, "process_cpu_s": cpu}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset", choices=sorted(SOURCES))
    ap.add_argument("--seeds", default="0:8")
    ap.add_argument("--steps", type=int, default=5000, help="update budget per run (runs stop at the threshold)")
    ap.add_argument("--json", help="write the numbers here")
    ap.add_argument("--set", action="append", default=[], help="passed to jgrok.scan (e.g. optim.name=adamw)")
    args = ap.parse_args(argv)
    source, number, threshold, what = SOURCES[args.preset]
    extra = [x for s in args.set for x in ("--set", s)]
    with tempfile.TemporaryDirectory() as tmp:
        res = measure(args.preset, args.seeds, args.steps, Path(tmp) / "scan", extra)
    steps = np.array([s for _, s, _ in res["runs"].values()], float)
    n_reached = sum(r for _, _, r in res["runs"].values())
    q1, med, q3 = np.percentile(steps, [25, 50, 75])
    summary = {"preset": args.preset, "set": args.set, "source": source, "source_number": number, "measure": what,
               "seeds": args.seeds, "budget": args.steps, "per_run": {str(k): v for k, v in res["runs"].items()},
               "median": float(med), "q1": float(q1), "q3": float(q3), "reached": int(n_reached),
               "n": len(steps), "ratio": float(med / number), "wall_s": res["wall_s"],
               "process_cpu_s": res["process_cpu_s"], "date": datetime.date.today().isoformat(),
               "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    print(f"{args.preset} ({' '.join('--set ' + s for s in args.set)}): {what}, seeds {args.seeds}, budget "
          f"{args.steps}")
    for run, (seed, s, ok) in sorted(res["runs"].items()):
        print(f"  seed {seed}: {s}{'' if ok else ' (never: budget)'}")
    print(f"  median {med:.0f} (quartiles {q1:.0f} - {q3:.0f}), {n_reached}/{len(steps)} reached; source: {number} "
          f"({source}); ratio {med / number:.2f}; wall {res['wall_s']:.0f} s, process CPU {res['process_cpu_s']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
