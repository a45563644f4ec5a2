"""The optimiser of one run, built from that run's (traced) hyperparameters.

The transformation is constructed *inside* the vmapped training step from per-run scalars, so one compiled
program serves every learning rate, weight decay and filter setting of a grid; the optimiser state's structure
depends only on static choices (optimiser name, which filters the scan uses, the largest filter window).

AdamW follows torch.optim.AdamW: decay multiplied by the learning rate, applied to every parameter, bias
correction, eps outside the square root. The schedule is the template's warmup: the update with 0-based index s
uses ``lr * min(s / warmup, 1)`` (so the first update has lr 0); warmup 0 means a constant lr.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax


def schedule(lr, warmup: int):
    if warmup == 0:
        return lambda count: lr
    return lambda count: lr * jnp.minimum(count / warmup, 1.0)


def make_tx(ocfg, hp, filters: tuple[str, ...], window_max: int) -> optax.GradientTransformation:
    """ocfg: OptimConfig (static parts); hp: this run's Hyper (traced scalars); filters: the filter kinds the
    scan uses (static); window_max: the largest moving-average window of the scan (static)."""
    from jgrok import grokfast

    sched = schedule(hp.lr, ocfg.warmup)
    opt = grokfast.make_optimizer(ocfg.name, sched, hp.wd, ocfg.b1, ocfg.b2, ocfg.eps, ocfg.momentum)
    if filters == ("none",):
        return opt
    filt = grokfast.grad_filter(hp.filter_kind, hp.filter_alpha, hp.filter_lambda, hp.filter_window,
                                kinds_present=filters, window_max=window_max)
    return optax.chain(filt, opt)

