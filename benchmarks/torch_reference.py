"""PyTorch reference of the AI-Scientist "grokking" template experiment, used to benchmark jgrok.

This is an independent re-implementation of what users run today, with the template's numbers:

Data.  Vocabulary ["o", "="] + elements, so element k has token id 2 + k. An example is the pair index i
(a = elems1[i // len(elems2)], b = elems2[i % len(elems2)]), its input is the 4 tokens [a, "o", b, "="] and its
label is the index of c among the elements:
  x_plus_y    c = (a + b) % p          a, b in [0, p)
  x_minus_y   c = (a - b) % p          a, b in [0, p)
  x_div_y     c = a * b^(p-2) % p      a in [0, p), b in [1, p)
  permutation c[i] = a[b[i]]           a, b in sorted(itertools.permutations(range(5))) (120 elements)
The template orders its elements with list(set(...)), which Python does not define; here (as in jgrok) they are
0..p-1 and the sorted permutations. The split shuffles all N pair indices with numpy default_rng(seed) and keeps
the first floor(N * frac) as train, the rest as val.

Model.  Token Embedding(V, 128) + position Embedding(5, 128); 2 post-LN decoder blocks
x = LN(x + MHA(x, causal mask)); x = LN(x + Linear(512->128)(GELU(Linear(128->512)(x)))), with
torch.nn.MultiheadAttention(128, 4 heads) in the sequence-first layout; final LayerNorm; Linear(128, n_out); the
logits are those of the last position. PyTorch default init after torch.manual_seed(1337 + seed), modules created
in the template's order and with its attribute names (its state dicts load here). 422,625 parameters for p = 97,
428,536 for permutation.

Training.  AdamW(lr 1e-3, betas (0.9, 0.98), weight decay 0.5); LambdaLR lr * min(s / 50, 1), so update number
u = 1, 2, ... uses lr * min((u - 1) / 50, 1) and the first update has lr 0. Each update draws a batch of 512 train
pairs with replacement: positions default_rng([seed, 1, u]).integers(0, n_train, 512) into the train split.
After every eval_every updates (and after the last one) we evaluate:
  train loss / acc = mean over the updates since the last evaluation of the batch loss / batch accuracy;
  val loss / acc   = cross-entropy / accuracy of the logits, either on the full val split ("full", what jgrok
                       does; default) or, as the template does, on 8 batches of 512 val pairs drawn with
                       replacement by default_rng([seed, 2, u]) ("template"; mean over the 4096 examples);
  steps to 99% val acc = the first evaluation step with val acc > 0.99; the number of updates if never.
Evaluation draws no training randomness, so changing it leaves training unchanged.

Modes.  eager: one seed after another. compile: the same with torch.compile(model) (forward and backward
compiled; AdamW eager; one compiled module reused for every seed). vmap: all S seeds at once, parameters stacked
with torch.func.stack_module_state and run with functional_call under torch.func.vmap; the summed loss is
backpropagated and one AdamW steps the stacked parameters (AdamW is elementwise, so each seed trains as alone).

Measurement (one line of JSON, also written to --json):
  total_s                     wall time of the whole mode, evaluation and warm-up included;
  warmup_s                    wall time from the start to the end of update --warmup-steps (and of the
                                evaluation after it, if any) of the first seed (eager, compile) or of the
                                stacked seeds (vmap); compile time lands here;
  seed_steps_per_s            seed-updates done after the warm-up / (total_s - warmup_s);
  seed_steps_per_s_incl_warmup  updates x seeds / total_s.

  python benchmarks/torch_reference.py --mode vmap --seeds 4 --steps 200 --threads 2 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import itertools
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

try:
    from jgrok.errors import ConfigError, UserError
except ImportError:  # run as a script from a checkout where jgrok is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from jgrok.errors import ConfigError, UserError

TASKS = ("x_plus_y", "x_minus_y", "x_div_y", "permutation")
MODES = ("eager", "compile", "vmap")
EVALS = ("full", "template")
D, HEADS, LAYERS, SEQ_LEN = 128, 4, 2, 5
LR, BETAS, WEIGHT_DECAY, WARMUP = 1e-3, (0.9, 0.98), 0.5, 50
TEMPLATE_EVAL_BATCHES = 8
N_PARAMS = {"mod97": 422_625, "permutation": 428_536}
CURVE_KEYS = ("step", "train_loss", "train_acc", "val_loss", "val_acc")


# ----------------------------------------------------------------------------------------------------- data


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Every pair of a task; row i is pair index i. Token ids: "o" = 0, "=" = 1, element k = 2 + k."""

    inputs_Nx4: np.ndarray  # int64 [a, "o", b, "="]
    labels_N: np.ndarray  # int64 index of c among the elements
    train_idx: np.ndarray  # int64 pair indices of the train split
    val_idx: np.ndarray  # int64 pair indices of the val split
    n_vocab: int
    n_out: int


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % k for k in range(2, math.isqrt(p) + 1))


def _table(task: str, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(element index of a, of b, of c) for every pair index, and the number of elements."""
    if task == "permutation":
        perms_Ex5 = np.array(sorted(itertools.permutations(range(5))), dtype=np.int64)
        n = len(perms_Ex5)
        a_N, b_N = np.divmod(np.arange(n * n), n)
        c_Nx5 = np.take_along_axis(perms_Ex5[a_N], perms_Ex5[b_N], axis=1)  # c[i] = a[b[i]]
        # Lexicographic order of digit tuples = numeric order of their base-5 codes.
        codes_E = perms_Ex5 @ 5 ** np.arange(4, -1, -1)
        c_N = np.searchsorted(codes_E, c_Nx5 @ 5 ** np.arange(4, -1, -1))
        return a_N, b_N, c_N, n
    elems2 = np.arange(1, p) if task == "x_div_y" else np.arange(p)
    a_N, b_pos_N = np.divmod(np.arange(p * len(elems2)), len(elems2))
    b_N = elems2[b_pos_N]
    if task == "x_plus_y":
        c_N = (a_N + b_N) % p
    elif task == "x_minus_y":
        c_N = (a_N - b_N) % p
    else:
        inv_N = np.array([pow(int(b), p - 2, p) for b in elems2])[b_pos_N]
        c_N = a_N * inv_N % p
    return a_N, b_N, c_N, p


def make_dataset(task: str, p: int = 97, frac: float = 0.5, seed: int = 0) -> Dataset:
    """All pairs of `task` and the split of split seed `seed` (see the module docstring)."""
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.")
    if task != "permutation" and not _is_prime(p):
        raise ConfigError(f"p = {p} is not a prime; use a prime modulus such as 97.")
    a_N, b_N, c_N, n_elems = _table(task, p)
    n = len(c_N)
    n_train = int(n * frac)
    if not 0 < n_train < n:
        raise ConfigError(f"frac = {frac} leaves an empty train or val split of {n} pairs; use 0 < frac < 1.")
    order_N = np.random.default_rng(seed).permutation(n)
    inputs_Nx4 = np.stack([a_N + 2, np.zeros_like(a_N), b_N + 2, np.ones_like(a_N)], axis=1)
    return Dataset(
            inputs_Nx4=inputs_Nx4.astype(np.int64),
            labels_N=c_N.astype(np.int64),
            train_idx=order_N[:n_train].astype(np.int64),
            val_idx=order_N[n_train:].astype(np.int64),
            n_vocab=n_elems + 2,
            n_out=n_elems,
    )


def batch_positions(seed: int, update: int, n_train: int, batch_size: int) -> np.ndarray:
    """Positions into the train split of the batch of update number `update` (1-based), with replacement."""
    return np.random.default_rng([seed, 1, update]).integers(0, n_train, batch_size)


def template_eval_positions(seed: int, step: int, n_val: int, batch_size: int) -> np.ndarray:
    """[8, batch_size] positions into the val split of the template-style evaluation after update `step`."""
    return np.random.default_rng([seed, 2, step]).integers(0, n_val, (TEMPLATE_EVAL_BATCHES, batch_size))


# ---------------------------------------------------------------------------------------------------- model


class DecoderBlock(nn.Module):
    """Post-LN block: x = LN(x + MHA(x)); x = LN(x + MLP(x)); sequence-first [T, B, D]."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads)
        self.self_attn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ffn_norm = nn.LayerNorm(d)

    def forward(self, x_TxBxD: torch.Tensor) -> torch.Tensor:
        t = x_TxBxD.shape[0]
        mask_TxT = torch.full((t, t), -float("inf"), device=x_TxBxD.device, dtype=x_TxBxD.dtype)
        mask_TxT = torch.triu(mask_TxT, diagonal=1)
        attn_TxBxD, _ = self.self_attn(x_TxBxD, x_TxBxD, x_TxBxD, attn_mask=mask_TxT)
        x_TxBxD = self.self_attn_norm(x_TxBxD + attn_TxBxD)
        return self.ffn_norm(x_TxBxD + self.ffn(x_TxBxD))


class Transformer(nn.Module):
    """tokens [B, T] -> logits of the last position [B, n_out]."""

    def __init__(self, n_vocab: int, n_out: int, d: int = D, heads: int = HEADS, layers: int = LAYERS):
        super().__init__()
        self.token_embeddings = nn.Embedding(n_vocab, d)
        self.position_embeddings = nn.Embedding(SEQ_LEN, d)
        self.model = nn.Sequential(
                *[DecoderBlock(d, heads) for _ in range(layers)], nn.LayerNorm(d), nn.Linear(d, n_out)
        )

    def forward(self, tokens_BxT: torch.Tensor) -> torch.Tensor:
        pos_T = torch.arange(tokens_BxT.shape[1], device=tokens_BxT.device)
        x_BxTxD = self.token_embeddings(tokens_BxT) + self.position_embeddings(pos_T)
        return self.model(x_BxTxD.transpose(0, 1))[-1]


def _sizes(task: str, p: int) -> tuple[int, int]:
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.")
    n = 120 if task == "permutation" else p
    return n + 2, n


def build_model(task: str, p: int = 97, seed: int | None = None, dims: tuple[int, int, int] = (D, HEADS, LAYERS)
                ) -> Transformer:
    """The template's model for `task`; with a seed, its init after torch.manual_seed(1337 + seed).
    dims = (width, heads, layers) shrinks it for benchmarks of small models (the template's by default)."""
    n_vocab, n_out = _sizes(task, p)
    if seed is not None:
        torch.manual_seed(1337 + seed)
    model = Transformer(n_vocab, n_out, *dims)
    key = "permutation" if task == "permutation" else f"mod{p}"
    n_params = sum(w.numel() for w in model.parameters())
    assert dims != (D, HEADS, LAYERS) or key not in N_PARAMS or n_params == N_PARAMS[key], (key, n_params)
    return model


def _jgrok_names(n_layers: int) -> dict[str, tuple[str, bool]]:
    """jgrok name -> (torch parameter name, transpose)."""
    names = {
            "tok_emb/embedding": ("token_embeddings.weight", False),
            "pos_emb/embedding": ("position_embeddings.weight", False),
            "final_ln/scale": (f"model.{n_layers}.weight", False),
            "final_ln/bias": (f"model.{n_layers}.bias", False),
            "head/kernel": (f"model.{n_layers + 1}.weight", True),
            "head/bias": (f"model.{n_layers + 1}.bias", False),
    }
    for i in range(n_layers):
        t, j = f"model.{i}.", f"blocks/{i}/"
        names |= {
                j + "attn/qkv/kernel": (t + "self_attn.in_proj_weight", True),
                j + "attn/qkv/bias": (t + "self_attn.in_proj_bias", False),
                j + "attn/out/kernel": (t + "self_attn.out_proj.weight", True),
                j + "attn/out/bias": (t + "self_attn.out_proj.bias", False),
                j + "ln1/scale": (t + "self_attn_norm.weight", False),
                j + "ln1/bias": (t + "self_attn_norm.bias", False),
                j + "mlp_in/kernel": (t + "ffn.0.weight", True),
                j + "mlp_in/bias": (t + "ffn.0.bias", False),
                j + "mlp_out/kernel": (t + "ffn.2.weight", True),
                j + "mlp_out/bias": (t + "ffn.2.bias", False),
                j + "ln2/scale": (t + "ffn_norm.weight", False),
                j + "ln2/bias": (t + "ffn_norm.bias", False),
        }
    return names


def to_jgrok_params(model: nn.Module) -> dict[str, np.ndarray]:
    """The parameters in jgrok's flat layout, float32 numpy; Linear kernels are [in, out] (torch weight.T).

    The qkv kernel [D, 3D] keeps torch's column order q | k | v, each split into HEADS heads of D / HEADS
    contiguous columns.
    """
    params = dict(getattr(model, "_orig_mod", model).named_parameters())
    out = {}
    for name, (torch_name, transpose) in _jgrok_names(LAYERS).items():
        w = params[torch_name].detach().to("cpu", torch.float32)
        out[name] = np.ascontiguousarray((w.T if transpose else w).numpy())
    return out


def load_jgrok_params(model: nn.Module, params: dict[str, np.ndarray]) -> None:
    """Inverse of to_jgrok_params: copies jgrok-layout arrays into `model` in place."""
    torch_params = dict(getattr(model, "_orig_mod", model).named_parameters())
    with torch.no_grad():
        for name, (torch_name, transpose) in _jgrok_names(LAYERS).items():
            w = torch.as_tensor(np.asarray(params[name], np.float32))
            torch_params[torch_name].copy_(w.T if transpose else w)


# ------------------------------------------------------------------------------------------------- training


def _lr_factor(s: int) -> float:
    return min(s / WARMUP, 1.0)


def _optimizer(params) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class _SeedData:
    seed: int
    inputs_Nx4: torch.Tensor
    labels_N: torch.Tensor
    train_idx: torch.Tensor
    val_idx: torch.Tensor


def _seed_data(task: str, seed: int, p: int, frac: float, device: torch.device) -> _SeedData:
    ds = make_dataset(task, p, frac, seed)
    to = lambda a: torch.from_numpy(a).to(device)
    return _SeedData(seed, to(ds.inputs_Nx4), to(ds.labels_N), to(ds.train_idx), to(ds.val_idx))


def _train_batch(d: _SeedData, update: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    pos_B = torch.from_numpy(batch_positions(d.seed, update, len(d.train_idx), batch_size))
    idx_B = d.train_idx[pos_B.to(d.train_idx.device)]
    return d.inputs_Nx4[idx_B], d.labels_N[idx_B]


def _val_batches(d: _SeedData, step: int, eval_mode: str, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The val examples of one evaluation, as a list of (inputs, labels) batches."""
    if eval_mode == "full":
        return [(d.inputs_Nx4[d.val_idx], d.labels_N[d.val_idx])]
    pos = torch.from_numpy(template_eval_positions(d.seed, step, len(d.val_idx), batch_size))
    idx_KxB = d.val_idx[pos.to(d.val_idx.device)]
    return [(d.inputs_Nx4[i], d.labels_N[i]) for i in idx_KxB]


def _loss_acc(logits_BxV: torch.Tensor, labels_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    loss = F.cross_entropy(logits_BxV, labels_B)
    return loss, (logits_BxV.argmax(-1) == labels_B).float().mean()


def _loop(step_fn, eval_fn, batch_fn, steps: int, eval_every: int, warmup_steps: int, device) -> tuple[list, float]:
    """Runs updates 1..steps for S stacked seeds; returns per-seed curves and perf_counter() after warm-up.

    step_fn(x, y) -> (loss_S, acc_S) does one update; eval_fn(step) -> (val_loss_S, val_acc_S);
    batch_fn(update) -> (x, y).
    """
    sums_2xS, since, rows, t_warm = None, 0, [], None
    for update in range(1, steps + 1):
        loss_S, acc_S = step_fn(*batch_fn(update))
        stat_2xS = torch.stack([loss_S.detach(), acc_S.detach()]).double()
        sums_2xS = stat_2xS if sums_2xS is None else sums_2xS + stat_2xS
        since += 1
        if update % eval_every == 0 or update == steps:
            val_loss_S, val_acc_S = eval_fn(update)
            train_2xS = (sums_2xS / since).cpu().numpy()
            val_2xS = torch.stack([val_loss_S, val_acc_S]).double().cpu().numpy()
            rows.append((update, *train_2xS, *val_2xS))
            sums_2xS, since = None, 0
        if update == warmup_steps:
            _sync(device)
            t_warm = time.perf_counter()
    n_seeds = len(rows[0][1])
    curves = []
    for s in range(n_seeds):
        c = {k: [row[0] if k == "step" else float(row[i][s]) for row in rows] for i, k in enumerate(CURVE_KEYS)}
        c["steps_to_99"] = next((st for st, acc in zip(c["step"], c["val_acc"]) if acc > 0.99), steps)
        curves.append(c)
    return curves, t_warm


def _eval_model(model: nn.Module, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy over all examples of equal-size (or single) batches, shape [1]."""
    model.eval()
    with torch.no_grad():
        stats = torch.stack([torch.stack(_loss_acc(model(x), y)) for x, y in batches]).mean(0)
    model.train()
    return stats[:1], stats[1:]


def _run_single(model: nn.Module, d: _SeedData, steps, eval_every, batch_size, eval_mode, warmup_steps, device):
    opt, sched = _optimizer(model.parameters())

    def step_fn(x_BxT, y_B):
        opt.zero_grad(set_to_none=True)
        loss, acc = _loss_acc(model(x_BxT), y_B)
        loss.backward()
        opt.step()
        sched.step()
        return loss[None], acc[None]

    eval_fn = lambda step: _eval_model(model, _val_batches(d, step, eval_mode, batch_size))
    batch_fn = lambda update: _train_batch(d, update, batch_size)
    curves, t_warm = _loop(step_fn, eval_fn, batch_fn, steps, eval_every, warmup_steps, device)
    return curves[0], t_warm


def _run_eager(task, seeds, steps, eval_every, batch_size, eval_mode, warmup_steps, device, p, frac, dims, compiled):
    curves, t_warm, shared = [], None, None
    for seed in seeds:
        d = _seed_data(task, seed, p, frac, device)
        model = build_model(task, p, seed, dims).to(device)
        if compiled:  # one compiled module for all seeds: load each seed's init into it (no recompiles)
            if shared is None:
                shared = torch.compile(model, dynamic=False)
            else:
                shared._orig_mod.load_state_dict(model.state_dict())
            model = shared
        c, t = _run_single(model, d, steps, eval_every, batch_size, eval_mode, warmup_steps, device)
        curves.append(c)
        t_warm = t if t_warm is None else t_warm
    return curves, t_warm


def _run_vmap(task, seeds, steps, eval_every, batch_size, eval_mode, warmup_steps, device, p, frac, dims):
    data = [_seed_data(task, s, p, frac, device) for s in seeds]
    models = [build_model(task, p, s, dims).to(device) for s in seeds]
    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt, sched = _optimizer(list(params.values()))

    def loss_acc_one(params, buffers, x_BxT, y_B):
        return _loss_acc(torch.func.functional_call(base, (params, buffers), (x_BxT,)), y_B)

    loss_acc = torch.func.vmap(loss_acc_one, in_dims=(0, 0, 0, 0))

    def step_fn(x_SxBxT, y_SxB):
        opt.zero_grad(set_to_none=True)
        loss_S, acc_S = loss_acc(params, buffers, x_SxBxT, y_SxB)
        loss_S.sum().backward()  # seeds are independent: d(sum)/d(params of seed s) = d(loss_s)/d(params of s)
        opt.step()
        sched.step()
        return loss_S, acc_S

    def eval_fn(step):
        per_seed = [_val_batches(d, step, eval_mode, batch_size) for d in data]
        with torch.no_grad():
            stats = []
            for k in range(len(per_seed[0])):
                x = torch.stack([b[k][0] for b in per_seed])
                y = torch.stack([b[k][1] for b in per_seed])
                stats.append(torch.stack(loss_acc(params, buffers, x, y)))
            stats_2xS = torch.stack(stats).mean(0)
        return stats_2xS[0], stats_2xS[1]

    def batch_fn(update):
        xs, ys = zip(*[_train_batch(d, update, batch_size) for d in data])
        return torch.stack(xs), torch.stack(ys)

    return _loop(step_fn, eval_fn, batch_fn, steps, eval_every, warmup_steps, device)


def _check(task, mode, n_seeds, steps, eval_every, batch_size, eval_mode, warmup_steps, device):
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.")
    if mode not in MODES:
        raise ConfigError(f"Unknown mode {mode!r}; use one of {', '.join(MODES)}.")
    if eval_mode not in EVALS:
        raise ConfigError(f"Unknown eval {eval_mode!r}; use one of {', '.join(EVALS)}.")
    for name, v in (("seeds", n_seeds), ("steps", steps), ("eval_every", eval_every), ("batch_size", batch_size)):
        if v < 1:
            raise ConfigError(f"{name} = {v}; use a positive integer.")
    if not 0 <= warmup_steps < steps:
        raise ConfigError(f"warmup_steps = {warmup_steps}; use 0 <= warmup_steps < steps = {steps}.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = cuda but this torch sees no CUDA device; use --device cpu.")


def run(
        task: str = "x_div_y",
        mode: str = "eager",
        seeds: list[int] | tuple[int, ...] = (0,),
        steps: int = 7500,
        eval_every: int = 10,
        batch_size: int = 512,
        eval_mode: str = "full",
        warmup_steps: int = 10,
        device: str = "cpu",
        p: int = 97,
        frac: float = 0.5,
        dims: tuple[int, int, int] = (D, HEADS, LAYERS),
) -> dict:
    """Trains every seed in `mode`; returns the measurement (see the module docstring) and per-seed curves.
    dims = (width, heads, layers) of the model (the template's by default)."""
    dev = torch.device(device)
    _check(task, mode, len(seeds), steps, eval_every, batch_size, eval_mode, warmup_steps, dev)
    args = (task, list(seeds), steps, eval_every, batch_size, eval_mode, warmup_steps, dev, p, frac, tuple(dims))
    _sync(dev)
    t0 = time.perf_counter()
    if mode == "vmap":
        curves, t_warm = _run_vmap(*args)
    else:
        curves, t_warm = _run_eager(*args, compiled=mode == "compile")
    _sync(dev)
    total_s = time.perf_counter() - t0
    warmup_s = t_warm - t0 if warmup_steps else 0.0
    warm_seed_steps = warmup_steps * (len(seeds) if mode == "vmap" else 1)
    return {
            "task": task, "mode": mode, "seeds": len(seeds), "steps": steps, "eval_every": eval_every,
            "eval": eval_mode, "batch_size": batch_size, "device": str(dev), "warmup_steps": warmup_steps,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.platform(),
            "date": datetime.date.today().isoformat(),
            "total_s": total_s, "warmup_s": warmup_s,
            "seed_steps_per_s": (steps * len(seeds) - warm_seed_steps) / (total_s - warmup_s),
            "seed_steps_per_s_incl_warmup": steps * len(seeds) / total_s,
            "steps_to_99": [c["steps_to_99"] for c in curves],
            "final_val_acc": [c["val_acc"][-1] for c in curves],
            "curves": curves,
    }


def train_reference(
        task: str,
        seed: int,
        steps: int = 7500,
        eval_every: int = 10,
        batch_size: int = 512,
        eval_mode: str = "full",
        device: str = "cpu",
        p: int = 97,
        frac: float = 0.5,
) -> dict:
    """One eager run; returns its curves: lists step, train_loss, train_acc, val_loss, val_acc, and steps_to_99."""
    m = run(task, "eager", [seed], steps, eval_every, batch_size, eval_mode, 0, device, p, frac)
    return m["curves"][0]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="PyTorch reference of the AI-Scientist grokking template.")
    ap.add_argument("--task", default="x_div_y", choices=TASKS)
    ap.add_argument("--mode", default="eager", choices=MODES)
    ap.add_argument("--seeds", type=int, default=1, help="train seeds 0..N-1")
    ap.add_argument("--steps", type=int, default=7500)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--eval", default="full", choices=EVALS, help="full val split, or the template's 8x512 draws")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--warmup-steps", type=int, default=None, help="updates timed as warm-up (default eval-every)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--p", type=int, default=97)
    ap.add_argument("--frac", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=None, help="write the measurement here")
    ap.add_argument("--curves", action="store_true", help="keep the per-seed curves in the JSON")
    a = ap.parse_args(argv)
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    warmup = a.eval_every if a.warmup_steps is None else a.warmup_steps
    try:
        m = run(a.task, a.mode, list(range(a.seeds)), a.steps, a.eval_every, a.batch_size, a.eval, warmup,
                        a.device, a.p, a.frac)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if not a.curves:
        m.pop("curves")
    print(json.dumps({k: v for k, v in m.items() if k != "curves"}))
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(m, indent=1) + "\n")
    return m


if __name__ == "__main__":
    main()
