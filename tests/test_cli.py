"""The command line as a user runs it: end to end, --only, --dry-run, and every bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from jgrok import scan
from jgrok.io import results
from tests.conftest import TINY_ARGS


def run_cli(args, capsys):
    code = scan.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "out"
    assert scan.main(TINY_ARGS + ["--seeds", "0:3", "--wd", "0.5,1.0", "--wave-size", "4", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_results_folder(finished):
    names = {p.name for p in finished.iterdir()}
    assert {"config.yaml", "metrics.npz", "summary.csv", "final_info.json"} <= names
    rows = results.read_summary(finished / "summary.csv")
    assert [int(r["run"]) for r in rows] == list(range(6))
    assert {r["wd"] for r in rows} == {"0.5", "1.0"} and all(r["lanes"] == "4" for r in rows)
    m = np.load(finished / "metrics.npz")
    assert m["val_acc"].shape == (6, 3) and list(m["eval_step"]) == [4, 8, 12]
    assert m["step_loss"].shape == (6, 12) and np.isfinite(m["step_loss"]).all()
    info = json.loads((finished / "final_info.json").read_text())
    assert set(info) == {"x_plus_y wd=0.5", "x_plus_y wd=1"}  # the run-group labels of jgrok.rungroup
    block = info["x_plus_y wd=0.5"]
    assert set(block) == {"means", "stderrs", "final_info_dict", "definitions"}
    assert "template's formula" in block["definitions"]["stderrs"]
    assert set(block["means"]) == {f"{k}_mean" for k in results.FINAL_KEYS}
    assert set(block["stderrs"]) == {f"{k}_stderr" for k in results.FINAL_KEYS}
    assert all(len(v) == 3 for v in block["final_info_dict"].values())
    vals = block["final_info_dict"]["final_val_loss"]
    assert block["stderrs"]["final_val_loss_stderr"] == pytest.approx(np.std(vals) / 3)


@pytest.mark.slow
def test_only_retrains_bit_identically(finished, tmp_path):
    """--config OUT/config.yaml --only 4 re-trains run 4 alone (its wave padded to the recorded W)."""
    out = tmp_path / "only"
    code = scan.main(["--config", str(finished / "config.yaml"), "--only", "4", "--out", str(out), "--quiet"])
    assert code == 0
    a, b = np.load(finished / "metrics.npz"), np.load(out / "metrics.npz")
    assert list(b["run"]) == [4]
    for k in ("step_loss", "val_loss", "val_acc", "weight_norm"):
        np.testing.assert_array_equal(a[k][4], b[k][0])


@pytest.mark.slow
@pytest.mark.scan_plots
def test_a_scan_draws_its_figures(tmp_path):
    """A finished scan has its figures (other in-process scans of the suite skip drawing them, see conftest)."""
    out = tmp_path / "figs"  # W = 4 as in `finished`: the compiled program is shared
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--wave-size", "4", "--out", str(out)]) == 0
    names = {p.name for p in (out / "plots").iterdir()}
    assert {"val_acc_x_plus_y.png", "quantiles_x_plus_y.png", "survival_x_plus_y.png", "summary_plot.png"} <= names
    assert all((out / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names)


def test_dry_run_writes_nothing(tmp_path, capsys):
    out = tmp_path / "dry"
    code, stdout, _ = run_cli(["--task", "permutation", "--seeds", "0:8", "--steps", "2000", "--eval-every", "50",
                               "--dry-run", "--out", str(out)], capsys)
    assert code == 0 and not out.exists()
    assert "428,536 parameters per run" in stdout and "runs: 8" in stdout and "MiB per run" in stdout


@pytest.mark.parametrize("args,words", [
    (["--seeds", "5:2"], "empty range"),
    (["--seeds", "x"], "whole numbers"),
    (["--lr", "-0.1"], "Learning rate must be positive"),
    (["--set", "task.fraction=1.5"], "task.fraction"),
    (["--task", "x_pow_y"], "Unknown task"),
    (["--set", "model.widht=3"], "Unknown config key"),
    (["--set", "task.p=91", "--task", "x_div_y"], "must be prime"),
    (["--wd", "a,b"], "must be a number"),
    (["--eval-every", "0"], "train.eval_every"),
    (["--only", "99"], "does not exist"),
    (["--config", "no_such_preset"], "No config file or preset"),
    (["--init", "magic"], "Init scheme"),
    (["--filter-alpha", "1.0", "--filter", "ema"], "alpha"),
    (["--filter-window", "0", "--filter", "ma"], "window"),
    (["--bogus-flag"], "nrecognized arguments"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, words, tmp_path, capsys):
    out = tmp_path / "never"
    code, stdout, err = run_cli(args + ["--out", str(out)], capsys)
    assert code == 2
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_existing_output_is_refused_then_overwritten_on_request(finished, capsys, tmp_path):
    before = (finished / "summary.csv").read_bytes()
    code, _, err = run_cli(TINY_ARGS + ["--out", str(finished)], capsys)
    assert code == 2 and "already exists" in err
    assert (finished / "summary.csv").read_bytes() == before
    # a folder that is not a jgrok result is never emptied, even with --overwrite
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, _, err = run_cli(TINY_ARGS + ["--out", str(other), "--overwrite"], capsys)
    assert code == 2 and (other / "notes.txt").read_text() == "keep me"


def test_module_entry_point_exit_code(tmp_path):
    """As a user runs it: python -m jgrok.scan in a subprocess, a mistake gives exit 2 and no traceback."""
    p = subprocess.run([sys.executable, "-m", "jgrok.scan", "--seeds", "5:2"], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--seeds 5:2" in p.stderr
