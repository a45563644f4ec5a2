"""What float64 costs: updates per second of the prieto_2025 model (MLP 226-200-200-113, full batch of 5,107 pairs)
for the float32 baseline, float64 softmax (train.softmax_precision 64, x64 program, float32 model), StableMax in
float64, and the whole run in float64 (--precision fp64), measured in one process with the repeats interleaved
(A B C D A B C D ...) so that load on a shared machine falls on every variant alike.

    python benchmarks/prieto_precision_cost.py --lanes 4 --updates 20 --repeats 3

Per variant: the median over repeats of process CPU seconds and wall seconds per update of a W-lane wave
(compilation excluded: each program is compiled and run once before timing), and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time

import jax
import numpy as np

from jgrok import config, engine, grid, train

VARIANTS = {
    "fp32 softmax (baseline)": {},
    "float64 softmax": {"train.softmax_precision": 64},
    "stablemax float64": {"train.loss": "stablemax", "train.softmax_precision": 64},
    "fp64 model": {"train.precision": "fp64", "train.softmax_precision": 64},
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--label", default="")
    a = p.parse_args(argv)
    base = config.load("prieto_2025")
    base = config.variant_config(config.with_grid(base, seed=list(range(a.lanes))), None)
    waves = {}
    for name, overrides in VARIANTS.items():
        cfg = base
        for k, v in overrides.items():
            cfg = config.set_path(cfg, k, str(v))
        (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
        init_fn, chunk_fn = prog.compiled(a.updates)
        hp = jax.tree.map(np.asarray, grid.hyper(prog, members))
        data = (np.asarray(table.inputs), np.asarray(table.targets))
        state = init_fn(hp)
        state, _ = chunk_fn(state, hp, data, np.int32(0), np.int32(10**6), np.int32(10**6))  # compile
        jax.block_until_ready(state)
        waves[name] = [chunk_fn, state, hp, data]
    cpu = {n: [] for n in VARIANTS}
    wall = {n: [] for n in VARIANTS}
    for _ in range(a.repeats):
        for name, w in waves.items():
            c0, t0 = time.process_time(), time.perf_counter()
            w[1], _ = w[0](w[1], w[2], w[3], np.int32(0), np.int32(10**6), np.int32(10**6))
            jax.block_until_ready(w[1])
            cpu[name].append((time.process_time() - c0) / a.updates)
            wall[name].append((time.perf_counter() - t0) / a.updates)
    b = list(VARIANTS)[0]
    out = {"date": datetime.date.today().isoformat(), "device": a.label or jax.devices()[0].platform,
           "lanes": a.lanes, "updates": a.updates, "repeats": a.repeats, "variants": {
               n: {"cpu_s_per_update": float(np.median(cpu[n])), "wall_s_per_update": float(np.median(wall[n])),
                   "cpu_ratio": float(np.median(cpu[n]) / np.median(cpu[b])),
                   "wall_ratio": float(np.median(wall[n]) / np.median(wall[b]))} for n in VARIANTS}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
