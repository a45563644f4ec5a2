"""Early stop + compaction: does wall time fall with the work that is left?

    python benchmarks/early_stop.py --seeds 16 --lanes 4 --chunk 100 --rounds 3 --json out.json

One scan of the ``tiny_cpu`` preset (x + y mod 31, 1 layer of width 64; runs reach 99% val accuracy after
roughly 800-1500 updates, each at its own time) is trained three ways, interleaved within each round:
  full       no stop rule: every run trains the whole budget
  stop       --stop-when val_acc>0.99: stopped runs are frozen but stay in their waves (engine.compact=false)
  compact    the same stop rule with compaction: between chunks stopped runs leave and the rest are re-packed
Definitions:
  work left       sum over runs of the updates each run needs (its stop step, or the budget) / (runs x budget)
  lane-updates    updates x lanes the device computed (padding and frozen lanes included), counted by the engine
  wall            wall time of the scan (compiled programs warmed up first), median over rounds
The stop and compact scans must give identical summaries; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from jgrok import config as config_mod  # noqa: E402
from jgrok import engine, grid, train  # noqa: E402


def scan(cfg, lanes, compact, counter):
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    counter.clear()
    t0 = time.perf_counter()
    res = engine.train_program(prog, table, members, lanes, progress=False, keep_params=False, compact=compact)
    return time.perf_counter() - t0, res, sum(counter)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    base = config_mod.with_grid(config_mod.load("tiny_cpu"), seed=list(range(a.seeds)))
    base = config_mod.set_path(base, "engine.chunk", str(a.chunk))
    base = config_mod.set_path(base, "train.steps", str(a.steps))
    stop = config_mod.set_path(base, "train.stop_when", "val_acc>0.99")
    counter: list[int] = []
    real = train.Program.compiled

    def counting(prog, K):
        init, chunk = real(prog, K)

        def counted(state, *args):
            counter.append(state.alive.shape[0] * K)
            return chunk(state, *args)

        return init, counted

    train.Program.compiled = counting
    for cfg in (base, stop):  # compile both programs before timing anything
        warm = config_mod.set_path(cfg, "train.steps", str(a.chunk))
        scan(warm, a.lanes, True, counter)
    walls = {"full": [], "stop": [], "compact": []}
    lane_updates = {}
    results = {}
    for _ in range(a.rounds):
        for name, cfg, compact in (("full", base, True), ("stop", stop, False), ("compact", stop, True)):
            wall, res, lu = scan(cfg, a.lanes, compact, counter)
            walls[name].append(wall)
            lane_updates[name] = lu
            results[name] = res
            print(f"{name}: {wall:.1f} s, {lu} lane-updates", file=sys.stderr)
    s, c = results["stop"], results["compact"]
    for k in s.metrics:
        if not np.array_equal(s.metrics[k], c.metrics[k], equal_nan=True):
            raise SystemExit(f"compaction changed {k}: results are not bit-identical")
    assert np.array_equal(s.stopped_step, c.stopped_step)
    need = np.where(c.stopped_step > 0, c.stopped_step, a.steps)
    work_left = float(need.sum() / (a.seeds * a.steps))
    med = {k: statistics.median(v) for k, v in walls.items()}
    out = {
        "date": datetime.date.today().isoformat(), "machine": platform.platform(), "seeds": a.seeds,
        "lanes": a.lanes, "chunk": a.chunk, "steps": a.steps, "rounds": a.rounds,
        "stopped": int((c.stopped_step > 0).sum()), "stop_steps": c.stopped_step.tolist(), "work_left": work_left,
        "wall_s": walls, "wall_median_s": med, "lane_updates": lane_updates,
        "wall_fraction": {k: med[k] / med["full"] for k in med},
        "lane_update_fraction": {k: lane_updates[k] / lane_updates["full"] for k in lane_updates},
    }
    print(f"{a.seeds} runs, W = {a.lanes}, chunk {a.chunk}, budget {a.steps}; {out['stopped']} runs stopped at "
          f"{sorted(x for x in out['stop_steps'] if x > 0)}; work left {100 * work_left:.0f}%")
    for k in ("full", "stop", "compact"):
        print(f"  {k:<8} wall {med[k]:6.1f} s ({100 * out['wall_fraction'][k]:5.1f}% of full)   lane-updates "
              f"{lane_updates[k]:>8} ({100 * out['lane_update_fraction'][k]:5.1f}%)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
