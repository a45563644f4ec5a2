"""Where a compiled jgrok chunk spends its time, per part of the model and of the update, on whatever device runs it.

    python benchmarks/profile_step.py --lanes 1,8,64                  # the AI-Scientist template's size
    python benchmarks/profile_step.py --lanes 1,16 --p 31 --d-model 64 --n-layers 1 --batch-size 128 --eval-every 25

For each wave width W: W seeds of the experiment of ``benchmarks/throughput.py`` (same flags, same defaults) are
trained once to compile, then once more under ``jax.profiler.trace``. The trace holds one event per XLA thunk
(a fusion, a dot, a copy, a loop's condition ...) on the backend's worker threads; each event's *self* time (its
duration minus the events nested in it on the same thread) is summed per thunk, and each thunk is attributed
through the source stack XLA keeps for its HLO instruction (the compiled chunk's ``as_text()``: file names,
functions and lines) to one part:

  attention core   scores, mask, softmax and weighted values (``Attention.__call__`` outside its projections)
  qkv/out proj.    the attention's two Linear layers
  MLP matmuls      the block's two Linear layers
  activation       the MLP's nonlinearity (the template's exact-erf GELU)
  layer norm       flax's LayerNorm
  embed/head       token and position embeddings, the output head
  loss             cross-entropy and its gradient
  optimiser        optax (AdamW, schedule, clipping) and jgrok.optim
  evaluation       the periodic evaluation of the train and validation splits
  batches          drawing each update's batch
  other            everything else (loop control, copies the compiler added, the stop rule, metrics)
  unattributed     thunks whose name is not in the separately compiled chunk's text (the profiled program was
                   compiled differently, e.g. the single-lane path); a large share means the table cannot say

and, separately, forward or backward (an instruction whose name stack holds ``transpose(`` is backward). The
table gives per part the milliseconds per seed-step and the share of the profiled thunk time; "busy" is the thunk
time summed over threads as a share of wall time x threads (what the machine's cores spent in XLA's kernels).
The profile of a loaded machine still says where the time goes; its absolute numbers are slower.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import throughput  # noqa: E402
from jgrok import config as config_mod  # noqa: E402
from jgrok import engine, grid, train  # noqa: E402

PARTS = ("attention core", "qkv/out proj.", "MLP matmuls", "activation", "layer norm", "embed/head", "loss",
         "optimiser", "evaluation", "batches", "other", "unattributed")
WRAPPERS = ("ThunkExecutor::Execute", "ThunkExecutor::Execute (wait for completion)")


def hlo_stacks(text: str) -> dict[str, tuple[list[str], str]]:
    """Instruction name -> (the function names of its source stack, innermost first, each 'file:function'; its
    op_name) from an optimised HLO module's text with its FileNames / FunctionNames / FileLocations / StackFrames
    tables."""
    tables: dict[str, dict[int, str]] = {}
    current = None
    instr: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            current = tables.setdefault(line, {})
            continue
        if current is not None:
            m = re.match(r"(\d+) (.*)", line)
            if m:
                current[int(m.group(1))] = m.group(2)
                continue
            current = None
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{([^}]*)\}", line)
        if m:
            frame = re.search(r"stack_frame_id=(\d+)", m.group(2))
            op = re.search(r'op_name="([^"]*)"', m.group(2))
            instr[m.group(1)] = (int(frame.group(1)) if frame else 0, op.group(1) if op else "")
    files = {k: v.strip('"') for k, v in tables.get("FileNames", {}).items()}
    funcs = {k: v.strip('"') for k, v in tables.get("FunctionNames", {}).items()}
    locs = {}
    for k, v in tables.get("FileLocations", {}).items():
        f, fn = re.search(r"file_name_id=(\d+)", v), re.search(r"function_name_id=(\d+)", v)
        locs[k] = f"{Path(files.get(int(f.group(1)), '?')).name}:{funcs.get(int(fn.group(1)), '?')}"
    frames = {}
    for k, v in tables.get("StackFrames", {}).items():
        loc, parent = re.search(r"file_location_id=(\d+)", v), re.search(r"parent_frame_id=(\d+)", v)
        frames[k] = (int(loc.group(1)), int(parent.group(1)))
    out = {}
    for name, (fid, op) in instr.items():
        stack, seen = [], set()
        while fid and fid in frames and fid not in seen:
            seen.add(fid)
            loc, parent = frames[fid]
            stack.append(locs.get(loc, "?"))
            fid = parent - 1  # the table prints parent_frame_id one above the parent's own number; 0: none
        out[name] = (stack, op)
    return out


def part_of(stack: list[str]) -> str:
    """The PARTS entry of an instruction, from its source stack (innermost first)."""
    if "train.py:_batch" in stack:
        return "batches"
    if "train.py:evaluate" in stack or "train.py:_split_metrics" in stack:
        return "evaluation"
    if any(s.startswith(("_combining", "base.py", "transform.py", "_tree_math", "numerics", "_adding", "optim.py",
                         "alias.py", "_schedule", "clipping", "update.py")) for s in stack):
        return "optimiser"
    for s in stack:  # innermost model-level frame decides
        if s.startswith("normalization.py"):
            return "layer norm"
        if s.startswith("transformer.py:Block.mlp"):
            return "activation" if not any(x.startswith("linear.py") for x in stack[:stack.index(s)]) \
                else "MLP matmuls"
        if s.startswith("transformer.py:Attention"):
            return "qkv/out proj." if any(x.startswith("linear.py") for x in stack[:stack.index(s)]) \
                else "attention core"
        if s.startswith("transformer.py:Transformer") or s.startswith("transformer.py:Embed"):
            return "embed/head"
        if s.startswith("losses.py") or s.endswith(".loss"):
            return "loss"
    return "other"


def self_times(profile_path: str) -> tuple[dict[str, float], int]:
    """Thunk name -> summed self time (ns) over the XLA worker threads of one trace, and the number of threads."""
    pd = jax.profiler.ProfileData.from_file(profile_path)
    totals: dict[str, float] = collections.defaultdict(float)
    threads = 0
    for plane in pd.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            evs = sorted(((e.start_ns, e.duration_ns, e.name) for e in line.events), key=lambda x: (x[0], -x[1]))
            if any(n not in WRAPPERS for _, _, n in evs):
                threads += 1
            open_: list[tuple[int, str]] = []  # (end, name) of the events enclosing the current one
            for start, dur, name in evs:
                while open_ and open_[-1][0] <= start:
                    open_.pop()
                if open_ and open_[-1][1] not in WRAPPERS:
                    totals[open_[-1][1]] -= dur  # a direct child's time is not its parent's own
                if name not in WRAPPERS:
                    totals[name] += dur
                open_.append((start + dur, name))
    return dict(totals), threads


def profile(cfg: config_mod.Config, W: int) -> dict:
    cfg = config_mod.with_grid(cfg, seed=list(range(W)))
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    K = min(cfg.engine.chunk, cfg.train.steps)
    engine.train_program(prog, table, members, W, progress=False, keep_params=False)  # compiles
    state, hp = engine._abstract_wave(prog, W)
    i32 = jax.ShapeDtypeStruct((), jnp.int32)
    text = train.make_chunk(prog, K).lower(state, hp, engine.abstract_data(prog), i32, i32, i32).compile().as_text()
    stacks = hlo_stacks(text)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with jax.profiler.trace(d):
            engine.train_program(prog, table, members, W, progress=False, keep_params=False)
        wall = time.perf_counter() - t0
        path, = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)
        times, threads = self_times(path)
    seed_steps = W * cfg.train.steps
    part = {name: part_of(stacks[name][0]) if name in stacks else "unattributed" for name in times}
    parts = collections.defaultdict(float)
    backward = 0.0
    for name, ns in times.items():
        parts[part[name]] += ns
        backward += ns if "transpose(" in stacks.get(name, ([], ""))[1] else 0.0
    total = sum(parts.values())
    return {"W": W, "wall_s": wall, "seed_steps": seed_steps, "threads": threads, "thunk_s": total / 1e9,
            "busy": total / 1e9 / (wall * max(threads, 1)),
            "unattributed_share": parts["unattributed"] / total if total else 0.0,
            "parts_ms_per_seed_step": {p: parts[p] / 1e6 / seed_steps for p in PARTS},
            "backward_share": backward / total if total else 0.0,
            "top": sorted(((n, t / 1e6 / seed_steps, part[n]) for n, t in times.items()),
                          key=lambda x: -x[1])[:12]}


def table(rows: list[dict]) -> str:
    head = "| part | " + " | ".join(f"W = {r['W']}: ms/seed-step (share)" for r in rows) + " |"
    lines = [head, "|---|" + "---|" * len(rows)]
    for p in PARTS:
        cells = []
        for r in rows:
            ms = r["parts_ms_per_seed_step"][p]
            tot = sum(r["parts_ms_per_seed_step"].values())
            cells.append(f"{ms:.3f} ({100 * ms / tot:.0f}%)")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("| **all thunks** | " + " | ".join(f"**{sum(r['parts_ms_per_seed_step'].values()):.3f}**"
                                                 for r in rows) + " |")
    lines.append("| wall per seed-step | " + " | ".join(f"{1e3 * r['wall_s'] / r['seed_steps']:.3f} ms"
                                                       for r in rows) + " |")
    lines.append("| busy (thunks / wall x threads) | " + " | ".join(f"{100 * r['busy']:.0f}% of {r['threads']}"
                                                                   for r in rows) + " |")
    lines.append("| backward share | " + " | ".join(f"{100 * r['backward_share']:.0f}%" for r in rows) + " |")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lanes", default="1,8,64", help="wave widths W (comma list); each trains W seeds")
    throughput.experiment_flags(ap, task="x_plus_y")
    ap.add_argument("--steps", type=int, default=20, help="updates per profiled run (one chunk)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    a.chunk = a.steps
    cfg = throughput.experiment(a)
    rows = []
    for W in (int(x) for x in a.lanes.split(",")):
        r = profile(cfg, W)
        rows.append(r)
        print(f"W = {W}: {r['seed_steps'] / r['wall_s']:.1f} seed-steps/s under the profiler; top thunks:",
              file=sys.stderr)
        for n, ms, part in r["top"][:6]:
            print(f"  {ms:.3f} ms/seed-step  {n}  ({part})", file=sys.stderr)
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps({"config": vars(a) | {"json": str(a.json)}, "rows": rows}, indent=1, default=str))
    return rows


if __name__ == "__main__":
    main()
