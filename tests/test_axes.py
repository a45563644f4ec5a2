"""Research axes are per-run values inside one compiled program."""

import numpy as np
import pytest

from jgrok import engine, grid, train
from tests.conftest import tiny


@pytest.mark.slow
def test_schemes_and_filters_compile_the_training_step_once(monkeypatch):
    traces = []
    real = train.train_step

    def counting(*args, **kw):
        traces.append(1)  # runs only while JAX traces the step, never per update
        return real(*args, **kw)

    monkeypatch.setattr(train, "train_step", counting)
    train.clear_caches()
    cfg = tiny(seed=[0, 1], init=["default", "xavier_uniform", "orthogonal"], filter=["none", "ema", "ma"],
               filter_window=[3])
    rows = grid.expand(cfg)
    assert len(rows) == 18
    (prog, table, members), = grid.programs(cfg, rows)
    assert prog.schemes == ("default", "xavier_uniform", "orthogonal") and prog.filters == ("none", "ema", "ma")
    res = engine.train_program(prog, table, members, lanes=18, progress=False)
    assert len(traces) == 1
    train.clear_caches()
    # the values really differ per run: every (scheme, filter) cell ends with different parameters
    head = res.final_params["head"]["kernel"].reshape(18, -1)
    assert len({h.tobytes() for h in head}) == 18
    assert np.isfinite(res.metrics["val_loss"]).all()


# ------------------------------------------------------------------------------------------------ the registry
# One value per axis that differs from the base config's (conftest.TINY and the Config defaults), as a command
# line writes it and as the runs table holds it. Axes without a flag are set in the config file's grid.
ROUND_TRIP = {
    "task": ("x_minus_y", "x_minus_y"),
    "seed": ("3,4", 3),  # two runs: the model seeds 3 and 4
    "split_seed": ("5", 5),
    "order_seed": ("6", 6),
    "wd": ("0.25", 0.25),
    "lr": ("0.002", 0.002),
    "init": ("xavier_uniform", "xavier_uniform"),
    "init_scale": ("1.5", 1.5),
    "optimizer": ("adam_l2", "adam_l2"),
    "filter": ("ema", "ema"),
    "filter_alpha": ("0.9", 0.9),
    "filter_lambda": ("1.5", 1.5),
    "filter_window": ("3", 3),
    "orthogonal_grad": (True, True),
    "variant": ("plain", "plain"),
    "fraction": ("0.3", 0.3),
    "p": ("13", 13),
    "d_model": ("8", 8),
    "n_layers": ("2", 2),
}
# data_seed is no column: it sets the split and the order seed, checked without training below
NOT_TRAINED = {"data_seed"}


def _round_trip_args(tmp, values=ROUND_TRIP):
    import yaml

    from jgrok import axes
    from tests.conftest import TINY

    data = {**TINY, "variants": {"plain": {}}, "grid": {}}
    args = []
    for a in axes.REGISTRY:
        if a.name in NOT_TRAINED:
            continue
        text, _ = values[a.name]
        if a.flag is None:
            data["grid"][a.name] = [text]
        else:
            args += [a.flag, text]
    path = tmp / "round_trip.yaml"
    path.write_text(yaml.safe_dump(data))
    return ["--config", str(path), *args]


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    from jgrok import scan

    tmp = tmp_path_factory.mktemp("axes")
    out = tmp / "scan"
    assert scan.main(_round_trip_args(tmp) + ["--wave-size", "2", "--no-tensorboard", "--quiet",
                                              "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_every_axis_round_trips_flag_config_runs_run_config_summary(round_trip):
    import jgrok
    from jgrok import axes, rungroup

    assert set(ROUND_TRIP) | NOT_TRAINED == {a.name for a in axes.REGISTRY}, "give every axis a value here"
    s = jgrok.open_scan(round_trip)
    assert [r["seed"] for r in s.runs] == [3, 4]
    hp = grid.hyper(grid.programs(s.config, s.runs)[0][0], s.runs)
    for a in axes.REGISTRY:
        if a.name in NOT_TRAINED:
            continue
        want = ROUND_TRIP[a.name][1]
        assert s.config.grid[a.name][0] == want, a.name  # flag (or the config's grid) -> config
        assert s.runs[0][a.name] == want, a.name  # -> runs table
        assert rungroup.value_text(s.summary[0][a.name]) == rungroup.value_text(want), a.name  # -> summary.csv
        if a.field is not None:  # -> the run's own config, for both runs
            for r in s.runs:
                section, field = a.field
                assert getattr(getattr(s.run_config(r["run"]), section), field) == r[a.name], a.name
        if a.hyper is not None:  # -> the per-run values the program trains with
            np.testing.assert_array_equal(getattr(hp, a.name), np.array([want, want], a.hyper), err_msg=a.name)


def test_data_seeds_set_split_and_order_seeds(tmp_path):
    from jgrok import scan

    args = scan.build_parser().parse_args(["--seeds", "0,1", "--data-seeds", "7,8", "--steps", "10"])
    cfg = scan.resolve(args)
    assert cfg.grid["data_seed"] == [7, 8]
    rows = grid.expand(cfg)
    assert [(r["seed"], r["split_seed"], r["order_seed"]) for r in rows] == [(0, 7, 7), (1, 7, 7), (0, 8, 8),
                                                                            (1, 8, 8)]


def test_an_axis_added_to_the_registry_is_a_column_of_the_runs_table(monkeypatch, tmp_path):
    """A throw-away axis over train.eval_batch (a field whose value changes no result) goes through the config's
    grid, the runs table, the programs and run_config without any other change."""
    import jgrok
    from jgrok import axes, config

    probe = axes.Axis("eval_batch", "program", nest=len(axes.REGISTRY), column=len(axes.columns()),
                      field=("train", "eval_batch"))
    monkeypatch.setattr(axes, "REGISTRY", axes.REGISTRY + (probe,))
    cfg = config.with_grid(tiny(), seed=["0", "1"], eval_batch=["64", "128"])
    rows = grid.expand(cfg)
    # nested innermost (its nest is the last): the runs of one seed are side by side
    assert [(r["eval_batch"], r["seed"]) for r in rows] == [(64, 0), (128, 0), (64, 1), (128, 1)]
    assert [len(m) for _, _, m in grid.programs(cfg, rows)] == [2, 2]  # a program axis splits programs
    out = tmp_path / "scan"
    out.mkdir()
    (out / "config.yaml").write_text(config.dump(cfg))
    s = jgrok.open_scan(out)
    assert [s.run_config(r).train.eval_batch for r in range(4)] == [64, 128, 64, 128]
