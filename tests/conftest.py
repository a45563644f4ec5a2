"""Shared tiny configs. Tests run on CPU in seconds; compiled programs are shared through jgrok.engine's cache,
so tests that use the same config and lane width compile once per session."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JGROK_RATES", "off")  # tests keep no speed cache in the home folder (jgrok.io.rates)

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


def train_runs(cfg, only=None, lanes=4):
    """Train the runs of a one-program config (or the ids in ``only``) in waves of ``lanes``; the ProgramResult."""
    from jgrok import engine, grid

    rows = grid.expand(cfg)
    if only is not None:
        rows = [r for r in rows if r["run"] in only]
    (prog, table, members), = grid.programs(cfg, rows)
    return engine.train_program(prog, table, members, lanes, progress=False)


def params_of(res, run_id):
    """The final parameters of one run of a ProgramResult."""
    import jax

    i = [r["run"] for r in res.rows].index(run_id)
    return jax.tree.map(lambda x: x[i], res.final_params)


@pytest.fixture
def tiny_cfg():
    return tiny()


def assert_gradients_match(grads, theirs: dict, rel: float = 2e-3) -> None:
    """Every tensor of jgrok's gradient pytree within ``rel`` of the largest entry of the reference's gradient of the
    same name (``theirs``: jgrok flat names -> numpy arrays, as the tests' PyTorch references give them)."""
    import jax
    import numpy as np

    from jgrok import init

    for p, gv in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = init.path_str(p)
        scale = np.abs(theirs[name]).max() + 1e-8
        assert np.abs(np.asarray(gv) - theirs[name]).max() <= rel * scale + 1e-7, name
