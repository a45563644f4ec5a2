"""``python -m jgrok.report OUT [--runs 3,17]``: rebuild OUT/plots/ and write OUT/report.md.

The report holds the config essentials, then per run group the distribution of steps to 99% val acc, the
final accuracies, the fastest runs, the diverged runs and every figure as a relative image link; where a fraction
column varies, the fraction figure, and where exactly two non-seed axes vary (or the two of ``--phase X,Y``), the
phase diagram with its table and the phases' definitions (jgrok.analysis.phases; ``--phase-acc``,
``--phase-delay`` set the level and the delay that jgrok.stats defines them by).

Definitions: the distribution of steps to 99% val acc as jgrok.distribution says it (the end-of-scan printout says
it the same way), its numbers as jgrok.scandata and jgrok.stats define them; per run group (the runs that share every
non-seed axis value, labelled as jgrok.rungroup says):
  final acc / loss       mean +- s.e. over the run group of the last finite evaluation of each run
  diverged               runs with a non-empty ``diverged_step`` (0-based index of the first non-finite update)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from jgrok import plots, rungroup, runids, stats
from jgrok.config import MAX_RUNS
from jgrok.distribution import distribution_lines, distribution_table, logrank_lines, markdown_table, threshold_lines
from jgrok.errors import ArgumentParser, ConfigError, UserError
from jgrok.io import results
from jgrok.io.results import W_NOTE
from jgrok.results_folder import open_scan
from jgrok.scandata import column

FASTEST = 5


def build_regression_report(out_dir) -> Path:
    """report.md of a regression scan (task mheight): per group the share of runs with a sudden val-loss drop, the
    quantiles of its epoch and the final losses (definitions in jgrok.io.results and jgrok.tasks.drop)."""
    out = Path(out_dir)
    folder = open_scan(out)
    paths = plots.plot_regression(folder.data())
    summary = folder.summary
    lines = ["# m-height regression scan", "",
             "Losses are mean squared errors of log2 h. A run's drop is the sudden val-loss drop found by "
             "`jgrok.tasks.drop.detect` (largest fall of the smoothed log val loss over a window of evaluations, "
             "at least a factor 2, after the train loss plateaued); drop epoch = its update step / updates per epoch.",
             "", "```", *distribution_lines(summary, 0), "```", "", "## Figures", ""]
    lines += [f"![{p.stem}](plots/{p.name})" for p in paths]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def build_report(out_dir, runs=None, phase=None) -> Path:
    """Rebuild OUT/plots/ and write OUT/report.md; returns the report's path. A multi-process scan's shards
    (OUT/shards/process_<i>/) are first merged into OUT's summary.csv, metrics.npz and final_info.json. ``phase``:
    the jgrok.analysis.phases.PhaseSettings of the phase diagram (default: the two varying axes, 99%, D = 1000)."""
    from jgrok.analysis import phases

    if (Path(out_dir) / "shards").is_dir():
        results.merge_shards(Path(out_dir))
    folder = open_scan(out_dir)
    if folder.regression:
        return build_regression_report(out_dir)
    scan = folder.data()
    phase_lines, _ = phases.phase_section(scan, phase or phases.PhaseSettings(), scan.out / "plots")
    fraction_lines, _ = phases.fraction_section(scan, scan.out / "plots")
    paths = plots.plot_scan(scan, runs)
    rows, keys, by_group = scan.rows, scan.group_axes, scan.groups
    cfg, train = scan.cfg, scan.cfg.get("train") or {}
    tasks = list(dict.fromkeys(str(r["task"]) for r in rows))
    lanes = cfg.get("lanes", sorted({r["lanes"] for r in rows if r.get("lanes") is not None}))
    md = [f"# jgrok scan report: {scan.out.name}", "",
          f"- task{'s' if len(tasks) > 1 else ''}: {', '.join(tasks)}",
          f"- updates per run (budget): {scan.budget}"
          + (f", evaluated every {train['eval_every']}" if train.get("eval_every") else "")
          + (f", batch size {train['batch_size']}" if train.get("batch_size") else ""),
          f"- lanes W: {lanes[0] if isinstance(lanes, list) and len(lanes) == 1 else lanes}; {W_NOTE}",
          f"- runs: {len(rows)} in {len(by_group)} run group(s)"
          + (f" by {', '.join(keys)}" if keys else "") + "; seeds are replicates within a run group",
          "", "Steps to 99% val acc = first eval step with val acc > 0.99 (the budget if never). Quantiles, mean "
          "and s.e. (sample std / sqrt(k)) are among the k runs that reached it; the interval of the share is its "
          "95% Wilson interval. KM median: the Kaplan-Meier median, which counts the runs that never got there as "
          "censored at the budget (not as reaching it there), with its 95% interval (jgrok.stats).", "",
          "## Steps to 99% val acc", "", distribution_table(rows, keys, scan.budget), "",
          "## Time to grokking (Kaplan-Meier)", "",
          "The share of runs not yet at 99% val acc against update steps, per run group, with 95% bands: "
          "`plots/survival_<task>.png`. A log-rank test compares the whole curves of a task's run groups "
          "(censoring included), which the mean of censored values cannot.", "",
          *(logrank_lines(rows, by_group, scan.budget) or ["- one run group per task: nothing to compare"]), "",
          *fraction_lines, *phase_lines,
          *sequential_section(scan.out),
          *comparison_section(scan),
          "## Final values (mean ± s.e. over runs; last finite evaluation)", "", _finals(rows, by_group), "",
          f"## Fastest runs ({FASTEST} per run group, among those that reached 99% val acc)", "",
          _fastest(rows, by_group), ""]
    others = {label: threshold_lines(members)
              for label, members in results.by_group(folder.summary).items()}
    if any(others.values()):  # train.thresholds besides 0.99 (same definition: first eval step with val acc > X)
        md += ["## Steps to the other thresholds", ""] + [f"- {label}: {line}" for label, lines in others.items()
                                                          for line in lines] + [""]
    from jgrok.analysis import variants

    if variants.applies(scan):
        md += ["## Accuracy, softmax collapse and logit scale per group", ""] + variants.section(scan)
    diverged = [r for r in rows if r["diverged_step"] is not None]
    if diverged:
        md += [f"## Diverged runs ({len(diverged)})", "", _diverged(diverged, keys), ""]
    if (scan.out / "tb").is_dir():
        md += ["TensorBoard logs of the training curves: `tensorboard --logdir " + str(scan.out / "tb") + "`", ""]
    elif any((scan.out / "looks").glob("look_*/tb")):
        md += ["TensorBoard logs of the training curves, one folder per look: `tensorboard --logdir "
               + str(scan.out / "looks") + "`", ""]
    md += ["## Plots", "", _plots_md(paths, tasks)]
    path = scan.out / "report.md"
    path.write_text("\n".join(md))
    return path


def sequential_section(out: Path) -> list[str]:
    """report.md's account of a scan with --until-decided (OUT/sequential.json, jgrok.sequential): the design, every
    look's statistic against its boundary, and the decision."""
    import json

    from jgrok import sequential

    path = Path(out) / "sequential.json"
    if not path.is_file():
        return []
    d = sequential.Decision.from_dict(json.loads(path.read_text()))
    body = [[k, k * d.look, f"{d.reached_a[k - 1]} / {d.reached_b[k - 1]}", f"{d.z[k - 1]:+.2f}",
             f"{d.bounds[k - 1]:.2f}", d.action(k)] for k in range(1, d.looks_done + 1)]
    body += [[k, k * d.look, "not trained", "", f"{d.bounds[k - 1]:.2f}", ""] for k in range(d.looks_done + 1, d.K + 1)]
    return ["## Until decided (sequential comparison)", "",
            f"Design, fixed before the first look: {d.design()}; {d.a} is A, {d.b} is B. After each look the "
            "statistic Z over every seed so far (positive: A reaches 99% val acc sooner) is set against its boundary; "
            "the scan stops at the first look where |Z| reaches it (jgrok.sequential).", "",
            markdown_table(["look", "seeds per group", f"reached 99%: {d.a} / {d.b}", "Z", "boundary",
                            "decision"], body), "",
            f"**{d.sentence()}**", "",
            "The comparison below uses the seeds trained. After a stop at an early look its hazard ratio tends to "
            "overstate the difference (the stop happened because the difference looked large), and its p-values "
            "are those of fixed-size tests, not of the sequential rule: the decision above is the one whose error "
            "rate is controlled.", ""]


def comparison_section(scan) -> list[str]:
    """report.md's comparisons of every two run groups that differ in one axis (jgrok.compare) and the seeds each
    needs at its own difference (jgrok.power)."""
    from jgrok import compare

    comps = compare.all_pairs(scan.rows, scan.groups, scan.group_axes, scan.budget)
    return comparison_md(scan, comps, power_items(scan, comps)) if comps else []


def power_items(scan, comps: list, hr: float | None = None) -> list[tuple]:
    """[(comparison, jgrok.power.Power)]: at each comparison's own difference, then at hazard ratio hr if named."""
    from jgrok import power

    return [(c, power.of_groups(scan.rows, scan.groups, c, scan.budget, h))
            for h in [None] + ([hr] if hr is not None else []) for c in comps]


def comparison_md(scan, comps: list, items: list) -> list[str]:
    """The Markdown of ``comparison_section``: the comparisons ``comps`` and the power rows ``items``."""
    from jgrok import compare, power

    rate = power.rate(scan.out)
    return ["## Comparisons", "",
            "Every two run groups of a task that differ in one axis, A against B. Hazard ratio: Cox model with the "
            "group as its one covariate (above 1: A groks sooner); median difference: Kaplan-Meier medians, A − B, "
            "95% bootstrap interval; P(A first): the probability that a run of A reaches 99% val acc at an "
            "earlier evaluation than a run of B (ties, and both never within the budget, count half), 95% "
            "bootstrap interval. Where the groups train the same seeds, the bootstrap resamples seeds, the seed "
            "rank correlation (Spearman) says whether seed luck carries from B to A, and the paired log-rank test "
            "is stratified by seed. Definitions: jgrok.compare.", "",
            markdown_table(compare.TABLE_HEAD, compare.table(comps)), "",
            *[f"- {c.sentence()}" for c in comps], "",
            "## Seeds needed (this scan as a pilot)", "",
            "Seeds per run group for a log-rank test at alpha 0.05 to detect the difference with 80% power: "
            "Schoenfeld's formula from the hazard ratio and the share that reached 99% val acc, and a simulation "
            f"({power.TRIALS} trials per size) that draws runs from this scan's own Kaplan-Meier curves "
            "(paired by seed: resampling seeds, log-rank stratified by seed). "
            + ("The time is at this scan's own measured rate (timing.json). " if rate else "")
            + "Definitions: jgrok.power.", "",
            markdown_table(power.TABLE_HEAD, power.table(items, scan.budget, rate)), ""]


# file-name prefix of a per-task figure -> its caption
CAPTIONS = {
    "train_loss": "Train loss (mean over the updates since the previous evaluation) per run group: mean ± s.e. "
                  "over runs.",
    "val_loss": "Validation loss per run group: mean ± s.e. over runs.",
    "train_acc": "Train accuracy per run group: mean ± s.e. over runs.",
    "val_acc": "Validation accuracy per run group: mean ± s.e. over runs.",
    "quantiles": "Median and 10–90% band across runs of train and val accuracy, with a few single runs.",
    "steps_hist": "Histogram of steps to 99% val acc; runs that never got there form the hatched bar.",
    "steps_ecdf": "Share of runs that reached 99% val acc by each step.",
    "survival": "Kaplan-Meier: share of runs not yet at 99% val acc by each step, 95% band; the legend gives each run "
                "group's median with its interval, the title the log-rank test between run groups.",
}


def _plots_md(paths, tasks) -> str:
    """The figures as image links under one heading per task, then the summary and the single runs."""
    per_task = {t: [] for t in tasks}
    summary, runs = [], []
    for p in paths:
        if p.stem == "summary_plot":
            summary.append(p)
        elif p.stem.startswith("run_"):
            runs.append(p)
        else:
            task = next((t for t in tasks for k in CAPTIONS if p.stem == f"{k}_{plots.safe_name(t)}"), "other figures")
            per_task.setdefault(task, []).append(p)
    md = []
    for task, figs in per_task.items():
        md += [f"### {task}", ""]
        for p in figs:
            prefix = next((k for k in CAPTIONS if p.stem.startswith(k + "_")), None)
            md += [f"![{p.stem}](plots/{p.name})", ""] + ([f"*{CAPTIONS[prefix]}*", ""] if prefix else [])
    if summary:
        md += ["### Summary", ""] + [f"![{p.stem}](plots/{p.name})\n\n*Final train and val accuracy (mean ± s.e. "
                                      "over runs) and the Kaplan-Meier median of steps to 99% val acc (95% interval; "
                                      "k/n reached it) per run group.*\n" for p in summary]
    if runs:
        md += ["### Single runs", "", "The fastest, the median and the slowest run by steps to 99% val acc (and any "
               "asked for with --runs): losses, accuracies and weight norms on one step axis.", ""]
        md += [f"![{p.stem}](plots/{p.name})\n" for p in runs]
    return "\n".join(md)


def _finals(rows, by_group) -> str:
    head = ["run group", "n", "train acc", "val acc", "train loss", "val loss", "weight norm"]
    body = []
    for (task, label), idx in by_group.items():
        cells = []
        for key, fmt in (("final_train_acc", "{:.3f}"), ("final_val_acc", "{:.3f}"), ("final_train_loss", "{:.3g}"),
                         ("final_val_loss", "{:.3g}"), ("final_weight_norm", "{:.1f}")):
            if key not in rows[0]:
                cells.append("–")
                continue
            cells.append(stats.fmt_pm(*stats.mean_se(column(rows, idx, key)), fmt))
        body.append([label, len(idx), *cells])
    return markdown_table(head, body)


def _fastest(rows, by_group) -> str:
    seeds = rungroup.seed_columns(rows)
    head = ["run group", "run", *seeds, "steps to 99% val", "steps to 99% train", "grok delay", "final val acc"]
    body = []
    for (task, label), idx in by_group.items():
        done = sorted((rows[i] for i in idx if rows[i]["reached_val_99"]),
                      key=lambda r: (r["step_val_acc_99"], r["run"]))
        for r in done[:FASTEST]:
            trained = bool(r.get("reached_train_99"))  # grok delay is only meaningful when train acc got there
            body.append([label, r["run"], *(r[s] for s in seeds), r["step_val_acc_99"],
                         r["step_train_acc_99"] if trained else "never", r.get("grok_delay", "–") if trained else "–",
                         stats.fmt_num(r["final_val_acc"], "{:.3f}")])
    return markdown_table(head, body) if body else "No run reached 99% val acc."


def _diverged(diverged, keys) -> str:
    head = ["run", "run group", "seed", "diverged at update", "final train loss", "final val acc"]
    body = [[r["run"], rungroup.label(r, keys), r.get("seed", "–"), r["diverged_step"] + 1,
             stats.fmt_num(r.get("final_train_loss"), "{:.3g}"), stats.fmt_num(r["final_val_acc"], "{:.3f}")]
            for r in diverged]
    return markdown_table(head, body)


def _parse_runs(text: str) -> list[int]:
    try:  # at most as many as a scan can have (config.MAX_RUNS)
        return runids.parse_optional(text, MAX_RUNS)
    except ConfigError:
        raise ConfigError(f"--runs takes a comma list of run ids and ranges A:B such as 3,17,40:48, not "
                          f"'{text}'.") from None


def add_phase_flags(p) -> None:
    """The phase diagram's flags, shared by jgrok.report and jgrok.analyze."""
    p.add_argument("--phase", metavar="X,Y", help="the two axes of the phase diagram (default: the two varying "
                                                   "axes, when exactly two vary), e.g. lr,wd")
    p.add_argument("--phase-acc", default=str(stats.PHASE_ACC), metavar="A",
                   help="accuracy level of the phases (default 0.99; another needs a scan made with --threshold A)")
    p.add_argument("--phase-delay", default=str(stats.PHASE_DELAY), metavar="D",
                   help="updates between train and val reaching the level that separate comprehension (< D) from "
                        "grokking (default 1000, Liu et al.'s)")


def phase_settings(args):
    """The jgrok.analysis.phases.PhaseSettings of ``add_phase_flags``'s flags; ConfigError for a bad value."""
    from jgrok.analysis.phases import PhaseSettings

    try:
        acc, delay = float(args.phase_acc), float(args.phase_delay)
    except ValueError:
        raise ConfigError(f"--phase-acc and --phase-delay take numbers (e.g. 0.9 and 500), not "
                          f"'{args.phase_acc}' and '{args.phase_delay}'.") from None
    if not 0 < acc < 1:
        raise ConfigError(f"--phase-acc is an accuracy in (0, 1), e.g. 0.9, not {args.phase_acc}.")
    if not (np.isfinite(delay) and delay > 0):
        raise ConfigError(f"--phase-delay is a positive number of updates, e.g. 1000, not {args.phase_delay}.")
    return PhaseSettings(args.phase, acc, delay)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m jgrok.report", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="results folder of a finished scan")
    p.add_argument("--runs", help="run ids to draw alone besides the fastest, median and slowest (comma list)")
    add_phase_flags(p)
    try:
        args = p.parse_args(argv)
        path = build_report(args.out, _parse_runs(args.runs) if args.runs else None, phase_settings(args))
    except UserError as e:
        print(f"jgrok.report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {path.parent / 'plots'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
