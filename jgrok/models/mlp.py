"""The MLP of Prieto et al. 2025 ("Grokking at the Edge of Numerical Stability", ``models.py`` of
LucasPrietoAl/grokking-at-the-edge-of-numerical-stability) as a Flax NNX module.

Input: the task's pair ``(a, b)`` written as one-hot(a) concatenated with one-hot(b), ``2 p`` features (the
source's ``AlgorithmicDataset``; jgrok's token rows ``[a + 2, "o", b + 2, "="]`` are turned into that vector
here, so the task tables stay shared with the transformer). Then Linear layers of the hidden sizes with ReLU
between them, and a last Linear to ``p`` logits with no activation::

    x_Bx2P = concat(one_hot(a_B, P), one_hot(b_B, P))
    h      = relu(hidden_i(h))               i = 0 .. len(hidden) - 1, Linear
    logits = head(h)                         Linear -> P

The source builds this model for the modular tasks with ``bias=False`` (``utils.get_model``), so the preset
``prieto_2025`` sets ``model.bias: false``; with ``model.bias: true`` every Linear has a bias. Parameters:
``sum(d_in * d_out)`` over the layers (+ ``sum(d_out)`` with biases): 107,800 for p = 113 and hidden
[200, 200] without biases. The source's ``alpha`` logit multiplier is 1 in every command it ships and is left out.

Parameter layout (kernels ``[in, out]``, the transpose of torch's ``weight``)::

    hidden/i/{kernel [d_i, d_(i+1)], bias}      head/{kernel [d_last, P], bias}

Layer groups for :mod:`jgrok.init`: ``hidden{i}`` and ``head``. jgrok.init fills the parameters: the default
scheme is PyTorch's ``nn.Linear`` default, U(+-1/sqrt(fan_in)) for weights and biases, as in the source.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def n_params(n_in: int, hidden: tuple[int, ...], n_out: int, bias: bool) -> int:
    """The parameter count of the formula in the module docstring."""
    sizes = [n_in, *hidden, n_out]
    return sum(a * b + (b if bias else 0) for a, b in zip(sizes[:-1], sizes[1:]))


class MLP(nnx.Module):
    def __init__(self, n_elems: int, hidden: tuple[int, ...], n_out: int, bias: bool, rngs: nnx.Rngs):
        self.n_elems = n_elems
        sizes = [2 * n_elems, *hidden]
        self.hidden = nnx.List([nnx.Linear(a, b, use_bias=bias, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nnx.Linear(sizes[-1], n_out, use_bias=bias, rngs=rngs)

    def features(self, tokens_BxT, dtype):
        """one-hot(a) ++ one-hot(b) from the token rows ``[a + 2, o, b + 2, =]``: ``[B, 2P]``."""
        a_B, b_B = tokens_BxT[:, 0] - 2, tokens_BxT[:, 2] - 2
        return jnp.concatenate([jax.nn.one_hot(a_B, self.n_elems, dtype=dtype),
                                jax.nn.one_hot(b_B, self.n_elems, dtype=dtype)], axis=-1)

    def __call__(self, tokens_BxT, wide: bool = False):
        """Logits ``[B, n_out]`` in the parameters' dtype (the same for any lane width: ``wide`` is unused)."""
        h = self.features(tokens_BxT, self.head.kernel[...].dtype)
        for layer in self.hidden:
            h = jax.nn.relu(layer(h))
        return self.head(h)


def abstract(cfg, n_vocab: int, n_out: int):
    """(graphdef, shapes) without allocating; cfg is a jgrok.config.ModelConfig with kind 'mlp'. The task's
    elements are the vocabulary less the two operator tokens."""
    model = nnx.eval_shape(lambda: MLP(n_vocab - 2, tuple(cfg.hidden), n_out, cfg.bias, nnx.Rngs(0)))
    graphdef, state = nnx.split(model, nnx.Param)
    return graphdef, nnx.to_pure_dict(state)


def layer_group(parts: list[str]) -> str | None:
    """The layer group of the parameter at path ``parts`` (module docstring); None for a path that is not the
    MLP's."""
    if parts[0] == "hidden":
        return f"hidden{parts[1]}"
    return "head" if parts[0] == "head" else None


def per_example_floats(cfg, n_inputs: int, n_out: int) -> int:
    """The one-hot input, 3 activations per hidden unit, the logits and their softmax."""
    return 2 * n_inputs + 3 * sum(cfg.hidden) + 2 * n_out
