"""The distribution of a scan's grokking times in words, written in one place for both places that say it: the
end-of-scan printout (``distribution_lines``) and report.md (``distribution_table``, ``logrank_lines``,
``threshold_lines``). The numbers come from jgrok.scandata (run groups, grokking times, log-rank tests) and their
definitions and wording from jgrok.stats; rows are summary rows, typed (jgrok.io.results.parse_summary).

Per run group, steps to 99% val acc:
  n                      runs in the run group
  reached                runs whose val acc crossed 0.99 within the budget, as a share of n with its 95% Wilson
                         score interval
  p10 .. p90, mean, s.e. quantiles (linear interpolation), mean and standard error (sample std / sqrt(k)) among the
                         k runs that reached it
  KM median              the Kaplan-Meier median (runs that never got there censored at the budget), 95% interval
  log-rank               between the run groups of a task (tasks with several)
  diverged               runs with a non-empty ``diverged_step`` (0-based index of the first non-finite update)
A regression scan (task mheight) is described by its val-loss drops instead (``drop_lines``).
"""

from __future__ import annotations

import numpy as np

from jgrok import rungroup, scandata, stats
from jgrok.io import results


def distribution_lines(rows: list[dict], budget: int, top: int = 5) -> list[str]:
    """The end-of-scan printout: per run group, the share that reached 99% val acc, the quantiles of steps to it,
    the fastest and the diverged runs; then the log-rank tests (for a regression: ``drop_lines``)."""
    if results.is_regression(rows):
        return drop_lines(rows, top)
    by_group = scandata.groups(rows, rungroup.axes(rows))
    lines = []
    for ((_, label), idx), g in zip(by_group.items(), scandata.grok_times(rows, by_group, budget).values()):
        members = [rows[i] for i in idx]
        diverged = sorted((m for m in members if m["diverged_step"] is not None), key=lambda m: m["run"])
        div = len(diverged)
        lines.append(f"{label}: {stats.fmt_share(g['k'], g['n'])} of runs reached 99% val acc"
                     + (f", {div} diverged" if div else ""))
        if div:
            lines.append("  diverged (loss or parameters not finite; frozen from then on): " + ", ".join(
                f"run {m['run']} (seed {m['seed']}) at update {int(m['diverged_step']) + 1}" for m in diverged[:top])
                + (f", ... ({div - top} more in summary.csv)" if div > top else ""))
        if g["k"]:
            lines.append("  steps to 99% val acc among them: p10 {:.0f}  p25 {:.0f}  median {:.0f}  p75 {:.0f}  "
                         "p90 {:.0f}  (budget {})".format(*(g[f"p{q}"] for q in stats.QUANTILES), budget))
            lines.append(f"  steps to 99% val acc: {stats.fmt_mean_reached(g)}; Kaplan-Meier median "
                         f"{stats.fmt_median(g)} (never-reached runs censored at the budget)")
            fastest = sorted(members, key=lambda m: (m["step_val_acc_99"], m["run"]))[:top]
            lines.append("  fastest runs: " + ", ".join(
                f"run {m['run']} (seed {m['seed']}) at {m['step_val_acc_99']}" for m in fastest
                if m["reached_val_99"]))
        lines += ["  " + line for line in threshold_lines(members)]
    return lines + [f"{task}: steps to 99% val acc between its {res['df'] + 1} run groups: {stats.fmt_logrank(res)}"
                    for task, res in scandata.logrank(rows, by_group, budget).items()]


PRINTED_PAIRS = 6  # comparisons the end-of-scan printout shows (report.md has them all)


def comparison_lines(rows: list[dict], budget: int, rate: float | None = None) -> list[str]:
    """The printout's comparisons (jgrok.compare) and the seeds each needs (jgrok.power), for scans with two or
    more run groups in a task; nothing for a regression scan."""
    from jgrok import compare, power

    if results.is_regression(rows):
        return []
    group_axes = rungroup.axes(rows)
    by_group = scandata.groups(rows, group_axes)
    comps = compare.all_pairs(rows, by_group, group_axes, budget)
    if not comps:
        return []
    shown = comps[:PRINTED_PAIRS]
    more = len(comps) - len(shown)
    lines = ["Comparisons (run groups that differ in one axis; jgrok.compare):"]
    lines += ["  " + c.sentence() for c in shown]
    lines += ["Seeds needed to detect the same difference again (jgrok.power):"]
    lines += ["  " + line for line in power.lines([(c, power.of_groups(rows, by_group, c, budget)) for c in shown],
                                                  budget, rate)]
    if more:
        lines.append(f"  ... and {more} more comparisons in report.md (python -m jgrok.report OUT)")
    return lines


def logrank_lines(rows: list[dict], by_group: dict, budget: int) -> list[str]:
    """report.md's lines: per task with several run groups, the log-rank test between them."""
    return [f"- {task}, {res['df'] + 1} run groups: {stats.fmt_logrank(res)}"
            for task, res in scandata.logrank(rows, by_group, budget).items()]


def threshold_lines(members: list[dict]) -> list[str]:
    """One line per extra threshold (train.thresholds) for a run group's rows: how many runs reached it and the
    quartiles of their steps to it (runs that never reached it are left out of the quartiles)."""
    lines = []
    for col in (k for k in results.threshold_columns(members) if k.startswith("step_val_acc_")):
        label = col[len("step_val_acc_"):]
        got = np.array([int(m[col]) for m in members if int(m[f"reached_val_{label}"])], float)
        line = f"{len(got)}/{len(members)} runs reached {label}% val acc"
        if len(got):
            line += "; steps to it: p25 {:.0f}  median {:.0f}  p75 {:.0f}".format(*np.percentile(got, [25, 50, 75]))
        lines.append(line)
    return lines


def distribution_stats(rows: list[dict], group_axes: list[str], budget: int | None = None) -> list[dict]:
    """One dict per run group with the numbers of the module docstring (``jgrok.stats.grok_time``'s keys plus task,
    group, reached = k, ci_lo/ci_hi = the share's Wilson interval, diverged); the budget defaults to the largest
    step_val_acc_99."""
    rows = results.parse_summary(rows)
    budget = budget if budget is not None else max(int(r["step_val_acc_99"]) for r in rows)
    by_group = scandata.groups(rows, group_axes)
    out = []
    for ((task, label), idx), g in zip(by_group.items(), scandata.grok_times(rows, by_group, budget).values()):
        out.append(dict(g, task=task, group=label, reached=g["k"], ci_lo=g["share_lo"], ci_hi=g["share_hi"],
                        diverged=sum(rows[i].get("diverged_step") is not None for i in idx)))
    return out


def distribution_table(rows: list[dict], group_axes: list[str], budget: int | None = None) -> str:
    """report.md's table of steps to 99% val acc per run group (Markdown, readable as plain text too)."""
    head = ["run group", "n", "reached 99% val (95% CI)", "p10", "p25", "median", "p75", "p90",
            "mean ± s.e.", "KM median (95% CI)", "diverged"]
    body = []
    for s in distribution_stats(rows, group_axes, budget):
        body.append([s["group"], s["n"], stats.fmt_share(s["k"], s["n"]),
                     *(stats.fmt_num(s[q]) for q in ("p10", "p25", "p50", "p75", "p90")),
                     stats.fmt_pm(s["mean"], s["se"], "{:.0f}"), stats.fmt_median(s), s["diverged"]])
    return markdown_table(head, body)


def drop_lines(rows: list[dict], top: int = 5) -> list[str]:
    """A regression scan's distribution: per run group the share of runs with a sudden val-loss drop, the median
    final val loss, the quantiles of the drop epoch and the earliest drops (jgrok.io.results defines the columns)."""
    lines = []
    for label, members in results.by_group(rows).items():
        n = len(members)
        hit = [m for m in members if m["dropped"]]
        vals = np.array([float(m["final_val_loss"]) for m in members])
        head = (f"{label}: {len(hit)}/{n} runs had a sudden val-loss drop; final val loss (MSE of log2 h) "
                f"median {np.nanmedian(vals):.4g}" if np.isfinite(vals).any() else
                f"{label}: {len(hit)}/{n} runs had a sudden val-loss drop")
        div = sum(1 for m in members if m["diverged_step"] is not None)
        lines.append(head + (f", {div} diverged" if div else ""))
        if hit:
            ep = np.array([float(m["drop_epoch"]) for m in hit])
            q = np.percentile(ep, [10, 50, 90])
            lines.append("  drop epoch among them: p10 {:.0f}  median {:.0f}  p90 {:.0f}".format(*q))
            first = sorted(hit, key=lambda m: (float(m["drop_epoch"]), int(m["run"])))[:top]
            lines.append("  earliest drops: " + ", ".join(
                f"run {m['run']} (seed {m['seed']}) at epoch {float(m['drop_epoch']):.0f} "
                f"(x{float(m['drop_factor']):.3g})" for m in first))
    return lines


# ------------------------------------------------------------------------------------------------------ wording

def markdown_table(head: list, body: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)

