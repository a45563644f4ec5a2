"""The AI-Scientist drop-in writes the template's final_info.json and all_results.npy structures."""

import json

import numpy as np
import pytest

from jgrok import aiscientist

TINY = ["--set", "task.p=11", "--set", "model.n_layers=1", "--set", "model.d_model=16", "--set", "model.n_heads=2",
        "--set", "train.batch_size=16", "--set", "train.eval_every=4", "--set", "task.perm_n=3"]


@pytest.mark.slow
def test_template_structure(tmp_path):
    out = tmp_path / "run_0"
    code = aiscientist.main(["--out_dir", str(out), "--seeds", "0:2", "--steps", "8", "--datasets",
                             "x_plus_y,permutation", "--quiet"] + TINY)
    assert code == 0
    info = json.loads((out / "final_info.json").read_text())
    keys = ["final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "step_val_acc_99"]
    assert set(info) == {"x_plus_y", "permutation"}
    for block in info.values():
        assert set(block["means"]) == {f"{k}_mean" for k in keys}
        assert set(block["stderrs"]) == {f"{k}_stderr" for k in keys}
        assert all(len(v) == 2 for v in block["final_info_dict"].values())
    res = np.load(out / "all_results.npy", allow_pickle=True).item()
    assert set(res) == {f"{d}_{s}_{k}" for d in ("x_plus_y", "permutation") for s in (0, 1)
                        for k in ("final_info", "train_info", "val_info")}
    assert [x["step"] for x in res["x_plus_y_1_val_info"]] == [4, 8]
    assert set(res["x_plus_y_1_train_info"][0]) == {"train_loss", "train_accuracy", "step"}
    assert set(res["permutation_0_val_info"][0]) == {"val_loss", "val_accuracy", "step"}
    assert res["x_plus_y_0_final_info"]["final_val_loss"] == info["x_plus_y"]["final_info_dict"]["final_val_loss"][0]
    assert aiscientist.main(["--out_dir", str(out), "--quiet"]) == 2  # never overwrites
