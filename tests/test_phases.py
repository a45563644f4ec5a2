"""The phases of grokking (jgrok.stats.phases, delay_km), the phase diagram and the fraction figure
(jgrok.analysis.phases) on hand-made rows and small synthetic results folders whose steps are chosen run by run."""

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from jgrok import analyze, report, scandata, stats

PNG = b"\x89PNG\r\n\x1a\n"
BASE = dict(task="x_plus_y", seed=0, split_seed=0, order_seed=0, lr=1e-3, wd=1.0, init="default", init_scale=1.0,
            optimizer="adamw", filter="none", filter_alpha=0.98, filter_lambda=2.0, filter_window=100, lanes=4)
COMPR, GROK, MEMO, CONF = range(4)


def write_folder(out: Path, runs: list[dict], budget=4000, eval_every=50, extra_levels=()) -> list[dict]:
    """A results folder of runs given as {axis values..., "train": step or None, "val": step or None} (None: never
    within the budget): summary.csv with the documented columns, and step-shaped curves that cross 0.99 at those
    steps. ``extra_levels``: thresholds (e.g. 0.9) whose columns copy the 99% ones."""
    eval_step = np.arange(eval_every, budget + 1, eval_every)
    rows, curves = [], {k: [] for k in ("train_acc", "val_acc", "train_loss", "val_loss", "weight_norm")}
    for i, spec in enumerate(runs):
        tr, va = spec.get("train"), spec.get("val")
        r = dict(BASE, **{k: v for k, v in spec.items() if k not in ("train", "val")}, run=i)
        r.update(step_train_acc_99=tr or budget, step_val_acc_99=va or budget, reached_train_99=int(tr is not None),
                 reached_val_99=int(va is not None), grok_delay=(va or budget) - (tr or budget), diverged_step="")
        ta = np.where(eval_step >= (tr or 10 * budget), 1.0, 0.5)
        vacc = np.where(eval_step >= (va or 10 * budget), 1.0, 0.1)
        for k, c in (("train_acc", ta), ("val_acc", vacc), ("train_loss", 1 - ta + 1e-3), ("val_loss", 1 - vacc + 1e-3),
                     ("weight_norm", 30 + 0 * ta)):
            curves[k].append(c)
        r.update(final_train_acc=ta[-1], final_val_acc=vacc[-1], final_train_loss=1 - ta[-1] + 1e-3,
                 final_val_loss=1 - vacc[-1] + 1e-3, final_weight_norm=30.0)
        for lv in extra_levels:
            lab = f"{100 * lv:.10g}"
            r.update({f"step_train_acc_{lab}": r["step_train_acc_99"], f"step_val_acc_{lab}": r["step_val_acc_99"],
                      f"reached_train_{lab}": r["reached_train_99"], f"reached_val_{lab}": r["reached_val_99"]})
        rows.append(r)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    np.savez(out / "metrics.npz", run=np.arange(len(rows)), eval_step=eval_step,
             step_loss=np.zeros((len(rows), budget), np.float32), step_acc=np.zeros((len(rows), budget), np.float32),
             **{k: np.array(v, np.float32) for k, v in curves.items()})
    cfg = {"task": {"name": "x_plus_y", "p": 31}, "train": {"steps": budget, "eval_every": eval_every}, "lanes": 4}
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return rows


def test_phases_of_hand_made_runs_and_the_boundary_at_d():
    #                 compr  at D-1  at D   val first  memo   conf   val only
    train = np.array([100, 100, 100, 900, 300, 4000, 4000])
    train_ok = np.array([1, 1, 1, 1, 1, 0, 0], bool)
    val = np.array([600, 1099, 1100, 400, 4000, 4000, 700])
    val_ok = np.array([1, 1, 1, 1, 0, 0, 1], bool)
    got = stats.phases(train, train_ok, val, val_ok, delay=1000)
    assert got.tolist() == [COMPR, COMPR, GROK, COMPR, MEMO, CONF, COMPR]
    assert stats.phases(train, train_ok, val, val_ok, delay=400).tolist() == [GROK, GROK, GROK, COMPR, MEMO, CONF,
                                                                               COMPR]
    assert [stats.PHASES[p] for p in (COMPR, GROK, MEMO, CONF)] == ["comprehension", "grokking", "memorisation",
                                                                     "confusion"]


def test_grokking_delay_is_censored_at_the_budget():
    # delays 500 and 1000, one run censored at 2000 - 100 = 1900; the confused run is not among them
    train, train_ok = [100, 100, 100, 2000], [True, True, True, False]
    val, val_ok = [600, 1100, 2000, 2000], [True, True, False, False]
    km = stats.delay_km(train, train_ok, val, val_ok, budget=2000)
    assert km.n == 3 and km.time.tolist() == [500, 1000] and km.median()[0] == 1000
    km2 = stats.delay_km(train, train_ok, [600, 2000, 2000, 2000], [True, False, False, False], budget=2000)
    assert not np.isfinite(km2.median()[0])  # 1 of 3 got there: the median lies beyond what was seen


def _lr_wd_runs():
    """lr 1e-4 never fits train (confusion), lr 1e-3 x wd 0.1 memorises, x wd 1 groks (delay 1500), lr 1e-2 x
    wd 1 comprehends (delay 200), lr 1e-2 x wd 0.1: one comprehends, one groks (a tie: the earlier phase)."""
    cells = {(1e-4, 0.1): [(None, None)] * 2, (1e-4, 1.0): [(None, None)] * 2,
             (1e-3, 0.1): [(300, None)] * 2, (1e-3, 1.0): [(300, 1800), (300, 1850)],
             (1e-2, 0.1): [(200, 400), (200, 3000)], (1e-2, 1.0): [(200, 400), (250, 450)]}
    return [dict(lr=lr, wd=wd, seed=s, train=tr, val=va) for (lr, wd), runs in cells.items()
            for s, (tr, va) in enumerate(runs)]


def test_phase_grid_of_rows():
    rows = write_folder_rows(_lr_wd_runs())
    assert scandata.phase_axes(rows, None) == ("lr", "wd")
    (g,) = scandata.phase_grids(rows, "lr", "wd", 4000)
    assert g.xs == ["0.0001", "0.001", "0.01"] and g.ys == ["0.1", "1"]
    majority = np.argmax(g.counts, axis=-1)
    assert majority.tolist() == [[CONF, CONF], [MEMO, GROK], [COMPR, COMPR]]
    assert g.counts[2, 0].tolist() == [1, 1, 0, 0]
    assert g.delay[1, 1, 0] == 1525 and g.delay[2, 1, 0] == 200  # KM medians of (1500, 1550): the midpoint
    assert g.delay_n[0, 0] == 0 and not np.isfinite(g.delay[1, 0, 0]) and g.delay_k[1, 0] == 0


def write_folder_rows(runs):
    """The typed summary rows write_folder would write (without touching the disk)."""
    from jgrok.io.results import parse_value

    out = []
    for i, spec in enumerate(runs):
        tr, va = spec.get("train"), spec.get("val")
        r = dict(BASE, **{k: v for k, v in spec.items() if k not in ("train", "val")}, run=i)
        r.update(step_train_acc_99=tr or 4000, step_val_acc_99=va or 4000, reached_train_99=int(tr is not None),
                 reached_val_99=int(va is not None))
        out.append({k: parse_value(str(v)) for k, v in r.items()})
    return out


@pytest.fixture
def no_scan_figures(monkeypatch):
    """report.md without the dozen per-run-group figures that tests/test_plots_report.py checks (seconds each)."""
    from jgrok import plots

    monkeypatch.setattr(plots, "plot_scan", lambda scan, runs=None: [])


def test_report_and_analyze_draw_the_phase_diagram(tmp_path, no_scan_figures):
    out = tmp_path / "lrwd"
    write_folder(out, _lr_wd_runs())
    assert report.main([str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Phase diagram: lr × wd" in md and "**grokking**: val acc passed 99% 1000 or more updates" in md
    assert "| 0.001 | 1 | 2 | 0 | 2 | 0 | 0 | grokking 100% | 1525 (" in md
    assert "| 0.0001 | 0.1 | 2 | 0 | 0 | 0 | 2 | confusion 100% | – (train never reached the level) |" in md
    png = out / "plots" / "phase_x_plus_y_lr_wd.png"
    assert png.read_bytes()[:8] == PNG and "training fraction" not in md
    # a larger D turns the lr=0.001 x wd=1 cell into comprehension
    assert analyze.main([str(out), "--phase", "lr,wd", "--phase-delay", "2000"]) == 0
    pmd = (out / "analysis" / "phase.md").read_text()
    assert "| 0.001 | 1 | 2 | 2 | 0 | 0 | 0 | comprehension 100% |" in pmd
    assert (out / "analysis" / "plots" / "phase_x_plus_y_lr_wd.png").is_file()


@pytest.mark.parametrize("argv, words", [
    (["--phase", "wd"], "two different axes"),
    (["--phase", "lr,lr"], "two different axes"),
    (["--phase", "lr,init"], "init does not vary"),
    (["--phase", "lr,wd", "--phase-acc", "0.9"], "--threshold 0.9"),
    (["--phase", "lr,wd", "--phase-delay", "-5"], "--phase-delay"),
    (["--phase", "lr,wd", "--phase-acc", "1.5"], "--phase-acc"),
])
def test_phase_cli_errors(tmp_path_factory, capsys, argv, words):
    out = tmp_path_factory.getbasetemp() / "cli_errors"
    if not (out / "summary.csv").is_file():
        write_folder(out, _lr_wd_runs())
    assert analyze.main([str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


def test_phase_at_another_accuracy_level(tmp_path):
    out = tmp_path / "lv"
    write_folder(out, _lr_wd_runs(), extra_levels=(0.9,))
    assert analyze.main([str(out), "--phase", "wd,lr", "--phase-acc", "0.9"]) == 0
    pmd = (out / "analysis" / "phase.md").read_text()
    assert "## Phase diagram: wd × lr" in pmd and "passed 90%" in pmd


def _fraction_runs():
    """Two tasks x fractions 0.3, 0.5, 0.7 x 4 seeds: at 0.3 one of four reaches 99% val acc (median not
    reached), at 0.5 three of four, at 0.7 all four; x_minus_y is 500 steps slower."""
    runs = []
    for task, slow in (("x_plus_y", 0), ("x_minus_y", 500)):
        for f, vals in ((0.3, [3000, None, None, None]), (0.5, [1500, 1700, 2100, None]),
                        (0.7, [800, 900, 1000, 1100])):
            runs += [dict(task=task, fraction=f, seed=s, train=200, val=None if v is None else v + slow)
                     for s, v in enumerate(vals)]
    return runs


def test_fraction_points_and_figure(tmp_path, no_scan_figures):
    out = tmp_path / "frac"
    write_folder(out, _fraction_runs())
    rows = write_folder_rows(_fraction_runs())
    points = scandata.fraction_points(rows, 4000)
    assert list(points) == ["x_plus_y", "x_minus_y"]
    (f3, t3), (f5, t5), (f7, t7) = points["x_plus_y"]
    assert (f3, f5, f7) == (0.3, 0.5, 0.7) and (t3["k"], t5["k"], t7["k"]) == (1, 3, 4)
    assert not np.isfinite(t3["km_median"]) and t5["km_median"] == 1900 and t7["km_median"] == 950
    assert points["x_minus_y"][2][1]["km_median"] == 1450
    assert scandata.phase_axes(rows, None) is None  # one varying axis: no phase diagram
    assert report.main([str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "## Steps to 99% val acc against the training fraction" in md and "## Phase diagram" not in md
    assert "| x_plus_y | 0.3 | 1/4 = 25.0%" in md and "not reached (over half never got there within 4000)" in md
    assert (out / "plots" / "fraction.png").read_bytes()[:8] == PNG


def test_fraction_and_wd_make_a_phase_diagram_and_a_fraction_figure(tmp_path):
    runs = [dict(r, wd=wd) for r in _fraction_runs() if r["task"] == "x_plus_y" for wd in (0.1, 1.0)]
    rows = write_folder_rows(runs)
    assert scandata.phase_axes(rows, None) in (("wd", "fraction"), ("fraction", "wd"))
    points = scandata.fraction_points(rows, 4000)
    assert list(points) == ["x_plus_y wd=0.1", "x_plus_y wd=1"] and all(len(p) == 3 for p in points.values())
