"""Re-training runs of a finished scan with changes (chaos perturbations, chimera initialisations).

Every re-trained row is a row of the scan's runs table (``jgrok.open_scan(OUT).runs``) with extra keys
that ``jgrok.grid.hyper`` reads (``perturb``, ``group_seed``, ``group_scheme``), trained through the engine at the
scan's recorded lane width W, so an unchanged row reproduces its original run bit for bit.
"""

from __future__ import annotations

import numpy as np

from jgrok import config as config_mod
from jgrok import engine, results_folder
from jgrok.errors import ConfigError
from jgrok.io import results


def find_run(rows: list[dict], run: int, flag: str) -> dict:
    for r in rows:
        if r["run"] == run:
            return r
    raise ConfigError(f"{flag}: run {run} is not in this scan (runs {rows[0]['run']}..{rows[-1]['run']}).")


def train_rows(cfg: config_mod.Config, rows: list[dict], lanes: int, progress: bool = True, keep_params=False):
    """Train ``rows`` (each with a unique ``run``) and return (steps99[R], reached[R], results) in row order,
    steps99 as defined in jgrok.io.results (first eval step with val acc > 0.99; the budget if never)."""
    done = [engine.train_program(p, t, m, lanes, progress=progress, keep_params=keep_params)
            for p, t, m in results_folder.programs(cfg, rows)]
    pos = {r["run"]: i for i, r in enumerate(rows)}
    steps = np.zeros(len(rows), np.int64)
    reached = np.zeros(len(rows), bool)
    for d in done:
        s, ok = results.first_step_above(d.metrics["val_acc"], d.eval_step, cfg.train.steps)
        idx = [pos[r["run"]] for r in d.rows]
        steps[idx], reached[idx] = s, ok
    return steps, reached, done
