"""Config values in and out: coercing YAML and command-line values to field types, building a Config from a mapping,
presets, ``--set`` and grid overrides, variants, the YAML dump, and the per-run config of a run's axis values."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path
from typing import Any

import yaml

from jgrok import axes
from jgrok.config import checks
from jgrok.config.schema import (
    ALGORITHMIC_FIELDS, Config, CONFIGS_DIR, EPOCH_FIELDS, field_types, MHEIGHT_FIELDS, RESNET_FIELDS, SECTIONS,
    short, TrainConfig, TRANSFORMER_FIELDS, VARIANT_FIXED,
)
from jgrok.errors import ConfigError


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Convert a YAML/CLI value to a field's type, or raise ConfigError."""
    if isinstance(typ, str):
        typ = {"int": int, "float": float, "bool": bool, "str": str}[typ]
    if typ is tuple or typing.get_origin(typ) is tuple:  # a list of names (tuple) or of whole numbers
        item = typing.get_args(typ)[0] if typing.get_args(typ) else str
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, not {short(value)}.")
        return tuple(_coerce(v, item, where) for v in value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where} must be true or false, not {short(value)}.")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be a whole number, not {short(value)}.")
        if isinstance(value, int):
            return value
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a whole number, not {short(value)}.") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{where} must be a whole number, not {short(value)}.")
        return int(f)
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be a number, not {short(value)}.")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, not {short(value)}.") from None
        except OverflowError:  # an integer beyond the float range
            f = math.inf
        if not math.isfinite(f):
            raise ConfigError(f"{where} must be a finite number, not {short(value)}.")
        return f
    if typ is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a name, not {short(value)}.")
        return str(value)
    raise AssertionError(typ)


def axis_type(axis: str) -> Any:
    """The type of an axis's values: its config field's type, or the registry's for an axis without a field."""
    a = axes.by_name(axis)
    if a.field is None:
        return a.value_type
    section, field = a.field
    return field_types(SECTIONS[section])[field]


def _build_section(name: str, values: Any, base: Any) -> Any:
    cls = SECTIONS[name]
    if values is None:
        return base
    if not isinstance(values, dict):
        raise ConfigError(f"Config section '{name}' must be a mapping of fields, not {values!r}.")
    types_ = field_types(cls)
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
    known = set(SECTIONS) | {"grid", "variants", "lanes", "only", "process"}
    for key in data:
        if key not in known:
            raise ConfigError(f"Unknown config section '{key}'; known sections: {', '.join(sorted(known))}.")
    sections = {name: _build_section(name, data.get(name), getattr(base, name)) for name in SECTIONS}
    grid = _build_grid(data["grid"]) if "grid" in data else dict(base.grid)
    variants = _build_variants(data["variants"]) if "variants" in data else dict(base.variants)
    cfg = Config(**sections, grid=grid, variants=variants)
    if isinstance(data.get("train"), dict):
        _check_epoch_overrides(cfg, data["train"])
    checks.validate(cfg)
    return cfg


_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


def _build_variants(values: Any) -> dict:
    if not isinstance(values, dict):
        raise ConfigError(f"Config section 'variants' must map variant names to overrides, not {short(values)}.")
    out = {}
    for name, overrides in values.items():
        if not isinstance(name, str) or not _VARIANT_NAME.match(name):
            raise ConfigError(f"Variant name {short(name)} must be letters, digits and _ . + - only.")
        if overrides is None:
            overrides = {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"Variant '{name}' must map section.field keys to values, not {short(overrides)}.")
        fields = {}
        for key, value in overrides.items():
            parts = str(key).split(".")
            if len(parts) != 2 or parts[0] not in SECTIONS or parts[0] in ("engine", "sequential"):
                raise ConfigError(f"Variant '{name}' key '{key}' must be section.field of task, model, optim, init "
                                  "or train, e.g. train.loss.")
            if key in VARIANT_FIXED:
                raise ConfigError(f"Variant '{name}' sets {key}, which every run of a scan shares; set it outside "
                                  "the variants.")
            types_ = field_types(SECTIONS[parts[0]])
            if parts[1] not in types_:
                raise ConfigError(f"Variant '{name}' key '{key}' is unknown; known keys of {parts[0]}: "
                                  f"{', '.join(sorted(types_))}.")
            fields[key] = _coerce(value, types_[parts[1]], f"variants.{name}.{key}")
        out[name] = fields
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
    elif len(parts) == 2 and parts[0] in SECTIONS:
        if field_types(SECTIONS[parts[0]]).get(parts[1]) is str:
            value = raw.strip()  # names stay text (YAML would read "1:3" as the base-60 number 63)
        section = _build_section(parts[0], {parts[1]: value}, getattr(cfg, parts[0]))
        out = dataclasses.replace(cfg, **{parts[0]: section})
        if parts[0] == "train":
            _check_epoch_overrides(out, [parts[1]])
    else:
        raise ConfigError(f"Unknown config key '{dotted}'; use section.field, e.g. train.steps=1000.")
    checks.validate(out)
    return out


def with_grid(cfg: Config, **values: list) -> Config:
    grid = dict(cfg.grid)
    grid.update(_build_grid(values))
    out = dataclasses.replace(cfg, grid=grid)
    checks.validate(out)
    return out


def dump(cfg: Config, extra: dict | None = None) -> str:
    """The config as YAML, holding only the fields that apply to its model kind and task kind."""
    data = cfg.to_dict()
    for field, other in EPOCH_FIELDS.items():  # counted in epochs: the update fields are unused, leave them out
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


def _check_epoch_overrides(cfg: Config, fields) -> None:
    """A budget or cadence given in updates while the config counts epochs would be ignored: refuse it."""
    for field in fields:
        other = EPOCH_FIELDS.get(field)
        if other and getattr(cfg.train, other) > 0:
            raise ConfigError(f"This config counts train.{other} (= {getattr(cfg.train, other)}), so train.{field} "
                              f"would be ignored; set train.{other} instead, or train.{other}=0 to count updates.")
