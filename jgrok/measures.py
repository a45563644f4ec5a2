"""Progress measures: curves computed inside the compiled chunk at every evaluation, for every run.

``train.measures`` (CLI ``--measures fourier,logits``) names the measures a scan evaluates; empty (the default)
leaves the compiled training program as it was. Each measure adds per-run values to every evaluation, which land
in ``metrics.npz`` ([runs, evals], the spectrum [runs, evals, freqs]), in TensorBoard (tags ``measures/<key>``,
group aggregates and chosen runs) and in the vocabulary of ``--stop-when`` (every scalar key). Like the rest of
the evaluation they use no randomness and never change training: a run's parameters are the same with measures
on or off.

``logits`` (any classification model; computed from the logits and the parameter / gradient pytrees only). On
the run's *training* split (n examples, logits z of example e, answer y_e):

  logit_max         (1/n) sum_e max_c z_ec                     mean over examples of the largest logit
  logit_norm        (1/n) sum_e ||z_e||_2                      mean L2 norm of the logit vector
  softmax_collapse  (1/n) #{e : softmax(z_e)_{y_e} == 1.0}     share of training examples whose float32 softmax
                    probability of the answer is exactly 1, so that their cross-entropy gradient is exactly 0
                    (softmax collapse, Prieto et al. 2025, "Grokking at the edge of numerical stability")
  grad_cos          <theta, g> / (||theta|| ||g||)             cosine between the full parameter vector theta
                    (every tensor flattened into one vector) and g, the gradient of the full-batch training loss
                    (mean cross-entropy of the answer over the n training examples with the run's train.loss:
                    softmax, or StableMax, in train.softmax_precision; for train.loss sequence the answer's term
                    only; weight decay is not part of it); 0 where g = 0. Near -1: the loss gradient points back towards the origin, as in
                    the norm-growth phase Prieto et al. call naive loss minimisation.

``fourier`` (transformer; tasks that are cyclic-group operations; Nanda et al. 2023, "Progress measures for
grokking via mechanistic interpretability"). The task's operands are put on a cyclic group Z_n by a map
idx: x_plus_y and x_minus_y use the numbers themselves (n = p); x_times_y and x_div_y the discrete logarithm
of a primitive root g of the prime p (idx(g^i mod p) = i, n = p - 1; the number 0 is no group element, so
pairs with a = 0 and the class 0 are left out, and softmaxes run over the n group classes). Then the answer of
operands with indices i, j has index t = i + s j mod n (s = +1 for plus / times, -1 for minus / div), and with
w_k = 2 pi k / n, frequencies k = 1 .. floor(n/2), u_k(x) = cos(w_k x), v_k(x) = sin(w_k x):

  fourier_spectrum  [floor(n/2)] per frequency k, the L2 norm of the number-token embedding's component along
                    frequency k: with E[i, :] the embedding row of the number with index i (the token of the number in task.vocab: number + 2 in the template's),
                    sqrt(sum_d (U_k E)_d^2 + (V_k E)_d^2), U_k, V_k the unit-norm vectors u_k / ||u_k||,
                    v_k / ||v_k|| over Z_n (v_k is 0 at the Nyquist frequency k = n/2 of an even n, and dropped)
  fourier_gini      Gini coefficient of the spectrum's values x_1..x_F (F = floor(n/2)):
                    sum_k sum_l |x_k - x_l| / (2 F sum_k x_k); 0 for a flat spectrum, (F-1)/F for one frequency
  fourier_key_freqs the number of key frequencies: the size of the smallest set of frequencies whose squared
                    spectrum values hold at least KEY_SHARE (90%) of the spectrum's total squared value (largest
                    first). The key frequencies are chosen like this per run at every evaluation, never fixed.
  restricted_loss   mean cross-entropy over all n^2 group pairs of the logits restricted to the key frequencies:
                    the orthogonal projection of the logit cube L[i, j, c] (c a class index) onto the functions
                    u_k(i + s j - c), v_k(i + s j - c) of the key frequencies k. Low when the key frequencies
                    alone carry the algorithm.
  excluded_loss     mean cross-entropy over the run's *training* pairs of the logits with, for every class c,
                    their components along u_k(i + s j), v_k(i + s j) (functions on the n x n pair plane) removed
                    for every key frequency k. High when the model relies on the key frequencies rather than on
                    memorised pairs.

The formulas live in :func:`logits_measures` and :func:`fourier_measures` (and the helpers they call).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jgrok import losses
from jgrok.errors import ConfigError
from jgrok.tasks import algorithmic, kinds

NAMES = ("fourier", "logits")
KEYS = {
    "logits": ("logit_max", "logit_norm", "softmax_collapse", "grad_cos"),
    "fourier": ("fourier_gini", "fourier_key_freqs", "restricted_loss", "excluded_loss", "fourier_spectrum"),
}
SPECTRA = ("fourier_spectrum",)  # keys with a trailing frequency axis; not scalar, so no stop rule or TensorBoard
FOURIER_TASKS = {"x_plus_y": (False, 1), "x_minus_y": (False, -1), "x_times_y": (True, 1), "x_div_y": (True, -1)}
KEY_SHARE = 0.9  # share of the squared spectrum that the key frequencies hold


def parse(text: str) -> tuple[str, ...]:
    """``"fourier,logits"`` -> ("fourier", "logits") in NAMES order; ConfigError for an unknown name."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    for n in names:
        if n not in NAMES:
            raise ConfigError(f"Measure '{n}' is unknown; --measures takes a comma list of {', '.join(NAMES)}.")
    return tuple(n for n in NAMES if n in names)


def check(text: str, tasks: list[str], model_kind: str, p: int, vocab: str = "template") -> None:
    """ConfigError unless every named measure is defined for every task of the scan and its model."""
    names = parse(text)
    if "fourier" in names and vocab == "signed":
        raise ConfigError("The fourier measure needs the numbers 0..p-1 as the group's elements; task.vocab 'signed' "
                          "writes operands 1..p and signed results, so drop 'fourier' from --measures.")
    for task in tasks:
        kind = kinds.for_task(task)
        if "logits" in names and "logits" not in kind.measures:
            raise ConfigError(f"The logits measure needs a classification task; task {task} is {kind.noun}, so "
                              "drop 'logits' from --measures.")
        if "fourier" in names:
            if task not in FOURIER_TASKS:
                raise ConfigError(f"The fourier measure is defined for the cyclic-group tasks "
                                  f"{', '.join(FOURIER_TASKS)}, not for '{task}'; drop 'fourier' from --measures.")
            if model_kind != "transformer":
                raise ConfigError(f"The fourier measure reads the transformer's token embedding; model.kind "
                                  f"'{model_kind}' has none, so drop 'fourier' from --measures.")
            multiplicative = FOURIER_TASKS[task][0]
            if multiplicative and not _is_prime(p):
                raise ConfigError(f"The fourier measure of '{task}' uses the discrete logarithm mod a prime; "
                                  f"task.p = {p} is not prime.")
            if (p - 1 if multiplicative else p) < 3:
                raise ConfigError(f"The fourier measure needs a group of at least 3 elements; task.p = {p} is too "
                                  "small.")


def keys(prog) -> list[str]:
    """The evaluation keys the program's measures add (NAMES order, then KEYS order)."""
    return [k for n in parse(prog.cfg.train.measures) for k in KEYS[n]]


def shapes(prog) -> dict[str, tuple[int, ...]]:
    """Trailing shape (after runs and evaluations) of every key of :func:`keys`: () for scalars."""
    out = {k: () for k in keys(prog)}
    if "fourier_spectrum" in out:
        out["fourier_spectrum"] = (group(prog.cfg.task.name, prog.cfg.task.p).n // 2,)
    return out


def extra_bytes(prog, per_example: int) -> int:
    """Device memory one lane's measures add to an evaluation (float32), given the activations of one example
    (``per_example`` floats): for logits a gradient accumulator and a backward pass over an evaluation slice,
    for fourier the group's logit cube (and its log-softmax and excluded copy)."""
    names = parse(prog.cfg.train.measures)
    out = 0
    if "logits" in names:
        n_train = prog.n_rows if prog.n_train is None else prog.n_train  # a run's own n_train is at most n_rows
        out += 2 * prog.n_params + 2 * min(prog.cfg.train.eval_batch, n_train) * per_example
    if "fourier" in names:
        out += 3 * group(prog.cfg.task.name, prog.cfg.task.p).n ** 3
    return 4 * out


# ---------------------------------------------------------------------------------------------- the group


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, math.isqrt(p) + 1))


def primitive_root(p: int) -> int:
    """The smallest generator of the multiplicative group mod the prime p."""
    m, factors, q = p - 1, set(), 2
    while q * q <= m:
        while m % q == 0:
            factors.add(q)
            m //= q
        q += 1
    if m > 1:
        factors.add(m)
    return next(g for g in range(1, p) if all(pow(g, (p - 1) // f, p) != 1 for f in factors))


def discrete_log(p: int) -> tuple[np.ndarray, np.ndarray]:
    """(power, log): power[i] = g^i mod p for i in 0 .. p-2 and log[x] = i with g^i = x (log[0] = -1), g the
    primitive root of the prime p."""
    g = primitive_root(p)
    power = np.array([pow(g, i, p) for i in range(p - 1)], np.int64)
    log = np.full(p, -1, np.int64)
    log[power] = np.arange(p - 1)
    return power, log


class Group:
    """The cyclic group Z_n a task lives on (module docstring): ``number[i]`` the number (and class) with index i,
    ``sign`` s, ``row[i, j]`` the task-table row of operands (number[i], number[j]), ``t[i, j]`` = i + s j mod n."""

    def __init__(self, task: str, p: int):
        multiplicative, self.sign = FOURIER_TASKS[task]
        self.n = p - 1 if multiplicative else p
        self.number = discrete_log(p)[0] if multiplicative else np.arange(p)
        b_first = 1 if task in ("x_times_y", "x_div_y") else 0  # the task table's b range (jgrok.tasks.algorithmic)
        a, b = self.number[:, None], self.number[None, :]
        self.row = a * (p - b_first) + (b - b_first)
        i = np.arange(self.n)
        self.t = (i[:, None] + self.sign * i[None, :]) % self.n
        k = np.arange(1, self.n // 2 + 1)
        x = np.arange(self.n)
        cos, sin = np.cos(2 * np.pi * k[:, None] * x / self.n), np.sin(2 * np.pi * k[:, None] * x / self.n)
        sin[np.abs(sin).max(axis=1) < 1e-9] = 0.0  # Nyquist: exactly zero
        self.cos_KxN, self.sin_KxN = cos, sin  # u_k(x), v_k(x) over Z_n, k = 1 .. floor(n/2)


@functools.lru_cache(maxsize=None)
def group(task: str, p: int) -> Group:
    return Group(task, p)


def _unit(rows_KxN: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norm = np.linalg.norm(rows_KxN, axis=1, keepdims=True)
    return np.where(norm > 0, rows_KxN / np.where(norm > 0, norm, 1.0), 0.0)


# ---------------------------------------------------------------------------------------------- formulas


def spectrum(E_NxD, g: Group):
    """fourier_spectrum of an embedding whose row i is the number with index i (module docstring)."""
    U, V = jnp.asarray(_unit(g.cos_KxN), jnp.float32), jnp.asarray(_unit(g.sin_KxN), jnp.float32)
    hi = jax.lax.Precision.HIGHEST
    return jnp.sqrt(jnp.sum(jnp.square(jnp.matmul(U, E_NxD, precision=hi)), -1)
                    + jnp.sum(jnp.square(jnp.matmul(V, E_NxD, precision=hi)), -1))


def gini(x_F):
    """Gini coefficient sum_k sum_l |x_k - x_l| / (2 F sum x) of non-negative values; 0 when all are 0."""
    F = x_F.shape[-1]
    s = jnp.sort(x_F)
    total = jnp.sum(s)
    rank = jnp.arange(1, F + 1, dtype=jnp.float32)
    g = (2 * jnp.sum(rank * s) / (F * total)) - (F + 1) / F  # the pairwise formula, for sorted values
    return jnp.where(total > 0, g, 0.0)


def key_mask(spec_F, share: float = KEY_SHARE):
    """(mask[F], count): the smallest set of frequencies whose squared values hold >= share of the total."""
    e = jnp.square(spec_F)
    order = jnp.argsort(-e)
    cum = jnp.cumsum(e[order])
    count = jnp.minimum(jnp.sum(cum < share * cum[-1]) + 1, e.shape[0])
    rank = jnp.zeros_like(order).at[order].set(jnp.arange(e.shape[0]))
    return (rank < count).astype(jnp.float32), count


def _xent(logits_BxC, y_B, w_B):
    logp = jax.nn.log_softmax(logits_BxC, axis=-1)
    nll = -jnp.take_along_axis(logp, y_B[:, None], axis=-1)[:, 0]
    return jnp.sum(nll * w_B) / jnp.sum(w_B)


def restricted_excluded(L_PxC, mask_K, train_P, g: Group):
    """(restricted_loss, excluded_loss) of a logit cube L[i * n + j, c] (pairs of group indices, classes in group
    index order) for key frequencies ``mask_K`` and training-pair weights ``train_P`` (module docstring)."""
    n = g.n
    t_P = jnp.asarray(g.t.reshape(-1))
    M_NxC = jax.ops.segment_sum(L_PxC, t_P, num_segments=n)  # M[t, c] = sum of L over the pairs with i + s j = t
    diff = (np.arange(n)[:, None] - np.arange(n)[None, :]) % n  # t - c
    hi = jax.lax.Precision.HIGHEST
    restricted_TxC = jnp.zeros((n, n), jnp.float32)
    remove_TxC = jnp.zeros((n, n), jnp.float32)
    for basis in (g.cos_KxN, g.sin_KxN):
        sq = np.sum(basis ** 2, axis=1)  # ||u_k||^2 over Z_n
        live = sq > 0
        # the cube direction f(i + s j - c): <L, f> = sum_{t,c} M[t,c] f(t - c); ||f||^2 = n^2 ||u_k||^2
        f_KxTxC = jnp.asarray(basis[:, diff], jnp.float32)
        coef_K = jnp.einsum("tc,ktc->k", M_NxC, f_KxTxC, precision=hi) / jnp.asarray(np.where(live, n * n * sq, 1.0))
        restricted_TxC += jnp.einsum("k,ktc->tc", coef_K * mask_K, f_KxTxC, precision=hi)
        # the plane direction f(i + s j) for every class c: <L[:, :, c], f> = sum_t M[t, c] f(t); ||f||^2 = n ||u_k||^2
        fb_KxT = jnp.asarray(basis, jnp.float32)
        proj_KxC = jnp.matmul(fb_KxT, M_NxC, precision=hi) / jnp.asarray(np.where(live, n * sq, 1.0))[:, None]
        remove_TxC += jnp.einsum("kt,kc->tc", fb_KxT * mask_K[:, None], proj_KxC, precision=hi)
    s = jnp.arange(n)
    restricted = _xent(restricted_TxC, s, jnp.ones(n))  # every t occurs n times among the pairs: same mean
    excluded = _xent(L_PxC - remove_TxC[t_P], t_P, train_P)
    return restricted, excluded


def _in_slices(fn, x, size: int):
    """fn over the leading axis of x in slices of ``size`` rows (lax.map; the last slice padded), concatenated."""
    n = x.shape[0]
    size = min(size, n)
    k = -(-n // size)
    pad = jnp.concatenate([x, jnp.broadcast_to(x[:1], (k * size - n,) + x.shape[1:])]) if k * size > n else x
    out = jax.lax.map(fn, pad.reshape((k, size) + x.shape[1:]))
    return out.reshape((k * size,) + out.shape[2:])[:n]


def fourier_measures(prog, apply, params, perm, data, n_train) -> dict:
    """The fourier keys of one run (module docstring); ``apply(params, tokens)`` gives the logits."""
    inputs, _ = data
    g = group(prog.cfg.task.name, prog.cfg.task.p)
    rows_P = jnp.asarray(g.row.reshape(-1))
    classes = jnp.asarray(g.number)
    voc = algorithmic.vocab(prog.cfg.task.vocab, prog.cfg.task.p)  # where the numbers' tokens and logits sit
    first_logit = voc.offset if voc.full_output else 0
    L_PxC = _in_slices(lambda x: apply(params, x)[:, classes + first_logit], inputs[rows_P], prog.cfg.train.eval_batch)
    if isinstance(n_train, int):
        train_rows = jnp.zeros(prog.n_rows, jnp.float32).at[perm[:n_train]].set(1.0)
    else:  # the run's own training set (a traced size): the same 0 / 1 values
        train_rows = jnp.zeros(prog.n_rows, jnp.float32).at[perm].set(
            (jnp.arange(prog.n_rows) < n_train).astype(jnp.float32))
    spec = spectrum(params["tok_emb"]["embedding"][classes + voc.offset].astype(jnp.float32), g)
    mask, count = key_mask(spec)
    restricted, excluded = restricted_excluded(L_PxC, mask, train_rows[rows_P], g)
    return {"fourier_gini": gini(spec), "fourier_key_freqs": count.astype(jnp.float32),
            "restricted_loss": restricted, "excluded_loss": excluded, "fourier_spectrum": spec}


def logits_measures(prog, apply, params, perm, data, n_train) -> dict:
    """The logits keys of one run (module docstring): one forward and backward pass over the training split, in
    slices of ``train.eval_batch``. A run's own (traced) ``n_train`` is summed as jgrok.train sums a traced split:
    slices of min(eval_batch, n_rows), as many as the split needs (a loop with a traced trip count)."""
    inputs, targets = data
    n = n_train
    traced = not isinstance(n, int)
    size = min(prog.cfg.train.eval_batch, prog.n_rows if traced else n)

    def slice_sums(carry, idx, w):
        def loss(p):
            z = apply(p, inputs[idx])
            nll = losses.nll(z, targets[idx], lambda q: losses.log_probs(prog, q))  # the run's train.loss
            return jnp.sum(nll * w) / n, z

        grad, z = jax.grad(loss, has_aux=True)(params)
        prob = jnp.take_along_axis(jax.nn.softmax(z, axis=-1), targets[idx][:, None], axis=-1)[:, 0]
        sums = jnp.stack([jnp.sum(jnp.max(z, -1) * w), jnp.sum(jnp.linalg.norm(z, axis=-1) * w),
                          jnp.sum((prob == 1.0) * w)])
        return carry[0] + sums, jax.tree.map(jnp.add, carry[1], grad)

    zero = (jnp.zeros(3, jnp.float32), jax.tree.map(jnp.zeros_like, params))
    if traced:
        def step(c):
            pos = c[0] * size + jnp.arange(size)
            return (c[0] + 1, *slice_sums(c[1:], perm[jnp.minimum(pos, n - 1)], (pos < n).astype(jnp.float32)))

        _, sums, grad = jax.lax.while_loop(lambda c: c[0] < (n + size - 1) // size, step, (jnp.int32(0), *zero))
    else:
        k = -(-n // size)
        pos = jnp.arange(k * size)
        w_KxB = (pos < n).astype(jnp.float32).reshape(k, size)
        idx_KxB = perm[jnp.minimum(pos, n - 1)].reshape(k, size)
        (sums, grad), _ = jax.lax.scan(lambda c, xs: (slice_sums(c, *xs), None), zero, (idx_KxB, w_KxB))
    dot = sum(jnp.sum(p * q) for p, q in zip(jax.tree.leaves(params), jax.tree.leaves(grad)))
    norms = [jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(t))) for t in (params, grad)]
    denom = norms[0] * norms[1]
    return {"logit_max": sums[0] / n, "logit_norm": sums[1] / n, "softmax_collapse": sums[2] / n,
            "grad_cos": jnp.where(denom > 0, dot / jnp.where(denom > 0, denom, 1.0), 0.0)}


def evaluate(prog, apply, params, perm, data, n_train=None) -> dict:
    """Every measure of the program for one run: {key: float32 value} ([F] for the spectrum); ``n_train``: the
    run's training-set size (traced, where the program has none of its own; default the program's)."""
    n_train = prog.n_train if prog.n_train is not None else n_train
    out = {}
    names = parse(prog.cfg.train.measures)
    if "logits" in names:
        out.update(logits_measures(prog, apply, params, perm, data, n_train))
    if "fourier" in names:
        out.update(fourier_measures(prog, apply, params, perm, data, n_train))
    return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}
