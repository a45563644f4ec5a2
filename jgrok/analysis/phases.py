"""Phase diagrams and the fraction figure of a finished scan, as report.md (jgrok.report), the analysis report
(jgrok.analysis.pipeline) and ``python -m jgrok.analyze OUT --phase X,Y`` show them.

  phase diagram    whenever exactly two non-seed axes vary (or the two named by --phase): per task (and value of
                   any other varying axis) the X x Y grid, each cell coloured by its runs' majority phase with the
                   shares in a table, and the Kaplan-Meier median grokking delay per cell. The phases, the delay and
                   their thresholds are defined once, in jgrok.stats (``phases``, ``delay_km``); the cells are
                   assembled by jgrok.scandata.phase_grids and drawn by jgrok.plots.phase_figure.
  fraction figure  whenever a ``fraction`` column varies: steps to 99% val acc against the training fraction, one
                   line per task and value of the other varying axes (jgrok.scandata.fraction_points, drawn by
                   jgrok.plots.fraction_figure), and its table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jgrok import plots, scandata, stats
from jgrok.distribution import markdown_table


@dataclass(frozen=True)
class PhaseSettings:
    """Which axes and thresholds the phase diagram uses: ``axes`` None = the two varying axes when exactly two
    vary; ``acc`` the accuracy level A, ``delay`` the delay D in updates (jgrok.stats)."""

    axes: str | None = None
    acc: float = stats.PHASE_ACC
    delay: float = stats.PHASE_DELAY


def phase_md(grid: scandata.PhaseGrid) -> list[str]:
    """The table of one phase diagram: per cell its runs, the count of each phase, the majority and the median
    grokking delay."""
    head = [grid.x, grid.y, "runs", *stats.PHASES, "majority", "median grokking delay (95% CI; val/train reached)"]
    body = []
    for i, xv in enumerate(grid.xs):
        for j, yv in enumerate(grid.ys):
            c, n = grid.counts[i, j], int(grid.n[i, j])
            if n == 0:
                continue
            top = int(np.argmax(c))
            med, lo, hi = grid.delay[i, j]
            if grid.delay_n[i, j] == 0:
                delay = "– (train never reached the level)"
            elif not np.isfinite(med):
                delay = f"not reached ({grid.delay_k[i, j]}/{grid.delay_n[i, j]})"
            else:
                upper = stats.fmt_num(hi) if np.isfinite(hi) else "open"
                delay = f"{med:.0f} ({stats.fmt_num(lo)}–{upper}; {grid.delay_k[i, j]}/{grid.delay_n[i, j]})"
            body.append([xv, yv, n, *(int(k) for k in c), f"{stats.PHASES[top]} {100 * c[top] / n:.0f}%", delay])
    return [markdown_table(head, body)]


def phase_section(scan, settings: PhaseSettings, plot_dir: Path, rel: str = "plots") -> tuple[list[str], list[Path]]:
    """(Markdown lines, figure paths) of the phase diagrams of a scan (jgrok.open_scan(OUT).data()); ([], []) when
    no two axes are given and not exactly two vary. ConfigError for axes that do not vary or an accuracy level
    the scan did not track."""
    pair = scandata.phase_axes(scan.rows, settings.axes)
    if pair is None:
        return [], []
    grids = scandata.phase_grids(scan.rows, *pair, scan.budget, settings.acc, settings.delay)
    plot_dir.mkdir(parents=True, exist_ok=True)
    md = [f"## Phase diagram: {pair[0]} × {pair[1]}", "", stats.phase_definitions(settings.acc, settings.delay), ""]
    paths = []
    for g in grids:
        name = f"phase_{plots.safe_name(g.title)}_{pair[0]}_{pair[1]}.png"
        paths.append(plots.save(plots.phase_figure(g), plot_dir / name))
        md += [f"### {g.title}", "", *phase_md(g), "", f"![{Path(name).stem}]({rel}/{name})", "",
               f"*Left: each cell coloured by its majority phase (stronger colour: larger share), its count of "
               f"runs written in; right: the Kaplan-Meier median grokking delay per cell (hatched: fewer than half "
               f"of the runs whose train acc reached {100 * g.acc:g}% got there on val within the budget).*", ""]
    return md, paths


def fraction_md(points: dict) -> list[str]:
    """The table of the fraction figure: per line and fraction, the share that reached 99% val acc and the
    Kaplan-Meier median of steps to 99% val acc."""
    head = ["line", "fraction", "reached 99% val acc (95% CI)", "KM median steps to 99% val acc (95% CI)"]
    body = [[label, f"{f:g}", stats.fmt_share(t["k"], t["n"]), stats.fmt_median(t)]
            for label, pts in points.items() for f, t in pts]
    return [markdown_table(head, body)]


def fraction_section(scan, plot_dir: Path, rel: str = "plots") -> tuple[list[str], list[Path]]:
    """(Markdown lines, figure paths) of the fraction figure; ([], []) unless a ``fraction`` column varies."""
    points = scandata.fraction_points(scan.rows, scan.budget)
    if not points:
        return [], []
    plot_dir.mkdir(parents=True, exist_ok=True)
    path = plots.save(plots.fraction_figure(points, scan.budget), plot_dir / "fraction.png")
    md = ["## Steps to 99% val acc against the training fraction", "",
          "Per line (task and the other varying axes) and training fraction: the Kaplan-Meier median of steps to "
          "99% val acc with its 95% interval, runs that never got there censored at the budget, and the share of "
          "runs that got there (95% Wilson interval). A point whose median was not reached is drawn as an open "
          "marker at the budget, labelled 'not reached': its median lies beyond the budget, not at it "
          "(jgrok.stats).", "", *fraction_md(points), "", f"![fraction]({rel}/{path.name})", ""]
    return md, [path]
