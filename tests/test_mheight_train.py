"""The m-height regression task in the scan engine: model bound, parameter count, training, determinism, the drop
detector, the results folder, and user errors."""

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx

from jgrok import config, grid, init, scan, train
from jgrok.tasks import drop
from jgrok.errors import ConfigError
from jgrok.models import resnet
from jgrok.tasks import mheight_codes as mheight
from jgrok.tasks import mheight_task
from tests.conftest import params_of, train_runs

GROUPS = [(9, 4, 2), (10, 5, 3), (9, 5, 4)]
PER = 24  # codes per group in the test file: 12 train + 8 val used, 4 to spare


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("mh") / "tiny.npz"
    mheight.save_npz(path, mheight.generate(GROUPS, PER, seed=0))
    return str(path)


def tiny_dict(data_path):
    return {
        "task": {"name": "mheight", "data": data_path, "train_per_group": 12, "val_per_group": 8},
        "model": {"kind": "resnet", "width": 8, "blocks": 2},
        "optim": {"lr": 1e-2, "wd": 0.01, "warmup": 0, "b2": 0.999},
        "train": {"sampling": "epochs", "batch_size": 16, "epochs": 8, "eval_every_epochs": 2},
        "engine": {"chunk": 16},
    }


def tiny(data_path, **grid_axes):
    cfg = config.from_dict(tiny_dict(data_path))
    return config.with_grid(cfg, **grid_axes) if grid_axes else cfg


@pytest.fixture(scope="module")
def full(data_path):
    """6 runs (3 seeds x 2 weight decays) in waves of 4: runs 4 and 5 sit in a padded second wave."""
    return train_runs(tiny(data_path, seed=[0, 1, 2], wd=[0.01, 0.1]))


@pytest.mark.slow
@pytest.mark.parametrize("output", resnet.OUTPUTS)
def test_output_bound_h_at_least_1(output):
    model = resnet.ResNet(mheight_task.N_FEATURES, 8, 2, output, nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (256, mheight_task.N_FEATURES)) * 100
    for bias in (-1e4, -30.0, 0.0, 30.0):
        model.head.bias[...] = jnp.full((1,), bias)
        y = np.asarray(model(x))
        assert y.shape == (256,) and np.all(np.isfinite(y))
        assert np.all(y >= 0.0)  # log2 h >= 0: predicted height >= 1
    model.head.bias[...] = jnp.full((1,), -1e4)
    assert np.all(np.asarray(model(x)) < 1e-6)  # the bound is reached, not just approached from far above


@pytest.mark.slow
def test_default_init_is_pytorch_and_groups_are_named(data_path):
    (prog, _, members), = grid.programs(tiny(data_path), grid.expand(tiny(data_path)))
    assert prog.groups == ["input", "block0", "block1", "head", "norms"]
    state = jax.jit(jax.vmap(lambda hp: train.init_run(prog, hp)))(grid.hyper(prog, members))
    _, shapes = prog.model
    flat = dict(zip([leaf.path for leaf in init.leaves(shapes)], jax.tree.leaves(state.params)))
    for leaf in init.leaves(shapes):
        x = np.asarray(flat[leaf.path])
        if leaf.kind == "ln_scale":
            assert np.all(x == 1.0)
        elif leaf.kind == "ln_bias":
            assert np.all(x == 0.0)
        else:  # torch.nn.Linear: weight and bias U(+-1/sqrt(fan_in)), fan_in = the kernel's input width
            bound = leaf.fan_in ** -0.5
            assert np.abs(x).max() <= bound, leaf.path
            if x.size >= 16:  # and spread over the interval
                assert np.abs(x).max() > 0.8 * bound and abs(float(x.mean())) < 0.3 * bound, leaf.path


@pytest.mark.slow
def test_split_draws_per_group_and_epochs_set_the_budget(data_path, full):
    prog = full.prog
    per_epoch = -(-36 // 16)
    assert prog.n_train == 36 and prog.n_rows == 60 and prog.n_groups == 3
    assert prog.cfg.train.steps == 8 * per_epoch and prog.cfg.train.eval_every == 2 * per_epoch
    assert list(full.eval_step) == [6, 12, 18, 24]
    perm = np.asarray(prog.kind.split(prog, jax.random.key(5)))
    assert sorted(perm) == list(range(60))
    block = perm // 20  # rows of group g are g*20 .. g*20+19
    assert list(np.bincount(block[:36])) == [12, 12, 12] and list(np.bincount(block[36:])) == [8, 8, 8]
    other = np.asarray(prog.kind.split(prog, jax.random.key(6)))
    assert not np.array_equal(perm, other)


@pytest.mark.slow
def test_short_training_lowers_val_loss(full):
    val = full.metrics["val_loss"]
    assert val.shape == (6, 4) and np.all(np.isfinite(val))
    assert np.all(np.diff(val, axis=1) < 0) and np.all(val[:, -1] < 0.85 * val[:, 0])  # measured: 0.72-0.76
    assert "val_acc" not in full.metrics and np.all(np.isfinite(full.step_loss))
    assert {"weight_norm", "norm/input", "norm/block0", "norm/head", "norm/norms"} <= set(full.metrics)


@pytest.mark.slow
def test_lane_and_neighbours_do_not_matter(data_path, full):
    cfg = tiny(data_path, seed=[0, 1, 2], wd=[0.01, 0.1])
    alone = train_runs(cfg, only={5})  # lane 1 of the padded wave 2 in `full`; alone, lane 0 beside copies of itself
    mixed = train_runs(cfg, only={1, 3, 4})
    for res, ids in ((alone, (5,)), (mixed, (1, 3, 4))):
        for r in ids:
            for a, b in zip(jax.tree.leaves(params_of(full, r)), jax.tree.leaves(params_of(res, r))):
                np.testing.assert_array_equal(a, b)
            i, j = [x["run"] for x in full.rows].index(r), [x["run"] for x in res.rows].index(r)
            np.testing.assert_array_equal(full.metrics["val_loss"][i], res.metrics["val_loss"][j])


def _planted(E=400, at=200, seed=0):
    rng = np.random.default_rng(seed)
    steps = (np.arange(E) + 1) * 130
    val = np.where(np.arange(E) < at, 1.0, 0.01) * np.exp(0.05 * rng.normal(size=E))
    val[at - 5:at + 5] = np.geomspace(1.0, 0.01, 10)
    trn = 1e-3 * np.exp(0.05 * rng.normal(size=E))
    trn[:40] = np.geomspace(10.0, 1e-3, 40)
    return val, trn, steps


def test_drop_detector_finds_a_planted_drop():
    val, trn, steps = _planted()
    step, found, factor = drop.detect(val, trn, steps)
    assert found[0] and abs(step[0] - 200 * 130) <= 3 * 130 and factor[0] > 50
    # several runs at once, NaN after a diverged run stopped
    val2, trn2, _ = _planted(at=300, seed=1)
    val3 = val.copy()
    val3[100:] = np.nan
    step, found, _ = drop.detect(np.stack([val, val2, val3]), np.stack([trn, trn2, trn]), steps)
    assert list(found) == [True, True, False] and abs(step[1] - 300 * 130) <= 3 * 130


def test_drop_detector_ignores_smooth_curves():
    E = 400
    steps = (np.arange(E) + 1) * 130
    flat_train = np.full(E, 1e-3)
    slow = 1.0 / (1.0 + np.arange(E) / 10.0)  # power-law decline while the train loss is flat
    together = np.geomspace(10.0, 1e-4, E)  # val falling with the train loss: no plateau, no drop
    step, found, factor = drop.detect(np.stack([slow, together]), np.stack([flat_train, together]), steps)
    assert not found.any() and list(step) == [-1, -1] and np.isnan(factor).all()
    # a sudden drop while the train loss is still falling fast is not a delayed (grokking) drop
    val, _, _ = _planted()
    assert not drop.detect(val, np.geomspace(10.0, 1e-6, E), steps)[1][0]


@pytest.mark.slow
def test_cli_dry_run_prints_the_parameter_count(data_path, capsys):
    assert scan.main(["--config", "mheight_wd", "--set", f"task.data={data_path}", "--set", "task.train_per_group=12",
                      "--set", "task.val_per_group=8", "--seeds", "0:2", "--wd", "0.01,0.03", "--dry-run"]) == 0
    out = capsys.readouterr().out
    expected = resnet.n_params(46, 64, 5)
    assert expected == (46 + 1) * 64 + 5 * (64 * 64 + 3 * 64) + 64 + 1 == 24513
    assert f"{expected:,} parameters per run" in out and "4 runs" in out
    assert "1 updates per epoch, 10000 updates" in out  # 36 train codes in batches of 4096: 1 update per epoch


@pytest.mark.slow
@pytest.mark.scan_plots
def test_cli_scan_writes_regression_results(data_path, tmp_path, capsys):
    out = tmp_path / "run"
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_dict(data_path)))
    # the same program and lane width as `full`: the compiled chunk is shared
    args = ["--config", str(cfg_file), "--seeds", "0:2", "--wd", "0.01", "--wave-size", "4", "--quiet", "--out",
            str(out)]
    assert scan.main(args) == 0
    err = capsys.readouterr().err
    assert "0 infinite-height codes excluded" in err
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"drop_epoch", "dropped", "min_val_loss"} <= set(rows[0])
    assert "final_val_acc" not in rows[0]
    info = json.loads((out / "final_info.json").read_text())
    assert set(info["mheight"]["means"]) == {f"{k}_mean" for k in
                                             ("final_train_loss", "final_val_loss", "min_val_loss", "drop_epoch",
                                              "dropped")}
    with np.load(out / "metrics.npz") as z:
        assert "val_acc" not in z.files and "step_acc" not in z.files and int(z["updates_per_epoch"]) == 3
        assert z["step_loss"].shape == (2, 24) and list(z["eval_step"]) == [6, 12, 18, 24]
    assert {p.name for p in (out / "plots").iterdir()} == {"loss_mheight.png", "val_loss_runs_mheight.png",
                                                           "weight_norm_mheight.png"}


def test_infinite_heights_are_excluded_and_counted(tmp_path):
    data = mheight.generate([(10, 4, 6)], 60, seed=0, integer=True)
    assert data["infinite"].any()  # integer entries: some codes have a zero minor, so h_6 is infinite
    path = tmp_path / "int.npz"
    mheight.save_npz(path, data)
    n_finite = int((~data["infinite"]).sum())
    tcfg = config.TaskConfig(name="mheight", data=str(path), train_per_group=n_finite - 5, val_per_group=5)
    table = mheight_task.build(tcfg)
    assert table.n_infinite == int(data["infinite"][: np.nonzero(~data["infinite"])[0][-1]].sum())
    assert np.all(np.isfinite(table.targets)) and len(table.targets) == n_finite
    with pytest.raises(ConfigError, match="finite height"):
        mheight_task.build(config.TaskConfig(name="mheight", data=str(path), train_per_group=n_finite,
                                             val_per_group=1))


def test_cache_is_generated_once(tmp_path, monkeypatch):
    monkeypatch.setenv("JGROK_DATA", str(tmp_path / "cache"))
    tcfg = config.TaskConfig(name="mheight", train_per_group=2, val_per_group=1, gen_seed=3)
    table = mheight_task.build(tcfg)
    assert table.generate and not table.path.exists() and table.n_rows == 21 * 3
    x = table.inputs
    assert table.path.is_file() and x.shape == (63, mheight_task.N_FEATURES)
    again = mheight_task.build(tcfg)
    assert not again.generate
    np.testing.assert_array_equal(again.inputs, x)
    np.testing.assert_array_equal(again.targets, table.targets)
    ref = mheight.generate(list(mheight.GROUPS), 3, 3)  # the exact generator's codes, in the same order
    np.testing.assert_allclose(table.targets, np.log2(ref["h"]).astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("extra, words", [
    (["--set", "model.kind=transformer"], "model.kind: resnet"),
    (["--set", "task.train_per_group=0"], "train_per_group must be at least 1"),
    (["--set", "task.data=missing.npz"], "does not exist"),
    (["--set", "task.data=codes.txt"], "must name a .npz"),
    (["--steps", "100"], "train.epochs"),
    (["--set", "train.sampling=replacement"], "set train.sampling: epochs"),
    (["--set", "model.output=h2"], "model.output must be"),
    (["--task", "mheight,x_plus_y"], "cannot share a scan"),
    (["--set", "task.val_per_group=30"], "finite height"),
])
def test_bad_config_is_one_sentence_and_exit_2(data_path, extra, words, capsys):
    args = ["--config", "mheight_wd", "--set", f"task.data={data_path}", "--set", "task.train_per_group=12",
            "--set", "task.val_per_group=8", "--dry-run"]
    assert scan.main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0 and "Traceback" not in err


def test_bad_data_file_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    assert scan.main(["--config", "mheight_tiny", "--set", f"task.data={bad}", "--dry-run"]) == 2
    assert "is not an m-height dataset" in capsys.readouterr().err
    bad.write_text("not a zip")
    assert scan.main(["--config", "mheight_tiny", "--set", f"task.data={bad}", "--dry-run"]) == 2
    assert "cannot be read as an m-height dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_measured_lane_bytes_of_the_resnet(data_path):
    """The memory probe compiles the ResNet's chunk with the task's own data shapes (float features [N, F], float
    targets), so it measures rather than failing into the analytic estimate; the probe matches the real table."""
    from jgrok import engine

    cfg = tiny(data_path)
    (prog, table, _), = grid.programs(cfg, grid.expand(cfg))
    x, y = engine.abstract_data(prog)
    assert (x.shape, x.dtype, y.shape, y.dtype) == (table.inputs.shape, table.inputs.dtype, table.targets.shape,
                                                    table.targets.dtype)
    fixed, per_lane = engine.measured_lane_bytes(prog, 4)
    assert per_lane > 0 and fixed >= 0
