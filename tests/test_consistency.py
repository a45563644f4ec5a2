"""One scan, four readers: the end-of-scan printout, report.md, the numbers behind summary_plot.png and the survival
figures, and ``analyze`` give the same number for the same quantity, each with the words that say which runs it
covers (jgrok.stats)."""

import warnings

import numpy as np
import pytest

import jgrok
from jgrok import analyze, distribution, plots, report, stats
from jgrok.io import results
from tests.test_plots_report import write_scan


@pytest.mark.slow
def test_printout_report_plots_and_analyze_agree(tmp_path):
    write_scan(tmp_path, {"wd": [0.1, 1.0], "seed": list(range(8))}, never=(1, 4, 9))
    summary = results.read_summary(tmp_path / "summary.csv")
    budget = 600
    expect = {}
    for label, members in results.by_group(summary).items():
        steps = [float(m["step_val_acc_99"]) for m in members]
        reached = [m["reached_val_99"] == "1" for m in members]
        expect[label] = stats.grok_time(steps, reached, budget)
    assert set(expect) == {"x_div_y wd=0.1", "x_div_y wd=1"}
    g = expect["x_div_y wd=0.1"]
    assert (g["k"], g["n"]) == (6, 8) and np.isfinite(g["km_median"])

    printed = "\n".join(distribution.distribution_lines(results.parse_summary(summary), budget))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert report.main([str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    scan = jgrok.open_scan(tmp_path).data()
    plotted = plots.summary_values(scan, scan.groups)
    assert analyze.main([str(tmp_path), "--bootstrap", "50", "--fourier-runs", "none", "--quiet"]) == 0
    analysed = (tmp_path / "analysis" / "report.md").read_text()
    assert "budget 600 updates, evaluated 30 times (at update steps 20 to 600)" in analysed

    for label, g in expect.items():
        share = stats.fmt_share(g["k"], g["n"])  # k/n = x% (95% CI lo–hi%), Wilson
        median = stats.fmt_median(g)  # Kaplan-Meier median with its interval
        p50 = stats.fmt_num(g["p50"])  # median among the k that reached it
        # printout
        assert f"{label}: {share} of runs reached 99% val acc" in printed
        assert f"median {p50}" in printed and stats.fmt_mean_reached(g) in printed
        assert f"Kaplan-Meier median {median}" in printed
        # report.md: one row of the steps table
        row = next(ln for ln in md.splitlines() if ln.startswith(f"| {label} | {g['n']} | "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == share
        assert cells[5] == p50 and cells[8] == stats.fmt_pm(g["mean"], g["se"]) and cells[9] == median
        # the plots' numbers: Kaplan-Meier median and interval, k/n
        t = plotted[label]["steps"]
        assert (t["k"], t["n"], t["km_median"], t["km_lo"]) == (g["k"], g["n"], g["km_median"], g["km_lo"])
        # analyze's headline
        head = next(ln for ln in analysed.splitlines() if ln.startswith(f"- **{label}**"))
        assert f"{share} of runs reached 99% val acc (median {p50} steps among the {g['k']} that reached it" in head
        assert f"Kaplan-Meier median {median}" in head
    # the log-rank test between the two weight decays: the same in the printout and the report
    res = stats.logrank_steps([[float(m["step_val_acc_99"]) for m in ms] for ms in results.by_group(summary).values()],
                              [[int(m["reached_val_99"]) for m in ms] for ms in results.by_group(summary).values()],
                              budget)
    assert stats.fmt_logrank(res) in printed and stats.fmt_logrank(res) in md
    # final_info.json keeps the template's formula, and says so
    info = results.final_info(summary)
    block, g = info["x_div_y wd=0.1"], expect["x_div_y wd=0.1"]
    vals = block["final_info_dict"]["step_val_acc_99"]
    assert block["stderrs"]["step_val_acc_99_stderr"] == np.std(vals) / len(vals)
    assert "template" in block["definitions"]["stderrs"]
    assert block["means"]["step_val_acc_99_mean"] == g["mean_budget"]


def test_super_share_intervals_are_never_degenerate():
    """0 super runs of 8: the interval is Wilson's 0-32%, not a bootstrap's 0-0%; on a full seed grid too."""
    from jgrok.analysis import seeds

    def layout(model, data, steps):
        n = len(steps)
        return seeds.SeedLayout("t", "t", np.arange(n), np.arange(n), np.array(model), np.array([str(d) for d in data]),
                                np.array(data), np.array(data), np.array(steps, float), np.ones(n, bool), 1000)

    flat = seeds.analyse(layout(range(8), range(8), [500] * 8), 1 / 3, 200, 0)
    assert flat["n_super"] == 0 and flat["ci"] == stats.wilson(0, 8) and flat["ci"][1] > 0.3
    assert all(r["ci_hi"] == stats.wilson(0, 1)[1] for r in flat["per_model"])
    grid = seeds.analyse(layout([m for m in range(4) for _ in range(4)], [d for _ in range(4) for d in range(4)],
                                [500] * 16), 1 / 3, 200, 0)
    assert grid["crossed"] and grid["ci"] == stats.wilson(0, 16) and "degenerate" in grid["ci_method"]
