"""Checkpoints and --resume: an interrupted scan ends bit-identical to an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jgrok import engine, grid, scan
from jgrok.io import checkpoint
from tests.conftest import TINY_ARGS, tiny


def test_stop_and_resume_is_bit_identical(tmp_path):
    cfg = tiny(seed=[0, 1, 2])
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    whole = engine.train_program(prog, table, members, 2, progress=False)
    mngr = checkpoint.manager(tmp_path, 0)
    with pytest.raises(engine.Interrupted) as e:
        engine.train_program(prog, table, members, 2, progress=False, ckpt=mngr, should_stop=lambda: True)
    assert e.value.step == 6 and mngr.latest_step() == 6
    resumed = engine.train_program(prog, table, members, 2, progress=False, ckpt=checkpoint.manager(tmp_path, 0))
    for a, b in zip(jax.tree.leaves(whole.final_params), jax.tree.leaves(resumed.final_params)):
        np.testing.assert_array_equal(a, b)
    for k in whole.metrics:
        np.testing.assert_array_equal(whole.metrics[k], resumed.metrics[k])
    np.testing.assert_array_equal(whole.step_loss, resumed.step_loss)


def test_sigkill_then_resume_matches_an_uninterrupted_scan(tmp_path):
    args = TINY_ARGS + ["--seeds", "0:2", "--steps", "240", "--set", "engine.chunk=6", "--checkpoint-every", "6"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert scan.main(args + ["--out", str(ref)]) == 0
    p = subprocess.Popen([sys.executable, "-m", "jgrok.scan"] + args + ["--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = out / "checkpoints" / "p0"
    deadline = time.time() + 120
    while time.time() < deadline and not (ck.is_dir() and any(c.name.isdigit() and int(c.name) >= 12
                                                             for c in ck.iterdir())):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "summary.csv").exists()  # killed before the end
    assert scan.main(["--resume", str(out), "--quiet"]) == 0
    a, b = np.load(ref / "metrics.npz"), np.load(out / "metrics.npz")
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
    assert (ref / "summary.csv").read_text() == (out / "summary.csv").read_text()


def test_resume_finished_and_foreign_folders(tmp_path, capsys):
    out = tmp_path / "done"
    assert scan.main(TINY_ARGS + ["--seeds", "0:1", "--out", str(out)]) == 0
    before = (out / "summary.csv").read_bytes()
    assert scan.main(["--resume", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out and (out / "summary.csv").read_bytes() == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    assert scan.main(["--resume", str(foreign)]) == 2
    assert "can be resumed" in capsys.readouterr().err
    # a damaged checkpoint: one sentence, exit 2
    (out / "summary.csv").unlink()
    for f in (out / "checkpoints" / "p0").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
            f.write_bytes(b"garbage")
    code = scan.main(["--resume", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be read" in err and "Traceback" not in err


def test_load_one_run_for_a_notebook(tmp_path):
    out = tmp_path / "scan"
    assert scan.main(TINY_ARGS + ["--seeds", "0:3", "--out", str(out)]) == 0
    import jgrok

    model, cfg, step = jgrok.load(out, run=2)
    assert step == 12 and cfg.task.name == "x_plus_y"
    from jgrok.tasks import algorithmic

    table = algorithmic.build("x_plus_y", cfg.task)
    logits = np.asarray(model(table.inputs[:5]))
    assert logits.shape == (5, 11) and np.isfinite(logits).all()
    m = np.load(out / "metrics.npz")
    assert float(m["weight_norm"][2, -1]) == pytest.approx(
        float(np.sqrt(sum((np.asarray(x) ** 2).sum() for x in jax.tree.leaves(nnx_state(model))))), rel=1e-5)


def nnx_state(model):
    from flax import nnx

    return nnx.to_pure_dict(nnx.state(model, nnx.Param))
