"""Accuracy, softmax collapse and logit scale per group (per variant of a ``variant`` scan), as distributions over
the group's runs (its seeds). Used by ``python -m jgrok.analyze`` and ``python -m jgrok.report``.

Definitions (per run; a cell is ``median [p10, p90]`` over the group's runs that have a finite value):
  reached 99% val       runs whose val acc passed 0.99 within the budget, of the group's runs
  steps to 99% val      median of step_val_acc_99 among the runs that reached it
  train acc, val acc    final_train_acc / final_val_acc of summary.csv (the last finite evaluation)
  softmax collapse      the last finite value of the ``softmax_collapse`` curve: the share of training examples
                        whose float32 softmax probability of the correct class is exactly 1 (the ``logits``
                        measures, ``train.measures: logits``); ``SC peak`` is its largest value over evaluations
  logit max, logit norm the last finite values of the ``logit_max`` and ``logit_norm`` curves (defined with the
                        ``logits`` measures)
Without those curves in metrics.npz the table has the accuracy columns only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jgrok.io.results import last_finite

LOGIT_KEYS = ("softmax_collapse", "logit_max", "logit_norm")


def _dist(x) -> tuple[float, float, float]:
    """(p10, median, p90) of the finite values; NaNs when there are none."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return tuple(np.percentile(x, [10, 50, 90])) if len(x) else (np.nan, np.nan, np.nan)


def applies(scan) -> bool:
    """The table is shown for a scan with a varying ``variant`` column or with the logits curves."""
    return "variant" in scan.group_axes or any(k in scan.curves for k in LOGIT_KEYS)


def stats(scan) -> list[dict]:
    """One dict per (task, group): ``group``, ``runs``, ``reached``, ``steps`` and a (p10, median, p90) triple per
    measure (see the module docstring)."""
    rows, by_group = scan.rows, scan.groups
    have = [k for k in LOGIT_KEYS if k in scan.curves]
    out = []
    for (task, label), idx in by_group.items():
        members = [rows[i] for i in idx]
        reached = [m for m in members if m["reached_val_99"]]
        d = {"group": label, "runs": len(members), "reached": len(reached),
             "steps": float(np.median([m["step_val_acc_99"] for m in reached])) if reached else np.nan,
             "train_acc": _dist([m["final_train_acc"] for m in members]),
             "val_acc": _dist([m["final_val_acc"] for m in members])}
        for k in have:
            d[k] = _dist(last_finite(scan.curves[k][idx]))
        if "softmax_collapse" in have:
            sc = scan.curves["softmax_collapse"][idx]
            d["sc_peak"] = _dist(np.where(np.isfinite(sc).any(1), np.nanmax(np.where(np.isfinite(sc), sc, -np.inf),
                                                                           axis=1), np.nan))
        out.append(d)
    return out


def section(scan, tdir: Path | None = None) -> list[str]:
    """Markdown lines of the table (and OUT/analysis/tables/variants.csv when ``tdir`` is given)."""
    from jgrok.analysis import write as rep

    st = stats(scan)
    have = [k for k in LOGIT_KEYS if k in scan.curves]
    cols = [("train_acc", "train acc"), ("val_acc", "val acc")]
    if have:
        cols += [(k, n) for k, n in (("softmax_collapse", "softmax collapse"), ("sc_peak", "SC peak"),
                                     ("logit_max", "logit max"), ("logit_norm", "logit norm")) if k in st[0]]
    head = ["group", "runs", "reached 99% val", "steps to 99% val (median)"] + [n for _, n in cols]

    def cell(t):
        return f"{rep.num(t[1])} [{rep.num(t[0])}, {rep.num(t[2])}]"

    body = [[d["group"], d["runs"], f"{d['reached']}/{d['runs']}", rep.num(d["steps"], "{:.0f}")]
            + [cell(d[k]) for k, _ in cols] for d in st]
    if tdir is not None:
        rep.write_csv(tdir / "variants.csv", ["group", "runs", "reached", "steps"] +
                      [f"{k}_{q}" for k, _ in cols for q in ("p10", "median", "p90")],
                      [[d["group"], d["runs"], d["reached"], d["steps"]] + [v for k, _ in cols for v in d[k]]
                       for d in st])
    md = ["Per group (per variant): the share of runs that reached 99% val acc, and median [p10, p90] over runs of "
          "the final train and val accuracy" + (", softmax collapse (share of training examples whose float32 softmax "
                                                "of the correct class is exactly 1; final and peak) and logit scale "
                                                "(final logit max and norm)" if have else "")
          + " (definitions: jgrok.analysis.variants).", "", rep.table(head, body), ""]
    if not have:
        md += ["Softmax collapse and logit scale come from the `logits` measures (`train.measures: logits`); this "
               "scan's metrics.npz has none of their curves.", ""]
    return md
