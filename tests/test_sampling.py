"""Batch sampling modes: with replacement (the template), shuffled epochs, full batch."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jgrok import grid, train
from tests.conftest import tiny


def prog_with(sampling, batch):
    cfg = tiny()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, sampling=sampling, batch_size=batch))
    (prog, table, _), = grid.programs(cfg, grid.expand(cfg))
    return prog


def batches(prog, steps, order_seed=7):
    perm = jnp.arange(prog.n_rows, dtype=jnp.int32)[::-1]  # any fixed split
    n_train = jnp.int32(train.row_n_train(prog, {"fraction": prog.cfg.task.fraction}))  # traced where the program
    f = jax.jit(lambda s: train._batch(prog, perm, order_seed, s, n_train))  # has no static training-set size
    return [tuple(np.asarray(a) for a in f(s)) for s in range(steps)]


def test_epochs_visit_every_training_pair_once_per_epoch():
    prog = prog_with("epochs", 16)  # 60 training pairs: batches of 16, 16, 16, 12 (+4 zero-weight pads)
    n_train = train.row_n_train(prog, {"fraction": prog.cfg.task.fraction})
    train_ids = set(range(prog.n_rows - 1, prog.n_rows - 1 - n_train, -1))
    per_epoch = -(-n_train // 16)
    out = batches(prog, 2 * per_epoch)
    for e in range(2):
        seen = []
        for idx, w in out[e * per_epoch:(e + 1) * per_epoch]:
            seen += list(idx[w > 0])
        assert sorted(seen) == sorted(train_ids)
    assert [int(w.sum()) for _, w in out[:per_epoch]] == [16] * (per_epoch - 1) + [n_train - 16 * (per_epoch - 1)]
    assert [list(i) for i, _ in out[:per_epoch]] != [list(i) for i, _ in out[per_epoch:]]  # reshuffled


def test_replacement_draws_only_training_pairs_and_full_batch_is_the_split():
    prog = prog_with("replacement", 16)
    n_train = train.row_n_train(prog, {"fraction": prog.cfg.task.fraction})
    train_ids = set(range(prog.n_rows - 1, prog.n_rows - 1 - n_train, -1))
    draws = np.concatenate([i for i, _ in batches(prog, 50)])
    assert set(draws) <= train_ids and len(set(draws)) > 0.9 * len(train_ids)
    full = prog_with("full", 16)
    (idx, w), = batches(full, 1)
    assert sorted(idx) == sorted(train_ids) and (w == 1).all()
