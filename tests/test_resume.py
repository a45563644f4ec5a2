"""Checkpoints and --resume: an interrupted scan ends bit-identical to an uninterrupted one."""

import time

import jax
import numpy as np
import pytest

from jgrok import engine, grid, scan
from jgrok.io import checkpoint
from tests.conftest import TINY_ARGS, tiny


@pytest.mark.slow
def test_stop_and_resume_is_bit_identical(tmp_path):
    cfg = tiny(seed=[0, 1, 2])
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    whole = engine.train_program(prog, table, members, 2, progress=False)
    mngr = checkpoint.manager(tmp_path, 0)
    with pytest.raises(engine.Interrupted) as e:
        engine.train_program(prog, table, members, 2, progress=False, ckpt=mngr, should_stop=lambda: True)
    assert e.value.step == 6 and mngr.latest_step() == 6
    resumed = engine.train_program(prog, table, members, 2, progress=False, ckpt=checkpoint.manager(tmp_path, 0))
    assert (whole.start_step, resumed.start_step) == (0, 6)
    assert whole.first_chunk_s > 0 and whole.rate > 0 and np.isnan(resumed.rate)  # resumed: one chunk, no rate
    for a, b in zip(jax.tree.leaves(whole.final_params), jax.tree.leaves(resumed.final_params)):
        np.testing.assert_array_equal(a, b)
    for k in whole.metrics:
        np.testing.assert_array_equal(whole.metrics[k], resumed.metrics[k])
    np.testing.assert_array_equal(whole.step_loss, resumed.step_loss)


def snapshot(folder):
    """(relative path, size, mtime_ns, bytes) of every file below a folder."""
    return sorted((str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns, f.read_bytes())
                  for f in folder.rglob("*") if f.is_file())


ARGS = TINY_ARGS + ["--seeds", "0:2", "--checkpoint-every", "6", "--wave-size", "2"]


def test_partial_and_damaged_checkpoints_are_skipped(tmp_path, capsys):
    """Leftovers of a save killed midway (temporary folders, even with a higher step) are never read and are
    removed on resume; a newest checkpoint that cannot be read falls back to the one before, with a note."""
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert scan.main(ARGS + ["--out", str(ref)]) == 0
    cfg = tiny(seed=[0, 1])
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    mngr = checkpoint.manager(out, 0)
    with pytest.raises(engine.Interrupted):
        engine.train_program(prog, table, members, 2, progress=False, ckpt=mngr, should_stop=lambda: True)
    import yaml

    from jgrok import config

    (out / "config.yaml").write_text(config.dump(config.from_dict(yaml.safe_load((ref / "config.yaml").read_text())),
                                                 {"lanes": 2}))
    ck = out / "checkpoints" / "p0"
    assert sorted(c.name for c in ck.iterdir()) == ["6"]
    for name in ("11.orbax-checkpoint-tmp", "12.orbax-checkpoint-tmp-1795458212"):  # killed saves, newer steps
        (ck / name / "default").mkdir(parents=True)
        (ck / name / "default" / "partial").write_bytes(b"\0" * 100)
    assert checkpoint.manager(out, 0).latest_step() == 6
    _, _, step = jgrok_load(out)
    assert step == 6
    # a newer step folder that is complete in name only (as a non-atomic file system could leave it)
    (ck / "9").mkdir()
    (ck / "9" / "_CHECKPOINT_METADATA").write_text("{not json")
    assert scan.main(["--resume", str(out), "--quiet"]) == 0
    printed, err = capsys.readouterr()
    # the rate is that of what this process trained: updates 7..12 of 2 runs
    assert "2 runs x 12 updates, resumed at update 6: this process trained 12 seed-steps in " in printed
    assert "Checkpoint" in err and "/9 cannot be read; resuming from update 6" in err
    assert not [c for c in ck.iterdir() if "tmp" in c.name]
    assert (ck / "9.damaged").is_dir() and (ck / "12").is_dir()  # set aside, not deleted
    for name in ("metrics.npz", "summary.csv"):
        if name == "summary.csv":
            assert (ref / name).read_bytes() == (out / name).read_bytes()
        else:
            a, b = np.load(ref / name), np.load(out / name)
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k])


def jgrok_load(out):
    import jgrok

    return jgrok.load(out, run=0)


def test_resume_finished_and_foreign_folders(tmp_path, capsys):
    out = tmp_path / "done"
    assert scan.main(TINY_ARGS + ["--seeds", "0:1", "--out", str(out)]) == 0
    before = snapshot(out)
    time.sleep(0.01)
    assert scan.main(["--resume", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out
    assert snapshot(out) == before  # not one file touched: same names, sizes, times and bytes
    # --resume continues the saved config: other settings are refused, not ignored
    assert scan.main(["--resume", str(out), "--steps", "99"]) == 2
    assert "drop --steps" in capsys.readouterr().err
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


@pytest.mark.slow
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
    # without checkpoints: one sentence, and reading creates nothing
    import shutil

    from jgrok.errors import ConfigError

    shutil.rmtree(out / "checkpoints")
    with pytest.raises(ConfigError, match="has no checkpoint for run 2"):
        jgrok.load(out, run=2)
    assert not (out / "checkpoints").exists()


def nnx_state(model):
    from flax import nnx

    return nnx.to_pure_dict(nnx.state(model, nnx.Param))
