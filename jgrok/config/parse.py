"""The small languages of config fields: accuracy thresholds, stop rules, per-layer-group init overrides and
``--init-from`` specs."""

from __future__ import annotations

import re

from jgrok import init as init_mod
from jgrok.errors import ConfigError


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
