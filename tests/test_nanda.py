"""The nanda preset is the progress-measures paper's model: its parameter count, its init and its token layout;
the Fourier measures read the right embedding rows and logits for it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import assert_gradients_match

from jgrok import config, init, losses, measures, train
from jgrok.tasks import algorithmic


def program(name="nanda"):
    cfg = config.load(name)
    t = algorithmic.build(cfg.task.name, cfg.task)
    return train.Program(cfg=cfg, n_inputs=t.n_vocab, n_out=t.n_out, n_rows=t.n_pairs, n_train=t.n_train,
                         schemes=("nanda",), filters=("none",), window_max=1), t


def test_parameter_count_and_table_are_the_papers():
    prog, t = program()
    # W_E 128x114 + W_pos 3x128 + W_Q,K,V,O 4x128x128 + W_in/W_out 2x128x512 + b_in 512 + b_out 128 + W_U 128x114
    assert prog.n_params == 14592 + 384 + 65536 + 131072 + 512 + 128 + 14592
    assert (t.n_pairs, t.n_train, t.n_vocab, t.n_out) == (12769, 3830, 114, 114)
    np.testing.assert_array_equal(t.inputs[:3], [[0, 0, 113], [0, 1, 113], [0, 2, 113]])


def test_init_scheme_nanda_stds():
    prog, _ = program()
    shapes = prog.model[1]
    G = len(prog.groups)
    params = init.init_params(shapes, jnp.zeros(G, jnp.int32), jnp.zeros(G, jnp.int32), 1.0, ("nanda",))
    flat = {init.path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    want = {"tok_emb/embedding": 128, "pos_emb/embedding": 128, "blocks/0/attn/qkv/kernel": 128,
            "blocks/0/attn/out/kernel": 128, "blocks/0/mlp_in/kernel": 128, "blocks/0/mlp_out/kernel": 128,
            "head/kernel": 114}
    for name, fan in want.items():
        assert abs(flat[name].std() * fan ** 0.5 - 1) < 0.1, name
    assert not flat["blocks/0/mlp_in/bias"].any() and not flat["blocks/0/mlp_out/bias"].any()
    assert "blocks/0/attn/qkv/bias" not in flat and "head/bias" not in flat and "final_ln/scale" not in flat


def test_fourier_measures_use_the_nanda_tokens():
    """The in-graph fourier measure reads the numbers' embedding rows 0..p-1 (not the template's +2 offset) and the
    numbers' logits: an embedding that is a pure frequency-5 wave over the numbers, with a large '=' row, has its
    spectrum at k = 5 alone."""
    prog, t = program()
    shapes = prog.model[1]
    G = len(prog.groups)
    params = init.init_params(shapes, jnp.zeros(G, jnp.int32), jnp.zeros(G, jnp.int32), 1.0, ("nanda",))
    p = prog.cfg.task.p
    E = np.zeros(params["tok_emb"]["embedding"].shape, np.float32)
    E[:p, 0] = np.cos(2 * np.pi * 5 * np.arange(p) / p)
    E[p, :] = 100.0  # the '=' token: must not enter the spectrum
    params["tok_emb"]["embedding"] = jnp.asarray(E)
    data = (jnp.asarray(t.inputs, jnp.int32), jnp.asarray(t.targets, jnp.int32))
    perm = jnp.arange(t.n_pairs, dtype=jnp.int32)
    m = jax.jit(lambda prm: measures.fourier_measures(prog, lambda q, x: train.apply(prog, q, x), prm, perm, data, train.row_n_train(prog, {"fraction": prog.cfg.task.fraction})))(
        params)
    spec = np.asarray(m["fourier_spectrum"])
    assert spec.shape == (56,) and np.argmax(spec) == 4 and spec[np.arange(56) != 4].max() < 1e-4 * spec[4]
    assert np.isfinite(float(m["restricted_loss"])) and np.isfinite(float(m["excluded_loss"]))


@pytest.mark.torch
def test_logits_and_gradients_match_the_papers_model():
    """Same weights -> the same logits (every position) and the same gradients of the answer loss as a PyTorch copy of
    the paper's Transformer (tests/nanda_reference.py, use_ln false, float64 loss), on 256 random pairs."""
    torch = pytest.importorskip("torch")
    ref = pytest.importorskip("tests.nanda_reference")
    prog, t = program()
    torch.manual_seed(0)
    model = ref.Transformer()
    flat = ref.jgrok_params(model)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(prog.model[1])
    assert sorted(flat) == sorted(init.path_str(p) for p, _ in leaves)  # the same tensors: no LayerNorm, no bias
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[init.path_str(p)]) for p, _ in leaves])
    rows = np.random.default_rng(0).choice(t.n_pairs, 256, replace=False)
    x, y = t.inputs[rows], t.targets[rows]
    theirs_BxPxV = model(torch.as_tensor(x, dtype=torch.long))
    ours_BxPxV = np.asarray(jax.jit(lambda q: train.apply(prog, q, x, all_positions=True))(params))
    np.testing.assert_allclose(ours_BxPxV, theirs_BxPxV.detach().numpy(), rtol=1e-4, atol=1e-4)

    theirs = ref.loss(theirs_BxPxV, torch.as_tensor(y, dtype=torch.long))
    ours, g = jax.value_and_grad(
        lambda q: losses.xent(train.apply(prog, q, x), jnp.asarray(y), jnp.ones(len(y)))[0])(params)
    np.testing.assert_allclose(float(ours), theirs.item(), rtol=1e-5)
    theirs.backward()
    assert_gradients_match(g, ref.jgrok_params(model, grads=True))
