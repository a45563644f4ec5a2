"""Shared tiny configs. Tests run on CPU in seconds; compiled programs are shared through jgrok.engine's cache,
so tests that use the same config and lane width compile once per session."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

from jgrok import config  # noqa: E402

TINY = {
    "task": {"name": "x_plus_y", "p": 11, "fraction": 0.5},
    "model": {"n_layers": 1, "d_model": 16, "n_heads": 2},
    "optim": {"warmup": 2, "lr": 3e-3},
    "train": {"steps": 12, "batch_size": 16, "eval_every": 4},
    "engine": {"chunk": 6},
}


def tiny(**grid):
    cfg = config.from_dict(TINY)
    return config.with_grid(cfg, **grid) if grid else cfg


TINY_ARGS = ["--task", "x_plus_y", "--set", "task.p=11", "--set", "model.n_layers=1", "--set", "model.d_model=16",
             "--set", "model.n_heads=2", "--set", "optim.warmup=2", "--set", "engine.chunk=6", "--lr", "3e-3",
             "--steps", "12", "--batch-size", "16", "--eval-every", "4", "--quiet"]


@pytest.fixture
def tiny_cfg():
    return tiny()
