"""A PyTorch re-implementation of ironjr/grokfast's algorithmic-data setup (main.py and grokfast.py), written for
the parity tests from a reading of the source: the causal decoder (``Block`` / ``Decoder``), the gradient filters
(``gradfilter_ema`` / ``gradfilter_ma``) and the optimiser (``torch.optim.Adam`` with its weight decay and the
``LambdaLR`` warm-up ``update / 10``). Nothing here is jgrok code but the bridges at the end (jgrok's program for a
config, torch weights as jgrok's parameter tree, jgrok's update); tests/test_fidelity_grokfast.py compares the two.

Layout as in the source: sequences are [T, B] (sequence first), the attention is ``nn.MultiheadAttention`` with an
additive -inf mask above the diagonal, and the block normalises the stream *before* the attention residual:
``x = ln_1(x); x = x + attn(x); x = x + mlp(ln_2(x))``.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x_TxBxD):
        T = x_TxBxD.shape[0]
        mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
        x_TxBxD = self.ln_1(x_TxBxD)
        a, _ = self.attn(x_TxBxD, x_TxBxD, x_TxBxD, attn_mask=mask, need_weights=False)
        x_TxBxD = x_TxBxD + a
        return x_TxBxD + self.mlp(self.ln_2(x_TxBxD))


class Decoder(nn.Module):
    def __init__(self, dim: int = 128, layers: int = 2, heads: int = 4, tokens: int = 99, seq_len: int = 5):
        super().__init__()
        self.token_embeddings = nn.Embedding(tokens, dim)
        self.position_embeddings = nn.Embedding(seq_len, dim)
        self.layers = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, tokens, bias=False)

    def forward(self, tokens_TxB):
        """Logits at every position, [T, B, V] (the source takes logits[-1] for the answer)."""
        h = self.token_embeddings(tokens_TxB)
        h = h + self.position_embeddings(torch.arange(tokens_TxB.shape[0]).unsqueeze(-1)).expand_as(h)
        for layer in self.layers:
            h = layer(h)
        return self.head(self.ln_f(h))


def table(p: int = 97) -> np.ndarray:
    """[5, N] rows x, op, y, eq, x*y mod p for x in 0..p-1, y in 1..p-1 (x-major), eq = p, op = p + 1."""
    x, y = np.meshgrid(np.arange(p), np.arange(1, p), indexing="ij")
    x, y = x.ravel(), y.ravel()
    return np.stack([x, np.full_like(x, p + 1), y, np.full_like(x, p), x * y % p])


def jgrok_params(model: Decoder, grads: bool = False) -> dict[str, np.ndarray]:
    """The parameters (or, with grads, their current .grad) under jgrok's flat names (Linear kernels [in, out] =
    torch weight.T)."""
    t = (lambda p: p.grad) if grads else (lambda p: p)  # noqa: E731
    out = {"tok_emb/embedding": t(model.token_embeddings.weight),
           "pos_emb/embedding": t(model.position_embeddings.weight),
           "final_ln/scale": t(model.ln_f.weight), "final_ln/bias": t(model.ln_f.bias),
           "head/kernel": t(model.head.weight).T}
    for i, b in enumerate(model.layers):
        pre = f"blocks/{i}/"
        out.update({pre + "attn/qkv/kernel": t(b.attn.in_proj_weight).T, pre + "attn/qkv/bias": t(b.attn.in_proj_bias),
                    pre + "attn/out/kernel": t(b.attn.out_proj.weight).T,
                    pre + "attn/out/bias": t(b.attn.out_proj.bias),
                    pre + "ln1/scale": t(b.ln_1.weight), pre + "ln1/bias": t(b.ln_1.bias),
                    pre + "ln2/scale": t(b.ln_2.weight), pre + "ln2/bias": t(b.ln_2.bias),
                    pre + "mlp_in/kernel": t(b.mlp[0].weight).T, pre + "mlp_in/bias": t(b.mlp[0].bias),
                    pre + "mlp_out/kernel": t(b.mlp[2].weight).T, pre + "mlp_out/bias": t(b.mlp[2].bias)})
    return {k: np.array(v.detach().numpy()) for k, v in out.items()}


class EmaFilter:
    """gradfilter_ema: the memory starts as the first gradient; ema = alpha ema + (1 - alpha) g; g += lamb ema."""

    def __init__(self, alpha: float, lamb: float):
        self.alpha, self.lamb, self.ema = alpha, lamb, None

    def __call__(self, model: nn.Module):
        if self.ema is None:
            self.ema = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            self.ema[n] = self.ema[n] * self.alpha + p.grad.detach() * (1 - self.alpha)
            p.grad = p.grad + self.ema[n] * self.lamb


class MaFilter:
    """gradfilter_ma (mean, warm-up on): keep the last `window` raw gradients; g += lamb * their mean only once
    the window is full."""

    def __init__(self, window: int, lamb: float):
        self.window, self.lamb, self.buf = window, lamb, None

    def __call__(self, model: nn.Module):
        if self.buf is None:
            self.buf = {n: deque(maxlen=self.window) for n, _ in model.named_parameters()}
        for n, p in model.named_parameters():
            self.buf[n].append(p.grad.detach().clone())
            if len(self.buf[n]) == self.window:
                p.grad = p.grad + sum(self.buf[n]) / len(self.buf[n]) * self.lamb


def optimizer(model: nn.Module, wd: float, lr: float = 1e-3):
    """main.py's default optimiser: torch.optim.Adam (coupled L2 weight decay) and the 10-update linear warm-up."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda update: 1 if update > 10 else update / 10)
    return opt, sched


def jgrok_program(cfg):
    """jgrok's Program of one Grokfast config (default init, the config's filter) and its task table."""
    from jgrok import train
    from jgrok.tasks import algorithmic

    table = algorithmic.build(cfg.task.name, cfg.task)
    filters = ("none",) if cfg.optim.filter == "none" else ("none", cfg.optim.filter)
    return train.Program(cfg=cfg, n_inputs=table.n_vocab, n_out=table.n_out, n_rows=table.n_pairs,
                         n_train=table.n_train, schemes=("default",), filters=filters,
                         window_max=cfg.optim.filter_window), table


def jgrok_tree(prog, flat: dict[str, np.ndarray]):
    """jgrok_params' flat arrays as the program's parameter tree; the names must be exactly the program's."""
    import jax
    import jax.numpy as jnp

    from jgrok import init

    leaves, treedef = jax.tree_util.tree_flatten_with_path(prog.model[1])
    assert sorted(flat) == sorted(init.path_str(p) for p, _ in leaves)  # the same set of tensors, no extra bias
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[init.path_str(p)]) for p, _ in leaves])


def jgrok_update(prog):
    """jgrok's optimiser for the program's config (its filter, lr, decay) and its jitted update on the answer loss:
    (tx, step) with step(params, opt_state, x_BxT, y_B) -> (params, opt_state)."""
    import jax
    import jax.numpy as jnp

    from jgrok import losses, optim, train

    o = prog.cfg.optim
    hp = train.Hyper(lr=jnp.float32(o.lr), wd=jnp.float32(o.wd), init_scale=1.0,
                     filter_kind=jnp.int32(prog.filters.index(o.filter)), filter_alpha=jnp.float32(o.filter_alpha),
                     filter_lambda=jnp.float32(o.filter_lambda), filter_window=jnp.int32(o.filter_window),
                     split_seed=0, order_seed=0, seed_G=None, scheme_G=None, perturb=0)
    tx = optim.make_tx(o, hp, prog.filters, prog.window_max)

    @jax.jit
    def step(params, opt_state, x, y):
        g = jax.grad(lambda p: losses.xent(train.apply(prog, p, x), y, jnp.ones(len(y)))[0])(params)
        u, opt_state = tx.update(g, opt_state, params)
        return jax.tree.map(lambda p, d: p + d, params, u), opt_state

    return tx, step
