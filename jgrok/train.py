"""Training as pure functions: where the "many runs" idea lives.

A *program* is everything static about a group of runs (task table, model, optimiser kind, sampling, the
schemes and filters the scan uses). Everything that differs between runs is a per-run array in ``Hyper``, and
the state of a run is a ``RunState``. The functions here work on one run; :func:`make_chunk` vmaps them over a
wave of W lanes and scans K updates, evaluating in between, as one jitted program.

Randomness, split by purpose so that nothing consumes another purpose's keys (evaluation uses none):
  init   ``fold_in(fold_in(key(seed_g), 0), leaf)``   per tensor, see jgrok.init
  split  ``fold_in(key(split_seed), 1)``             permutation of all pairs; first n_train are training pairs
  order  ``fold_in(fold_in(key(order_seed), 2), s)`` the batch of update s (or of epoch s, for shuffled epochs)

Definitions of what a chunk reports, per lane:
  loss, acc        the training loss (``train.loss``, see jgrok.losses) and the accuracy on the answer of the training
                   batch at each update, before the update
  val_loss/acc     mean over the full validation split, after the update, at eval steps
  train_full_*     the same on the full training split (``train.eval_train``)
  weight_norm      global L2 norm of all parameters; ``norm/<group>`` the L2 norm of one layer group
  measures         the progress measures of ``train.measures`` (logit_max, fourier_gini, ...): see jgrok.measures
The program's task kind (``Program.kind``, jgrok.tasks.kinds) says how a run splits its rows, what its loss is
and what an evaluation sums: a regression's loss is the mean squared error of the predicted log2 h (no accuracy:
``acc`` is NaN and there is no ``val_acc``); sampling, optimiser, divergence and everything else are shared.
A run whose loss or parameters become non-finite is *diverged*: from that update on its state is frozen (the
non-finite update is not applied) and ``diverged_step`` holds the 0-based index of that update.
A run with a stop rule (``train.stop_when``, e.g. ``val_acc>0.99``, and ``train.patience`` K) is *stopped* at the
K-th consecutive evaluation that meets the rule: from then on its state is frozen and ``stopped_step`` holds the
number of updates it did (the 1-based step of that evaluation). The rule is checked inside the compiled chunk at
every evaluation, so where a run stops does not depend on chunk length, lanes or compaction.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jgrok import axes, config
from jgrok import init as init_mod
from jgrok import measures as measures_mod
from jgrok import models, optim
from jgrok.errors import ConfigError
from jgrok.tasks import algorithmic, kinds

PURPOSE_SPLIT, PURPOSE_ORDER = 1, 2
PRECISION = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "default", "fp64": "highest"}


# train.Hyper: a run's per-run values (each a scalar for one run; a [W] array for a wave). Its fields are the
# axes of jgrok.axes.hyper(), named as the axes (lr, wd, init_scale, filter_alpha, filter_lambda, filter_window,
# split_seed, order_seed, orthogonal_grad, ...), plus the per-run values below, which encode an axis for the
# program (filter, init, seed) or are not an axis at all (perturb). orthogonal_grad (bool: this run projects its
# gradients orthogonally to its weights, optim.orthogonal_grad and jgrok.optim) may be None: every run of the
# program does.
HYPER_EXTRA = {  # field: (dtype, per layer group)
    "filter_kind": (np.int32, False),  # the filter axis: index into Program.filters
    "seed_G": (np.int32, True),  # [G] model seed of each layer group (the seed axis, init.groups overrides)
    "scheme_G": (np.int32, True),  # [G] index into Program.schemes per layer group (the init axis, overrides)
    "perturb": (np.int32, False),  # chaos floor: 0 = none, k > 0 = one-ulp noise k (jgrok.init.perturb_ulp)
    # the fraction axis: the run's training-set size floor(N x fraction) (jgrok.tasks.algorithmic.train_size); read
    # only by programs whose runs each have their own (:func:`fraction_traced`; the others: Program.n_train)
    "n_train": (np.int32, False),
}
_HYPER_OPTIONAL = ("orthogonal_grad", "n_train")  # fields that default to None
Hyper = collections.namedtuple(
    "Hyper", [*(k for k in HYPER_EXTRA if k not in _HYPER_OPTIONAL),
              *(a.name for a in axes.hyper() if a.name not in _HYPER_OPTIONAL), *_HYPER_OPTIONAL],
    defaults=(None,) * len(_HYPER_OPTIONAL))
Hyper.__doc__ = "Per-run values (each a scalar for one run; a [W] array for a wave): see the comment above it."


def hyper_shapes(W: int, G: int) -> Hyper:
    """Shapes and dtypes of a wave's Hyper at W lanes, for a model of G layer groups."""
    extra = {k: jax.ShapeDtypeStruct((W, G) if grouped else (W,), dt) for k, (dt, grouped) in HYPER_EXTRA.items()}
    return Hyper(**extra, **{a.name: jax.ShapeDtypeStruct((W,), a.hyper) for a in axes.hyper()})


class RunState(NamedTuple):
    params: Any
    opt_state: Any
    perm: Any  # int32[N]: the run's row order (jgrok.tasks.kinds: TaskKind.split)
    init_norm: Any  # global norm at init (constant-norm training)
    alive: Any  # bool: still updating (neither diverged nor stopped)
    diverged_step: Any  # int32, -1 if never
    stop_count: Any  # int32: consecutive evaluations that met the stop rule
    stopped_step: Any  # int32: updates done when the stop rule fired, -1 if never


def static_cfg(cfg):
    """The part of a program's config that its compiled functions depend on: the config with the traced values
    (``train.steps``, ``train.eval_every``: arguments of the chunk), the summary-only ``train.thresholds``, the
    per-run init-group overrides (``init.groups``: seed_G, scheme_G in Hyper), the training fraction (a program
    depends on it through ``Program.n_train`` alone) and the engine's settings (the chunk length K is an argument
    of :meth:`Program.compiled`) set to fixed values."""
    return dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, steps=0, eval_every=0, thresholds=""),
        task=dataclasses.replace(cfg.task, fraction=0.0),
        init=dataclasses.replace(cfg.init, groups=""), engine=config.EngineConfig(), grid={}, variants={})


@dataclasses.dataclass(frozen=True)
class Program:
    """The static part of a group of runs, and the handle on its model and compiled functions.

    Two programs are equal (and hash alike) exactly when their compiled functions are the same: the comparison
    uses ``key`` (the config without its traced values, see :func:`static_cfg`) and the sizes below, never ``cfg``
    itself, so a program is its own cache key (:meth:`compiled`)."""

    cfg: Any = dataclasses.field(compare=False)  # jgrok.config.Config with this group's static values filled in
    n_inputs: int  # the model's input width: the vocabulary of a token task, the features of a dataset
    n_out: int
    n_rows: int  # rows of the task table (train and validation)
    n_train: int | None  # training rows; None where every run has its own (Hyper.n_train, :func:`fraction_traced`)
    schemes: tuple[str, ...]
    filters: tuple[str, ...]
    window_max: int
    # init.from_run: parameters (numpy pytree) that replace the initial values of start_groups in every run (the
    # config's init.from_run names them, and programs compare that)
    start_params: Any = dataclasses.field(default=None, compare=False, repr=False)
    start_groups: tuple[str, ...] = ()
    kind: kinds.TaskKind = kinds.CLASSIFY  # the task kind: split, loss, evaluation, summary (jgrok.tasks.kinds)
    n_groups: int = 1  # regression: code groups; rows come in n_groups blocks of n_rows / n_groups
    key: Any = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "key", _freeze(static_cfg(self.cfg)))

    @property
    def model(self) -> models.ModelSpec:
        """This program's model without values: ``graphdef`` and ``shapes`` (its parameters' shapes and dtypes)."""
        return _model(self.cfg.model, self.n_inputs, self.n_out)

    def compiled(self, K: int):
        """(init, chunk): jit(vmap(init_run)) and the jitted chunk of K updates (:func:`make_chunk`), shared by
        every equal program. On several devices the same program runs on each of them (one wave per device,
        placed by its inputs), never an SPMD-partitioned one: XLA compiles partitioned programs through other passes
        (measured on CPU: other fusions of the Adam update, results 1 ulp apart), which would make a run's numbers
        depend on the device count."""
        return _compiled(self, K)

    @property
    def eval_keys(self) -> list[str]:
        """Names of the values every evaluation reports, in order (see the module's definitions)."""
        return eval_keys(self)

    @property
    def groups(self) -> list[str]:
        """The model's layer groups (init.groups, norm/<group>)."""
        return init_mod.groups(self.model.shapes)

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(x.shape) for x in jax.tree.leaves(self.model.shapes)))


def _freeze(x):
    """A hashable copy of a config: dataclasses and dicts become tuples of (name, value)."""
    if dataclasses.is_dataclass(x):
        return (type(x).__name__,) + tuple((f.name, _freeze(getattr(x, f.name))) for f in dataclasses.fields(x))
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


def apply(prog: Program, params, tokens_BxT, all_positions: bool = False, wide: bool = False):
    """Logits at the last position ``[B, n_out]``, or at every position ``[B, T, n_out]`` with all_positions.
    ``wide``: traced for a wave of W > 1 lanes (the transformer then computes its attention products otherwise,
    see jgrok.models.transformer.SMALL_T)."""
    graphdef, _ = prog.model
    if prog.cfg.train.precision == "bf16":
        params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    model = nnx.merge(graphdef, params)
    logits = model(tokens_BxT, all_positions=True, wide=wide) if all_positions else model(tokens_BxT, wide=wide)
    return logits if prog.cfg.train.precision == "fp64" else logits.astype(jnp.float32)


def needs_x64(cfg) -> bool:
    """True when a program computes in float64 (train.precision fp64 or train.softmax_precision 64): it is traced
    and run with JAX's x64 mode on (see :func:`make_init`); every other program runs without it."""
    return cfg.train.precision == "fp64" or cfg.train.softmax_precision == 64


class _X64:
    """A jitted function that is traced, lowered and called with JAX's x64 mode on, for one program only."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        with jax.enable_x64(True):
            return self.fn(*args)

    def lower(self, *args):
        with jax.enable_x64(True):
            return self.fn.lower(*args)


def _x64_if_needed(prog: Program, fn):
    return _X64(fn) if needs_x64(prog.cfg) else fn


@functools.lru_cache(maxsize=64)
def _model(mcfg, n_inputs: int, n_out: int) -> models.ModelSpec:
    return models.abstract(mcfg, n_inputs, n_out)


@functools.lru_cache(maxsize=32)
def _compiled(prog: Program, K: int):
    return make_init(prog), make_chunk(prog, K)


def clear_caches() -> None:
    """Forget every cached model and compiled program: the next :meth:`Program.compiled` traces and compiles."""
    _model.cache_clear()
    _compiled.cache_clear()


def group_norms(prog: Program, params) -> dict:
    by_group: dict[str, Any] = {}
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    groups = init_mod.leaf_groups(prog.model.shapes)
    for path, p in flat:
        g = groups[init_mod.path_str(path)]
        by_group[g] = by_group.get(g, 0.0) + jnp.sum(jnp.square(p))
    return {f"norm/{g}": jnp.sqrt(by_group[g]) for g in prog.groups}


def init_run(prog: Program, hp: Hyper) -> RunState:
    _, shapes = prog.model
    params = init_mod.init_params(shapes, hp.seed_G, hp.scheme_G, hp.init_scale, prog.schemes)
    if prog.cfg.train.precision == "fp64":  # drawn in float32 (the same values), trained in float64
        params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
    if prog.start_params is not None:  # trained values, taken as they are (init_scale does not apply to them)
        groups = init_mod.leaf_groups(shapes)
        params = jax.tree_util.tree_map_with_path(
            lambda path, p, s: jnp.asarray(s, p.dtype) if groups[init_mod.path_str(path)] in prog.start_groups else p,
            params, prog.start_params)
    params = init_mod.perturb_ulp(params, hp.perturb)
    tx = optim.make_tx(prog.cfg.optim, hp, prog.filters, prog.window_max)
    split_key = jax.random.fold_in(jax.random.key(hp.split_seed), PURPOSE_SPLIT)
    perm = prog.kind.split(prog, split_key)
    return RunState(params, tx.init(params), perm, optim.global_norm(params), jnp.array(True),
                    jnp.array(-1, jnp.int32), jnp.array(0, jnp.int32), jnp.array(-1, jnp.int32))


def fraction_traced(kind, cfg) -> bool:
    """True when the runs of a program of task kind ``kind`` and config ``cfg`` each have their own training-set
    size (``Hyper.n_train``: the fraction axis as a traced value, every fraction in one program): a classification
    sampled with replacement or in shuffled epochs. A full-batch program (its batch is the whole training set, an
    array of n_train rows; padding it to the table would change every run's numbers) and a regression (its split
    is per code group) have one static n_train: there the fraction splits programs (jgrok.grid.programs)."""
    return kind.traced_fraction and cfg.train.sampling != "full"


def run_n_train(prog: Program, hp: Hyper):
    """A run's training-set size: the program's where it has one, else the run's own (traced) ``hp.n_train``."""
    return prog.n_train if prog.n_train is not None else hp.n_train


def row_n_train(prog: Program, row: dict) -> int:
    """The training-set size of a run (a runs-table row, jgrok.grid.expand) of program ``prog``: the program's
    where it has one, else floor(N x the run's fraction) (jgrok.tasks.algorithmic.train_size)."""
    return prog.n_train if prog.n_train is not None else algorithmic.train_size(prog.n_rows, row["fraction"])


def round_thresholds(N: int) -> tuple[int, ...]:
    """The smallest n (1 <= n <= N) that jax.random.permutation(key, n) sorts in 1, 2, ... rounds: it sorts
    ceil(3 ln(max(1, n)) / ln(2^32 - 1)) times (jax._src.random's ``_shuffle``, after tjablin's heuristic)."""
    rounds = lambda n: int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))  # noqa: E731
    out = []
    for r in range(1, rounds(N) + 1):
        lo, hi = 1, N
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if rounds(mid) >= r else (mid + 1, hi)
        out.append(lo)
    return tuple(out)


def prefix_permutation(key, n, N: int):
    """int32[N]: ``jax.random.permutation(key, n)`` for a traced ``n <= N``, then n, ..., N - 1 in order.

    jax's permutation sorts arange(n) by fresh random 32-bit keys ``random.bits(subkey, (n,))`` (a stable sort),
    in a number of rounds that depends on n (:func:`round_thresholds`). With the partitionable threefry (jax's
    default) ``random.bits(k, (N,))[:n]`` equals ``random.bits(k, (n,))``, so sorting arange(N) by (element >= n,
    bits for elements below n, the element itself for the others) in the same rounds, each applied only where n takes it, gives jax's permutation of n in the first n
    entries (tests/test_fraction.py checks it against jax.random.permutation)."""
    x = jnp.arange(N, dtype=jnp.int32)
    for threshold in round_thresholds(N):
        key, subkey = jax.random.split(key)
        bits = jax.random.bits(subkey, (N,), jnp.uint32)
        pad = x >= n  # n, ..., N - 1 sort last, in their order
        _, _, shuffled = jax.lax.sort((pad, jnp.where(pad, x.astype(jnp.uint32), bits), x), num_keys=2,
                                      is_stable=True)
        x = jnp.where(n >= threshold, shuffled, x)
    return x


def _batch(prog: Program, perm, order_seed, step, n_train=None):
    """Example indices and weights of the training batch of update ``step``; ``n_train``: the run's own
    training-set size (traced; read only where the program has none, see :func:`run_n_train`)."""
    tr = prog.cfg.train
    traced = prog.n_train is None
    n_train, B = (n_train if traced else prog.n_train), tr.batch_size
    key = jax.random.fold_in(jax.random.key(order_seed), PURPOSE_ORDER)
    if tr.sampling == "full":  # never traced (fraction_traced)
        return perm[:n_train], jnp.ones(n_train, jnp.float32)
    if tr.sampling == "replacement":  # the template: each example drawn uniformly from the training pairs
        pos = jax.random.randint(jax.random.fold_in(key, step), (B,), 0, n_train)
        return perm[pos], jnp.ones(B, jnp.float32)
    # shuffled epochs of ceil(n_train / B) batches; the last batch of an epoch is the remainder (weights 0 pad it).
    # Each run's epoch is its own: ceil(n_train / B) updates over its own training set.
    per_epoch = -(-n_train // B)
    epoch, j = step // per_epoch, step % per_epoch
    epoch_key = jax.random.fold_in(key, epoch)
    if traced:
        order = prefix_permutation(epoch_key, n_train, prog.n_rows)
    else:
        order = jax.random.permutation(epoch_key, n_train)
    pos = j * B + jnp.arange(B)
    valid = pos < n_train
    return perm[order[jnp.minimum(pos, n_train - 1)]], valid.astype(jnp.float32)


def train_step(prog: Program, data, state: RunState, hp: Hyper, step, wide: bool = False):
    """One update of one run. ``step`` is the 0-based update index (the same for every lane); ``wide``: traced
    for a wave of W > 1 lanes (see :func:`apply`)."""
    inputs, targets = data
    idx, w = _batch(prog, state.perm, hp.order_seed, step, hp.n_train)
    x, y = inputs[idx], targets[idx]

    def loss_fn(params):
        return prog.kind.loss(prog, lambda x, all_positions=False: apply(prog, params, x, all_positions, wide), x, y,
                              w)

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    tx = optim.make_tx(prog.cfg.optim, hp, prog.filters, prog.window_max)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    if prog.cfg.optim.constant_norm:  # Omnigrok: back onto the sphere of the initial norm
        params = optim.rescale_to_norm(params, state.init_norm)
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
    apply_update = state.alive & finite
    new = state._replace(params=params, opt_state=opt_state)
    new = jax.tree.map(lambda n, o: jnp.where(apply_update, n, o), new, state)
    diverged_step = jnp.where(state.alive & ~finite, step, state.diverged_step).astype(jnp.int32)
    new = new._replace(alive=apply_update, diverged_step=diverged_step)
    return new, (loss.astype(jnp.float32), acc)


def _split_metrics(prog: Program, params, perm, start: int, count: int, data, wide: bool):
    """Mean loss and accuracy over examples perm[start : start + count], in slices of train.eval_batch (the sums
    are the task kind's; without accuracy, an accuracy of 0 that the caller drops).

    A traced ``count`` (a run's own split size) is summed by :func:`_traced_split_sums`."""
    if not isinstance(count, int):  # XLA computes a static count's correct / count as correct * (1 / count)
        nll, correct = _traced_split_sums(prog, params, perm, start, count, data, wide)  # (measured): so here
        return nll / count, correct * (jnp.float32(1) / count.astype(jnp.float32))
    size = min(prog.cfg.train.eval_batch, count)
    n_slices = -(-count // size)
    pos = start + jnp.arange(n_slices * size)
    w = (pos < start + count).astype(jnp.float32).reshape(n_slices, size)
    idx = perm[jnp.minimum(pos, start + count - 1)].reshape(n_slices, size)

    def body(carry, xs):
        loss, correct = _slice_sums(prog, params, data, *xs, wide)
        return (carry[0] + loss, carry[1] + correct), None

    (nll, correct), _ = jax.lax.scan(body, (jnp.float32(0), jnp.float32(0)), (idx, w))
    return nll / count, correct / count


def _slice_sums(prog: Program, params, data, idx, w, wide: bool):
    """(loss sum, correct count) of one weighted slice of examples ``idx``; a kind without accuracy counts 0."""
    inputs, targets = data
    loss, correct = prog.kind.eval_sums(prog, apply(prog, params, inputs[idx], wide=wide), targets[idx], w)
    return loss, jnp.float32(0) if correct is None else correct


def _traced_split_sums(prog: Program, params, perm, start, count, data, wide: bool):
    """(loss sum, correct count) over perm[start : start + count] for a traced ``count``: slices of the size a
    static split of the whole table would have, min(eval_batch, n_rows) (so nothing static depends on the other
    runs of a scan), summed in order by a loop with a traced trip count, ceil(count / size). A split of at least
    eval_batch examples gets exactly the static slices and sums; a smaller one is one slice with zero-weighted
    padding (the same correct count; a loss sum that may differ in its last bits from the static one's)."""
    size = min(prog.cfg.train.eval_batch, prog.n_rows)
    n_slices = (count + size - 1) // size

    def body(carry):
        k, nll, correct = carry
        pos = start + k * size + jnp.arange(size)
        w = (pos < start + count).astype(jnp.float32)
        i = perm[jnp.minimum(pos, start + count - 1)]
        loss, right = _slice_sums(prog, params, data, i, w, wide)
        return k + 1, nll + loss, correct + right

    _, nll, correct = jax.lax.while_loop(lambda c: c[0] < n_slices, body,
                                         (jnp.int32(0), jnp.float32(0), jnp.float32(0)))
    return nll, correct


def evaluate(prog: Program, data, state: RunState, wide: bool = False, n_train=None) -> dict:
    """Metrics of one run's current parameters; uses no randomness. ``wide``: as for :func:`train_step`;
    ``n_train``: the run's own training-set size, read where the program has none (:func:`run_n_train`)."""
    n_train = prog.n_train if prog.n_train is not None else n_train
    n_val = prog.n_rows - n_train
    out = {}
    out["val_loss"], out["val_acc"] = _split_metrics(prog, state.params, state.perm, n_train, n_val, data, wide)
    if prog.cfg.train.eval_train:
        out["train_full_loss"], out["train_full_acc"] = _split_metrics(
            prog, state.params, state.perm, 0, n_train, data, wide)
    if not prog.kind.has_accuracy:
        out = {k: v for k, v in out.items() if not k.endswith("_acc")}
    out["weight_norm"] = optim.global_norm(state.params)
    out.update(group_norms(prog, state.params))
    out.update(measures_mod.evaluate(prog, lambda p, x: apply(prog, p, x, wide=wide), state.params, state.perm, data,
                                     n_train))
    return out


def eval_keys(prog: Program) -> list[str]:
    keys = ["val_loss", "val_acc"]
    if prog.cfg.train.eval_train:
        keys += ["train_full_loss", "train_full_acc"]
    if not prog.kind.has_accuracy:
        keys = [k for k in keys if not k.endswith("_acc")]
    return keys + ["weight_norm"] + [f"norm/{g}" for g in prog.groups] + measures_mod.keys(prog)


def eval_shapes(prog: Program) -> dict[str, tuple[int, ...]]:
    """Trailing shape of every evaluation key (after runs and evaluations): () but for a measure's spectrum."""
    return {k: () for k in eval_keys(prog)} | measures_mod.shapes(prog)


def make_init(prog: Program):
    """jit(vmap(init_run)) over a wave (traced and run in x64 mode when :func:`needs_x64`)."""
    return _x64_if_needed(prog, jax.jit(jax.vmap(lambda hp: init_run(prog, hp))))


def stop_rule(prog: Program):
    """(metric, op, threshold) of the program's stop rule, or None. The threshold is the float32 that makes the
    float32 comparison agree with comparing against the decimal number exactly (as summary.csv's thresholds do)."""
    rule = config.parse_stop_rule(prog.cfg.train.stop_when)
    if rule is None:
        return None
    metric, op, value = rule
    keys = [k for k in eval_keys(prog) if k not in measures_mod.SPECTRA]
    if metric not in keys:
        raise ConfigError(f"--stop-when metric '{metric}' is not evaluated in this scan; use one of {', '.join(keys)}.")
    t = np.float32(value)
    if op in (">", "<=") and float(t) > value:  # x > value  <=>  x > largest float32 <= value
        t = np.nextafter(t, np.float32(-np.inf))
    if op in ("<", ">=") and float(t) < value:  # x < value  <=>  x < smallest float32 >= value
        t = np.nextafter(t, np.float32(np.inf))
    return metric, op, t


def _meets(op: str, x, t):
    return {">": x > t, "<": x < t, ">=": x >= t, "<=": x <= t}[op]


def make_chunk(prog: Program, K: int):
    """jit(chunk_fn(prog, K)) with the state donated."""
    return _x64_if_needed(prog, jax.jit(chunk_fn(prog, K), donate_argnums=(0,)))


def chunk_fn(prog: Program, K: int):
    """The unit of work: K updates of a wave, evaluating after every update whose 1-based index is a
    multiple of ``eval_every`` and after the last update of the budget.

    ``chunk(state_W, hp_W, data, step0, eval_every, total)`` returns the new state and per-update outputs
    ``loss[K, W]``, ``acc[K, W]`` and ``evals[name][K, W]`` (NaN where no evaluation happened). ``step0`` (first
    update index), ``eval_every`` and ``total`` (the step budget: updates at or past it are skipped) are traced,
    unbatched scalars, so neither the evaluation cadence nor the budget changes the compiled training program:
    a run's trained parameters are the same whatever ``eval_every`` is.
    """
    keys, shapes = eval_keys(prog), eval_shapes(prog)
    precision = PRECISION[prog.cfg.train.precision]
    rule, patience = stop_rule(prog), prog.cfg.train.patience

    def chunk(state, hp, data, step0, eval_every, total):
        W = state.alive.shape[0]
        wide = W > 1  # the model's products for a wave of W lanes (jgrok.models.transformer.SMALL_T)
        with jax.default_matmul_precision(precision):
            nan = jnp.full((W,), jnp.nan, jnp.float32)

            def step_fn(state, i):
                step = step0 + i
                in_budget = step < total

                def do_train(s):
                    return jax.vmap(lambda si, hi: train_step(prog, data, si, hi, step, wide))(s, hp)

                def skip(s):
                    return s, (nan, nan)

                state, (loss, acc) = jax.lax.cond(in_budget, do_train, skip, state)
                do_eval = in_budget & (((step + 1) % eval_every == 0) | (step + 1 == total))

                def run_eval(s):
                    ev = jax.vmap(lambda si, hi: evaluate(prog, data, si, wide, hi.n_train))(s, hp)
                    return {k: ev[k].astype(jnp.float32) for k in keys}

                none = {k: jnp.full((W,) + shapes[k], jnp.nan, jnp.float32) if shapes[k] else nan for k in keys}
                evals = jax.lax.cond(do_eval, run_eval, lambda s: none, state)
                if rule is not None:
                    metric, op, t = rule
                    live = do_eval & state.alive
                    count = jnp.where(live, jnp.where(_meets(op, evals[metric], t), state.stop_count + 1, 0),
                                      state.stop_count).astype(jnp.int32)
                    stop = live & (count >= patience)
                    state = state._replace(alive=state.alive & ~stop, stop_count=count,
                                           stopped_step=jnp.where(stop, step + 1, state.stopped_step).astype(jnp.int32))
                return state, (loss, acc, evals)

            return jax.lax.scan(step_fn, state, jnp.arange(K))

    return chunk
