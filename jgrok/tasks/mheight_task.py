"""The m-height regression task: which codes a scan trains on, their features and targets.

Dataset. ``task.data`` names a .npz written by ``python -m jgrok.mheight generate`` (layout in
:mod:`jgrok.tasks.mheight_codes`). Left empty, the scan uses jgrok's own cached dataset: all 21 groups,
``train_per_group + val_per_group`` codes each, generated exactly from ``task.gen_seed`` (``task.integer`` for integer
entries) into ``$JGROK_DATA`` (default ``data/`` under the working directory) as
``mheight-seed<S>-<count>pergroup[-integer].npz`` the first time it is needed, and read from there afterwards.

Infinite heights (m >= d_min; only with integer entries in practice) have no finite log2 h, so they are
**excluded** from both splits: each group contributes its first ``train_per_group + val_per_group`` codes with a
finite height, in file order; the number skipped is reported (``Table.n_infinite``, printed by the scan). A
group with too few finite codes is a ConfigError.

Table. Rows are in group order, ``per = train_per_group + val_per_group`` rows per group, block g holding group g's
codes. The split seed draws, per group, a permutation of its block; the first ``train_per_group`` of each group are
the run's training codes and the rest its validation codes (see :meth:`jgrok.tasks.kinds.Regression.split`), so
every run trains on the same number of codes of every group.

Features (F = 46, the same for every group so that one model serves them all): P / 100 zero-padded into the
top-left corner of a 6 x 6 matrix and flattened (36), then one-hot n in {9, 10} (2), k in {4, 5, 6} (3) and m in
{2, ..., 6} (5). Target: log2 h (float32).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from jgrok.errors import ConfigError
from jgrok.tasks import mheight_codes as mheight

NAME = "mheight"
N_VALUES, K_VALUES, M_VALUES = (9, 10), (4, 5, 6), (2, 3, 4, 5, 6)
PAD = 6  # P is padded to PAD x PAD
P_SCALE = 100.0  # entries are drawn from [-100, 100]; features hold P / P_SCALE
N_FEATURES = PAD * PAD + len(N_VALUES) + len(K_VALUES) + len(M_VALUES)
REQUIRED_KEYS = ("P", "n", "k", "m", "h")


def cache_path(tcfg) -> Path:
    count = tcfg.train_per_group + tcfg.val_per_group
    suffix = "-integer" if tcfg.integer else ""
    return Path(os.environ.get("JGROK_DATA", "data")) / f"mheight-seed{tcfg.gen_seed}-{count}pergroup{suffix}.npz"


def check(tcfg) -> None:
    """Raise ConfigError for impossible task settings (files are checked when the table is built)."""
    if tcfg.train_per_group < 1:
        raise ConfigError(f"task.train_per_group must be at least 1, not {tcfg.train_per_group}.")
    if tcfg.val_per_group < 1:
        raise ConfigError(f"task.val_per_group must be at least 1, not {tcfg.val_per_group}.")
    if tcfg.gen_seed < 0:
        raise ConfigError(f"task.gen_seed must be zero or positive, not {tcfg.gen_seed}.")
    if tcfg.data and not tcfg.data.endswith(".npz"):
        raise ConfigError(f"task.data must name a .npz file written by python -m jgrok.mheight generate, "
                          f"not '{tcfg.data}'.")


def features(P_NxKxNK: np.ndarray, n_N, k_N, m_N) -> np.ndarray:
    """float32 [N, N_FEATURES] as defined in the module docstring (P may be padded to any size >= its k x (n-k))."""
    N = len(n_N)
    P = np.zeros((N, PAD, PAD), np.float32)
    r, c = min(PAD, P_NxKxNK.shape[1]), min(PAD, P_NxKxNK.shape[2])
    P[:, :r, :c] = P_NxKxNK[:, :r, :c] / P_SCALE
    onehot = lambda v, values: (np.asarray(v)[:, None] == np.array(values)[None, :]).astype(np.float32)  # noqa
    return np.concatenate([P.reshape(N, -1), onehot(n_N, N_VALUES), onehot(k_N, K_VALUES), onehot(m_N, M_VALUES)],
                          axis=1)


@dataclasses.dataclass(frozen=True)
class Table:
    """The regression table of one scan: ``inputs [N, F]`` float32, ``targets [N]`` float32 log2 h, rows grouped as
    in the module docstring. Arrays are read (or generated) on first use, so a dry run reads no P."""

    path: Path
    groups: tuple  # (n, k, m) per block, in row order
    per_group: int
    n_train_per_group: int
    n_infinite: int  # finite-height quota met after skipping this many infinite codes (0 when not yet known)
    generate: bool  # the cached file does not exist yet: build it on first use
    tcfg: object

    n_features = N_FEATURES  # the regressor's input width

    @property
    def n_rows(self) -> int:
        return len(self.groups) * self.per_group

    @property
    def n_train(self) -> int:
        return len(self.groups) * self.n_train_per_group

    @property
    def n_val(self) -> int:
        return self.n_rows - self.n_train

    @functools.cached_property
    def _arrays(self):
        if self.generate and not self.path.exists():
            _generate_cache(self.tcfg, self.path)
        data = _read(self.path, ("P",) + REQUIRED_KEYS[1:])
        rows, skipped = _select(data, self.groups, self.per_group, self.path)
        x = features(data["P"][rows], data["n"][rows], data["k"][rows], data["m"][rows])
        y = np.log2(data["h"][rows]).astype(np.float32)
        return x, y, skipped

    @property
    def inputs(self) -> np.ndarray:
        return self._arrays[0]

    @property
    def targets(self) -> np.ndarray:
        return self._arrays[1]

    def describe(self) -> str:
        """One line: groups, split sizes, infinite-height codes skipped, and the data file."""
        loaded = "_arrays" in self.__dict__
        if self.generate and not loaded:
            where = f"{self.path} (to be generated from seed {self.tcfg.gen_seed})"
            skipped = "infinite-height codes (excluded) are counted once generated"
        else:
            where = str(self.path)
            n_inf = self._arrays[2] if loaded else self.n_infinite
            skipped = f"{n_inf} infinite-height codes excluded"
        n_val = self.per_group - self.n_train_per_group
        return (f"{len(self.groups)} groups x ({self.n_train_per_group} train + {n_val} val) codes = "
                f"{self.n_train} train, {self.n_val} val; {skipped}; data {where}")


def _read(path: Path, keys) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in REQUIRED_KEYS if k not in f.files]
            if missing:
                raise ConfigError(f"{path} is not an m-height dataset (it lacks '{missing[0]}'); write one with "
                                  "python -m jgrok.mheight generate.")
            return {k: f[k] for k in keys}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"{path} cannot be read as an m-height dataset ({e}); write one with "
                          "python -m jgrok.mheight generate.") from None


def _select(data: dict, groups, per: int, path) -> tuple[np.ndarray, int]:
    """(row indices, infinite codes skipped): for each group its first ``per`` codes with a finite height, in file
    order, and how many infinite-height codes of the group lie before the last one taken."""
    finite = np.isfinite(data["h"])
    out, skipped = [], 0
    for n, k, m in groups:
        members = np.nonzero((data["n"] == n) & (data["k"] == k) & (data["m"] == m))[0]
        idx = members[finite[members]]
        if len(idx) < per:
            raise ConfigError(f"{path} holds {len(idx)} codes with finite height in group (n={n}, k={k}, m={m}); "
                              f"task.train_per_group + task.val_per_group = {per} are needed: generate more codes "
                              "or ask for fewer.")
        out.append(idx[:per])
        skipped += int(np.sum(~finite[members[members <= idx[per - 1]]]))
    return np.concatenate(out), skipped


def _generate_cache(tcfg, path: Path) -> None:
    count = tcfg.train_per_group + tcfg.val_per_group
    total = count * len(mheight.GROUPS)
    print(f"mheight: generating {total:,} codes (seed {tcfg.gen_seed}) into {path} ...", file=sys.stderr)

    tty, last = sys.stderr.isatty(), [0.0]

    def progress(g, group, done):  # one redrawn line on a terminal (at most 5 per second), else a line per group
        now = time.monotonic()
        if tty and (now - last[0] >= 0.2 or done == count):
            last[0] = now
            sys.stderr.write(f"\r  group {g + 1}/{len(mheight.GROUPS)} {group}: {done}/{count} codes   ")
        elif not tty and done == count:
            sys.stderr.write(f"  group {g + 1}/{len(mheight.GROUPS)} {group}: {count} codes\n")
        sys.stderr.flush()

    data = mheight.generate(list(mheight.GROUPS), count, tcfg.gen_seed, integer=tcfg.integer, progress=progress)
    if tty:
        sys.stderr.write("\n")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        mheight.save_npz(tmp, data)
        tmp.replace(path)
    except OSError as e:
        raise ConfigError(f"Cannot write the m-height cache {path} ({e.strerror}); set JGROK_DATA to a writable "
                          "folder.") from None


def build(tcfg) -> Table:
    """The table a task config asks for. Reads only n, k, m and h of an existing file (to check groups and count
    the infinite codes skipped); a missing cache file is generated on first use of the arrays."""
    check(tcfg)
    per = tcfg.train_per_group + tcfg.val_per_group
    if tcfg.data:
        path = Path(tcfg.data)
        if not path.is_file():
            raise ConfigError(f"task.data '{path}' does not exist; write it with python -m jgrok.mheight generate "
                              "--out ... or leave task.data empty to use jgrok's cached dataset.")
    else:
        path = cache_path(tcfg)
        if not path.exists():
            return Table(path, tuple(mheight.GROUPS), per, tcfg.train_per_group, 0, True, tcfg)
    data = _read(path, REQUIRED_KEYS[1:])
    triples = sorted({(int(n), int(k), int(m)) for n, k, m in zip(data["n"], data["k"], data["m"])})
    bad = [g for g in triples if g[0] not in N_VALUES or g[1] not in K_VALUES or g[2] not in M_VALUES]
    if bad:
        raise ConfigError(f"{path} holds group (n, k, m) = {bad[0]}; the mheight task encodes n in {N_VALUES}, "
                          f"k in {K_VALUES} and m in 2..6 only.")
    _, skipped = _select(data, triples, per, path)
    return Table(path, tuple(triples), per, tcfg.train_per_group, skipped, False, tcfg)
