"""Configuration: frozen dataclasses, YAML presets in ``jgrok/configs/`` and command-line overrides.

A config is plain data. ``Config`` holds the *base* experiment (one run's settings); ``Config.grid`` holds the
axes of a scan: every field named there takes a list of values, and every combination of the lists is a run
(see :mod:`jgrok.grid`). The defaults below are the AI-Scientist grokking template, so ``Config()`` is that
experiment and ``jgrok/configs/ai_scientist.yaml`` spells it out.

Loading is strict: an unknown key, a value of the wrong type or an impossible value is a
:class:`jgrok.errors.ConfigError` with one sentence that says what to change.

The package's modules, each with one job (everything is importable from ``jgrok.config`` itself):

  jgrok.config.schema   the sections' dataclasses and their defaults, the axes, the kind-specific fields, the limits
  jgrok.config.values   coercion, from_dict, presets, --set and grid overrides, variants, dump, per-run configs
  jgrok.config.parse    the small languages of fields: thresholds, stop rules, init group overrides, --init-from
  jgrok.config.checks   validation of every field, and of a sequential design once the grid is known"""

from jgrok.errors import ConfigError  # noqa: F401 - the error every mistake in a config raises
from jgrok.config.schema import (
    CONFIGS_DIR, TaskConfig, ModelConfig, OptimConfig, InitConfig, TrainConfig, EngineConfig, SequentialConfig,
    AXES, SEED_AXES, Config, SECTIONS, short, field_types, VARIANT_FIXED, RESNET_FIELDS, TRANSFORMER_FIELDS,
    MHEIGHT_FIELDS, ALGORITHMIC_FIELDS, EPOCH_FIELDS, INT32_MAX, MAX_RUNS, MAX_LANES, MAX_PARAMS, n_runs,
    approx_params, one_of, SPENDING, SEQUENTIAL_TESTS, replicates, variant_config,
)  # noqa: F401
from jgrok.config.parse import parse_thresholds, threshold_label, parse_stop_rule, parse_group_overrides, parse_from_run  # noqa: F401
from jgrok.config.values import (
    axis_type, from_dict, resolve_preset, load_yaml, load, set_path, with_grid, dump, base_for_axes,
    updates_per_epoch, resolve_epochs,
)  # noqa: F401
from jgrok.config.checks import validate, check_looks  # noqa: F401
