"""The engine: waves, chunks, devices, progress. The only module that knows about devices and wall-clock time.

A program's runs are packed into *waves* of W lanes. On D local devices, wave i runs on device i mod D, so
D waves run side by side and every device executes the same W-wide program: a run's numbers depend only on its
config and W — not on its lane, its neighbours, the number of runs or the number of devices. The last wave is
padded with copies of its first run; padded lanes are computed and thrown away.

All waves of a program advance together, one compiled chunk of K updates at a time; between chunks the host
collects metrics, reports progress and writes checkpoints. Runs that stopped (``train.stop_when``) or diverged
are frozen inside the chunk; between chunks they leave the device and the rest are re-packed into fewer waves
(compaction), so a heavy-tailed scan stops paying for finished runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jgrok import grid as grid_mod
from jgrok import measures, models, train
from jgrok.errors import ConfigError
from jgrok.io import checkpoint


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
    stopped_step: np.ndarray | None = None  # int32[R]: updates done when the stop rule fired; -1 when it never did
    start_step: int = 0  # updates every run had done before this call (> 0 when resumed from a checkpoint)
    first_chunk_s: float = float("nan")  # wall seconds of this call's first chunk, compilation included
    rate: float = float("nan")  # seed-steps per second after the first chunk (NaN with one chunk only)


def eval_steps(total: int, eval_every: int) -> np.ndarray:
    """Evaluations happen after update counts eval_every, 2*eval_every, ... and always after the last update."""
    steps = list(range(eval_every, total + 1, eval_every))
    if not steps or steps[-1] != total:
        steps.append(total)
    return np.array(steps, np.int64)


def per_run_bytes(prog: train.Program) -> int:
    """Rough device memory of one lane: parameters, gradients, optimiser and filter state (as the optimiser builds
    it), and activations of a training batch and of an evaluation slice (the model's count per example; float32)."""
    tr = prog.cfg.train
    per_example = models.per_example_floats(prog.cfg.model, prog.n_inputs, prog.n_out)
    batch = prog.n_train if tr.sampling == "full" else tr.batch_size
    acts = batch * per_example * 2 + min(tr.eval_batch, prog.n_rows) * per_example // 2
    state = 2 * prog.n_params + optimiser_floats(prog)  # parameters and gradients, optimiser and filter state
    return 4 * (state + acts + prog.n_rows) + measures.extra_bytes(prog, per_example)


@functools.lru_cache(maxsize=64)
def optimiser_floats(prog: train.Program) -> int:
    """Numbers in one run's optimiser state (moments, filter buffers, counters), from the state's shapes as the
    program's optimiser initialises it (nothing is computed)."""
    state, _ = _abstract_wave(prog, 1)
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state.opt_state)))


def _abstract_wave(prog: train.Program, W: int):
    """Shapes of a wave's (state, hp) at W lanes, without computing anything."""
    hp = train.hyper_shapes(W, len(prog.groups))
    return jax.eval_shape(train.make_init(prog), hp), hp


def abstract_data(prog: train.Program):
    """Shapes and dtypes of a program's task table (inputs, targets) as a chunk receives it, as its task kind
    says (jgrok.tasks.kinds): for a classification int32 tokens [N, T] and int32 labels [N]; for a regression
    float32 features [N, F] (F = ``prog.n_inputs``) and float32 targets [N]."""
    return prog.kind.abstract_data(prog)


def measured_lane_bytes(prog: train.Program, K: int, widths=(2, 4)) -> tuple[int, int] | None:
    """(fixed, per_lane) device bytes of one compiled chunk, from XLA's memory analysis of the chunk compiled at
    two small widths a < b (arguments + outputs - donated aliases + temporaries) and extrapolated linearly:
    bytes(W) ~ fixed + per_lane * W. None when the backend does not report it."""
    sizes = []
    data = abstract_data(prog)
    i32 = jax.ShapeDtypeStruct((), jnp.int32)
    for W in widths:
        state, hp = _abstract_wave(prog, W)
        compiled = train.make_chunk(prog, K).lower(state, hp, data, i32, i32, i32).compile()
        try:
            m = compiled.memory_analysis()
        except (NotImplementedError, jax.errors.JaxRuntimeError):  # backends without memory analysis
            return None
        if m is None:
            return None
        sizes.append(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)
    (a, b), (fa, fb) = widths, sizes
    per_lane = max(1, (fb - fa) // (b - a))
    return max(0, fa - a * per_lane), per_lane


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


# On a CPU a wider wave is not faster per seed-step beyond a point: two cores are busy with one run's matmuls
# already at the template's size. Measured on the 2-core development CPU (benchmarks/RESULTS.md, 2026-12-07), the
# fastest W per seed-step was 16 for tiny_cpu (18.5 MiB per lane by per_run_bytes), 1 for the template (200 MiB)
# and 8-64 for the width-32 model (7.7 MiB); W = 128 for tiny_cpu was 13% slower than 16. So on a CPU the default
# W is at most the largest power of two whose lanes' estimate stays within CPU_WAVE_BYTES: a rule of the config and
# the backend alone (not of the machine's free memory or speed), so equal configs choose equal W everywhere.
CPU_WAVE_BYTES = 384 * 2**20


def cpu_lanes(prog: train.Program) -> int:
    """The CPU's cap on the default W (CPU_WAVE_BYTES): the largest power of two W with W x per_run_bytes within
    it, at least 1."""
    fit = max(1, CPU_WAVE_BYTES // max(per_run_bytes(prog), 1))
    return 1 << (int(fit).bit_length() - 1)


def choose_wave_size(prog: train.Program, n_runs: int, n_devices: int, free: int | None = None,
                     backend: str | None = None) -> int:
    """Default W: as many lanes per device as fit in half of the free device memory, but no more than needed, and
    on a CPU no more than ``cpu_lanes`` (``backend``: jax's default backend unless given).

    When the analytic estimate (per_run_bytes) says the needed lanes fill less than a quarter of the free memory,
    they are taken without measuring; otherwise the footprint is measured from the compiled chunk
    (measured_lane_bytes) and the analytic estimate is only the fallback."""
    free = device_free_bytes() if free is None else free
    need = -(-n_runs // n_devices)
    if (backend or jax.default_backend()) == "cpu":
        need = min(need, cpu_lanes(prog))
    if per_run_bytes(prog) * need <= 0.25 * free:
        return max(1, need)
    measured = measured_lane_bytes(prog, min(prog.cfg.engine.chunk, prog.cfg.train.steps))
    if measured is None:
        fit = int(0.5 * free // per_run_bytes(prog))
    else:
        fixed, per_lane = measured
        fit = int((0.5 * free - fixed) // per_lane)
    return max(1, min(fit, need))


class Progress:
    """One line of progress on stderr: steps, seed-steps per second, ETA. Timing is kept even when the line is
    off: ``first_chunk_s`` = wall seconds of the first chunk (compilation included), ``rate`` = seed-steps per
    second after it."""

    def __init__(self, label: str, total_steps: int, n_runs: int, enabled: bool = True):
        self.label, self.total, self.n_runs, self.enabled = label, total_steps, n_runs, enabled
        self.t0 = None
        self.done0 = 0
        self.t_begin = None
        self.first_chunk_s = float("nan")
        self.last = (0, 0.0)
        self.compiling = True  # set by ``begin``: whether the first chunk compiles the program
        self.tty = sys.stderr.isatty()

    def begin(self, step: int, compiling: bool = True):
        """Before the first chunk, which compiles the program (unless this process has compiled it) and runs."""
        self.t_begin = time.perf_counter()
        self.compiling = compiling
        self._line(step, "compiling and running the first chunk ..." if compiling else "running the first chunk ...",
                   "")

    def update(self, step: int):
        now = time.perf_counter()
        self.last = (step, now)
        if self.t0 is None:  # the first chunk includes compilation: measure speed from its end
            self.t0, self.done0 = now, step
            if self.t_begin is not None:
                self.first_chunk_s = now - self.t_begin
            what = "first chunk (with compilation)" if self.compiling else "first chunk"
            rate_txt, eta_txt = f"{what} took {self.first_chunk_s:.1f} s", ""
        else:
            rate = (step - self.done0) * self.n_runs / max(now - self.t0, 1e-9)
            eta = (self.total - step) * self.n_runs / max(rate, 1e-9)
            rate_txt, eta_txt = f"{rate:,.0f} seed-steps/s", f"ETA {_fmt_time(eta)}"
        self._line(step, rate_txt, eta_txt)

    def _line(self, step: int, rate_txt: str, eta_txt: str):
        if not self.enabled:
            return
        frac = step / self.total
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        line = f"[{self.label}] [{bar}] {step}/{self.total} updates x {self.n_runs} runs | {rate_txt} {eta_txt}"
        end = "\r" if self.tty and step < self.total else "\n"
        print(line.ljust(100) if self.tty else line, end=end, file=sys.stderr, flush=True)

    def rate(self) -> float:
        """Seed-steps per second from the end of the first chunk to the last update (NaN before a second chunk)."""
        if self.t0 is None or self.last[0] == self.done0:
            return float("nan")
        return (self.last[0] - self.done0) * self.n_runs / max(self.last[1] - self.t0, 1e-9)


def _fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


_RAN: set = set()  # (program, K, W, devices) this process has trained, so compiled


class Interrupted(Exception):
    """Raised between chunks when a stop was requested; a checkpoint of the last chunk has been written."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


class OutOfMemory(Exception):
    """Raised when a program's first chunk at W lanes does not fit in device memory; nothing was saved."""

    def __init__(self, lanes: int, message: str):
        super().__init__(message)
        self.lanes = lanes


def is_oom(e: BaseException) -> bool:
    """True for XLA's allocator errors (RESOURCE_EXHAUSTED / out of memory)."""
    text = str(e)
    return isinstance(e, jax.errors.JaxRuntimeError) and ("RESOURCE_EXHAUSTED" in text or
                                                          "out of memory" in text.lower())


def end_step(diverged_step: np.ndarray, stopped_step: np.ndarray) -> np.ndarray:
    """Updates each run did before it diverged or stopped (its curves end there); -1 for runs that did not."""
    return np.where(diverged_step >= 0, diverged_step, stopped_step).astype(np.int64)


POLL_S = 0.05  # how often the host looks whether a chunk is done: the longest a signal handler waits to run
STUCK_FACTOR, STUCK_MIN_S = 20.0, 60.0  # a chunk "may be stuck" once it has run longer than both of: STUCK_FACTOR
# times the median wall time of the earlier chunks of its program (dispatch to outputs ready), and STUCK_MIN_S
STALL_ENV = "JGROK_TEST_STALL"  # test hook, "C:S": chunk C (0-based, per program) counts as not done for S more seconds


class ChunkClock:
    """When the chunk the host waits for was dispatched: the caller makes one, hands it to train_program and reads
    ``running_s()`` from elsewhere (the CLI's signal handler says how long the current chunk has run)."""

    def __init__(self):
        self.since: float | None = None  # perf_counter time of the dispatch; None when the host is not waiting

    def running_s(self) -> float | None:
        """Seconds the chunk the host is waiting for has been running (from its dispatch), or None when the host
        is not waiting for one (compiling, saving, writing results)."""
        return None if self.since is None else time.perf_counter() - self.since


class ChunkWaiter:
    """Waits for a program's chunks by polling their outputs' readiness (``is_ready``) every POLL_S seconds.

    A blocking wait (``device_get``) parks the main thread in native code, where Python cannot run a SIGINT or
    SIGTERM handler until the chunk ends; a wait that sleeps in Python answers a signal within POLL_S. It also
    times every chunk and prints once (per program) on stderr when a chunk has run past STUCK_FACTOR times the
    median of the earlier ones and past STUCK_MIN_S: the program, W and the device, so a user can tell a hung scan
    from a slow one."""

    def __init__(self, prog: train.Program, lanes: int, clock: ChunkClock | None = None):
        self.clock = ChunkClock() if clock is None else clock
        self.label = f"{prog.cfg.task.name} / {prog.cfg.optim.name}"
        self.lanes = lanes
        self.walls: list[float] = []  # wall seconds of the chunks done so far
        self.warned = False
        stall = os.environ.get(STALL_ENV, "")
        self.stall = tuple(float(x) for x in stall.split(":")) if stall else None

    def wait(self, step0: int, since: float, arrays) -> None:
        """Return once every array (a pytree of the chunk's outputs) is computed; ``since``: its dispatch time."""
        pending = [x for x in jax.tree.leaves(arrays) if isinstance(x, jax.Array)]
        n = len(self.walls)
        hold = since + self.stall[1] if self.stall and int(self.stall[0]) == n else 0.0
        limit = max(STUCK_FACTOR * float(np.median(self.walls)), STUCK_MIN_S) if self.walls else None
        self.clock.since = since
        try:
            while True:
                pending = [x for x in pending if not x.is_ready()]
                now = time.perf_counter()
                if not pending and now >= hold:
                    break
                if limit is not None and not self.warned and now - since > limit:
                    self.warned = True
                    print(f"\njgrok: the chunk from update {step0} of program {self.label} has run "
                          f"{_fmt_time(now - since)}, over {STUCK_FACTOR:g}x the median of the {n} chunk(s) before "
                          f"it; it may be stuck (W = {self.lanes} lanes, device {platform()}).", file=sys.stderr,
                          flush=True)
                time.sleep(POLL_S)
        finally:
            self.clock.since = None
        self.walls.append(time.perf_counter() - since)


@dataclasses.dataclass
class Wave:
    """W lanes of one compiled chunk on one device: the runs it trains and the padding lanes after them."""

    runs: np.ndarray  # int[n]: indices into the program's rows of the runs in lanes 0 .. n-1
    padded: np.ndarray  # int[W]: ``runs``, then copies of the first run in the padding lanes
    hp: train.Hyper  # [W] per-lane values, on the wave's device
    device: int  # index into jax.local_devices()
    state: train.RunState | None = None  # [W], on the wave's device

    @property
    def n(self) -> int:
        return len(self.runs)


class Fleet:
    """Where a program's runs are: waves of W lanes on the devices, and a host copy of the state of runs that are
    not (or no longer) on a device. Wave i runs on device i mod D, so D waves run side by side."""

    def __init__(self, prog: train.Program, rows: list[dict], lanes: int, devices: list, init_fn):
        self.lanes, self.devices, self.n_runs = lanes, devices, len(rows)
        self.hp = grid_mod.hyper(prog, rows)  # [R] per-run values
        self.abstract = jax.eval_shape(init_fn, jax.tree.map(lambda x: x[np.zeros(lanes, np.int64)], self.hp))
        self.treedef = jax.tree.structure(self.abstract)
        self.store: list | None = None  # host leaves [R, ...]
        self.waves: list[Wave] = []

    def pack(self, ids) -> list[Wave]:
        """Waves of W lanes holding the runs ``ids``; the last one padded with copies of its first run."""
        out: list[Wave] = []
        for start in range(0, len(ids), self.lanes):
            idx = list(ids[start:start + self.lanes])
            padded = np.array(idx + [idx[0]] * (self.lanes - len(idx)))
            dev = len(out) % len(self.devices)
            hp = jax.device_put(jax.tree.map(lambda x: x[padded], self.hp), self.devices[dev])
            out.append(Wave(np.array(idx), padded, hp, dev))
        return out

    def init(self, init_fn) -> None:
        """Every run freshly initialised; on the first device (one compile), then moved to its wave's device."""
        self.waves = self.pack(np.arange(self.n_runs))
        for w in self.waves:
            hp0 = w.hp if w.device == 0 else jax.device_put(w.hp, self.devices[0])
            w.state = init_fn(hp0) if w.device == 0 else jax.device_put(init_fn(hp0), self.devices[w.device])

    def like_leaves(self) -> list:
        """Zeros shaped like every run's state leaves [R, ...] (the layout of a checkpoint)."""
        return [np.zeros((self.n_runs,) + x.shape[1:], x.dtype) for x in jax.tree.leaves(self.abstract)]

    def place(self, leaves: list, only_live: bool) -> None:
        """Hold ``leaves`` (every run's state) on the host and put its runs (those still training, with only_live)
        on the devices in as few waves as hold them."""
        self.store = leaves
        alive = np.asarray(jax.tree.unflatten(self.treedef, leaves).alive)
        self.waves = self.pack(np.nonzero(alive)[0] if only_live else np.arange(self.n_runs))
        for w in self.waves:
            w.state = jax.device_put(jax.tree.unflatten(self.treedef, [x[w.padded] for x in leaves]),
                                     self.devices[w.device])

    def gather(self) -> list:
        """Every run's newest state, as numpy leaves [R, ...]."""
        leaves = [x.copy() for x in self.store] if self.store is not None else None
        for w in self.waves:
            part = jax.tree.leaves(jax.device_get(w.state))
            if leaves is None:
                leaves = [np.zeros((self.n_runs,) + np.shape(x)[1:], np.asarray(x).dtype) for x in part]
            for dst, x in zip(leaves, part):
                dst[w.runs] = np.asarray(x)[: w.n]
        return leaves

    def ends(self, w: Wave) -> tuple[np.ndarray, int]:
        """(end step of each run of the wave, see :func:`end_step`; how many of its runs still train)."""
        diverged, stopped, alive = jax.device_get((w.state.diverged_step, w.state.stopped_step, w.state.alive))
        return end_step(np.asarray(diverged)[: w.n], np.asarray(stopped)[: w.n]), int(np.asarray(alive)[: w.n].sum())


class Curves:
    """The host copy of what a program's runs report: every evaluation key [R, E, ...] at the eval steps, and the
    training batch's loss and accuracy [R, S] at every update. Its ``arrays`` are what a checkpoint holds."""

    def __init__(self, prog: train.Program, rows: list[dict], total: int, every: int):
        R = len(rows)
        self.steps = eval_steps(total, every)
        self.keys = train.eval_keys(prog)
        E = len(self.steps)
        self.arrays = {f"eval/{k}": np.full((R, E) + shape, np.nan, np.float32)
                       for k, shape in train.eval_shapes(prog).items()}
        self.arrays["step_loss"] = np.full((R, total), np.nan, np.float32)
        self.arrays["step_acc"] = np.full((R, total), np.nan, np.float32)
        self.arrays["run"] = np.array([r["run"] for r in rows], np.int64)
        self.evals = {k: self.arrays[f"eval/{k}"] for k in self.keys}
        self.step_loss, self.step_acc = self.arrays["step_loss"], self.arrays["step_acc"]
        self.column = {int(s) - 1: j for j, s in enumerate(self.steps)}  # 0-based update index -> eval column

    def load(self, tree: dict) -> None:
        """Take the curves of a checkpoint, which must hold the same runs."""
        if not np.array_equal(tree["run"], self.arrays["run"]):
            raise ConfigError("The checkpoint holds other runs than this scan; it belongs to another grid.")
        for k, a in self.arrays.items():
            a[...] = tree[k]

    def write(self, w: Wave, step0: int, n_here: int, out) -> list[int]:
        """Store one wave's chunk outputs (loss, acc [K, W]; evals {key: [K, W, ...]}) for updates step0 ..
        step0 + n_here - 1; return the eval columns they filled."""
        loss, acc, ev = out
        self.step_loss[w.runs, step0:step0 + n_here] = np.asarray(loss)[:n_here, :w.n].T
        self.step_acc[w.runs, step0:step0 + n_here] = np.asarray(acc)[:n_here, :w.n].T
        rows_here = [i for i in range(n_here) if step0 + i in self.column]
        cols = [self.column[step0 + i] for i in rows_here]
        if rows_here:
            for k in self.keys:
                vals = np.asarray(ev[k][np.array(rows_here)])[:, :w.n]  # [len(rows_here), n, ...]
                self.evals[k][np.ix_(w.runs, cols)] = vals.swapaxes(0, 1)
        return cols

    def mask_ended(self, runs, ends, lo: int, hi: int, extra: dict | None = None) -> None:
        """NaN the values of runs past their end (diverged or stopped; end -1: never) in update range [lo, hi): the
        per-update curves and the evaluations (and the ``extra`` [R, E] curves) after the end."""
        for r, e in zip(runs, ends):
            if e >= 0:
                self.step_loss[r, max(e, lo):hi] = np.nan
                self.step_acc[r, max(e, lo):hi] = np.nan
                for curve in (extra or self.evals).values():
                    curve[r, (self.steps > e) & (self.steps <= hi)] = np.nan

    def train_means(self, cols: list[int]) -> dict:
        """train_loss, train_acc [R, len(cols)] at eval columns ``cols``: the mean over the updates since the
        previous evaluation (the template's definition)."""
        return {name: np.stack([per_step[:, (self.steps[j - 1] if j else 0):self.steps[j]].mean(axis=1)
                                for j in cols], axis=1)
                for name, per_step in (("train_loss", self.step_loss), ("train_acc", self.step_acc))}

    def chunk_values(self, cols: list[int]) -> tuple[np.ndarray, dict]:
        """(steps, {key: [R, len(cols)]}) of eval columns ``cols``, as ``on_chunk`` receives them."""
        return self.steps[cols], {k: self.evals[k][:, cols] for k in self.keys} | self.train_means(cols)

    def metrics(self, ends: np.ndarray) -> dict:
        """Every [R, E] curve (train_loss, train_acc, then the evaluations), each run's ending at its end."""
        out = self.train_means(list(range(len(self.steps)))) | self.evals
        self.mask_ended(np.arange(len(ends)), ends, 0, int(self.steps[-1]), extra=out)
        return out


@contextlib.contextmanager
def out_of_memory_as_w(lanes: int, active: bool = True):
    """Turn a device allocator error into OutOfMemory (the caller may retry at a smaller W) while ``active``."""
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        if active and is_oom(e):
            raise OutOfMemory(lanes, str(e).splitlines()[0]) from None
        raise


def run_chunk(fleet: Fleet, chunk_fn, data: list, waiter: ChunkWaiter, step0: int, every: int, total: int) -> list:
    """Dispatch the chunk from update ``step0`` on every wave before waiting on any, wait by polling (signals stay
    answerable), and return each wave's outputs (loss, acc, evals) on the host."""
    since = time.perf_counter()
    outs = []
    for w in fleet.waves:
        w.state, out = chunk_fn(w.state, w.hp, data[w.device], np.int32(step0), np.int32(every), np.int32(total))
        outs.append(out)
    waiter.wait(step0, since, (outs, [w.state for w in fleet.waves]))
    return [jax.device_get(o) for o in outs]


def save_point(ckpt, checkpoint_every: int, should_stop, step0: int, done: int, total: int) -> tuple[bool, bool]:
    """(save, interrupt) after the chunk of updates [step0, done): with a checkpoint manager, save at the first chunk
    end past each multiple of checkpoint_every, at the end, and when a stop was requested (``should_stop()``, asked
    only then); interrupt when stopped before the end."""
    if ckpt is None:
        return False, False
    due = bool(checkpoint_every) and done // checkpoint_every > step0 // checkpoint_every
    stop = should_stop is not None and should_stop()
    return due or stop or done == total, stop and done < total


def train_program(prog: train.Program, table, rows: list[dict], lanes: int, *, progress: bool = True,
                  on_chunk: Callable | None = None, keep_params: bool = True, ckpt=None, checkpoint_every: int = 0,
                  should_stop: Callable[[], bool] | None = None, compact: bool | None = None,
                  clock: ChunkClock | None = None) -> ProgramResult:
    """Train every run of one program; return its curves and final parameters.

    ckpt: an Orbax CheckpointManager (jgrok.io.checkpoint.manager) or None. With one, training resumes from its
    newest checkpoint, saves every ``checkpoint_every`` updates (at the first chunk end past each multiple) and at
    the end, and when ``should_stop()`` turns true it saves after the current chunk and raises Interrupted.
    clock: a ChunkClock that holds the dispatch time of the chunk the host is waiting for (None: one of its own).
    Resumed runs end bit-identical to uninterrupted ones: a run's numbers do not depend on its lane.

    compact (default ``engine.compact``): between chunks, runs that stopped or diverged leave the device and the
    runs still training are re-packed into as few waves of W lanes as hold them. Results are the same either
    way; only the time spent on finished runs differs.

    A device allocator error during initialisation or the first chunk raises OutOfMemory (the caller may retry
    at a smaller W); later ones propagate.
    """
    total, every = prog.cfg.train.steps, prog.cfg.train.eval_every
    compact = prog.cfg.engine.compact if compact is None else compact
    K, devices = min(prog.cfg.engine.chunk, total), jax.local_devices()
    compiling = (prog, K, lanes, len(devices)) not in _RAN  # jit compiles at the first call of each wave shape
    _RAN.add((prog, K, lanes, len(devices)))
    init_fn, chunk_fn = prog.compiled(K)
    data = [jax.device_put((np.asarray(table.inputs), np.asarray(table.targets)), d) for d in devices]
    fleet, curves = Fleet(prog, rows, lanes, devices, init_fn), Curves(prog, rows, total, every)
    start_step = restore_or_init(fleet, curves, ckpt, init_fn, compact)
    bar = Progress(prog.cfg.task.name, total, len(rows), enabled=progress)
    bar.begin(start_step, compiling)
    waiter = ChunkWaiter(prog, lanes, clock)
    for step0 in range(start_step, total, K):
        done = min(step0 + K, total)
        with out_of_memory_as_w(lanes, active=step0 == start_step):
            outs = run_chunk(fleet, chunk_fn, data, waiter, step0, every, total)
        new_cols, n_alive = set(), 0
        for w, out in zip(fleet.waves, outs):
            new_cols.update(curves.write(w, step0, done - step0, out))
            ends, alive = fleet.ends(w)
            curves.mask_ended(w.runs, ends, step0, done)
            n_alive += alive
        if compact and -(-n_alive // lanes) < len(fleet.waves):  # the runs still training fit in fewer waves
            fleet.place(fleet.gather(), only_live=True)
        bar.update(done)
        if on_chunk is not None and new_cols:
            on_chunk(*curves.chunk_values(sorted(new_cols)), [r["run"] for r in rows])
        save, interrupt = save_point(ckpt, checkpoint_every, should_stop, step0, done, total)
        if save:
            checkpoint.save(ckpt, done, checkpoint.pack(fleet.gather(), curves.arrays, done))
        if interrupt:
            raise Interrupted(done)
    state = jax.tree.unflatten(fleet.treedef, fleet.gather())
    diverged, stopped = np.asarray(state.diverged_step, np.int32), np.asarray(state.stopped_step, np.int32)
    metrics = curves.metrics(end_step(diverged, stopped))  # a run's curves end where it diverged or stopped
    return ProgramResult(prog, rows, curves.steps, metrics, curves.step_loss, curves.step_acc, diverged,
                         state.params if keep_params else None, lanes, stopped, start_step=start_step,
                         first_chunk_s=bar.first_chunk_s, rate=bar.rate())


def restore_or_init(fleet: Fleet, curves: Curves, ckpt, init_fn, compact: bool) -> int:
    """Put every run on the devices, from the newest checkpoint of ``ckpt`` (only the runs still training, with
    ``compact``) or freshly initialised; return the updates they have done. An allocator error: OutOfMemory."""
    restored = None
    if ckpt is not None:
        restored = checkpoint.restore(ckpt, checkpoint.pack(fleet.like_leaves(), curves.arrays, 0))
    with out_of_memory_as_w(fleet.lanes):
        if restored is None:
            fleet.init(init_fn)
            return 0
        start_step, tree = restored
        curves.load(tree)
        fleet.place([tree["state"][f"leaf_{i:04d}"] for i in range(len(fleet.like_leaves()))], only_live=compact)
        return start_step


def n_devices() -> int:
    return jax.local_device_count()


def platform() -> str:
    d = jax.local_devices()[0]
    return f"{d.platform}:{getattr(d, 'device_kind', '')} x{jax.local_device_count()}"

