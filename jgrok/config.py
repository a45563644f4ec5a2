"""Configuration: frozen dataclasses, YAML presets in ``jgrok/configs/`` and command-line overrides.

A config is plain data. ``Config`` holds the *base* experiment (one run's settings); ``Config.grid`` holds the
axes of a scan: every field named there takes a list of values, and every combination of the lists is a run
(see :mod:`jgrok.grid`). The defaults below are the AI-Scientist grokking template, so ``Config()`` is that
experiment and ``jgrok/configs/ai_scientist.yaml`` spells it out.

Loading is strict: an unknown key, a value of the wrong type or an impossible value is a
:class:`jgrok.errors.ConfigError` with one sentence that says what to change.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

# The modules that own the lists of valid names (none of them imports this module).
from jgrok import axes, grokfast, losses, measures, models, optim, runids
from jgrok import init as init_mod
from jgrok.errors import ConfigError
from jgrok.models import resnet, transformer
from jgrok.tasks import algorithmic, mheight_task

# Presets ship inside the package (``jgrok/configs/*.yaml``), so an installed wheel has them too.
CONFIGS_DIR = Path(str(resources.files("jgrok").joinpath("configs")))


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    name: str = "x_div_y"  # see jgrok.tasks.algorithmic.OPERATIONS
    p: int = 97  # modulus of the modular tasks
    fraction: float = 0.5  # training fraction: train size = floor(N * fraction)
    perm_n: int = 5  # permutation tasks act on S_{perm_n}
    # task "mheight" (regression, see jgrok.tasks.mheight_task): codes per (n, k, m) group and where they come from
    train_per_group: int = 5000
    val_per_group: int = 10000
    data: str = ""  # a .npz from `python -m jgrok.mheight generate`; empty = jgrok's cached dataset of gen_seed
    gen_seed: int = 0  # seed of the cached dataset
    integer: bool = False  # cached dataset with integer P entries (some heights infinite; those are excluded)
    # how the equations are written as tokens: "template", "grokfast", "signed" (Julia), "nanda";
    # see jgrok.tasks.algorithmic.VOCABS
    vocab: str = "template"
    split: str = "shuffled"  # "shuffled" (the split seed permutes the table) or "ordered" (first pairs in table order)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    kind: str = "transformer"  # "transformer" or "mlp" (classification tasks), "resnet" (task mheight)
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    mlp_ratio: int = 4
    # "post" (template), "pre", "none", or "grokfast": ironjr/grokfast's block x = LN1(x); x = x + attn(x);
    # x = x + mlp(LN2(x)) (the attention residual adds to the normalised stream)
    norm: str = "post"
    activation: str = "gelu"  # "gelu" (exact, as torch.nn.GELU) or "relu"
    n_positions: int = 5  # rows of the learned position table (the template has 5 for 4 tokens)
    # "learned" (a trained table of n_positions rows) or "sinusoidal" (openai/grok's fixed sin/cos table: no
    # parameters, see jgrok.models.transformer.sinusoidal_table)
    positions: str = "learned"
    final_ln: bool = True
    bias: bool = True
    causal: bool = True
    head_bias: bool = True  # the output layer has a bias (when model.bias is also true)
    attn_bias: bool = True  # the attention projections have biases (when model.bias is also true)
    mlp_bias: bool = True  # the MLP's two layers have biases (when model.bias is also true)
    width: int = 64  # resnet: hidden width
    blocks: int = 5  # resnet: residual blocks
    output: str = "h"  # resnet: "h" (h = 1 + softplus(z)) or "log2h" (log2 h = softplus(z)); see jgrok.models.resnet
    hidden: tuple[int, ...] = (200, 200)  # mlp: hidden layer sizes (jgrok.models.mlp; the source's default)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    name: str = "adamw"  # "adamw", "adam_l2" (torch Adam(weight_decay)), "sgd" (momentum)
    lr: float = 1e-3
    wd: float = 0.5
    b1: float = 0.9
    b2: float = 0.98
    eps: float = 1e-8
    momentum: float = 0.9  # sgd only
    warmup: int = 50  # lr * min(s / warmup, 1) at update s (0-based): the first update has lr 0
    constant_norm: bool = False  # Omnigrok: rescale parameters to their initial global norm after each update
    filter: str = "none"  # Grokfast gradient filter: "none", "ema", "ma"
    filter_alpha: float = 0.98
    filter_lambda: float = 2.0
    filter_window: int = 100
    orthogonal_grad: bool = False  # ⊥Grad (Prieto et al. 2025): project each gradient orthogonally to its weights


@dataclasses.dataclass(frozen=True)
class InitConfig:
    scheme: str = "default"  # see jgrok.init.SCHEMES
    scale: float = 1.0  # Omnigrok's alpha: every initial parameter is multiplied by it
    # per-layer-group overrides, "GROUP=seed:N" or "GROUP=scheme:NAME", comma separated (see parse_group_overrides)
    groups: str = ""
    # start from a trained run: "OUT:RUN" (every group) or "OUT:RUN:GROUP,GROUP" (those groups only)
    from_run: str = ""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 7500
    batch_size: int = 512
    eval_every: int = 10
    sampling: str = "replacement"  # "replacement" (template), "epochs" (shuffled), "full" (full batch)
    eval_train: bool = False  # also evaluate the full train split at each eval
    eval_batch: int = 2048  # examples per evaluation slice (memory only; results do not depend on it)
    precision: str = "fp32"  # "fp32", "tf32", "bf16", "fp64" (the whole run in float64: JAX x64 for that program)
    loss: str = "answer"  # see jgrok.losses.LOSSES
    softmax_precision: int = 32  # float width of the loss's softmax / StableMax: 16, 32 or 64 (jgrok.losses.log_probs)
    # Counting in epochs (sampling "epochs" only): with epochs > 0 the budget is epochs x updates per epoch
    # (ceil(n_train / batch_size)) and train.steps is not used; with eval_every_epochs > 0 evaluations happen every
    # eval_every_epochs x updates per epoch and train.eval_every is not used. See resolve_epochs.
    epochs: int = 0
    eval_every_epochs: int = 0
    stop_when: str = ""  # stop rule "<eval metric><op><number>", e.g. "val_acc>0.99"; "" = train the full budget
    patience: int = 1  # consecutive evaluations that must meet the stop rule before a run stops
    measures: str = ""  # progress measures evaluated for every run: comma list of fourier, logits (jgrok.measures)
    # accuracy thresholds of the "steps to" columns (step_val_acc_99, ...): comma-separated numbers in (0, 1]
    thresholds: str = "0.99"


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    wave_size: int = 0  # lanes W per compiled wave; 0 = choose from device memory (the choice is recorded)
    chunk: int = 500  # updates per compiled chunk between host syncs (checkpoints land on chunk ends)
    checkpoint_every: int = 0  # updates between checkpoints; 0 = only at the end
    tensorboard: bool = True  # write TensorBoard logs to OUT/tb/ (false: no tb/ folder, no logging work at all)
    # runs whose own curves go to TensorBoard: ids like "0:16" or "3,17", "none", or "auto" = 16 runs taken from
    # every group in turn (the first 16 runs when there is one group)
    tb_runs: str = "auto"
    compact: bool = True  # between chunks, re-pack runs that still train into fewer waves (results unchanged)


@dataclasses.dataclass(frozen=True)
class SequentialConfig:
    """A scan that stops adding seeds once a comparison is decided (jgrok.sequential; ``--until-decided``)."""
    until_decided: str = ""  # the axis whose two values are compared; "" = train every seed (no looks)
    look_every: int = 0  # seeds per run group between looks; must divide the scan's seeds
    spending: str = "obrien-fleming"  # Lan-DeMets alpha spending: obrien-fleming or pocock
    alpha: float = 0.05  # two-sided type I error of the whole sequence of looks
    test: str = "logrank"  # logrank (unpaired) or paired (stratified by seed: the sign of who got there first)
    # stop for futility at a look whose conditional power under the current trend is below this (0 = never)
    futility: float = 0.0


# Axes a scan can vary (defined in jgrok.axes). Each takes a list of values; every combination is a run. ``seed``
# is the model seed; ``data_seed`` sets both the split seed and the order seed (unless those are axes of their own).
# axis name: (section, field) of the base config it replaces; ("", "") for the seeds and ``variant`` (names of
# bundles of overrides in the config's ``variants``, see variant_config)
AXES: dict[str, tuple[str, str]] = {a.name: a.field or ("", "") for a in axes.REGISTRY}
SEED_AXES = tuple(a.name for a in axes.seeds())


@dataclasses.dataclass(frozen=True)
class Config:
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    init: InitConfig = InitConfig()
    train: TrainConfig = TrainConfig()
    engine: EngineConfig = EngineConfig()
    sequential: SequentialConfig = SequentialConfig()
    grid: dict = dataclasses.field(default_factory=lambda: {"seed": [0]})
    # named bundles of overrides, {name: {"section.field": value}}; the grid axis ``variant`` picks among them
    variants: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for name in _SECTION_CLASSES:  # tuples (model.hidden) are written as YAML lists
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in out[name].items()}
        out["grid"] = {k: list(v) for k, v in self.grid.items()}
        out["variants"] = {k: {f: list(x) if isinstance(x, tuple) else x for f, x in v.items()}
                           for k, v in self.variants.items()}
        if not out["variants"]:
            del out["variants"]
        if not self.sequential.until_decided:  # a scan without looks: the section says nothing
            del out["sequential"]
        return out


_SECTION_CLASSES = {
    "task": TaskConfig, "model": ModelConfig, "optim": OptimConfig, "init": InitConfig,
    "train": TrainConfig, "engine": EngineConfig, "sequential": SequentialConfig,
}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert a YAML/CLI value to a field's type, or raise ConfigError."""
    if isinstance(typ, str):
        typ = {"int": int, "float": float, "bool": bool, "str": str}[typ]
    if typ is tuple or typing.get_origin(typ) is tuple:  # a list of names (tuple) or of whole numbers
        item = typing.get_args(typ)[0] if typing.get_args(typ) else str
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, not {_short(value)}.")
        return tuple(_coerce(v, item, where) for v in value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where} must be true or false, not {_short(value)}.")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be a whole number, not {_short(value)}.")
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a whole number, not {_short(value)}.") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{where} must be a whole number, not {_short(value)}.")
        return int(f)
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be a number, not {_short(value)}.")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, not {_short(value)}.") from None
        except OverflowError:  # an integer beyond the float range
            f = math.inf
        if not math.isfinite(f):
            raise ConfigError(f"{where} must be a finite number, not {_short(value)}.")
        return f
    if typ is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a name, not {_short(value)}.")
        return str(value)
    raise AssertionError(typ)


def _short(value: Any, n: int = 40) -> str:
    """repr of a user's value, cut to n characters (a 400-digit number or a long text stays readable)."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def axis_type(axis: str) -> Any:
    """The type of an axis's values: its config field's type, or the registry's for an axis without a field."""
    a = axes.by_name(axis)
    if a.field is None:
        return a.value_type
    section, field = a.field
    return _field_types(_SECTION_CLASSES[section])[field]


def _build_section(name: str, values: Any, base: Any) -> Any:
    cls = _SECTION_CLASSES[name]
    if values is None:
        return base
    if not isinstance(values, dict):
        raise ConfigError(f"Config section '{name}' must be a mapping of fields, not {values!r}.")
    types_ = _field_types(cls)
    changes = {}
    for key, value in values.items():
        if key not in types_:
            raise ConfigError(f"Unknown config key '{name}.{key}'; known keys: {', '.join(sorted(types_))}.")
        changes[key] = _coerce(value, types_[key], f"{name}.{key}")
    return dataclasses.replace(base, **changes)


def _build_grid(values: Any) -> dict:
    if values is None:
        return {"seed": [0]}
    if not isinstance(values, dict):
        raise ConfigError(f"Config section 'grid' must map axis names to lists, not {values!r}.")
    grid = {}
    for axis, vals in values.items():
        known = [a.name for a in axes.REGISTRY]
        if axis not in known:
            raise ConfigError(f"Unknown grid axis '{axis}'; known axes: {', '.join(known)}.")
        if not isinstance(vals, (list, tuple)):
            vals = [vals]
        if not vals:
            raise ConfigError(f"Grid axis '{axis}' has no values; give at least one.")
        typ = axis_type(axis)
        grid[axis] = [_coerce(v, typ, f"grid.{axis}") for v in vals]
    grid.setdefault("seed", [0])
    return grid


def from_dict(data: dict | None, base: Config | None = None) -> Config:
    base = base or Config()
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError("A config file must hold a YAML mapping of sections (task, model, optim, ...).")
    known = set(_SECTION_CLASSES) | {"grid", "variants", "lanes", "only", "process"}
    for key in data:
        if key not in known:
            raise ConfigError(f"Unknown config section '{key}'; known sections: {', '.join(sorted(known))}.")
    sections = {name: _build_section(name, data.get(name), getattr(base, name)) for name in _SECTION_CLASSES}
    grid = _build_grid(data["grid"]) if "grid" in data else dict(base.grid)
    variants = _build_variants(data["variants"]) if "variants" in data else dict(base.variants)
    cfg = Config(**sections, grid=grid, variants=variants)
    if isinstance(data.get("train"), dict):
        _check_epoch_overrides(cfg, data["train"])
    validate(cfg)
    return cfg


# Variants: a config may name bundles of overrides and scan over them with the grid axis ``variant``:
#   variants:
#     baseline: {}
#     stablemax: {train.loss: stablemax, train.softmax_precision: 64}
#   grid: {variant: [baseline, stablemax], seed: [0, 1]}
# is 4 runs; a run of variant v is trained with the base config plus v's overrides (then its other axes' values).
# Axes are still a cartesian product; a variant is one axis whose values set several fields at once. Runs of
# different variants never share a program. A variant cannot set a field that is also an axis of the grid, the
# scan-wide step budget and evaluation cadence (train.steps, eval_every, epochs, eval_every_epochs: every run of
# a scan shares one curve layout) or the engine section.
VARIANT_FIXED = ("train.steps", "train.eval_every", "train.epochs", "train.eval_every_epochs")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _build_variants(values: Any) -> dict:
    if not isinstance(values, dict):
        raise ConfigError(f"Config section 'variants' must map variant names to overrides, not {_short(values)}.")
    out = {}
    for name, overrides in values.items():
        if not isinstance(name, str) or not _VARIANT_NAME.match(name):
            raise ConfigError(f"Variant name {_short(name)} must be letters, digits and _ . + - only.")
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"Variant '{name}' must map section.field keys to values, not {_short(overrides)}.")
        fields = {}
        for key, value in overrides.items():
            parts = str(key).split(".")
            if len(parts) != 2 or parts[0] not in _SECTION_CLASSES or parts[0] in ("engine", "sequential"):
                raise ConfigError(f"Variant '{name}' key '{key}' must be section.field of task, model, optim, init "
                                  "or train, e.g. train.loss.")
            if key in VARIANT_FIXED:
                raise ConfigError(f"Variant '{name}' sets {key}, which every run of a scan shares; set it outside "
                                  "the variants.")
            types_ = _field_types(_SECTION_CLASSES[parts[0]])
            if parts[1] not in types_:
                raise ConfigError(f"Variant '{name}' key '{key}' is unknown; known keys of {parts[0]}: "
                                  f"{', '.join(sorted(types_))}.")
            fields[key] = _coerce(value, types_[parts[1]], f"variants.{name}.{key}")
        out[name] = fields
    return out


def variant_config(cfg: Config, name: str | None) -> Config:
    """The config of variant ``name``: the base config with the variant's overrides, no variants and no variant
    axis (``name`` None or "": the config without its variants)."""
    out = dataclasses.replace(cfg, variants={}, grid={k: v for k, v in cfg.grid.items() if k != "variant"})
    if not name:
        return out
    changes: dict[str, dict] = {}
    for key, value in cfg.variants[name].items():
        section, field = key.split(".")
        changes.setdefault(section, {})[field] = value
    for section, fields in changes.items():
        out = dataclasses.replace(out, **{section: dataclasses.replace(getattr(out, section), **fields)})
    return out


def resolve_preset(name_or_path: str) -> Path:
    """A config argument is a path to a YAML file or the name of a preset in jgrok/configs/."""
    path = Path(name_or_path)
    for candidate in (path, CONFIGS_DIR / name_or_path, CONFIGS_DIR / f"{name_or_path}.yaml"):
        try:
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte, ...
            continue
    presets = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")) if CONFIGS_DIR.is_dir() else []
    raise ConfigError(f"No config file or preset named '{name_or_path}'; presets: {', '.join(presets) or 'none'}.")


def load_yaml(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"Cannot read config file '{path}': {e.strerror}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config file '{path}' is not UTF-8 text; give a YAML file.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file '{path}' is not valid YAML ({str(e).splitlines()[0]}).") from None
    except RecursionError:
        raise ConfigError(f"Config file '{path}' nests too deeply to be a jgrok config.") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of sections (task, model, optim, ...).")
    return data or {}


def load(name_or_path: str | None) -> Config:
    if name_or_path is None:
        return Config()
    return from_dict(load_yaml(resolve_preset(name_or_path)))


def set_path(cfg: Config, dotted: str, raw: str) -> Config:
    """Apply one ``--set section.field=value`` override (the value is parsed as YAML)."""
    parts = dotted.split(".")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if parts[0] == "grid" and len(parts) == 2:
        grid = dict(cfg.grid)
        grid.update(_build_grid({parts[1]: value}))
        out = dataclasses.replace(cfg, grid=grid)
    elif len(parts) == 2 and parts[0] in _SECTION_CLASSES:
        if _field_types(_SECTION_CLASSES[parts[0]]).get(parts[1]) is str:
            value = raw.strip()  # names stay text (YAML would read "1:3" as the base-60 number 63)
        section = _build_section(parts[0], {parts[1]: value}, getattr(cfg, parts[0]))
        out = dataclasses.replace(cfg, **{parts[0]: section})
        if parts[0] == "train":
            _check_epoch_overrides(out, [parts[1]])
    else:
        raise ConfigError(f"Unknown config key '{dotted}'; use section.field, e.g. train.steps=1000.")
    validate(out)
    return out


def with_grid(cfg: Config, **values: list) -> Config:
    grid = dict(cfg.grid)
    grid.update(_build_grid(values))
    out = dataclasses.replace(cfg, grid=grid)
    validate(out)
    return out


# fields that apply to one model kind or one task kind only; dump leaves out those of the other kind (from_dict
# still accepts a config that has them all, and a field left out reads back as its default, which is unused)
RESNET_FIELDS = ("width", "blocks", "output")
TRANSFORMER_FIELDS = ("n_layers", "d_model", "n_heads", "mlp_ratio", "norm", "activation", "n_positions", "final_ln",
                      "bias", "causal", "positions", "mlp_bias")
MHEIGHT_FIELDS = ("train_per_group", "val_per_group", "data", "gen_seed", "integer")
ALGORITHMIC_FIELDS = ("p", "fraction", "perm_n")


def dump(cfg: Config, extra: dict | None = None) -> str:
    """The config as YAML, holding only the fields that apply to its model kind and task kind."""
    data = cfg.to_dict()
    for field, other in _EPOCH_FIELDS.items():  # counted in epochs: the update fields are unused, leave them out
        if data["train"][other]:
            del data["train"][field]
    unused = {"model": RESNET_FIELDS if cfg.model.kind == "transformer" else TRANSFORMER_FIELDS,
              "task": MHEIGHT_FIELDS if "mheight" not in cfg.grid.get("task", [cfg.task.name]) else ALGORITHMIC_FIELDS}
    for section, fields in unused.items():
        for field in fields:
            data[section].pop(field, None)
    if extra:
        data.update(extra)
    return yaml.safe_dump(data, sort_keys=False)


def base_for_axes(cfg: Config, values: dict) -> Config:
    """The single-run config obtained by putting one value of each non-seed axis into the base config."""
    changes: dict[str, dict] = {}
    for axis, value in values.items():
        a = axes.by_name(axis)
        if a.field is not None:
            changes.setdefault(a.field[0], {})[a.field[1]] = value
    out = cfg
    for section, fields in changes.items():
        out = dataclasses.replace(out, **{section: dataclasses.replace(getattr(out, section), **fields)})
    return out


def updates_per_epoch(tcfg: TrainConfig, n_train: int) -> int:
    """Updates in one shuffled epoch: ceil(n_train / batch_size) (the last batch holds the remainder)."""
    return -(-n_train // tcfg.batch_size)


def resolve_epochs(cfg: Config, n_train: int) -> Config:
    """The config with train.steps / train.eval_every computed from train.epochs / train.eval_every_epochs (where
    those are > 0) for a task with ``n_train`` training examples. Steps are always updates inside the engine."""
    tr = cfg.train
    per = updates_per_epoch(tr, n_train)
    changes = {}
    if tr.epochs:
        changes["steps"] = tr.epochs * per
    if tr.eval_every_epochs:
        changes["eval_every"] = tr.eval_every_epochs * per
    return dataclasses.replace(cfg, train=dataclasses.replace(tr, **changes)) if changes else cfg


_EPOCH_FIELDS = {"steps": "epochs", "eval_every": "eval_every_epochs"}


def _check_epoch_overrides(cfg: Config, fields) -> None:
    """A budget or cadence given in updates while the config counts epochs would be ignored: refuse it."""
    for field in fields:
        other = _EPOCH_FIELDS.get(field)
        if other and getattr(cfg.train, other) > 0:
            raise ConfigError(f"This config counts train.{other} (= {getattr(cfg.train, other)}), so train.{field} "
                              f"would be ignored; set train.{other} instead, or train.{other}=0 to count updates.")


INT32_MAX = 2**31 - 1
MAX_RUNS = 2**20  # runs per scan (the runs table lives in host memory as Python rows)
MAX_LANES = 2**20  # lanes W per wave
MAX_PARAMS = 2**31  # parameters per run


def n_runs(cfg: Config) -> int:
    """Runs in the grid: the product of the axes' lengths."""
    return math.prod(len(v) for v in cfg.grid.values())


def approx_params(m: ModelConfig, vocab: int = 2**12) -> int:
    """An upper estimate of a transformer's parameters per run, without building it (for the size limit)."""
    d = m.d_model
    return m.n_layers * (4 * d * d + 2 * d * d * m.mlp_ratio + 8 * d) + (2 * vocab + m.n_positions + 4) * d


_STOP_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_/]*)\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")



def parse_thresholds(text: str) -> tuple[float, ...]:
    """``train.thresholds`` / ``--threshold``: "0.95,0.99" -> (0.95, 0.99), sorted, each in (0, 1]."""
    out = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--threshold takes accuracies in (0, 1] separated by commas, e.g. 0.95,0.99, "
                              f"not '{text}'.") from None
        if not 0 < value <= 1:
            raise ConfigError(f"--threshold takes accuracies in (0, 1] separated by commas, e.g. 0.95,0.99, "
                              f"not '{text}'.")
        out.append(value)
    return tuple(sorted(set(out)))


def threshold_label(value: float) -> str:
    """The column suffix of a threshold: 0.99 -> "99", 0.95 -> "95", 0.995 -> "99.5", 1.0 -> "100"."""
    return f"{value * 100:.10g}"


def parse_stop_rule(text: str) -> tuple[str, str, float] | None:
    """``"val_acc>0.99"`` -> ("val_acc", ">", 0.99); "" -> None. The metric is an evaluated curve (val_acc,
    val_loss, weight_norm, ...); the operator is >, <, >= or <=."""
    if not text or not text.strip():
        return None
    m = _STOP_RE.match(text)
    if m is None:
        raise ConfigError(f"--stop-when takes METRIC>NUMBER or METRIC<NUMBER, e.g. val_acc>0.99, not '{text}'.")
    return m.group(1), m.group(2), float(m.group(3))


def _one_of(names, quote: bool = False) -> str:
    """("a", "b", "c") -> "a, b or c" (with quote: "'a', 'b' or 'c'"), for a message listing the valid names."""
    items = [f"'{n}'" if quote else str(n) for n in names]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def validate(cfg: Config) -> None:
    """Check every value a user can set; raise ConfigError naming what to change. The sections are checked in
    this order, each by its own function; a grid axis's values are checked where its field is."""
    tasks = _axis_values(cfg, "task")
    regression = mheight_task.NAME in tasks
    _check_task(cfg, tasks, regression)
    _check_model(cfg.model, regression)
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


def _check_task(cfg: Config, tasks: list[str], regression: bool) -> None:
    for name in tasks:
        if name == mheight_task.NAME:
            mheight_task.check(cfg.task)
        else:
            algorithmic.check_task(name, cfg.task)
    if regression and len(tasks) > 1:
        raise ConfigError("Task 'mheight' (regression) cannot share a scan with classification tasks; scan it alone.")
    t = cfg.task
    if not 0.0 < t.fraction < 1.0:
        raise ConfigError(f"task.fraction must be between 0 and 1 (exclusive), not {t.fraction}.")
    if t.split not in ("shuffled", "ordered"):
        raise ConfigError(f"task.split must be 'shuffled' or 'ordered', not '{t.split}'.")


def _check_model(m: ModelConfig, regression: bool) -> None:
    if m.kind not in models.KINDS:
        raise ConfigError(f"model.kind '{m.kind}' is unknown; use {_one_of(models.KINDS, quote=True)}.")
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
        raise ConfigError(f"model.output must be {_one_of(resnet.OUTPUTS, quote=True)}, not '{m.output}'.")
    for field in ("n_layers", "d_model", "n_heads", "mlp_ratio", "n_positions"):
        _at_least_one(m, field)
    if m.d_model % m.n_heads:
        raise ConfigError(f"model.d_model ({m.d_model}) must be divisible by model.n_heads ({m.n_heads}).")
    if m.norm not in transformer.NORMS:
        raise ConfigError(f"model.norm must be one of {', '.join(transformer.NORMS)}, not '{m.norm}'.")
    if m.activation not in transformer.ACTIVATIONS:
        raise ConfigError(f"model.activation must be {_one_of(transformer.ACTIVATIONS, quote=True)}, "
                          f"not '{m.activation}'.")
    if m.positions not in transformer.POSITIONS:
        raise ConfigError(f"model.positions must be {_one_of(transformer.POSITIONS, quote=True)}, "
                          f"not '{m.positions}'.")


def _at_least_one(m: ModelConfig, field: str) -> None:
    if getattr(m, field) < 1:
        raise ConfigError(f"model.{field} must be at least 1, not {getattr(m, field)}.")


def _check_optim(cfg: Config) -> None:
    o = cfg.optim
    for name in _axis_values(cfg, "optimizer"):
        if name not in optim.OPTIMIZERS:
            raise ConfigError(f"Optimizer '{name}' is unknown; use {_one_of(optim.OPTIMIZERS)}.")
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
            raise ConfigError(f"Gradient filter '{name}' is unknown; use {_one_of(grokfast.KINDS)}.")
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
        raise ConfigError(f"train.softmax_precision must be {_one_of(losses.SOFTMAX_DTYPES)}, "
                          f"not {tr.softmax_precision}.")
    if regression and (tr.loss != "answer" or tr.softmax_precision != 32):
        raise ConfigError("Task 'mheight' is a regression (mean squared error); leave train.loss and "
                          "train.softmax_precision at their defaults.")
    parse_stop_rule(tr.stop_when)
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
    for name, cls in _SECTION_CLASSES.items():  # counts, sizes and step numbers are int32 in compiled programs
        for field, typ in _field_types(cls).items():
            v = getattr(getattr(cfg, name), field)
            if typ is int and v > INT32_MAX:
                raise ConfigError(f"{name}.{field} = {_short(v)} is too large; the limit is {INT32_MAX}.")
    for w in _axis_values(cfg, "filter_window"):
        if w > INT32_MAX:
            raise ConfigError(f"Filter window {_short(w)} is too large; the limit is {INT32_MAX}.")
    if cfg.engine.wave_size > MAX_LANES:
        raise ConfigError(f"engine.wave_size = {cfg.engine.wave_size} lanes is more than jgrok's limit of "
                          f"{MAX_LANES}.")
    params = approx_params(cfg.model)
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


SPENDING = ("obrien-fleming", "pocock")  # jgrok.sequential's spending functions
SEQUENTIAL_TESTS = ("logrank", "paired")


def replicates(cfg: Config) -> int:
    """Seeds per run group: the combinations of the grid's seed axes (the replicates of every setting)."""
    return math.prod(len(cfg.grid[a]) for a in SEED_AXES if a in cfg.grid)


def _check_sequential(cfg: Config) -> None:
    """The sequential section's own values (the design as a whole is checked by check_looks, once the scan's grid
    is known)."""
    s = cfg.sequential
    if s.spending not in SPENDING:
        raise ConfigError(f"sequential.spending must be {_one_of(SPENDING)}, not '{s.spending}'.")
    if s.test not in SEQUENTIAL_TESTS:
        raise ConfigError(f"sequential.test must be {_one_of(SEQUENTIAL_TESTS)}, not '{s.test}'.")
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


def parse_group_overrides(text: str) -> dict[str, dict]:
    """``init.groups`` / ``--init-group``: "head=seed:7,embedding=scheme:orthogonal" ->
    {"head": {"seed": 7}, "embedding": {"scheme": "orthogonal"}}. Group names are checked against the model
    later (jgrok.grid), since they depend on the number of layers."""
    out: dict[str, dict] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        group, _, spec = part.partition("=")
        what, _, value = spec.partition(":")
        group, what, value = group.strip(), what.strip(), value.strip()
        if not group or what not in ("seed", "scheme") or not value:
            raise ConfigError(f"An init group override reads GROUP=seed:N or GROUP=scheme:NAME, not '{part}'.")
        if what == "seed":
            if not value.isdigit() or int(value) >= 2**31:
                raise ConfigError(f"The seed of init group '{group}' must be a whole number in [0, 2^31), not '{value}'.")
            out.setdefault(group, {})["seed"] = int(value)
        else:
            if value not in init_mod.SCHEMES:
                raise ConfigError(f"Init scheme '{value}' of group '{group}' is unknown; use one of "
                                  f"{', '.join(init_mod.SCHEMES)}.")
            out.setdefault(group, {})["scheme"] = value
    return out


def parse_from_run(text: str) -> tuple[str, int, tuple[str, ...]] | None:
    """``init.from_run`` / ``--init-from``: "OUT:RUN" or "OUT:RUN:GROUP,GROUP" -> (OUT, RUN, groups or ())."""
    if not text:
        return None
    parts = text.rsplit(":", 2)
    groups: tuple[str, ...] = ()
    if len(parts) == 3 and not parts[2].strip().isdigit():
        groups = tuple(g.strip() for g in parts[2].split(",") if g.strip())
        out, run = parts[0], parts[1]
    else:
        out, _, run = text.rpartition(":")
    if not out or not run.strip().isdigit():
        raise ConfigError(f"--init-from takes OUT:RUN or OUT:RUN:GROUP,GROUP (a results folder and a run id), "
                          f"not '{text}'.")
    return out, int(run), groups
