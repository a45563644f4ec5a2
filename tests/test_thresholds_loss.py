"""--threshold (extra "steps to" columns), train.loss answer | sequence, the token layouts of task.vocab and
task.split, from the command line; bad values are one sentence and exit 2."""

import json

import numpy as np
import pytest

from jgrok import config, scan
from jgrok.errors import ConfigError
from jgrok.io import results
from jgrok.tasks import algorithmic
from tests.conftest import TINY_ARGS


@pytest.fixture(scope="module")
def thresholds_scan(tmp_path_factory):
    out = tmp_path_factory.mktemp("thr") / "out"
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--threshold", "0.5,0.99", "--out", str(out)]) == 0
    return out


def test_threshold_columns_in_summary_final_info_and_report(thresholds_scan):
    rows = results.read_summary(thresholds_scan / "summary.csv")
    assert {"step_val_acc_50", "step_train_acc_50", "reached_val_50", "reached_train_50",
            "step_val_acc_99"} <= set(rows[0])
    m = np.load(thresholds_scan / "metrics.npz")
    step, reached = results.first_step_above(m["val_acc"], m["eval_step"], 12, 0.5)
    assert [int(r["step_val_acc_50"]) for r in rows] == list(step)
    assert [int(r["reached_val_50"]) for r in rows] == list(reached.astype(int))
    info = json.loads((thresholds_scan / "final_info.json").read_text())
    block, = info.values()
    assert "step_val_acc_50_mean" in block["means"] and "step_val_acc_99_mean" in block["means"]
    from jgrok import report

    text = report.build_report(thresholds_scan).read_text()
    assert "## Steps to the other thresholds" in text and "50% val acc" in text


def test_threshold_printout(tmp_path, capsys):
    assert scan.main(TINY_ARGS + ["--threshold", "0.5", "--out", str(tmp_path / "o")]) == 0
    assert "reached 50% val acc" in capsys.readouterr().out


def test_threshold_labels():
    assert config.parse_thresholds("0.99,0.95,0.95") == (0.95, 0.99)
    assert [config.threshold_label(t) for t in (0.95, 0.99, 0.995, 1.0)] == ["95", "99", "99.5", "100"]


@pytest.mark.parametrize("args, words", [
    (["--threshold", "95"], "--threshold takes accuracies in (0, 1]"),
    (["--threshold", "0.9,x"], "--threshold takes accuracies"),
    (["--set", "train.loss=seq"], "train.loss 'seq' is unknown; use one of answer, sequence, stablemax"),
    (["--set", "train.loss=sequence"], "set task.vocab to grokfast, signed or nanda"),
    (["--set", "task.vocab=julia"], "task.vocab 'julia' is unknown"),
    (["--set", "task.split=random"], "task.split must be 'shuffled' or 'ordered'"),
    (["--set", "model.norm=grok"], "model.norm must be one of post, pre, none, grokfast"),
    (["--task", "x_div_y", "--set", "task.vocab=signed"], "task.vocab 'signed' takes operands 1..p"),
    (["--task", "permutation", "--set", "task.vocab=grokfast"], "needs task.vocab: template"),
])
def test_bad_values_one_sentence_exit_2(tmp_path, capsys, args, words):
    assert scan.main(TINY_ARGS + args + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_vocabularies():
    cfg = config.TaskConfig(p=7, vocab="signed")
    t = algorithmic.build("x_minus_y", cfg)  # Julia: a, b in 1..7, c = rem(a - b, 7) in -6..6
    assert (t.n_pairs, t.n_vocab, t.n_out) == (49, 17, 17)
    a, b = t.inputs[:, 0] - 7, t.inputs[:, 2] - 7
    assert a.min() == 1 and a.max() == 7 and (t.inputs[:, 1] == 16).all() and (t.inputs[:, 3] == 15).all()
    np.testing.assert_array_equal(t.targets - 7, np.fmod(a - b, 7))
    assert (t.targets - 7).min() == -6
    n = algorithmic.build("x_plus_y", config.TaskConfig(p=5, vocab="nanda"))  # [a, b, =], p + 1 outputs
    assert n.inputs.shape == (25, 3) and (n.inputs[:, 2] == 5).all() and (n.n_vocab, n.n_out) == (6, 6)
    np.testing.assert_array_equal(n.targets, (n.inputs[:, 0] + n.inputs[:, 1]) % 5)


@pytest.mark.slow
def test_sequence_loss_trains_and_keeps_accuracy_on_the_answer(tmp_path):
    args = TINY_ARGS + ["--set", "task.vocab=grokfast", "--set", "train.loss=sequence", "--set", "task.split=ordered",
                        "--out", str(tmp_path / "o")]
    assert scan.main(args) == 0
    m = np.load(tmp_path / "o" / "metrics.npz")
    assert np.isfinite(m["step_loss"]).all() and (m["val_acc"][np.isfinite(m["val_acc"])] <= 1).all()


@pytest.mark.slow
def test_ordered_split_keeps_table_order():
    from jgrok import train

    cfg = config.from_dict({"task": {"name": "x_plus_y", "p": 5, "split": "ordered"},
                            "model": {"n_layers": 1, "d_model": 8, "n_heads": 2}})
    t = algorithmic.build("x_plus_y", cfg.task)
    prog = train.Program(cfg=cfg, n_inputs=t.n_vocab, n_out=t.n_out, n_rows=t.n_pairs, n_train=t.n_train,
                         schemes=("default",), filters=("none",), window_max=1)
    import jax.numpy as jnp

    hp = train.Hyper(lr=1e-3, wd=0.0, init_scale=1.0, filter_kind=0, filter_alpha=0.9, filter_lambda=0.0,
                     filter_window=1, split_seed=3, order_seed=0, seed_G=jnp.zeros(len(prog.groups), jnp.int32),
                     scheme_G=jnp.zeros(len(prog.groups), jnp.int32), perturb=0)
    np.testing.assert_array_equal(np.asarray(train.init_run(prog, hp).perm), np.arange(25))


def test_config_error_for_unknown_vocab_directly():
    with pytest.raises(ConfigError):
        algorithmic.vocab("nope", 5)
