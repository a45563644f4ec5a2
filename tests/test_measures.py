"""Progress measures (jgrok.measures): the formulas on hand-built models, the group maps, the config checks, and
that measures never change training."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgrok import config, grid, measures, train
from jgrok.errors import ConfigError
from jgrok.tasks import algorithmic

from .conftest import TINY, tiny, train_runs


def _prog(task: str, p: int, which: str = "fourier,logits"):
    cfg = config.from_dict({**TINY, "task": {"name": task, "p": p, "fraction": 0.5},
                            "train": {**TINY["train"], "measures": which, "eval_batch": 64}})
    config.validate(cfg)
    (prog, table, _), = grid.programs(cfg, grid.expand(cfg))
    return prog, (jnp.asarray(table.inputs), jnp.asarray(table.targets)), table


# ------------------------------------------------------------------------------------------ the groups


@pytest.mark.parametrize("p", [31, 97])
def test_discrete_log_of_a_prime(p):
    power, log = measures.discrete_log(p)
    g = measures.primitive_root(p)
    assert sorted(power.tolist()) == list(range(1, p))  # g generates every nonzero number: a primitive root
    assert all(pow(g, i, p) == power[i] for i in range(p - 1))
    assert all(log[power[i]] == i for i in range(p - 1)) and log[0] == -1
    # the log turns products into sums of exponents mod p - 1
    x, y = power[5], power[p - 3]
    assert log[x * y % p] == (5 + p - 3) % (p - 1)
    assert measures.primitive_root(7) == 3 and measures.primitive_root(23) == 5


@pytest.mark.parametrize("task", sorted(measures.FOURIER_TASKS))
def test_group_rows_and_answers_match_the_task_table(task):
    p = 13
    table = algorithmic.build(task, config.TaskConfig(name=task, p=p))
    g = measures.group(task, p)
    # row[i, j] holds the operands (number[i], number[j]) and its answer is the number of index i + s j
    assert np.array_equal(table.inputs[g.row, 0] - 2, np.broadcast_to(g.number[:, None], g.row.shape))
    assert np.array_equal(table.inputs[g.row, 2] - 2, np.broadcast_to(g.number[None, :], g.row.shape))
    assert np.array_equal(table.targets[g.row], g.number[g.t])


# ------------------------------------------------------------------------------------------ fourier


def _fourier_solution(task: str, p: int, keys, scale=20.0, D=8):
    """An embedding made of the key frequencies only, and a model whose logits are
    scale * sum_k cos(w_k (i + s j - c)) over group indices (the Fourier multiplication algorithm)."""
    g = measures.group(task, p)
    idx = np.full(p, 0, np.int64)
    idx[g.number] = np.arange(g.n)
    w = 2 * np.pi * np.asarray(keys) / g.n
    E = np.zeros((p + 2, D), np.float32)
    E[g.number + 2, :len(keys)] = np.cos(w[None, :] * np.arange(g.n)[:, None])
    E[g.number + 2, len(keys):2 * len(keys)] = np.sin(w[None, :] * np.arange(g.n)[:, None])
    idx_j, num_j = jnp.asarray(idx), jnp.asarray(g.number)

    def apply(params, tokens):
        i, j = idx_j[tokens[:, 0] - 2], idx_j[tokens[:, 2] - 2]
        t = (i + g.sign * j) % g.n
        logits = scale * sum(jnp.cos(wk * (t[:, None] - jnp.arange(g.n)[None, :])) for wk in w)
        return jnp.full((tokens.shape[0], p), -50.0).at[:, num_j].set(logits)  # class 0 (no group element) lowest

    return {"tok_emb": {"embedding": jnp.asarray(E)}}, apply


@pytest.mark.parametrize("task", ["x_plus_y", "x_times_y", "x_minus_y", "x_div_y"])
def test_fourier_solution_has_zero_restricted_loss_and_large_excluded_loss(task):
    p, keys = 31, [2, 5, 9]
    prog, data, table = _prog(task, p, "fourier")
    params, apply = _fourier_solution(task, p, keys)
    perm = jnp.asarray(np.random.default_rng(0).permutation(table.n_pairs).astype(np.int32))
    m = jax.jit(lambda prm, pr: measures.fourier_measures(prog, apply, prm, pr, data, train.row_n_train(prog, {"fraction": prog.cfg.task.fraction})))(params, perm)
    n = measures.group(task, p).n
    assert float(m["restricted_loss"]) < 1e-4
    assert float(m["excluded_loss"]) > 0.95 * np.log(n)  # nothing but chance left once the key frequencies go
    assert int(m["fourier_key_freqs"]) == 3
    spec = np.asarray(m["fourier_spectrum"])
    assert spec.shape == (n // 2,) and sorted(np.argsort(-spec)[:3] + 1) == keys
    F = n // 2
    assert abs(float(m["fourier_gini"]) - (1 - 3 / F)) < 1e-5  # three equal values among F: Gini = 1 - 3/F


def test_lookup_table_is_not_a_fourier_solution():
    """Correct class +8 over noise, no Fourier structure: the key frequencies carry little of it."""
    p = 97
    g = measures.group("x_plus_y", p)
    R = np.random.default_rng(1).standard_normal((p * p, p)).astype(np.float32)
    R[np.arange(p * p), g.t.reshape(-1)] += 8
    mask = jnp.zeros(g.n // 2).at[jnp.array([3, 16, 31])].set(1.0)  # frequencies 4, 17, 32
    train = (np.random.default_rng(0).random(p * p) < 0.5).astype(np.float32)
    r, e = measures.restricted_excluded(jnp.asarray(R), mask, jnp.asarray(train), g)
    assert float(r) > 0.8 * np.log(p) and float(e) < 0.2


def test_gini_and_key_count():
    assert float(measures.gini(jnp.ones(8))) == pytest.approx(0.0, abs=1e-6)
    assert float(measures.gini(jnp.array([0, 0, 0, 4.0]))) == pytest.approx(0.75)
    mask, count = measures.key_mask(jnp.array([3.0, 1.0, 0.1, 0.1]))  # squares 9, 1, .01, .01: 9/10.02 < 0.9
    assert int(count) == 2 and np.asarray(mask).tolist() == [1, 1, 0, 0]


# ------------------------------------------------------------------------------------------ logits


def _scaled_onehot(table):
    targets = jnp.asarray(table.targets)

    def apply(params, tokens):  # the answer's logit is params["s"], every other logit 0
        y = targets[(tokens[:, 0] - 2) * table.n_out + tokens[:, 2] - 2]
        return params["s"] * jax.nn.one_hot(y, table.n_out)

    return apply


@pytest.mark.parametrize("scale, collapse", [(200.0, 1.0), (1.0, 0.0)])
def test_softmax_collapse_of_hand_made_logits(scale, collapse):
    prog, data, table = _prog("x_plus_y", 11, "logits")
    perm = jnp.arange(table.n_pairs, dtype=jnp.int32)
    m = measures.logits_measures(prog, _scaled_onehot(table), {"s": jnp.float32(scale)}, perm, data, train.row_n_train(prog, {"fraction": prog.cfg.task.fraction}))
    assert float(m["softmax_collapse"]) == collapse
    assert float(m["logit_max"]) == pytest.approx(scale) and float(m["logit_norm"]) == pytest.approx(scale)
    # d(mean CE)/ds = -(1 - softmax_y) < 0 while s > 0: cosine -1 (0 once the gradient underflows to exactly 0)
    assert float(m["grad_cos"]) == pytest.approx(0.0 if collapse else -1.0)


def test_grad_cos_matches_the_full_batch_gradient():
    prog, data, table = _prog("x_plus_y", 11, "logits")
    key = jax.random.key(0)
    params = {"a": jax.random.normal(key, (table.n_out,)), "b": jnp.float32(0.7)}
    apply = lambda prm, x: prm["b"] * jnp.sin(x[:, :1] + prm["a"][None, :])  # noqa: E731
    perm = jnp.asarray(np.random.default_rng(3).permutation(table.n_pairs).astype(np.int32))
    n = train.row_n_train(prog, {"fraction": prog.cfg.task.fraction})
    m = measures.logits_measures(prog, apply, params, perm, data, n)
    x, y = data[0][perm[:n]], data[1][perm[:n]]

    def loss(prm):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(apply(prm, x)), y[:, None], -1))

    g = jax.grad(loss)(params)
    flat = lambda t: jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(t)])  # noqa: E731
    want = jnp.dot(flat(params), flat(g)) / (jnp.linalg.norm(flat(params)) * jnp.linalg.norm(flat(g)))
    assert float(m["grad_cos"]) == pytest.approx(float(want), rel=1e-4, abs=1e-6)


# ------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("task, p, which, words", [
    ("x2_plus_y", 11, "fourier", "cyclic-group"),
    ("permutation", 11, "fourier", "cyclic-group"),
    ("x_times_y", 12, "fourier", "not prime"),
    ("x_plus_y", 11, "fourier,gradients", "unknown"),
])
def test_undefined_measures_are_config_errors(task, p, which, words):
    with pytest.raises(ConfigError, match=words):
        config.validate(config.from_dict({**TINY, "task": {"name": task, "p": p, "perm_n": 3},
                                          "train": {**TINY["train"], "measures": which}}))


def test_cli_rejects_an_undefined_measure(capsys):
    from jgrok import scan

    from .conftest import TINY_ARGS

    args = [a if a != "x_plus_y" else "x2_plus_y" for a in TINY_ARGS]
    assert scan.main(args + ["--measures", "fourier", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "fourier" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_measures_join_the_stop_rule_vocabulary():
    prog, _, _ = _prog("x_plus_y", 11)
    prog = dataclasses.replace(prog, cfg=config.set_path(prog.cfg, "train.stop_when", "softmax_collapse>0.5"))
    assert train.stop_rule(prog)[0] == "softmax_collapse"
    prog = dataclasses.replace(prog, cfg=config.set_path(prog.cfg, "train.stop_when", "fourier_spectrum>1"))
    with pytest.raises(ConfigError, match="not evaluated"):
        train.stop_rule(prog)


def test_no_measures_no_new_keys():
    prog, _, _ = _prog("x_plus_y", 11, "")
    assert measures.keys(prog) == [] and set(train.eval_shapes(prog).values()) == {()}
    assert "logit_max" not in train.eval_keys(prog)


# ------------------------------------------------------------------------------------------ training


@pytest.mark.slow
def test_measures_leave_training_bit_identical(tmp_path):
    from jgrok import engine
    from jgrok.io import checkpoint

    cfg = tiny(seed=[0, 1, 2])
    on = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, measures="fourier,logits"))
    a, b = train_runs(cfg), train_runs(on)
    # interrupted after the first chunk and resumed from its checkpoint: the measure curves come back whole
    (prog, table, members), = grid.programs(on, grid.expand(on))
    with pytest.raises(engine.Interrupted):
        engine.train_program(prog, table, members, 4, progress=False, ckpt=checkpoint.manager(tmp_path, 0),
                             should_stop=lambda: True)
    resumed = engine.train_program(prog, table, members, 4, progress=False, ckpt=checkpoint.manager(tmp_path, 0))
    for k in b.metrics:
        assert np.array_equal(b.metrics[k], resumed.metrics[k], equal_nan=True), k
    for x, y in zip(jax.tree.leaves(a.final_params), jax.tree.leaves(b.final_params)):
        assert np.array_equal(x, y)
    for k in a.metrics:
        assert np.array_equal(a.metrics[k], b.metrics[k], equal_nan=True), k
    E = len(a.eval_step)
    assert b.metrics["fourier_spectrum"].shape == (3, E, 5)
    for k in measures.KEYS["logits"] + measures.KEYS["fourier"]:
        assert np.isfinite(b.metrics[k]).all(), k


# ------------------------------------------------------------------------------------------ analysis


def test_crossing_step_is_the_half_way_point():
    from jgrok.analysis import progress

    steps = np.array([10, 20, 30, 40, 50])
    c = np.array([[0, 0.1, 0.4, 0.6, 1.0],      # rising: half way first met at step 40
                  [5, 4, 3, 1, 1],              # falling 5 -> 1: half way (3) at step 30
                  [2, 2, 2, 2, 2],              # flat: never moves
                  [0, 1, np.nan, np.nan, np.nan]])  # stopped early: the last finite value is the end
    assert np.array_equal(progress.crossing_steps(c, steps), [40, 30, np.nan, 20], equal_nan=True)


def test_what_moves_first_finds_a_planted_predictor_and_says_when_nothing_predicts():
    from scipy import stats

    from jgrok.analysis import progress

    rng = np.random.default_rng(0)
    R, E, budget = 40, 50, 5000
    steps = np.arange(1, E + 1) * 100
    s99 = rng.integers(15, 45, R) * 100  # grokking steps
    x = steps[None, :]
    # "lead": a sigmoid that rises 800 steps before each run's grokking step; "noise": independent of it
    curves = {"restricted_loss": 1 / (1 + np.exp((x - (s99[:, None] - 800)) / 50)),
              "logit_max": rng.random((R, E)).cumsum(axis=1)}
    curves["val_acc"] = (x >= s99[:, None]).astype(float)
    curves["logit_max"][:, :5] = rng.random((R, 5))  # early values with no information
    reached = np.ones(R, bool)
    tab = progress.what_moves_first(curves, steps, s99.astype(float), reached, budget, B=200, seed=0)
    by = {d["measure"]: d for d in tab}
    lead = by["restricted_loss"]
    assert lead["predicts"] and lead["rho"] > 0.95 and lead["median_lead"] == 800
    assert lead["rho"] == pytest.approx(stats.spearmanr(progress.crossing_steps(curves["restricted_loss"], steps),
                                                        s99).statistic)
    assert tab[0]["measure"] == "restricted_loss"  # moves first among the measures
    assert "restricted_loss" in progress.verdict(tab, R)
    noise = [d for d in tab if d["measure"] == "logit_max"]
    nothing = progress.verdict(noise, R)
    assert not noise[0]["predicts"] and nothing.startswith("Nothing predicts")
    assert progress.verdict(tab, 3).startswith("Only 3 run(s)")


def test_loo_r2_is_near_zero_for_noise_and_one_for_a_line():
    from jgrok.analysis import progress

    rng = np.random.default_rng(1)
    x = rng.random(50)
    assert progress.loo_r2(x, 3 * x + 1) == pytest.approx(1.0)
    assert progress.loo_r2(x, rng.random(50)) < 0.05


@pytest.mark.slow
def test_scan_and_analyze_with_measures(tmp_path, capsys):
    from jgrok import analyze, scan

    from .conftest import TINY_ARGS

    out = tmp_path / "m"
    args = TINY_ARGS + ["--seeds", "0:3", "--wave-size", "4", "--measures", "fourier,logits", "--out", str(out)]
    assert scan.main(args) == 0
    with np.load(out / "metrics.npz") as z:
        E = len(z["eval_step"])
        assert z["fourier_spectrum"].shape == (3, E, 5)
        for k in measures.KEYS["logits"] + measures.KEYS["fourier"][:-1]:
            assert z[k].shape == (3, E) and np.isfinite(z[k]).all(), k
    tags = set()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for d in (out / "tb").rglob("events.*"):
        acc = EventAccumulator(str(d.parent))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"measures/restricted_loss/median", "measures/softmax_collapse/q90", "measures/grad_cos"} <= tags
    assert analyze.main([str(out), "--bootstrap", "20", "--quiet"]) == 0, capsys.readouterr().err
    report = (out / "analysis" / "report.md").read_text()
    assert "## Progress measures" in report and "restricted_loss" in report and "(reference) val_acc" in report
    assert "Only 0 run(s) reached 99% val acc" in report  # 12 updates: nothing groks, and the report says so
    for name in ("measures_x_plus_y.png", "measures_aligned_x_plus_y.png", "fourier_spectrum_x_plus_y.png",
                 "fourier_norms.png"):
        assert (out / "analysis" / "plots" / name).is_file() and f"plots/{name}" in report
