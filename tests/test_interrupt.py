"""Interruptions of a real scan process: SIGINT and SIGTERM save and exit 130 naming the resume command; SIGKILL at
seeded random moments always leaves the newest complete checkpoint readable; every chain of interruptions resumed
to the end gives results bit-identical to an uninterrupted scan.

Every scan here is a subprocess, as a user runs it; they share a persistent compilation cache, so only the first
one compiles.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import jgrok
from tests.conftest import TINY_ARGS

STEPS = 120
ARGS = TINY_ARGS + ["--seeds", "0:2", "--steps", str(STEPS), "--checkpoint-every", "6", "--wave-size", "2"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("ref") / "out"
    resume(ARGS + ["--out", str(out)], env)
    return out


def resume(args, env):
    """Run a scan (or --resume) to the end in a subprocess."""
    p = subprocess.run([sys.executable, "-m", "jgrok.scan"] + args, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr


def start(args, env):
    return subprocess.Popen([sys.executable, "-m", "jgrok.scan"] + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def complete_steps(out):
    """Steps of the complete checkpoints on disk (temporary folders of unfinished saves excluded)."""
    d = out / "checkpoints" / "p0"
    try:
        return sorted(int(c.name) for c in d.iterdir() if c.name.isdigit())
    except OSError:
        return []


def wait_for_step(p, out, step, timeout=120):
    """Wait until a complete checkpoint at or past ``step`` exists (True), or the process has ended (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if complete_steps(out) and complete_steps(out)[-1] >= step:
            return True
        if p.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at step {step} after {timeout} s")


def assert_same_results(ref, out):
    a, b = np.load(ref / "metrics.npz"), np.load(out / "metrics.npz")
    assert sorted(a.files) == sorted(b.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (ref / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()
    assert (ref / "final_info.json").read_bytes() == (out / "final_info.json").read_bytes()


@pytest.mark.slow
def test_sigint_sigterm_and_random_sigkills_then_resume(reference, env, tmp_path):
    """One scan, interrupted five times: SIGINT, SIGTERM (each must save, exit 130 and print the resume command),
    then three SIGKILLs at seeded random moments (after a random number of further checkpoints plus a random delay,
    so some land inside a checkpoint save). After each, the newest complete checkpoint is readable; resumed to the
    end, the scan matches the uninterrupted one bit for bit, and no temporary checkpoint folder is left."""
    rng = random.Random(8)
    out = tmp_path / "scan"
    last, in_save = 0, 0
    for i, sig in enumerate((signal.SIGINT, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL, signal.SIGKILL)):
        p = start((ARGS + ["--out", str(out)]) if i == 0 else ["--resume", str(out), "--quiet"], env)
        target = last + 6 * (1 if sig != signal.SIGKILL else rng.randint(1, 4))
        alive = wait_for_step(p, out, target)
        if sig == signal.SIGKILL:
            time.sleep(rng.uniform(0, 0.3))
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
        assert alive, f"the scan ended before it could be stopped: {err}"
        assert not (out / "summary.csv").exists()
        if sig == signal.SIGKILL:
            assert p.returncode == -signal.SIGKILL
            in_save += any(not c.name.isdigit() for c in (out / "checkpoints" / "p0").iterdir())
        else:
            assert p.returncode == 130, err
            assert f"{sig.name}: stopping" in err and f"Resume with: python -m jgrok.scan --resume {out}" in err, err
            assert "Traceback" not in err
        _, _, step = jgrok.load(out, run=1)  # the newest complete checkpoint is readable
        assert step == complete_steps(out)[-1] and target <= step < STEPS and step > last
        last = step
    print(f"\nSIGINT, SIGTERM, 3 SIGKILLs: {last} updates checkpointed at the last kill, {in_save} kill(s) during a save")
    resume(["--resume", str(out), "--quiet"], env)
    assert not [c for c in (out / "checkpoints" / "p0").iterdir() if not c.name.isdigit()]  # leftovers removed
    assert_same_results(reference, out)


def test_sigint_after_training_finishes_the_results(tmp_path, capsys, monkeypatch):
    """A first SIGINT while the results are being written does not claim to save a checkpoint: the scan says
    it is finishing the results, finishes them and exits 0."""
    from jgrok import scan
    from jgrok.io import results

    real = results.save_scan

    def interrupted_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, in the main thread, before the save
        return real(*args, **kwargs)

    monkeypatch.setattr(results, "save_scan", interrupted_save)
    out = tmp_path / "scan"
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "finishing the results first" in err and "checkpoint is saved" not in err
    assert (out / "summary.csv").is_file()
