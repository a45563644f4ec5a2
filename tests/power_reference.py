"""A PyTorch re-implementation of the model of Power et al. (2022), openai/grok ``grok/transformer.py``
(Transformer, Decoder, DecoderBlock, MultiHeadAttention, AttentionHead, FFN) with weight noise 0 and dropout 0 (its
defaults), written from a reading of the source for tests/test_power_et_al.py. Nothing here is jgrok code.

Facts of the source: per-head projections Wq, Wk, Wv (d_model -> d_model / heads) and the output Wo, all without
biases; scores divided by sqrt(d_key) and masked with -inf above the diagonal; post-LN blocks
``a1 = LN(x + attn(x)); a2 = LN(a1 + ffn(a1))`` with LayerNorms that have biases (eps 1e-5); a ReLU FFN of 4 x d_model
without biases; a fixed sinusoidal position encoding added to the token embedding; a linear output without bias.
Here the output has ``n_out`` rows (the source's has one per vocabulary entry; jgrok's template layout answers over
the numbers only, a known difference of the preset) and the sequences are [B, T].
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def position_encoding(T: int, D: int) -> torch.Tensor:
    rows = [[np.sin(t / 10000 ** (i / D)) if i % 2 == 0 else np.cos(t / 10000 ** ((i - 1) / D)) for i in range(D)]
            for t in range(T)]
    return torch.tensor(rows, dtype=torch.float32)


class Head(nn.Module):
    def __init__(self, d: int, dk: int):
        super().__init__()
        self.dk = dk
        self.Wq, self.Wk, self.Wv = (nn.Linear(d, dk, bias=False) for _ in range(3))

    def forward(self, x, mask):
        scores = self.Wq(x) @ self.Wk(x).transpose(-2, -1) / np.sqrt(self.dk)
        scores = scores.masked_fill(mask == 0, float("-inf"))
        return torch.softmax(scores, dim=-1) @ self.Wv(x)


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = nn.ModuleList(Head(d, d // heads) for _ in range(heads))
        self.Wo = nn.Linear(d, d, bias=False)
        self.self_attn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d, bias=False), nn.ReLU(), nn.Linear(4 * d, d, bias=False))
        self.ffn_norm = nn.LayerNorm(d)

    def forward(self, x, mask):
        a = self.Wo(torch.cat([h(x, mask) for h in self.heads], dim=-1))
        a1 = self.self_attn_norm(x + a)
        return self.ffn_norm(a1 + self.ffn(a1))


class Transformer(nn.Module):
    def __init__(self, vocab: int, n_out: int, d: int = 128, heads: int = 4, layers: int = 2, max_len: int = 50):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        self.register_buffer("position_encoding", position_encoding(max_len, d))
        self.register_buffer("mask", torch.ones(max_len, max_len).tril())
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.linear = nn.Linear(d, n_out, bias=False)

    def forward(self, tokens_BxT):
        """Logits at every position, [B, T, n_out]."""
        T = tokens_BxT.shape[-1]
        x = self.embedding(tokens_BxT) + self.position_encoding[:T]
        for block in self.blocks:
            x = block(x, self.mask[:T, :T])
        return self.linear(x)


def jgrok_params(model: Transformer, grads: bool = False) -> dict[str, np.ndarray]:
    """The parameters (or their .grad) under jgrok's flat names: kernels [in, out]; the qkv kernel holds the q | k | v
    columns with heads contiguous."""
    t = (lambda p: p.grad) if grads else (lambda p: p)  # noqa: E731
    out = {"tok_emb/embedding": t(model.embedding.weight), "head/kernel": t(model.linear.weight).T}
    for i, b in enumerate(model.blocks):
        pre = f"blocks/{i}/"
        qkv = [torch.cat([t(getattr(h, w).weight).T for h in b.heads], dim=1) for w in ("Wq", "Wk", "Wv")]
        out.update({pre + "attn/qkv/kernel": torch.cat(qkv, dim=1), pre + "attn/out/kernel": t(b.Wo.weight).T,
                    pre + "ln1/scale": t(b.self_attn_norm.weight), pre + "ln1/bias": t(b.self_attn_norm.bias),
                    pre + "ln2/scale": t(b.ffn_norm.weight), pre + "ln2/bias": t(b.ffn_norm.bias),
                    pre + "mlp_in/kernel": t(b.ffn[0].weight).T, pre + "mlp_out/kernel": t(b.ffn[2].weight).T})
    return {k: np.array(v.detach().numpy(), np.float32) for k, v in out.items()}
