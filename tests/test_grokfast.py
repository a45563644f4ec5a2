"""Grokfast filters, grad_filter under vmap, optimiser variants vs NumPy/torch formulas, constant-norm rescale."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jgrok import grokfast as gf
from jgrok import optim
from jgrok.errors import ConfigError

T = 150  # gradient steps
SHAPES = {"w": (3, 4), "b": (5,)}
WMAX = 20


def grad_seq(seed, n=T):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=(n,) + s).astype(np.float32) for k, s in SHAPES.items()}


def np_ema(g_TxS, alpha, lamb):
    out, ema = [], None
    for g in g_TxS.astype(np.float64):
        ema = g if ema is None else alpha * ema + (1 - alpha) * g
        out.append(g + lamb * ema)
    return np.stack(out)


def np_ma(g_TxS, window, lamb):
    g_TxS = g_TxS.astype(np.float64)
    out = [g_TxS[t] + (lamb * g_TxS[t + 1 - window:t + 1].mean(0) if t + 1 >= window else 0) for t in range(len(g_TxS))]
    return np.stack(out)


def np_filter(kind, g_TxS, alpha, lamb, window):
    if kind == "none":
        return g_TxS.astype(np.float64)
    return np_ema(g_TxS, alpha, lamb) if kind == "ema" else np_ma(g_TxS, window, lamb)


@functools.partial(jax.jit, static_argnums=0)
def run_tx(make_tx, hp, grads):
    """Outputs of make_tx(*hp) applied to the gradient sequence (leaves T x shape); hp are traced."""
    params = jax.tree.map(lambda g: g[0], grads)
    tx = make_tx(*hp)

    def step(state, g):
        out, state = tx.update(g, state, params)
        return state, out

    return jax.lax.scan(step, tx.init(params), grads)[1]


def close(a, b, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=rtol, atol=atol)


def test_ema_matches_numpy():
    grads = grad_seq(0)
    out = run_tx(gf.grokfast_ema, (jnp.float32(0.98), jnp.float32(2.0)), grads)
    for k in SHAPES:
        close(out[k], np_ema(grads[k], 0.98, 2.0))


def test_ma_matches_numpy():
    grads = grad_seq(1)
    ma = lambda w, lamb: gf.grokfast_ma(w, lamb, WMAX)
    for window in (1, 7, WMAX):
        out = run_tx(ma, (jnp.int32(window), jnp.float32(1.5)), grads)
        for k in SHAPES:
            close(out[k], np_ma(grads[k], window, 1.5))


KP = ("ema", "none", "ma")  # deliberately not in KINDS order


def filt(kind, alpha, lamb, window):
    return gf.grad_filter(kind, alpha, lamb, window, kinds_present=KP, window_max=WMAX)


def test_grad_filter_vmap_mixed_kinds_equals_each_filter_alone():
    grads = grad_seq(2)
    lanes = [("none", 0.9, 1.0, 3), ("ema", 0.98, 2.0, 5), ("ma", 0.5, 1.5, WMAX), ("ma", 0.9, 0.5, 4),
             ("ema", 0.5, 0.7, 0)]  # the last window is invalid for 'ma' but unused by an 'ema' run
    hp = (jnp.array([gf.kind_index(k, KP) for k, *_ in lanes]), jnp.array([l[1] for l in lanes]),
          jnp.array([l[2] for l in lanes]), jnp.array([l[3] for l in lanes]))
    out = jax.vmap(lambda *h: run_tx(filt, h, grads))(*hp)
    alone = {"none": lambda a, l, w: optax.identity(), "ema": lambda a, l, w: gf.grokfast_ema(a, l),
             "ma": lambda a, l, w: gf.grokfast_ma(w, l, WMAX)}
    for r, (kind, alpha, lamb, window) in enumerate(lanes):
        ref = run_tx(alone[kind], (jnp.float32(alpha), jnp.float32(lamb), jnp.int32(window)), grads)
        for k in SHAPES:
            np.testing.assert_allclose(out[k][r], ref[k], rtol=1e-6, atol=1e-6)
            close(out[k][r], np_filter(kind, grads[k], alpha, lamb, window))


def test_state_structure_depends_only_on_static_settings():
    params = {k: jnp.zeros(s) for k, s in SHAPES.items()}
    s1 = gf.grad_filter(0, 0.9, 1.0, 3, kinds_present=KP, window_max=WMAX).init(params)
    s2 = gf.grad_filter(2, 0.5, 7.0, 9, kinds_present=KP, window_max=WMAX).init(params)
    assert jax.tree.structure(s1) == jax.tree.structure(s2)
    assert s1["ma"].buf["w"].shape == (WMAX, 3, 4)
    s3 = gf.grad_filter(0, 0.9, 1.0, 3, kinds_present=("none", "ema"), window_max=None).init(params)
    assert set(s3) == {"ema"}  # no MA buffers when no run uses 'ma'
    tx = gf.grad_filter(gf.kind_index("ema", KP), 0.9, 1.0, 3, kinds_present=KP, window_max=WMAX)
    _, s4 = tx.update(params, tx.init(params))
    assert int(s4["ema"].count) == 1 and int(s4["ma"].count) == 0  # only the run's own filter advances
    assert gf.grad_filter(0, 0.9, 1.0, 3, kinds_present=("none",), window_max=None).init(params) == {}


# ---- optimisers -------------------------------------------------------------------------------------------------

N_STEPS = 5
OPT_LANES = [dict(lr=1e-2, wd=1.0, b1=0.9, b2=0.98, eps=1e-8, mu=0.9),
             dict(lr=3e-3, wd=0.1, b1=0.8, b2=0.999, eps=1e-6, mu=0.0)]


def lr_at(lr0, count):  # linear warm-up over 4 updates; count = 0 for the first update
    return lr0 * jnp.minimum(1.0, (count + 1) / 4)


def np_optimizer(name, p0, g_NxS, lr, wd, b1, b2, eps, mu):
    """Direct torch formulas (torch AdamW / Adam(weight_decay) / SGD(momentum, weight_decay)), float64."""
    p, m, v, buf = p0.astype(np.float64), 0.0, 0.0, None
    for t, g in enumerate(g_NxS.astype(np.float64), start=1):
        lr_t = lr * min(1.0, t / 4)
        if name == "sgd":
            g = g + wd * p
            buf = g if buf is None else mu * buf + g
            p = p - lr_t * buf
            continue
        if name == "adamw":
            p = p - lr_t * wd * p
        else:
            g = g + wd * p
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - lr_t * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


@functools.partial(jax.jit, static_argnums=0)
def run_opt_R(name, params, grads_NxS, hp_R):
    """Train R lanes (hyperparameters hp_R, one value per lane) on the fixed gradient sequence."""

    def one(h):
        tx = optim.make_optimizer(name, lambda c: lr_at(h["lr"], c), h["wd"], h["b1"], h["b2"], h["eps"], h["mu"])

        def step(carry, g):
            p, s = carry
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, tx.init(params)), grads_NxS)[0][0]

    return jax.vmap(one)(hp_R)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_optimizer_matches_torch_formula(name):
    rng = np.random.default_rng(3)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = grad_seq(4, N_STEPS)
    hp_R = {k: jnp.array([lane[k] for lane in OPT_LANES], jnp.float32) for k in OPT_LANES[0]}
    out = run_opt_R(name, params, grads, hp_R)
    for r, lane in enumerate(OPT_LANES):
        for k in SHAPES:
            close(out[k][r], np_optimizer(name, params[k], grads[k], **lane))


@pytest.mark.torch
@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_numpy_formula_matches_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p0, g_NxS = rng.normal(size=(3, 4)), rng.normal(size=(N_STEPS, 3, 4))
    for lane in OPT_LANES:
        p = torch.tensor(p0, requires_grad=True)
        h = lane
        opt = {"adamw": lambda: torch.optim.AdamW([p], lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"],
                                                  weight_decay=h["wd"]),
               "adam_l2": lambda: torch.optim.Adam([p], lr=h["lr"], betas=(h["b1"], h["b2"]), eps=h["eps"],
                                                   weight_decay=h["wd"]),
               "sgd": lambda: torch.optim.SGD([p], lr=h["lr"], momentum=h["mu"], weight_decay=h["wd"])}[name]()
        for t, g in enumerate(g_NxS, start=1):
            opt.param_groups[0]["lr"] = h["lr"] * min(1.0, t / 4)
            p.grad = torch.tensor(g)
            opt.step()
        np.testing.assert_allclose(p.detach().numpy(), np_optimizer(name, p0, g_NxS, **lane), rtol=1e-12)


def test_rescale_to_norm():
    rng = np.random.default_rng(6)
    params_R = {k: jnp.asarray(rng.normal(size=(2,) + s), jnp.float32) for k, s in SHAPES.items()}
    target_R = jnp.array([1.0, 3.5])
    out = jax.jit(jax.vmap(optim.rescale_to_norm))(params_R, target_R)
    np.testing.assert_allclose(jax.vmap(optim.global_norm)(out), target_R, rtol=1e-6)
    norm_R = np.sqrt(sum((np.asarray(v, np.float64) ** 2).reshape(2, -1).sum(1) for v in params_R.values()))
    for k in SHAPES:
        scale = (np.asarray(target_R) / norm_R).reshape((2,) + (1,) * len(SHAPES[k]))
        close(out[k], np.asarray(params_R[k], np.float64) * scale)


def test_mixed_kind_step_compiles_once():
    traces = [0]

    def tx_of(h):
        return optax.chain(filt(h["kind"], h["alpha"], h["lamb"], h["window"]),
                           optim.make_optimizer("adamw", lambda c: h["lr"], h["wd"]))

    def step(params, state, grads, h):
        traces[0] += 1  # Python side effect: runs once per trace
        u, state = tx_of(h).update(grads, state, params)
        return optax.apply_updates(params, u), state

    step_R = jax.jit(jax.vmap(step, in_axes=(None, 0, None, 0)))
    init_R = jax.jit(jax.vmap(lambda p, h: tx_of(h).init(p), in_axes=(None, 0)))
    params = {k: jnp.ones(s) for k, s in SHAPES.items()}
    grads = jax.tree.map(lambda g: jnp.asarray(g[0]), grad_seq(7, 1))
    outs = []
    for kinds, alpha, lamb, window, lr, wd in [([0, 1, 2], 0.9, 2.0, 3, 1e-3, 1.0), ([2, 2, 0], 0.5, 0.5, 1, 1e-2, 0.1)]:
        h = dict(kind=jnp.array(kinds), alpha=jnp.full(3, alpha), lamb=jnp.full(3, lamb),
                 window=jnp.full(3, window), lr=jnp.full(3, lr), wd=jnp.full(3, wd))
        outs.append(step_R(params, init_R(params, h), grads, h)[0])
    assert traces[0] == 1
    assert not np.allclose(outs[0]["w"], outs[1]["w"])


@pytest.mark.parametrize("args, words", [
    (("adam", 0.9, 1.0, 1), "Unknown gradient filter"),
    (("ema", 1.0, 1.0, 1), "alpha"),
    (("ema", -0.1, 1.0, 1), "alpha"),
    (("ma", 0.9, 1.0, 0), "window"),
    (("ma", 0.9, 1.0, 2.5), "window"),
    (("ema", 0.9, -1.0, 1), "lambda"),
])
def test_check_filter_settings_errors(args, words):
    with pytest.raises(ConfigError, match=words):
        gf.check_filter_settings(*args)


def test_other_config_errors():
    gf.check_filter_settings("ma", 0.0, 0.0, 5, window_max=5)  # valid: no error
    gf.check_filter_settings("ema", np.array([0.5, 0.98]), np.array([0.0, 5.0]), np.array([1, 100]))
    with pytest.raises(ConfigError, match="window_max"):
        gf.check_filter_settings("ma", 0.9, 1.0, 6, window_max=5)
    with pytest.raises(ConfigError, match="Unknown gradient filter"):
        gf.grad_filter(0, 0.9, 1.0, 1, kinds_present=("none", "lpf"), window_max=None)
    with pytest.raises(ConfigError, match="window_max"):
        gf.grad_filter(0, 0.9, 1.0, 1, kinds_present=("ma",), window_max=None)
    with pytest.raises(ConfigError, match="not in kinds_present"):
        gf.kind_index("ma", ("none", "ema"))
    with pytest.raises(ConfigError, match="Unknown optimizer"):
        optim.make_optimizer("lion", 1e-3, 0.1)
