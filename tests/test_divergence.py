"""A diverging run is marked and frozen; it poisons nothing: every other run is bit-identical to a scan without it."""

import jax
import numpy as np

from jgrok import config, engine, grid
from tests.conftest import tiny


def run(cfg, lanes=4):
    rows = grid.expand(cfg)
    (prog, table, members), = grid.programs(cfg, rows)
    return engine.train_program(prog, table, members, lanes, progress=False)


def test_lr_10_diverges_alone():
    cfg = config.set_path(tiny(seed=[0, 1], lr=[3e-3, 1e6]), "optim.warmup", "0")
    bad = run(cfg)
    lrs = [r["lr"] for r in bad.rows]
    d = bad.diverged_step
    assert all(d[i] == -1 for i, lr in enumerate(lrs) if lr < 1) and all(d[i] >= 0 for i, lr in enumerate(lrs) if lr > 1)
    for i, lr in enumerate(lrs):
        if lr > 1:  # frozen at its last finite parameters, curves end at the divergence
            assert all(np.isfinite(x[i]).all() for x in jax.tree.leaves(bad.final_params))
            assert np.isnan(bad.step_loss[i, d[i]:]).all()
    good = run(config.set_path(tiny(seed=[0, 1], lr=[3e-3]), "optim.warmup", "0"))
    keep = [i for i, lr in enumerate(lrs) if lr < 1]
    for a, b in zip(jax.tree.leaves(bad.final_params), jax.tree.leaves(good.final_params)):
        np.testing.assert_array_equal(a[keep], b)
    np.testing.assert_array_equal(bad.metrics["val_loss"][keep], good.metrics["val_loss"])
