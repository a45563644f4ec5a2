"""Orbax checkpoints of a scan: OUT/checkpoints/p<program>/<step>/.

A checkpoint holds, for every run of one program in run order: the whole training state (parameters, optimiser
and filter state, split permutation, divergence flags; stored as numbered leaves of the state pytree, whose
structure is rebuilt from the program on restore), the curves so far and the number of updates done. Orbax writes
each step to a temporary folder and renames it when complete, so a process killed at any moment leaves the last
complete checkpoint readable.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jgrok.errors import ConfigError


def manager(out: Path, program_index: int) -> ocp.CheckpointManager:
    path = (Path(out) / "checkpoints" / f"p{program_index}").resolve()
    me = jax.process_index()  # in a multi-process scan every process checkpoints its own share, alone
    solo = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                              barrier_sync_key_prefix=f"jgrok_p{me}")
    if jax.process_count() > 1:
        path.mkdir(parents=True, exist_ok=True)
        opts = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False, create=False,
                                            multiprocessing_options=solo)
    else:
        opts = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False)
    return ocp.CheckpointManager(path, options=opts)


def pack(state_leaves: list, host: dict, step: int) -> dict:
    tree = {"state": {f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(state_leaves)},
            "step": np.array(step, np.int64)}
    tree.update({k: np.asarray(v) for k, v in host.items()})
    return tree


def save(mngr: ocp.CheckpointManager, step: int, tree: dict) -> None:
    mngr.save(step, args=ocp.args.StandardSave(tree))
    mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, like: dict):
    """(step, tree) of the newest complete checkpoint, or None when there is none."""
    step = mngr.latest_step()
    if step is None:
        return None
    try:
        tree = mngr.restore(step, args=ocp.args.StandardRestore(like))
    except Exception as e:  # noqa: BLE001 - any unreadable or foreign checkpoint
        raise ConfigError(f"Checkpoint {mngr.directory}/{step} cannot be read ({type(e).__name__}); "
                          "it does not belong to this scan or is damaged.") from None
    return int(tree["step"]), jax.tree.map(np.asarray, tree)
