"""Plots and report on synthetic results folders written in the format of jgrok/io/results.py.

``write_scan`` makes grokking-shaped curves (train acc rises early, val acc late, faster with more weight decay),
computes summary.csv from them with the documented definitions, and can add diverged runs (NaN tails) and runs
that never reach 99% val acc.
"""

import csv
import itertools
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import jgrok
from jgrok import distribution, plots, report, rungroup, scandata, stats
from jgrok.io.results import npz_rows, parse_summary

PNG = b"\x89PNG\r\n\x1a\n"
AXES = ("task", "seed", "split_seed", "order_seed", "lr", "wd", "init", "init_scale", "optimizer", "filter",
        "filter_alpha", "filter_lambda", "filter_window")
BASE = dict(task="x_div_y", seed=0, split_seed=0, order_seed=0, lr=1e-3, wd=0.5, init="default", init_scale=1.0,
            optimizer="adamw", filter="none", filter_alpha=0.98, filter_lambda=2.0, filter_window=100)
LAYERS = ("embedding", "block0_attn", "block0_mlp", "head")


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def write_scan(out: Path, grid: dict, steps=600, eval_every=20, lanes=8, diverge=None, never=(), compressed=False):
    """A results folder with one run per combination of ``grid`` (axis -> values; 'seed' innermost).
    diverge: {run id: 0-based update index where it diverged}; never: run ids whose val acc stays below 0.99."""
    diverge = diverge or {}
    axes = list(grid)
    rows = []
    for values in itertools.product(*grid.values()):
        r = dict(BASE, **dict(zip(axes, values)))
        r.update(run=len(rows), split_seed=r["seed"], order_seed=r["seed"])
        rows.append(r)
    R, S = len(rows), steps
    eval_step = np.arange(eval_every, steps + 1, eval_every)
    rng = np.random.default_rng(0)
    t_train = steps * (0.06 + 0.04 * rng.random(R))
    t_val = steps * 0.45 / (1 + np.array([r["wd"] for r in rows])) * np.exp(0.35 * rng.standard_normal(R))
    t_val += np.array([0.1 * steps if r["init"] == "xavier_uniform" else 0 for r in rows])
    t_val[list(never)] = 10 * steps
    x = eval_step[None, :]
    lift = 0.01 * np.abs(rng.standard_normal((R, 1)))
    train_acc = np.clip(_sigmoid((x - t_train[:, None]) / (0.015 * steps)) + lift, 0, 1)
    val_acc = 0.01 + 0.99 * _sigmoid((x - t_val[:, None]) / (0.03 * steps))
    curves = {"train_acc": train_acc, "val_acc": val_acc, "train_loss": 4.6 * (1 - train_acc) + 1e-3,
              "val_loss": 4.6 * (1 - val_acc) + 1e-3 + 3 * (train_acc > 0.9) * (val_acc < 0.5)}
    wn = 40 - 15 * _sigmoid((x - t_val[:, None]) / (0.05 * steps)) + np.zeros((R, 1))
    curves["weight_norm"] = wn
    for k, name in enumerate(LAYERS):
        curves[f"norm/{name}"] = wn * (0.2 + 0.1 * k)
    step_loss = np.stack([np.interp(np.arange(1, S + 1), eval_step, c) for c in curves["train_loss"]])
    step_loss *= np.exp(0.3 * rng.standard_normal((R, S)))
    for rid, d in diverge.items():
        for v in curves.values():
            v[rid, eval_step >= d + 1] = np.nan
        step_loss[rid, d:] = np.nan
    curves = {k: v.astype(np.float32) for k, v in curves.items()}

    def first_above(c):
        above = np.nan_to_num(c, nan=-np.inf) > 0.99
        return np.where(above.any(1), eval_step[np.argmax(above, 1)], steps), above.any(1)

    def last_finite(c):
        return [float(row[np.isfinite(row)][-1]) if np.isfinite(row).any() else float("nan") for row in c]

    st, rt = first_above(curves["train_acc"])
    sv, rv = first_above(curves["val_acc"])
    finals = {k: last_finite(curves[k]) for k in ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm")}
    out.mkdir(parents=True, exist_ok=True)
    columns = ("run",) + AXES + ("lanes", "step_train_acc_99", "step_val_acc_99", "grok_delay", "reached_train_99",
                                 "reached_val_99", "final_train_loss", "final_val_loss", "final_train_acc",
                                 "final_val_acc", "final_weight_norm", "diverged_step")
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow(dict(r, lanes=lanes, step_train_acc_99=int(st[i]), step_val_acc_99=int(sv[i]),
                            grok_delay=int(sv[i] - st[i]), reached_train_99=int(rt[i]), reached_val_99=int(rv[i]),
                            diverged_step=diverge.get(i, ""), **{f"final_{k}": v[i] for k, v in finals.items()}))
    save = np.savez_compressed if compressed else np.savez
    save(out / "metrics.npz", run=np.arange(R), eval_step=eval_step, step_loss=step_loss.astype(np.float32),
         step_acc=np.zeros((R, S), np.float32), **curves)
    cfg = {"task": {"name": rows[0]["task"], "p": 97}, "train": {"steps": steps, "eval_every": eval_every,
                                                              "batch_size": 512}, "lanes": lanes}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return rows


def _check_pngs(paths):
    assert paths
    for p in paths:
        data = Path(p).read_bytes()
        assert data[:8] == PNG and len(data) > 2000, p


def _names(out):
    return sorted(p.name for p in (out / "plots").iterdir())


@pytest.fixture(scope="module")
def wd_scan(tmp_path_factory):
    """One task, wd in {0.1, 1.0} x 10 seeds; run 3 diverges at update 250, run 5 never groks."""
    out = tmp_path_factory.mktemp("wd_scan")
    rows = write_scan(out, {"wd": [0.1, 1.0], "seed": list(range(10))}, diverge={3: 250}, never=(5,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # all-NaN steps must not leak numpy warnings
        assert report.main([str(out)]) == 0
    return out, rows


@pytest.mark.slow
def test_every_plot_is_a_png(wd_scan):
    out, rows = wd_scan
    summary = parse_summary(list(csv.DictReader(open(out / "summary.csv"))))
    ranked = sorted(summary, key=lambda r: (r["step_val_acc_99"], r["run"]))
    shown = {ranked[0]["run"], ranked[(len(ranked) - 1) // 2]["run"], ranked[-1]["run"]}
    expected = {f"{k}_x_div_y.png" for k in ("train_loss", "val_loss", "train_acc", "val_acc", "quantiles",
                                             "steps_hist", "steps_ecdf", "survival")} | {"summary_plot.png"}
    expected |= {f"run_{r}.png" for r in shown}
    assert set(_names(out)) == expected
    _check_pngs((out / "plots").iterdir())


@pytest.mark.slow
def test_report_tables(wd_scan):
    out, rows = wd_scan
    md = (out / "report.md").read_text()
    for heading in ("## Steps to 99% val acc", "## Final values", "## Fastest runs", "## Diverged runs (1)",
                    "## Plots"):
        assert heading in md
    assert "updates per run (budget): 600" in md and "lanes W: 8" in md and "runs: 20 in 2 run group(s) by wd" in md
    summary = parse_summary(list(csv.DictReader(open(out / "summary.csv"))))
    for wd in (0.1, 1.0):
        members = [r for r in summary if r["wd"] == wd]
        reached = [r["step_val_acc_99"] for r in members if r["reached_val_99"]]
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| x_div_y wd={wd:g} | 10 | "))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2].startswith(f"{len(reached)}/10 = ")
        assert cells[5] == f"{np.percentile(reached, 50):.0f}"
        assert cells[8].startswith(f"{np.mean(reached):.0f} ± ")
    assert "| 3 | x_div_y wd=0.1 | 3 | 251 |" in md  # diverged run: update 251 = index 250
    assert "## Time to grokking (Kaplan-Meier)" in md and "- x_div_y, 2 run groups: log-rank chi² = " in md
    for link in [ln for ln in md.splitlines() if ln.startswith("![")]:
        assert (out / link[link.index("(") + 1:-1]).is_file()
    # fastest runs: 5 per group, in order of steps to 99% val acc
    wd01 = sorted((r for r in summary if r["wd"] == 0.1 and r["reached_val_99"]),
                  key=lambda r: (r["step_val_acc_99"], r["run"]))[:5]
    fast = [ln for ln in md.split("## Fastest runs")[1].splitlines() if ln.startswith("| x_div_y wd=0.1 |")]
    assert [int(ln.split("|")[2]) for ln in fast] == [r["run"] for r in wd01]


def test_distribution_stats_and_wilson():
    lo, hi = stats.wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = stats.wilson(0, 10)
    assert lo == 0 and round(hi, 4) == 0.2775
    assert stats.wilson(10, 10)[1] == 1.0
    rows = [dict(BASE, run=i, task="t", wd=w, step_val_acc_99=s, reached_val_99=int(s < 1000), diverged_step="")
            for i, (w, s) in enumerate([(0.1, 100), (0.1, 300), (0.1, 1000), (1, 50), (1, 70)])]
    rows = [{k: str(v) for k, v in r.items()} for r in rows]  # as csv.DictReader gives them
    a, b = distribution.distribution_stats(rows, ["wd"])
    assert (a["group"], a["n"], a["reached"], a["p50"], a["mean"]) == ("t wd=0.1", 3, 2, 200, 200)
    assert math.isclose(a["se"], np.std([100, 300], ddof=1) / math.sqrt(2))
    assert (b["group"], b["reached"], b["p10"], b["diverged"]) == ("t wd=1", 2, 52, 0)
    table = distribution.distribution_table(rows, ["wd"])
    assert table.splitlines()[2].startswith("| t wd=0.1 | 3 | 2/3 = 66.7% (")


def test_mean_se_with_nan_tail():
    x = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, 4.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        mean, se = plots.mean_se(x)
    assert np.allclose(mean[:2], [3.0, 3.0]) and np.isnan(mean[2])
    assert np.allclose(se[:2], [2 / math.sqrt(3), math.sqrt(2) / math.sqrt(2)]) and se[2] == 0


def test_group_keys_ignore_seeds_and_constants():
    rows = [dict(BASE, run=i, seed=i, split_seed=i + 1, wd=0.1, lr=lr) for i, lr in enumerate([1e-3, 1e-3, 3e-4])]
    assert rungroup.axes(rows) == ["lr"]
    assert list(scandata.groups(rows, ["lr"])) == [("x_div_y", "x_div_y lr=0.0003"), ("x_div_y", "x_div_y lr=0.001")]


@pytest.mark.slow
def test_nan_tail_runs(tmp_path):
    """Runs that diverge at the first update (all-NaN curves) or midway; a group where every run diverged."""
    write_scan(tmp_path, {"wd": [0.1, 1.0], "seed": [0, 1, 2]}, diverge={0: 0, 1: 0, 2: 0, 4: 100})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert report.main([str(tmp_path), "--runs", "0,4"]) == 0
    assert {"run_0.png", "run_4.png"} <= set(_names(tmp_path))
    _check_pngs((tmp_path / "plots").iterdir())
    md = (tmp_path / "report.md").read_text()
    assert "| x_div_y wd=0.1 | 3 | 0/3 = 0.0% (95% CI 0.0–56.1%)" in md and "## Diverged runs (4)" in md


def test_single_run_scan(tmp_path):
    write_scan(tmp_path, {"seed": [7]})
    assert report.main([str(tmp_path)]) == 0
    assert "run_0.png" in _names(tmp_path) and len(_names(tmp_path)) == 10
    _check_pngs((tmp_path / "plots").iterdir())
    md = (tmp_path / "report.md").read_text()
    assert "runs: 1 in 1 run group(s); seeds" in md and "| x_div_y | 1 | 1/1 = 100.0% (" in md
    assert "Diverged" not in md


@pytest.mark.slow
def test_two_axes_and_two_tasks(tmp_path):
    write_scan(tmp_path, {"task": ["x_div_y", "x_plus_y"], "init": ["default", "xavier_uniform"],
                          "wd": [0.1, 1.0], "seed": [0, 1, 2]}, compressed=True)
    paths = plots.make_plots(tmp_path, runs_to_show=[5])
    _check_pngs(paths)
    names = _names(tmp_path)
    assert "quantiles_x_plus_y.png" in names and "val_acc_x_div_y.png" in names and "run_5.png" in names
    summary = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert rungroup.axes(summary) == ["wd", "init"]
    table = distribution.distribution_table(summary, ["wd", "init"])
    assert "| x_plus_y wd=1 init=xavier_uniform | 3 |" in table and len(table.splitlines()) == 2 + 8


def test_npz_rows_reads_only_rows(tmp_path):
    a = np.arange(5 * 7, dtype=np.float32).reshape(5, 7)
    np.savez(tmp_path / "m.npz", step_loss=a, other=np.ones(3))
    np.savez_compressed(tmp_path / "c.npz", step_loss=a)
    for name in ("m.npz", "c.npz"):
        assert np.array_equal(npz_rows(tmp_path / name, "step_loss", [4, 1]), a[[4, 1]])


def test_cli_errors(tmp_path, capsys):
    env_python = sys.executable
    r = subprocess.run([env_python, "-m", "jgrok.report", str(tmp_path / "missing")], capture_output=True, text=True,
                       cwd=Path(__file__).parents[1])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr
    (tmp_path / "notes.txt").write_text("hello")
    assert report.main([str(tmp_path)]) == 2
    assert "not a finished jgrok results folder" in capsys.readouterr().err
    write_scan(tmp_path / "scan", {"seed": [0, 1]})
    assert report.main([str(tmp_path / "scan"), "--runs", "9"]) == 2
    assert "Run 9 is not in this scan" in capsys.readouterr().err
    assert report.main([str(tmp_path / "scan"), "--runs", "a"]) == 2
    assert report.main([]) == 2


def test_log_axes_steps_hist_and_ecdf_are_readable(tmp_path):
    """Log loss axes read 0.1, 1, 4 (not 10^-1 or 4x10^0); run counts are whole numbers; an ECDF where no run got
    to 99% says so instead of showing lines hidden on top of each other at 0."""
    write_scan(tmp_path, {"wd": [0.1, 1.0], "seed": [0, 1, 2]}, never=(0, 1, 2, 3, 4, 5))
    scan = jgrok.open_scan(tmp_path).data()
    g = {label: idx for (_, label), idx in scandata.groups(scan.rows, ["wd"]).items()}
    for fig in (plots._mean_curves(scan, g, "val_loss", "val loss", "x_div_y"), plots._run(scan, 0, ["wd"], None)):
        fig.canvas.draw()
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
        assert labels and all(float(t) > 0 for t in labels), labels  # plain numbers only
    fig = plots._steps_hist(scan, g, "x_div_y")
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        assert all(float(t).is_integer() for t in ax.get_yticks())
    fig = plots._steps_ecdf(scan, g, "x_div_y")
    assert any("no run reached 99% val acc within 600 updates" in t.get_text() for t in fig.axes[0].texts)


@pytest.mark.slow
def test_report_groups_figures_with_captions(tmp_path):
    write_scan(tmp_path, {"task": ["x_div_y", "x_plus_y"], "wd": [0.1, 1.0], "seed": [0, 1]})
    (tmp_path / "tb").mkdir()
    assert report.main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    plots_md = md.split("## Plots")[1]
    for heading in ("### x_div_y", "### x_plus_y", "### Summary", "### Single runs"):
        assert heading in plots_md
    x_plus_y = plots_md.split("### x_plus_y")[1].split("###")[0]
    assert "(plots/val_acc_x_plus_y.png)" in x_plus_y and "x_div_y" not in x_plus_y
    assert "*Validation accuracy per run group: mean ± s.e. over runs.*" in x_plus_y
    links = [ln for ln in md.splitlines() if ln.startswith("![")]
    assert len(links) == len(_names(tmp_path))  # every figure once
    assert f"tensorboard --logdir {tmp_path / 'tb'}" in md
