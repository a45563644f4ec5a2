"""Per-layer-group init overrides and starting from a trained run (--init-group, --init-from)."""

import jax
import numpy as np
import pytest

import jgrok
from jgrok import config, engine, grid, init, results_folder, scan
from tests.conftest import TINY_ARGS, tiny


def initial_params(cfg):
    """{run id: {tensor path: initial value}} for every run of a config, through the engine's compiled init."""
    rows = grid.expand(cfg)
    out = {}
    for prog, _, members in results_folder.programs(cfg, rows):
        init_fn, _ = prog.compiled(1)
        state = init_fn(grid.hyper(prog, members))
        flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
        for i, r in enumerate(members):
            out[r["run"]] = {init.path_str(p): np.asarray(x[i]) for p, x in flat}
        groups = init.leaf_groups(prog.model[1])
    return out, groups


@pytest.mark.slow
def test_group_seed_override_takes_exactly_that_groups_tensors():
    plain, groups = initial_params(tiny(seed=[0, 1, 5]))
    cfg = config.set_path(tiny(seed=[0, 1]), "init.groups", "head=seed:5,block0_mlp=seed:5")
    mixed, _ = initial_params(cfg)
    for run, seed_run in ((0, 0), (1, 1)):
        for path, value in mixed[run].items():
            src = plain[2] if groups[path] in ("head", "block0_mlp") else plain[seed_run]
            np.testing.assert_array_equal(value, src[path], err_msg=path)


@pytest.mark.slow
def test_group_scheme_override_joins_the_programs_schemes():
    cfg = config.set_path(tiny(seed=[0]), "init.groups", "embedding=scheme:orthogonal")
    (prog, _, members), = grid.programs(cfg, grid.expand(cfg))
    assert prog.schemes == ("default", "orthogonal")
    hp = grid.hyper(prog, members)
    g = prog.groups.index("embedding")
    assert hp.scheme_G[0, g] == 1 and hp.scheme_G[0].sum() == 1
    params, groups = initial_params(cfg)
    emb = params[0]["tok_emb/embedding"]  # [V, D]: orthonormal rows or columns, whichever are fewer
    gram = emb @ emb.T if emb.shape[0] <= emb.shape[1] else emb.T @ emb
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-5)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("src") / "xminusy"
    args = [a if a != "x_plus_y" else "x_minus_y" for a in TINY_ARGS]
    assert scan.main(args + ["--seeds", "0:2", "--wave-size", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_init_from_starts_from_a_trained_run_on_another_task(source):
    trained = jgrok.open_scan(source).restore([1])[0]
    trained = {init.path_str(p): x for p, x in jax.tree_util.tree_flatten_with_path(trained)[0]}
    cfg = config.set_path(tiny(seed=[3, 4]), "init.from_run", f"{source}:1")
    started, _ = initial_params(cfg)
    for run in (0, 1):
        for path, value in started[run].items():
            np.testing.assert_array_equal(value, trained[path], err_msg=path)
    # named groups only: the rest is the run's own initialisation
    cfg = config.set_path(tiny(seed=[3]), "init.from_run", f"{source}:1:embedding,head")
    partly, groups = initial_params(cfg)
    own, _ = initial_params(tiny(seed=[3]))
    for path, value in partly[0].items():
        src = trained if groups[path] in ("embedding", "head") else own[0]
        np.testing.assert_array_equal(value, src[path], err_msg=path)


@pytest.mark.slow
def test_init_from_trains_end_to_end(source, tmp_path, capsys):
    out = tmp_path / "finetune"
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--init-from", f"{source}:0", "--out", str(out)]) == 0
    assert "from_run" in (out / "config.yaml").read_text()
    assert (out / "summary.csv").is_file()


@pytest.mark.parametrize("args,words", [
    (["--init-group", "head=seed:x"], "whole number"),
    (["--init-group", "head"], "GROUP=seed:N"),
    (["--init-group", "head=scheme:magic"], "Init scheme 'magic'"),
    (["--init-group", "block7_mlp=seed:1"], "does not exist in this model"),
    (["--init-from", "nowhere"], "OUT:RUN"),
    (["--init-from", "no_such_folder:3"], "not a jgrok results folder"),
])
def test_bad_overrides_are_one_sentence_and_exit_2(args, words, tmp_path, capsys):
    out = tmp_path / "never"
    code = scan.main(TINY_ARGS + ["--seeds", "0:2"] + args + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.slow
def test_init_from_other_shape_and_missing_run_are_refused(source, tmp_path, capsys):
    bigger = [a if a != "task.p=11" else "task.p=13" for a in TINY_ARGS]
    code = scan.main(bigger + ["--init-from", f"{source}:0", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "another shape" in err, err
    code = scan.main(TINY_ARGS + ["--init-from", f"{source}:9", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "Run 9 is not part" in err, err
