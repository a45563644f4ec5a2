"""Grokfast gradient filters, as Optax pieces (the optimisers they feed live in jgrok.optim).

Every run-specific number (alpha, lambda, window, filter kind) may be a traced scalar, so one compiled program
serves every value under `jax.vmap`. Only static Python values (the tuple `kinds_present`, `window_max`) change
the opt-state structure.

Grokfast (Lee et al. 2024) amplifies the slow part of the gradient before the optimiser sees it:
  EMA filter:  ema_t = alpha * ema_{t-1} + (1 - alpha) * g_t  (ema_1 = g_1),   g_t <- g_t + lamb * ema_t
  MA filter:   avg_t = mean of the last `window` gradients g_{t-window+1..t},  g_t <- g_t + lamb * avg_t,
               applied only from the step where `window` gradients have been seen (before that g_t passes).

Typical use, inside the vmapped step:
  tx = optax.chain(grad_filter(kind, alpha, lamb, window, kinds_present=('none', 'ema'), window_max=1),
                   jgrok.optim.make_optimizer('adamw', lr_schedule, wd))
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jgrok.errors import ConfigError

KINDS = ("none", "ema", "ma")


class EmaState(NamedTuple):
    count: jax.Array  # int32 scalar: updates seen (saturating)
    ema: Any  # pytree like params


class MaState(NamedTuple):
    count: jax.Array  # int32 scalar: updates seen
    buf: Any  # pytree like params with a leading window_max axis: the ring buffer of past gradients


def grokfast_ema(alpha, lamb) -> optax.GradientTransformation:
    """EMA filter: ema = alpha*ema + (1-alpha)*g (seeded with the first g), then g <- g + lamb*ema.

    State: one copy of the parameters (the ema) plus a step count.
    """

    def init(params):
        return EmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        first = state.count == 0
        ema = jax.tree.map(
            lambda e, g: jnp.where(first, g, alpha * e + (1 - alpha) * g).astype(g.dtype), state.ema, grads
        )
        out = jax.tree.map(lambda g, e: (g + lamb * e).astype(g.dtype), grads, ema)
        return out, EmaState(optax.safe_increment(state.count), ema)

    return optax.GradientTransformation(init, update)


def grokfast_ma(window, lamb, window_max: int) -> optax.GradientTransformation:
    """Moving-average filter over the last `window` gradients (traced int, 1 <= window <= window_max).

    Gradient t (0-based count) is written to ring slot t % window; slots >= window stay zero, so the mean of the
    last `window` gradients is sum(buffer) / window. Memory: the buffer holds window_max copies of the
    parameters per run (window_max * n_params * 4 bytes in float32; e.g. 100 slots of a 0.4M-parameter model =
    160 MB per run), and every step reads all of it.
    """

    def init(params):
        buf = jax.tree.map(lambda p: jnp.zeros((window_max,) + p.shape, p.dtype), params)
        return MaState(jnp.zeros([], jnp.int32), buf)

    def update(grads, state, params=None):
        del params
        slot = state.count % window
        full = state.count + 1 >= window
        buf = jax.tree.map(lambda b, g: b.at[slot].set(g), state.buf, grads)
        out = jax.tree.map(
            lambda g, b: jnp.where(full, g + lamb * (b.sum(0) / window), g).astype(g.dtype), grads, buf
        )
        return out, MaState(optax.safe_increment(state.count), buf)

    return optax.GradientTransformation(init, update)


def check_kinds_present(kinds_present, window_max=None) -> None:
    """Raise ConfigError unless kinds_present is a non-empty tuple of distinct KINDS (and window_max fits 'ma')."""
    if not isinstance(kinds_present, tuple) or not kinds_present or len(set(kinds_present)) != len(kinds_present):
        raise ConfigError(f"kinds_present must be a non-empty tuple of distinct filter kinds, got {kinds_present!r}.")
    for k in kinds_present:
        if k not in KINDS:
            raise ConfigError(f"Unknown gradient filter {k!r}; use one of {KINDS}.")
    if "ma" in kinds_present and not (isinstance(window_max, int) and window_max >= 1):
        raise ConfigError(f"window_max must be a positive int when 'ma' is used, got {window_max!r}.")


def kind_index(kind: str, kinds_present: tuple) -> int:
    """The int that selects `kind` in grad_filter (its position in kinds_present)."""
    if kind not in kinds_present:
        raise ConfigError(f"Gradient filter {kind!r} is not in kinds_present {kinds_present}.")
    return kinds_present.index(kind)


def grad_filter(kind, alpha, lamb, window, *, kinds_present: tuple, window_max) -> optax.GradientTransformation:
    """Per-run choice of filter in one program: `kind` (traced int) indexes the static tuple kinds_present.

    Only kinds in kinds_present get state ({'ema': EmaState, 'ma': MaState}; 'none' has none), so the state
    structure depends only on kinds_present and window_max. Every present filter is computed each step and the
    run's output is selected with jnp.where; a filter's state only advances in runs that use it. The window of runs
    that do not use 'ma' is unused (replaced by 1 internally). A `kind` outside range(len(kinds_present))
    behaves like 'none'.
    """
    check_kinds_present(kinds_present, window_max)
    filters = {}
    if "ema" in kinds_present:
        filters["ema"] = grokfast_ema(alpha, lamb)
    if "ma" in kinds_present:
        uses_ma = kind == kinds_present.index("ma")
        filters["ma"] = grokfast_ma(jnp.where(uses_ma, window, 1), lamb, window_max)

    def init(params):
        return {name: f.init(params) for name, f in filters.items()}

    def update(grads, state, params=None):
        out, new_state = grads, {}
        for name, f in filters.items():
            on = kind == kinds_present.index(name)
            g_f, s_f = f.update(grads, state[name], params)
            out = jax.tree.map(lambda a, b: jnp.where(on, b, a), out, g_f)
            new_state[name] = jax.tree.map(lambda old, new: jnp.where(on, new, old), state[name], s_f)
        return out, new_state

    return optax.GradientTransformation(init, update)


def check_filter_settings(kind, alpha, lamb, window, *, window_max=None) -> None:
    """Raise ConfigError for an unknown kind, alpha outside [0, 1), window < 1 (or > window_max), lamb < 0.

    alpha, lamb and window may be scalars or arrays (every entry is checked).
    """
    if kind not in KINDS:
        raise ConfigError(f"Unknown gradient filter {kind!r}; use one of {KINDS}.")
    alpha, lamb, window = np.asarray(alpha), np.asarray(lamb), np.asarray(window)
    if not np.all((alpha >= 0) & (alpha < 1)):
        raise ConfigError(f"Grokfast alpha must be in [0, 1), got {alpha}.")
    if not np.all(lamb >= 0):
        raise ConfigError(f"Grokfast lambda must be >= 0, got {lamb}.")
    if not np.all(np.round(window) == window) or not np.all(window >= 1):
        raise ConfigError(f"Grokfast window must be an integer >= 1, got {window}.")
    if window_max is not None and not np.all(window <= window_max):
        raise ConfigError(f"Grokfast window {window} exceeds window_max={window_max}; raise window_max.")
