"""The training fraction as a scan axis: a per-run traced value (train.Hyper.n_train) where the sampling allows it,
so that every fraction of a task shares one program, and each run's numbers are those of a scan of its fraction
alone."""

import csv
import math

import jax
import numpy as np
import pytest

from jgrok import config, grid, scan, train
from jgrok.errors import ConfigError
from tests.conftest import TINY_ARGS, tiny, train_runs

N = 121  # pairs of the tiny task (x_plus_y, p = 11)


@pytest.mark.parametrize("N_table,ns", [(50, (1, 2, 17, 49, 50)), (2000, (1, 1625, 1626, 1999, 2000))])
def test_prefix_permutation_is_jax_permutation_of_the_prefix(N_table, ns):
    """Across the sizes where jax's permutation sorts once and twice (n = 1625 / 1626)."""
    perm = jax.jit(lambda k, n: train.prefix_permutation(k, n, N_table))
    key = jax.random.fold_in(jax.random.key(7), 3)
    for n in ns:
        got = np.asarray(perm(key, np.int32(n)))
        np.testing.assert_array_equal(got[:n], np.asarray(jax.random.permutation(key, n)), err_msg=str(n))
        np.testing.assert_array_equal(got[n:], np.arange(n, N_table))


def test_fractions_share_one_program_and_training_sets_nest():
    """One program for every fraction (its split is the same permutation of all pairs), so for one split seed a
    smaller fraction's training set is the first part of a larger one's."""
    cfg = tiny(seed=[0, 1], fraction=[0.3, 0.6])
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    assert prog.n_train is None and prog.n_rows == N
    alone = tiny(fraction=[0.6])
    (prog_alone, _, _), = grid.programs(alone, grid.expand(alone))
    assert prog_alone == prog and hash(prog_alone) == hash(prog)
    hp = grid.hyper(prog, members)
    assert list(hp.n_train) == [math.floor(N * r["fraction"]) for r in members] == [36, 36, 72, 72]
    init, _ = prog.compiled(1)
    perm = np.asarray(init(jax.tree.map(np.asarray, hp)).perm)  # runs 0 and 2: split seed 0 at 0.3 and 0.6
    small, large = set(perm[0][:hp.n_train[0]]), set(perm[2][:hp.n_train[2]])
    assert small < large and len(large) == 72


def test_full_batch_splits_programs_by_fraction():
    cfg = config.set_path(tiny(fraction=[0.3, 0.6]), "train.sampling", "full")
    progs = grid.programs(cfg, grid.expand(cfg))
    assert [p.n_train for p, _, _ in progs] == [36, 72]


@pytest.mark.parametrize("sampling", ["replacement", "epochs"])
def test_a_run_of_a_mixed_fraction_scan_equals_it_alone_and_with_only(sampling):
    """Bit for bit at the same W: in a scan of two fractions, in a scan of its fraction alone (a scalar
    task.fraction), and re-trained alone (its wave padded to W)."""
    def cfg_of(**grid_values):
        cfg = config.set_path(tiny(**grid_values), "train.sampling", sampling)
        return config.set_path(cfg, "train.eval_train", "true")

    mixed = train_runs(cfg_of(seed=[0, 1], fraction=[0.3, 0.6]), lanes=2)
    alone = train_runs(config.set_path(cfg_of(seed=[0, 1]), "task.fraction", "0.6"), lanes=2)
    only = train_runs(cfg_of(seed=[0, 1], fraction=[0.3, 0.6]), only=[3], lanes=2)
    assert [r["run"] for r in mixed.rows] == [0, 1, 2, 3]
    for key, curve in mixed.metrics.items():
        np.testing.assert_array_equal(curve[2:], alone.metrics[key], err_msg=key)
        np.testing.assert_array_equal(curve[3:], only.metrics[key], err_msg=key)
    assert not np.array_equal(mixed.metrics["val_loss"][0], mixed.metrics["val_loss"][2])  # the fraction matters
    for a, b in zip(jax.tree.leaves(mixed.final_params), jax.tree.leaves(alone.final_params)):
        np.testing.assert_array_equal(np.asarray(a)[2:], np.asarray(b))


def test_dry_run_shows_one_program_with_each_fractions_sizes(capsys):
    assert scan.main(TINY_ARGS + ["--fraction", "0.3,0.5,0.7", "--seeds", "0:4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# runs: 12 in 1 program(s)" in out
    assert ("fraction=0.3: 36 train, 85 validation; fraction=0.5: 60 train, 61 validation; "
            "fraction=0.7: 84 train, 37 validation") in out


@pytest.mark.parametrize("args,words", [
    (["--fraction", "0.3,1.0"], "task.fraction must be between 0 and 1 (exclusive), not 1.0."),
    (["--fraction", "0.005"], "leaves an empty training set (0 train, 121 validation); choose a fraction of at least 1/121."),
    (["--fraction", "0.3,0.5", "--set", "train.sampling=epochs", "--epochs", "2"],
     "count the budget and the evaluations in updates"),
])
def test_bad_fractions_are_one_sentence_and_exit_2(args, words, tmp_path, capsys):
    out = tmp_path / "never"
    base = [a for a in TINY_ARGS if a != "--quiet"][:-6] if "--epochs" in args else TINY_ARGS  # no --steps
    assert scan.main(base + args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_regression_refuses_a_fraction_axis():
    with pytest.raises(ConfigError, match="drop the fraction axis"):  # with_grid validates what it makes
        config.validate(config.with_grid(config.load("mheight_tiny"), fraction=["0.3"]))


def test_summary_has_fraction_and_n_train_and_labels_read_fraction(tmp_path):
    out = tmp_path / "scan"
    assert scan.main(TINY_ARGS + ["--fraction", "0.3,0.6", "--seeds", "0:2", "--wave-size", "2", "--no-tensorboard",
                                  "--out", str(out)]) == 0
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["fraction"], r["n_train"]) for r in rows] == [("0.3", "36"), ("0.3", "36"), ("0.6", "72"),
                                                              ("0.6", "72")]
    import jgrok

    s = jgrok.open_scan(out)
    assert [s.run_config(r).task.fraction for r in range(4)] == [0.3, 0.3, 0.6, 0.6]
    assert "x_plus_y fraction=0.3" in (out / "final_info.json").read_text()
