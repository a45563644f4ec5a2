"""Validation: every value a user can set, section by section, each mistake one ConfigError sentence saying what to
change; and the check of a sequential design (``--until-decided``) once the scan's grid is known."""

from __future__ import annotations

import dataclasses
import itertools

from jgrok import axes, grokfast, losses, measures, models, optim, runids
from jgrok import init as init_mod
from jgrok.config.parse import parse_from_run, parse_group_overrides, parse_stop_rule, parse_thresholds
from jgrok.config.schema import (
    approx_params, AXES, Config, EngineConfig, field_types, INT32_MAX, MAX_LANES, MAX_PARAMS, MAX_RUNS, ModelConfig,
    n_runs, one_of, replicates, SECTIONS, SEED_AXES, SEQUENTIAL_TESTS, short, SPENDING, variant_config,
)
from jgrok.errors import ConfigError
from jgrok.models import resnet, transformer
from jgrok.tasks import algorithmic, mheight_task


def validate(cfg: Config) -> None:
    """Check every value a user can set; raise ConfigError naming what to change. The sections are checked in
    this order, each by its own function; a grid axis's values are checked where its field is."""
    tasks = _axis_values(cfg, "task")
    regression = mheight_task.NAME in tasks
    _check_task(cfg, tasks, regression)
    for m in each(cfg, "model"):  # every width and depth of the grid
        _check_model(m, regression)
    _check_shape_axes(cfg, tasks)
    _check_optim(cfg)
    _check_init(cfg)
    _check_train(cfg, tasks, regression)
    _check_engine(cfg.engine)
    _check_limits(cfg)
    _check_grid(cfg)
    _check_sequential(cfg)


def _axis_values(cfg: Config, axis: str) -> list:
    """The values a grid axis takes: its list in the grid, or the base config's one value."""
    section, field = axes.by_name(axis).field
    return list(cfg.grid.get(axis, [getattr(getattr(cfg, section), field)]))


def each(cfg: Config, section: str) -> list:
    """The config section ``section`` with every combination of the values of the grid's program axes that
    replace one of its fields (``--p 53,97`` gives two task sections): a shape axis's values are checked one by
    one, each as the config of the programs that have it."""
    names = [a.name for a in axes.program() if a.field is not None and a.field[0] == section and a.name in cfg.grid
             and a.name != "task"]
    base = getattr(cfg, section)
    return [dataclasses.replace(base, **{axes.by_name(a).field[1]: v for a, v in zip(names, values)})
            for values in itertools.product(*(cfg.grid[a] for a in names))]


def _check_shape_axes(cfg: Config, tasks: list[str]) -> None:
    """A shape axis the scan's model or tasks do not have would train the same runs under several labels."""
    if "p" in cfg.grid and not any(algorithmic.is_modular(t) for t in tasks):
        raise ConfigError(f"--p sets the modulus of the modular tasks, and this scan has none (tasks: "
                          f"{', '.join(tasks)}); drop --p.")
    for axis, flag in (("d_model", "--d-model"), ("n_layers", "--layers")):
        if axis in cfg.grid and cfg.model.kind != "transformer":
            raise ConfigError(f"{flag} sets the transformer's {axis}, and model.kind '{cfg.model.kind}' has none; "
                              f"drop {flag} (or set model.kind: transformer).")


def _check_task(cfg: Config, tasks: list[str], regression: bool) -> None:
    for t in each(cfg, "task"):  # every modulus of the grid
        for name in tasks:
            if name == mheight_task.NAME:
                mheight_task.check(t)
            else:
                algorithmic.check_task(name, t)
    if regression and len(tasks) > 1:
        raise ConfigError("Task 'mheight' (regression) cannot share a scan with classification tasks; scan it alone.")
    t = cfg.task
    for f in _axis_values(cfg, "fraction"):
        if not 0.0 < f < 1.0:
            raise ConfigError(f"task.fraction must be between 0 and 1 (exclusive), not {f}.")
    if regression and "fraction" in cfg.grid:
        raise ConfigError("Task 'mheight' sizes its split with task.train_per_group and task.val_per_group, not "
                          "a training fraction; drop the fraction axis (--fraction).")
    if t.split not in ("shuffled", "ordered"):
        raise ConfigError(f"task.split must be 'shuffled' or 'ordered', not '{t.split}'.")


def _check_model(m: ModelConfig, regression: bool) -> None:
    if m.kind not in models.KINDS:
        raise ConfigError(f"model.kind '{m.kind}' is unknown; use {one_of(models.KINDS, quote=True)}.")
    if m.kind == "mlp" and not all(1 <= h <= 2**16 for h in m.hidden):
        raise ConfigError(f"model.hidden takes layer sizes from 1 to 65536, not {list(m.hidden)}.")
    if regression and m.kind != "resnet":
        raise ConfigError("Task 'mheight' is a regression task for the ResNet regressor; set model.kind: resnet.")
    if not regression and m.kind == "resnet":
        raise ConfigError("model.kind 'resnet' is the m-height regressor; use it with task mheight (or use "
                          "model.kind: transformer).")
    for field in ("width", "blocks"):
        _at_least_one(m, field)
    if m.output not in resnet.OUTPUTS:
        raise ConfigError(f"model.output must be {one_of(resnet.OUTPUTS, quote=True)}, not '{m.output}'.")
    for field in ("n_layers", "d_model", "n_heads", "mlp_ratio", "n_positions"):
        _at_least_one(m, field)
    if m.d_model % m.n_heads:
        raise ConfigError(f"model.d_model ({m.d_model}) must be divisible by model.n_heads ({m.n_heads}).")
    if m.norm not in transformer.NORMS:
        raise ConfigError(f"model.norm must be one of {', '.join(transformer.NORMS)}, not '{m.norm}'.")
    if m.activation not in transformer.ACTIVATIONS:
        raise ConfigError(f"model.activation must be {one_of(transformer.ACTIVATIONS, quote=True)}, "
                          f"not '{m.activation}'.")
    if m.positions not in transformer.POSITIONS:
        raise ConfigError(f"model.positions must be {one_of(transformer.POSITIONS, quote=True)}, "
                          f"not '{m.positions}'.")


def _at_least_one(m: ModelConfig, field: str) -> None:
    if getattr(m, field) < 1:
        raise ConfigError(f"model.{field} must be at least 1, not {getattr(m, field)}.")


def _check_optim(cfg: Config) -> None:
    o = cfg.optim
    for name in _axis_values(cfg, "optimizer"):
        if name not in optim.OPTIMIZERS:
            raise ConfigError(f"Optimizer '{name}' is unknown; use {one_of(optim.OPTIMIZERS)}.")
    for lr in _axis_values(cfg, "lr"):
        if lr <= 0:
            raise ConfigError(f"Learning rate must be positive, not {lr}.")
    for wd in _axis_values(cfg, "wd"):
        if wd < 0:
            raise ConfigError(f"Weight decay must be zero or positive, not {wd}.")
    if not (0 <= o.b1 < 1 and 0 <= o.b2 < 1):
        raise ConfigError(f"optim.b1 and optim.b2 must be in [0, 1), not {o.b1} and {o.b2}.")
    if o.eps <= 0:
        raise ConfigError(f"optim.eps must be positive, not {o.eps}.")
    if not 0 <= o.momentum < 1:
        raise ConfigError(f"optim.momentum must be in [0, 1), not {o.momentum}.")
    if o.warmup < 0:
        raise ConfigError(f"optim.warmup must be zero or positive, not {o.warmup}.")
    for name in _axis_values(cfg, "filter"):
        if name not in grokfast.KINDS:
            raise ConfigError(f"Gradient filter '{name}' is unknown; use {one_of(grokfast.KINDS)}.")
    for a in _axis_values(cfg, "filter_alpha"):
        if not 0 <= a < 1:
            raise ConfigError(f"Filter alpha must be in [0, 1), not {a}.")
    for lam in _axis_values(cfg, "filter_lambda"):
        if lam < 0:
            raise ConfigError(f"Filter lambda must be zero or positive, not {lam}.")
    for w in _axis_values(cfg, "filter_window"):
        if w < 1:
            raise ConfigError(f"Filter window must be at least 1, not {w}.")


def _check_init(cfg: Config) -> None:
    for scheme in _axis_values(cfg, "init"):
        if scheme not in init_mod.SCHEMES:
            raise ConfigError(f"Init scheme '{scheme}' is unknown; use one of {', '.join(init_mod.SCHEMES)}.")
    parse_group_overrides(cfg.init.groups)
    parse_from_run(cfg.init.from_run)
    for s in _axis_values(cfg, "init_scale"):
        if s <= 0:
            raise ConfigError(f"Init scale must be positive, not {s}.")


def _check_train(cfg: Config, tasks: list[str], regression: bool) -> None:
    tr, t, m = cfg.train, cfg.task, cfg.model
    for field in ("steps", "batch_size", "eval_every", "eval_batch"):
        if getattr(tr, field) < 1:
            raise ConfigError(f"train.{field} must be at least 1, not {getattr(tr, field)}.")
    if tr.sampling not in ("replacement", "epochs", "full"):
        raise ConfigError(f"train.sampling must be 'replacement', 'epochs' or 'full', not '{tr.sampling}'.")
    for field in ("epochs", "eval_every_epochs"):
        if getattr(tr, field) < 0:
            raise ConfigError(f"train.{field} must be zero or positive, not {getattr(tr, field)}.")
        if getattr(tr, field) and tr.sampling != "epochs":
            raise ConfigError(f"train.{field} counts shuffled epochs; set train.sampling: epochs, or count updates "
                              f"with train.{'steps' if field == 'epochs' else 'eval_every'}.")
    if tr.precision not in ("fp32", "tf32", "bf16", "fp64"):
        raise ConfigError(f"train.precision must be 'fp32', 'tf32', 'bf16' or 'fp64', not '{tr.precision}'.")
    if tr.loss not in losses.LOSSES:
        raise ConfigError(f"train.loss '{tr.loss}' is unknown; use one of {', '.join(losses.LOSSES)}.")
    if tr.softmax_precision not in losses.SOFTMAX_DTYPES:
        raise ConfigError(f"train.softmax_precision must be {one_of(losses.SOFTMAX_DTYPES)}, "
                          f"not {tr.softmax_precision}.")
    if regression and (tr.loss != "answer" or tr.softmax_precision != 32):
        raise ConfigError("Task 'mheight' is a regression (mean squared error); leave train.loss and "
                          "train.softmax_precision at their defaults.")
    parse_stop_rule(tr.stop_when)
    for t in each(cfg, "task"):
        measures.check(tr.measures, tasks, m.kind, t.p, t.vocab)
    parse_thresholds(tr.thresholds)
    if tr.loss == "sequence" and regression:
        raise ConfigError("train.loss 'sequence' is for token tasks; the m-height regression has no sequence.")
    if tr.loss == "sequence" and m.kind != "transformer":
        raise ConfigError(f"train.loss 'sequence' needs the transformer (every position's logits); model.kind "
                          f"'{m.kind}' sees the pair at once.")
    if tr.loss == "sequence" and not algorithmic.vocab(t.vocab, t.p).full_output:
        raise ConfigError("train.loss 'sequence' predicts every next token, so the output layer must score every "
                          "token: set task.vocab to grokfast, signed or nanda.")
    if tr.patience < 1:
        raise ConfigError(f"--patience must be at least 1 evaluation, not {tr.patience}.")


def _check_engine(e: EngineConfig) -> None:
    if e.wave_size < 0:
        raise ConfigError(f"engine.wave_size must be positive (or 0 for automatic), not {e.wave_size}.")
    if e.chunk < 1:
        raise ConfigError(f"engine.chunk must be at least 1, not {e.chunk}.")
    if e.checkpoint_every < 0:
        raise ConfigError(f"engine.checkpoint_every must be zero or positive, not {e.checkpoint_every}.")
    try:  # run ids of a scan of at most MAX_RUNS runs (jgrok.runids)
        runids.parse_optional("" if e.tb_runs.strip().lower() == "auto" else e.tb_runs, MAX_RUNS)
    except ConfigError:
        raise ConfigError(f"engine.tb_runs takes run ids and ranges like 0:16 or 3,17, or auto or none, "
                          f"not '{e.tb_runs}'.") from None


def _check_limits(cfg: Config) -> None:
    """Sizes jgrok can hold: int32 counts and steps in compiled programs, lanes, parameters and runs."""
    for name, cls in SECTIONS.items():  # counts, sizes and step numbers are int32 in compiled programs
        for field, typ in field_types(cls).items():
            v = getattr(getattr(cfg, name), field)
            if typ is int and v > INT32_MAX:
                raise ConfigError(f"{name}.{field} = {short(v)} is too large; the limit is {INT32_MAX}.")
    for w in _axis_values(cfg, "filter_window"):
        if w > INT32_MAX:
            raise ConfigError(f"Filter window {short(w)} is too large; the limit is {INT32_MAX}.")
    if cfg.engine.wave_size > MAX_LANES:
        raise ConfigError(f"engine.wave_size = {cfg.engine.wave_size} lanes is more than jgrok's limit of "
                          f"{MAX_LANES}.")
    params = max(approx_params(m) for m in each(cfg, "model"))
    if params > MAX_PARAMS:
        raise ConfigError(f"The model has about {params:.2e} parameters per run, more than jgrok's limit of "
                          f"{MAX_PARAMS:.2e}; reduce model.d_model, model.n_layers or model.mlp_ratio.")
    runs = n_runs(cfg)
    if runs > MAX_RUNS:
        raise ConfigError(f"The grid has {runs:,} runs, more than jgrok's limit of {MAX_RUNS:,} per scan; "
                          "split it into several scans.")


def _check_grid(cfg: Config) -> None:
    """Seeds, and the variants the grid names (each validated as the config it makes)."""
    for axis in SEED_AXES:
        for s in cfg.grid.get(axis, []):
            if not 0 <= s < 2**31:
                raise ConfigError(f"Seeds must be in [0, 2^31), not {s} (axis {axis}).")
    if "data_seed" in cfg.grid and ("split_seed" in cfg.grid or "order_seed" in cfg.grid):
        raise ConfigError("Give either data seeds or split/order seeds, not both.")
    if cfg.variants and "variant" not in cfg.grid:
        raise ConfigError(f"The config defines variants ({', '.join(cfg.variants)}) but the grid has no 'variant' "
                          "axis; add grid.variant with the names to run.")
    for name in cfg.grid.get("variant", []):
        if name not in cfg.variants:
            raise ConfigError(f"Variant '{name}' is not defined; the config's variants are "
                              f"{', '.join(cfg.variants) or 'none'}.")
        for key in cfg.variants[name]:
            axis = next((a.name for a in axes.fields() if a.field == tuple(key.split("."))), None)
            if axis in cfg.grid:
                raise ConfigError(f"Variant '{name}' sets {key}, which is also the grid axis '{axis}'; set it in "
                                  "one place.")
        validate(variant_config(cfg, name))


def _check_sequential(cfg: Config) -> None:
    """The sequential section's own values (the design as a whole is checked by check_looks, once the scan's grid
    is known)."""
    s = cfg.sequential
    if s.spending not in SPENDING:
        raise ConfigError(f"sequential.spending must be {one_of(SPENDING)}, not '{s.spending}'.")
    if s.test not in SEQUENTIAL_TESTS:
        raise ConfigError(f"sequential.test must be {one_of(SEQUENTIAL_TESTS)}, not '{s.test}'.")
    if not 0 < s.alpha < 0.5:
        raise ConfigError(f"sequential.alpha must be in (0, 0.5), not {s.alpha}.")
    if s.look_every < 0:
        raise ConfigError(f"--look-every must be a positive number of seeds, not {s.look_every}.")
    if not 0 <= s.futility < 1:
        raise ConfigError(f"--futility is a conditional power in [0, 1) (0: never stop for futility), not "
                          f"{s.futility}.")


def check_looks(cfg: Config) -> None:
    """--until-decided AXIS --look-every N as a whole: a comparison of the two run groups of AXIS, looked at every
    N seeds per group (jgrok.sequential). Checked when a scan is planned, after every flag has been applied."""
    s = cfg.sequential
    if not s.until_decided:
        if s.look_every or s.futility:
            flag = "--look-every" if s.look_every else "--futility"
            raise ConfigError(f"{flag} needs --until-decided AXIS (the axis whose two values are compared).")
        return
    axis, n = s.until_decided, replicates(cfg)
    if axis not in AXES or axis in SEED_AXES or axis == "task":
        raise ConfigError(f"--until-decided takes the axis whose two run groups are compared (e.g. wd or init), "
                          f"not '{axis}'.")
    values = cfg.grid.get(axis, [])
    if len(values) != 2:
        raise ConfigError(f"--until-decided {axis} compares two run groups, but the scan has {len(values)} value(s) "
                          f"of {axis}; give exactly two, e.g. --{axis.replace('_', '-')} A,B.")
    others = [a for a, v in cfg.grid.items() if a != axis and a not in SEED_AXES and len(v) > 1]
    if others:
        raise ConfigError(f"--until-decided {axis} compares two run groups, but the scan also varies "
                          f"{', '.join(others)}; give one value of each other axis (one scan per comparison).")
    if mheight_task.NAME in _axis_values(cfg, "task"):
        raise ConfigError("--until-decided compares steps to 99% val acc, which the regression task mheight has "
                          "not; scan it without --until-decided.")
    if s.look_every < 1:
        raise ConfigError("--until-decided needs --look-every N, the seeds per run group between looks.")
    if n % s.look_every or n // s.look_every < 2:
        raise ConfigError(f"--look-every {s.look_every} must divide the scan's {n} seeds per run group into two or "
                          f"more looks (e.g. --look-every {max(1, n // 4)} for 4 looks).")
