"""Liveness: a scan never hangs where CI or a user cannot stop it.

- No LAPACK kernel in a compiled program: jaxlib's CPU LAPACK kernels (QR, SVD, eigh, solve, ...) wait on XLA's
  own thread pool, and several at once (one per lane of a wave) hung scans forever under jax 0.10 on 2 cores.
- The scan that once hung (three init schemes x two filters x two seeds in one wave of 12 lanes) and the
  AI-Scientist init study (orthogonal init in every wave) finish, each in a subprocess with a hard timeout, so a
  returning deadlock fails the test instead of hanging CI.
- Ctrl-C is answered within about a second even while the host waits for a chunk: the engine polls the chunk's
  readiness instead of blocking in native code, where Python cannot run a signal handler.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgrok
from jgrok import engine, grid, init, train
from tests.conftest import TINY_ARGS, tiny

HANG = ["--task", "x_plus_y", "--seeds", "0:2", "--init", "default,xavier_uniform,orthogonal", "--filter", "none,ema",
        "--steps", "20", "--eval-every", "10"]  # the command that once hung, verbatim but for --out
HANG_TIMEOUT_S = 900  # it needs ~1 min of CPU (shared 2-core machine: 160 s wall); a deadlock never ends


def scan_subprocess(args, timeout, env=None):
    """Run ``python -m jgrok.scan`` to the end; a run past ``timeout`` is killed and fails the test."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    try:
        p = subprocess.run([sys.executable, "-m", "jgrok.scan"] + args, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the scan did not finish in {timeout} s (a deadlock?): {' '.join(args)}\n{e.stderr}")
    assert p.returncode == 0, p.stderr
    return p


def lapack_calls(text: str) -> list[str]:
    return sorted({line.strip()[:160] for line in text.splitlines() if "lapack" in line.lower()})


def test_no_lapack_kernel_in_any_compiled_program():
    """The init and chunk programs of every scheme and filter contain no LAPACK call (jnp.linalg / jax.scipy
    decompositions lower to one on CPU)."""
    cfg = tiny(seed=[0], init=list(init.SCHEMES), filter=["none", "ema", "ma"])
    (prog, table, rows), = grid.programs(cfg, grid.expand(cfg))
    state, hp = engine._abstract_wave(prog, 2)
    i32 = jax.ShapeDtypeStruct((), jnp.int32)
    texts = {"init": train.make_init(prog).lower(hp).as_text(),
             "chunk": train.make_chunk(prog, 2).lower(state, hp, engine.abstract_data(prog), i32, i32, i32).as_text()}
    for name, text in texts.items():
        assert not lapack_calls(text), f"LAPACK in the {name} program: {lapack_calls(text)}"


@pytest.mark.slow
def test_the_scan_that_deadlocked_finishes(tmp_path):
    """The command that hung forever on jax 0.10.2 with 2 cores (orthogonal init in a wave of 12 lanes: LAPACK QR
    kernels side by side) finishes."""
    scan_subprocess(HANG + ["--out", str(tmp_path / "o"), "--quiet"], HANG_TIMEOUT_S)
    assert (tmp_path / "o" / "summary.csv").is_file()


@pytest.mark.slow
def test_ai_scientist_init_study_finishes(tmp_path):
    """The init-study preset with its 6 schemes x 2 seeds in one wave of 12 lanes (each lane computes every
    scheme's values, the QR included), on its first task only and with a model and budget small enough for CI (each
    task is a program of its own that compiles on its own; the lanes of one ran LAPACK kernels side by side)."""
    args = ["--config", "ai_scientist_init_study", "--task", "x_div_y", "--seeds", "0:2", "--steps", "20",
            "--eval-every", "20", "--batch-size", "32", "--set", "task.p=13", "--set", "model.n_layers=1",
            "--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "optim.warmup=2",
            "--out", str(tmp_path / "o"), "--quiet"]
    p = scan_subprocess(args, HANG_TIMEOUT_S)
    assert "12 runs" in p.stdout and "Lane width W = 12" in p.stdout, p.stdout


def slow_computation(seconds: float):
    """A computation that keeps the CPU device busy for about ``seconds`` (calibrated here), already dispatched."""
    f = jax.jit(lambda a, n: jax.lax.fori_loop(0, n, lambda i, x: jnp.tanh(x @ x * 1e-3), a))
    a = jnp.ones((256, 256), jnp.float32)
    f(a, 1).block_until_ready()
    t = time.perf_counter()
    f(a, 50).block_until_ready()
    n = int(50 * seconds / max(time.perf_counter() - t, 1e-4))
    return f(a, n)


def fake_program():
    return types.SimpleNamespace(cfg=types.SimpleNamespace(task=types.SimpleNamespace(name="x_plus_y"),
                                                           optim=types.SimpleNamespace(name="adamw")))


def test_signal_handler_runs_while_a_chunk_computes():
    """While the host waits for a (really) busy device, a SIGINT handler runs within ~POLL_S of the signal, long
    before the computation ends; the chunk's running time is known to the handler."""
    seen = {}
    clock = engine.ChunkClock()

    def handler(signum, frame):
        seen["at"] = time.perf_counter()
        seen["running"] = clock.running_s()

    old = signal.signal(signal.SIGINT, handler)
    try:
        out = slow_computation(4.0)
        since = time.perf_counter()
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        sent = time.perf_counter() + 0.3
        timer.start()  # (sent: when the timer fires, at the earliest)
        engine.ChunkWaiter(fake_program(), 4, clock).wait(0, since, out)
        done = time.perf_counter()
        timer.join()
    finally:
        signal.signal(signal.SIGINT, old)
    assert "at" in seen, "the handler never ran"
    assert seen["at"] - sent < 1.0, f"the handler ran {seen['at'] - sent:.2f} s after the signal"
    assert done - seen["at"] > 0.5, "the computation was not running when the handler ran; calibrate it longer"
    assert 0.2 < seen["running"] < 2.0
    assert clock.running_s() is None  # not waiting any more


def test_a_chunk_far_slower_than_the_earlier_ones_is_reported_once(monkeypatch, capsys):
    monkeypatch.setattr(engine, "STUCK_MIN_S", 0.2)
    w = engine.ChunkWaiter(fake_program(), 4)
    w.walls = [0.001, 0.002]  # earlier chunks: limit = max(20 * 1.5 ms, 0.2 s)
    w.stall = (2.0, 0.8)  # the third chunk counts as running for 0.8 s
    w.wait(12, time.perf_counter(), jnp.zeros(3))
    w.stall = (3.0, 0.5)
    w.wait(18, time.perf_counter(), jnp.zeros(3))
    err = capsys.readouterr().err
    assert err.count("may be stuck") == 1, err
    assert "update 12 of program x_plus_y / adamw" in err and "W = 4 lanes" in err and engine.platform() in err
    assert len(w.walls) == 4 and w.walls[2] >= 0.8


STEPS = 60
STALL_ARGS = TINY_ARGS + ["--seeds", "0:2", "--steps", str(STEPS), "--checkpoint-every", "6", "--wave-size", "2"]


@pytest.mark.slow
def test_ctrl_c_during_a_stalled_chunk(tmp_path):
    """A scan whose second chunk stalls (test hook JGROK_TEST_STALL): the first SIGINT is answered at once with
    the chunk's running time; the second (SIGTERM here) ends the process at once with code 130, and the newest
    complete checkpoint (after the first chunk) stays readable."""
    out = tmp_path / "scan"
    env = dict(os.environ, JAX_PLATFORMS="cpu", **{engine.STALL_ENV: "1:600"})
    p = subprocess.Popen([sys.executable, "-m", "jgrok.scan"] + STALL_ARGS + ["--out", str(out)], env=env,
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        ckpt = out / "checkpoints" / "p0" / "6"
        deadline = time.time() + 900  # compiling takes minutes on a loaded 2-core machine
        while not ckpt.is_dir() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ckpt.is_dir(), "".join(lines)
        time.sleep(1.0)  # inside the stalled chunk now
        sent = time.perf_counter()
        p.send_signal(signal.SIGINT)
        while not any("SIGINT: stopping" in x for x in lines) and time.perf_counter() - sent < 30:
            time.sleep(0.01)
        answered = time.perf_counter() - sent
        assert answered < 2.0, f"the first SIGINT was answered after {answered:.1f} s: {''.join(lines)}"
        msg = next(x for x in lines if "SIGINT: stopping" in x)
        assert "after the current chunk, which has run for" in msg, msg
        time.sleep(0.5)
        assert p.poll() is None  # still waiting for the stalled chunk
        sent = time.perf_counter()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 130
        assert time.perf_counter() - sent < 5.0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(timeout=5)
    assert any("SIGTERM again: stopping now" in x for x in lines), "".join(lines)
    assert not (out / "summary.csv").exists()
    _, _, step = jgrok.load(out, run=1)
    assert step == 6
