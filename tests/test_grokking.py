"""Grokking really happens, on CPU, inside the test budget: the tiny_cpu preset memorises the training split long
before it generalises."""

import numpy as np
import pytest

from jgrok import scan
from jgrok.io import results


@pytest.mark.slow
def test_tiny_preset_groks(tmp_path):
    out = tmp_path / "grok"
    assert scan.main(["--config", "tiny_cpu", "--seeds", "1,3", "--steps", "1300", "--out", str(out), "--quiet"]) == 0
    rows = results.read_summary(out / "summary.csv")
    for r in rows:
        train99, val99 = int(r["step_train_acc_99"]), int(r["step_val_acc_99"])
        assert int(r["reached_train_99"]) and int(r["reached_val_99"]), r
        assert train99 <= 500 and val99 - train99 >= 500, (train99, val99)  # memorise early, generalise late
    # when the training split is memorised, the validation split is still mostly wrong
    m = np.load(out / "metrics.npz")
    for i, r in enumerate(rows):
        at = list(m["eval_step"]).index(int(r["step_train_acc_99"]))
        assert m["val_acc"][i, at] < 0.5, m["val_acc"][i, at]
