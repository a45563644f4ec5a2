"""``jgrok.load(OUT, run=17)``: one run of a finished (or checkpointed) scan as an NNX model, for a notebook."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jgrok import config as config_mod
from jgrok.errors import ConfigError


def load(out, run: int):
    """(model, config, step): the NNX model of run ``run`` with the parameters of the newest checkpoint (the final
    parameters of a finished scan), that run's single-run config, and the number of updates behind them."""
    from jgrok import engine

    prog, params, single, step = _restore(out, run)
    graphdef, _ = prog.model
    return nnx.merge(graphdef, params), single, step


def final_params(out, run: int):
    """The parameters (a pytree of numpy arrays) of run ``run`` in its newest checkpoint; what ``--init-from
    OUT:RUN`` starts from."""
    return jax.tree.map(np.asarray, _restore(out, run)[1])


def _restore(out, run: int):
    from jgrok import engine, grid
    from jgrok.io import checkpoint

    out = Path(out)
    if not (out / "config.yaml").is_file():
        raise ConfigError(f"{out} is not a jgrok results folder (no config.yaml).")
    data = config_mod.load_yaml(out / "config.yaml")
    only = data.pop("only", None)
    data.pop("process", None)
    cfg = config_mod.from_dict(data)
    rows = grid.expand(cfg)
    if only is not None:
        keep = set(grid.parse_ids(str(only), len(rows)))
        rows = [r for r in rows if r["run"] in keep]
    for i, (prog, table, members) in enumerate(grid.programs(cfg, rows)):
        ids = [r["run"] for r in members]
        if run not in ids:
            continue
        init_fn, _ = prog.compiled(1)
        hp = grid.hyper(prog, members[:1])
        abstract = jax.eval_shape(init_fn, hp)
        like = [np.zeros((len(members),) + x.shape[1:], x.dtype) for x in jax.tree.leaves(abstract)]
        host_like = {"run": np.array(ids, np.int64)}
        restored = checkpoint.restore(checkpoint.manager(out, i), _like(like, host_like, prog, len(members)))
        if restored is None:
            raise ConfigError(f"{out} has no checkpoint for run {run} yet.")
        step, tree = restored
        leaves = [tree["state"][f"leaf_{j:04d}"][ids.index(run)] for j in range(len(like))]
        state = jax.tree.unflatten(jax.tree.structure(abstract), leaves)
        row = members[ids.index(run)]
        single = config_mod.base_for_axes(config_mod.variant_config(cfg, row.get("variant")),
                                          {a: row[a] for a in ("task", "optimizer", "init", "init_scale", "wd", "lr",
                                                               "filter", "orthogonal_grad")})
        return prog, state.params, single, step
    raise ConfigError(f"Run {run} is not part of the scan in {out}.")


def _like(leaves, host, prog, R):
    from jgrok import engine, train
    from jgrok.io import checkpoint

    total = prog.cfg.train.steps
    E = len(engine.eval_steps(total, prog.cfg.train.eval_every))
    h = {f"eval/{k}": np.zeros((R, E) + shape, np.float32) for k, shape in train.eval_shapes(prog).items()}
    h["step_loss"] = np.zeros((R, total), np.float32)
    h["step_acc"] = np.zeros((R, total), np.float32)
    h.update(host)
    return checkpoint.pack(leaves, h, 0)
