"""What do the progress measures (``--measures``) cost per evaluation?

    python benchmarks/measures_overhead.py --config tiny_cpu --lanes 8 --repeats 7 [--json out.json]

For one preset and a wave of W lanes (the preset's first program, runs of seeds 0..W-1 at their initial
parameters), it compiles the vmapped evaluation of a wave (``jit(vmap(train.evaluate))``, what the chunk's
evaluation branch runs) once per measure setting ("" = none, "logits", "fourier", "fourier,logits") and one
training update of the same wave (``jit(vmap(train.train_step))``), then times ``--repeats`` rounds; every round
calls each function ``--calls`` times, the settings interleaved in a new random order each round, so that a
shared machine's changing load hits every setting alike. Reported per setting:

  eval_cpu_ms      process CPU time (all threads) per evaluation of the wave, median over rounds
  eval_wall_ms     wall time per evaluation of the wave, median over rounds
  overhead         median over rounds of the paired ratio t(setting) / t(no measures) - 1, CPU time
  in_updates       the added CPU time per evaluation in units of one training update of the wave (median over
                   rounds of (t(setting) - t(none)) / t(update)): with evaluation every k updates the measures
                   add about in_updates / k to a scan's training time (before compaction and early stops)

Compilation is excluded (each function runs once before timing).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SETTINGS = ("", "logits", "fourier", "fourier,logits")


def build(config: str, lanes: int, measures: str, task: str | None):
    import jax

    from jgrok import config as config_mod
    from jgrok import grid, train

    cfg = config_mod.load(config)
    cfg = config_mod.set_path(cfg, "train.measures", measures)
    axes = {"seed": list(range(lanes))}
    if task:
        axes["task"] = [task]
    cfg = config_mod.with_grid(cfg, **axes)
    (prog, table, rows), *_ = grid.programs(cfg, grid.expand(cfg))
    hp = grid.hyper(prog, rows)
    data = (jax.numpy.asarray(table.inputs), jax.numpy.asarray(table.targets))
    state = train.make_init(prog)(hp)
    precision = train.PRECISION[prog.cfg.train.precision]

    def ev(s):
        with jax.default_matmul_precision(precision):
            return jax.vmap(lambda si: train.evaluate(prog, data, si, lanes > 1))(s)

    def step(s, h):
        with jax.default_matmul_precision(precision):
            return jax.vmap(lambda si, hi: train.train_step(prog, data, si, hi, 0, lanes > 1))(s, h)

    return prog, jax.jit(ev), jax.jit(step), state, hp


def timed(fn, calls: int) -> tuple[float, float]:
    import jax

    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        out = fn()
    jax.block_until_ready(out)
    return (time.process_time() - c0) / calls, (time.perf_counter() - w0) / calls


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny_cpu")
    p.add_argument("--task", default=None, help="task of the preset to use (default: its first)")
    p.add_argument("--lanes", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import jax

    fns = {}
    t0 = time.perf_counter()
    for m in SETTINGS:
        prog, ev, step, state, hp = build(args.config, args.lanes, m, args.task)
        jax.block_until_ready(ev(state))
        fns[m] = lambda ev=ev, state=state: ev(state)
        if m == "":
            jax.block_until_ready(step(state, hp))
            fns["update"] = lambda step=step, state=state, hp=hp: step(state, hp)
            base_prog = prog
    compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    cpu = {k: [] for k in fns}
    wall = {k: [] for k in fns}
    for _ in range(args.repeats):
        for k in rng.permutation(list(fns)):
            c, w = timed(fns[k], args.calls)
            cpu[k].append(c)
            wall[k].append(w)
    base, upd = np.array(cpu[""]), np.array(cpu["update"])
    res = {"config": args.config, "task": base_prog.cfg.task.name, "p": base_prog.cfg.task.p, "lanes": args.lanes,
           "repeats": args.repeats, "calls": args.calls, "compile_s": compile_s,
           "device": f"{jax.devices()[0].platform}:{getattr(jax.devices()[0], 'device_kind', '')}",
           "machine": platform.processor() or platform.machine(), "date": datetime.date.today().isoformat(),
           "update_cpu_ms": 1e3 * float(np.median(upd)), "settings": {}}
    for m in SETTINGS:
        t = np.array(cpu[m])
        res["settings"][m or "none"] = {
            "eval_cpu_ms": 1e3 * float(np.median(t)), "eval_wall_ms": 1e3 * float(np.median(wall[m])),
            "overhead": float(np.median(t / base - 1)), "overhead_min": float(np.min(t / base - 1)),
            "overhead_max": float(np.max(t / base - 1)), "in_updates": float(np.median((t - base) / upd))}
    print(f"{res['config']} ({res['task']}, p={res['p']}), W={args.lanes}, {res['device']}; one update of the wave: "
          f"{res['update_cpu_ms']:.1f} ms CPU")
    print("| measures | eval CPU ms | eval wall ms | overhead vs none, CPU (median [min-max] of rounds) | "
          "added CPU per eval, in updates |")
    print("|---|---|---|---|---|")
    for m, d in res["settings"].items():
        print(f"| {m} | {d['eval_cpu_ms']:.1f} | {d['eval_wall_ms']:.1f} | {d['overhead']:+.0%} "
              f"[{d['overhead_min']:+.0%} to {d['overhead_max']:+.0%}] | {d['in_updates']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
