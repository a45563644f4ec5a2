"""OUT/analysis/report.md: headline numbers, tables (also as CSV in OUT/analysis/tables/) and figures
(OUT/analysis/plots/) of every analysis in jgrok.analysis; definitions live in each module's docstring.

Figures (per group ``<g>`` = task and non-seed axis values):
  seed_grid_<g>.png      heat map of ln(steps to 99% val acc) over model seed x data seed (censored runs hatched
                         as the budget)
  seed_rates_<g>.png     per model seed and per data seed: rate of reaching 99% and super share
  spikes_examples.png    a few runs around their largest training-loss spikes: train and val loss, weight norms
  spikes_aligned.png     val loss and weight norm around every spike onset, relative to the point before it
  chimera_effects.png    main effects of the layer groups (ln steps; negative: the fast run's group speeds up)
  measures_<g>.png       each progress measure's median and 10-90% band across runs against steps
  measures_aligned_<g>.png  the same against step - step_val_acc_99 (jgrok.analysis.progress)
  fourier_spectrum_<g>.png  median Fourier spectrum of the embedding over time
  fourier_norms.png      final embedding Fourier spectrum of the chosen runs (jgrok.analysis.fourier)
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from jgrok import plots, stats
from jgrok.analysis import spikes as spikes_mod


def table(head, body) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def write_csv(path: Path, head, body) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        w.writerows(body)


def num(v, fmt="{:.3g}") -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "–" if not np.isfinite(v) else fmt.format(v)


def pct(v) -> str:
    return num(100 * v if v is not None else np.nan, "{:.1f}%")


def ci(lo, hi) -> str:
    return f"{pct(lo)}–{pct(hi)}"


# ------------------------------------------------------------------------------------------------ seed grids

def seed_section(g: str, lay, res: dict, anova: dict | None, anova_so: dict | None, tdir: Path, pdir: Path,
                 budget: int) -> list[str]:
    md = [f"### {g}", ""]
    k = res["n"] - res["censored"]
    md.append(f"{stats.fmt_share(k, res['n'])} of runs reached 99% val acc ({res['censored']} never did: censored "
              f"at the budget {budget}); median steps {stats.REACHED_NOTE.format(k=k)}: "
              f"{num(res['median_steps'], '{:.0f}')}.")
    md.append(f"Super runs (steps <= {res['factor']:.3g} x reference median {res['reference_median']:.0f} = "
              f"{res['threshold']:.0f}): **{res['n_super']} = {pct(res['share'])}** (95% CI {ci(*res['ci'])}, "
              f"{res['ci_method']}).")
    md.append("")
    for key, title in (("per_model", "model seed"), ("per_data", "data seed"), ("per_split", "split seed"),
                       ("per_order", "order seed")):
        if key not in res:
            continue
        rows = res[key]
        head = [title, "runs", "reached 99%", "median steps among those that reached it",
                "super share (95% Wilson CI)"] + \
            (["lift"] if key == "per_data" else [])
        body = [[r["key"], r["n"], pct(r["rate"]), num(r["median_steps"], "{:.0f}"),
                 f"{pct(r['super_share'])} ({ci(r['ci_lo'], r['ci_hi'])})"]
                + ([num(r.get("lift"), "{:.2f}")] if key == "per_data" else []) for r in rows]
        name = f"{key}_{plots.safe_name(g)}.csv"
        write_csv(tdir / name, head, body)
        shown = body
        note = ""
        if len(body) > 16:
            order = np.argsort([-r["super_share"] for r in rows], kind="stable")
            shown = [body[i] for i in order[:8]] + [["…"] * len(head)] + [body[i] for i in order[-8:]]
            note = f" (the 8 highest and 8 lowest super shares of {len(body)}; all in [tables/{name}](tables/{name}))"
        md += [f"Per {title}{note}:", "", table(head, shown), ""]
    if "data_dependence" in res:
        dd, mdp, mg = res["data_dependence"], res["model_dependence"], res["marginals"]
        md += ["Does the data seed matter for being super, given each model seed's count of super runs? "
               f"Permutation X^2 = {num(dd['stat'])}, p = {num(dd['p'])}. The model seed, given each data seed's "
               f"count: X^2 = {num(mdp['stat'])}, p = {num(mdp['p'])}.",
               f"Product of marginals: in the {mg['cells']} cells where both the model seed and the data seed have an "
               f"above-median super share, {pct(mg['observed'])} of runs are super; independence predicts "
               f"{pct(mg['expected'])}.", ""]
    for a, title in ((anova, "model seed x data seed"), (anova_so, "split seed x order seed")):
        if a is None:
            continue
        md += [f"Variance of ln(steps to 99% val acc), {title} ({a['levels'][0]} x {a['levels'][1]} levels, "
               f"{a['n']} run(s) per cell):", "", anova_table(a), ""]
        if a["confounded"]:
            md += ["With one run per cell the interaction cannot be told apart from the residual (re-running a "
                   "cell reproduces it bit for bit); the last row is their sum.", ""]
    return md


def anova_table(a: dict) -> str:
    head = ["component", "variance", "95% CI", "share", "F-test p", "found (p < 0.05)"]
    body = [[c["name"], num(c["estimate"], "{:.4f}"), f"{num(c['lo'], '{:.4f}')} – {num(c['hi'], '{:.4f}')}",
             pct(c["share"]), num(c["p"]), {True: "yes", False: "no", None: "–"}[c["found"]]] for c in a["components"]]
    return table(head, body)


def seed_figures(g: str, lay, res: dict, pdir: Path, budget: int) -> list[Path]:
    from jgrok.analysis import seeds

    paths = []
    grid = seeds.grid_matrix(lay, np.log(lay.steps)) if lay.crossed else None
    if grid is not None:
        X, ms, ds = grid
        R = seeds.grid_matrix(lay, lay.reached.astype(float))[0]
        fig = plots.figure(min(3 + 0.12 * len(ds), 14), min(2.5 + 0.12 * len(ms), 14))
        ax = fig.add_subplot()
        im = ax.imshow(X, aspect="auto", cmap="viridis_r", interpolation="nearest")
        yy, xx = np.nonzero(R == 0)
        ax.scatter(xx, yy, marker="x", s=8, color="white", lw=0.6, label="never reached (budget)")
        ax.set(xlabel="data seed", ylabel="model seed", title=f"ln steps to 99% val acc: {g}")
        ax.set_xticks(range(len(ds)), ds, fontsize="x-small", rotation=90 if len(ds) > 16 else 0)
        ax.set_yticks(range(len(ms)), ms, fontsize="x-small")
        fig.colorbar(im, ax=ax, label="ln steps")
        if len(yy):
            ax.legend(fontsize="x-small", loc="upper right")
        paths.append(plots.save(fig, pdir / f"seed_grid_{plots.safe_name(g)}.png"))
    panels = [(k, t) for k, t in (("per_model", "model seed"), ("per_data", "data seed")) if k in res]
    fig = plots.figure(5 * len(panels) + 0.5, 3.6)
    for j, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        rows = res[key]
        x = np.arange(len(rows))
        ax.plot(x, [r["rate"] for r in rows], "o-", ms=3, lw=0.8, label="reached 99% val acc")
        sh = np.array([r["super_share"] for r in rows])
        err = np.array([[r["super_share"] - r["ci_lo"], r["ci_hi"] - r["super_share"]] for r in rows]).T
        ax.errorbar(x, sh, yerr=err, fmt="s", ms=3, lw=0.8, capsize=2, label="super share (95% CI)")
        ax.axhline(res["share"], color="gray", ls="--", lw=0.8, label="overall super share")
        ax.set(xlabel=title, ylabel="share of runs", ylim=(-0.03, 1.03), title=f"per {title}")
        ax.set_xticks(x[:: max(1, len(x) // 16)], [rows[i]["key"] for i in x[:: max(1, len(x) // 16)]],
                      fontsize="x-small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    paths.append(plots.save(fig, pdir / f"seed_rates_{plots.safe_name(g)}.png"))
    return paths


# ------------------------------------------------------------------------------------------------ spikes

def spike_section(res: dict, cfg, tdir: Path) -> list[str]:
    s = res["summary"]
    md = [f"Detector: {cfg.curve}, rolling median of the previous {cfg.window} points, flagged when the loss exceeds "
          f"(1 + {cfg.rel:g}) x baseline and the baseline by more than {cfg.min_jump:g}; alignment horizon "
          f"{cfg.horizon} evaluations.", "",
          f"- runs with at least one spike: {s['runs_with_spikes']} of {s['runs']}; spikes: {s['spikes']} "
          f"(median {num(s['median_per_spiking_run'], '{:.0f}')} per spiking run)",
          f"- spikes followed within {cfg.horizon} evaluations by a val-loss drop (log10 change < {cfg.drop:g}): "
          f"{pct(s['drop_share'])} of {s['drop_n']}; at background points: {pct(s['bg_drop_share'])} of {s['bg_n']}",
          f"- spikes within {cfg.horizon} evaluations of the run's 99%-val-acc step: {s['at_grok']}"]
    for k in res["norm_keys"]:
        md.append(f"- median relative change of {k} over a spike: {num(s[k + '|spike'], '{:+.2%}')}, at background "
                  f"points: {num(s[k + '|background'], '{:+.2%}')}")
    ev = sorted(res["events"], key=lambda e: -e["height"])
    head = ["run", "onset step", "height (x baseline)", "val log10 change", "weight norm change",
            "steps from 99% val acc"]
    body = [[e["run"], e["onset_step"], num(e["height"], "{:.1f}"), num(e["val_change"], "{:+.2f}"),
             num(e.get("weight_norm", np.nan), "{:+.2%}"), num(e["since_grok"], "{:+.0f}")] for e in ev]
    write_csv(tdir / "spikes.csv", head, body)
    if body:
        md += ["", f"Largest spikes (all {len(body)} in [tables/spikes.csv](tables/spikes.csv)):", "",
               table(head, body[:10])]
    return md + [""]


def spike_figures(scan, res: dict, cfg, pdir: Path) -> list[Path]:
    ev = sorted(res["events"], key=lambda e: -e["height"])
    if not ev:
        return []
    paths = []
    seen, picks = set(), []
    for e in ev:
        if e["run"] not in seen:
            seen.add(e["run"])
            picks.append(e)
        if len(picks) == 4:
            break
    fig = plots.figure(4.2 * len(picks) + 0.5, 5.5)
    axes = fig.subplots(2, len(picks), squeeze=False, sharex="col")
    x = scan.eval_step_E
    h = cfg.horizon
    for j, e in enumerate(picks):
        r = e["row"]
        lo, hi = max(0, e["eval_onset"] - 6 * h), min(len(x), e["eval_onset"] + 6 * h + 1)
        ax = axes[0, j]
        ax.plot(x[lo:hi], scan.curves["train_loss"][r, lo:hi], label="train loss")
        ax.plot(x[lo:hi], scan.curves["val_loss"][r, lo:hi], label="val loss")
        ax.set_yscale("log")
        ax.set_title(f"run {e['run']}: spike at {e['onset_step']}", fontsize="small")
        ax.axvline(e["onset_step"], color="red", ls="--", lw=0.8)
        ax.legend(fontsize="x-small")
        ax2 = axes[1, j]
        for k in res["norm_keys"]:
            c = scan.curves[k][r, lo:hi]
            ax2.plot(x[lo:hi], c / c[0], lw=1.4 if k == "weight_norm" else 0.8,
                     label=k.replace("norm/", ""))
        ax2.axvline(e["onset_step"], color="red", ls="--", lw=0.8)
        ax2.set(xlabel="update step", ylabel="norm / norm at left edge")
        ax2.legend(fontsize="xx-small")
    paths.append(plots.save(fig, pdir / "spikes_examples.png"))
    fig = plots.figure(9, 3.6)
    off = np.arange(-h, h + 1)
    for j, (key, title) in enumerate((("val_loss", "log10 val loss / before"),
                                      ("weight_norm", "log10 weight norm / before"))):
        ax = fig.add_subplot(1, 2, j + 1)
        a = spikes_mod.aligned(scan.curves, ev, key, h)
        for row in a[:50]:
            ax.plot(off, row, color="gray", lw=0.4, alpha=0.5)
        if np.isfinite(a).any():
            ax.plot(off, np.nanmedian(a, axis=0), color="black", lw=2, label=f"median of {len(a)} spikes")
        ax.axvline(0, color="red", ls="--", lw=0.8)
        ax.set(xlabel="evaluations from spike onset", ylabel=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    paths.append(plots.save(fig, pdir / "spikes_aligned.png"))
    return paths


# ------------------------------------------------------------------------------------------------ chaos

def chaos_section(summ: dict, threshold: float) -> list[str]:
    md = [f"{len(summ['per_run'])} runs re-trained with {summ['K']} one-ulp perturbations each (plus the unperturbed "
          "run). ln(steps to 99% val acc): within-seed SD "
          f"**{num(summ['within_sd'])}**, between-seed SD {num(summ['between_sd'])}: rounding noise alone gives "
          f"**{pct(summ['chaos_share'])}** of the seed-to-seed variance.", ""]
    head = ["run", "steps in scan", "reproduced (k=0)", "perturbed: median", "min", "max", "SD of ln steps",
            "super in scan", "super after perturbation"]
    body = [[p["run"], p["scan_steps"], "yes" if p["reproduced"] else f"no ({p['k0']})", num(p["median"], "{:.0f}"),
             num(p["lo"], "{:.0f}"), num(p["hi"], "{:.0f}"), num(p["sd_log"]), "yes" if p["is_super"] else "no",
             pct(p["survival"]) if p["is_super"] else "–"] for p in summ["per_run"]]
    md += [table(head, body), ""]
    fallen = [p["run"] for p in summ["per_run"] if p["survives"] is False]
    if fallen:
        md += [f"**Not a property of the seed:** super run(s) {', '.join(map(str, fallen))} stay super in fewer than "
               f"half of their one-ulp perturbations (threshold {threshold:.0f} steps).", ""]
    elif any(p["is_super"] for p in summ["per_run"]):
        md += ["Every chosen super run stays super in at least half of its one-ulp perturbations.", ""]
    if not all(p["reproduced"] for p in summ["per_run"]):
        md += ["Warning: an unperturbed re-run did not reproduce the scan's steps; the scan and this re-run differ "
               "in lane width or software.", ""]
    return md


# ------------------------------------------------------------------------------------------------ chimeras

def chimera_section(ch: dict, budget: int, tdir: Path, pdir: Path) -> tuple[list[str], list[Path]]:
    from jgrok.analysis import chimera

    y = np.log(ch["steps"])
    eff = chimera.effects(y, ch["groups"])
    C, D = y.shape
    fast_all, slow_all = ch["steps"][C - 1], ch["steps"][0]
    md = [f"{ch['header']}. {C} chimeras x {D} data seed(s) (split/order: "
          f"{', '.join(f'{s}/{o}' for s, o in ch['data'])}); {int((~ch['reached']).sum())} of {C * D} never reached "
          f"99% val acc (counted at the budget {budget}).",
          f"All groups from the fast run: median {np.median(fast_all):.0f} steps; all from the slow run: "
          f"{np.median(slow_all):.0f}."]
    if ch.get("identical"):
        md.append(f"Left out of the factorial: {', '.join(ch['identical'])}, whose initial values are identical in "
                  "both runs (taking them from either changes nothing).")
    md.append("")
    head = ["groups", "effect on ln steps (mean ± s.e. over data seeds)", "x steps", "p"]
    rows = lambda es: [[" x ".join(e["groups"]), f"{num(e['effect'], '{:+.3f}')} ± {num(e['se'], '{:.3f}')}",  # noqa
                        num(e["factor"], "{:.2f}"), num(e["p"])] for e in es]
    mains = [e for e in eff if e["order"] == 1]
    inter = sorted((e for e in eff if e["order"] > 1), key=lambda e: -abs(e["effect"]))
    write_csv(tdir / "chimera_effects.csv", head, rows(eff))
    md += ["Main effects (negative: taking this group from the fast run makes grokking faster):", "",
           table(head, rows(sorted(mains, key=lambda e: e["effect"]))), "",
           "Largest interactions:", "", table(head, rows(inter[:8])), ""]
    fig = plots.figure(7, 0.5 + 0.35 * len(mains))
    ax = fig.add_subplot()
    ms = sorted(mains, key=lambda e: e["effect"])
    ax.barh(range(len(ms)), [e["effect"] for e in ms], xerr=[0 if not np.isfinite(e["se"]) else e["se"] for e in ms],
            color=["tab:green" if e["effect"] < 0 else "tab:red" for e in ms], capsize=2)
    ax.set_yticks(range(len(ms)), [e["groups"][0] for e in ms])
    ax.axvline(0, color="black", lw=0.6)
    ax.set(xlabel="main effect on ln(steps to 99% val acc)", title="layer groups from the fast run")
    return md, [plots.save(fig, pdir / "chimera_effects.png")]


# ------------------------------------------------------------------------------------------------ progress measures

def progress_section(g: str, rows: list[dict], verdict: str, tdir: Path) -> list[str]:
    """The "what moves first" table of one group (definitions: jgrok.analysis.progress)."""
    head = ["curve", "runs that moved", "median crossing step", "median lead over step_val_acc_99",
            "Spearman rho with steps to 99% (95% CI, n)", "early R² of ln steps (n)"]
    body = [[("(reference) " if d["reference"] else "") + d["measure"], f"{d['moved']}/{d['runs']}",
             num(d["median_cross"], "{:.0f}"), num(d["median_lead"], "{:.0f}"),
             f"{num(d['rho'], '{:.2f}')} ({num(d['rho_lo'], '{:.2f}')} to {num(d['rho_hi'], '{:.2f}')}, "
             f"{d['n_rho']})", f"{num(d['r2'], '{:.2f}')} ({d['n_r2']})"] for d in rows]
    write_csv(tdir / f"progress_{plots.safe_name(g)}.csv", head, body)
    early = rows[0]["early_step"] if rows else 0
    return [f"### {g}", "", f"Early values: at step {early}. {verdict}", "", table(head, body), ""]


def fourier_table(run_ids, spectra, keys, curves_last: dict, tdir: Path) -> list[str]:
    """Per chosen run: key frequencies of the final spectrum and the last values of the fourier curves."""
    head = ["run", "key frequencies (largest first)", "Gini", "restricted loss", "excluded loss"]
    body = [[rid, " ".join(map(str, k)) or "–", num(curves_last["fourier_gini"][i]),
             num(curves_last["restricted_loss"][i]), num(curves_last["excluded_loss"][i])]
            for i, (rid, k) in enumerate(zip(run_ids, keys))]
    write_csv(tdir / "fourier.csv", head, body)
    return [table(head, body), ""]
