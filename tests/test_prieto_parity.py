"""Prieto et al. 2025 parity: jgrok's MLP (logits, gradients), StableMax and precision losses (value, gradient) and
⊥Grad update equal PyTorch re-implementations of the source's functions (benchmarks/prieto_reference.py) on the
same inputs. Skipped without torch."""

import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import prieto_reference as ref  # noqa: E402

from jgrok import config, grid, init, losses, optim, train  # noqa: E402

P = 23


def mlp_program(bias: bool):
    cfg = config.from_dict({"task": {"name": "x_plus_y", "p": P, "fraction": 0.4},
                            "model": {"kind": "mlp", "hidden": [32, 24], "bias": bias},
                            "train": {"steps": 2, "sampling": "full"}})
    (prog, table, _), = grid.programs(cfg, grid.expand(cfg))
    return prog, table


def nested(prog, flat):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(prog.model[1])
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[init.path_str(p)]) for p, _ in leaves])


def loss_prog(loss="answer", precision=32):
    return types.SimpleNamespace(cfg=types.SimpleNamespace(train=types.SimpleNamespace(
        loss=loss, softmax_precision=precision)))


@pytest.mark.parametrize("bias", [False, True])
def test_mlp_logits_and_gradients_match_torch(bias):
    prog, table = mlp_program(bias)
    torch.manual_seed(0)
    model = ref.MLP(2 * P, [32, 24], P, bias=bias)
    params = nested(prog, ref.to_jgrok_params(model))
    idx = np.random.default_rng(0).choice(table.n_pairs, 64, replace=False)
    x, y = table.inputs[idx], table.targets[idx]
    feats = ref.features(x[:, 0] - 2, x[:, 2] - 2, P)
    ours = np.asarray(train.apply(prog, params, x))
    np.testing.assert_allclose(ours, model(feats).detach().numpy(), rtol=1e-5, atol=1e-6)

    g = jax.grad(lambda p: losses.xent(train.apply(prog, p, x), jnp.asarray(y), jnp.ones(len(y)),
                                       lambda z: losses.log_probs(prog, z))[0])(params)
    ref.cross_entropy(model(feats), torch.as_tensor(y), 32).backward()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.grad)
    theirs = ref.to_jgrok_params(model)
    ours_g = {init.path_str(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(g)[0]}
    assert set(ours_g) == set(theirs)
    for name, v in ours_g.items():
        np.testing.assert_allclose(v, theirs[name], rtol=1e-4, atol=1e-7 * np.abs(theirs[name]).max(), err_msg=name)


def test_mlp_parameter_count():
    prog, _ = mlp_program(False)
    assert prog.n_params == 2 * P * 32 + 32 * 24 + 24 * P
    from jgrok.models import mlp

    assert mlp.n_params(226, (200, 200), 113, False) == 107_800  # the source's Figure 1 model


def _logits(scale=30.0):
    rng = np.random.default_rng(1)
    return (rng.standard_normal((64, P)) * scale).astype(np.float32), rng.integers(0, P, 64).astype(np.int32)


@pytest.mark.parametrize("loss,precision", [("stablemax", 64), ("answer", 64), ("answer", 32), ("answer", 16),
                                            ("stablemax", 32)])
def test_loss_and_gradient_match_torch(loss, precision):
    z, y = _logits(30.0 if precision != 16 else 3.0)
    prog = loss_prog(loss, precision)
    with jax.enable_x64(precision == 64):
        val, grad = jax.value_and_grad(lambda l: losses.xent(l, jnp.asarray(y), jnp.ones(len(y), jnp.float32),
                                                             lambda q: losses.log_probs(prog, q))[0])(jnp.asarray(z))
        val, grad = np.asarray(val), np.asarray(grad)
    zt = torch.tensor(z, requires_grad=True)
    if loss == "stablemax":
        if precision == 64:  # the source's function: always float64
            t = ref.stablemax_cross_entropy(zt, torch.as_tensor(y))
        else:  # the same formula in float32 (a jgrok option the source does not have)
            s = ref._s(zt)
            t = -torch.log(s / s.sum(-1, keepdim=True)).gather(-1, torch.as_tensor(y).long()[:, None]).mean()
    else:
        t = ref.cross_entropy(zt, torch.as_tensor(y), precision)
    t.backward()
    tol = {16: 2e-3, 32: 1e-6, 64: 1e-12 if loss == "stablemax" else 1e-7}[precision]  # source: float64 CE -> float32
    np.testing.assert_allclose(val, t.detach().double().numpy(), rtol=tol)
    theirs = zt.grad.numpy()  # p - onehot: its answer entry cancels, so the tolerance is relative to the largest
    np.testing.assert_allclose(grad, theirs, rtol={16: 5e-3, 32: 1e-5, 64: 1e-6}[precision],
                               atol={16: 1e-2, 32: 3e-7, 64: 1e-12}[precision] * np.abs(theirs).max())
    assert grad.dtype == np.float32  # the gradient returns to the model's dtype


def test_softmax_collapse_float32_answer_gradient_vanishes_float64_and_stablemax_keep_it():
    """A margin of 30 between the answer and every other logit: float32 rounds the answer's softmax probability to
    exactly 1, so its loss and the answer's gradient are exactly 0 (softmax collapse); in float64 the answer's
    gradient is -(1 - p) ~ -2e-12, and StableMax's probabilities decay only like 1 / z, so its gradient stays large."""
    z = np.zeros((1, P), np.float32)
    z[0, 3] = 30.0
    y = jnp.array([3], jnp.int32)

    def value_and_grad(loss, precision):
        with jax.enable_x64(precision == 64):
            prog = loss_prog(loss, precision)
            f = lambda l: losses.xent(l, y, jnp.ones(1, jnp.float32), lambda q: losses.log_probs(prog, q))[0]  # noqa
            v, g = jax.value_and_grad(f)(jnp.asarray(z))
            return float(v), np.asarray(g)[0]

    v32, g32 = value_and_grad("answer", 32)
    assert v32 == 0.0 and g32[3] == 0.0
    v64, g64 = value_and_grad("answer", 64)
    assert v64 > 0 and g64[3] < 0
    assert abs(value_and_grad("stablemax", 64)[1][3]) > 1e-3


def test_orthograd_adamw_update_matches_torch():
    rng = np.random.default_rng(2)
    shapes = {"a": (5, 3), "b": (7,)}
    w0 = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(4)]

    tp = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in w0.items()}
    opt = ref.OrthoGrad(list(tp.values()), torch.optim.AdamW, lr=0.01, weight_decay=0.0)  # torch default betas/eps
    for g in grads:
        for k, p in tp.items():
            p.grad = torch.tensor(g[k])
        opt.step()

    ocfg = config.OptimConfig(name="adamw", lr=0.01, wd=0.0, b1=0.9, b2=0.999, eps=1e-8, warmup=0,
                              orthogonal_grad=True)
    hp = train.Hyper(lr=jnp.float32(0.01), wd=jnp.float32(0.0), init_scale=1.0, filter_kind=0, filter_alpha=0.0,
                     filter_lambda=0.0, filter_window=1, split_seed=0, order_seed=0, seed_G=None, scheme_G=None,
                     perturb=0, orthogonal_grad=jnp.bool_(True))
    tx = optim.make_tx(ocfg, hp, ("none",), 1)
    params = {k: jnp.asarray(v) for k, v in w0.items()}
    state = tx.init(params)
    for g in grads:
        upd, state = tx.update({k: jnp.asarray(v) for k, v in g.items()}, state, params)
        params = jax.tree.map(lambda p, u: p + u, params, upd)
    for k in shapes:
        np.testing.assert_allclose(np.asarray(params[k]), tp[k].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_source_orthograd_runs_with_torch_default_betas():
    """What grokking_experiments.py builds for --orthogonal_gradients: an AdamW(eps 1e-25, betas (0.9, beta2)) whose
    state dict is loaded into an OrthoGrad wrapping a *new* AdamW(lr, weight_decay). The wrapped optimiser that
    steps keeps torch's defaults, betas (0.9, 0.999) and eps 1e-8: the values the prieto_2025 preset uses."""
    w = torch.nn.Parameter(torch.ones(3))
    base = torch.optim.AdamW([w], lr=0.01, weight_decay=0, eps=1e-25, betas=(0.9, 0.99))
    opt = ref.OrthoGrad([w], type(base), lr=0.01, weight_decay=0)
    opt.load_state_dict(base.state_dict())
    group = opt.base.param_groups[0]
    preset = config.load("prieto_2025")
    ortho = config.variant_config(preset, "orthogonal").optim
    assert (group["betas"], group["eps"]) == ((ortho.b1, ortho.b2), ortho.eps) == ((0.9, 0.999), 1e-8)
