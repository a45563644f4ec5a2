"""Grokking without weight decay (Prieto et al.): the MLP, StableMax / softmax precision, ⊥Grad as a per-run axis,
float64 programs, named variants and their validation. The torch parity checks are in test_prieto_parity.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jgrok
from jgrok import config, grid, optim, train
from jgrok.io import results

MLP = {
    "task": {"name": "x_plus_y", "p": 11, "fraction": 0.4},
    "model": {"kind": "mlp", "hidden": [16], "bias": False},
    "optim": {"name": "adamw", "lr": 0.01, "wd": 0.0, "eps": 1e-25, "warmup": 0},
    "train": {"steps": 6, "sampling": "full", "eval_every": 3},
    "engine": {"chunk": 6},
}


def mlp_cfg(**extra):
    data = {k: dict(v) for k, v in MLP.items()}
    for key, value in extra.items():
        section, field = key.split("__")
        data.setdefault(section, {})[field] = value
    return config.from_dict(data)


def train_all(cfg, lanes=2):
    from jgrok import engine

    rows = grid.expand(cfg)
    return [engine.train_program(p, t, m, lanes, progress=False) for p, t, m in grid.programs(cfg, rows)]


def test_orthogonalize_is_orthogonal_and_keeps_the_norm():
    rng = np.random.default_rng(0)
    for shape in [(7,), (5, 3), (4, 2, 3)]:
        w, g = (jnp.asarray(rng.standard_normal(shape), jnp.float32) for _ in range(2))
        out = optim.orthogonalize(g, w)
        assert abs(float(jnp.vdot(out, w))) < 1e-5 * float(jnp.linalg.norm(w.ravel()) * jnp.linalg.norm(g.ravel()))
        np.testing.assert_allclose(float(jnp.linalg.norm(out.ravel())), float(jnp.linalg.norm(g.ravel())), rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam_l2", "adamw"])
def test_orthogonal_grad_composes_with_every_optimizer(name):
    """A run with the switch on gets the optimiser's update of g_perp, one with it off the plain update; with weight
    decay 0, SGD's first update (momentum buffer = the gradient) is -lr g_perp, orthogonal to w."""
    rng = np.random.default_rng(1)
    w = {"k": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)}
    g = {"k": jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)}
    ocfg = config.OptimConfig(name=name, lr=0.1, wd=0.0, warmup=0, orthogonal_grad=True)
    outs = {}
    for on in (True, False):
        hp = train.Hyper(lr=jnp.float32(0.1), wd=jnp.float32(0.0), init_scale=1.0, filter_kind=0, filter_alpha=0.0,
                         filter_lambda=0.0, filter_window=1, split_seed=0, order_seed=0, seed_G=None, scheme_G=None,
                         perturb=0, orthogonal_grad=jnp.bool_(on))
        tx = optim.make_tx(ocfg, hp, ("none",), 1)
        outs[on] = tx.update(g, tx.init(w), w)[0]["k"]
    plain = config.OptimConfig(name=name, lr=0.1, wd=0.0, warmup=0)
    tx = optim.make_tx(plain, hp._replace(orthogonal_grad=None), ("none",), 1)
    np.testing.assert_array_equal(outs[False], tx.update(g, tx.init(w), w)[0]["k"])
    g_perp = {"k": optim.orthogonalize(g["k"], w["k"])}  # on: the optimiser sees g_perp instead of g
    np.testing.assert_allclose(outs[True], tx.update(g_perp, tx.init(w), w)[0]["k"], rtol=1e-6)
    if name == "sgd":
        np.testing.assert_allclose(outs[True], -0.1 * optim.orthogonalize(g["k"], w["k"]), rtol=1e-6)
        assert abs(float(jnp.vdot(outs[True], w["k"]))) < 1e-5


def test_variants_expand_to_programs_and_labels():
    cfg = config.load("prieto_2025")
    cfg = config.with_grid(cfg, seed=[0, 1])
    rows = grid.expand(cfg)
    assert [r["variant"] for r in rows] == ["baseline"] * 2 + ["orthogonal"] * 2 + ["stablemax"] * 2 + \
        ["float64_softmax"] * 2
    progs = grid.programs(cfg, rows)
    assert len(progs) == 4
    by = {m[0]["variant"]: p.cfg for p, _, m in progs}
    assert by["orthogonal"].optim.orthogonal_grad and (by["orthogonal"].optim.b2, by["orthogonal"].optim.eps) == \
        (0.999, 1e-8)
    assert (by["stablemax"].train.loss, by["stablemax"].train.softmax_precision) == ("stablemax", 64)
    assert by["float64_softmax"].train.softmax_precision == 64 and by["baseline"].train.softmax_precision == 32
    assert all(c.model.kind == "mlp" and c.task.p == 113 and c.train.sampling == "full" for c in by.values())
    assert results.group_axes(rows) == ["variant"]  # orthogonal_grad is set by the variant: not a label of its own
    assert "measures" in config.dump(cfg) and "variants" in config.dump(cfg)
    assert config.from_dict(__import__("yaml").safe_load(config.dump(cfg))).variants == cfg.variants


@pytest.mark.slow
def test_orthogonal_grad_axis_is_per_run_in_one_program():
    cfg = config.with_grid(mlp_cfg(), orthogonal_grad=[False, True], seed=[0])
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    assert prog.cfg.optim.orthogonal_grad and [m["orthogonal_grad"] for m in members] == [False, True]
    res, = train_all(cfg)
    alone, = train_all(config.with_grid(mlp_cfg(), seed=[0]))
    np.testing.assert_allclose(res.metrics["val_loss"][0], alone.metrics["val_loss"][0], rtol=1e-5)
    assert not np.allclose(res.metrics["val_loss"][1], res.metrics["val_loss"][0])


@pytest.mark.slow
def test_float64_programs_train_in_float64_and_leave_x64_off():
    cfg = config.with_grid(mlp_cfg(train__precision="fp64"), seed=[0])
    res, = train_all(cfg)
    assert all(x.dtype == np.float64 for x in jax.tree.leaves(res.final_params))
    assert np.isfinite(res.metrics["val_loss"]).all()
    assert not jax.config.jax_enable_x64 and jnp.zeros(1).dtype == jnp.float32
    f32, = train_all(config.with_grid(mlp_cfg(), seed=[0]))
    np.testing.assert_allclose(res.metrics["val_loss"], f32.metrics["val_loss"], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("loss,precision", [("stablemax", 64), ("answer", 16)])
def test_loss_variants_train(loss, precision):
    res, = train_all(config.with_grid(mlp_cfg(train__loss=loss, train__softmax_precision=precision), seed=[0]))
    assert np.isfinite(res.step_loss).all() and res.step_loss.dtype == np.float32
    assert res.step_loss[0, -1] < res.step_loss[0, 0]
    assert not jax.config.jax_enable_x64


@pytest.mark.parametrize("args,words", [
    (["--set", "train.loss=softmax"], "train.loss 'softmax' is unknown"),
    (["--set", "train.softmax_precision=48"], "train.softmax_precision must be 16, 32 or 64"),
    (["--precision", "fp128"], "'fp64'"),
    (["--set", "model.kind=mlp", "--set", "model.hidden=[0]"], "model.hidden takes layer sizes"),
    (["--set", "model.hidden=wide"], "model.hidden must be a whole number"),
    (["--config", "prieto_2025", "--set", "grid.variant=[nope]"], "Variant 'nope' is not defined"),
    (["--config", "prieto_2025", "--set", "grid.orthogonal_grad=[true,false]"],
     "sets optim.orthogonal_grad, which is also the grid axis"),
])
def test_bad_values_are_one_sentence_and_exit_2(args, words, capsys):
    from jgrok import scan

    assert scan.main(args + ["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("text,words", [
    ("variants: {a: {train.steps: 5}}\ngrid: {variant: [a]}\n", "every run of a scan shares"),
    ("variants: {a: {}}\n", "has no 'variant' axis"),
    ("variants: {a: {optim.nope: 1}}\ngrid: {variant: [a]}\n", "is unknown"),
    ("variants: {a: {engine.chunk: 5}}\ngrid: {variant: [a]}\n", "must be section.field"),
    ("variants: {a: {train.loss: nope}}\ngrid: {variant: [a]}\n", "train.loss 'nope' is unknown"),
    ("variants: {'a b': {}}\ngrid: {variant: ['a b']}\n", "must be letters"),
])
def test_bad_variants_are_refused(text, words, tmp_path, capsys):
    from jgrok import scan

    path = tmp_path / "v.yaml"
    path.write_text(text)
    assert scan.main(["--config", str(path), "--dry-run"]) == 2
    assert words in capsys.readouterr().err


VARIANT_SCAN = """
task: {name: x_plus_y, p: 11, fraction: 0.4}
model: {kind: mlp, hidden: [16], bias: false}
optim: {name: adamw, lr: 0.01, wd: 0.0, eps: 1.0e-25, warmup: 0}
train: {steps: 6, sampling: full, eval_every: 3}
engine: {chunk: 6, tensorboard: false}
variants:
  baseline: {}
  orthogonal: {optim.orthogonal_grad: true, optim.b2: 0.999}
grid: {variant: [baseline, orthogonal], seed: [0, 1, 2]}
"""


@pytest.fixture(scope="module")
def variant_scan(tmp_path_factory):
    from jgrok import scan

    root = tmp_path_factory.mktemp("variants")
    (root / "v.yaml").write_text(VARIANT_SCAN)
    out = root / "out"
    assert scan.main(["--config", str(root / "v.yaml"), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_report_shows_accuracy_per_variant_without_logits_curves(variant_scan):
    from jgrok import report
    from jgrok.analysis import variants

    scan = jgrok.open_scan(variant_scan).data()
    assert variants.applies(scan) and scan.group_axes == ["variant"]
    st = {d["group"]: d for d in variants.stats(scan)}
    assert set(st) == {"x_plus_y variant=baseline", "x_plus_y variant=orthogonal"} and all(d["runs"] == 3 for d in st.values())
    vals = sorted(r["final_val_acc"] for r in scan.rows if r["variant"] == "orthogonal")
    assert st["x_plus_y variant=orthogonal"]["val_acc"][1] == pytest.approx(vals[1])
    text = report.build_report(variant_scan).read_text()
    assert "## Accuracy, softmax collapse and logit scale per group" in text
    assert "variant=orthogonal" in text and "has none of their curves" in text


@pytest.mark.slow
def test_analyze_shows_softmax_collapse_and_logit_scale_from_synthetic_curves(variant_scan, tmp_path):
    """metrics.npz with the logits measures' keys (written here by hand): the table shows their distributions."""
    import shutil

    from jgrok import analyze
    from jgrok.analysis import variants

    out = tmp_path / "synthetic"
    shutil.copytree(variant_scan, out)
    with np.load(out / "metrics.npz") as z:
        data = {k: z[k] for k in z.files}
    R, E = data["val_acc"].shape
    sc = np.tile(np.linspace(0, 1, E), (R, 1)) * (np.arange(R)[:, None] + 1) / R  # run r ends at (r + 1) / R
    sc[0, -1] = np.nan  # a last evaluation without a value: the final value is the one before
    data.update(softmax_collapse=sc.astype(np.float32), logit_max=np.full((R, E), 7.0, np.float32),
                logit_norm=np.full((R, E), 50.0, np.float32), grad_cos=np.zeros((R, E), np.float32))
    np.savez(out / "metrics.npz", **data)
    st = {d["group"]: d for d in variants.stats(jgrok.open_scan(out).data())}
    runs = {r["run"]: r["variant"] for r in jgrok.open_scan(out).summary}
    base = [r for r in range(R) if runs[r] == "baseline"]  # runs 0..2
    finals = [sc[r][np.isfinite(sc[r])][-1] for r in base]
    assert st["x_plus_y variant=baseline"]["softmax_collapse"][1] == pytest.approx(np.median(finals))
    assert st["x_plus_y variant=baseline"]["sc_peak"][2] == pytest.approx(np.percentile([np.nanmax(sc[r]) for r in base], 90))
    assert st["x_plus_y variant=orthogonal"]["logit_max"] == pytest.approx((7.0, 7.0, 7.0))
    assert analyze.main([str(out), "--bootstrap", "20", "--fourier-runs", "none", "--quiet"]) == 0
    text = (out / "analysis" / "report.md").read_text()
    assert "softmax collapse" in text and "SC peak" in text and "logit norm" in text
    assert (out / "analysis" / "tables" / "variants.csv").read_text().startswith("group,runs,reached,steps,")
