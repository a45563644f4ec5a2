"""Orbax checkpoints of a scan: OUT/checkpoints/p<program>/<step>/.

A checkpoint holds, for every run of one program in run order: the whole training state (parameters, optimiser
and filter state, split permutation, divergence flags; stored as numbered leaves of the state pytree, whose
structure is rebuilt from the program on restore), the curves so far and the number of updates done.

Atomicity: Orbax writes step N to ``N.orbax-checkpoint-tmp`` and renames it to ``N`` only when every file is
written, and only then deletes checkpoints beyond the two newest. So a process killed at any moment, or a save
that fails on a full disk, leaves the newest *complete* checkpoint readable; leftover temporary folders are never
read and are removed when a scan resumes (or, for a failed save, at once). If the newest complete checkpoint cannot
be read after all, restoring falls back to the one before it and says so.
"""

from __future__ import annotations

import logging
import re
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from jgrok.errors import ConfigError, StorageError

TMP_MARK = ".orbax-checkpoint-tmp"
KEEP = 2  # complete checkpoints kept per program


def manager(out: Path, program_index: int, cleanup: bool = False) -> ocp.CheckpointManager:
    """The checkpoint manager of one program. ``cleanup`` marks the process that trains the scan: only it creates
    the folder and removes temporary folders of unfinished saves (a reader must not create anything, and could
    otherwise delete a save in progress)."""
    path = (Path(out) / "checkpoints" / f"p{program_index}").resolve()
    me = jax.process_index()  # in a multi-process scan every process checkpoints its own share, alone
    if jax.process_count() > 1:
        solo = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me},
                                                  barrier_sync_key_prefix=f"jgrok_p{me}")
        if cleanup:
            path.mkdir(parents=True, exist_ok=True)
        opts = ocp.CheckpointManagerOptions(max_to_keep=KEEP, enable_async_checkpointing=False, create=False,
                                            cleanup_tmp_directories=cleanup, multiprocessing_options=solo)
    else:
        opts = ocp.CheckpointManagerOptions(max_to_keep=KEEP, enable_async_checkpointing=False, create=cleanup,
                                            cleanup_tmp_directories=cleanup)
    mngr = ocp.CheckpointManager(path, options=opts)
    mngr.jgrok_writer = cleanup
    return mngr


def pack(state_leaves: list, host: dict, step: int) -> dict:
    tree = {"state": {f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(state_leaves)},
            "step": np.array(step, np.int64)}
    tree.update({k: np.asarray(v) for k, v in host.items()})
    return tree


def tree_bytes(tree) -> int:
    """Bytes of the arrays in a pytree (arrays or shape/dtype structs)."""
    return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def save(mngr: ocp.CheckpointManager, step: int, tree: dict) -> None:
    """Write checkpoint ``step``; on failure remove its partial folder and raise StorageError (one sentence naming
    the checkpoint that is still intact and the resume command)."""
    before = mngr.latest_step()
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.CRITICAL)  # Orbax logs each failed write thread at length; the user gets one sentence
    try:
        mngr.save(step, args=ocp.args.StandardSave(tree), force=True)
        mngr.wait_until_finished()
    except Exception as e:  # noqa: BLE001 - tensorstore reports a full disk as ValueError, a file system as OSError
        remove_partial(Path(mngr.directory))
        out = Path(mngr.directory).parent.parent
        kept = (f"the checkpoint at update {before} is intact" if before is not None
                else "no checkpoint was written yet")
        raise StorageError(f"Could not write the checkpoint at update {step} to {mngr.directory} ({reason(e)}); "
                           f"{kept}, so free space (or fix the folder) and resume with: "
                           f"python -m jgrok.scan --resume {out}") from None
    finally:
        absl.setLevel(level)


def remove_partial(directory: Path) -> None:
    """Delete the temporary folders of unfinished saves under one program's checkpoint folder."""
    try:
        for p in Path(directory).iterdir():
            if TMP_MARK in p.name:
                shutil.rmtree(p, ignore_errors=True)
    except OSError:
        pass


def reason(e: BaseException) -> str:
    """The operating system's words for a storage error, e.g. 'No space left on device'."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e)
    for words in ("No space left on device", "Read-only file system", "Permission denied", "Disk quota exceeded",
                  "No such file or directory", "Input/output error"):
        if words.lower() in text.lower():
            return words
    m = re.search(r"os_error_code='?(\d+)", text)
    if m:
        import os

        return os.strerror(int(m.group(1)))
    return type(e).__name__


def restore(mngr: ocp.CheckpointManager, like: dict):
    """(step, tree) of the newest complete checkpoint that can be read, or None when there is none.

    Temporary folders of unfinished saves are never considered. If the newest complete checkpoint is unreadable,
    the one before it is used, with a note on stderr; the process that trains the scan (a manager made with
    ``cleanup=True``) also renames the unreadable folder to ``<step>.damaged`` so that later saves and restores
    pass it by. If no checkpoint can be read: ConfigError."""
    directory = Path(mngr.directory)
    steps = sorted(mngr.all_steps(), reverse=True)
    if not steps:
        return None
    bad = []
    for step in steps:
        try:  # each step's item folder directly: one damaged step must not confuse the manager about the others
            tree = ocp.StandardCheckpointer().restore(directory / str(step) / "default", like)
        except Exception as e:  # noqa: BLE001 - any unreadable or foreign checkpoint
            bad.append((step, e))
            continue
        if bad:
            print(f"Checkpoint {directory}/{bad[0][0]} cannot be read; resuming from update {step}.", file=sys.stderr)
            if getattr(mngr, "jgrok_writer", False):
                for b, _ in bad:
                    (directory / str(b)).rename(directory / f"{b}.damaged")
                mngr.reload()
        return int(tree["step"]), jax.tree.map(np.asarray, tree)
    raise ConfigError(f"Checkpoint {directory}/{steps[0]} cannot be read ({type(bad[0][1]).__name__}); "
                      "it does not belong to this scan or is damaged.") from None
