"""The models a run can train (``model.kind``): the transformer and the MLP classify, the ResNet regresses.

Every model module defines the same three functions, and a new model is one module plus its entry in MODULES:

  abstract(cfg, n_inputs, n_out)            (graphdef, parameter shapes) without allocating; n_inputs is the input
                                            width (the vocabulary of a token model, the features of the ResNet)
  layer_group(parts)                        the layer group (jgrok.init) of the parameter at path ``parts``, or
                                            None when the path is not one of this model's
  per_example_floats(cfg, n_inputs, n_out)  floats of activations one training example keeps for the backward
                                            pass (a rough count, for the engine's memory estimate)
"""

from __future__ import annotations

from typing import Any, NamedTuple

from jgrok.models import mlp, resnet, transformer

MODULES = {"transformer": transformer, "mlp": mlp, "resnet": resnet}
KINDS = tuple(MODULES)


class ModelSpec(NamedTuple):
    """A model without values: its NNX graph definition and the shapes and dtypes of its parameters."""

    graphdef: Any
    shapes: Any  # dict pytree of jax.ShapeDtypeStruct


def abstract(cfg, n_inputs: int, n_out: int) -> ModelSpec:
    """The ModelSpec of ``cfg.kind`` (cfg: jgrok.config.ModelConfig)."""
    return ModelSpec(*MODULES[cfg.kind].abstract(cfg, n_inputs, n_out))


def layer_group(parts: list[str]) -> str:
    """The layer group of a parameter path, as the model that owns the path names it."""
    for module in MODULES.values():
        group = module.layer_group(parts)
        if group is not None:
            return group
    raise ValueError(f"no model has a parameter {'/'.join(parts)}")


def per_example_floats(cfg, n_inputs: int, n_out: int) -> int:
    return MODULES[cfg.kind].per_example_floats(cfg, n_inputs, n_out)
