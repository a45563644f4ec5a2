"""jgrok.analysis on planted effects, and ``python -m jgrok.analyze`` end to end on a tiny real scan."""

import jax
import numpy as np
import pytest

import jgrok
from jgrok import analyze, engine, grid, scan
from jgrok import init as init_mod
from jgrok.analysis import chaos, chimera, seeds, spikes, variance
from tests.conftest import TINY_ARGS, tiny

# ------------------------------------------------------------------------------------------- chaos floor


def _within_one_ulp(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (b == a) | (b == np.nextafter(a, np.float32(np.inf))) | (b == np.nextafter(a, np.float32(-np.inf)))


@pytest.mark.slow
def test_perturbation_moves_every_parameter_by_at_most_one_ulp():
    cfg = tiny(seed=[3])
    prog, _, members = grid.programs(cfg, grid.expand(cfg))[0]
    init_fn, _ = prog.compiled(cfg.engine.chunk)
    # 8 lanes (the end-to-end scan's width, so the compiled init is shared): unperturbed, then k = 0, 1, 2
    rows = [members[0]] + [dict(members[0], perturb=k) for k in (0, 1, 2, 0, 0, 0, 0)]
    state = init_fn(grid.hyper(prog, rows))  # the hook in train.init_run, as the engine calls it
    ref, base, p1, p2 = ([np.asarray(x)[i] for x in jax.tree.leaves(state.params)] for i in range(4))
    moved = []
    for r, a, b, c in zip(ref, base, p1, p2):
        np.testing.assert_array_equal(r, a)  # perturbation 0 is the run itself
        assert _within_one_ulp(a, b).all() and _within_one_ulp(a, c).all()
        moved.append(np.mean(b != a))
        assert np.mean(np.sign(b - a) != np.sign(c - a)) > 0.3  # k-seeded patterns differ
    assert np.mean(moved) > 0.99


# ------------------------------------------------------------------------------------------- variance


def _two_way(rng, A, Bn, n, sA, sB, sAB, se):
    a = np.repeat(np.arange(A), Bn * n)
    b = np.tile(np.repeat(np.arange(Bn), n), A)
    y = rng.normal(0, np.sqrt(sA), A)[a] + rng.normal(0, np.sqrt(sB), Bn)[b]
    y += rng.normal(0, np.sqrt(sAB), (A, Bn))[a, b] + rng.normal(0, np.sqrt(se), len(a))
    return y, a, b


def test_variance_decomposition_recovers_planted_effects():
    y, a, b = _two_way(np.random.default_rng(7), 30, 30, 2, 0.0, 1.0, 0.5, 0.3)
    res = variance.anova2(y, a, b)
    c = {x["name"]: x for x in res["components"]}
    assert not res["confounded"]
    for name, truth in (("data seed", 1.0), ("interaction", 0.5), ("residual", 0.3)):
        assert c[name]["lo"] <= truth <= c[name]["hi"], (name, c[name])
    assert c["data seed"]["found"] and c["interaction"]["found"]
    assert not c["model seed"]["found"] and c["model seed"]["lo"] <= 0 <= c["model seed"]["hi"]


def test_variance_decomposition_finds_nothing_when_nothing_planted():
    y, a, b = _two_way(np.random.default_rng(8), 20, 20, 2, 0.0, 0.0, 0.0, 0.4)
    c = {x["name"]: x for x in variance.anova2(y, a, b)["components"]}
    for name in ("model seed", "data seed", "interaction"):
        assert not c[name]["found"] and c[name]["lo"] <= 0 <= c[name]["hi"], (name, c[name])
    assert c["residual"]["lo"] <= 0.4 <= c["residual"]["hi"]


def test_variance_without_replicates_says_interaction_is_confounded():
    y, a, b = _two_way(np.random.default_rng(9), 16, 16, 1, 0.5, 0.0, 0.3, 0.0)
    res = variance.anova2(y, a, b)
    assert res["confounded"] and [x["name"] for x in res["components"]][-1] == "interaction + residual"
    c = {x["name"]: x for x in res["components"]}
    assert c["model seed"]["found"] and not c["data seed"]["found"]
    assert variance.anova2(y[:-1], a[:-1], b[:-1]) is None  # unbalanced


# ------------------------------------------------------------------------------------------- super seeds


def _layout(X_MxD, steps_MxD):
    M, D = X_MxD.shape
    m, d = np.repeat(np.arange(M), D), np.tile(np.arange(D), M)
    return seeds.SeedLayout("t", "all", np.arange(M * D), np.arange(M * D), m, d.astype(str), d, d,
                            steps_MxD.ravel().astype(float), np.ones(M * D, bool), 10_000)


def test_bootstrap_intervals_cover_a_planted_share():
    rng = np.random.default_rng(1)
    X = (rng.random((40, 40)) < 0.2).astype(float)
    lo, hi = seeds.bootstrap_grid(X, 500, np.random.default_rng(0))
    assert lo < 0.2 < hi and hi - lo < 0.1
    lo1, hi1 = seeds.bootstrap_1d(X.ravel(), 500, np.random.default_rng(0))
    assert lo1 < 0.2 < hi1


def test_super_seeds_and_data_seed_dependence():
    rng = np.random.default_rng(2)
    M, D = 30, 12
    steps = np.full((M, D), 1000.0) * np.exp(0.1 * rng.standard_normal((M, D)))
    good_d = 5  # a data seed that makes a third of the model seeds super
    steps[rng.random(M) < 0.33, good_d] = 200
    res = seeds.analyse(_layout(None or np.zeros((M, D)), steps), 1 / 3, 300, 0)
    per_d = {r["key"]: r["super_share"] for r in res["per_data"]}
    assert per_d[str(good_d)] > 0.2 and sum(v for k, v in per_d.items() if k != str(good_d)) == 0
    assert res["data_dependence"]["p"] < 0.01
    assert res["ci"][0] <= res["share"] <= res["ci"][1]
    # no data-seed effect: super runs scattered at random
    steps2 = np.full((M, D), 1000.0)
    steps2[rng.random((M, D)) < 0.05] = 200
    res2 = seeds.analyse(_layout(np.zeros((M, D)), steps2), 1 / 3, 300, 0)
    assert res2["data_dependence"]["p"] > 0.05


# ------------------------------------------------------------------------------------------- spikes


def test_spike_detector_finds_planted_spikes_and_none_on_smooth_curves():
    t = np.arange(600)
    smooth = 3 * np.exp(-t / 80) + 1e-4
    assert spikes.detect(smooth) == []
    noisy = smooth * np.exp(0.05 * np.random.default_rng(0).standard_normal(600))
    assert spikes.detect(noisy) == []
    spiky = noisy.copy()
    for s, f in ((150, 30.0), (151, 10.0), (400, 200.0)):
        spiky[s] *= f
    found = spikes.detect(spiky)
    assert [(s["onset"], s["end"]) for s in found] == [(150, 151), (400, 400)]
    assert found[0]["height"] > 20


# ------------------------------------------------------------------------------------------- chimeras


@pytest.mark.slow
def test_chimera_builder_takes_exactly_the_intended_tensors():
    cfg = tiny(seed=[3, 7], init=["default", "xavier_uniform"])
    rows = grid.expand(cfg)
    fast = next(r for r in rows if r["seed"] == 3 and r["init"] == "default")
    slow = next(r for r in rows if r["seed"] == 7 and r["init"] == "xavier_uniform")
    chimera.check_parents(fast, slow)
    prog = grid.programs(cfg, rows)[0][0]
    groups = list(prog.groups)
    G = len(groups)
    masks = [0, 2 ** G - 1, 0b000001, 0b100000, 0b101010, 0b010101]
    chim = [r for r in chimera.chimera_rows(fast, slow, groups, [(5, 5)]) if r["mask"] in masks]
    assert len(chimera.chimera_rows(fast, slow, groups, [(0, 0), (1, 1)])) == 2 ** G * 2
    init_fn, _ = prog.compiled(cfg.engine.chunk)
    state = init_fn(grid.hyper(prog, chim + [fast, slow]))
    flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
    leaf_group = init_mod.leaf_groups(jax.tree.map(lambda x: x[0], state.params))
    differs = set()
    for path, x in flat:
        g = groups.index(leaf_group[init_mod.path_str(path)])
        x = np.asarray(x)
        f, s = x[len(chim)], x[len(chim) + 1]
        if not np.array_equal(f, s):
            differs.add(groups[g])
        for i, r in enumerate(chim):
            np.testing.assert_array_equal(x[i], f if r["mask"] >> g & 1 else s)
    assert differs == set(groups) - {"norms"}  # LayerNorms start at 1 / 0 under every seed and scheme
    assert chimera.identical_groups(prog, fast, slow) == ["norms"]  # so the factorial leaves them out


def test_factorial_effects_recover_planted_main_effects_and_interactions():
    groups = ["embedding", "position", "block0_attn", "block0_mlp", "norms", "head"]
    G = len(groups)
    masks = np.arange(2 ** G)
    x = np.where((masks[:, None] >> np.arange(G)) & 1, 1.0, -1.0)
    rng = np.random.default_rng(3)
    y = 7 - 0.5 * x[:, [0]] - 0.2 * x[:, [5]] + 0.15 * x[:, [3]] * x[:, [5]] + 0.01 * rng.standard_normal((2 ** G, 4))
    eff = {e["groups"]: e for e in chimera.effects(y, groups)}
    assert eff[("embedding",)]["effect"] == pytest.approx(-1.0, abs=0.02)  # effect = 2 x coefficient
    assert eff[("head",)]["effect"] == pytest.approx(-0.4, abs=0.02)
    assert eff[("block0_mlp", "head")]["effect"] == pytest.approx(0.3, abs=0.02)
    others = [e for k, e in eff.items() if k not in {("embedding",), ("head",), ("block0_mlp", "head")}]
    assert max(abs(e["effect"]) for e in others) < 0.02


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def grid_scan(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze") / "scan"
    assert scan.main(TINY_ARGS + ["--seeds", "0:3", "--data-seeds", "0:2", "--wave-size", "8", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_analyze_end_to_end(grid_scan, capsys):
    code = analyze.main([str(grid_scan), "--bootstrap", "100", "--chaos", "0,4", "--perturbations", "2",
                         "--attribute", "0", "1", "--data-seeds", "0", "--quiet"])
    assert code == 0, capsys.readouterr().err
    report = (grid_scan / "analysis" / "report.md").read_text()
    for section in ("## Headline", "## Seed grids", "model seed x data seed", "## Slingshots", "## Chaos floor",
                    "## Layer attribution", "Main effects", "## Progress measures"):
        assert section in report
    assert "evaluated no progress measures" in report  # scanned without --measures
    for name in ("seed_grid_x_plus_y.png", "seed_rates_x_plus_y.png", "chimera_effects.png"):
        assert (grid_scan / "analysis" / "plots" / name).is_file() and f"plots/{name}" in report
    rows = chaos.read(grid_scan / "analysis" / "chaos.csv")
    assert [(r["source_run"], r["perturb"]) for r in rows] == [(0, 0), (0, 1), (0, 2), (4, 0), (4, 1), (4, 2)]
    summary = {r["run"]: r["step_val_acc_99"] for r in jgrok.open_scan(grid_scan).summary}
    assert all(r["step_val_acc_99"] == summary[r["source_run"]] for r in rows if r["perturb"] == 0)
    ch = chimera.read(grid_scan / "analysis" / "chimera.csv")
    assert ch["steps"].shape == (2 ** len(ch["groups"]), 1) and ch["data"] == [(0, 0)]
    assert ch["identical"] == ["norms"] and "norms" not in ch["groups"] and len(ch["groups"]) == 5
    assert "Left out of the factorial: norms" in report
    # trained results are never replaced without --overwrite
    assert analyze.main([str(grid_scan), "--chaos", "0", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("args, words", [
    (["{out}", "--factor", "2"], "--factor must be in"),
    (["{out}", "--factor", "abc"], "--factor takes a number"),
    (["{out}", "--bootstrap", "0"], "--bootstrap must be at least 1"),
    (["{out}", "--spike-curve", "val"], "--spike-curve takes"),
    (["{out}", "--chaos", "99"], "run 99 is not in this scan"),
    (["{out}", "--attribute", "0", "0"], "same initial parameters"),
    (["{out}", "--attribute", "0"], "expected 2 arguments"),
    (["{out}", "--data-seeds", "0:2"], "together with --attribute"),
    (["{out}/nowhere"], "does not exist"),
])
def test_bad_arguments_exit_2_with_one_sentence(grid_scan, capsys, args, words):
    assert analyze.main([a.format(out=grid_scan) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0 and "Traceback" not in err
