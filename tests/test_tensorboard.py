"""TensorBoard event files read back with TensorBoard's own reader hold the expected tags and values."""

import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jgrok import scan
from jgrok.io import tb
from tests.conftest import TINY_ARGS

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")


def _read(path):
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.mark.slow
def test_event_files_hold_group_aggregates_runs_and_histograms(tmp_path):
    out = tmp_path / "tb_scan"
    assert scan.main(TINY_ARGS + ["--task", "x_plus_y,x_minus_y", "--seeds", "0:3", "--wd", "0.5,1.0",
                                  "--tb-runs", "1:3,7", "--out", str(out)]) == 0
    m = np.load(out / "metrics.npz")
    assert list(m["run"]) == list(range(12))  # task outermost, then wd, then seed
    runs_of = {("x_plus_y", "0.5"): [0, 1, 2], ("x_plus_y", "1"): [3, 4, 5],
               ("x_minus_y", "0.5"): [6, 7, 8], ("x_minus_y", "1"): [9, 10, 11]}
    for (task, wd), members in runs_of.items():
        acc = _read(out / "tb" / f"{task} wd={wd}")  # the run-group label of results and plots
        tags = set(acc.Tags()["scalars"])
        assert {f"{t}/{s}" for t in tb.TAGS.values() for s in tb.STATS} == tags
        assert "accuracy/val/median" in tags and "weight_norm/q10" in tags
        events = acc.Scalars("loss/val/mean")
        assert [e.step for e in events] == [4, 8, 12]
        np.testing.assert_allclose([e.value for e in events], m["val_loss"][members].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose([e.value for e in acc.Scalars("weight_norm/q90")],
                                   np.quantile(m["weight_norm"][members], 0.9, axis=0), rtol=1e-6)
        # one histogram per eval step and group: a multi-task scan writes each group's histograms once
        assert {"spread/val_acc", "spread/val_loss", "spread/weight_norm"} == set(acc.Tags()["histograms"])
        hist = acc.Histograms("spread/val_acc")
        assert [h.step for h in hist] == [4, 8, 12]
        assert hist[-1].histogram_value.num == len(members)
    run_dirs = sorted(p.name for p in (out / "tb").iterdir() if p.name.startswith("run_"))
    # zero-padded, so that TensorBoard lists them in order; named by their axis values
    assert run_dirs == ["run_01 x_plus_y wd=0.5 seed=1", "run_02 x_plus_y wd=0.5 seed=2",
                        "run_07 x_minus_y wd=0.5 seed=1"]
    # Custom Scalars: one margin chart per metric, median between q10 and q90
    first = _read(out / "tb" / "x_plus_y wd=0.5")
    assert "custom_scalars__config__" in first.Tags()["tensors"]
    from tensorboard.plugins.custom_scalar import layout_pb2

    layout = layout_pb2.Layout.FromString(first.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {c.title: c.margin.series[0] for cat in layout.category for c in cat.chart}
    assert set(charts) == set(tb.TAGS.values())
    s = charts["accuracy/val"]
    assert (s.value, s.lower, s.upper) == ("accuracy/val/median", "accuracy/val/q10", "accuracy/val/q90")
    acc = _read(out / "tb" / "run_07 x_minus_y wd=0.5 seed=1")
    assert set(tb.TAGS.values()) | {tb.STEPS_TAG} == set(acc.Tags()["scalars"])
    np.testing.assert_allclose([e.value for e in acc.Scalars("loss/train")], m["train_loss"][7], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in acc.Scalars("accuracy/val")], m["val_acc"][7], rtol=1e-6)
    # hparams of a chosen run; its metrics are its curves' last values and steps to 99% val acc
    summary = {int(r["run"]): r for r in csv.DictReader(open(out / "summary.csv"))}
    steps99 = acc.Scalars(tb.STEPS_TAG)
    assert [(e.step, e.value) for e in steps99] == [(12, float(summary[7]["step_val_acc_99"]))]
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hp = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert set(hp) == {"task", "seed", "wd"}  # what varies; constant settings stay in config.yaml
    experiment = plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")["_hparams_/experiment"])
    assert [m.name.tag for m in experiment.experiment.metric_infos][0] == tb.STEPS_TAG  # shown first
    assert (hp["task"].string_value, hp["seed"].number_value, hp["wd"].number_value) == ("x_minus_y", 1, 0.5)


def test_tensorboard_off_and_no_chosen_runs(tmp_path):
    off = tmp_path / "off"
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--no-tensorboard", "--out", str(off)]) == 0
    assert not (off / "tb").exists() and (off / "summary.csv").is_file()
    assert "tensorboard: false" in (off / "config.yaml").read_text()

    none = tmp_path / "none"
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--tb-runs", "none", "--out", str(none)]) == 0
    assert sorted(p.name for p in (none / "tb").iterdir()) == ["x_plus_y"]
    assert "accuracy/val/median" in _read(none / "tb" / "x_plus_y").Tags()["scalars"]


def test_bad_tb_runs_is_one_sentence(capsys):
    assert scan.main(TINY_ARGS + ["--tb-runs", "some", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tb_runs" in err
    # an id the scan does not have is refused as --only refuses it (it used to be ignored silently)
    assert scan.main(TINY_ARGS + ["--seeds", "0:8", "--tb-runs", "3,99", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run 99, which is not in this scan (runs 0 to 7)" in err
    assert scan.main(TINY_ARGS + ["--seeds", "0:8", "--only", "0:4", "--tb-runs", "5", "--dry-run"]) == 2
    assert "run 5, which is not in this scan (runs 0 to 3)" in capsys.readouterr().err


def test_group_names():
    row = {"task": "x_div_y", "wd": 0.5, "init": "xavier_uniform", "lr": 1e-3}
    assert tb.group_name(row, ["wd", "init"]) == "x_div_y wd=0.5 init=xavier_uniform"
    assert tb.group_name(row, ["lr"]) == "x_div_y lr=0.001"
    assert tb.group_name(row, []) == "x_div_y"
    assert tb.group_name(dict(row, wd=1.0), ["wd"]) == tb.group_name(dict(row, wd="1.0"), ["wd"]) == "x_div_y wd=1"
    assert tb.parse_runs("none") == set() and tb.parse_runs("0:3,7") == {0, 1, 2, 7}
    rows = [{"task": "t", "seed": s, "split_seed": s, "order_seed": 0, "wd": w} for s in (0, 1) for w in (0.1, 1.0)]
    assert tb.hparam_keys(rows, ["wd"]) == ["task", "seed", "order_seed", "wd"]


def test_a_resumed_scan_replaces_the_steps_logged_after_its_checkpoint(tmp_path):
    """The first session logged steps 4, 8, 12 and was killed after its checkpoint at 8; the resumed session logs
    12 and 16 again. TensorBoard shows each step once, with the resumed values."""
    rows = [{"run": i, "task": "x_plus_y", "seed": i} for i in range(2)]

    def values(e, offset):
        return {k: np.full((2, e), offset, np.float32) + np.arange(2)[:, None] for k in tb.METRICS}

    first = tb.Logger(tmp_path, rows, "0:2", [])
    first.log(np.array([4, 8, 12]), values(3, 0.0), [0, 1])
    first.close()  # what a killed process left on disk (its queue flushed)
    time.sleep(1.1)  # event files are named by the second they were opened in
    second = tb.Logger(tmp_path, rows, "0:2", [])
    second.log(np.array([12, 16]), values(2, 10.0), [0, 1])
    second.close()
    for run in ("x_plus_y", "run_1 seed=1"):
        tag = "loss/val/mean" if run == "x_plus_y" else "loss/val"
        events = _read(tmp_path / "tb" / run).Scalars(tag)
        expect = [0.5, 0.5, 10.5, 10.5] if run == "x_plus_y" else [1, 1, 11, 11]
        assert [(e.step, e.value) for e in events] == list(zip([4, 8, 12, 16], expect))


def test_the_logger_does_not_pull_in_torch(tmp_path):
    """tensorboardX imports torch when it can (seconds of CPU at the start of every scan); the logger keeps it out."""
    code = ("import sys; from jgrok.io import tb; "
            "lg = tb.Logger(sys.argv[1], [{'run': 0, 'task': 't', 'seed': 0}], '0:1', []); lg.close(); "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                       cwd=Path(__file__).parents[1], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_auto_runs_come_from_every_group():
    def scan_rows(wds, seeds):
        return [{"run": i, "task": "t", "wd": wd, "seed": s} for i, (wd, s) in
                enumerate((wd, s) for wd in wds for s in range(seeds))]

    def pick(rows, axes, text="auto"):
        groups = {}
        for r in rows:
            groups.setdefault(tb.group_name(r, axes), []).append(r["run"])
        return tb.select_runs(text, rows, groups)

    assert pick(scan_rows([0.1, 1.0], 10), ["wd"]) == list(range(8)) + list(range(10, 18))
    assert pick(scan_rows([0.1, 0.3, 1.0], 3), ["wd"]) == list(range(9))
    assert pick(scan_rows([1.0], 20), []) == list(range(16))  # one group: the first 16, as 0:16
    assert pick(scan_rows([1.0], 20), [], "3,40,5:7") == [3, 5, 6]
    assert pick(scan_rows([1.0], 20), [], "none") == []
