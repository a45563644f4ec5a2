"""The analysis of one results folder, end to end: what ``python -m jgrok.analyze`` runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jgrok import plots, stats
from jgrok.analysis import chaos as chaos_mod
from jgrok.analysis import chimera as chimera_mod
from jgrok.analysis import report as rep
from jgrok.analysis import retrain, seeds, spikes, variance
from jgrok.errors import ConfigError


def _plan_chaos(out, spec, K, overwrite, first_group):
    path = out / "analysis" / "chaos.csv"
    cfg, rows, W = retrain.scan_config(out)
    if spec == "auto":
        lay, res = first_group
        ids = chaos_mod.auto_runs(lay.steps, lay.run, res["is_super"])
    else:
        from jgrok.scan import parse_values

        ids = [int(v) for v in parse_values("--chaos", spec, seeds=True)]
        for rid in ids:
            retrain.find_run(rows, rid, "--chaos")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already holds chaos-floor results; pass --overwrite to train them again.")
    return path, cfg, chaos_mod.chaos_rows(rows, ids, K), W


def _plan_chimera(out, attribute, data_seeds, overwrite):
    from jgrok import grid

    path = out / "analysis" / "chimera.csv"
    cfg, rows, W = retrain.scan_config(out)
    fast = retrain.find_run(rows, attribute[0], "--attribute")
    slow = retrain.find_run(rows, attribute[1], "--attribute")
    chimera_mod.check_parents(fast, slow)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already holds chimera results; pass --overwrite to train them again.")
    prog = grid.programs(cfg, [fast])[0][0]
    if data_seeds is None:
        data = list(dict.fromkeys([(fast["split_seed"], fast["order_seed"]), (slow["split_seed"], slow["order_seed"])]))
    else:
        data = [(d, d) for d in data_seeds]
    same = chimera_mod.identical_groups(prog, fast, slow)
    groups = [g for g in prog.groups if g not in same]
    return path, cfg, chimera_mod.chimera_rows(fast, slow, groups, data), groups, same, fast, slow, W


def _fourier_runs(spec, rows, scan_rows):
    ids = {r["run"] for r in scan_rows}
    if spec == "all":
        return sorted(ids)
    if spec == "auto":
        by_speed = sorted(scan_rows, key=lambda r: (r["step_val_acc_99"], r["run"]))
        pick = np.unique(np.linspace(0, len(by_speed) - 1, min(8, len(by_speed))).round().astype(int))
        return [by_speed[i]["run"] for i in pick]
    from jgrok.scan import parse_values

    out = [int(v) for v in parse_values("--fourier-runs", spec, seeds=True)]
    for rid in out:
        if rid not in ids:
            raise ConfigError(f"--fourier-runs: run {rid} is not in this scan.")
    return out


def analyse(scan, *, factor, B, bseed, spike_cfg, chaos=None, K=8, attribute=None, data_seeds=None,
            fourier_runs="auto", n_key=5, overwrite=False, progress=True) -> Path:
    out = scan.out
    adir, tdir, pdir = out / "analysis", out / "analysis" / "tables", out / "analysis" / "plots"
    rows, budget = scan.rows, scan.budget
    keys = plots.group_keys(rows)
    by_group = plots.groups(rows, keys)

    layouts = {}
    for (task, label), idx in by_group.items():
        g = label  # the run group's label (jgrok.rungroup), which starts with the task
        lay = seeds.seed_layout(task, label, rows, idx, budget)
        layouts[g] = (lay, seeds.analyse(lay, factor, B, bseed))

    # check what will be trained before training anything
    chaos_plan = _plan_chaos(out, chaos, K, overwrite, next(iter(layouts.values()))) if chaos else None
    chim_plan = _plan_chimera(out, attribute, data_seeds, overwrite) if attribute else None
    tasks = {str(r["task"]) for r in rows}
    if fourier_runs not in ("auto", "none") and "x_plus_y" not in tasks:
        raise ConfigError("--fourier-runs needs a scan of the x_plus_y task (the progress measures are defined for "
                          "modular addition).")
    for d in (tdir, pdir):
        d.mkdir(parents=True, exist_ok=True)

    if chaos_plan:
        path, cfg, crows, W = chaos_plan
        steps, reached, _ = retrain.train_rows(cfg, crows, W, progress)
        chaos_mod.write(path, crows, steps, reached)
    if chim_plan:
        path, cfg, crows, groups, same, fast, slow, W = chim_plan
        steps, reached, _ = retrain.train_rows(cfg, crows, W, progress)
        chimera_mod.write(path, crows, groups, steps, reached, fast, slow, same)

    figures: list[Path] = []
    body: list[str] = []
    head: list[str] = []
    # seed grids, super seeds, variance
    body += ["## Seed grids, super seeds and variance", "",
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
        figs = rep.seed_figures(g, lay, res, pdir, budget)
        figures += figs
        body += [f"![{p.stem}](plots/{p.name})" for p in figs] + [""]
        t = stats.grok_time(lay.steps, lay.reached, budget)
        line = (f"- **{g}**: {stats.fmt_share(t['k'], t['n'])} of runs reached 99% val acc (median "
                f"{stats.fmt_num(t['p50'])} steps {stats.REACHED_NOTE.format(k=t['k'])}; Kaplan-Meier median "
                f"{stats.fmt_median(t)}); super runs {res['n_super']}/{res['n']} = {rep.pct(res['share'])} "
                f"(95% CI {rep.ci(*res['ci'])}, {res['ci_method']})")
        if anova is not None:
            line += "; variance of ln steps: " + ", ".join(
                f"{c['name']} {rep.pct(c['share'])}" for c in anova["components"])
        head.append(line)

    # spikes
    reached = np.array([bool(r["reached_val_99"]) for r in rows])
    steps99 = np.array([float(r["step_val_acc_99"]) for r in rows])
    runs = np.array([r["run"] for r in rows])
    step_loss = None
    if spike_cfg.curve == "step_loss":
        with np.load(out / "metrics.npz") as z:
            order = {int(r): i for i, r in enumerate(z["run"])}
            step_loss = z["step_loss"][[order[r] for r in runs]]
    sp = spikes.analyse(scan.curves, scan.eval_step_E, step_loss, steps99, reached, runs, spike_cfg)
    body += ["## Slingshots and loss spikes", ""] + rep.spike_section(sp, spike_cfg, tdir)
    figs = rep.spike_figures(scan, sp, spike_cfg, pdir)
    body += [f"![{p.stem}](plots/{p.name})" for p in figs] + [""]
    s = sp["summary"]
    head.append(f"- loss spikes: {s['spikes']} in {s['runs_with_spikes']} of {s['runs']} runs; "
                f"{rep.pct(s['drop_share'])} followed by a val-loss drop (background {rep.pct(s['bg_drop_share'])})")

    # chaos floor
    cpath = adir / "chaos.csv"
    if cpath.exists():
        crows = chaos_mod.read(cpath)
        body += ["## Chaos floor (one-ulp perturbations of the initial parameters)", ""]
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

    # chimeras
    hpath = adir / "chimera.csv"
    if hpath.exists():
        ch = chimera_mod.read(hpath)
        md, figs = rep.chimera_section(ch, budget, tdir, pdir)
        body += ["## Layer attribution (chimeras)", ""] + md + [f"![{p.stem}](plots/{p.name})" for p in figs] + [""]
        eff = chimera_mod.effects(np.log(ch["steps"]), ch["groups"], order=1)
        best = min(eff, key=lambda e: e["effect"])
        head.append(f"- layer attribution: the fast run's {best['groups'][0]} has the largest speed-up "
                    f"(x{best['factor']:.2f} steps)")

    # progress measures
    if fourier_runs != "none":
        body += ["## Progress measures for modular addition (Nanda et al. 2023)", ""]
        if "x_plus_y" not in tasks:
            body += ["Defined for the x_plus_y task only; this scan has none.", ""]
        elif not (out / "checkpoints").is_dir():
            body += ["The scan kept no checkpoints, so there are no parameters to measure.", ""]
        else:
            cfg, all_rows, _ = retrain.scan_config(out)
            ids = _fourier_runs(fourier_runs, all_rows, [r for r in rows if str(r["task"]) == "x_plus_y"])
            from jgrok.analysis import fourier

            fr = fourier.checkpoint_measures(out, cfg, all_rows, ids, n_key)
            if fr:
                body += [f"Key frequencies: the {n_key} largest Fourier components of the number-token embedding. "
                         "Restricted loss: logits projected onto the key-frequency directions cos/sin(w(a+b-c)), all "
                         "pairs; excluded loss: key-frequency components cos/sin(w(a+b)) removed, training pairs "
                         "(jgrok.analysis.fourier).", ""]
                md, figs = rep.fourier_section(fr, pdir, tdir)
                body += md + [f"![{p.stem}](plots/{p.name})" for p in figs] + [""]
            else:
                body += ["No checkpoint holds the chosen runs.", ""]

    md = [f"# jgrok analysis: {out.name}", "", f"{len(rows)} runs, budget {budget} updates, evaluated "
          f"{len(scan.eval_step_E)} times (at update steps {int(scan.eval_step_E[0])} to {int(scan.eval_step_E[-1])})"
          ". Tables: [tables/](tables/); figures: [plots/](plots/).", "",
          "## Headline", ""] + head + [""] + body
    path = adir / "report.md"
    path.write_text("\n".join(md))
    return path
