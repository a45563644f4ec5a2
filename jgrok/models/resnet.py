"""The m-height regressor: a residual MLP (Flax NNX) that predicts y = log2 h_m(C) of a code from its features.

Forward pass, width D, L blocks, input features x of size F (see :mod:`jgrok.tasks.mheight_task`)::

    x_BxD = input(x_BxF)                                  Linear F -> D
    x_BxD = x_BxD + relu(LN_i(block_i(x_BxD)))            i = 0 .. L-1, block_i Linear D -> D
    z_B   = head(x_BxD)                                   Linear D -> 1
    y_B   = log2(1 + softplus(z_B))    (output "h":     the height h = 1 + softplus(z) >= 1)
          = softplus(z_B)              (output "log2h": log2 h = softplus(z) >= 0)

Either way the predicted height is >= 1 (the smallest possible m-height), and the loss is the MSE of y against
log2 h. Output "h" is the issue's parameterisation; "log2h" keeps dy/dz near 1 for large heights.
Parameters: (F + 1) D + L (D^2 + 3 D) + D + 1 (24,513 for F = 46, D = 64, L = 5).

Parameter layout (kernels ``[in, out]``, the transpose of torch's ``weight``)::

    input/{kernel [F, D], bias [D]}
    blocks/i/linear/{kernel [D, D], bias [D]}    blocks/i/norm/{scale, bias} [D]
    head/{kernel [D, 1], bias [1]}

Layer groups for :mod:`jgrok.init`: ``input``, ``block{i}`` (the block's Linear), ``norms`` (every LayerNorm),
``head``. The module's own initialisers are never used: jgrok.init fills the parameters (PyTorch's default
U(+-1/sqrt(fan_in)) for every Linear weight and bias; LayerNorm 1 / 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

LN_EPS = 1e-5  # torch.nn.LayerNorm default
OUTPUTS = ("h", "log2h")


def n_params(n_features: int, width: int, blocks: int) -> int:
    """The parameter count of the formula in the module docstring."""
    D = width
    return (n_features + 1) * D + blocks * (D * D + 3 * D) + D + 1


class Block(nnx.Module):
    def __init__(self, d: int, rngs: nnx.Rngs):
        self.linear = nnx.Linear(d, d, rngs=rngs)
        self.norm = nnx.LayerNorm(d, epsilon=LN_EPS, rngs=rngs)

    def __call__(self, x_BxD):
        return x_BxD + jax.nn.relu(self.norm(self.linear(x_BxD)))


class ResNet(nnx.Module):
    def __init__(self, n_features: int, width: int, blocks: int, output: str, rngs: nnx.Rngs):
        if output not in OUTPUTS:
            raise ValueError(output)
        self.output = output
        self.input = nnx.Linear(n_features, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, rngs) for _ in range(blocks)])
        self.head = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, x_BxF, wide: bool = False):
        """Predicted log2 h, ``[B]`` (>= 0); the same for any lane width (``wide`` is unused)."""
        x_BxD = self.input(x_BxF)
        for block in self.blocks:
            x_BxD = block(x_BxD)
        z_B = self.head(x_BxD)[:, 0]
        if self.output == "h":
            return jnp.log2(1.0 + jax.nn.softplus(z_B))
        return jax.nn.softplus(z_B)


def abstract(cfg, n_features: int, n_out: int = 1):
    """(graphdef, shapes) without allocating; cfg is a jgrok.config.ModelConfig with kind 'resnet'. The output is
    one number (``n_out`` must be 1)."""
    if n_out != 1:
        raise ValueError(f"the ResNet regressor has one output, not {n_out}")
    model = nnx.eval_shape(lambda: ResNet(n_features, cfg.width, cfg.blocks, cfg.output, nnx.Rngs(0)))
    graphdef, state = nnx.split(model, nnx.Param)
    return graphdef, nnx.to_pure_dict(state)


def layer_group(parts: list[str]) -> str | None:
    """The layer group of the parameter at path ``parts`` (module docstring); None for a path that is not the
    ResNet's."""
    if parts[0] == "blocks" and len(parts) > 2 and parts[2] in ("linear", "norm"):
        return f"block{parts[1]}" if parts[2] == "linear" else "norms"
    return {"input": "input", "head": "head"}.get(parts[0])


def per_example_floats(cfg, n_inputs: int, n_out: int) -> int:
    """Activations of one example: the input and ~6 of width D per block (and the input layer)."""
    return n_inputs + 6 * cfg.width * (cfg.blocks + 1)
