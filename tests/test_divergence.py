"""A diverging run is marked and frozen; it poisons nothing: every other run is bit-identical to a scan without it."""

import jax
import numpy as np
import pytest

from jgrok import config, engine, grid
from tests.conftest import tiny


def run(cfg, lanes=4):
    rows = grid.expand(cfg)
    (prog, table, members), = grid.programs(cfg, rows)
    return engine.train_program(prog, table, members, lanes, progress=False)


@pytest.mark.slow
def test_lr_10_diverges_alone():
    cfg = config.set_path(tiny(seed=[0, 1], lr=[3e-3, 1e6]), "optim.warmup", "0")
    bad = run(cfg)
    lrs = [r["lr"] for r in bad.rows]
    d = bad.diverged_step
    assert all(d[i] == -1 for i, lr in enumerate(lrs) if lr < 1) and all(d[i] >= 0 for i, lr in enumerate(lrs) if lr > 1)
    for i, lr in enumerate(lrs):
        if lr > 1:  # frozen at its last finite parameters, curves end at the divergence
            assert all(np.isfinite(x[i]).all() for x in jax.tree.leaves(bad.final_params))
            assert np.isnan(bad.step_loss[i, d[i]:]).all()
    good = run(config.set_path(tiny(seed=[0, 1], lr=[3e-3]), "optim.warmup", "0"))
    keep = [i for i, lr in enumerate(lrs) if lr < 1]
    for a, b in zip(jax.tree.leaves(bad.final_params), jax.tree.leaves(good.final_params)):
        np.testing.assert_array_equal(a[keep], b)
    np.testing.assert_array_equal(bad.metrics["val_loss"][keep], good.metrics["val_loss"])


@pytest.mark.slow
def test_diverged_run_in_summary_printout_and_report(tmp_path, capsys):
    """Through the CLI: lr = 1000 diverges within a few updates in the tiny config (lr = 10 does not: Adam's steps
    are bounded by lr and the post-LN model stays finite). Its runs are marked with the update in summary.csv, the
    end-of-scan printout and report.md; the other runs are bit-identical to a scan without lr = 1000 at the same W."""
    from jgrok import report, scan
    from jgrok.io import results
    from tests.conftest import TINY_ARGS

    base = TINY_ARGS + ["--seeds", "0:2", "--wave-size", "4"]
    with_bad, without = tmp_path / "with", tmp_path / "without"
    assert scan.main(base + ["--lr", "3e-3,1000", "--out", str(with_bad)]) == 0
    printed = capsys.readouterr().out
    assert scan.main(base + ["--lr", "3e-3", "--out", str(without)]) == 0
    rows = results.read_summary(with_bad / "summary.csv")
    bad = [r for r in rows if float(r["lr"]) == 1000]
    good = [r for r in rows if float(r["lr"]) != 1000]
    assert len(bad) == 2 and all(r["diverged_step"] != "" for r in bad) and all(r["diverged_step"] == "" for r in good)
    for r in bad:
        assert f"run {r['run']} (seed {r['seed']}) at update {int(r['diverged_step']) + 1}" in printed
    assert "x_plus_y lr=1000: 0/2 = 0.0% (95% CI 0.0–65.8%) of runs reached 99% val acc, 2 diverged" in printed
    assert report.main([str(with_bad)]) == 0
    md = (with_bad / "report.md").read_text()
    assert "## Diverged runs (2)" in md
    for r in bad:
        assert f"| {r['run']} | x_plus_y lr=1000 | {r['seed']} | {int(r['diverged_step']) + 1} |" in md
    # the other runs: same rows of summary.csv and metrics.npz, bit for bit
    assert good == results.read_summary(without / "summary.csv")
    a, b = np.load(with_bad / "metrics.npz"), np.load(without / "metrics.npz")
    keep = [int(r["run"]) for r in good]
    for k in b.files:
        if k != "eval_step":
            np.testing.assert_array_equal(a[k][keep], b[k], err_msg=k)
    assert np.isnan(a["val_loss"][[int(r["run"]) for r in bad], -1]).all()
