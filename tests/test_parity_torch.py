"""jgrok's transformer equals the AI-Scientist template's PyTorch model: same weights in, same logits and the same
gradients out (float32 tolerance). The PyTorch side is benchmarks/torch_reference.py."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import torch_reference as ref  # noqa: E402

from jgrok import config, init, losses, train  # noqa: E402
from jgrok.tasks import algorithmic  # noqa: E402


def nested(prog, flat):
    shapes = prog.model[1]
    leaves_, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(flat[init.path_str(p)]) for p, _ in leaves_])


@pytest.mark.parametrize("task", ["x_div_y", "permutation"])
def test_logits_and_gradients_match_pytorch(task):
    cfg = config.with_grid(config.Config(), task=[task])
    table = algorithmic.build(task, cfg.task)
    prog = train.Program(cfg=config.base_for_axes(cfg, {"task": task}), n_inputs=table.n_vocab, n_out=table.n_out,
                         n_rows=table.n_pairs, n_train=table.n_train, schemes=("default",), filters=("none",),
                         window_max=1)
    model = ref.build_model(task, seed=0)
    params = nested(prog, ref.to_jgrok_params(model))
    x = table.inputs[np.random.default_rng(0).choice(table.n_pairs, 64, replace=False)]
    y = table.targets[[list(map(tuple, table.inputs)).index(tuple(r)) for r in x]]

    ours = np.asarray(jax.jit(lambda p: train.apply(prog, p, x))(params))
    theirs = model(torch.as_tensor(x, dtype=torch.long)).detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)

    def loss(p):
        return losses.xent(train.apply(prog, p, x), jnp.asarray(y), jnp.ones(len(y)))[0]

    g = jax.grad(loss)(params)
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(torch.as_tensor(x, dtype=torch.long)), torch.as_tensor(y).long()).backward()
    flat_g = {init.path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(g)[0]}
    # compare a few tensors through the same layout mapping: copy torch grads into the weights and map them
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.grad)
    flat_tg = ref.to_jgrok_params(model)
    for name, gv in flat_g.items():
        scale = np.abs(flat_tg[name]).max() + 1e-8
        assert np.abs(gv - flat_tg[name]).max() <= 2e-3 * scale + 1e-6, name
