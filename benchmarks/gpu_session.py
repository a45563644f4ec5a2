"""Every GPU measurement of the project in one prepared call: run as is by the device tool on a lent H200.

    python3 benchmarks/gpu_session.py --budget-s 500 --out $OUT          # the device call (benchmarks/README.md)
    python3 benchmarks/gpu_session.py --plan --budget-s 500              # estimates and what fits; runs nothing
    python3 benchmarks/gpu_session.py --only throughput,aiscientist --budget-s 300 --out $OUT   # a second call
    python3 benchmarks/gpu_session.py --tiny --out /tmp/gs               # every item at toy sizes on the CPU

It installs nothing from the network. jgrok is this working tree (put on PYTHONPATH for every child process);
when tensorboardX is missing and ``.whl/`` holds wheels (benchmarks/gpu_wheels.sh), they are installed from that
folder alone into a temporary --target and put on the path; the scans run with ``--no-tensorboard`` either way.

It prints the environment, then takes the items of ITEMS in order (``--only`` picks some). Each item has
variants, largest first; the largest whose estimated time fits in what is left of ``--budget-s`` and still leaves
the next item's smallest variant its time runs (else the largest that fits at all), in its own process with the
time left as its hard timeout; an item none of whose variants fits is recorded as skipped. Every
result (done, skipped, failed, timed out) is appended as it finishes to ``OUT/results.jsonl`` (one JSON object per
line) and ``OUT/results.md``, so a call cut off at its limit still returns what it finished. One item failing
records its error, and the session goes on.

Time estimate of a variant (the printed plan shows each term):
  processes x START_S                 python, jax import and device start of each process it spawns
  + programs x COMPILE_S              one compilation per distinct (program, chunk, W)
  + sum over precisions of FLOPs / (peak x SHARE)   analytic FLOPs (throughput.flops_per_update for transformers,
                                      6 x params per example for the MLP / ResNet), at an assumed share of the
                                      H200's dense peak (throughput.PEAK_TFLOPS); runs with a stop rule count
                                      their expected share of the budget
  + updates x UPDATE_FLOOR_S          the serial floor: one compiled update cannot take less than this
  + fixed                             PyTorch loops (launch-bound: TORCH_UPDATE_S per update) and data generation
Every child shares one persistent JAX compilation cache in the work folder, so a program that two items compile
alike (the attention item's broadcast form is the throughput item's program) compiles once per session.
Once the throughput item has measured jgrok's fp32 TFLOP/s and compile time on this device, later estimates use
the measured values instead of the assumed ones (the plan of each later item says which it used).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
WHEELS = Path(os.environ.get("GPU_SESSION_WHEELS", ROOT / ".whl"))  # the carried wheels (gpu_wheels.sh)
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# The assumed device: an H200. Dense peaks are throughput.PEAK_TFLOPS's; SHARE is the fraction of that peak the
# estimate assumes jgrok reaches with the template's tiny model (width 128: small matmuls, many kernels per update).
GPU = {"name": "NVIDIA H200", "share": {"fp32": 0.25, "tf32": 0.08, "bf16": 0.04},
       "start_s": 20.0, "compile_s": 25.0, "update_floor_s": 2e-4, "torch_update_s": 4e-3, "torch_tflops": 10.0}
# --tiny on a CPU: a 2-core machine's rates, so that the same budget logic runs in CI
CPU = {"name": "CPU (--tiny)", "tflops": 0.004, "start_s": 8.0, "compile_s": 20.0, "update_floor_s": 5e-3,
       "torch_update_s": 0.05, "torch_tflops": 0.004}
# the template's run_0 (SakanaAI/AI-Scientist templates/grokking, 3 seeds): mean steps to 99% val acc
RUN_0 = {"x_div_y": 4200, "x_minus_y": 4720, "x_plus_y": 2363, "permutation": None}
TEMPLATE = {"task": "x_div_y", "p": 97, "d_model": 128, "n_heads": 4, "n_layers": 2, "batch_size": 512,
            "eval_every": 10}
TINY = {"task": "x_div_y", "p": 11, "d_model": 16, "n_heads": 2, "n_layers": 1, "batch_size": 32, "eval_every": 10}
TINY_SETS = ["--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "model.n_layers=1"]
# --tiny's children compile at the CPU backend's lowest optimisation level: the same programs in 40% of the
# compile time on a 2-core CPU (22 s to 8.5 s for the throughput item's; --tiny checks paths, not speed)
TINY_XLA = "--xla_backend_optimization_level=0"


# ------------------------------------------------------------------------------------------------ estimates


@dataclasses.dataclass
class Cost:
    """What a variant does, in the units of the module docstring's estimate."""

    flops: dict = dataclasses.field(default_factory=dict)  # precision -> FLOPs
    programs: int = 0
    processes: int = 1
    updates: int = 0  # serial compiled updates (one wave after another)
    fixed_s: float = 0.0
    note: str = ""

    def add(self, other: "Cost") -> "Cost":
        flops = dict(self.flops)
        for k, v in other.flops.items():
            flops[k] = flops.get(k, 0.0) + v
        return Cost(flops, self.programs + other.programs, self.processes + other.processes - 1,
                    self.updates + other.updates, self.fixed_s + other.fixed_s,
                    "; ".join(n for n in (self.note, other.note) if n))


def rates(tiny: bool, measured: dict | None = None) -> dict:
    """Seconds and TFLOP/s the estimate uses: assumed (GPU / CPU above), replaced by measured ones where known."""
    from throughput import PEAK_TFLOPS

    base = CPU if tiny else GPU
    r = {k: base[k] for k in ("start_s", "compile_s", "update_floor_s", "torch_update_s", "torch_tflops")}
    if tiny:
        r["tflops"] = {p: CPU["tflops"] for p in ("fp32", "tf32", "bf16")}
    else:
        peak = PEAK_TFLOPS[GPU["name"]]
        r["tflops"] = {p: peak[p] * GPU["share"][p] for p in GPU["share"]}
    r["source"] = "assumed"
    if measured:
        r["tflops"].update(measured.get("tflops", {}))
        if measured.get("compile_s"):
            r["compile_s"] = measured["compile_s"]
        r["source"] = f"measured on this device ({', '.join(sorted(measured))})"
    return r


def seconds(c: Cost, r: dict) -> float:
    return (c.processes * r["start_s"] + c.programs * r["compile_s"] + c.updates * r["update_floor_s"] + c.fixed_s
            + sum(f / (r["tflops"][p] * 1e12) for p, f in c.flops.items()))


def model_flops(prog, table) -> float:
    """Analytic FLOPs of one run's update (evaluation spread over the updates): throughput.flops_per_update for a
    transformer, 6 x parameters per training example and 2 x per evaluated example otherwise."""
    import throughput

    tr = prog.cfg.train
    n_val = table.n_pairs - table.n_train
    batch = table.n_train if tr.sampling == "full" else tr.batch_size
    if prog.cfg.model.kind == "transformer":
        return throughput.flops_per_update(prog.cfg, n_val, table.n_out, batch)
    return 2 * prog.n_params * (3 * batch + n_val / tr.eval_every)


def scan_cost(argv: list[str], expect: float = 1.0) -> Cost:
    """The cost of `jgrok.scan argv`: every program's runs x updates x FLOPs/update x ``expect`` (the share of
    the budget runs are expected to train before their stop rule ends them)."""
    from jgrok import grid
    from jgrok import scan as scan_mod

    cfg = scan_mod.resolve(scan_mod.build_parser().parse_args(argv))
    c = Cost()
    for prog, table, members in grid.programs(cfg, grid.expand(cfg)):
        steps, prec = prog.cfg.train.steps, prog.cfg.train.precision
        prec = prec if prec in ("tf32", "bf16") else "fp32"
        c = c.add(Cost({prec: len(members) * steps * expect * model_flops(prog, table)}, 1, 1,
                       int(steps * expect)))
    return c


# ---------------------------------------------------------------------------------------------- scan helpers


def run_scan(argv: list[str], out: Path):
    """jgrok.scan argv into out (no TensorBoard, no progress line); (the scan as jgrok.open_scan reads it, wall s)."""
    import jgrok
    from jgrok import scan

    full = [*argv, "--no-tensorboard", "--quiet", "--out", str(out)]
    t0 = time.perf_counter()
    code = scan.main(full, hard_exit=True)
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"jgrok.scan exited with {code}: {' '.join(full)}")
    return jgrok.open_scan(out), wall


def group_stats(scan, step_col: str = "step_val_acc_99", reached_col: str = "reached_val_99") -> list[dict]:
    """Per run group (jgrok's run groups and labels, jgrok.scandata.groups): runs, how many reached, and the
    quartiles of steps among those that reached it (steps: the scan's summary column, first evaluation step above
    the threshold)."""
    import numpy as np
    from jgrok import rungroup, scandata

    rows = scan.summary  # typed (jgrok.io.results.parse_summary)
    out = []
    for (_, label), idx in scandata.groups(rows, rungroup.axes(rows)).items():
        rs = [rows[i] for i in idx]
        steps = np.array([float(r[step_col]) for r in rs if r[reached_col]], float)
        row = {"group": label, "runs": len(rs), "reached": len(steps), "lanes": int(rs[0]["lanes"]),
               "final val acc (median)": float(np.median([float("nan") if r.get("final_val_acc") is None
                                                          else float(r["final_val_acc"]) for r in rs]))}
        out.append(dict(row, **quartiles(steps)))
    return out


def scan_item(argv: list[str], out: Path, compare: str, **extra) -> dict:
    scan, wall = run_scan(argv, out)
    table = group_stats(scan, **extra)
    return {"argv": argv, "lanes": table[0]["lanes"], "wall_s": wall, "table": table, "compare": compare}


# ----------------------------------------------------------------------------------- subprocesses and parts


def child_env(extra: dict | None = None) -> dict:
    """The environment of every child: this tree (and the carried wheels' folder) first on PYTHONPATH, no rates
    cache, unbuffered output; JAX_PLATFORMS as the session was given it (the parent itself plans on the CPU)."""
    env = dict(os.environ)
    env.update(json.loads(env.get("GPU_SESSION_ENV", "{}")))
    for k in ("JAX_PLATFORMS",):
        if env.get(f"GPU_SESSION_ORIG_{k}") is not None:
            env[k] = env[f"GPU_SESSION_ORIG_{k}"]
            if not env[k]:
                del env[k]
    paths = [str(ROOT)] + ([env["GPU_SESSION_SITE"]] if env.get("GPU_SESSION_SITE") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(JGROK_RATES="off", PYTHONUNBUFFERED="1")
    if env.get("GPU_SESSION_CACHE"):  # one persistent compilation cache for the session's processes
        env.setdefault("JAX_COMPILATION_CACHE_DIR", env["GPU_SESSION_CACHE"])
    env.update(extra or {})
    return env


def time_left() -> float:
    return float(os.environ.get("GPU_SESSION_DEADLINE", time.time() + 3600)) - time.time()


def spawn(kind: str, name: str, params: dict, work: Path, log, timeout: float, env_extra: dict | None = None) -> dict:
    """Run worker `kind` (an item or a part) in its own process group with a hard timeout; its output goes to
    this process's stdout and to ``log``; returns its result dict, or {"error": ...} / {"timed_out": True}."""
    import signal
    import threading

    work.mkdir(parents=True, exist_ok=True)
    pfile, rfile = work / f"{name}.params.json", work / f"{name}.result.json"
    pfile.write_text(json.dumps(params))
    rfile.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--params", str(pfile),
           "--result", str(rfile)]
    env = child_env(env_extra)
    env["GPU_SESSION_DEADLINE"] = str(time.time() + timeout)
    # a process group of its own, so that a timeout ends its parts too; the same session, so that whatever ends
    # the whole call (the device tool's limit) ends it as well
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            process_group=0)
    tail: list[str] = []

    def pump():
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            if log is not None:
                log.write(line)
                log.flush()
            tail.append(line)
            del tail[:-40]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(5)
        return {"timed_out": True, "error": f"killed after its {timeout:.0f} s", "log_tail": "".join(tail)[-3000:]}
    except BaseException:  # Ctrl-C or SIGTERM (see session): the child's group goes with this process
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    reader.join(5)
    if rfile.exists():
        return json.loads(rfile.read_text())
    return {"error": f"exit {proc.returncode} without a result", "log_tail": "".join(tail)[-3000:]}


def part(name: str, params: dict, work: Path, env_extra: dict | None = None) -> dict:
    """A part of an item in its own process (what needs a fresh process: another XLA_FLAGS, a model switch that
    must be set before anything is traced), within the item's own deadline."""
    res = spawn(name, f"{name}-{len(list(work.glob('*.params.json')))}", params, work, None, time_left() - 2,
                env_extra)
    if "error" in res:
        raise RuntimeError(f"part {name} failed: {res['error']}\n{res.get('log_tail', '')}")
    return res


# ------------------------------------------------------------------------------------------------ throughput


def tp_steps(S: int, tiny: bool) -> tuple[int, int]:
    """(updates of the timed run, updates per chunk = the warm-up) for S runs: about 50,000 seed-steps, 50 to
    500 updates; the warm-up is one chunk of half of them."""
    if tiny:
        return 20, 10
    steps = max(50, min(500, 50_000 // S)) // 10 * 10
    return steps, max(10, steps // 2 // 10 * 10)


def tp_config(dims: dict, S: int, precision: str, tiny: bool):
    import throughput

    steps, chunk = tp_steps(S, tiny)
    return throughput.experiment(argparse.Namespace(**dims, steps=steps, precision=precision, chunk=chunk))


def tp_flops(dims: dict, tiny: bool) -> float:
    from jgrok import grid

    cfg = tp_config(dims, 1, "fp32", tiny)
    (prog, table, _), = grid.programs(cfg, grid.expand(cfg))
    return model_flops(prog, table)


def jgrok_rows(dims: dict, sizes: list[int], precision: str, tiny: bool, engine_w: bool = True) -> list[dict]:
    """throughput.run_jgrok at every S, at W = S (one device) and, where the engine would choose another W, at
    that W too; each row with FLOPs/update, TFLOP/s and share of the device's peak."""
    import jax
    import throughput
    from jgrok import config as config_mod
    from jgrok import engine, grid

    dev = jax.local_devices()[0]
    peak = throughput.PEAK_TFLOPS.get(getattr(dev, "device_kind", ""), {}).get(precision)
    rows = []
    for S in sizes:
        cfg = tp_config(dims, S, precision, tiny)
        (prog, table, _), = grid.programs(config_mod.with_grid(cfg, seed=list(range(S))),
                                          grid.expand(config_mod.with_grid(cfg, seed=list(range(S)))))
        lanes = [-(-S // engine.n_devices())]
        if engine_w:
            lanes = list(dict.fromkeys(lanes + [engine.choose_wave_size(prog, S, engine.n_devices())]))
        for W in lanes:
            row = throughput.run_jgrok(cfg, S, W, lane_bytes=not tiny)  # the GPU reports its peak bytes
            row.update(precision=precision, W_by="engine" if W != lanes[0] else "S per device")
            rows.append(throughput.peak_share(row, model_flops(prog, table), peak))
            print(f"  jgrok S={S} W={W} {precision}: {row['seed_steps_per_s']:,.0f} seed-steps/s", flush=True)
    return rows


def torch_rows(dims: dict, v: dict, tiny: bool) -> list[dict]:
    """throughput.run_torch for each PyTorch mode of the variant, on CUDA where torch sees it."""
    try:
        import torch
    except ImportError as e:
        return [{"system": "torch", "error": f"torch is not installed here ({e})"}]
    import throughput

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = tp_config(dims, 1, "fp32", tiny)
    rows, flops = [], tp_flops(dims, tiny)
    for mode, counts in v["torch"].items():
        for n in counts:
            try:
                row = throughput.run_torch(cfg, mode, n, v["torch_steps"], device)
                rows.append(throughput.peak_share(row, flops, None))
                print(f"  torch {mode} x{n} on {device}: {row['seed_steps_per_s']:,.1f} seed-steps/s", flush=True)
            except Exception as e:  # noqa: BLE001 - one mode failing (e.g. no compiler for torch.compile) is a row
                rows.append({"system": f"torch {mode}", "runs": n, "error": f"{type(e).__name__}: {e}"})
    return rows


def throughput_variants(tiny: bool) -> list[dict]:
    if tiny:
        return [{"label": "S 2; torch eager, vmap x2", "sizes": [2], "torch": {"eager": [1], "vmap": [2]},
                 "torch_steps": 20}]
    return [{"label": "S 1..2048; torch eager, compile, vmap 64/256", "sizes": [1, 64, 256, 1024, 2048],
             "torch": {"eager": [2], "compile": [2], "vmap": [64, 256]}, "torch_steps": 200},
            {"label": "S 1,256,2048; torch eager, compile, vmap 256", "sizes": [1, 256, 2048],
             "torch": {"eager": [2], "compile": [2], "vmap": [256]}, "torch_steps": 200},
            {"label": "S 1,256,2048; torch eager", "sizes": [1, 256, 2048], "torch": {"eager": [2]},
             "torch_steps": 200}]


def jgrok_cost(sizes: list[int], tiny: bool, precisions=("fp32",)) -> Cost:
    F = tp_flops(TINY if tiny else TEMPLATE, tiny)
    c = Cost(processes=1)
    for prec in precisions:
        for S in sizes:
            steps, chunk = tp_steps(S, tiny)
            c = c.add(Cost({prec: S * (steps + chunk) * F}, 1, 1, steps + chunk))
    return c


def throughput_cost(v: dict, tiny: bool) -> Cost:
    r, F = rates(tiny), tp_flops(TINY if tiny else TEMPLATE, tiny)
    fixed = 0.0
    for mode, counts in v["torch"].items():
        for n in counts:
            per = max(r["torch_update_s"], n * F / (r["torch_tflops"] * 1e12))
            fixed += (n if mode != "vmap" else 1) * v["torch_steps"] * per + (60 if mode == "compile" else 5)
    return jgrok_cost(v["sizes"], tiny).add(Cost(fixed_s=fixed, note="torch: launch-bound loops"))


def throughput_run(v: dict, work: Path, tiny: bool) -> dict:
    dims = TINY if tiny else TEMPLATE
    rows = jgrok_rows(dims, v["sizes"], "fp32", tiny) + torch_rows(dims, v, tiny)
    return {"config": dict(dims, preset="ai_scientist"), "lanes": "W = S (and the engine's W where it differs)",
            "table": rows}


def precision_variants(tiny: bool) -> list[dict]:
    return [{"label": "S 2; tf32, bf16", "sizes": [2]}] if tiny else [
        {"label": "S 256, 2048; tf32, bf16", "sizes": [256, 2048]}, {"label": "S 2048; tf32, bf16", "sizes": [2048]}]


def precision_run(v: dict, work: Path, tiny: bool) -> dict:
    dims = TINY if tiny else TEMPLATE
    rows = [r for prec in ("tf32", "bf16") for r in jgrok_rows(dims, v["sizes"], prec, tiny, engine_w=False)]
    return {"config": dict(dims, preset="ai_scientist"), "lanes": "W = S", "table": rows}


def attention_variants(tiny: bool) -> list[dict]:
    return [{"label": "S 2", "sizes": [2]}] if tiny else [
        {"label": "S 256, 2048", "sizes": [256, 2048]}, {"label": "S 2048", "sizes": [2048]}]


def attention_cost(v: dict, tiny: bool) -> Cost:
    c = jgrok_cost(v["sizes"], tiny)
    return c.add(c).add(Cost(processes=3))  # the item's process and its two parts


def attention_part(params: dict) -> dict:
    """W > 1 lanes with one attention form: "products" (the broadcast multiply-sum jgrok picks for W > 1) or
    "matmul" (batched matmuls, what a single lane uses): model.transformer.SMALL_T = 0 turns the products off
    for this process, before anything is traced."""
    if params["form"] == "matmul":
        from jgrok.models import transformer

        transformer.SMALL_T = 0
    rows = jgrok_rows(params["dims"], params["sizes"], "fp32", params["tiny"], engine_w=False)
    return {"rows": [dict(r, attention=params["form"]) for r in rows]}


def attention_run(v: dict, work: Path, tiny: bool) -> dict:
    dims = TINY if tiny else TEMPLATE
    rows = [r for form in ("products", "matmul")
            for r in part("attention_part", dict(v, form=form, dims=dims, tiny=tiny), work)["rows"]]
    return {"config": dict(dims, preset="ai_scientist"), "lanes": "W = S", "table": rows,
            "note": "compare seed-steps/s; compile s of the products form is low where the throughput item "
                    "compiled the same program into the session's compilation cache"}


# -------------------------------------------------------------------------------------------- bit-exactness

DETERMINISTIC = "--xla_gpu_deterministic_ops=true"


def bitexact_argv(v: dict, tiny: bool) -> list[str]:
    n = v["seeds"]
    argv = ["--config", "ai_scientist", "--task", "x_div_y", "--seeds", f"0:{n}", "--steps", str(v["steps"]),
            "--wave-size", str(n)]
    return argv + (TINY_SETS + ["--set", "task.p=11", "--set", "train.batch_size=32"] if tiny else [])


def bitexact_variants(tiny: bool) -> list[dict]:
    if tiny:
        return [{"label": "4 seeds x 20 updates, W 4", "seeds": 4, "steps": 20, "only": "1,3"}]
    return [{"label": "64 seeds x 300 updates, W 64", "seeds": 64, "steps": 300, "only": "5,17"},
            {"label": "16 seeds x 200 updates, W 16", "seeds": 16, "steps": 200, "only": "5,11"}]


def bitexact_cost(v: dict, tiny: bool) -> Cost:
    one = scan_cost(bitexact_argv(v, tiny))
    three = one.add(one).add(one).add(Cost(programs=-2))  # the second and third scan reuse the compiled programs
    return three.add(three).add(Cost(processes=3))


def digests(arrays: dict, rows=None, n_runs: int = 0) -> dict:
    """A short SHA-256 of every array's bytes; with ``rows``, of those rows of the per-run arrays (first axis
    ``n_runs`` long) and of the others whole (e.g. the evaluation steps)."""
    import numpy as np

    def pick(a):
        return a[rows] if rows is not None and a.ndim and a.shape[0] == n_runs else a

    return {k: hashlib.sha256(np.ascontiguousarray(pick(a)).tobytes()).hexdigest()[:16]
            for k, a in sorted(arrays.items())}


def bitexact_part(params: dict) -> dict:
    """The same scan twice, then two of its runs again with --config OUT/config.yaml --only, in one process
    (the later scans reuse the compiled programs): which arrays of metrics.npz differ, and each scan's wall s."""
    work, tiny = Path(params["work"]), params["tiny"]
    argv = bitexact_argv(params, tiny)
    a, wall_a = run_scan(argv, work / "a")
    b, wall_b = run_scan(argv, work / "b")
    only = [int(x) for x in params["only"].split(",")]
    c, wall_c = run_scan(["--config", str(work / "a" / "config.yaml"), "--only", params["only"]], work / "c")
    da, db = digests(a.metrics(per_update=True)), digests(b.metrics(per_update=True))
    dc = digests(c.metrics(per_update=True))
    da_only = digests(a.metrics(per_update=True), only, params["seeds"])
    return {"xla_flags": os.environ.get("XLA_FLAGS", ""), "twice_identical": da == db,
            "twice_differing": [k for k in da if da[k] != db.get(k)], "only_identical": dc == da_only,
            "only_differing": [k for k in dc if dc[k] != da_only.get(k)], "digests": da,
            "wall_s": {"first (compiles)": wall_a, "second": wall_b, "--only": wall_c}}


def bitexact_run(v: dict, work: Path, tiny: bool) -> dict:
    rows = []
    for flagged in (False, True):
        flags = " ".join(x for x in (os.environ.get("XLA_FLAGS", ""), DETERMINISTIC if flagged else "") if x)
        res = part("bitexact_part", dict(v, work=str(work / ("det" if flagged else "default")), tiny=tiny), work,
                   {"XLA_FLAGS": flags} if flags else None)
        rows.append(dict(res, deterministic_ops=flagged))
    same = rows[0]["digests"] == rows[1]["digests"]
    table = [{"XLA_FLAGS": r["xla_flags"] or "(none)", "same scan twice identical": r["twice_identical"],
              "--only identical": r["only_identical"], "differing arrays": ",".join(r["twice_differing"]) or "-",
              "second scan s": round(r["wall_s"]["second"], 2)} for r in rows]
    return {"config": {"argv": bitexact_argv(v, tiny), "only": v["only"]}, "lanes": v["seeds"], "table": table,
            "flag_changes_numbers": not same,
            "flag_cost": rows[1]["wall_s"]["second"] / max(rows[0]["wall_s"]["second"], 1e-9), "parts": rows}


# ------------------------------------------------------------------------------------------------ scan items

STOP99 = ["--stop-when", "val_acc>0.99", "--patience", "1"]
TINY_SCAN = TINY_SETS + ["--set", "task.p=11", "--set", "train.batch_size=32"]


def seeds_variants(tiny_argv: list[str], full: list[tuple[str, list[str]]], tiny: bool) -> list[dict]:
    if tiny:
        return [{"label": "tiny", "argv": tiny_argv}]
    return [{"label": label, "argv": argv} for label, argv in full]


def aiscientist_variants(tiny: bool) -> list[dict]:
    base = ["--config", "ai_scientist", "--task", "x_div_y,x_minus_y,x_plus_y,permutation", *STOP99]
    return seeds_variants(base + ["--task", "x_div_y", "--seeds", "0:2", "--steps", "20"] + TINY_SCAN,
                          [(f"4 tasks x {n} seeds x 7500 updates", base + ["--seeds", f"0:{n}"]) for n in (64, 32, 16)],
                          tiny)


def aiscientist_run(v: dict, work: Path, tiny: bool) -> dict:
    res = scan_item(v["argv"], work / "scan", "the template's run_0 (3 seeds, mean steps to 99% val acc): "
                    + ", ".join(f"{k} {v or 'never'}" for k, v in RUN_0.items()))
    for row in res["table"]:
        row["run_0"] = RUN_0.get(row["group"].removeprefix("task="), "-") or "never"
    return res


def init_study_variants(tiny: bool) -> list[dict]:
    base = ["--config", "ai_scientist_init_study", *STOP99]
    return seeds_variants(base + ["--task", "x_plus_y", "--init", "default,xavier_uniform", "--seeds", "0:2",
                                  "--steps", "20"] + TINY_SCAN,
                          [(f"4 tasks x 6 schemes x {n} seeds", base + ["--seeds", f"0:{n}"]) for n in (64, 16, 4)],
                          tiny)


def preset_variants(preset: str, full: list[tuple[str, list[str]]], tiny_argv: list[str]):
    return lambda tiny: seeds_variants(["--config", preset, *tiny_argv],
                                       [(label, ["--config", preset, *argv]) for label, argv in full], tiny)


def scan_run(compare: str):
    return lambda v, work, tiny: scan_item(v["argv"], work / "scan", compare)


def nanda_run(v: dict, work: Path, tiny: bool) -> dict:
    """Steps to 99% val acc, and each run's five largest Fourier frequencies at the last evaluation."""
    import jgrok
    import numpy as np

    res = scan_item(v["argv"], work / "scan", "Nanda et al. 2023: a handful of key frequencies; the test loss "
                    "falls after the restricted loss (jgrok.analyze shows the picture)")
    spec, _ = jgrok.open_scan(work / "scan").curves("fourier_spectrum")
    res["key_frequencies"] = {str(r): [int(f) for f in np.argsort(spec[r, -1])[::-1][:5]] for r in range(len(spec))}
    return res


def superseed_variants(tiny: bool) -> list[dict]:
    base = ["--config", "seed_luck", *STOP99]
    grid_ = [(64, 32), (32, 32), (16, 16)]
    return seeds_variants(base + ["--seeds", "0:2", "--data-seeds", "0:2", "--steps", "20"] + TINY_SCAN,
                          [(f"{m} model seeds x {d} data seeds", base + ["--seeds", f"0:{m}", "--data-seeds", f"0:{d}"])
                           for m, d in grid_], tiny)


def superseed_run(v: dict, work: Path, tiny: bool) -> dict:
    """Steps to 99% val acc (never-reached counted at the budget) split into model-seed and data-seed parts: the
    share of their variance that the means per model seed and per data seed explain."""
    import jgrok
    import numpy as np

    res = scan_item(v["argv"], work / "scan", "seed 000: which seeds are super seeds, model seed or data seed")
    rows = jgrok.open_scan(work / "scan").summary
    steps = np.array([float(r["step_val_acc_99"]) for r in rows])
    for axis in ("seed", "split_seed"):
        keys = np.array([r[axis] for r in rows])
        means = {k: steps[keys == k].mean() for k in set(keys)}
        between = np.var([means[k] for k in keys])
        res[f"variance_share_{axis}"] = float(between / steps.var()) if steps.var() > 0 else None
        res[f"fastest_{axis}s"] = sorted(means, key=means.get)[:5]
    return res


def mheight_variants(tiny: bool) -> list[dict]:
    if tiny:
        return [{"label": "mheight_tiny, 10 epochs", "argv": ["--config", "mheight_tiny", "--epochs", "10"]}]
    return [{"label": f"wd 0.01/0.03/0.1, {e} epochs", "argv": ["--config", "mheight_wd", "--epochs", str(e)]}
            for e in (2400, 1200)]


def mheight_cost(v: dict, tiny: bool) -> Cost:
    """Without building the data (that takes minutes): 3 runs (tiny: 4) x 26 updates per epoch (tiny: 1) of
    about 2 x 45,000 parameters x (3 x 4096 + 210,000 / 130) FLOPs, plus the data's generation when its cache
    file is missing (about 180 s on one CPU core; tiny: 5 s)."""
    epochs = int(v["argv"][-1])
    updates = epochs * (1 if tiny else 26)
    flops = (4 if tiny else 3) * updates * (2 * 45_000 * (3 * 4096 + 210_000 / 130) if not tiny else 1e7)
    cache = Path(os.environ.get("JGROK_DATA", "data"))
    have = any(cache.glob("mheight-seed0-15000pergroup*")) if not tiny else True
    return Cost({"fp32": flops}, 1, 1, updates, 5.0 if tiny else (0.0 if have else 180.0),
                "data cached" if have else "data generated first (~180 s)")


def mheight_run(v: dict, work: Path, tiny: bool) -> dict:
    """Per weight decay: final losses and the epoch of the largest fall of the val loss between evaluations."""
    import jgrok
    import numpy as np

    scan, wall = run_scan(v["argv"], work / "scan")
    val, steps = scan.curves("val_loss")
    train_, _ = scan.curves("train_loss")
    per_epoch = max(1, int(steps[-1]) // int(v["argv"][-1]))  # the last evaluation is after the last update
    table = []
    for i, r in enumerate(scan.summary):
        j = int(np.nanargmax(-np.diff(np.log(np.maximum(val[i], 1e-12))))) + 1 if val.shape[1] > 1 else 0
        table.append({"wd": r["wd"], "seed": r["seed"], "largest val-loss drop at epoch": int(steps[j]) // per_epoch,
                      "train loss there": float(train_[i, j]), "final val loss": float(r["final_val_loss"]),
                      "final train loss": float(r["final_train_loss"]), "lanes": int(float(r["lanes"]))})
    return {"argv": v["argv"], "lanes": table[0]["lanes"], "wall_s": wall, "table": table,
            "compare": "seed 003: wd 0.01 drops near epoch 780, 0.03 near 520 while the train loss rises, 0.1 never "
                       "by 2,400"}


# ------------------------------------------------------------------------------------------------- grokfast


def grokfast_variants(tiny: bool) -> list[dict]:
    if tiny:
        return [{"label": "tiny", "seeds": 2, "steps": 20, "torch_s": 1.0, "extra": TINY_SETS}]
    return [{"label": f"{n} seeds a side; torch for {t:.0f} s a side", "seeds": n, "steps": 5000, "torch_s": t,
             "extra": []} for n, t in ((256, 60.0), (64, 30.0), (16, 15.0))]


def grokfast_cost(v: dict, tiny: bool) -> Cost:
    c = Cost(processes=1)
    for k in ("ema", "ma"):
        c = c.add(scan_cost(["--config", f"grokfast_{k}", "--seeds", f"0:{v['seeds']}", "--steps", str(v["steps"]),
                             *v["extra"]], 1.0 if tiny else 0.2))
    return c.add(Cost(fixed_s=2 * v["torch_s"] + 10, note="jgrok runs stop at 95% (about 20% of 5,000 assumed)"))


def grokfast_run(v: dict, work: Path, tiny: bool) -> dict:
    """fidelity.measure for grokfast_ema and grokfast_ma, and the source's loop (grokfast_torch.run, torch on
    the same device) for as many seeds as fit in torch_s seconds a side."""
    import fidelity
    import jgrok
    import numpy as np

    table = []
    for k in ("ema", "ma"):
        preset = f"grokfast_{k}"
        m = fidelity.measure(preset, f"0:{v['seeds']}", v["steps"], work / preset, list(v["extra"]))
        steps = np.array([s for _, s, _ in m["runs"].values()], float)
        lanes = int(float(jgrok.open_scan(work / preset).summary[0]["lanes"]))
        table.append(dict(system=f"jgrok {preset}", lanes=lanes, wall_s=m["wall_s"], runs=len(steps),
                          **quartiles(steps),
                          reached=sum(r for _, _, r in m["runs"].values()), source=fidelity.SOURCES[preset][1]))
        table.append(torch_grokfast(k, v, fidelity.SOURCES[preset][1]))
    return {"config": {"presets": ["grokfast_ema", "grokfast_ma"], **v}, "lanes": table[0]["lanes"],
            "table": table, "compare": "ironjr/grokfast README (seed 0: EMA 910, MA 790) and the source's own loop "
                                       "(benchmarks/grokfast_torch.py) over seeds on this device"}


def quartiles(steps) -> dict:
    """Median, quartiles, mean and the fewest of a list of steps ({} when empty)."""
    import numpy as np

    if not len(steps):
        return {}
    q1, med, q3 = np.percentile(steps, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(np.mean(steps)),
            "fastest": float(np.min(steps))}


def torch_grokfast(kind: str, v: dict, source: int) -> dict:
    try:
        import grokfast_torch
        import torch
    except ImportError as e:
        return {"system": f"torch source loop {kind}", "error": f"torch is not installed here ({e})"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0, runs = time.perf_counter(), []
    while time.perf_counter() - t0 < v["torch_s"] and time_left() > 10:
        runs.append(grokfast_torch.run(len(runs), kind, v["steps"], device=device))
    steps = [r["steps"] for r in runs]
    return dict(system=f"torch source loop {kind} ({device})", wall_s=time.perf_counter() - t0, runs=len(steps),
                **quartiles(steps),
                reached=sum(r["reached"] for r in runs), source=source)


# ---------------------------------------------------------------------------------------------------- items


@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    title: str
    compare: str
    variants: object  # tiny -> [variant dict with a "label"], largest first
    cost: object  # (variant, tiny) -> Cost
    run: object  # (variant, work folder, tiny) -> result dict


def argv_cost(expect: float):
    return lambda v, tiny: scan_cost(v["argv"], 1.0 if tiny else expect)


TINY_PRESET = ["--seeds", "0:2", "--steps", "20"] + TINY_SETS
ITEMS = [
    Item("throughput", "jgrok seed-steps/s at the template size, fp32, against PyTorch eager / compile / vmap",
         "PyTorch on the same device (torch_reference.py); the H200's fp32 peak", throughput_variants,
         throughput_cost, throughput_run),
    Item("bitexact", "bit-exactness on this device: the same scan twice and with --only, with and without "
         f"XLA_FLAGS={DETERMINISTIC}", "itself (identical or not), and the flag's cost", bitexact_variants,
         bitexact_cost, bitexact_run),
    Item("precision", "jgrok seed-steps/s at tf32 and bf16", "the throughput item's fp32 rows; the H200's tf32 / "
         "bf16 peaks", precision_variants, lambda v, tiny: jgrok_cost(v["sizes"], tiny, ("tf32", "bf16")),
         precision_run),
    Item("attention", "the two attention forms for W > 1: broadcast multiply-sum (jgrok's choice) and batched "
         "matmul", "each other (the engine picks the form per backend)", attention_variants, attention_cost,
         attention_run),
    Item("aiscientist", "the AI-Scientist baseline: 4 tasks, 7,500 updates, eval every 10",
         "the template's run_0 (3 seeds)", aiscientist_variants, argv_cost(0.6), aiscientist_run),
    Item("grokfast", "Grokfast EMA and MA: steps to 95% val acc over seeds, jgrok and the source's loop",
         "ironjr/grokfast's README and its loop in torch", grokfast_variants, grokfast_cost, grokfast_run),
    Item("julia_loss", "julia_loss: seq2val against seq2seq", "the Julia reproduction's finding (seed 002)",
         preset_variants("julia_loss", [("2 losses x 32 seeds", []), ("2 losses x 8 seeds", ["--seeds", "0:8"])],
                         ["--seeds", "0:2", "--only", "0,1", "--epochs", "2", "--set", "task.p=11"] + TINY_SETS),
         argv_cost(0.5), scan_run("the Julia/Flux reproduction: seq2seq groks later than seq2val")),
    Item("nanda", "nanda: the Fourier picture", "Nanda et al. 2023", preset_variants(
        "nanda", [("4 seeds x 50,000 updates", ["--seeds", "0:4", "--measures", "fourier"]),
                  ("1 seed x 50,000 updates", ["--seeds", "0:1", "--measures", "fourier"])],
        TINY_PRESET + ["--set", "task.p=11", "--measures", "fourier"]), argv_cost(1.0), nanda_run),
    Item("init_scale", "init_scale: Omnigrok's init-scale sweep", "Omnigrok figure 7", preset_variants(
        "init_scale", [("5 scales x 4 seeds", ["--seeds", "0:4"]), ("5 scales x 1 seed", ["--seeds", "0:1"])],
        TINY_PRESET + ["--set", "task.p=11"]), argv_cost(1.0),
         scan_run("Omnigrok figure 7: large init scales delay or prevent generalisation")),
    Item("prieto", "prieto_2025 at its full 80,000 updates", "Prieto et al. 2025, figure 1", preset_variants(
        "prieto_2025", [("4 variants x 80,000 updates", []), ("4 variants x 20,000", ["--steps", "20000"])],
        ["--steps", "20", "--set", "task.p=11", "--only", "0"]), argv_cost(1.0),
         scan_run("Prieto et al. 2025 figure 1: the float32 softmax baseline stalls; stablemax, float64 and "
                  "orthogonal-gradient AdamW generalise")),
    Item("init_study", "the template's init-scheme study", "the schemes against each other (log-rank in report)",
         init_study_variants, argv_cost(0.6), scan_run("the template's init study: schemes against each other")),
    Item("superseed", "the super-seed grid: model seed x data seed", "seed 000 (seed-luck)", superseed_variants,
         argv_cost(0.4), superseed_run),
    Item("mheight_wd", "the m-height weight-decay study", "seed 003", mheight_variants, mheight_cost, mheight_run),
]
BY_NAME = {it.name: it for it in ITEMS}
PARTS = {"attention_part": attention_part, "bitexact_part": bitexact_part}


def smallest(name: str | None, tiny: bool, measured: dict | None = None) -> float:
    """The estimate of an item's smallest variant (0 for no item)."""
    if name is None:
        return 0.0
    item = BY_NAME[name]
    return seconds(item.cost(item.variants(tiny)[-1], tiny), rates(tiny, measured))


def choose(item: Item, tiny: bool, left: float, measured: dict | None = None, reserve: float = 0.0) -> dict:
    """The item's first (largest) variant whose estimate fits in ``left`` seconds while leaving ``reserve`` for
    the next item's smallest variant; else its first variant that fits at all; with every variant's estimate and
    the decision in words."""
    r = rates(tiny, measured)
    tried, fits = [], []
    for v in item.variants(tiny):
        c = item.cost(v, tiny)
        est = seconds(c, r)
        tried.append({"label": v["label"], "estimate_s": round(est, 1),
                      "tflop": round(sum(c.flops.values()) / 1e12, 3), "programs": c.programs,
                      "processes": c.processes, "note": c.note})
        if est <= left:
            fits.append((v, est))
    both = [(v, est) for v, est in fits if est + reserve <= left]
    if both or fits:
        v, est = (both or fits)[0]
        spare = f", leaving the next item's {reserve:.0f} s" if both and reserve else ""
        return {"item": item.name, "fits": True, "variant": v, "estimate_s": est, "tried": tried,
                "rates": r["source"], "why": f"{v['label']}: {est:.0f} s <= {left:.0f} s left{spare}"}
    return {"item": item.name, "fits": False, "variant": None, "estimate_s": None, "tried": tried,
            "rates": r["source"], "why": f"no variant fits in {left:.0f} s (smallest: {tried[-1]['estimate_s']:.0f} s)"}


def plan(names: list[str], budget: float, tiny: bool, measured: dict | None = None, used: float = 0.0) -> list[dict]:
    """What a session of ``budget`` seconds would run, in order, assuming each item takes its estimate."""
    out = []
    for i, name in enumerate(names):
        nxt = names[i + 1] if i + 1 < len(names) else None
        d = choose(BY_NAME[name], tiny, budget - used, measured, smallest(nxt, tiny, measured))
        used += d["estimate_s"] or 0.0
        out.append(d)
    return out


def print_plan(decisions: list[dict], budget: float, tiny: bool) -> None:
    r = rates(tiny)
    rate_txt = ", ".join(f"{p} {t:.1f} TFLOP/s" for p, t in r["tflops"].items())
    where = CPU["name"] if tiny else f"{GPU['name']} at {', '.join(f'{p} {s:.0%}' for p, s in GPU['share'].items())}" \
                                     " of its dense peak"
    print(f"plan for {budget:.0f} s on {where}: {rate_txt}; {r['start_s']:.0f} s per process, "
          f"{r['compile_s']:.0f} s per compiled program, {r['update_floor_s'] * 1e3:.2f} ms per serial update")
    total = 0.0
    for d in decisions:
        mark = "RUN " if d["fits"] else "skip"
        total += d["estimate_s"] or 0.0
        print(f"{mark} {d['item']:<12} {d['why']}" + (f"  (cumulative {total:.0f} s)" if d["fits"] else ""))
        for t in d["tried"]:
            print(f"       {t['label']:<46} {t['estimate_s']:>8.1f} s  {t['tflop']:>10.3f} TFLOP  "
                  f"{t['programs']} program(s), {t['processes']} process(es){'  ' + t['note'] if t['note'] else ''}")


# ----------------------------------------------------------------------------------------------- the session


def environment() -> dict:
    """jax, its devices and their memory, the driver, torch, the Python and the machine (run in a child, on the
    device the session measures)."""
    import jax

    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "python": sys.version.split()[0], "machine": platform.platform(), "jax": jax.__version__,
           "backend": jax.default_backend(), "devices": []}
    for d in jax.local_devices():
        try:
            mem = (d.memory_stats() or {}).get("bytes_limit")
        except Exception:  # noqa: BLE001 - backends without memory stats
            mem = None
        env["devices"].append({"kind": getattr(d, "device_kind", d.platform), "platform": d.platform,
                               "memory_gib": round(mem / 2**30, 1) if mem else None})
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                        "--format=csv,noheader"], capture_output=True, text=True,
                                       timeout=20).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        env["driver"] = None
    for mod in ("torch", "tensorboardX", "flax", "optax", "orbax.checkpoint"):
        try:
            env[mod] = __import__(mod, fromlist=["_"]).__version__
        except Exception as e:  # noqa: BLE001 - missing or broken: recorded
            env[mod] = f"missing ({type(e).__name__})"
    return env


def install_wheels(work: Path) -> str:
    """When tensorboardX cannot be imported and .whl/ holds wheels: pip-install them from that folder alone (no
    index, no dependencies) into work/site, and put it on the children's path. Returns what was done."""
    try:
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is not None:
            return "tensorboardX present; no wheels installed"
    except (ImportError, ValueError):
        pass
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        return "tensorboardX missing and no carried wheels: scans run without TensorBoard (--no-tensorboard)"
    site = work / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--target", str(site), *map(str, wheels)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        return f"installing the carried wheels failed: {res.stderr.strip()[-500:]}"
    os.environ["GPU_SESSION_SITE"] = str(site)
    return f"installed {', '.join(w.name for w in wheels)} into {site}"


def md_section(rec: dict) -> str:
    res = rec.get("result") or {}
    lines = [f"## {rec['item']}: {rec['title']}", "",
             f"- status: **{rec['status']}**" + (f" ({rec['why']})" if rec.get("why") else ""),
             f"- variant: {rec.get('variant') or '-'}; estimate {rec.get('estimate_s') or 0:.0f} s, "
             f"wall {rec.get('wall_s') or 0:.0f} s",
             f"- device: {rec['device']}; date: {rec['date']}; W: {res.get('lanes', '-')}",
             f"- compared against: {res.get('compare') or rec['compare']}"]
    if res.get("argv") or res.get("config"):
        lines.append(f"- config: `{json.dumps(res.get('config') or res.get('argv'))}`")
    if rec.get("error"):
        lines += ["", "```", str(rec["error"])[-2000:], "```"]
    table = res.get("table") or []
    if table:
        cols = list(dict.fromkeys(k for row in table for k in row))
        fmt = lambda x: f"{x:,.4g}" if isinstance(x, float) else str(x)  # noqa: E731
        lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in cols) + " |" for row in table]
    extra = {k: v for k, v in res.items() if k not in ("table", "argv", "config", "compare", "lanes", "parts")}
    if extra:
        lines += ["", "```json", json.dumps(extra, default=str)[:3000], "```"]
    return "\n".join(lines) + "\n\n"


def record(out: Path, rec: dict) -> None:
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
    with open(out / "results.md", "a") as f:
        f.write(md_section(rec))


def calibrate(measured: dict, name: str, res: dict) -> None:
    """Measured TFLOP/s per precision and compile s from the throughput items, for the later estimates."""
    rows = [r for r in res.get("table", []) if r.get("system") == "jgrok" and r.get("tflops")]
    for r in rows:
        p = r.get("precision", "fp32")
        measured.setdefault("tflops", {})[p] = max(measured.get("tflops", {}).get(p, 0.0), r["tflops"])
    if name == "throughput" and rows:
        measured["compile_s"] = max(r.get("compile_s", 0.0) for r in rows)


def session(a) -> int:
    import signal

    t0 = time.time()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # ends the running item's processes too (spawn)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work or tempfile.mkdtemp(prefix="gpu_session_"))
    log = open(out / "session.log", "a")
    names = a.only or [it.name for it in ITEMS]
    installed = install_wheels(work)
    if a.tiny:
        os.environ["XLA_FLAGS"] = " ".join(x for x in (os.environ.get("XLA_FLAGS", ""), TINY_XLA) if x)
    os.environ["GPU_SESSION_CACHE"] = str(work / "jax_cache")
    os.environ.setdefault("JGROK_DATA", str(work / "data"))  # the m-height data, unless a cache is given
    env = spawn("environment", "environment", {}, work, log, 120)
    device = ", ".join(d["kind"] for d in env.get("devices", [])) or "unknown"
    env["wheels"] = installed
    print("environment: " + json.dumps(env), flush=True)
    base = {"date": env.get("date", datetime.date.today().isoformat()), "device": device}
    env_table = [{k: v for k, v in env.items() if k != "devices"}]
    record(out, dict(base, item="environment", title="the machine", compare="-", status="done",
                     result={"table": env_table, "devices": env.get("devices")}))
    measured: dict = {}
    for i, name in enumerate(names):
        item = BY_NAME[name]
        left = a.budget_s - (time.time() - t0) - 5
        nxt = names[i + 1] if i + 1 < len(names) else None
        d = choose(item, a.tiny, left, measured, smallest(nxt, a.tiny, measured))
        rec = dict(base, item=name, title=item.title, compare=item.compare, why=d["why"], rates=d["rates"],
                   estimate_s=d["estimate_s"], variant=d["variant"] and d["variant"]["label"], tried=d["tried"])
        if not d["fits"]:
            print(f"--- {name}: skipped: {d['why']}", flush=True)
            record(out, dict(rec, status="skipped"))
            continue
        print(f"--- {name}: {d['why']}", flush=True)
        s0 = time.time()
        res = spawn(name, name, {"variant": d["variant"], "tiny": a.tiny, "work": str(work / name)}, work, log, left)
        rec.update(wall_s=time.time() - s0)
        if "error" in res:
            rec.update(status="timeout" if res.get("timed_out") else "failed",
                       error=res["error"] + "\n" + res.get("log_tail", ""))
        else:
            rec.update(status="done", result=res)
            calibrate(measured, name, res)
        print(f"--- {name}: {rec['status']} in {rec['wall_s']:.0f} s (estimate {d['estimate_s']:.0f} s)", flush=True)
        record(out, rec)
    print(f"session done in {time.time() - t0:.0f} s; results in {out / 'results.jsonl'} and {out / 'results.md'}")
    if not a.work and not a.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def worker(a) -> int:
    """One item or part in this process: read its params, write its result (or its error) as JSON."""
    params = json.loads(Path(a.params).read_text())
    try:
        if a.worker == "environment":
            res = environment()
        elif a.worker in PARTS:
            res = PARTS[a.worker](params)
        else:
            work = Path(params["work"])
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            res = BY_NAME[a.worker].run(params["variant"], work, params["tiny"])
    except BaseException as e:  # noqa: BLE001 - every failure becomes the item's recorded error
        traceback.print_exc()
        res = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2500:]}"}
    Path(a.result).write_text(json.dumps(res, default=str))
    return 0


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall seconds for the whole session (default 500; with --tiny 3600)")
    ap.add_argument("--out", help="folder for results.jsonl, results.md and session.log (appended to)")
    ap.add_argument("--only", help=f"comma list of items, in the given order: {','.join(BY_NAME)}")
    ap.add_argument("--plan", action="store_true", help="print the items, their estimates and which fit; run nothing")
    ap.add_argument("--tiny", action="store_true", help="every item at toy sizes on the CPU (same code path)")
    ap.add_argument("--work", help="folder for the scans' results (default: a temporary folder, removed)")
    ap.add_argument("--keep-work", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.budget_s is None:
        a.budget_s = 3600.0 if a.tiny else 500.0
    if a.only:
        a.only = [x.strip() for x in a.only.split(",") if x.strip()]
        unknown = [x for x in a.only if x not in BY_NAME]
        if unknown:
            ap.error(f"unknown item(s) {', '.join(unknown)}; use some of {', '.join(BY_NAME)}")
    if not a.plan and not a.worker and not a.out:
        ap.error("--out DIR is needed to run (or --plan to only print the plan)")
    if a.budget_s <= 0:
        ap.error(f"--budget-s must be positive, not {a.budget_s:g}")
    return a


def main(argv=None) -> int:
    a = parse(argv)
    if a.worker:
        return worker(a)
    # the parent only plans and spawns: it keeps jax on the CPU (children get the platform the session was given)
    os.environ.setdefault("GPU_SESSION_ORIG_JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", ""))
    os.environ["JAX_PLATFORMS"] = "cpu"
    if a.plan:
        print_plan(plan(a.only or list(BY_NAME), a.budget_s, a.tiny), a.budget_s, a.tiny)
        return 0
    return session(a)


if __name__ == "__main__":
    sys.exit(main())
