"""The optimiser of one run, built from that run's (traced) hyperparameters.

The transformation is constructed *inside* the vmapped training step from per-run scalars, so one compiled
program serves every learning rate, weight decay and filter setting of a grid; the optimiser state's structure
depends only on static choices (optimiser name, which filters the scan uses, the largest filter window).

AdamW follows torch.optim.AdamW: decay multiplied by the learning rate, applied to every parameter, bias
correction, eps outside the square root. The schedule is the template's warmup: the update with 0-based index s
uses ``lr * min(s / warmup, 1)`` (so the first update has lr 0); warmup 0 means a constant lr.

The chain of one run: Grokfast filter (if the scan uses one) -> ⊥Grad (if ``optim.orthogonal_grad``) ->
optimiser (weight decay and the update). ⊥Grad sits directly before the optimiser, after the filters, so what the
optimiser sees is orthogonal to the weights, as in Prieto et al.'s OrthoGrad wrapper (which projects whatever
gradient the wrapped optimiser is handed; weight decay, inside the optimiser, is not projected there either).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jgrok import grokfast
from jgrok.errors import ConfigError

OPTIMIZERS = ("adamw", "adam_l2", "sgd")

ORTHO_EPS = 1e-30  # added to w.w and to |g_perp|, as in the source's orthograd.py


def schedule(lr, warmup: int):
    if warmup == 0:
        return lambda count: lr
    return lambda count: lr * jnp.minimum(count / warmup, 1.0)


def make_tx(ocfg, hp, filters: tuple[str, ...], window_max: int) -> optax.GradientTransformation:
    """ocfg: OptimConfig (static parts); hp: this run's Hyper (traced scalars); filters: the filter kinds the
    scan uses (static); window_max: the largest moving-average window of the scan (static)."""
    sched = schedule(hp.lr, ocfg.warmup)
    opt = make_optimizer(ocfg.name, sched, hp.wd, ocfg.b1, ocfg.b2, ocfg.eps, ocfg.momentum)
    if ocfg.orthogonal_grad:  # some run of the program uses it; hp.orthogonal_grad says which
        opt = optax.chain(orthogonal_grad(True if hp.orthogonal_grad is None else hp.orthogonal_grad), opt)
    if filters == ("none",):
        return opt
    filt = grokfast.grad_filter(hp.filter_kind, hp.filter_alpha, hp.filter_lambda, hp.filter_window,
                                kinds_present=filters, window_max=window_max)
    return optax.chain(filt, opt)


def make_optimizer(
    name: str, lr_schedule: Callable | float, wd, b1=0.9, b2=0.98, eps=1e-8, momentum=0.0
) -> optax.GradientTransformation:
    """Optimiser matching a torch one; every number may be traced, `name` is static.

    'adamw':   torch AdamW: p -= lr*wd*p, then Adam with bias correction (eps outside the sqrt); on every param.
    'adam_l2': torch Adam(weight_decay=wd): g += wd*p, then Adam.
    'sgd':     torch SGD(momentum, weight_decay=wd, dampening=0): g += wd*p; b = momentum*b + g (b starts at 0, so
               the first b = g); p -= lr*b.
    lr_schedule maps the update count (0 for the first update) to the learning rate. Unused numbers are ignored
    (b1, b2, eps for 'sgd'; momentum for the Adam variants).
    """
    if name == "adamw":
        return optax.adamw(lr_schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd)
    if name == "adam_l2":
        return optax.chain(optax.add_decayed_weights(wd), optax.adam(lr_schedule, b1=b1, b2=b2, eps=eps))
    if name == "sgd":
        lr = lr_schedule if callable(lr_schedule) else optax.constant_schedule(lr_schedule)
        descent = optax.scale_by_schedule(lambda count: -lr(count))
        return optax.chain(optax.add_decayed_weights(wd), optax.trace(momentum), descent)
    raise ConfigError(f"Unknown optimizer {name!r}; use one of {OPTIMIZERS}.")


def global_norm(params):
    """sqrt of the sum of squares of every entry of every leaf (the run's weight_norm)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params)))


def rescale_to_norm(params, target_norm):
    """Omnigrok's constant norm: every parameter scaled by one factor so that the global L2 norm is target_norm
    (the run's initial norm, applied after each update with ``optim.constant_norm``). All-zero params give NaN."""
    return jax.tree.map(lambda p: p * (target_norm / global_norm(params)), params)


def orthogonalize(g, w):
    """⊥Grad of one tensor (Prieto et al. 2025, ``orthograd.py``): with w and g flattened,
    g_perp = g - (w.g / (w.w + 1e-30)) w, returned rescaled to the norm of g: g_perp * |g| / (|g_perp| + 1e-30)."""
    proj = jnp.vdot(w, g) / (jnp.vdot(w, w) + ORTHO_EPS)
    g_perp = g - proj * w
    scale = jnp.linalg.norm(g.ravel()) / (jnp.linalg.norm(g_perp.ravel()) + ORTHO_EPS)
    return (g_perp * scale).astype(g.dtype)


def orthogonal_grad(on) -> optax.GradientTransformation:
    """⊥Grad as an Optax transform: every gradient tensor replaced by :func:`orthogonalize` of it against its
    parameter tensor where ``on`` (a traced per-run bool) is true, passed through otherwise. Stateless; needs the
    parameters in ``update``."""

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("orthogonal_grad needs the parameters: call tx.update(grads, state, params).")
        out = jax.tree.map(lambda g, w: jnp.where(on, orthogonalize(g, w), g), grads, params)
        return out, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)

