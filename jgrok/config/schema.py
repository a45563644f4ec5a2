"""The config's schema: one frozen dataclass per section (defaults: the AI-Scientist template), the axes a scan can
vary, the fields that belong to one model or task kind, and jgrok's size limits."""

from __future__ import annotations

import dataclasses
import math
import typing
from importlib import resources
from pathlib import Path
from typing import Any

from jgrok import axes, measures, optim


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
        for name in SECTIONS:  # tuples (model.hidden) are written as YAML lists
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in out[name].items()}
        out["grid"] = {k: list(v) for k, v in self.grid.items()}
        out["variants"] = {k: {f: list(x) if isinstance(x, tuple) else x for f, x in v.items()}
                           for k, v in self.variants.items()}
        if not out["variants"]:
            del out["variants"]
        if not self.sequential.until_decided:  # a scan without looks: the section says nothing
            del out["sequential"]
        return out


SECTIONS = {
    "task": TaskConfig, "model": ModelConfig, "optim": OptimConfig, "init": InitConfig,
    "train": TrainConfig, "engine": EngineConfig, "sequential": SequentialConfig,
}


def short(value: Any, n: int = 40) -> str:
    """repr of a user's value, cut to n characters (a 400-digit number or a long text stays readable)."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


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


# fields that apply to one model kind or one task kind only; dump leaves out those of the other kind (from_dict
# still accepts a config that has them all, and a field left out reads back as its default, which is unused)
RESNET_FIELDS = ("width", "blocks", "output")


TRANSFORMER_FIELDS = ("n_layers", "d_model", "n_heads", "mlp_ratio", "norm", "activation", "n_positions", "final_ln",
                      "bias", "causal", "positions", "mlp_bias")


MHEIGHT_FIELDS = ("train_per_group", "val_per_group", "data", "gen_seed", "integer")


ALGORITHMIC_FIELDS = ("p", "fraction", "perm_n")


EPOCH_FIELDS = {"steps": "epochs", "eval_every": "eval_every_epochs"}


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


def one_of(names, quote: bool = False) -> str:
    """("a", "b", "c") -> "a, b or c" (with quote: "'a', 'b' or 'c'"), for a message listing the valid names."""
    items = [f"'{n}'" if quote else str(n) for n in names]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


SPENDING = ("obrien-fleming", "pocock")  # jgrok.sequential's spending functions


SEQUENTIAL_TESTS = ("logrank", "paired")


def replicates(cfg: Config) -> int:
    """Seeds per run group: the combinations of the grid's seed axes (the replicates of every setting)."""
    return math.prod(len(cfg.grid[a]) for a in SEED_AXES if a in cfg.grid)


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
