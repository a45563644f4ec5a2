"""The power_et_al preset's model is openai/grok's (Power et al. 2022): same weights -> the same logits at every
position and the same gradients as a PyTorch copy of grok/transformer.py (tests/power_reference.py); its fixed
sinusoidal positions are the source's table and have no parameters; a learned-position or biased-MLP model would
not match."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import assert_gradients_match

from jgrok import config, init, losses, train
from jgrok.models import transformer
from jgrok.tasks import algorithmic

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
ref = pytest.importorskip("tests.power_reference")


def program(cfg):
    t = algorithmic.build(cfg.task.name, cfg.task)
    return train.Program(cfg=cfg, n_inputs=t.n_vocab, n_out=t.n_out, n_rows=t.n_pairs, n_train=t.n_train,
                         schemes=("default",), filters=("none",), window_max=1), t


def test_sinusoidal_table_is_the_sources():
    np.testing.assert_allclose(transformer.sinusoidal_table(50, 128), ref.position_encoding(50, 128).numpy(),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("mlp_bias", [False, True])
def test_logits_and_gradients_match_openai_grok(mlp_bias):
    cfg = config.load("power_et_al")
    if mlp_bias:  # the old preset's MLP: its extra tensors are found, the same weights no longer make one model
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, mlp_bias=True))
    prog, t = program(cfg)
    torch.manual_seed(0)
    model = ref.Transformer(t.n_vocab, t.n_out)
    flat = ref.jgrok_params(model)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(prog.model[1])
    names = sorted(init.path_str(p) for p, _ in leaves)
    if mlp_bias:
        assert names != sorted(flat) and "blocks/0/mlp_in/bias" in names
        return
    assert names == sorted(flat)  # no position table, no MLP or attention bias, no final LayerNorm
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[init.path_str(p)]) for p, _ in leaves])
    rows = np.random.default_rng(0).choice(t.n_pairs, 128, replace=False)
    x, y = t.inputs[rows], t.targets[rows]
    theirs_BxTxV = model(torch.as_tensor(x, dtype=torch.long))
    ours_BxTxV = np.asarray(jax.jit(lambda q: train.apply(prog, q, x, all_positions=True))(params))
    np.testing.assert_allclose(ours_BxTxV, theirs_BxTxV.detach().numpy(), rtol=1e-4, atol=1e-4)

    theirs = torch.nn.functional.cross_entropy(theirs_BxTxV[:, -1], torch.as_tensor(y, dtype=torch.long))
    ours, g = jax.value_and_grad(
        lambda q: losses.xent(train.apply(prog, q, x), jnp.asarray(y), jnp.ones(len(y)))[0])(params)
    np.testing.assert_allclose(float(ours), theirs.item(), rtol=1e-5)
    theirs.backward()
    assert_gradients_match(g, ref.jgrok_params(model, grads=True))


def test_learned_positions_differ_from_the_sources():
    cfg = config.load("power_et_al")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, positions="learned"))
    prog, _ = program(cfg)
    assert "pos_emb/embedding" in {init.path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(prog.model[1])[0]}


def test_bad_positions_value_is_one_sentence(tmp_path, capsys):
    from jgrok import scan

    code = scan.main(["--config", "power_et_al", "--set", "model.positions=rotary", "--dry-run",
                      "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "model.positions must be" in err and "Traceback" not in err
