"""A PyTorch re-implementation of the progress-measures paper's model (Nanda et al. 2023,
mechanistic-interpretability-grokking/progress-measures-paper ``transformers.py``: Embed, PosEmbed, Attention, MLP,
TransformerBlock, Transformer with ``use_ln`` false, and ``full_loss`` / ``cross_entropy_high_precision``), written
from a reading of the source for tests/test_nanda.py. Nothing here is jgrok code.

Shapes as in the source: W_E [d_model, d_vocab], W_pos [n_ctx, d_model], W_Q/W_K/W_V [heads, d_head, d_model],
W_O [d_model, heads * d_head], W_in [d_mlp, d_model] + b_in, W_out [d_model, d_mlp] + b_out, W_U [d_model, d_vocab];
every matrix N(0, 1/d_model) but W_U, N(0, 1/d_vocab); biases 0. Attention scores are masked by
``tril(scores) - 1e10 * (1 - mask)`` and divided by sqrt(d_head); no LayerNorm; ReLU; residual stream
``x + attn(x)``, then ``x + mlp(x)``. The loss is the cross-entropy of the last position's logits in float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Transformer(nn.Module):
    def __init__(self, p: int = 113, d_model: int = 128, heads: int = 4, d_mlp: int = 512, n_ctx: int = 3):
        super().__init__()
        d_vocab, d_head = p + 1, d_model // heads
        self.heads, self.d_head = heads, d_head
        self.W_E = nn.Parameter(torch.randn(d_model, d_vocab) / np.sqrt(d_model))
        self.W_pos = nn.Parameter(torch.randn(n_ctx, d_model) / np.sqrt(d_model))
        self.W_K = nn.Parameter(torch.randn(heads, d_head, d_model) / np.sqrt(d_model))
        self.W_Q = nn.Parameter(torch.randn(heads, d_head, d_model) / np.sqrt(d_model))
        self.W_V = nn.Parameter(torch.randn(heads, d_head, d_model) / np.sqrt(d_model))
        self.W_O = nn.Parameter(torch.randn(d_model, d_head * heads) / np.sqrt(d_model))
        self.W_in = nn.Parameter(torch.randn(d_mlp, d_model) / np.sqrt(d_model))
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = nn.Parameter(torch.randn(d_model, d_mlp) / np.sqrt(d_model))
        self.b_out = nn.Parameter(torch.zeros(d_model))
        self.W_U = nn.Parameter(torch.randn(d_model, d_vocab) / np.sqrt(d_vocab))
        self.register_buffer("mask", torch.tril(torch.ones(n_ctx, n_ctx)))

    def attention(self, x_BxPxD):
        k = torch.einsum("ihd,bpd->biph", self.W_K, x_BxPxD)
        q = torch.einsum("ihd,bpd->biph", self.W_Q, x_BxPxD)
        v = torch.einsum("ihd,bpd->biph", self.W_V, x_BxPxD)
        scores = torch.einsum("biph,biqh->biqp", k, q)
        P = x_BxPxD.shape[-2]
        scores = torch.tril(scores) - 1e10 * (1 - self.mask[:P, :P])
        attn = F.softmax(scores / np.sqrt(self.d_head), dim=-1)
        z = torch.einsum("biph,biqp->biqh", v, attn)
        z_flat = z.permute(0, 2, 1, 3).reshape(z.shape[0], z.shape[2], -1)  # b q (i h)
        return torch.einsum("df,bqf->bqd", self.W_O, z_flat)

    def mlp(self, x_BxPxD):
        h = F.relu(torch.einsum("md,bpd->bpm", self.W_in, x_BxPxD) + self.b_in)
        return torch.einsum("dm,bpm->bpd", self.W_out, h) + self.b_out

    def forward(self, tokens_BxP):
        """Logits at every position, [B, P, d_vocab]."""
        x = torch.einsum("dbp -> bpd", self.W_E[:, tokens_BxP])
        x = x + self.W_pos[: x.shape[-2]]
        x = x + self.attention(x)
        x = x + self.mlp(x)
        return x @ self.W_U


def loss(logits_BxPxV, labels_B):
    """full_loss: cross_entropy_high_precision of the last position's logits (log_softmax in float64)."""
    logprobs = F.log_softmax(logits_BxPxV[:, -1].to(torch.float64), dim=-1)
    return -torch.gather(logprobs, index=labels_B[:, None], dim=-1).mean()


def jgrok_params(model: Transformer, grads: bool = False) -> dict[str, np.ndarray]:
    """The parameters (or their .grad) under jgrok's flat names: kernels are [in, out]; the attention's qkv kernel
    holds the q | k | v columns with heads contiguous (column h * d_head + j is row j of head h)."""
    t = (lambda p: p.grad) if grads else (lambda p: p)  # noqa: E731
    D = model.W_E.shape[0]
    heads = lambda W: t(W).reshape(-1, D).T  # noqa: E731  [heads, d_head, D] -> [D, heads * d_head]
    out = {"tok_emb/embedding": t(model.W_E).T, "pos_emb/embedding": t(model.W_pos),
           "blocks/0/attn/qkv/kernel": torch.cat([heads(model.W_Q), heads(model.W_K), heads(model.W_V)], dim=1),
           "blocks/0/attn/out/kernel": t(model.W_O).T,
           "blocks/0/mlp_in/kernel": t(model.W_in).T, "blocks/0/mlp_in/bias": t(model.b_in),
           "blocks/0/mlp_out/kernel": t(model.W_out).T, "blocks/0/mlp_out/bias": t(model.b_out),
           "head/kernel": t(model.W_U)}
    return {k: np.array(v.detach().numpy(), np.float32) for k, v in out.items()}
