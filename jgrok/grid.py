"""Expand a config's axes into the runs table, and the runs into programs and per-run arrays.

Every combination of the grid's axes is a run; run ids are row numbers of the product in a fixed axis order
(task outermost, model seed innermost), so run 17 of a scan is the same run whenever the same grid is expanded.

Seeds: ``seed`` is the model seed (initial parameters). A run's split seed (train/val split) and order seed
(batch order) are, in this order of precedence, the values of the ``split_seed`` / ``order_seed`` axes, the value
of the ``data_seed`` axis (which sets both), or the model seed itself: by default ``--seeds 0:64`` gives 64 fully
independent runs, as in the template where one seed sets everything.

Runs that share a task and an optimiser kind share one compiled program; every other axis is a per-run value.
"""

from __future__ import annotations

import itertools

import numpy as np

from jgrok import config as config_mod
from jgrok import init as init_mod
from jgrok.tasks import algorithmic
from jgrok.train import Hyper, Program

# product order: outermost first
AXIS_ORDER = ("task", "optimizer", "init", "init_scale", "wd", "lr", "filter", "filter_alpha", "filter_lambda",
              "filter_window", "data_seed", "split_seed", "order_seed", "seed")
# columns every runs table and summary.csv carry, whether they vary or not
COLUMNS = ("task", "seed", "split_seed", "order_seed", "lr", "wd", "init", "init_scale", "optimizer", "filter",
           "filter_alpha", "filter_lambda", "filter_window")
FILTERS = ("none", "ema", "ma")


def expand(cfg: config_mod.Config) -> list[dict]:
    """The runs table: one dict per run with every column of COLUMNS (plus ``run``, its id)."""
    axes = [a for a in AXIS_ORDER if a in cfg.grid]
    rows = []
    for values in itertools.product(*(cfg.grid[a] for a in axes)):
        v = dict(zip(axes, values))
        base = config_mod.base_for_axes(cfg, {a: x for a, x in v.items() if a not in config_mod.SEED_AXES})
        seed = v["seed"]
        data = v.get("data_seed", seed)
        row = {
            "run": len(rows),
            "task": base.task.name,
            "seed": seed,
            "split_seed": v.get("split_seed", data),
            "order_seed": v.get("order_seed", data),
            "lr": base.optim.lr,
            "wd": base.optim.wd,
            "init": base.init.scheme,
            "init_scale": base.init.scale,
            "optimizer": base.optim.name,
            "filter": base.optim.filter,
            "filter_alpha": base.optim.filter_alpha,
            "filter_lambda": base.optim.filter_lambda,
            "filter_window": base.optim.filter_window,
        }
        rows.append(row)
    return rows


def varying(rows: list[dict]) -> list[str]:
    """Columns whose value differs between runs."""
    return [c for c in COLUMNS if len({r[c] for r in rows}) > 1]


def parse_ids(text: str, n_runs: int) -> list[int]:
    """``--only`` syntax: comma list of ids and half-open ranges A:B, e.g. ``3,17,40:48``."""
    ids = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                a, b = part.split(":")
                lo, hi = int(a), int(b)
                if hi <= lo:
                    raise config_mod.ConfigError(f"Run range '{part}' is empty; write A:B with A < B.")
                if lo < 0 or hi > n_runs:
                    bad = lo if lo < 0 else hi - 1
                    raise config_mod.ConfigError(f"Run id {bad} does not exist; this grid has runs 0 to {n_runs - 1}.")
                ids.extend(range(lo, hi))
            else:
                ids.append(int(part))
        except ValueError:
            raise config_mod.ConfigError(f"Run ids must be whole numbers or ranges A:B, not '{part}'.") from None
    bad = [i for i in ids if not 0 <= i < n_runs]
    if bad:
        raise config_mod.ConfigError(f"Run id {bad[0]} does not exist; this grid has runs 0 to {n_runs - 1}.")
    return sorted(set(ids))


def programs(cfg: config_mod.Config, rows: list[dict]) -> list[tuple[Program, algorithmic.Table, list[dict]]]:
    """Group runs by their static values (task, optimiser) into programs, in run order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["optimizer"]), []).append(r)
    out = []
    for (task, opt), members in groups.items():
        pcfg = config_mod.base_for_axes(cfg, {"task": task, "optimizer": opt})
        table = algorithmic.build(task, pcfg.task)
        schemes = tuple(s for s in init_mod.SCHEMES if any(r["init"] == s for r in members))
        filters = tuple(f for f in FILTERS if any(r["filter"] == f for r in members))
        windows = [r["filter_window"] for r in members if r["filter"] == "ma"]
        prog = Program(cfg=pcfg, n_vocab=table.n_vocab, n_out=table.n_out, n_pairs=table.n_pairs,
                       n_train=table.n_train, schemes=schemes, filters=filters, window_max=max(windows, default=1))
        out.append((prog, table, members))
    return out


def hyper(prog: Program, rows: list[dict]) -> Hyper:
    """Per-run arrays ([len(rows)] each; seed_G and scheme_G are [len(rows), G]) for a list of runs."""
    G = len(prog.groups)
    col = lambda k, dt: np.array([r[k] for r in rows], dt)  # noqa: E731
    seeds = col("seed", np.int32)
    schemes = np.array([prog.schemes.index(r["init"]) for r in rows], np.int32)
    return Hyper(
        lr=col("lr", np.float32),
        wd=col("wd", np.float32),
        init_scale=col("init_scale", np.float32),
        filter_kind=np.array([prog.filters.index(r["filter"]) for r in rows], np.int32),
        filter_alpha=col("filter_alpha", np.float32),
        filter_lambda=col("filter_lambda", np.float32),
        filter_window=col("filter_window", np.int32),
        split_seed=col("split_seed", np.int32),
        order_seed=col("order_seed", np.int32),
        seed_G=np.repeat(seeds[:, None], G, axis=1),
        scheme_G=np.repeat(schemes[:, None], G, axis=1),
    )
