"""``python -m jgrok.analyze OUT``: why some seeds grok faster, from a finished scan -> OUT/analysis/report.md.

    python -m jgrok.analyze runs/grid                         seed grids, super seeds, variance, spikes, and the
                                                              progress measures of a scan made with --measures
    python -m jgrok.analyze runs/grid --chaos auto --perturbations 8     + the chaos floor (re-trains runs)
    python -m jgrok.analyze runs/grid --attribute 17 402 --data-seeds 0:4  + layer attribution with chimeras
    python -m jgrok.analyze runs/wd --compare wd=1 wd=0.5     only: run group A against B (jgrok.compare) and the
                                                              seeds that takes (jgrok.power) -> OUT/analysis/compare.md
    python -m jgrok.analyze runs/wd --power --effect 1.5      only: every one-axis comparison and the seeds each
                                                              needs, also for a named hazard ratio
    python -m jgrok.analyze runs/lrwd --phase lr,wd --phase-delay 500
                                                              only: the lr x wd phase diagram (jgrok.stats defines
                                                              the phases) -> OUT/analysis/phase.md
    python -m jgrok.analyze runs/wd --share-within 0.05 --median-within 50
                                                              only: per run group, the seeds for its shares to
                                                              +- 5% and its median to +- 50 steps (jgrok.power)
                                                              -> OUT/analysis/seeds_needed.md

Tables go to OUT/analysis/tables/*.csv, figures to OUT/analysis/plots/*.png, and the report links both. The
analyses that train (``--chaos``, ``--attribute``) keep their results in OUT/analysis/chaos.csv and chimera.csv,
which later calls include in the report; training them again needs ``--overwrite``. Every definition is in the
docstrings of jgrok.analysis.seeds, variance, spikes, chaos, chimera, progress and fourier.
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction

import numpy as np

from jgrok.errors import ArgumentParser, ConfigError, UserError


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m jgrok.analyze", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("out", help="results folder of a finished scan")
    a("--factor", default="1/3", help="super run: steps to 99%% val acc <= factor x median (default 1/3)")
    a("--bootstrap", default="2000", help="bootstrap resamples and permutations (default 2000)")
    a("--bootstrap-seed", default="0", help="seed of the bootstrap and permutation generator (default 0)")
    a("--spike-curve", default="train_loss", help="train_loss (per evaluation, default) or step_loss (per update)")
    a("--spike-window", default="10", help="points in the rolling baseline (default 10)")
    a("--spike-rel", default="1.0", help="relative jump over the baseline that flags a spike (default 1.0: doubling)")
    a("--spike-min", default="0.01", help="smallest absolute jump of the loss that counts (default 0.01)")
    a("--spike-horizon", default="5", help="evaluations after a spike's onset read for alignment (default 5)")
    a("--chaos", metavar="RUNS", help="re-train these run ids (comma list, A:B) or 'auto' with one-ulp perturbations")
    a("--perturbations", default="8", help="one-ulp perturbations per chaos run (default 8)")
    a("--attribute", nargs=2, metavar=("FAST_RUN", "SLOW_RUN"), help="layer attribution with chimeras of two runs")
    a("--data-seeds", help="data seeds for the chimeras (A:B or comma list; default: the two runs' own)")
    a("--fourier-runs", default="auto", help="runs whose final Fourier spectrum is shown (scans with --measures "
                                             "fourier): ids, 'auto' (up to 8 spread over the speed ranking), 'all' "
                                             "or 'none'")
    a("--compare", nargs=2, metavar=("A", "B"), help="compare two run groups, each named by its label or by "
                                                     "axis=value words ('wd=1', 'init=xavier_uniform'); only that")
    a("--power", action="store_true", help="the comparisons of run groups that differ in one axis and the seeds per "
                                           "group each needs at 80%% power (this scan as the pilot); only that")
    a("--effect", help="also power for this hazard ratio (> 0, not 1; e.g. 1.5) with --compare or --power")
    a("--share-within", metavar="H", help="seeds per run group for its shares (reached 99%%, super runs) to be known "
                                          "to +- H, e.g. 0.05 (95%% Wilson interval); only that")
    a("--median-within", metavar="STEPS", help="seeds per run group for its Kaplan-Meier median to land within +- "
                                               "STEPS steps in 95%% of scans (simulated from its curve); only that")
    from jgrok.report import add_phase_flags

    add_phase_flags(p)  # --phase X,Y (only the phase diagram), --phase-acc, --phase-delay
    a("--overwrite", action="store_true", help="re-train chaos/chimera runs whose results already exist")
    a("--quiet", action="store_true", help="no progress bars")
    return p


def _int(flag, text, lo=None):
    try:
        v = int(text)
    except ValueError:
        raise ConfigError(f"{flag} takes a whole number, not '{text}'.") from None
    if lo is not None and v < lo:
        raise ConfigError(f"{flag} must be at least {lo}, not {v}.")
    return v


def _float(flag, text, lo=None, hi=None, open_lo=False):
    try:
        v = float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{flag} takes a number such as 0.5 or 1/3, not '{text}'.") from None
    if not np.isfinite(v) or (lo is not None and (v <= lo if open_lo else v < lo)) or (hi is not None and v > hi):
        rng = f"{'(' if open_lo else '['}{lo}, {hi if hi is not None else 'inf'}]"
        raise ConfigError(f"{flag} must be in {rng}, not {text}.")
    return v


def _ids(flag, text):
    from jgrok.scan import parse_values

    return [int(v) for v in parse_values(flag, text, seeds=True)]


def main(argv=None) -> int:
    try:
        return _main(argv)
    except UserError as e:
        print(f"jgrok.analyze: error: {e}", file=sys.stderr)
        return 2


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    factor = _float("--factor", args.factor, 0, 1, open_lo=True)
    B = _int("--bootstrap", args.bootstrap, 1)
    bseed = _int("--bootstrap-seed", args.bootstrap_seed, 0)
    from jgrok.analysis import spikes

    if args.spike_curve not in ("train_loss", "step_loss"):
        raise ConfigError(f"--spike-curve takes train_loss or step_loss, not '{args.spike_curve}'.")
    scfg = spikes.SpikeConfig(window=_int("--spike-window", args.spike_window, 1),
                              rel=_float("--spike-rel", args.spike_rel, 0, open_lo=True),
                              min_jump=_float("--spike-min", args.spike_min, 0),
                              horizon=_int("--spike-horizon", args.spike_horizon, 1), curve=args.spike_curve)
    K = _int("--perturbations", args.perturbations, 1)
    attribute = [_int("--attribute", v, 0) for v in args.attribute] if args.attribute else None
    data_seeds = _ids("--data-seeds", args.data_seeds) if args.data_seeds else None
    if data_seeds is not None and attribute is None:
        raise ConfigError("--data-seeds chooses the chimeras' data seeds; give it together with --attribute.")
    from jgrok.results_folder import open_scan

    scan = open_scan(args.out).data()  # ConfigError unless a finished results folder
    if scan.regression:
        raise ConfigError(f"{scan.out} holds a regression scan (task mheight), which has no steps to 99% val acc "
                          f"to analyse; python -m jgrok.report {scan.out} describes its val-loss drops.")
    if args.effect is not None and not (args.compare or args.power):
        raise ConfigError("--effect names the hazard ratio to power for; give it with --compare A B or --power.")
    effect = _float("--effect", args.effect, 0, open_lo=True) if args.effect is not None else None
    if effect == 1:
        raise ConfigError("--effect 1 is no difference, which no number of seeds detects; name a hazard ratio "
                          "such as 1.5 (or 0.67 for slower).")
    if (args.compare or args.power) and (args.share_within or args.median_within):
        raise ConfigError("--share-within and --median-within are an analysis of their own; run them without "
                          "--compare and --power.")
    from jgrok.report import phase_settings

    phase = phase_settings(args)
    from jgrok import scandata

    scandata.level_columns(scan.rows, phase.acc)  # a level the scan did not track: one sentence before any training
    if args.phase and (args.compare or args.power or args.share_within or args.median_within):
        raise ConfigError("--phase draws the phase diagram alone; run it without --compare, --power, "
                          "--share-within and --median-within.")
    if args.phase:
        return _phase(scan, phase)
    if args.compare or args.power:
        return _compare(scan, args.compare, effect)
    share_h = _float("--share-within", args.share_within, 0, 0.5, open_lo=True) if args.share_within else None
    median_h = _float("--median-within", args.median_within, 0, open_lo=True) if args.median_within else None
    if share_h is not None or median_h is not None:
        return _precision(scan, share_h, median_h, factor, args.factor)
    from jgrok.analysis import pipeline

    path = pipeline.analyse(scan, factor=factor, B=B, bseed=bseed, spike_cfg=scfg, chaos=args.chaos, K=K,
                            attribute=attribute, data_seeds=data_seeds, fourier_runs=args.fourier_runs,
                            overwrite=args.overwrite, progress=not args.quiet, phase=phase)
    print(f"wrote {path}")
    return 0


def _phase(scan, settings) -> int:
    """--phase X,Y: the phase diagrams of X x Y (and the fraction figure where a fraction column varies) ->
    OUT/analysis/phase.md and OUT/analysis/plots/phase_*.png."""
    from jgrok.analysis import phases

    adir = scan.out / "analysis"
    md, paths = phases.phase_section(scan, settings, adir / "plots")
    fmd, fpaths = phases.fraction_section(scan, adir / "plots")
    path = adir / "phase.md"
    path.write_text("\n".join([f"# Phase diagram: {scan.out.name}", "", *md, *fmd]))
    for p in paths + fpaths:
        print(f"wrote {p}")
    print(f"wrote {path}")
    return 0


def _compare(scan, names, effect) -> int:
    """--compare A B / --power: print the comparisons and the seeds they need; write OUT/analysis/compare.md."""
    from jgrok import compare, report

    if names:
        ka, kb = (compare.find_group(scan.groups, n) for n in names)
        if ka == kb:
            raise ConfigError(f"'{names[0]}' and '{names[1]}' name the same run group ({ka[1]}); name two.")
        if ka[0] != kb[0]:
            raise ConfigError(f"'{ka[1]}' and '{kb[1]}' are run groups of different tasks; compare groups of one.")
        differ = compare.differing(scan.rows, scan.groups, scan.group_axes, ka, kb)
        comps = [compare.of_groups(scan.rows, scan.groups, ka, kb, scan.budget, differ[0] if len(differ) == 1
                                   else None)]
    else:
        comps = compare.all_pairs(scan.rows, scan.groups, scan.group_axes, scan.budget)
        if not comps:
            raise ConfigError(f"{scan.out} has no two run groups of one task that differ in one axis; --power "
                              "needs a scan over at least two values of an axis (or use --compare A B).")
    from jgrok import power

    items = report.power_items(scan, comps, effect)
    md = report.comparison_md(scan, comps, items)
    path = scan.out / "analysis" / "compare.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join([f"# Comparisons: {scan.out.name}", "", *md]))
    for c in comps:
        print(c.sentence())
    print("Seeds needed (80% power, alpha 0.05; this scan as the pilot):")
    for line in power.lines(items, scan.budget, power.rate(scan.out)):
        print("  " + line)
    print(f"wrote {path}")
    return 0


def _precision(scan, share_h: float | None, median_h: float | None, factor: float, factor_text: str) -> int:
    """--share-within H / --median-within STEPS: per run group, the seeds a precise estimate needs (jgrok.power);
    printed and written to OUT/analysis/seeds_needed.md."""
    from jgrok import power, scandata, stats
    from jgrok.analysis import seeds
    from jgrok.distribution import markdown_table

    rate = power.rate(scan.out)
    body, lines = [], []
    for ((_, label), idx), g in zip(scan.groups.items(), scan.grok_times().values()):
        steps, reached = scandata.steps_reached(scan.rows, idx)
        steps = np.where(reached, steps, scan.budget)
        items = []
        if share_h is not None:
            n_super = int(seeds.super_mask(steps, reached, factor).sum())
            for what, k in (("share that reached 99% val acc", g["k"]), (f"super-run share (factor {factor_text})",
                                                                         n_super)):
                lo, hi = stats.wilson(k, g["n"])
                items.append((what, f"{k}/{g['n']} = {100 * k / g['n']:.1f}% (95% CI {100 * lo:.1f}–{100 * hi:.1f}%)",
                              f"± {100 * share_h:g}%", power.seeds_for_share(k / g["n"], share_h)))
        if median_h is not None:
            med = stats.fmt_median(g)
            n = (power.seeds_for_median(g["km"], scan.budget, median_h) if np.isfinite(g["km_median"])
                 else "no median")
            items.append(("Kaplan-Meier median", med, f"± {median_h:g} steps", n))
        for what, now, within, n in items:
            if n == "no median":  # more seeds do not move a median that lies beyond the budget
                need, cost = "–", "no median within the budget: train longer (--steps), not more seeds"
            else:
                need = f">{power.MAX_SEEDS}" if n is None else str(n)
                cost = power.cost(n, 1, scan.budget, rate)
            body.append([label, what, now, within, need, cost])
            lines.append(f"{label}: {what} {now}: " + (cost if need == "–" else f"{need} seeds for {within} ({cost})"))
    head = ["run group", "estimate", "this scan", "wanted (95%)", "seeds needed", "cost"]
    md = [f"# Seeds for a precise estimate: {scan.out.name}", "",
          "Per run group, the seeds at which an estimate is known to the half-width asked for: a share's 95% Wilson "
          "interval at this scan's share, and the Kaplan-Meier median's spread over simulated scans of that many "
          f"seeds drawn from this scan's curve (middle 95% of {power.TRIALS} simulated medians). Super runs: steps "
          f"to 99% val acc <= {factor_text} x the run group's median (jgrok.analysis.seeds). Definitions: jgrok.power.",
          "", markdown_table(head, body), ""]
    path = scan.out / "analysis" / "seeds_needed.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(md))
    for line in lines:
        print(line)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
