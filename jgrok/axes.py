"""The axes a scan can vary, each defined once.

An axis is a per-run setting that a scan takes a list of values for (``--wd 0.1,0.5``, ``grid: {wd: [0.1, 0.5]}``);
every combination of the axes' values is a run. Everything else that knows about axes derives from REGISTRY:

  jgrok.config      ``config.AXES`` (the grid's keys and the base-config field each replaces), value types, seeds
  jgrok.scan        the axis flags (``--wd``), their help lines, and ``scan.AXIS_FLAGS``
  jgrok.grid        the product order (run ids), the runs table's rows, and the per-run arrays of ``grid.hyper``
  jgrok.train       the fields of ``train.Hyper`` (one per axis with a ``hyper`` dtype) and their abstract shapes
  jgrok.rungroup    the runs table's columns (and so summary.csv's), and the axes of run-group labels
  jgrok.results_folder.run_config    a run's own config

Adding an axis that is a per-run number (a "traced" axis, one compiled program serves every value): add its field
to the config section it belongs to, an entry here with a ``hyper`` dtype, and the line in jgrok/train.py (or the
module it calls) that reads ``hp.<name>``. Its checks go with its section's checks in jgrok.config.validate.

Adding an axis that changes the compiled program (a "program" axis: array shapes, a kind of optimiser): an entry
here with role "program" and the base-config field it replaces; jgrok.grid.programs splits the runs by its
values, and each program is built from its own config. Check every value of it in jgrok.config.validate (the
checks of a section run once per value there), and where it changes the shape of a curve, the padding of
jgrok.io.results.merge puts the programs' curves side by side.

Roles:
  program   values that change the compiled program (task, optimiser kind, a named variant, the shape axes p,
            d_model, n_layers): runs that differ in one of them are trained by different programs
            (jgrok.grid.programs)
  value     a per-run value inside one program: a field of train.Hyper (``hyper`` gives its dtype) or, for
            ``init`` and ``filter``, an index into the program's schemes / filters (grid.hyper encodes them)
  seed      a per-run seed: replicates, never part of a run group's label; takes half-open ranges A:B. A seed axis
            with ``fallback`` takes that axis's value where it is not in the grid (split and order seeds default to
            the data seed, which defaults to the model seed)

The order of REGISTRY is the order of the command-line flags in ``--help``. Two other orders are part of saved
results, so each entry states its place in them: ``nest`` (the product order, 0 outermost: a run's id is its row
number in the product of the axes in its grid, so changing the relative order of two axes renumbers the runs of
saved grids; a new axis usually nests just outside the seeds, which then move up by one, leaving every grid
without the new axis numbered as before) and ``column`` (the runs table's and summary.csv's columns; a new axis
takes the next number after the last).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str  # grid key, runs-table column and train.Hyper field
    role: str  # "program", "value" or "seed" (module docstring)
    nest: int  # place in the product order, 0 = outermost (module docstring)
    column: int | None  # place among the runs table's columns; None: not a column (data_seed sets two others)
    field: tuple[str, str] | None = None  # (section, field) of the base config that the axis replaces
    flag: str | None = None  # command-line flag; None: set through the config's grid or --set grid.NAME
    help: str = ""  # the flag's --help line
    hyper: type | None = None  # dtype of its train.Hyper field (one value per run); None: no field of its own
    value_type: type | None = None  # type of a value, for axes without a config field (others: the field's type)
    fallback: str | None = None  # seed axes: the axis whose value a run takes when this one is not in the grid
    missing: object = None  # the column's value in a row written before the column existed (None: always there)

    @property
    def attr(self) -> str | None:
        """The argparse attribute of the flag (``--filter-alpha`` -> ``filter_alpha``)."""
        return None if self.flag is None else self.flag[2:].replace("-", "_")


REGISTRY: tuple[Axis, ...] = (
    Axis("task", "program", nest=0, column=0, field=("task", "name"), flag="--task",
         help="task name, or a comma list (an axis); see the README's task table"),
    Axis("seed", "seed", nest=19, column=1, flag="--seeds", help="model seeds: A:B (half-open) or a comma list",
         value_type=int),  # model seed; train.Hyper.seed_G holds it per layer group (init.groups overrides)
    Axis("data_seed", "seed", nest=16, column=None, flag="--data-seeds", value_type=int, fallback="seed",
         help="seeds of the train/val split and the batch order together (an axis)"),
    Axis("split_seed", "seed", nest=17, column=2, flag="--split-seeds", value_type=int, fallback="data_seed",
         help="seeds of the train/val split alone (an axis)", hyper=np.int32),
    Axis("order_seed", "seed", nest=18, column=3, flag="--order-seeds", value_type=int, fallback="data_seed",
         help="seeds of the batch order alone (an axis)", hyper=np.int32),
    Axis("wd", "value", nest=5, column=5, field=("optim", "wd"), flag="--wd", help="weight decay values (comma list)",
         hyper=np.float32),
    Axis("lr", "value", nest=6, column=4, field=("optim", "lr"), flag="--lr", help="learning rates (comma list)",
         hyper=np.float32),
    Axis("init", "value", nest=3, column=6, field=("init", "scheme"), flag="--init",
         help="init schemes (comma list): default, xavier_uniform, ..."),  # train.Hyper.scheme_G, per layer group
    Axis("init_scale", "value", nest=4, column=7, field=("init", "scale"), flag="--init-scale",
         help="initial-parameter multipliers (comma list)", hyper=np.float32),
    Axis("optimizer", "program", nest=2, column=8, field=("optim", "name"), flag="--optimizer",
         help="optimisers (comma list): adamw, adam_l2, sgd"),
    Axis("filter", "value", nest=7, column=9, field=("optim", "filter"), flag="--filter",
         help="Grokfast gradient filters (comma list): none, ema, ma"),  # train.Hyper.filter_kind
    Axis("filter_alpha", "value", nest=8, column=10, field=("optim", "filter_alpha"), flag="--filter-alpha",
         help="EMA filter alpha values (comma list)", hyper=np.float32),
    Axis("filter_lambda", "value", nest=9, column=11, field=("optim", "filter_lambda"), flag="--filter-lambda",
         help="filter lambda values (comma list)", hyper=np.float32),
    Axis("filter_window", "value", nest=10, column=12, field=("optim", "filter_window"), flag="--filter-window",
         help="MA filter windows (comma list)", hyper=np.int32),
    Axis("orthogonal_grad", "value", nest=11, column=13, field=("optim", "orthogonal_grad"), hyper=np.bool_,
         missing=False),
    # names of bundles of overrides in the config's ``variants`` (jgrok.config.variant_config)
    Axis("variant", "program", nest=1, column=14, value_type=str, missing=""),
    # the training fraction: a per-run value (train.Hyper.n_train, floor(N x fraction)) where the program's
    # sampling allows it, else it splits programs (jgrok.train.fraction_traced, jgrok.grid.programs)
    Axis("fraction", "value", nest=12, column=15, field=("task", "fraction"), flag="--fraction",
         help="training fractions (comma list), each in (0, 1): a run trains on the first floor(N x fraction) "
              "pairs of its split"),
    # the shape axes: each value changes array shapes (the vocabulary and the number of pairs, the width, the
    # depth), so runs of different values are trained by different programs, all in one scan and one results
    # folder (curves of other shapes are padded side by side in metrics.npz: jgrok.io.results)
    Axis("p", "program", nest=13, column=16, field=("task", "p"), flag="--p",
         help="moduli p of the modular tasks (comma list; one program per value)"),
    Axis("d_model", "program", nest=14, column=17, field=("model", "d_model"), flag="--d-model",
         help="transformer widths model.d_model (comma list; one program per value)"),
    Axis("n_layers", "program", nest=15, column=18, field=("model", "n_layers"), flag="--layers",
         help="transformer depths model.n_layers (comma list; one program per value)"),
)



# Views of the registry. They read REGISTRY when called, so a test can add an axis to it (monkeypatch) and see it
# go through the config, the runs table and run_config; the modules' constants (config.AXES, grid.AXIS_ORDER,
# rungroup.COLUMNS, scan.AXIS_FLAGS, train.Hyper) are taken from them at import.


def by_name(name: str) -> Axis:
    """The axis called ``name``; KeyError for a name that is not an axis."""
    for a in REGISTRY:
        if a.name == name:
            return a
    raise KeyError(name)


def product() -> tuple[Axis, ...]:
    """The axes in product order, outermost first (a run's id is its row number in the product)."""
    return tuple(sorted(REGISTRY, key=lambda a: a.nest))


def columns() -> tuple[Axis, ...]:
    """The axes that are columns of the runs table and summary.csv, in column order."""
    return tuple(sorted((a for a in REGISTRY if a.column is not None), key=lambda a: a.column))


def seeds() -> tuple[Axis, ...]:
    return tuple(a for a in REGISTRY if a.role == "seed")


def program() -> tuple[Axis, ...]:
    """The axes whose values change the compiled program: runs that differ in one never share a program."""
    return tuple(a for a in REGISTRY if a.role == "program")


def fields() -> tuple[Axis, ...]:
    """The axes that replace a field of the base config."""
    return tuple(a for a in REGISTRY if a.field is not None)


def hyper() -> tuple[Axis, ...]:
    """The axes that are a field of train.Hyper (one value per run, of dtype ``hyper``)."""
    return tuple(a for a in REGISTRY if a.hyper is not None)


def seed_value(values: dict, axis: str):
    """A seed axis's value in one run, given the values of the grid's axes in that run (``fallback`` applied)."""
    while axis not in values:
        axis = by_name(axis).fallback
    return values[axis]


assert sorted(a.nest for a in REGISTRY) == list(range(len(REGISTRY))), "nest: one place per axis"
assert [a.column for a in columns()] == list(range(len(columns()))), "column: one place per column"
