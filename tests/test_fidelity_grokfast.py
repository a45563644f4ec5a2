"""The Grokfast presets train what ironjr/grokfast's main.py trains.

- the task table, tokens and split sizes equal the source's (``multiplication_mod_p_data``, ``randperm`` halves);
- same weights -> same logits (every position) and the same gradients as a PyTorch copy of the source's model
  (tests/grokfast_reference.py), for the answer loss and for the whole-sequence loss;
- 14 updates of jgrok's optimiser (Adam with coupled L2, warm-up update/10, EMA or MA filter) follow the torch
  optimiser + the source's filter functions step for step;
- a short training run of the preset lands in a loose band around the source's number, and the decoupled-AdamW
  mistake (weight decay applied AdamW-style instead of the source's coupled L2) does not.
"""

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
import grokfast_reference as ref  # noqa: E402

from tests.conftest import assert_gradients_match  # noqa: E402

from jgrok import config, init, losses, train  # noqa: E402

PRESETS = ("grokfast_baseline", "grokfast_ema", "grokfast_ma")


def flat(tree):
    return {init.path_str(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("name", PRESETS)
def test_table_tokens_and_split_are_the_sources(name):
    cfg = config.load(name)
    prog, table = ref.jgrok_program(cfg)
    source = ref.table(97)
    np.testing.assert_array_equal(table.inputs, source[:4].T)  # [x, op, y, eq], x-major, y in 1..96
    np.testing.assert_array_equal(table.targets, source[4])  # label = token of x*y mod 97
    assert (table.n_pairs, table.n_train, table.n_vocab, table.n_out) == (9312, 4656, 99, 99)
    assert config.updates_per_epoch(cfg.train, table.n_train) == 10  # ceil(4656 / 512): 9 full + 48
    assert config.resolve_epochs(cfg, table.n_train).train.eval_every == 10  # validation once per epoch
    assert cfg.train.steps == 300000 and cfg.train.sampling == "epochs"
    o = cfg.optim
    assert (o.name, o.lr, o.b1, o.b2, o.eps, o.warmup) == ("adam_l2", 1e-3, 0.9, 0.98, 1e-8, 10)


@pytest.mark.parametrize("loss", ["answer", "sequence"])
def test_logits_and_gradients_match_the_sources_model(loss):
    cfg = config.load("grokfast_ema")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, loss=loss))
    prog, table = ref.jgrok_program(cfg)
    torch.manual_seed(0)
    model = ref.Decoder()
    params = ref.jgrok_tree(prog, ref.jgrok_params(model))
    rows = np.random.default_rng(0).choice(table.n_pairs, 64, replace=False)
    x, y = table.inputs[rows], table.targets[rows]
    x_t, y_t = torch.as_tensor(x.T, dtype=torch.long), torch.as_tensor(y, dtype=torch.long)

    theirs_TxBxV = model(x_t)
    ours_BxTxV = np.asarray(jax.jit(lambda p: train.apply(prog, p, x, all_positions=True))(params))
    np.testing.assert_allclose(ours_BxTxV, theirs_TxBxV.detach().numpy().transpose(1, 0, 2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(train.apply(prog, params, x)), theirs_TxBxV[-1].detach().numpy(),
                               rtol=1e-4, atol=1e-4)

    if loss == "answer":  # main.py: F.cross_entropy(logits[-1], input[-1])
        theirs = torch.nn.functional.cross_entropy(theirs_TxBxV[-1], y_t)
        fn = lambda p: losses.xent(train.apply(prog, p, x), jnp.asarray(y), jnp.ones(len(y)))[0]  # noqa: E731
    else:  # next-token loss over every position: targets op, y, eq, answer
        targets_TxB = torch.cat([x_t[1:], y_t[None]], 0)
        theirs = torch.nn.functional.cross_entropy(theirs_TxBxV.reshape(-1, 99), targets_TxB.reshape(-1))
        fn = lambda p: losses.sequence_xent(train.apply(prog, p, x, all_positions=True), jnp.asarray(x),  # noqa
                                            jnp.asarray(y), jnp.ones(len(y)))[0]
    ours, g = jax.value_and_grad(fn)(params)
    np.testing.assert_allclose(float(ours), theirs.item(), rtol=1e-5)
    model.zero_grad()
    theirs.backward()
    assert_gradients_match(g, ref.jgrok_params(model, grads=True))


@pytest.mark.parametrize("kind", ["ema", "ma", "none"])
def test_optimiser_and_filters_follow_the_source_step_by_step(kind):
    """14 updates (past the 10-update warm-up, past an MA window of 3) on fixed batches of a small model."""
    base = config.load({"ema": "grokfast_ema", "ma": "grokfast_ma", "none": "grokfast_baseline"}[kind])
    model_cfg = dataclasses.replace(base.model, n_layers=1, d_model=16, n_heads=2)
    optim_cfg = dataclasses.replace(base.optim, filter_window=3, wd=0.5)  # a decay large enough to matter
    cfg = dataclasses.replace(base, model=model_cfg, optim=optim_cfg)
    prog, table = ref.jgrok_program(cfg)
    torch.manual_seed(1)
    model = ref.Decoder(dim=16, layers=1, heads=2)
    params = ref.jgrok_tree(prog, ref.jgrok_params(model))
    o = cfg.optim
    tx, step = ref.jgrok_update(prog)
    opt_state = tx.init(params)
    topt, sched = ref.optimizer(model, wd=o.wd)
    filt = {"ema": ref.EmaFilter(o.filter_alpha, o.filter_lambda), "ma": ref.MaFilter(3, o.filter_lambda),
            "none": None}[kind]

    rng = np.random.default_rng(0)
    for s in range(14):
        rows = rng.choice(table.n_pairs, 32, replace=False)
        x, y = table.inputs[rows], table.targets[rows]
        params, opt_state = step(params, opt_state, jnp.asarray(x), jnp.asarray(y))
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.as_tensor(x.T, dtype=torch.long))[-1],
                                          torch.as_tensor(y, dtype=torch.long)).backward()
        if filt is not None:
            filt(model)
        topt.step()
        sched.step()
        theirs = ref.jgrok_params(model)
        for name, v in flat(params).items():
            t = theirs[name]
            if name.endswith("qkv/bias"):  # the key bias has a gradient of exactly 0 (softmax ignores a constant
                v, t = np.delete(v, np.s_[16:32]), np.delete(t, np.s_[16:32])  # score shift): Adam scales noise
            assert np.abs(v - t).max() <= 1e-4 * np.abs(t).max() + 1e-6, (s, name)


@pytest.mark.slow
def test_grokfast_ema_preset_reaches_95_percent_like_the_source(tmp_path):
    """The source's number is 910 updates to 95% val acc (README, seed 0); the preset as shipped, one seed, must get
    there within 2,500 (the loose band: benchmarks/fidelity.py measured a median over 8 seeds near the source's,
    see benchmarks/RESULTS.md). An earlier version of the preset, with decoupled AdamW weight decay instead of the
    source's coupled L2, stayed below 3% val acc for 3,000 updates, so this test fails for it; about a minute on a
    quiet 2-core CPU (~1,000-1,300 updates)."""
    from jgrok import scan
    from jgrok.io import results

    out = tmp_path / "ema"
    code = scan.main(["--config", "grokfast_ema", "--seeds", "0", "--steps", "2500", "--stop-when", "val_acc>0.95",
                      "--no-tensorboard", "--quiet", "--out", str(out)])
    assert code == 0
    row, = results.read_summary(out / "summary.csv")
    assert int(row["stopped_step"]) > 0, "grokfast_ema did not reach 95% val acc in 2,500 updates"
