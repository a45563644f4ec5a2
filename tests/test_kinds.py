"""Task kinds and models answer for themselves: the kind of a task and of a summary, the columns the writer puts
in summary.csv, every model's layer groups, and the optimiser-state size the engine's memory estimate counts."""

from __future__ import annotations

import jax
import numpy as np

from jgrok import config, engine, grid, init, models, rungroup
from jgrok.io import results
from jgrok.tasks import kinds


def test_every_task_has_one_kind_and_a_summary_tells_its_kind():
    assert kinds.for_task("mheight") is kinds.REGRESS
    assert kinds.for_task("x_plus_y") is kinds.CLASSIFY and kinds.for_task("perm_xyx") is kinds.CLASSIFY
    assert kinds.of_summary([{"drop_step": ""}]) is kinds.REGRESS
    assert kinds.of_summary([{"step_val_acc_99": 3}]) is kinds.CLASSIFY and kinds.of_summary([]) is kinds.CLASSIFY
    assert kinds.CLASSIFY.has_accuracy and not kinds.REGRESS.has_accuracy
    assert "logits" in kinds.CLASSIFY.measures and not kinds.REGRESS.measures
    for kind in kinds.KINDS:  # the columns the writer adds itself are the kind's own
        assert "lanes" in kind.columns and "diverged_step" in kind.columns
        assert set(kind.final_keys) <= set(kind.columns) | {"step_val_acc_99"}
        assert results.columns(kind, [])[: 1 + len(rungroup.COLUMNS)] == ("run",) + rungroup.COLUMNS


def test_summary_rows_carry_exactly_the_kinds_columns():
    R, E = 3, 30
    step = np.arange(1, E + 1) * 10
    rng = np.random.default_rng(0)
    loss = np.exp(-np.linspace(0, 3, E))[None] * (1 + 0.01 * rng.random((R, E)))
    rows = [dict(run=i, task="t", seed=i, split_seed=i, order_seed=i, lr=1e-3, wd=0.1, init="default",
                 init_scale=1.0, optimizer="adamw", filter="none", filter_alpha=0.98, filter_lambda=2.0,
                 filter_window=100, orthogonal_grad=False, variant="", fraction=0.5, p=97, d_model=128,
                 n_layers=2) for i in range(R)]
    metrics = {"train_loss": loss, "val_loss": loss, "weight_norm": loss, "train_acc": 1 - loss, "val_acc": 1 - loss}
    for kind in kinds.KINDS:
        s = results.summarize(rows, metrics, step, 300, 2, np.full(R, -1), None, (0.99,), kind, 4)
        assert set(s[0]) == set(results.columns(kind, s)), kind.name
        assert kinds.of_summary(s) is kind


def test_every_models_parameters_have_layer_groups():
    m = config.ModelConfig()
    cases = {"transformer": (m, 99, 97), "mlp": (config.ModelConfig(kind="mlp", hidden=(8, 8)), 12, 10),
             "resnet": (config.ModelConfig(kind="resnet", width=8, blocks=2), 46, 1)}
    want = {"mlp": ["hidden0", "hidden1", "head"], "resnet": ["input", "block0", "block1", "head", "norms"]}
    for name, (mcfg, n_in, n_out) in cases.items():
        spec = models.abstract(mcfg, n_in, n_out)
        assert isinstance(spec, models.ModelSpec) and spec.graphdef is not None
        groups = init.groups(spec.shapes)  # every parameter path is claimed by its model
        if name in want:
            assert groups == want[name]
        assert models.per_example_floats(mcfg, n_in, n_out) > 0


def test_memory_estimate_counts_the_optimisers_state():
    def prog_of(**optim):
        cfg = config.with_grid(config.load("tiny_cpu"), seed=[0])
        for k, v in optim.items():
            cfg = config.set_path(cfg, f"optim.{k}", v)
        (prog, _, _), = grid.programs(cfg, grid.expand(cfg))
        return prog

    adamw, sgd, ema = prog_of(), prog_of(name="sgd"), prog_of(filter="ema")
    P = adamw.n_params
    assert P - 10 < engine.optimiser_floats(adamw) - P < P + 10  # two moments and a step count
    assert 0 <= engine.optimiser_floats(sgd) - P < 10  # one momentum buffer
    assert 0 <= engine.optimiser_floats(ema) - 3 * P < 10  # the moments and the filter's average
    assert engine.per_run_bytes(ema) - engine.per_run_bytes(adamw) == 4 * (engine.optimiser_floats(ema)
                                                                           - engine.optimiser_floats(adamw))
    assert jax.tree.leaves(adamw.model.shapes)


def test_a_programs_abstract_data_has_its_tables_shapes_for_every_vocabulary():
    """The engine compiles chunks for its memory estimate from abstract shapes alone; they must be the shapes of
    the table the chunk is then given (the nanda vocabulary writes 3 tokens an example, the others 4)."""
    from jgrok.tasks import algorithmic

    for vocab in algorithmic.VOCABS:
        cfg = config.load("tiny_cpu")
        cfg = config.set_path(cfg, "task.vocab", vocab)
        cfg = config.set_path(cfg, "task.name", "x_plus_y")
        [(prog, table, _)] = grid.programs(cfg, grid.expand(cfg))
        x, y = engine.abstract_data(prog)
        assert (x.shape, y.shape) == (table.inputs.shape, table.targets.shape), vocab
        assert (x.dtype, y.dtype) == (table.inputs.dtype, table.targets.dtype), vocab
