"""Progress measures for modular addition (Nanda et al. 2023, "Progress measures for grokking via mechanistic
interpretability"), computed vmapped over runs from saved parameters.

Notation: p the modulus, a, b, c in Z_p, w_k = 2 pi k / p for frequency k = 1 .. (p-1)/2 (p odd), and
L[a, b, c] the model's logit for class c on input ``a + b =``, for all p^2 pairs.

  Fourier basis      over Z_p: the constant 1/sqrt(p) and, per frequency k, sqrt(2/p) cos(w_k x) and
                     sqrt(2/p) sin(w_k x) (orthonormal; for even p also cos(pi x)/sqrt(p))
  embedding norms    for each k, the L2 norm of the embedding's k-th Fourier component: with E[x, :] the token
                     embedding of number x (token x + 2 in the template's vocabulary; the task.vocab's token of x
                     in general), sqrt(|C_k E|^2 + |S_k E|^2), C_k and S_k the basis rows
  key frequencies    the ``n_key`` frequencies with the largest embedding norms
  restricted loss    cross-entropy over all p^2 pairs of the logits projected onto the key-frequency directions
                     cos(w_k (a + b - c)) and sin(w_k (a + b - c)) of the (a, b, c) cube (orthogonal projection;
                     everything else removed). Low when the key frequencies alone implement the algorithm.
  excluded loss      cross-entropy over the run's *training* pairs of the logits with, for each class c, their
                     components along cos(w_k (a + b)) and sin(w_k (a + b)) (over the (a, b) plane) removed for
                     every key k. High when the model relies on the key frequencies rather than memorisation.
  train loss, loss   cross-entropy of the unmodified logits on the training pairs and on all pairs
Where the output layer scores every token (task.vocab grokfast, nanda), only the p logits of the numbers enter
(the paper's analysis drops the "=" logit the same way).

Only defined for ``x_plus_y`` (whose table lists every pair a-major, b in 0 .. p-1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def fourier_basis(p: int) -> np.ndarray:
    """[p, p] orthonormal rows: constant, cos 1, sin 1, cos 2, sin 2, ... (module docstring)."""
    x = np.arange(p)
    rows = [np.ones(p) / np.sqrt(p)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [np.sqrt(2 / p) * np.cos(2 * np.pi * k * x / p), np.sqrt(2 / p) * np.sin(2 * np.pi * k * x / p)]
    if p % 2 == 0:
        rows.append(np.cos(np.pi * x) / np.sqrt(p))
    return np.array(rows)


def n_freq(p: int) -> int:
    return (p - 1) // 2


def embedding_norms(W_pxD, p: int):
    """[n_freq(p)] norms of the embedding's Fourier components, frequencies 1 .. (p-1)/2."""
    F = jnp.asarray(fourier_basis(p))[1:1 + 2 * n_freq(p)]
    comp = F @ W_pxD  # [2K, D]
    sq = jnp.sum(comp ** 2, axis=-1).reshape(n_freq(p), 2).sum(axis=-1)
    return jnp.sqrt(sq)


def key_frequencies(norms_K, n_key: int):
    """The ``n_key`` frequencies (1-based) with the largest embedding norms, largest first."""
    return jnp.argsort(-norms_K)[:n_key] + 1


def _by_sum(L_PxPxC, p):
    """M[s, c] = sum over a of L[a, (s - a) mod p, c]."""
    a = jnp.arange(p)
    b = (jnp.arange(p)[:, None] - a[None, :]) % p  # [s, a]
    return L_PxPxC[a[None, :], b].sum(axis=1)


def _xent(logits, target, weight):
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * weight) / jnp.sum(weight)


def measures(L_PxPxP, keys, train_mask_PxP):
    """restricted, excluded, train and full loss of one logits cube for the given key frequencies."""
    p = L_PxPxP.shape[0]
    w = 2 * jnp.pi * keys.astype(jnp.float32) / p  # [n_key]
    s = jnp.arange(p)
    target = (s[:, None] + s[None, :]) % p  # [a, b]
    M = _by_sum(L_PxPxP, p)  # [s, c]
    diff = s[:, None] - s[None, :]  # s - c
    cos_sc, sin_sc = jnp.cos(w[:, None, None] * diff), jnp.sin(w[:, None, None] * diff)  # [k, s, c]
    alpha = jnp.sum(M * cos_sc, axis=(1, 2)) / (p ** 3 / 2)
    beta = jnp.sum(M * sin_sc, axis=(1, 2)) / (p ** 3 / 2)
    LR = jnp.einsum("k,ksc->sc", alpha, cos_sc) + jnp.einsum("k,ksc->sc", beta, sin_sc)  # depends on a + b only
    restricted = _xent(LR, s, jnp.ones(p))  # every s occurs p times among the pairs: same mean over all pairs
    cos_s, sin_s = jnp.cos(w[:, None] * s), jnp.sin(w[:, None] * s)  # [k, s]
    P = cos_s @ M / (p ** 2 / 2)  # [k, c]
    Q = sin_s @ M / (p ** 2 / 2)
    remove = jnp.einsum("ks,kc->sc", cos_s, P) + jnp.einsum("ks,kc->sc", sin_s, Q)  # [s, c]
    LE = L_PxPxP - remove[target]
    excluded = _xent(LE, target, train_mask_PxP)
    return dict(restricted_loss=restricted, excluded_loss=excluded, train_loss=_xent(L_PxPxP, target, train_mask_PxP),
                loss=_xent(L_PxPxP, target, jnp.ones((p, p))))


def make_run_measures(prog, n_key: int):
    """jit(vmap(f)) with f(params, perm) -> per-run dict (embedding norms, key frequencies and the losses) for a
    program of the x_plus_y task; ``perm`` is the run's split permutation (first n_train = training pairs)."""
    from jgrok import train

    from jgrok.tasks import algorithmic

    p = prog.cfg.task.p
    voc = algorithmic.vocab(prog.cfg.task.vocab, p)
    tokens = np.stack(np.meshgrid(np.arange(p), np.arange(p), indexing="ij"), -1).reshape(-1, 2)
    inputs = jnp.asarray(voc.inputs(tokens[:, 0], tokens[:, 1]), jnp.int32)
    first = voc.offset if voc.full_output else 0  # the logit of number c

    def one(params, perm):
        L = train.apply(prog, params, inputs)[:, first:first + p].reshape(p, p, p)
        mask = jnp.zeros(p * p).at[perm[:prog.n_train]].set(1.0).reshape(p, p)
        norms = embedding_norms(params["tok_emb"]["embedding"][voc.offset:voc.offset + p], p)
        keys = key_frequencies(norms, n_key)
        return dict(norms=norms, keys=keys, **measures(L, keys, mask))

    return jax.jit(jax.vmap(one))


def run_measures(prog, params, perm, n_key: int = 5, batch: int = 32) -> dict:
    """Measures for every run of a params pytree with leading runs axis R (numpy arrays out, [R] or [R, K])."""
    fn = make_run_measures(prog, n_key)
    R = len(perm)
    parts = []
    for i in range(0, R, batch):
        sl = slice(i, min(i + batch, R))
        parts.append(jax.device_get(fn(jax.tree.map(lambda x: x[sl], params), perm[sl])))
    return {k: np.concatenate([np.asarray(q[k]) for q in parts]) for k in parts[0]}


def checkpoint_measures(out, cfg, rows: list[dict], run_ids: list[int], n_key: int = 5) -> list[dict]:
    """Measures of the chosen runs at every checkpoint step kept in OUT/checkpoints/ (x_plus_y programs only):
    one dict per (run, step) with run, step, keys, norms and the losses."""
    from pathlib import Path

    import orbax.checkpoint as ocp

    from jgrok import engine, grid
    from jgrok.io import checkpoint
    from jgrok.io import load as load_mod

    found = []
    for i, (prog, table, members) in enumerate(grid.programs(cfg, rows)):
        ids = [r["run"] for r in members]
        want = [j for j, rid in enumerate(ids) if rid in set(run_ids)]
        if prog.cfg.task.name != "x_plus_y" or prog.cfg.task.vocab == "signed" or not want:
            continue
        mngr = checkpoint.manager(Path(out), i)
        init_fn, _ = engine._compiled(prog, 1)
        abstract = jax.eval_shape(init_fn, grid.hyper(prog, members[:1]))
        like = [np.zeros((len(members),) + x.shape[1:], x.dtype) for x in jax.tree.leaves(abstract)]
        like_tree = load_mod._like(like, {"run": np.array(ids, np.int64)}, prog, len(members))
        for step in sorted(mngr.all_steps()):
            tree = mngr.restore(step, args=ocp.args.StandardRestore(like_tree))
            leaves = [np.asarray(tree["state"][f"leaf_{j:04d}"])[want] for j in range(len(like))]
            state = jax.tree.unflatten(jax.tree.structure(abstract), leaves)
            m = run_measures(prog, state.params, np.asarray(state.perm), n_key)
            for j, w in enumerate(want):
                found.append(dict(run=ids[w], step=int(step), keys=[int(k) for k in m["keys"][j]],
                                  norms=m["norms"][j], **{k: float(m[k][j]) for k in
                                                          ("restricted_loss", "excluded_loss", "train_loss", "loss")}))
    return found
