"""Run groups: the runs of a scan that share every non-seed axis value (seeds are replicates and never split a run
group). One label format for them everywhere: results (summary printout, final_info.json), report.md, plots,
analyze and TensorBoard.

  label      the task, then ``axis=value`` for each non-seed axis that varies in the scan, separated by spaces:
             ``x_plus_y``, ``x_plus_y wd=1``, ``x_div_y wd=0.5 init=xavier_uniform``. Values are written the same
             whether they come from a runs table (floats) or from summary.csv (strings): whole floats without
             ``.0`` (``1``), others in their shortest exact form (``0.001``, ``3e-05``).
  run name   ``run_0004 wd=1 seed=3``: the run id (zero-padded to the widest id of the scan, so names sort), the
             run group's varying axes and the seeds (split and order seed only where a run's differ from its
             model seed), and the task where tasks vary.
"""

from __future__ import annotations

from jgrok import axes as axes_mod

# columns every runs table (jgrok.grid.expand) and summary.csv carry, whether they vary or not (jgrok.axes)
COLUMNS = tuple(a.name for a in axes_mod.columns())
SEED_COLUMNS = tuple(a.name for a in axes_mod.columns() if a.role == "seed")
# non-seed axes in label order: the order of summary.csv's columns, a named variant (an axis without a config
# field: a bundle of them) first; the task is not among them, it starts every label
AXES = tuple(a.name for a in sorted(axes_mod.columns(), key=lambda a: a.field is not None)
             if a.role != "seed" and a.name != "task")
# values of the newer columns for a row built without them (no variant axis, no ⊥Grad)
COLUMN_DEFAULTS = {a.name: a.missing for a in axes_mod.columns() if a.missing is not None}


def columns(row: dict) -> dict:
    """The COLUMNS values of a runs-table row."""
    return {c: row[c] if c in row or c not in COLUMN_DEFAULTS else COLUMN_DEFAULTS[c] for c in COLUMNS}


def value_text(v) -> str:
    """An axis value as labels write it: '1' for 1.0 or '1.0' or 1, '0.001', 'xavier_uniform'."""
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)


def axes(rows: list[dict]) -> list[str]:
    """The non-seed axes (other than the task) whose values differ between runs, in label order. A named variant
    (``orthogonal: {optim.orthogonal_grad: true, optim.b2: 0.999}``) sets several columns at once, so they vary
    along with it: runs of a ``variant`` axis are labelled by the variant alone (``variant=orthogonal``), and an
    axis keeps its own place only where it also varies *within* a variant."""
    present = rows[0].keys() if rows else ()
    varying = [a for a in AXES if a in present and len({value_text(r[a]) for r in rows}) > 1]
    if "variant" not in varying:
        return varying
    by_variant: dict = {}
    for r in rows:
        by_variant.setdefault(str(r["variant"]), []).append(r)
    return [a for a in varying if a == "variant"
            or any(len({value_text(r[a]) for r in m}) > 1 for m in by_variant.values())]


def label(row: dict, group_axes: list[str]) -> str:
    """The run group's label of one run (see the module docstring)."""
    return " ".join([str(row["task"])] + [f"{a}={value_text(row[a])}" for a in group_axes])


def by_label(rows: list[dict], group_axes: list[str] | None = None) -> dict[str, list[int]]:
    """{label: row indices}: tasks in order of appearance, then run groups in ascending order of their axis values
    (numbers as numbers); runs in row order within a run group."""
    group_axes = axes(rows) if group_axes is None else group_axes
    tasks = list(dict.fromkeys(str(r["task"]) for r in rows))

    def rank(v):
        t = value_text(v)
        try:
            return 0, float(t), ""
        except ValueError:
            return 1, 0.0, t

    order = sorted(range(len(rows)), key=lambda i: (tasks.index(str(rows[i]["task"])),
                                                    tuple(rank(rows[i][a]) for a in group_axes), i))
    out: dict[str, list[int]] = {}
    for i in order:
        out.setdefault(label(rows[i], group_axes), []).append(i)
    return out


def run_name(row: dict, rows: list[dict], group_axes: list[str]) -> str:
    """``run_0004 wd=1 seed=3`` (see the module docstring)."""
    width = len(str(max(int(r["run"]) for r in rows)))
    parts = [f"run_{int(row['run']):0{width}d}"]
    if len({str(r["task"]) for r in rows}) > 1:
        parts.append(str(row["task"]))
    parts += [f"{a}={value_text(row[a])}" for a in group_axes]
    parts += [f"{s}={value_text(row[s])}" for s in seed_columns(rows) if s in row]
    return " ".join(parts)


def seed_columns(rows: list[dict]) -> list[str]:
    """``seed``, plus split_seed and order_seed where some run's differs from its model seed."""
    present = rows[0].keys() if rows else ()
    return [k for k in SEED_COLUMNS if k in present
            and (k == "seed" or any(value_text(r.get(k)) != value_text(r.get("seed")) for r in rows))]
