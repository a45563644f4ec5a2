"""Tests of benchmarks/torch_reference.py, the PyTorch reference of the AI-Scientist grokking template."""

import functools
import importlib.util
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from jgrok.errors import ConfigError  # noqa: E402


def _load():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "torch_reference.py"
    spec = importlib.util.spec_from_file_location("torch_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["torch_reference"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


tr = sys.modules.get("torch_reference") or _load()
torch.set_num_threads(2)

TINY = dict(steps=4, eval_every=2, batch_size=64, warmup_steps=0)


@functools.lru_cache(maxsize=None)
def _run(mode, eval_mode="full"):
    return tr.run("x_plus_y", mode, [0, 1], eval_mode=eval_mode, **TINY)


def test_parameter_counts():
    for task, n in [("x_plus_y", 422_625), ("x_div_y", 422_625), ("permutation", 428_536)]:
        model = tr.build_model(task)
        assert sum(w.numel() for w in model.parameters()) == n


def _direct(task, a, b):
    """c and the element lists, computed the slow obvious way."""
    p = 97
    if task == "permutation":
        elems = sorted(itertools.permutations(range(5)))
        return tuple(a[b[i]] for i in range(5)), elems, elems
    elems1 = list(range(p))
    elems2 = list(range(1, p)) if task == "x_div_y" else elems1
    c = {"x_plus_y": (a + b) % p, "x_minus_y": (a - b) % p, "x_div_y": a * pow(b, p - 2, p) % p}.get(task)
    return c, elems1, elems2


@pytest.mark.parametrize("task", tr.TASKS)
def test_dataset_matches_direct_computation(task):
    ds = tr.make_dataset(task, seed=3)
    elems = sorted(itertools.permutations(range(5))) if task == "permutation" else list(range(97))
    _, elems1, elems2 = _direct(task, elems[0], elems[0])
    n = len(elems1) * len(elems2)
    assert ds.inputs_Nx4.shape == (n, 4) and ds.labels_N.shape == (n,)
    assert (ds.n_vocab, ds.n_out) == (len(elems) + 2, len(elems))
    for i in [0, 1, len(elems2) - 1, len(elems2), n // 2 + 7, n - 2, n - 1]:
        a, b = elems1[i // len(elems2)], elems2[i % len(elems2)]
        c, _, _ = _direct(task, a, b)
        assert ds.inputs_Nx4[i].tolist() == [elems.index(a) + 2, 0, elems.index(b) + 2, 1]
        assert ds.labels_N[i] == elems.index(c)
    assert len(ds.train_idx) == math.floor(n * 0.5) and len(ds.val_idx) == n - len(ds.train_idx)
    assert sorted(np.concatenate([ds.train_idx, ds.val_idx]).tolist()) == list(range(n))
    assert not np.array_equal(ds.train_idx, tr.make_dataset(task, seed=4).train_idx)


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError):
        tr.make_dataset("x_times_z")
    with pytest.raises(ConfigError):
        tr.make_dataset("x_div_y", p=96)
    with pytest.raises(ConfigError):
        tr.run("x_plus_y", "jit")


def test_eager_steps_lower_the_loss():
    c = tr.train_reference("x_plus_y", seed=0, steps=30, eval_every=10, batch_size=128)
    assert c["step"] == [10, 20, 30] and c["steps_to_99"] == 30
    assert c["val_loss"][-1] < c["val_loss"][0] - 0.02
    assert c["train_loss"][-1] < c["train_loss"][0] - 0.02


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _ln(x, scale, bias):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * scale + bias


def _numpy_forward(params, tokens_BxT, heads=4):
    """The model written against jgrok's layout: q|k|v columns, each head 32 contiguous columns."""
    t = tokens_BxT.shape[1]
    x = params["tok_emb/embedding"][tokens_BxT] + params["pos_emb/embedding"][:t]
    for i in range(2):
        g = lambda name: params[f"blocks/{i}/{name}"]  # noqa: E731
        q, k, v = np.split(x @ g("attn/qkv/kernel") + g("attn/qkv/bias"), 3, axis=-1)
        split = lambda y: y.reshape(*y.shape[:2], heads, -1).transpose(0, 2, 1, 3)  # noqa: E731
        scores = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1] / heads)
        scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
        w = np.exp(scores - scores.max(-1, keepdims=True))
        att = (w / w.sum(-1, keepdims=True)) @ split(v)
        att = att.transpose(0, 2, 1, 3).reshape(x.shape) @ g("attn/out/kernel") + g("attn/out/bias")
        x = _ln(x + att, g("ln1/scale"), g("ln1/bias"))
        h = _gelu(x @ g("mlp_in/kernel") + g("mlp_in/bias")) @ g("mlp_out/kernel") + g("mlp_out/bias")
        x = _ln(x + h, g("ln2/scale"), g("ln2/bias"))
    x = _ln(x, params["final_ln/scale"], params["final_ln/bias"])
    return (x @ params["head/kernel"] + params["head/bias"])[:, -1]


def test_to_jgrok_params_layout_and_forward():
    model = tr.build_model("permutation", seed=1)
    params = tr.to_jgrok_params(model)
    d, v, o = 128, 122, 120
    shapes = {"tok_emb/embedding": (v, d), "pos_emb/embedding": (5, d), "final_ln/scale": (d,),
                        "final_ln/bias": (d,), "head/kernel": (d, o), "head/bias": (o,)}
    for i in range(2):
        shapes |= {f"blocks/{i}/{k}": s for k, s in {
                "attn/qkv/kernel": (d, 3 * d), "attn/qkv/bias": (3 * d,), "attn/out/kernel": (d, d),
                "attn/out/bias": (d,), "ln1/scale": (d,), "ln1/bias": (d,), "mlp_in/kernel": (d, 4 * d),
                "mlp_in/bias": (4 * d,), "mlp_out/kernel": (4 * d, d), "mlp_out/bias": (d,), "ln2/scale": (d,),
                "ln2/bias": (d,)}.items()}
    assert {k: a.shape for k, a in params.items()} == shapes
    assert all(a.dtype == np.float32 for a in params.values())
    assert sum(a.size for a in params.values()) == 428_536
    # Biases and LayerNorms start at 0 / 1 in torch; give them values so the forward check sees them.
    rng = np.random.default_rng(0)
    params = {k: a + (0.1 * rng.standard_normal(a.shape)).astype(np.float32) for k, a in params.items()}
    tr.load_jgrok_params(model, params)
    assert all(np.array_equal(params[k], a) for k, a in tr.to_jgrok_params(model).items())
    tokens = tr.make_dataset("permutation").inputs_Nx4[[0, 5, 999, 14399]]
    with torch.no_grad():
        want = model(torch.from_numpy(tokens)).numpy()
    np.testing.assert_allclose(_numpy_forward(params, tokens), want, rtol=1e-4, atol=1e-4)


def test_vmap_matches_eager():
    eager, vmapped = _run("eager"), _run("vmap")
    assert eager["steps_to_99"] == vmapped["steps_to_99"] == [4, 4]
    for e, v in zip(eager["curves"], vmapped["curves"]):
        assert e["step"] == v["step"] == [2, 4]
        for key in ("train_loss", "val_loss"):
            np.testing.assert_allclose(e[key], v[key], rtol=1e-5)
        np.testing.assert_allclose(e["val_acc"], v["val_acc"], atol=2e-3)
    # Seeds differ in data and init, so their curves do too.
    assert eager["curves"][0]["train_loss"] != eager["curves"][1]["train_loss"]


def test_evaluation_leaves_training_unchanged():
    full, template = _run("eager"), _run("eager", "template")
    for f, t in zip(full["curves"], template["curves"]):
        assert f["train_loss"] == t["train_loss"]
        assert f["val_loss"] != t["val_loss"]
