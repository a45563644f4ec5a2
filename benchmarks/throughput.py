"""Seed-steps per second of jgrok and of the PyTorch reference variants, on whatever device is present.

    python benchmarks/throughput.py                                   # the AI-Scientist model, S = 1 ... 2048
    python benchmarks/throughput.py --sizes 8,64 --torch eager --p 31 --d-model 64 --n-layers 1 \\
        --batch-size 128 --steps 200 --torch-seeds 2 --rounds 3 --json out.json   # a small model on a CPU

Both sides train the same experiment: the AI-Scientist template (AdamW lr 1e-3, betas (0.9, 0.98), weight decay
0.5, linear warm-up over 50 updates, batches drawn with replacement, the full validation split evaluated every
``--eval-every`` updates), with the model size and task given by the flags.

Definitions (one row of the table per system and number of runs S):
  seed-steps/s    updates x runs / wall time of a timed run, evaluation included, compilation excluded. jgrok:
                  the timed run starts after a warm-up scan of one chunk with the same compiled programs (so it
                  compiles nothing); torch: the reference's own ``seed_steps_per_s`` (updates after its warm-up
                  of ``--eval-every`` updates / their wall time).
  warm-up s       wall time of the warm-up: jgrok compiles its init and chunk programs and trains one chunk;
                  torch trains its first ``--eval-every`` updates (torch.compile compiles there).
  compile s       jgrok only: warm-up s minus the time the timed run spends per chunk.
  FLOPs/update    model FLOPs of one run's update, counted analytically (multiply-adds count 2):
                    forward of one example = 2 T (4 d^2 + 2 r d^2) per layer     (qkv, out, MLP matmuls)
                                           + 4 T^2 d per layer                  (scores and weighted values)
                                           + 2 d n_out                          (head, last position)
                    update = 3 x forward x batch     (backward = 2 x forward)
                           + forward x n_val / eval_every    (the evaluation, spread over the updates)
                  T = 4 tokens, d = width, r = MLP ratio; embeddings (lookups), layer norms and the optimiser
                  are not counted. The usual "6 x params x tokens" is the first line times 3.
  % of peak       FLOPs/update x seed-steps/s / the device's peak for the precision (``--peak-tflops``, or the
                  PEAK_TFLOPS table for known GPUs; "unknown" otherwise, e.g. on a CPU).
  MiB/run         jgrok: the device's peak bytes in use during the timed run / S, where the backend reports it
                  (GPUs); otherwise XLA's memory analysis of the compiled chunk per lane (marked "xla").

With ``--rounds R`` every measurement is repeated R times, the systems interleaved within each round (so that
machine load hits both alike), and the table shows medians of seed-steps/s; warm-up and compile times are the
first round's (later rounds reuse what it compiled). The JSON holds every round.
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

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jgrok import config as config_mod  # noqa: E402
from jgrok import engine, grid  # noqa: E402

# dense peak TFLOP/s by device kind and precision (vendor data sheets, SXM parts)
PEAK_TFLOPS = {
    "NVIDIA H100 80GB HBM3": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "NVIDIA H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
}


def experiment(a) -> config_mod.Config:
    cfg = config_mod.load("ai_scientist")
    for key, value in (("task.name", a.task), ("task.p", a.p), ("model.d_model", a.d_model),
                       ("model.n_heads", a.n_heads), ("model.n_layers", a.n_layers),
                       ("train.batch_size", a.batch_size), ("train.eval_every", a.eval_every),
                       ("train.steps", a.steps), ("train.precision", a.precision), ("engine.chunk", a.chunk)):
        cfg = config_mod.set_path(cfg, key, str(value))
    return cfg


def experiment_flags(ap: argparse.ArgumentParser, task: str) -> None:
    """The flags of ``experiment`` (the model size and task; the defaults are the template's), for this benchmark
    and the ones that measure the same experiment (benchmarks/profile_step.py)."""
    ap.add_argument("--task", default=task)
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--n-layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))


def flops_per_update(cfg: config_mod.Config, n_val: int, n_out: int, batch: int | None = None) -> float:
    """The module docstring's FLOPs/update; ``batch`` replaces train.batch_size (e.g. the train split when
    sampling is full-batch)."""
    m, tr = cfg.model, cfg.train
    T, d, r = 4, m.d_model, m.mlp_ratio
    fwd = m.n_layers * (2 * T * (4 * d * d + 2 * r * d * d) + 4 * T * T * d) + 2 * d * n_out
    return 3 * fwd * (batch or tr.batch_size) + fwd * n_val / tr.eval_every


def matmul_tflops(n: int = 2048, repeats: int = 10) -> float:
    """TFLOP/s of a jitted n x n x n float32 matmul on the default device (best of ``repeats`` after a warm-up):
    the machine's own matmul rate, against which a training step's FLOP rate is a share."""
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), np.float32))
    return 2 * n ** 3 / best_seconds(jax.jit(lambda x, y: x @ y), a, a, repeats=repeats) / 1e12


def best_seconds(f, *args, repeats: int) -> float:
    """Wall seconds of the fastest of ``repeats`` calls of ``f(*args)`` (an array-returning jitted function),
    after one warm-up call that compiles it."""
    f(*args).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(*args).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_share(row: dict, flops: float, peak: float | None) -> dict:
    """A measured row with its FLOPs/update, TFLOP/s and share of the device's peak (None where unknown)."""
    row = dict(row, flops_per_update=flops, tflops=flops * row["seed_steps_per_s"] / 1e12)
    row["peak_fraction"] = row["tflops"] / peak if peak else None
    return row


def run_jgrok(cfg: config_mod.Config, S: int, lanes: int | None = None, lane_bytes: bool = True) -> dict:
    """S seeds of cfg at W = ``lanes`` lanes per wave (default S / devices: one wave per device). Memory per run:
    the device's peak where it reports one, else (``lane_bytes``) XLA's analysis of the chunk compiled twice more
    (engine.measured_lane_bytes; minutes on a loaded CPU, so toy runs turn it off)."""
    cfg = config_mod.with_grid(cfg, seed=list(range(S)))
    rows = grid.expand(cfg)
    (prog, table, members), = grid.programs(cfg, rows)
    W = lanes or -(-S // engine.n_devices())
    K = min(cfg.engine.chunk, cfg.train.steps)
    warm_cfg = config_mod.set_path(cfg, "train.steps", str(K))
    (wprog, wtable, wmembers), = grid.programs(warm_cfg, grid.expand(warm_cfg))
    t0 = time.perf_counter()
    engine.train_program(wprog, wtable, wmembers, W, progress=False, keep_params=False)
    warm = time.perf_counter() - t0
    dev = jax.local_devices()[0]
    t0 = time.perf_counter()
    engine.train_program(prog, table, members, W, progress=False, keep_params=False)
    wall = time.perf_counter() - t0
    steps = cfg.train.steps
    out = {"system": "jgrok", "runs": S, "lanes": W, "devices": engine.n_devices(), "steps": steps,
           "seed_steps_per_s": S * steps / wall, "wall_s": wall, "warmup_s": warm,
           "compile_s": max(0.0, warm - wall * K / steps)}
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    if "peak_bytes_in_use" in stats:
        out["bytes_per_run"], out["bytes_source"] = stats["peak_bytes_in_use"] / S, "device peak"
    elif lane_bytes:
        measured = engine.measured_lane_bytes(prog, K)
        if measured is not None:
            out["bytes_per_run"], out["bytes_source"] = measured[1], "xla"
    return out


def run_torch(cfg: config_mod.Config, mode: str, seeds: int, steps: int, device: str) -> dict:
    import torch_reference as ref

    m = ref.run(cfg.task.name, mode, list(range(seeds)), steps, cfg.train.eval_every, cfg.train.batch_size,
                "full", cfg.train.eval_every, device, cfg.task.p, cfg.task.fraction,
                (cfg.model.d_model, cfg.model.n_heads, cfg.model.n_layers))
    return {"system": f"torch {mode}", "runs": seeds, "steps": steps, "seed_steps_per_s": m["seed_steps_per_s"],
            "wall_s": m["total_s"], "warmup_s": m["warmup_s"], "threads": m["threads"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,8,64,256,1024,2048", help="jgrok runs S (comma list)")
    ap.add_argument("--torch", default="eager,compile,vmap", help="PyTorch variants (comma list; '' for none)")
    ap.add_argument("--torch-seeds", type=int, default=2, help="seeds per PyTorch variant (vmap: stacked)")
    ap.add_argument("--torch-steps", type=int, default=None, help="updates per PyTorch seed (default --steps)")
    experiment_flags(ap, task="x_div_y")
    ap.add_argument("--steps", type=int, default=500, help="updates per jgrok run")
    ap.add_argument("--chunk", type=int, default=500, help="updates per compiled jgrok chunk")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, if not in PEAK_TFLOPS")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every measurement, interleaved; report medians")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--no-memory", action="store_true", help="skip XLA's memory analysis per run on backends that "
                                                                "report no peak (it compiles the chunk twice more)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    modes = [m for m in a.torch.split(",") if m.strip()]
    torch = None
    if modes:  # PyTorch only where a variant of it is measured
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)
    cfg = experiment(a)
    dev = jax.local_devices()[0]
    kind = getattr(dev, "device_kind", dev.platform)
    peak = a.peak_tflops or PEAK_TFLOPS.get(kind, {}).get(a.precision)
    torch_device = "cuda" if torch is not None and dev.platform == "gpu" and torch.cuda.is_available() else "cpu"
    (prog, table, _), = grid.programs(cfg, grid.expand(cfg))
    flops = flops_per_update(cfg, table.n_pairs - table.n_train, table.n_out)
    sizes = [int(s) for s in a.sizes.split(",") if s.strip()]

    rounds = []
    for r in range(a.rounds):
        res = []
        for mode in modes:
            res.append(run_torch(cfg, mode, a.torch_seeds, a.torch_steps or a.steps, torch_device))
            print(f"round {r}: {res[-1]['system']}: {res[-1]['seed_steps_per_s']:,.1f} seed-steps/s", file=sys.stderr)
        for S in sizes:
            res.append(run_jgrok(cfg, S, lane_bytes=not a.no_memory))
            print(f"round {r}: jgrok S={S}: {res[-1]['seed_steps_per_s']:,.1f} seed-steps/s", file=sys.stderr)
        rounds.append(res)

    table_rows = []
    for i, first in enumerate(rounds[0]):
        all_r = [rd[i] for rd in rounds]
        row = dict(first)
        for k in ("seed_steps_per_s", "wall_s"):  # warm-up and compile s stay the first round's: later rounds
            # reuse the programs compiled in it
            if k in first:
                row[k] = statistics.median(x[k] for x in all_r)
        table_rows.append(peak_share(row, flops, peak))
    eager = next((r["seed_steps_per_s"] for r in table_rows if r["system"] == "torch eager"), None)
    best_torch = max((r["seed_steps_per_s"] for r in table_rows if r["system"].startswith("torch")), default=None)

    m = cfg.model
    head = (f"{kind} ({dev.platform}, {engine.n_devices()} device(s)); {cfg.task.name} p={cfg.task.p}, "
            f"d={m.d_model}, heads={m.n_heads}, layers={m.n_layers}, batch {cfg.train.batch_size}, eval every "
            f"{cfg.train.eval_every} on the full val split, {a.precision}; {prog.n_params:,} params per run; "
            f"{flops / 1e6:.1f} MFLOP per update; medians of {a.rounds} round(s)")
    mm = matmul_tflops()
    head += f"; jitted 2048 x 2048 fp32 matmul: {1e3 * mm:.0f} GFLOP/s on this device"
    print(head)
    print(f"{'system':<14}{'S':>6}{'seed-steps/s':>15}{'x eager':>9}{'x best torch':>13}{'warm-up s':>11}"
          f"{'compile s':>11}{'TFLOP/s':>9}{'% peak':>8}{'% matmul':>9}{'MiB/run':>12}")
    for r in table_rows:
        x_e = f"{r['seed_steps_per_s'] / eager:.1f}" if eager else "-"
        x_b = f"{r['seed_steps_per_s'] / best_torch:.1f}" if best_torch else "-"
        pk = f"{100 * r['peak_fraction']:.1f}" if r["peak_fraction"] is not None else "unknown"
        mib = (f"{r['bytes_per_run'] / 2**20:.2f}" + (" xla" if r.get("bytes_source") == "xla" else "")
               if "bytes_per_run" in r else "-")
        comp = f"{r['compile_s']:.1f}" if "compile_s" in r else "-"
        print(f"{r['system']:<14}{r['runs']:>6}{r['seed_steps_per_s']:>15,.1f}{x_e:>9}{x_b:>13}"
              f"{r['warmup_s']:>11.1f}{comp:>11}{r['tflops']:>9.4f}{pk:>8}{100 * r['tflops'] / mm:>9.1f}{mib:>12}")
    result = {"header": head, "device": kind, "platform": dev.platform, "machine": platform.platform(),
              "date": datetime.date.today().isoformat(), "jax": jax.__version__,
              "torch": torch.__version__ if torch is not None else None, "config": cfg.to_dict(), "peak_tflops": peak,
              "matmul_tflops": mm, "rows": table_rows, "rounds": rounds}
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


if __name__ == "__main__":
    main()
