"""The grokking decoder: the AI-Scientist template's Transformer as a Flax NNX module.

Token embedding + position embedding (learned, or openai/grok's fixed sinusoids), ``n_layers`` blocks of causal multi-head self-attention and a
GELU MLP, final LayerNorm and a linear head applied at the last position only. With the defaults (post-LN,
width 128, 4 heads, MLP 512) it equals the template's PyTorch model: 422,625 parameters for the mod-97 tasks
(vocabulary 99, 97 classes) and 428,536 for S5 (vocabulary 122, 120 classes).

Parameter layout (JAX kernels are ``[in, out]``, i.e. the transpose of torch's ``weight``)::

    tok_emb/embedding [V, D]            pos_emb/embedding [P, D]
    blocks/i/attn/qkv/kernel [D, 3D]     (torch in_proj_weight.T: columns q | k | v, heads contiguous)
    blocks/i/attn/out/kernel [D, D]      blocks/i/ln1/{scale,bias}   (norm around attention)
    blocks/i/mlp_in/kernel [D, F]        blocks/i/mlp_out/kernel [F, D]   blocks/i/ln2/{scale,bias}
    final_ln/{scale,bias}                head/kernel [D, n_out]

The module's own initialisers are never used: :mod:`jgrok.init` fills the parameters (PyTorch's defaults or
another scheme), so the model only defines structure and the forward pass. It knows nothing about runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

LN_EPS = 1e-5  # torch.nn.LayerNorm default

# How the per-head attention products ([T, K] x [K, T] and [T, T] x [T, K]) are computed. Under vmap over a wave
# of W > 1 lanes, matmuls become dot_generals batched over (lane, example, head) of tiny blocks, which XLA's CPU
# backend runs block by block; for short sequences a broadcast-multiply-sum that XLA fuses is faster there (x1.2
# to x1.5 seed-steps/s on the 2-core CPU, benchmarks/RESULTS.md), while for a single lane the matmul is
# (about 3x). The two differ only in summation order (rounding level), and a run's numbers are defined by its
# config and its lane width W anyway, so the choice is made by W: the caller passes ``wide`` (True for a wave of
# W > 1 lanes, see jgrok.train.chunk_fn) to the model's call.
SMALL_T = 16


# model.norm: where the LayerNorms sit in a block (see Block); model.activation: the MLP's nonlinearity
NORMS = ("post", "pre", "none", "grokfast")
ACTIVATIONS = {"gelu": lambda x: jax.nn.gelu(x, approximate=False), "relu": jax.nn.relu}
# model.positions: a learned table (pos_emb, a parameter) or a fixed sinusoidal one (no parameter)
POSITIONS = ("learned", "sinusoidal")


def sinusoidal_table(T: int, D: int) -> np.ndarray:
    """openai/grok's fixed position encoding, [T, D] float32: entry (t, i) is sin(t / 10000^(i / D)) for even i
    and cos(t / 10000^((i - 1) / D)) for odd i (computed in float64, stored in float32 as the source does)."""
    t = np.arange(T, dtype=np.float64)[:, None]
    i = np.arange(D)
    even = i - i % 2  # the exponent of column i uses the even index at or below it
    angle = t / 10000.0 ** (even / D)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


class Attention(nnx.Module):
    def __init__(self, d: int, n_heads: int, causal: bool, bias: bool, rngs: nnx.Rngs):
        self.n_heads, self.causal = n_heads, causal
        self.qkv = nnx.Linear(d, 3 * d, use_bias=bias, rngs=rngs)
        self.out = nnx.Linear(d, d, use_bias=bias, rngs=rngs)

    def __call__(self, x_BxTxD, wide: bool = False):
        B, T, D = x_BxTxD.shape
        H = self.n_heads
        q, k, v = jnp.split(self.qkv(x_BxTxD), 3, axis=-1)
        q_BxHxTxK, k_BxHxTxK, v_BxHxTxK = (t.reshape(B, T, H, D // H).transpose(0, 2, 1, 3) for t in (q, k, v))
        q_BxHxTxK = q_BxHxTxK * (D // H) ** -0.5
        products = T <= SMALL_T and wide
        if products:
            scores_BxHxTxT = jnp.sum(q_BxHxTxK[..., :, None, :] * k_BxHxTxK[..., None, :, :], axis=-1)
        else:
            scores_BxHxTxT = q_BxHxTxK @ k_BxHxTxK.swapaxes(-1, -2)
        if self.causal:
            mask_TxT = jnp.tril(jnp.ones((T, T), dtype=bool))
            scores_BxHxTxT = jnp.where(mask_TxT, scores_BxHxTxT, -jnp.inf)
        attn = jax.nn.softmax(scores_BxHxTxT, axis=-1)
        if products:
            y_BxHxTxK = jnp.sum(attn[..., :, :, None] * v_BxHxTxK[..., None, :, :], axis=-2)
        else:
            y_BxHxTxK = attn @ v_BxHxTxK
        y_BxTxD = y_BxHxTxK.transpose(0, 2, 1, 3).reshape(B, T, D)
        return self.out(y_BxTxD)


class Block(nnx.Module):
    def __init__(self, cfg, rngs: nnx.Rngs):
        d, f = cfg.d_model, cfg.d_model * cfg.mlp_ratio
        self.norm, self.act = cfg.norm, ACTIVATIONS[cfg.activation]
        self.attn = Attention(d, cfg.n_heads, cfg.causal, cfg.bias and cfg.attn_bias, rngs)
        self.mlp_in = nnx.Linear(d, f, use_bias=cfg.bias and cfg.mlp_bias, rngs=rngs)
        self.mlp_out = nnx.Linear(f, d, use_bias=cfg.bias and cfg.mlp_bias, rngs=rngs)
        if cfg.norm != "none":
            self.ln1 = nnx.LayerNorm(d, epsilon=LN_EPS, use_bias=cfg.bias, rngs=rngs)
            self.ln2 = nnx.LayerNorm(d, epsilon=LN_EPS, use_bias=cfg.bias, rngs=rngs)

    def mlp(self, x):
        return self.mlp_out(self.act(self.mlp_in(x)))

    def __call__(self, x, wide: bool = False):
        if self.norm == "post":  # the template: x = LN(x + f(x))
            x = self.ln1(x + self.attn(x, wide))
            return self.ln2(x + self.mlp(x))
        if self.norm == "pre":
            x = x + self.attn(self.ln1(x), wide)
            return x + self.mlp(self.ln2(x))
        if self.norm == "grokfast":  # ironjr/grokfast main.py Block: the residual adds to the normalised stream
            x = self.ln1(x)
            x = x + self.attn(x, wide)
            return x + self.mlp(self.ln2(x))
        x = x + self.attn(x, wide)
        return x + self.mlp(x)


class Transformer(nnx.Module):
    def __init__(self, cfg, n_vocab: int, n_out: int, rngs: nnx.Rngs):
        d = cfg.d_model
        self.tok_emb = nnx.Embed(n_vocab, d, rngs=rngs)
        self.sinusoidal = cfg.positions == "sinusoidal"
        if not self.sinusoidal:
            self.pos_emb = nnx.Embed(cfg.n_positions, d, rngs=rngs)
        self.blocks = nnx.List([Block(cfg, rngs) for _ in range(cfg.n_layers)])
        self.final_ln = nnx.LayerNorm(d, epsilon=LN_EPS, use_bias=cfg.bias, rngs=rngs) if cfg.final_ln else None
        self.head = nnx.Linear(d, n_out, use_bias=cfg.bias and cfg.head_bias, rngs=rngs)

    def __call__(self, tokens_BxT, all_positions: bool = False, wide: bool = False):
        """Logits at the last position, ``[B, n_out]`` (every position, ``[B, T, n_out]``, with all_positions);
        ``wide``: traced for a wave of W > 1 lanes (selects the attention products, see SMALL_T)."""
        T = tokens_BxT.shape[-1]
        # the token lookup as a one-hot matmul: the same values (one non-zero term per sum), and a matmul gradient
        # instead of a scatter-add (5-10% faster steps on the 2-core CPU, measured 2026-11-29)
        table_VxD = self.tok_emb.embedding[...]
        onehot_BxTxV = jax.nn.one_hot(tokens_BxT, table_VxD.shape[0], dtype=table_VxD.dtype)
        tokens_BxTxD = jnp.matmul(onehot_BxTxV, table_VxD, precision=jax.lax.Precision.HIGHEST)
        if self.sinusoidal:
            positions_TxD = jnp.asarray(sinusoidal_table(T, table_VxD.shape[1]), tokens_BxTxD.dtype)
        else:
            positions_TxD = self.pos_emb.embedding[...][:T]
        x_BxTxD = tokens_BxTxD + positions_TxD
        for block in self.blocks:
            x_BxTxD = block(x_BxTxD, wide)
        x_BxD = x_BxTxD if all_positions else x_BxTxD[:, -1]  # (x_BxTxD when all_positions)
        if self.final_ln is not None:
            x_BxD = self.final_ln(x_BxD)
        return self.head(x_BxD)


def abstract(cfg, n_vocab: int, n_out: int):
    """(graphdef, shapes) without allocating: shapes is a dict pytree of jax.ShapeDtypeStruct."""
    model = nnx.eval_shape(lambda: Transformer(cfg, n_vocab, n_out, nnx.Rngs(0)))
    graphdef, state = nnx.split(model, nnx.Param)
    return graphdef, nnx.to_pure_dict(state)


# layer groups (jgrok.init): embedding, position, block{i}_attn (in- and out-projection), block{i}_mlp (both MLP
# layers), norms (every LayerNorm), head
_BLOCK_GROUPS = {"attn": "_attn", "mlp_in": "_mlp", "mlp_out": "_mlp", "ln1": None, "ln2": None}
_TOP_GROUPS = {"tok_emb": "embedding", "pos_emb": "position", "final_ln": "norms", "head": "head"}


def layer_group(parts: list[str]) -> str | None:
    """The layer group of the parameter at path ``parts``; None for a path that is not the transformer's."""
    if parts[0] == "blocks" and len(parts) > 2 and parts[2] in _BLOCK_GROUPS:
        suffix = _BLOCK_GROUPS[parts[2]]
        return "norms" if suffix is None else f"block{parts[1]}{suffix}"
    return _TOP_GROUPS.get(parts[0])


def per_example_floats(cfg, n_inputs: int, n_out: int, T: int = 4) -> int:
    """Activations of one example of T tokens: per layer and token ~12 D (attention, norms, residuals), 3 F (the
    MLP) and 2 H T (scores and their softmax)."""
    return cfg.n_layers * T * (12 * cfg.d_model + 3 * cfg.d_model * cfg.mlp_ratio + 2 * cfg.n_heads * T)
