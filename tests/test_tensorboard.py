"""TensorBoard event files read back with TensorBoard's own reader hold the expected tags and values."""

import numpy as np
import pytest

from jgrok import scan
from tests.conftest import TINY_ARGS

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def test_event_files_hold_group_aggregates_runs_and_histograms(tmp_path):
    out = tmp_path / "tb_scan"
    assert scan.main(TINY_ARGS + ["--seeds", "0:3", "--wd", "0.5,1.0", "--tb-runs", "1:3",
                                  "--out", str(out)]) == 0
    acc = event_accumulator.EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for group in ("x_plus_y__wd_0.5", "x_plus_y__wd_1.0"):
        for k in ("train_loss", "val_acc", "weight_norm"):
            assert {f"{group}/{k}/{s}" for s in ("mean", "median", "q10", "q90")} <= tags
    assert {"run_1/val_loss", "run_2/val_acc"} <= tags and not any(t.startswith("run_0/") for t in tags)
    assert {"hist/val_acc", "hist/weight_norm"} <= set(acc.Tags()["histograms"])
    m = np.load(out / "metrics.npz")
    events = acc.Scalars("x_plus_y__wd_0.5/val_loss/mean")
    assert [e.step for e in events] == [4, 8, 12]
    np.testing.assert_allclose([e.value for e in events], m["val_loss"][:3].mean(axis=0), rtol=1e-6)
    run2 = acc.Scalars("run_2/train_loss")
    np.testing.assert_allclose([e.value for e in run2], m["train_loss"][2], rtol=1e-6)
    assert (out / "tb" / "run_1").is_dir()  # hparams of a chosen run
