"""Re-training runs of a finished scan with changes (chaos perturbations, chimera initialisations).

Every re-trained row is a row of the scan's runs table (``jgrok.grid.expand`` of OUT/config.yaml) with extra keys
that ``jgrok.grid.hyper`` reads (``perturb``, ``group_seed``, ``group_scheme``), trained through the engine at the
scan's recorded lane width W, so an unchanged row reproduces its original run bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jgrok import config as config_mod
from jgrok.errors import ConfigError


def scan_config(out: Path) -> tuple[config_mod.Config, list[dict], int]:
    """(config, runs table of the scan (only its trained runs), lane width W)."""
    from jgrok import grid

    path = Path(out) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{out} has no config.yaml; pass the --out folder of a finished jgrok scan.")
    data = config_mod.load_yaml(path)
    only = data.pop("only", None)
    lanes = data.pop("lanes", None)
    cfg = config_mod.from_dict(data)
    rows = grid.expand(cfg)
    if only is not None:
        keep = set(grid.parse_ids(str(only), len(rows)))
        rows = [r for r in rows if r["run"] in keep]
    W = int(lanes or cfg.engine.wave_size or 1)
    return cfg, rows, W


def find_run(rows: list[dict], run: int, flag: str) -> dict:
    for r in rows:
        if r["run"] == run:
            return r
    raise ConfigError(f"{flag}: run {run} is not in this scan (runs {rows[0]['run']}..{rows[-1]['run']}).")


def train_rows(cfg: config_mod.Config, rows: list[dict], lanes: int, progress: bool = True, keep_params=False):
    """Train ``rows`` (each with a unique ``run``) and return (steps99[R], reached[R], results) in row order,
    steps99 as defined in jgrok.io.results (first eval step with val acc > 0.99; the budget if never)."""
    from jgrok import engine, grid
    from jgrok.io import results

    done = [engine.train_program(p, t, m, lanes, progress=progress, keep_params=keep_params)
            for p, t, m in grid.programs(cfg, rows)]
    pos = {r["run"]: i for i, r in enumerate(rows)}
    steps = np.zeros(len(rows), np.int64)
    reached = np.zeros(len(rows), bool)
    for d in done:
        s, ok = results.first_step_above(d.metrics["val_acc"], d.eval_step, cfg.train.steps)
        idx = [pos[r["run"]] for r in d.rows]
        steps[idx], reached[idx] = s, ok
    return steps, reached, done
