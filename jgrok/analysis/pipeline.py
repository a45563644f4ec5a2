"""The analysis pipeline of one results folder, end to end: what ``python -m jgrok.analyze`` runs. It plans the
runs to train (chaos floor, chimeras), trains them, then calls each analysis (seeds, variance, spikes, chaos,
chimera, progress, Fourier, variants) and writes OUT/analysis/report.md from their parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jgrok import results_folder, runids, scandata, stats
from jgrok.analysis import chaos as chaos_mod
from jgrok.analysis import chimera as chimera_mod
from jgrok.analysis import fourier, phases
from jgrok.analysis import progress as progress_mod
from jgrok.analysis import write as rep
from jgrok.analysis import retrain, seeds, spikes, variance
from jgrok.analysis import variants as variants_mod
from jgrok.config import MAX_RUNS
from jgrok.errors import ConfigError
from jgrok.io.results import last_finite
from jgrok.results_folder import open_scan


def _run_ids(flag: str, text: str) -> list[int]:
    """The run ids a flag names (jgrok.runids; at most as many as a scan can have)."""
    try:
        return runids.parse(text, MAX_RUNS)
    except ConfigError as e:
        raise ConfigError(f"{flag}: {e}") from None


def _plan_chaos(out, spec, K, overwrite, first_group):
    path = out / "analysis" / "chaos.csv"
    folder = open_scan(out)
    cfg, rows, W = folder.config, folder.runs, folder.lanes
    if spec == "auto":
        lay, res = first_group
        ids = chaos_mod.auto_runs(lay.steps, lay.run, res["is_super"])
    else:
        ids = _run_ids("--chaos", spec)
        for rid in ids:
            retrain.find_run(rows, rid, "--chaos")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already holds chaos-floor results; pass --overwrite to train them again.")
    return path, cfg, chaos_mod.chaos_rows(rows, ids, K), W


def _plan_chimera(out, attribute, data_seeds, overwrite):
    path = out / "analysis" / "chimera.csv"
    folder = open_scan(out)
    cfg, rows, W = folder.config, folder.runs, folder.lanes
    fast = retrain.find_run(rows, attribute[0], "--attribute")
    slow = retrain.find_run(rows, attribute[1], "--attribute")
    chimera_mod.check_parents(fast, slow)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already holds chimera results; pass --overwrite to train them again.")
    prog = results_folder.programs(cfg, [fast])[0][0]
    if data_seeds is None:
        data = list(dict.fromkeys([(fast["split_seed"], fast["order_seed"]), (slow["split_seed"], slow["order_seed"])]))
    else:
        data = [(d, d) for d in data_seeds]
    same = chimera_mod.identical_groups(prog, fast, slow)
    groups = [g for g in prog.groups if g not in same]
    return path, cfg, chimera_mod.chimera_rows(fast, slow, groups, data), groups, same, fast, slow, W


def _fourier_runs(spec, rows):
    ids = {r["run"] for r in rows}
    if spec == "all":
        return sorted(ids)
    if spec == "auto":
        by_speed = sorted(rows, key=lambda r: (r["step_val_acc_99"], r["run"]))
        pick = np.unique(np.linspace(0, len(by_speed) - 1, min(8, len(by_speed))).round().astype(int))
        return [by_speed[i]["run"] for i in pick]
    out = _run_ids("--fourier-runs", spec)
    for rid in out:
        if rid not in ids:
            raise ConfigError(f"--fourier-runs: run {rid} is not in this scan.")
    return out


def analyse(scan, *, factor, B, bseed, spike_cfg, chaos=None, K=8, attribute=None, data_seeds=None,
            fourier_runs="auto", overwrite=False, progress=True, phase=None) -> Path:
    """Write OUT/analysis/report.md (with its tables and figures) for a scan read by ``jgrok.open_scan(OUT).data()``;
    train the chaos-floor and chimera runs first when asked. Returns the report's path."""
    out = scan.out
    adir, tdir, pdir = out / "analysis", out / "analysis" / "tables", out / "analysis" / "plots"
    by_group = scan.groups
    layouts = {}
    for (task, label), idx in by_group.items():  # label: the run group's (jgrok.rungroup), which starts with the task
        lay = seeds.seed_layout(task, label, scan.rows, idx, scan.budget)
        layouts[label] = (lay, seeds.analyse(lay, factor, B, bseed))

    # check what will be trained before training anything
    chaos_plan = _plan_chaos(out, chaos, K, overwrite, next(iter(layouts.values()))) if chaos else None
    chim_plan = _plan_chimera(out, attribute, data_seeds, overwrite) if attribute else None
    if fourier_runs not in ("auto", "none") and not fourier.has_curves(scan.curves):
        raise ConfigError("--fourier-runs needs a scan made with --measures fourier (this one has no Fourier "
                          "curves); scan again with it.")
    for d in (tdir, pdir):
        d.mkdir(parents=True, exist_ok=True)
    _train_plans(chaos_plan, chim_plan, progress)

    parts = [_phases_part(scan, phase or phases.PhaseSettings(), pdir), _variants_part(scan, tdir),
             _seeds_part(layouts, scan, factor, B, bseed, tdir, pdir),
             _spikes_part(scan, spike_cfg, tdir, pdir), _chaos_part(adir / "chaos.csv", layouts),
             _chimera_part(adir / "chimera.csv", scan.budget, tdir, pdir),
             _progress_part(scan, by_group, B, bseed, fourier_runs, tdir, pdir)]
    head = [line for h, _ in parts for line in h]
    body = [line for _, b in parts for line in b]
    steps_E = scan.eval_step_E
    md = [f"# jgrok analysis: {out.name}", "", f"{len(scan.rows)} runs, budget {scan.budget} updates, evaluated "
          f"{len(steps_E)} times (at update steps {int(steps_E[0])} to {int(steps_E[-1])})"
          ". Tables: [tables/](tables/); figures: [plots/](plots/).", "",
          "## Headline", ""] + head + [""] + body
    path = adir / "report.md"
    path.write_text("\n".join(md))
    return path


def _links(paths) -> list[str]:
    return [f"![{p.stem}](plots/{p.name})" for p in paths]


def _train_plans(chaos_plan, chim_plan, progress: bool) -> None:
    """Train the chaos-floor and chimera runs planned by _plan_chaos / _plan_chimera and write their csv files."""
    if chaos_plan:
        path, cfg, crows, W = chaos_plan
        steps, reached, _ = retrain.train_rows(cfg, crows, W, progress)
        chaos_mod.write(path, crows, steps, reached)
    if chim_plan:
        path, cfg, crows, groups, same, fast, slow, W = chim_plan
        steps, reached, _ = retrain.train_rows(cfg, crows, W, progress)
        chimera_mod.write(path, crows, groups, steps, reached, fast, slow, same)


def _phases_part(scan, settings, pdir) -> tuple[list[str], list[str]]:
    """(headline lines, report lines) of the fraction figure and the phase diagrams (jgrok.analysis.phases), where
    they apply."""
    fmd, _ = phases.fraction_section(scan, pdir)
    md, _ = phases.phase_section(scan, settings, pdir)
    head = []
    for g in (scandata.phase_grids(scan.rows, *pair, scan.budget, settings.acc, settings.delay)
              if (pair := scandata.phase_axes(scan.rows, settings.axes)) else []):
        total = g.counts.sum(axis=(0, 1))
        head.append(f"- phases ({g.title}, {g.x} × {g.y}): " + ", ".join(
            f"{name} {int(k)}" for name, k in zip(stats.PHASES, total)) + f" of {int(total.sum())} runs")
    return head, fmd + md


def _variants_part(scan, tdir) -> tuple[list[str], list[str]]:
    """(headline lines, report lines) of the variants: accuracy, softmax collapse, logit scale over seeds."""
    if not variants_mod.applies(scan):
        return [], []
    body = ["## Accuracy, softmax collapse and logit scale per group", ""] + variants_mod.section(scan, tdir)
    head = [f"- {d['group']}: {d['reached']}/{d['runs']} runs reached 99% val acc; final val acc median "
            f"{rep.num(d['val_acc'][1])}" + (f", softmax collapse median {rep.num(d['softmax_collapse'][1])}"
                                             if "softmax_collapse" in d else "")
            for d in variants_mod.stats(scan)]
    return head, body


def _seeds_part(layouts, scan, factor, B, bseed, tdir, pdir) -> tuple[list[str], list[str]]:
    """Seed grids, super seeds and variance per run group."""
    budget, times = scan.budget, scan.grok_times()
    head: list[str] = []
    body = ["## Seed grids, super seeds and variance", "",
            f"Steps to 99% val acc = first eval step with val acc > 0.99; runs that never got there count at the "
            f"budget ({budget}) and are called censored. A super run reached 99% within {factor:.3g} x the group's "
            "median steps (median over all runs, censored ones at the budget). Intervals of shares: 95% Wilson "
            f"intervals, except the overall super share of a full seed grid: two-way percentile bootstrap with {B} "
            f"resamples (numpy default_rng({bseed})); independence tests: {B} permutations. Variance "
            "components: two-way random-effects ANOVA of ln(steps) with MLS intervals and F-tests "
            "(jgrok.analysis.variance).", ""]
    for g, (lay, res) in layouts.items():
        y = variance.log_steps(lay.steps)
        anova = variance.anova2(y, lay.model, lay.data) if lay.crossed else None
        anova_so = (variance.anova2(y, lay.split, lay.order, names=("split seed", "order seed"))
                    if lay.split_order_crossed else None)
        body += rep.seed_section(g, lay, res, anova, anova_so, tdir, pdir, budget)
        if lay.crossed and anova is None:
            body += ["The model x data grid is not balanced (some cells are missing or repeated), so no variance "
                     "decomposition.", ""]
        if not lay.crossed:
            body += ["Model seed and data seed do not vary independently here (scan with --seeds and --data-seeds "
                     "for a grid), so there is no per-data-seed analysis or variance decomposition.", ""]
        body += _links(rep.seed_figures(g, lay, res, pdir, budget)) + [""]
        t = times[g]
        line = (f"- **{g}**: {stats.fmt_share(t['k'], t['n'])} of runs reached 99% val acc (median "
                f"{stats.fmt_num(t['p50'])} steps {stats.REACHED_NOTE.format(k=t['k'])}; Kaplan-Meier median "
                f"{stats.fmt_median(t)}); super runs {res['n_super']}/{res['n']} = {rep.pct(res['share'])} "
                f"(95% CI {rep.ci(*res['ci'])}, {res['ci_method']})")
        if anova is not None:
            line += "; variance of ln steps: " + ", ".join(
                f"{c['name']} {rep.pct(c['share'])}" for c in anova["components"])
        head.append(line)
    return head, body


def _spikes_part(scan, spike_cfg, tdir, pdir) -> tuple[list[str], list[str]]:
    """Slingshots and loss spikes."""
    steps99, reached = scandata.steps_reached(scan.rows, range(len(scan.rows)))
    runs = np.array([r["run"] for r in scan.rows])
    step_loss = open_scan(scan.out).rows_of("step_loss", runs) if spike_cfg.curve == "step_loss" else None
    sp = spikes.analyse(scan.curves, scan.eval_step_E, step_loss, steps99, reached, runs, spike_cfg)
    body = ["## Slingshots and loss spikes", ""] + rep.spike_section(sp, spike_cfg, tdir)
    body += _links(rep.spike_figures(scan, sp, spike_cfg, pdir)) + [""]
    s = sp["summary"]
    head = [f"- loss spikes: {s['spikes']} in {s['runs_with_spikes']} of {s['runs']} runs; "
            f"{rep.pct(s['drop_share'])} followed by a val-loss drop (background {rep.pct(s['bg_drop_share'])})"]
    return head, body


def _chaos_part(path: Path, layouts) -> tuple[list[str], list[str]]:
    """The chaos floor (one-ulp perturbations), from chaos.csv of an earlier --chaos."""
    if not path.exists():
        return [], []
    crows = chaos_mod.read(path)
    head: list[str] = []
    body = ["## Chaos floor (one-ulp perturbations of the initial parameters)", ""]
    for g, (lay, res) in layouts.items():
        mine = [r for r in crows if r["source_run"] in set(lay.run.tolist())]
        if not mine:
            continue
        summ = chaos_mod.summarise(mine, dict(zip(lay.run.tolist(), lay.steps.tolist())), lay.steps,
                                   res["threshold"])
        body += [f"### {g}", ""] + rep.chaos_section(summ, res["threshold"])
        fallen = [p["run"] for p in summ["per_run"] if p["survives"] is False]
        head.append(f"- chaos floor ({g}): rounding noise gives {rep.pct(summ['chaos_share'])} of the "
                    f"seed-to-seed variance of ln steps" + (f"; super run(s) {', '.join(map(str, fallen))} do "
                                                             "not survive one-ulp perturbation" if fallen else ""))
    return head, body


def _chimera_part(path: Path, budget, tdir, pdir) -> tuple[list[str], list[str]]:
    """Layer attribution with chimeras, from chimera.csv of an earlier --attribute."""
    if not path.exists():
        return [], []
    ch = chimera_mod.read(path)
    md, figs = rep.chimera_section(ch, budget, tdir, pdir)
    body = ["## Layer attribution (chimeras)", ""] + md + _links(figs) + [""]
    eff = chimera_mod.effects(np.log(ch["steps"]), ch["groups"], order=1)
    best = min(eff, key=lambda e: e["effect"])
    head = [f"- layer attribution: the fast run's {best['groups'][0]} has the largest speed-up "
            f"(x{best['factor']:.2f} steps)"]
    return head, body


def _progress_part(scan, by_group, B, bseed, fourier_runs, tdir, pdir) -> tuple[list[str], list[str]]:
    """Progress measures, read from the curves (train.measures), and the Fourier spectra of chosen runs."""
    body = ["## Progress measures", ""]
    if not progress_mod.scalar_measures(scan.curves):
        return [], body + ["This scan evaluated no progress measures; scan again with --measures fourier,logits (a "
                           "run's training does not depend on its measures, so the same runs come back with the "
                           "curves).", ""]
    body += [f"Measures: jgrok.measures (formulas in its docstring and the README). Crossing step = first eval "
             f"step at which a curve has covered {progress_mod.CROSS_SHARE:.0%} of its change from the first to "
             f"the last evaluation; lead = step_val_acc_99 - crossing step; Spearman rho over the runs that "
             f"reached 99% val acc, 95% percentile bootstrap ({B} resamples, default_rng({bseed})); early R² = "
             f"leave-one-out share of the variance of ln(steps to 99%) explained by a line in the value at "
             f"{progress_mod.EARLY_SHARE:.0%} of the budget (jgrok.analysis.progress). Reference curves are the "
             "scan's own.", ""]
    head = []
    steps99, reached = scandata.steps_reached(scan.rows, range(len(scan.rows)))
    for (task, g), idx in by_group.items():  # g: the run group's label, which starts with the task
        curves = {k: v[idx] for k, v in scan.curves.items()}
        tab = progress_mod.what_moves_first(curves, scan.eval_step_E, steps99[idx], reached[idx], scan.budget, B,
                                            bseed)
        verdict = progress_mod.verdict(tab, int(reached[idx].sum()))
        body += rep.progress_section(g, tab, verdict, tdir)
        body += _links(progress_mod.figures(curves, scan.eval_step_E, steps99[idx], reached[idx], g, pdir, g)) + [""]
        head.append(f"- progress measures ({g}): {verdict}")
    if fourier.has_curves(scan.curves):
        body += _fourier_part(scan, _fourier_runs(fourier_runs, scan.rows) if fourier_runs != "none" else [],
                              tdir, pdir)
    return head, body


def _fourier_part(scan, ids, tdir, pdir) -> list[str]:
    """The final Fourier spectra of the runs ``ids``: table of key frequencies and figure."""
    if not ids:
        return []
    pos = {r["run"]: i for i, r in enumerate(scan.rows)}
    sel = [pos[r] for r in ids]
    pad = scan.pads.get("fourier_spectrum")  # runs of several moduli: each its own number of frequencies
    n_freq = None if pad is None else pad[:, -1]
    spectra = fourier.final_spectra(scan.curves, n_freq)[sel]
    own = [s if n_freq is None else s[: n_freq[i]] for s, i in zip(spectra, sel)]
    last = {k: last_finite(scan.curves[k][sel]) for k in ("fourier_gini", "restricted_loss", "excluded_loss")}
    body = ["### Fourier spectra of chosen runs", "",
            f"Key frequencies: the smallest set holding {fourier.measures.KEY_SHARE:.0%} of the "
            "squared spectrum of the number-token embedding at the run's last evaluation "
            "(jgrok.analysis.fourier).", ""]
    body += rep.fourier_table(ids, spectra, [fourier.key_frequencies(s) for s in own], last, tdir)
    p = fourier.spectrum_figure(spectra, ids, pdir / "fourier_norms.png")
    return body + [f"![{p.stem}](plots/{p.name})", ""]
