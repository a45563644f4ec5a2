"""The engine: waves, chunks, devices, progress. The only module that knows about devices and wall-clock time.

A program's runs are packed into *waves* of W lanes. On D local devices, D waves sit side by side as one
sharded array of D x W lanes (a ``runs`` mesh axis, W lanes per device), so every device executes the same
W-wide program and a run's numbers depend only on its config and W — not on its lane, its neighbours, the
number of runs or the number of devices. The last wave is padded with copies of its first run; padded lanes
are computed and thrown away.

All waves of a program advance together, one compiled chunk of K updates at a time; between chunks the host
collects metrics, reports progress and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jgrok import grid as grid_mod
from jgrok import train
from jgrok.errors import ConfigError


@dataclasses.dataclass
class ProgramResult:
    """What one program's runs produced. Row i of every array belongs to ``rows[i]``."""

    prog: train.Program
    rows: list[dict]
    eval_step: np.ndarray  # int[E]: 1-based update counts at which evaluations happened
    metrics: dict  # name -> float32[R, E]: train_loss, train_acc (mean over updates since previous eval), evals
    step_loss: np.ndarray  # float32[R, S] training-batch loss at each update
    step_acc: np.ndarray  # float32[R, S]
    diverged_step: np.ndarray  # int32[R], -1 when the run never diverged
    final_params: dict | None  # pytree of [R, ...] numpy arrays
    lanes: int


def eval_steps(total: int, eval_every: int) -> np.ndarray:
    """Evaluations happen after update counts eval_every, 2*eval_every, ... and always after the last update."""
    steps = list(range(eval_every, total + 1, eval_every))
    if not steps or steps[-1] != total:
        steps.append(total)
    return np.array(steps, np.int64)


def per_run_bytes(prog: train.Program) -> int:
    """Rough device memory of one lane: parameters, gradients, optimiser and filter state, and activations of a
    training batch and of an evaluation slice (float32)."""
    m, tr = prog.cfg.model, prog.cfg.train
    P = prog.n_params
    slots = 4 + (1 if "ema" in prog.filters else 0) + (prog.window_max if "ma" in prog.filters else 0)
    if prog.kind == "regress":  # ResNet: ~6 activations of width D per block and example, plus the input
        per_example = prog.n_vocab + 6 * m.width * (m.blocks + 1)
        batch = prog.n_train if tr.sampling == "full" else tr.batch_size
        acts = batch * per_example * 2 + min(tr.eval_batch, prog.n_pairs) * per_example // 2
        return 4 * (slots * P + acts + prog.n_pairs)
    T = 4
    per_example = m.n_layers * T * (12 * m.d_model + 3 * m.d_model * m.mlp_ratio + 2 * m.n_heads * T)
    batch = prog.n_train if tr.sampling == "full" else tr.batch_size
    acts = batch * per_example * 2 + min(tr.eval_batch, prog.n_pairs) * per_example // 2
    return 4 * (slots * P + acts + prog.n_pairs)


def device_free_bytes() -> int:
    dev = jax.local_devices()[0]
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:  # host memory (CPU backend)
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        return info.get("MemAvailable", 8 << 30)
    except OSError:
        return 8 << 30


def choose_wave_size(prog: train.Program, n_runs: int, n_devices: int) -> int:
    """Default W: as many lanes per device as fit in half of the free device memory, but no more than needed."""
    fit = max(1, int(0.5 * device_free_bytes() // per_run_bytes(prog)))
    need = -(-n_runs // n_devices)
    return max(1, min(fit, need))


class Progress:
    """One line of progress on stderr: steps, seed-steps per second, ETA."""

    def __init__(self, label: str, total_steps: int, n_runs: int, enabled: bool = True):
        self.label, self.total, self.n_runs, self.enabled = label, total_steps, n_runs, enabled
        self.t0 = None
        self.done0 = 0
        self.tty = sys.stderr.isatty()

    def update(self, step: int):
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.t0 is None:  # the first chunk includes compilation: measure speed from its end
            self.t0, self.done0 = now, step
            rate_txt, eta_txt = "compiling done", ""
        else:
            rate = (step - self.done0) * self.n_runs / max(now - self.t0, 1e-9)
            eta = (self.total - step) * self.n_runs / max(rate, 1e-9)
            rate_txt, eta_txt = f"{rate:,.0f} seed-steps/s", f"ETA {_fmt_time(eta)}"
        frac = step / self.total
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        line = f"[{self.label}] [{bar}] {step}/{self.total} updates x {self.n_runs} runs | {rate_txt} {eta_txt}"
        end = "\r" if self.tty and step < self.total else "\n"
        print(line.ljust(100) if self.tty else line, end=end, file=sys.stderr, flush=True)

    def rate(self, step: int) -> float:
        if self.t0 is None or step == self.done0:
            return float("nan")
        return (step - self.done0) * self.n_runs / (time.perf_counter() - self.t0)


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _mesh() -> Mesh:
    return Mesh(np.array(jax.local_devices()), ("runs",))


_COMPILED: dict = {}


def _compiled(prog: train.Program, K: int):
    """jit-compiled init and chunk functions, shared by every program with the same static content."""
    c = prog.cfg
    traced = dataclasses.replace(c.train, steps=0, eval_every=0)  # both are traced arguments of the chunk
    init = dataclasses.replace(c.init, groups="")  # group overrides are per-run values (seed_G, scheme_G)
    key = (c.task, c.model, c.optim, init, traced, prog.n_vocab, prog.n_out, prog.n_pairs, prog.n_train,
           prog.schemes, prog.filters, prog.window_max, K, prog.kind, prog.n_groups)
    if key not in _COMPILED:
        _COMPILED[key] = (train.make_init(prog), train.make_chunk(prog, K))
    return _COMPILED[key]


class Interrupted(Exception):
    """Raised between chunks when a stop was requested; a checkpoint of the last chunk has been written."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def train_program(prog: train.Program, table, rows: list[dict], lanes: int, *, progress: bool = True,
                  on_chunk: Callable | None = None, keep_params: bool = True, ckpt=None, checkpoint_every: int = 0,
                  should_stop: Callable[[], bool] | None = None) -> ProgramResult:
    """Train every run of one program; return its curves and final parameters.

    ckpt: an Orbax CheckpointManager (jgrok.io.checkpoint.manager) or None. With one, training resumes from its
    newest checkpoint, saves every ``checkpoint_every`` updates (at the first chunk end past each multiple) and at
    the end, and when ``should_stop()`` turns true it saves after the current chunk and raises Interrupted.
    Resumed runs end bit-identical to uninterrupted ones: a run's numbers do not depend on its lane.
    """
    tr = prog.cfg.train
    total, every = tr.steps, tr.eval_every
    K = min(prog.cfg.engine.chunk, total)
    mesh = _mesh()
    D = mesh.size
    L = D * lanes
    R = len(rows)
    shard = NamedSharding(mesh, PartitionSpec("runs"))
    repl = NamedSharding(mesh, PartitionSpec())
    init_fn, chunk_fn = _compiled(prog, K)
    data = jax.device_put((jnp.asarray(table.inputs), jnp.asarray(table.targets)), repl)

    # pack runs into groups of L lanes (D waves side by side); pad the last group with copies of its first run
    groups = []
    for start in range(0, R, L):
        idx = list(range(start, min(start + L, R)))
        padded = idx + [idx[0]] * (L - len(idx))
        hp = grid_mod.hyper(prog, [rows[i] for i in padded])
        hp = jax.device_put(hp, shard)
        groups.append({"idx": np.array(idx), "padded": np.array(padded), "n": len(idx), "hp": hp, "state": None})

    steps_e = eval_steps(total, every)
    E = len(steps_e)
    keys = train.eval_keys(prog)
    host = {f"eval/{k}": np.full((R, E), np.nan, np.float32) for k in keys}
    host["step_loss"] = np.full((R, total), np.nan, np.float32)
    host["step_acc"] = np.full((R, total), np.nan, np.float32)
    host["run"] = np.array([r["run"] for r in rows], np.int64)
    evals = {k: host[f"eval/{k}"] for k in keys}
    step_loss, step_acc = host["step_loss"], host["step_acc"]
    eval_pos = {int(s) - 1: j for j, s in enumerate(steps_e)}  # 0-based update index -> eval column

    start_step = 0
    abstract = jax.eval_shape(init_fn, groups[0]["hp"])
    treedef = jax.tree.structure(abstract)
    restored = None
    if ckpt is not None:
        like_leaves = [np.zeros((R,) + x.shape[1:], x.dtype) for x in jax.tree.leaves(abstract)]
        restored = ckpt_mod().restore(ckpt, ckpt_mod().pack(like_leaves, host, 0))
    if restored is not None:
        start_step, tree = restored
        if not np.array_equal(tree["run"], host["run"]):
            raise ConfigError("The checkpoint holds other runs than this scan; it belongs to another grid.")
        for k in host:
            host[k][...] = tree[k]
        leaves = [tree["state"][f"leaf_{i:04d}"] for i in range(len(like_leaves))]
        for g in groups:
            rows_ = g["padded"]
            g["state"] = jax.device_put(jax.tree.unflatten(treedef, [x[rows_] for x in leaves]), shard)
    else:
        for g in groups:
            g["state"] = init_fn(g["hp"])
    bar = Progress(prog.cfg.task.name, total, R, enabled=progress)

    def save(step_done):
        parts = [jax.device_get(g["state"]) for g in groups]
        leaves = [np.concatenate([np.asarray(x)[: g["n"]] for x, g in zip(xs, groups)], axis=0)
                  for xs in zip(*(jax.tree.leaves(p) for p in parts))]
        ckpt_mod().save(ckpt, step_done, ckpt_mod().pack(leaves, host, step_done))

    for step0 in range(start_step, total, K):
        outs, new_cols = [], set()
        for g in groups:  # dispatch every group before waiting on any
            g["state"], out = chunk_fn(g["state"], g["hp"], data, np.int32(step0), np.int32(every), np.int32(total))
            outs.append(out)
        n_here = min(K, total - step0)
        for g, (loss, acc, ev) in zip(groups, outs):
            n, idx = g["n"], g["idx"]
            step_loss[idx, step0:step0 + n_here] = np.asarray(loss)[:n_here, :n].T
            step_acc[idx, step0:step0 + n_here] = np.asarray(acc)[:n_here, :n].T
            rows_here = [i for i in range(n_here) if step0 + i in eval_pos]
            new_cols.update(eval_pos[step0 + i] for i in rows_here)
            if rows_here:
                cols = [eval_pos[step0 + i] for i in rows_here]
                for k in keys:
                    vals = np.asarray(ev[k][np.array(rows_here)])[:, :n]  # [len(rows_here), n]
                    evals[k][np.ix_(idx, cols)] = vals.T
        done = step0 + n_here
        bar.update(done)
        if on_chunk is not None and new_cols:
            cols = sorted(new_cols)
            vals = {k: evals[k][:, cols] for k in keys}
            for name, per_step in (("train_loss", step_loss), ("train_acc", step_acc)):
                vals[name] = np.stack([per_step[:, (steps_e[j - 1] if j else 0):steps_e[j]].mean(axis=1)
                                       for j in cols], axis=1)
            on_chunk(steps_e[cols], vals, [r["run"] for r in rows])
        if ckpt is not None:
            due = checkpoint_every and done // checkpoint_every > step0 // checkpoint_every
            stop = should_stop is not None and should_stop()
            if due or stop or done == total:
                save(done)
            if stop and done < total:
                raise Interrupted(done)

    # train loss/acc at an eval = mean over the updates since the previous eval (the template's definition)
    metrics = {"train_loss": np.full((R, E), np.nan, np.float32), "train_acc": np.full((R, E), np.nan, np.float32)}
    prev = 0
    for j, s in enumerate(steps_e):
        metrics["train_loss"][:, j] = step_loss[:, prev:s].mean(axis=1)
        metrics["train_acc"][:, j] = step_acc[:, prev:s].mean(axis=1)
        prev = s
    metrics.update(evals)

    diverged = np.full(R, -1, np.int32)
    final_params = None
    parts = []
    for g in groups:
        state = jax.device_get(g["state"])
        diverged[g["idx"]] = np.asarray(state.diverged_step)[: g["n"]]
        if keep_params:
            parts.append(jax.tree.map(lambda x, n=g["n"]: np.asarray(x)[:n], state.params))
    if keep_params:
        final_params = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *parts)
    # a diverged run's curves end at its divergence: later values describe frozen parameters, so drop them
    for r in np.nonzero(diverged >= 0)[0]:
        d = diverged[r]
        step_loss[r, d:] = np.nan
        step_acc[r, d:] = np.nan
        for k in metrics:
            metrics[k][r, steps_e > d] = np.nan
    return ProgramResult(prog, rows, steps_e, metrics, step_loss, step_acc, diverged, final_params, lanes)


def ckpt_mod():
    from jgrok.io import checkpoint

    return checkpoint


def check_lanes(lanes: int) -> None:
    if lanes < 1:
        raise ConfigError(f"--wave-size must be at least 1, not {lanes}.")


def n_devices() -> int:
    return jax.local_device_count()


def platform() -> str:
    d = jax.local_devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.local_device_count()}"

