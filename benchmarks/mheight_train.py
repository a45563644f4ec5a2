"""Training throughput of the m-height regression task: seed-steps per second (runs x updates / s) after compilation.

    python benchmarks/mheight_train.py --runs 4 --updates 52 [--train-per-group 5000 --val-per-group 200]

Uses the ``mheight_wd`` preset's model, optimiser and batch (width 64, 5 blocks, AdamW, batch 4096, shuffled
epochs) on jgrok's cached dataset (``$JGROK_DATA``, generated on first use), all runs in one wave of W = --runs lanes.
A first call of K updates compiles; the timed call trains --updates updates from scratch with the same compiled
chunk, so the time includes init and host transfers but no compilation. Evaluations are off during the timed
call (eval_every beyond the budget, except the one after the last update, which is included).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import jax

from jgrok import config, engine, grid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--updates", type=int, default=52)
    ap.add_argument("--chunk", type=int, default=26)
    ap.add_argument("--train-per-group", type=int, default=5000)
    ap.add_argument("--val-per-group", type=int, default=200)
    args = ap.parse_args()
    cfg = config.load("mheight_wd")
    cfg = config.set_path(cfg, "task.train_per_group", str(args.train_per_group))
    cfg = config.set_path(cfg, "task.val_per_group", str(args.val_per_group))
    cfg = config.set_path(cfg, "train.epochs", "0")
    cfg = config.set_path(cfg, "train.eval_every_epochs", "0")
    cfg = config.set_path(cfg, "engine.chunk", str(args.chunk))
    cfg = config.with_grid(cfg, seed=list(range(args.runs)), wd=[0.01])

    def train(steps):
        c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps, eval_every=10**9))
        (prog, table, members), = grid.programs(c, grid.expand(c))
        table.inputs  # noqa: B018 - load (or generate) the data outside the timing
        t0 = time.perf_counter()
        engine.train_program(prog, table, members, args.runs, progress=False, keep_params=False)
        return time.perf_counter() - t0, prog, table

    t_compile, prog, table = train(args.chunk)
    t, _, _ = train(args.updates)
    print(f"{platform.node()} {jax.devices()[0].platform} ({jax.local_device_count()} device(s)), "
          f"{prog.n_params:,} params, n_train {table.n_train}, n_val {table.n_val}, batch {cfg.train.batch_size}, "
          f"W = {args.runs}")
    print(f"first call (compile + {args.chunk} updates): {t_compile:.1f} s; timed: {args.runs} runs x "
          f"{args.updates} updates in {t:.2f} s = {args.runs * args.updates / t:,.1f} seed-steps/s")


if __name__ == "__main__":
    main()
