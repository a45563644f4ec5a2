"""The training objectives: cross-entropy of softmax or StableMax, next-token cross-entropy, and the regression's
mean squared error. Pure functions of logits and labels, so the config (which checks ``train.loss``) and the
measures can use them without the training code.

train.loss, the objective of a classification run (accuracy, val_loss and every "steps to" stay on the answer):
  answer     cross-entropy of the softmax of the answer logits at the last position (the template, Grokfast, ...:
             "seq2val")
  sequence   mean next-token cross-entropy over every position of ``a o b = c``: the input positions predict the
             next input token and the last one predicts c (the Julia/Flux reproduction's first "seq2seq" loss);
             needs an output layer over the whole vocabulary (task.vocab grokfast, signed or nanda)
  stablemax  cross-entropy of StableMax (Prieto et al. 2025) of the answer logits, see log_probs
train.softmax_precision: the float width (16, 32, 64) in which each is computed from the logits; the gradient
flows back through that dtype into the model's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("answer", "sequence", "stablemax")
SOFTMAX_DTYPES = {16: jnp.float16, 32: jnp.float32, 64: jnp.float64}


def stablemax_s(x):
    """StableMax's s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0 (Prieto et al. 2025, eq. 6; their code adds
    1e-30 to 1 - x, which is >= 1 there, so it changes nothing and is left out). The x < 0 branch is evaluated at
    min(x, 0), so its unused values are finite and the gradient of the where() is exact."""
    return jnp.where(x < 0, 1 / (1 - jnp.minimum(x, 0)), x + 1)


def log_probs(prog, logits_BxV):
    """Log-probabilities of the training objective (``prog.cfg.train.loss``), computed in train.softmax_precision:
    answer, sequence  log softmax(z)
    stablemax         log(s(z_i) / sum_j s(z_j)) with s = :func:`stablemax_s`
    """
    z = logits_BxV.astype(SOFTMAX_DTYPES[prog.cfg.train.softmax_precision])
    if prog.cfg.train.loss == "stablemax":
        s_BxV = stablemax_s(z)
        return jnp.log(s_BxV / jnp.sum(s_BxV, axis=-1, keepdims=True))
    return jax.nn.log_softmax(z)


def nll(logits_BxV, y_B, log_probs_fn=jax.nn.log_softmax):
    """Per-example negative log-likelihood of the answer, in the dtype of log_probs_fn (at least float32)."""
    logp = log_probs_fn(logits_BxV)
    out = -jnp.take_along_axis(logp, y_B[:, None], axis=-1)[:, 0]
    return out.astype(jnp.promote_types(out.dtype, jnp.float32))


def xent(logits_BxV, y_B, w_B, log_probs_fn=jax.nn.log_softmax):
    """Weighted mean cross-entropy and accuracy; with ``log_probs_fn = lambda z: log_probs(prog, z)`` the loss of
    train.loss. The mean is taken in the softmax dtype (float32 for float16); its gradient flows in that dtype."""
    return _weighted_means(nll(logits_BxV, y_B, log_probs_fn), jnp.argmax(logits_BxV, axis=-1) == y_B, w_B)


def sequence_xent(logits_BxTxV, x_BxT, y_B, w_B, log_probs_fn=jax.nn.log_softmax):
    """Weighted mean over examples of the mean next-token cross-entropy over the T positions, and the accuracy
    of the answer (last position); log-probabilities from log_probs_fn (train.softmax_precision)."""
    targets_BxT = jnp.concatenate([x_BxT[:, 1:], y_B[:, None]], axis=1)
    logp = log_probs_fn(logits_BxTxV)
    nll_B = -jnp.mean(jnp.take_along_axis(logp, targets_BxT[..., None], axis=-1)[..., 0], axis=-1)
    nll_B = nll_B.astype(jnp.promote_types(nll_B.dtype, jnp.float32))
    return _weighted_means(nll_B, jnp.argmax(logits_BxTxV[:, -1], axis=-1) == y_B, w_B)


def _weighted_means(nll_B, correct_B, w_B):
    """(loss, accuracy): the w-weighted means of the per-example losses (in their dtype) and of the hits."""
    total = jnp.sum(w_B)
    correct = correct_B.astype(jnp.float32)
    return jnp.sum(nll_B * w_B.astype(nll_B.dtype)) / total.astype(nll_B.dtype), jnp.sum(correct * w_B) / total


def mse(pred_B, y_B, w_B):
    """Weighted mean squared error of log2 h; NaN stands in for the accuracy a regression does not have."""
    return jnp.sum(jnp.square(pred_B - y_B) * w_B) / jnp.sum(w_B), jnp.float32(jnp.nan)
