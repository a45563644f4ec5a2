"""The shape axes (--p, --d-model, --layers): one program per shape, all in one scan and one results folder, curves of
other shapes padded side by side in metrics.npz, and every reader of the folder handling them. One tiny mixed scan
(p 5 and 7 x 1 and 2 layers, 2 seeds: 4 programs, 8 runs) is shared by the tests that read a trained folder; its
four compilations take minutes on a 2-core machine, so those tests are slow, and the padding itself is checked
fast on arrays below."""

import shutil

import numpy as np
import pytest

from tests.conftest import TINY_ARGS

# p outermost, then the depth, the seeds innermost (jgrok.axes' nest): runs 0-1 p=5 n_layers=1, 2-3 p=5 n_layers=2,
# 4-5 p=7 n_layers=1, 6-7 p=7 n_layers=2
MIXED = TINY_ARGS + ["--p", "5,7", "--layers", "1,2", "--seeds", "0:2", "--set", "model.d_model=8",
                     "--steps", "8", "--eval-every", "4", "--measures", "fourier", "--checkpoint-every", "4"]
P_OF = {r: 5 if r < 4 else 7 for r in range(8)}
LAYERS_OF = {r: 1 if r % 4 < 2 else 2 for r in range(8)}


def _args(*extra):  # the last value of a repeated flag wins in argparse
    return MIXED + list(extra)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from jgrok import scan

    out = tmp_path_factory.mktemp("shape") / "scan"
    assert scan.main(_args("--out", str(out))) == 0
    return out


@pytest.mark.slow
def test_a_mixed_scan_is_one_results_folder_that_open_scan_and_report_read(mixed):
    import jgrok
    from jgrok import report

    s = jgrok.open_scan(mixed)
    assert [r["run"] for r in s.summary] == list(range(8))
    assert [(r["p"], r["n_layers"], r["d_model"]) for r in s.summary] == [(P_OF[i], LAYERS_OF[i], 8) for i in range(8)]
    for r in range(8):  # each run's own config has its shape
        cfg = s.run_config(r)
        assert (cfg.task.p, cfg.model.n_layers) == (P_OF[r], LAYERS_OF[r])
    d = s.data()
    assert [label for _, label in d.groups] == ["x_plus_y p=5 n_layers=1", "x_plus_y p=5 n_layers=2",
                                                "x_plus_y p=7 n_layers=1", "x_plus_y p=7 n_layers=2"]
    assert report.main([str(mixed)]) == 0
    assert "x_plus_y p=7 n_layers=2" in (mixed / "report.md").read_text()
    tags = {p.name for p in (mixed / "tb").iterdir()}
    assert tags, "TensorBoard logs of a mixed scan"


@pytest.mark.slow
def test_curves_of_other_shapes_are_padded_with_nan_and_their_extents(mixed):
    import jgrok
    from jgrok.io import results

    s = jgrok.open_scan(mixed)
    spec, steps = s.curves("fourier_spectrum")
    E = len(steps)
    assert spec.shape == (8, E, 3)  # p // 2 frequencies: 2 for p = 5, 3 for p = 7
    pad = s.padding("fourier_spectrum")
    np.testing.assert_array_equal(pad, [[E, P_OF[r] // 2] for r in range(8)])
    assert np.isnan(spec[:4, :, 2]).all() and np.isfinite(spec[:4, :, :2]).all() and np.isfinite(spec[4:]).all()
    # a one-layer model has no second block: its row of that curve is padding, extent 0
    block1, _ = s.curves("norm/block1_attn")
    np.testing.assert_array_equal(s.padding("norm/block1_attn")[:, 0], [E * (LAYERS_OF[r] == 2) for r in range(8)])
    assert all(np.isnan(block1[r]).all() == (LAYERS_OF[r] == 1) for r in range(8))
    assert s.padding("val_acc") is None  # every program evaluates at the same steps: nothing padded
    d = s.data()
    assert d.own("fourier_spectrum", 0).shape == (E, 2) and d.own("fourier_spectrum", 4).shape == (E, 3)
    assert d.own("norm/block1_attn", 0).shape == (0,)
    arrays = s.metrics()
    assert results.PAD + "fourier_spectrum" in arrays and "pad/fourier_spectrum" not in d.curves


@pytest.mark.slow
def test_a_run_of_a_mixed_scan_retrained_alone_with_only_is_bit_identical(mixed, tmp_path):
    import jgrok
    from jgrok import scan

    out = tmp_path / "alone"
    assert scan.main(["--config", str(mixed / "config.yaml"), "--only", "6", "--quiet", "--no-tensorboard",
                      "--out", str(out)]) == 0
    a, b = jgrok.open_scan(mixed), jgrok.open_scan(out)
    assert [r["run"] for r in b.summary] == [6]
    for name in ("val_acc", "train_loss", "fourier_spectrum", "norm/block1_mlp"):
        np.testing.assert_array_equal(b.curves(name)[0][0], a.curves(name)[0][6], err_msg=name)


@pytest.mark.slow
def test_a_mixed_scan_resumes_from_its_checkpoints(mixed, tmp_path):
    import jgrok
    from jgrok import scan

    out = tmp_path / "resumed"
    shutil.copytree(mixed, out)
    for name in ("summary.csv", "metrics.npz", "final_info.json"):
        (out / name).unlink()
    assert scan.main(["--resume", str(out), "--quiet"]) == 0
    a, b = jgrok.open_scan(mixed), jgrok.open_scan(out)
    for name in ("val_acc", "fourier_spectrum", "norm/block1_attn"):
        np.testing.assert_array_equal(b.curves(name)[0], a.curves(name)[0], err_msg=name)
    np.testing.assert_array_equal(b.padding("fourier_spectrum"), a.padding("fourier_spectrum"))
    for r in (1, 6):  # parameters of each shape come back from their own program's checkpoint
        assert b.model(r) is not None
        assert (b.run_config(r).model.n_layers, len(b.model(r).blocks)) == (LAYERS_OF[r], LAYERS_OF[r])


@pytest.mark.slow
def test_init_from_a_run_of_another_shape_is_refused(mixed, capsys):
    from jgrok import scan

    code = scan.main(TINY_ARGS + ["--set", "model.d_model=8", "--p", "7", "--init-from", f"{mixed}:0",
                                  "--dry-run"])
    assert code == 2
    err = capsys.readouterr().err
    assert "has parameters of another shape" in err and "Traceback" not in err


def test_parts_of_other_shapes_are_stacked_with_nan_padding_and_their_extents():
    from jgrok.io import results

    a = {"spec": np.ones((2, 3, 2), np.float32), "val": np.zeros((2, 3), np.float32)}
    b = {"spec": np.full((1, 3, 4), 2, np.float32), "val": np.ones((1, 3), np.float32), "block1": np.ones((1, 3))}
    order = np.array([2, 0, 1])  # the part b's run first
    out = results.stack([a, b], [2, 1], order)
    assert out["spec"].shape == (3, 3, 4) and "pad/val" not in out
    np.testing.assert_array_equal(out["pad/spec"], [[3, 4], [3, 2], [3, 2]])
    np.testing.assert_array_equal(out["pad/block1"], [[3], [0], [0]])
    assert np.isnan(out["spec"][1:, :, 2:]).all() and (out["spec"][0] == 2).all()
    assert np.isnan(out["block1"][1:]).all() and (out["block1"][0] == 1).all()
    np.testing.assert_array_equal(results.own(out, "spec", 1), np.ones((3, 2)))
    assert results.own(out, "block1", 2).shape == (0,) and results.own(out, "val", 0).shape == (3,)
    # stacking stacked parts again (shards, looks) keeps each run's own extents
    again = results.stack([{k: v[:1] for k, v in out.items()}, {k: v[1:] for k, v in out.items()}], [1, 2],
                          np.arange(3))
    for k in ("spec", "pad/spec", "pad/block1"):
        np.testing.assert_array_equal(again[k], out[k])


def test_the_dry_run_lists_each_program_with_its_runs(capsys):
    from jgrok import scan

    assert scan.main(_args("--dry-run")) == 0
    out = capsys.readouterr().out
    assert "# runs: 8 in 4 program(s)" in out
    for i, (p, layers, runs) in enumerate([(5, 1, "0:2"), (5, 2, "2:4"), (7, 1, "4:6"), (7, 2, "6:8")]):
        assert f"# program {i}: x_plus_y / adamw p={p} n_layers={layers}, runs {runs}\n" in out
    assert out.count("parameters per run") == 4


@pytest.mark.parametrize("extra, sentence", [
    (["--task", "x_div_y", "--p", "7,9"], "task.p must be prime; 9 is not"),
    (["--d-model", "8,9"], "model.d_model (9) must be divisible by model.n_heads (2)"),
    (["--layers", "1,0"], "model.n_layers must be at least 1, not 0"),
    (["--layers", "1,x"], "must be a whole number, not 'x'"),
    (["--task", "permutation", "--p", "5,7"], "--p sets the modulus of the modular tasks"),
    (["--set", "model.kind=mlp", "--d-model", "8,16"], "--d-model sets the transformer's d_model"),
])
def test_a_bad_shape_value_is_one_sentence(extra, sentence, capsys):
    from jgrok import scan

    assert scan.main(TINY_ARGS + extra + ["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert sentence in err and err.count("\n") == 1 and "Traceback" not in err


def test_epoch_budgets_that_differ_between_programs_are_refused(capsys):
    from jgrok import scan

    args = ["--config", "tiny_cpu", "--p", "7,31", "--set", "train.sampling=epochs", "--epochs", "2", "--dry-run"]
    assert scan.main(args) == 2
    err = capsys.readouterr().err
    assert "train.epochs counts each program's own epochs" in err and err.count("\n") == 1
