"""jgrok.open_scan: a results folder read back (config, runs, summary, curves, parameters, models)."""

import shutil

import jax
import numpy as np
import pytest

import jgrok
from jgrok import engine, grid, scan
from jgrok.errors import ConfigError
from tests.conftest import TINY_ARGS


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Runs 1..4 of a 6-run grid (wd x seed), W = 4, checkpoints at updates 6 and 12."""
    out = tmp_path_factory.mktemp("open_scan") / "scan"
    assert scan.main(TINY_ARGS + ["--seeds", "0:3", "--wd", "0.5,1", "--only", "1:5", "--wave-size", "4",
                                  "--checkpoint-every", "6", "--no-tensorboard", "--out", str(out)]) == 0
    return out


def test_config_runs_and_summary(finished):
    s = jgrok.open_scan(finished)
    assert s.config.train.steps == 12 and s.config.grid["wd"] == [0.5, 1.0] and s.lanes == 4
    assert s.only == "1:5"  # the --only filter of a partial scan applies to the runs table
    assert [r["run"] for r in s.runs] == [1, 2, 3, 4]
    assert s.runs == [r for r in grid.expand(s.config) if r["run"] in (1, 2, 3, 4)]
    assert [int(r["run"]) for r in s.summary] == [1, 2, 3, 4]
    assert [float(r["wd"]) for r in s.summary] == [r["wd"] for r in s.runs]
    assert s.finished and not s.regression
    assert s.run_config(4).optim.wd == 1.0


def test_curves_are_the_arrays_of_metrics_npz(finished):
    s = jgrok.open_scan(finished)
    val_acc, steps = s.curves("val_acc")
    with np.load(finished / "metrics.npz") as z:
        np.testing.assert_array_equal(val_acc, z["val_acc"])
        np.testing.assert_array_equal(steps, z["eval_step"])
        np.testing.assert_array_equal(s.rows_of("step_loss", [3, 1]), z["step_loss"][[2, 0]])
    assert val_acc.shape == (4, len(steps))
    with pytest.raises(ConfigError, match="has no curve 'nope'"):
        s.curves("nope")


def test_restore_gives_the_final_parameters_of_the_scan(finished):
    s = jgrok.open_scan(finished)
    (prog, table, members), = grid.programs(s.config, s.runs)
    again = engine.train_program(prog, table, members, s.lanes, progress=False)  # same W: bit-identical
    restored = s.restore([4, 2])
    for params, run in zip(restored, (4, 2)):
        i = [r["run"] for r in members].index(run)
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again.final_params)):
            np.testing.assert_array_equal(a, np.asarray(b)[i])
    assert s.step(2) == 12
    model, cfg, step = jgrok.load(finished, run=2)  # the notebook shortcut: the same parameters in a model
    assert step == 12 and cfg.task.name == "x_plus_y"
    assert s.program(2).n_params == prog.n_params


def test_restore_falls_back_to_the_previous_checkpoint(finished, tmp_path, capsys):
    out = tmp_path / "damaged"
    shutil.copytree(finished, out)
    for f in (out / "checkpoints" / "p0" / "12").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
            f.write_bytes(b"garbage")
    s = jgrok.open_scan(out)
    params, = s.restore([1])
    assert s.step(1) == 6 and "cannot be read" in capsys.readouterr().err
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_missing_folders_and_runs_are_one_sentence(finished, tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as e:
        jgrok.open_scan(tmp_path / "nowhere")
    assert "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a jgrok results folder"):
        jgrok.open_scan(tmp_path / "empty").config
    with pytest.raises(ConfigError, match="Run 0 is not part of the scan"):
        jgrok.open_scan(finished).restore([0])


def test_data_is_typed_aligned_and_grouped(finished):
    """What the readers read: summary rows typed, curves in the rows' order, run groups, grokking times censored at
    the budget and the log-rank test between the two weight decays."""
    s = jgrok.open_scan(finished)
    d = s.data()
    assert d.rows is s.summary and [r["run"] for r in d.rows] == [1, 2, 3, 4] and d.budget == 12
    val_acc, steps = s.curves("val_acc")
    np.testing.assert_array_equal(d.curves["val_acc"], val_acc)
    np.testing.assert_array_equal(d.eval_step_E, steps)
    assert d.group_axes == ["wd"] and {k: list(v) for k, v in d.groups.items()} == {
        ("x_plus_y", "x_plus_y wd=0.5"): [0, 1], ("x_plus_y", "x_plus_y wd=1"): [2, 3]}
    times = d.grok_times()
    assert list(times) == ["x_plus_y wd=0.5", "x_plus_y wd=1"]
    assert all(t["n"] == 2 and t["budget"] == 12 for t in times.values())
    assert list(d.logrank()) == ["x_plus_y"] and d.logrank()["x_plus_y"]["df"] == 1
