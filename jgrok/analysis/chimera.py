"""Layer attribution with chimeras: which layer groups' initial values make a fast run fast.

Given a fast run F and a slow run S of one scan (same task and non-seed settings), a chimera takes the initial
values of each layer group g (``jgrok.init``: embedding, position, block{i}_attn, block{i}_mlp, norms, head) from
F or from S: bit g of its mask is 1 when g comes from F. Through the runs table's per-run overrides
``group_seed = {g: model seed}`` and ``group_scheme = {g: scheme}``, a chimera's group g is drawn exactly as the
parent's (same seed, same scheme, same per-tensor key), so it holds the parent's tensors bit for bit. Groups
whose initial tensors are identical in both parents (``norms`` under every scheme) are left out; all 2^G masks
of the other G groups are trained, each under every chosen data seed (split seed = order seed = d), as one
vmapped scan.

Effects on y = ln(steps to 99% val acc) (censored at the budget), with x_g = +1 when g is from F, -1 from S:
  main effect of g     mean y over chimeras with g from F minus mean y with g from S (negative: F's g speeds up)
  interaction of g, h  mean y where x_g x_h = +1 minus mean y where x_g x_h = -1 (the 2^G factorial contrast;
                       likewise for three groups)
Each effect is computed per data seed; the table gives its mean over data seeds and the standard error (sample
SD / sqrt(number of data seeds)), and a two-sided t-test p-value across data seeds when there are at least two.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
from scipy import stats

from jgrok.errors import ConfigError

SAME = ("task", "optimizer", "lr", "wd", "init_scale", "filter", "filter_alpha", "filter_lambda", "filter_window")


def check_parents(fast: dict, slow: dict) -> None:
    for k in SAME:
        if str(fast[k]) != str(slow[k]):
            raise ConfigError(f"Runs {fast['run']} and {slow['run']} differ in {k}; a chimera mixes initial "
                              "parameters only, so choose two runs with the same non-seed settings.")
    if (fast["seed"], fast["init"], fast.get("group_seed"), fast.get("group_scheme")) == \
            (slow["seed"], slow["init"], slow.get("group_seed"), slow.get("group_scheme")):
        raise ConfigError(f"Runs {fast['run']} and {slow['run']} have the same initial parameters (model seed "
                          f"{fast['seed']}, init {fast['init']}); choose runs with different model seeds.")


def group_value(row: dict, what: str, group: str):
    """The seed or scheme a run draws layer group ``group`` with (its own override, else its model seed / init)."""
    default = row["seed"] if what == "seed" else row["init"]
    return row.get(f"group_{what}", {}).get(group, default)


def identical_groups(prog, fast: dict, slow: dict) -> list[str]:
    """Layer groups whose initial tensors are bit-identical in the two parents (e.g. ``norms``, which every
    scheme starts at 1 and 0): taking them from either parent changes nothing, so they are left out of the
    factorial (each one would double the chimeras and have an effect of exactly zero)."""
    import jax

    from jgrok import grid, init as init_mod, train

    params = train.make_init(prog)(grid.hyper(prog, [fast, slow])).params
    groups = init_mod.leaf_groups(prog.model[1])
    differs: dict[str, bool] = {}
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        g = groups[init_mod.path_str(path)]
        a = np.asarray(p)
        differs[g] = differs.get(g, False) or not np.array_equal(a[0], a[1])
    return [g for g in prog.groups if not differs.get(g, True)]


def chimera_rows(fast: dict, slow: dict, groups: list[str], data_seeds: list[tuple[int, int]]) -> list[dict]:
    """One row per (mask, data seed); mask bit j set = group j from the fast run."""
    out = []
    for mask in range(2 ** len(groups)):
        pick = [fast if mask >> j & 1 else slow for j in range(len(groups))]
        for split, order in data_seeds:
            row = dict(fast, run=len(out), mask=mask, split_seed=split, order_seed=order,
                       group_seed={g: group_value(p, "seed", g) for g, p in zip(groups, pick)},
                       group_scheme={g: group_value(p, "scheme", g) for g, p in zip(groups, pick)})
            out.append(row)
    return out


def effects(y_CxD: np.ndarray, groups: list[str], order: int = 3) -> list[dict]:
    """Factorial effects (module docstring) of every set of 1 .. ``order`` groups. y_CxD: [2^G masks, data seeds]."""
    G = len(groups)
    masks = np.arange(2 ** G)
    x = np.where((masks[:, None] >> np.arange(G)[None, :]) & 1, 1.0, -1.0)  # [C, G]
    out = []
    for k in range(1, min(order, G) + 1):
        for combo in itertools.combinations(range(G), k):
            sign = np.prod(x[:, combo], axis=1)
            per_d = y_CxD[sign > 0].mean(axis=0) - y_CxD[sign < 0].mean(axis=0)  # [D]
            D = len(per_d)
            se = per_d.std(ddof=1) / np.sqrt(D) if D > 1 else np.nan
            p = float(stats.ttest_1samp(per_d, 0.0).pvalue) if D > 1 and per_d.std() > 0 else np.nan
            out.append(dict(groups=tuple(groups[j] for j in combo), order=k, effect=float(per_d.mean()), se=se, p=p,
                            factor=float(np.exp(per_d.mean()))))
    return out


COLUMNS = ("mask", "from_fast", "split_seed", "order_seed", "step_val_acc_99", "reached_val_99")


def write(path: Path, rows: list[dict], groups: list[str], steps, reached, fast: dict, slow: dict,
          same: list[str] = ()) -> None:
    with open(path, "w", newline="") as f:
        f.write(f"# fast run {fast['run']} (seed {fast['seed']}, {fast['init']}), slow run {slow['run']} "
                f"(seed {slow['seed']}, {slow['init']}); groups {' '.join(groups)}"
                + (f" | identical {' '.join(same)}" if same else "") + "\n")
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r, s, ok in zip(rows, steps, reached):
            w.writerow(dict(mask=r["mask"], from_fast=" ".join(g for j, g in enumerate(groups) if r["mask"] >> j & 1)
                            or "-", split_seed=r["split_seed"], order_seed=r["order_seed"],
                            step_val_acc_99=int(s), reached_val_99=int(ok)))


def read(path: Path) -> dict:
    with open(path, newline="") as f:
        head = f.readline()
        rows = list(csv.DictReader(f))
    header, _, same = head[2:].strip().partition(" | identical ")
    groups = header.split("groups ", 1)[1].split()
    data = list(dict.fromkeys((int(r["split_seed"]), int(r["order_seed"])) for r in rows))
    C, D = 2 ** len(groups), len(data)
    steps = np.full((C, D), np.nan)
    reached = np.zeros((C, D), bool)
    for r in rows:
        m, d = int(r["mask"]), data.index((int(r["split_seed"]), int(r["order_seed"])))
        steps[m, d], reached[m, d] = float(r["step_val_acc_99"]), bool(int(r["reached_val_99"]))
    return dict(header=header, groups=groups, identical=same.split(), data=data, steps=steps, reached=reached)
