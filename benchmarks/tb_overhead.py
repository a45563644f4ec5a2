"""TensorBoard logging overhead: the same scan trained with the TensorBoard logger on and off.

    python benchmarks/tb_overhead.py                     # tiny_cpu, 64 seeds, 400 updates, eval every 10
    python benchmarks/tb_overhead.py --seeds 0:256 --repeats 7 --json tb.json

What is timed (one line per repeat, then a summary; also written to --json):
  train_s   wall time of ``engine.train_program`` (every chunk dispatched, waited for and handed to the logger)
  total_s   train_s plus ``Logger.close()``: the time until every event is on disk, i.e. what a scan costs
  cpu_s     CPU time of the whole process over total_s (all threads: XLA's and the writer's); less sensitive than
            wall time to other processes on a shared machine
  writer_s  time the logger's writer thread spent writing (its work overlaps training; on a CPU it competes with
            training for the same cores, on an accelerator it does not)
  overhead  median over repeats of (on / off - 1), each repeat's on and off runs back to back (paired, so that a
            change of machine load between repeats cancels); also the ratio of the medians

Compilation is excluded: one untimed warm-up run compiles the chunk program first (its time is reported as
``warmup_s``). Modes are interleaved (off, on, on, off, off, on, ...) so that load from other processes on a shared
machine falls on both; the spread (min and max over repeats) is printed next to the medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jgrok import config as config_mod  # noqa: E402
from jgrok import engine, grid  # noqa: E402
from jgrok.io import results, tb  # noqa: E402


def build(args):
    cfg = config_mod.load(args.config)
    for key, value in (("train.steps", args.steps), ("train.eval_every", args.eval_every),
                       ("engine.chunk", args.chunk), ("engine.tb_runs", args.tb_runs)):
        cfg = config_mod.set_path(cfg, key, str(value))
    lo, hi = (int(v) for v in args.seeds.split(":"))
    axes = {"seed": list(range(lo, hi))}
    if args.wd:
        axes["wd"] = [float(v) for v in args.wd.split(",")]
    cfg = config_mod.with_grid(cfg, **axes)
    rows = grid.expand(cfg)
    progs = grid.programs(cfg, rows)
    W = min(engine.choose_wave_size(p, len(m), engine.n_devices()) for p, _, m in progs)
    return cfg, rows, progs, W


def run_once(cfg, rows, progs, W, log: bool, scratch: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=scratch))
    logger = tb.Logger(out, rows, cfg.engine.tb_runs, results.group_axes(rows)) if log else None
    c0, t0 = time.process_time(), time.perf_counter()
    for p, t, m in progs:
        engine.train_program(p, t, m, W, progress=False, keep_params=False,
                             on_chunk=logger.log if logger else None)
    t1 = time.perf_counter()
    if logger:
        logger.close()
    t2, c2 = time.perf_counter(), time.process_time()
    shutil.rmtree(out)
    return {"log": log, "train_s": t1 - t0, "total_s": t2 - t0, "cpu_s": c2 - c0,
            "writer_s": logger.busy_s if logger else 0.0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="tiny_cpu")
    p.add_argument("--seeds", default="0:64", help="model seeds A:B")
    p.add_argument("--wd", default="", help="optional comma list of weight decays (groups)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--chunk", type=int, default=100, help="updates per compiled chunk (engine.chunk)")
    p.add_argument("--tb-runs", default="0:16")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)

    cfg, rows, progs, W = build(args)
    scratch = Path(tempfile.mkdtemp(prefix="jgrok_tb_bench_"))
    try:
        t = time.perf_counter()
        run_once(cfg, rows, progs, W, True, scratch)  # compiles; untimed
        warmup = time.perf_counter() - t
        print(f"{len(rows)} runs x {args.steps} updates, eval every {args.eval_every}, chunk {args.chunk}, "
              f"W = {W}, tb-runs {args.tb_runs}; warm-up (compile + one run) {warmup:.1f} s", flush=True)
        records = []
        for i in range(args.repeats):
            order = (False, True) if i % 2 == 0 else (True, False)
            for log in order:
                r = run_once(cfg, rows, progs, W, log, scratch)
                r["repeat"] = i
                records.append(r)
                print(f"  repeat {i}: logging {'on ' if log else 'off'} train {r['train_s']:6.2f} s  "
                      f"total {r['total_s']:6.2f} s  cpu {r['cpu_s']:6.2f} s  writer {r['writer_s']:5.2f} s",
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def stats(log, key):
        xs = [r[key] for r in records if r["log"] == log]
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}

    keys = ("train_s", "total_s", "cpu_s")
    summary = {k: {"off": stats(False, k), "on": stats(True, k)} for k in keys}
    summary["writer_s"] = stats(True, "writer_s")
    for k in keys:
        on = {r["repeat"]: r[k] for r in records if r["log"]}
        off = {r["repeat"]: r[k] for r in records if not r["log"]}
        paired = [on[i] / off[i] - 1 for i in sorted(on)]
        summary[k]["paired"] = {"median": statistics.median(paired), "min": min(paired), "max": max(paired)}
        summary[k]["ratio_of_medians"] = summary[k]["on"]["median"] / summary[k]["off"]["median"] - 1
        s = summary[k]
        print(f"{k}: off {s['off']['median']:.2f} s [{s['off']['min']:.2f}-{s['off']['max']:.2f}], "
              f"on {s['on']['median']:.2f} s [{s['on']['min']:.2f}-{s['on']['max']:.2f}]; overhead: paired median "
              f"{100 * s['paired']['median']:+.1f}% [{100 * s['paired']['min']:+.1f}% to "
              f"{100 * s['paired']['max']:+.1f}%], ratio of medians {100 * s['ratio_of_medians']:+.1f}%")
    w = summary["writer_s"]
    print(f"writer thread busy: median {w['median']:.2f} s [{w['min']:.2f}-{w['max']:.2f}] = "
          f"{100 * w['median'] / summary['total_s']['on']['median']:.1f}% of the median total_s with logging")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": len(rows), "lanes": W,
                                               "warmup_s": warmup, "machine": platform.platform(),
                                               "device": engine.platform(), "records": records,
                                               "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
