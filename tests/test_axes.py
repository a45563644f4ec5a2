"""Research axes are per-run values inside one compiled program."""

import numpy as np

from jgrok import engine, grid, train
from tests.conftest import tiny


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
