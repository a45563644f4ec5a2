"""Expand a config's axes into the runs table, and the runs into programs and per-run arrays.

Every combination of the grid's axes is a run; run ids are row numbers of the product in a fixed axis order
(task outermost, model seed innermost), so run 17 of a scan is the same run whenever the same grid is expanded.

Seeds: ``seed`` is the model seed (initial parameters). A run's split seed (train/val split) and order seed
(batch order) are, in this order of precedence, the values of the ``split_seed`` / ``order_seed`` axes, the value
of the ``data_seed`` axis (which sets both), or the model seed itself: by default ``--seeds 0:64`` gives 64 fully
independent runs, as in the template where one seed sets everything.

Runs that share a task, an optimiser kind and a variant (see jgrok.config.variant_config) share one compiled
program; every other axis is a per-run value. The training fraction is a per-run value (``Hyper.n_train``) where
the program's sampling allows it (jgrok.train.fraction_traced) and splits programs where it does not (full batch).
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import numpy as np

from jgrok import axes as axes_mod
from jgrok import config as config_mod
from jgrok import init as init_mod
from jgrok.rungroup import COLUMNS, columns
from jgrok.tasks import algorithmic, kinds
from jgrok.train import Hyper, Program, fraction_traced, row_n_train

# product order: outermost first (jgrok.axes: run ids are row numbers of this product)
AXIS_ORDER = tuple(a.name for a in axes_mod.product())
FILTERS = ("none", "ema", "ma")


def expand(cfg: config_mod.Config) -> list[dict]:
    """The runs table: one dict per run with every column of COLUMNS (plus ``run``, its id). A column of an axis
    with a config field holds the run's config value (its variant and axis values applied); a seed column holds
    the seed axis's value (or its fallback's, jgrok.axes.seed_value); ``variant`` its name, "" without one."""
    names = [a.name for a in axes_mod.product() if a.name in cfg.grid]
    overrides = config_mod.parse_group_overrides(cfg.init.groups)
    rows = []
    for values in itertools.product(*(cfg.grid[a] for a in names)):
        v = dict(zip(names, values))
        base = config_mod.base_for_axes(config_mod.variant_config(cfg, v.get("variant")),
                                        {a: x for a, x in v.items() if a not in config_mod.SEED_AXES})
        row = {"run": len(rows)}
        for a in axes_mod.columns():
            if a.field is not None:
                row[a.name] = getattr(getattr(base, a.field[0]), a.field[1])
            elif a.role == "seed":
                row[a.name] = axes_mod.seed_value(v, a.name)
            else:
                row[a.name] = v.get(a.name, a.missing)
        for group, spec in overrides.items():
            for what, value in spec.items():  # group_seed / group_scheme: {group: value}
                row.setdefault(f"group_{what}", {})[group] = value
        rows.append(row)
    return rows


def varying(rows: list[dict]) -> list[str]:
    """Columns whose value differs between runs."""
    cols = [columns(r) for r in rows]
    return [c for c in COLUMNS if len({r[c] for r in cols}) > 1]


def programs(cfg: config_mod.Config, rows: list[dict], load_start=None) -> list[tuple[Program, object, list[dict]]]:
    """Group runs by their static values (task, optimiser, variant) into programs, in run order. A program's config
    has train.steps / train.eval_every in updates (resolved from epochs where the config counts epochs), and
    optim.orthogonal_grad true when any of its runs uses ⊥Grad (each run's own choice is in Hyper).

    ``load_start(out, run)``: the final parameters of run ``run`` of the scan in folder ``out``, for a config whose
    runs start from them (``init.from_run``; jgrok.results_folder.programs passes it). Without it such programs
    start from their own initialisation, which has the same shapes (enough to read a scan's checkpoints).
    A program's table is what its task kind (jgrok.tasks.kinds) builds for the task."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:  # the values of the program-splitting axes (jgrok.axes), "" for a variant the row lacks;
        key = tuple(r.get(a.name, a.missing) for a in axes_mod.program())  # and the fraction where not traced
        static = dict(zip((a.name for a in axes_mod.program()), key))
        pcfg = config_mod.base_for_axes(config_mod.variant_config(cfg, static["variant"]), static)
        traced = fraction_traced(kinds.for_task(static["task"]), pcfg)
        groups.setdefault(key + (None if traced else r["fraction"],), []).append(r)
    out = []
    for key, members in groups.items():
        static = dict(zip((a.name for a in axes_mod.program()), key))
        task = static["task"]
        pcfg = config_mod.base_for_axes(config_mod.variant_config(cfg, static["variant"]), static)
        ortho = any(bool(r.get("orthogonal_grad", False)) for r in members)
        fractions = sorted({r["fraction"] for r in members})
        pcfg = dataclasses.replace(pcfg, optim=dataclasses.replace(pcfg.optim, orthogonal_grad=ortho),
                                   task=dataclasses.replace(pcfg.task, fraction=fractions[0]))
        kind = kinds.for_task(task)
        traced = key[-1] is None
        table = kind.build(task, pcfg.task)
        if kind.traced_fraction:  # a task whose split the fraction sets
            for f in fractions:
                check_split(task, table.n_pairs, f)
        if traced:
            if len(fractions) > 1 and (pcfg.train.epochs or pcfg.train.eval_every_epochs):
                raise config_mod.ConfigError(
                    "An epoch of a run is one pass over its own training set, so with several training fractions "
                    "count the budget and the evaluations in updates (--steps, --eval-every), not in epochs.")
        pcfg = config_mod.resolve_epochs(pcfg, table.n_train)  # steps are updates from here on
        used = {r["init"] for r in members} | {s for r in members for s in r.get("group_scheme", {}).values()}
        schemes = tuple(s for s in init_mod.SCHEMES if s in used)
        filters = tuple(f for f in FILTERS if any(r["filter"] == f for r in members))
        windows = [r["filter_window"] for r in members if r["filter"] == "ma"]
        sizes = kind.sizes(table) | ({"n_train": None} if traced else {})  # traced: each run's own, in Hyper
        prog = Program(cfg=pcfg, schemes=schemes, filters=filters, window_max=max(windows, default=1), kind=kind,
                       **sizes)
        _check_groups(prog, members)
        if pcfg.init.from_run and load_start is not None:
            prog = with_start(prog, pcfg.init.from_run, load_start)
        out.append((prog, table, members))
    _check_layout(out)
    return out


def _check_layout(progs: list) -> None:
    """Every program of a scan evaluates at the same steps (metrics.npz holds one ``eval_step`` for all runs):
    a budget counted in epochs is refused where the programs' training sets differ in size."""
    layouts = {(p.cfg.train.steps, p.cfg.train.eval_every) for p, _, _ in progs}
    if len(layouts) > 1:
        sizes = ", ".join(f"{t.n_train} for {m[0]['task']} p={m[0]['p']}" for _, t, m in progs)
        raise config_mod.ConfigError(
            f"train.epochs counts each program's own epochs, and the programs of this scan have training sets of "
            f"different sizes ({sizes} pairs), so their budgets would differ; count updates instead (--steps, "
            f"--eval-every) to scan them together.")


def hyper(prog: Program, rows: list[dict]) -> Hyper:
    """Per-run arrays ([len(rows)] each; seed_G and scheme_G are [len(rows), G]) for a list of runs."""
    G = len(prog.groups)
    col = lambda k, dt: np.array([r.get(k, axes_mod.by_name(k).missing) for r in rows], dt)  # noqa: E731
    names = prog.groups
    seed_G = np.array([[r.get("group_seed", {}).get(g, r["seed"]) for g in names] for r in rows], np.int32)
    scheme_G = np.array([[prog.schemes.index(r.get("group_scheme", {}).get(g, r["init"])) for g in names]
                         for r in rows], np.int32)
    values = {a.name: col(a.name, a.hyper) for a in axes_mod.hyper()}  # one value per run, in the axis's dtype
    return Hyper(
        n_train=np.array([row_n_train(prog, r) for r in rows], np.int32),  # the fraction axis (train.run_n_train)
        filter_kind=np.array([prog.filters.index(r["filter"]) for r in rows], np.int32),
        seed_G=seed_G.reshape(len(rows), G),
        scheme_G=scheme_G.reshape(len(rows), G),
        perturb=np.array([r.get("perturb", 0) for r in rows], np.int32),  # chaos floor: jgrok.init.perturb_ulp
        **values,
    )


def check_split(task: str, n_pairs: int, fraction: float) -> None:
    """ConfigError where training fraction ``fraction`` of task ``task``'s ``n_pairs`` pairs leaves the training
    set empty (the validation set never is: floor(N x fraction) < N for a fraction below 1)."""
    n = algorithmic.train_size(n_pairs, fraction)
    if n < 1:
        raise config_mod.ConfigError(
            f"Training fraction {fraction} of task {task}'s {n_pairs} pairs leaves an empty training set "
            f"({n} train, {n_pairs} validation); choose a fraction of at least 1/{n_pairs}.")


def _check_groups(prog: Program, rows: list[dict]) -> None:
    names = prog.groups
    for r in rows:
        for what in ("group_seed", "group_scheme"):
            for g in r.get(what, {}):
                if g not in names:
                    raise config_mod.ConfigError(f"Init group '{g}' does not exist in this model; its groups are "
                                                 f"{', '.join(names)}.")


def with_start(prog: Program, spec: str, load_start) -> Program:
    """The program whose runs start from the final parameters of another scan's run (``init.from_run`` = spec),
    read by ``load_start(out, run)``; ConfigError for a layer group the model lacks or parameters of another
    shape."""
    out, run, groups = config_mod.parse_from_run(spec)
    for g in groups:
        if g not in prog.groups:
            raise config_mod.ConfigError(f"Init group '{g}' does not exist in this model; its groups are "
                                         f"{', '.join(prog.groups)}.")
    params = load_start(out, run)
    shapes = prog.model.shapes
    want = {init_mod.path_str(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(shapes)[0]}
    have = {init_mod.path_str(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}
    if want != have:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))[0]
        raise config_mod.ConfigError(
            f"Run {run} of {out} has parameters of another shape ({diff}: {have.get(diff)} there, {want.get(diff)} "
            f"here); --init-from needs a model of the same shape and vocabulary.")
    return dataclasses.replace(prog, start_params=params, start_groups=groups or tuple(prog.groups))
