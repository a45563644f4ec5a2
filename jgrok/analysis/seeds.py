"""Seed grids and super seeds: how the chance of grokking, and its speed, depend on the model seed and the data seed.

Definitions (per group of runs that share every non-seed axis value; see :func:`seed_layout`):
  steps            ``step_val_acc_99``: first eval step with val acc > 0.99; the step budget if never ("censored")
  model seed       the ``seed`` column (initial parameters)
  data seed        the split seed when every run's split seed equals its order seed (``--data-seeds``); otherwise
                   the pair (split seed, order seed), labelled ``split/order``
  rate             share of runs whose val acc crossed 0.99 within the budget
  median steps     median of steps among the runs that reached 99% (NaN if none did)
  reference median median of steps over *all* runs of the group, never-reached runs counted at the budget (a
                   censored value is a lower bound, so this median is exact unless more than half never reached)
  super run        a run that reached 99% with steps <= factor x reference median (factor 1/3 by default)
  share            super runs / runs (overall, per model seed, per data seed)
  conditional rate "given data seed d, the share of good model seeds" = share of super runs among the runs with
                   data seed d; ``lift`` = conditional rate / overall share

Intervals (95%):
  overall share on a full model x data grid: the two-way ("pigeonhole") percentile bootstrap from ``B`` resamples
  drawn with ``numpy.random.default_rng(seed)``, resampling model seeds and data seeds independently with
  replacement and taking the share over the resampled grid, so that both sources of sampling variation count. When
  no run or every run is super every resample gives the same share and the bootstrap interval is degenerate (0-0%);
  then, and for every other share (runs that are independent draws: overall without a grid, per model seed, per
  data seed), the Wilson score interval of jgrok.stats (0 of 8 -> 0-32%).

Independence tests (permutation tests, B permutations from the same generator, p = (1 + #{T* >= T}) / (1 + B)):
  data-seed dependence   T = Pearson X^2 of the super counts per data seed against their expectation; the null
                         shuffles the data-seed labels among each model seed's runs, which keeps every model seed's
                         number of super runs (the model-seed effect) and destroys any data-seed effect
  model-seed dependence  the same with the roles swapped
  product of marginals   observed share of super runs among the (model, data) cells whose model seed AND data seed
                         are both above the median super share, against the share that independence (super share =
                         row share x column share / overall share) predicts for those cells
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jgrok import scandata, stats

Z_LEVEL = 0.95


@dataclasses.dataclass
class SeedLayout:
    """One group's runs on their seed axes. Arrays are per run (row of ``idx``)."""

    task: str
    label: str
    idx: np.ndarray  # row indices into the scan's rows
    run: np.ndarray  # run ids
    model: np.ndarray  # model seed
    data: np.ndarray  # data-seed label (str): "d" or "split/order"
    split: np.ndarray
    order: np.ndarray
    steps: np.ndarray  # float, censored at the budget
    reached: np.ndarray  # bool
    budget: int

    @property
    def crossed(self) -> bool:
        """Model and data seeds vary independently (a data seed is not just the model seed again)."""
        pairs = {(m, d) for m, d in zip(self.model, self.data)}
        return len(set(self.model)) > 1 and len(set(self.data)) > 1 and not all(str(m) == d for m, d in pairs)

    @property
    def split_order_crossed(self) -> bool:
        return len(set(self.split)) > 1 and len(set(self.order)) > 1 and bool(np.any(self.split != self.order))


def seed_layout(task: str, label: str, rows: list[dict], idx: np.ndarray, budget: int) -> SeedLayout:
    sub = [rows[i] for i in idx]
    split = np.array([int(r["split_seed"]) for r in sub])
    order = np.array([int(r["order_seed"]) for r in sub])
    same = bool(np.all(split == order))
    data = np.array([str(s) if same else f"{s}/{o}" for s, o in zip(split, order)])
    return SeedLayout(task, label, np.asarray(idx), np.array([int(r["run"]) for r in sub]),
                      np.array([int(r["seed"]) for r in sub]), data, split, order,
                      *scandata.steps_reached(rows, idx), budget)


def reference_median(steps: np.ndarray) -> float:
    """Median steps over all runs, never-reached runs counted at the budget."""
    return float(np.median(steps))


def super_mask(steps: np.ndarray, reached: np.ndarray, factor: float) -> np.ndarray:
    return reached & (steps <= factor * reference_median(steps))


def rate_table(keys: np.ndarray, steps: np.ndarray, reached: np.ndarray, is_super: np.ndarray) -> list[dict]:
    """Per key value (sorted): n, rate of reaching 99% val acc, median steps among those that reached it, super
    share with its Wilson interval."""
    out = []
    for k in _sorted_unique(keys):
        m = keys == k
        s = is_super[m].astype(float)
        lo, hi = stats.wilson(int(s.sum()), len(s))
        st = steps[m & reached]
        out.append(dict(key=k, n=int(m.sum()), rate=float(reached[m].mean()),
                        median_steps=float(np.median(st)) if len(st) else np.nan,
                        super_share=float(s.mean()), ci_lo=lo, ci_hi=hi))
    return out


def _sorted_unique(keys):
    vals = list(dict.fromkeys(keys.tolist()))
    try:
        return sorted(vals, key=lambda v: [int(x) for x in str(v).split("/")])
    except ValueError:
        return sorted(vals, key=str)


def bootstrap_1d(x: np.ndarray, B: int, rng: np.random.Generator, level: float = Z_LEVEL) -> tuple[float, float]:
    """Percentile interval of mean(x) over B resamples of x's entries."""
    if len(x) == 0:
        return np.nan, np.nan
    means = x[rng.integers(0, len(x), size=(B, len(x)))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def bootstrap_grid(X_MxD: np.ndarray, B: int, rng: np.random.Generator, level: float = Z_LEVEL) -> tuple[float, float]:
    """Percentile interval of the grid mean when rows and columns are resampled independently (pigeonhole)."""
    M, D = X_MxD.shape
    means = np.empty(B)
    for b in range(B):
        r = rng.integers(0, M, M)
        c = rng.integers(0, D, D)
        means[b] = X_MxD[np.ix_(r, c)].mean()
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def grid_matrix(lay: SeedLayout, values: np.ndarray):
    """(X[M, D], model seeds, data labels) when every (model, data) cell holds exactly one run, else None."""
    ms = _sorted_unique(lay.model)
    ds = _sorted_unique(lay.data)
    if len(ms) * len(ds) != len(lay.model):
        return None
    pos = {(m, d): i for i, (m, d) in enumerate(zip(lay.model.tolist(), lay.data.tolist()))}
    if len(pos) != len(lay.model):
        return None
    X = np.array([[values[pos[(m, d)]] for d in ds] for m in ms], float)
    return X, ms, ds


def _x2(counts: np.ndarray, expected: np.ndarray) -> float:
    ok = expected > 0
    return float(np.sum((counts[ok] - expected[ok]) ** 2 / expected[ok]))


def column_dependence(X_MxD: np.ndarray, B: int, rng: np.random.Generator) -> dict:
    """Permutation test that the column (data seed) matters given each row's (model seed's) number of super runs.
    Shuffles each row's entries across columns."""
    M, D = X_MxD.shape
    expected = np.full(D, X_MxD.sum() / D)
    t = _x2(X_MxD.sum(axis=0), expected)
    if X_MxD.sum() == 0:
        return dict(stat=0.0, p=1.0)
    count = 0
    for _ in range(B):
        perm = rng.permuted(X_MxD, axis=1)
        count += _x2(perm.sum(axis=0), expected) >= t - 1e-12
    return dict(stat=t, p=(1 + count) / (1 + B))


def product_of_marginals(X_MxD: np.ndarray) -> dict:
    """Observed super share in cells whose model seed and data seed both have an above-median super share,
    against the share independence predicts for those cells (row share x column share / overall share)."""
    overall = X_MxD.mean()
    row, col = X_MxD.mean(axis=1), X_MxD.mean(axis=0)
    good_r, good_c = row > np.median(row), col > np.median(col)
    if overall == 0 or not good_r.any() or not good_c.any():
        return dict(observed=np.nan, expected=np.nan, cells=0)
    cells = X_MxD[np.ix_(good_r, good_c)]
    pred = np.outer(row[good_r], col[good_c]) / overall
    return dict(observed=float(cells.mean()), expected=float(pred.mean()), cells=int(cells.size))


def analyse(lay: SeedLayout, factor: float, B: int, seed: int) -> dict:
    """Every number of the module docstring for one group."""
    rng = np.random.default_rng(seed)
    is_super = super_mask(lay.steps, lay.reached, factor)
    ref = reference_median(lay.steps)
    out = dict(n=len(lay.steps), rate=float(lay.reached.mean()), censored=int((~lay.reached).sum()),
               reference_median=ref, threshold=factor * ref, factor=factor, n_super=int(is_super.sum()),
               share=float(is_super.mean()), crossed=lay.crossed, is_super=is_super)
    st = lay.steps[lay.reached]
    out["median_steps"] = float(np.median(st)) if len(st) else np.nan
    grid = grid_matrix(lay, is_super.astype(float)) if lay.crossed else None
    if grid is not None:
        X = grid[0]
        if 0 < is_super.sum() < len(is_super):
            out["ci"] = bootstrap_grid(X, B, rng)
            out["ci_method"] = "two-way bootstrap over model and data seeds"
        else:
            out["ci"] = stats.wilson(int(is_super.sum()), len(is_super))
            out["ci_method"] = "Wilson interval; a bootstrap is degenerate when no run or every run is super"
        out["data_dependence"] = column_dependence(X, B, rng)
        out["model_dependence"] = column_dependence(X.T, B, rng)
        out["marginals"] = product_of_marginals(X)
    else:
        out["ci"] = stats.wilson(int(is_super.sum()), len(is_super))
        out["ci_method"] = "Wilson interval over runs"
    out["per_model"] = rate_table(lay.model, lay.steps, lay.reached, is_super)
    if lay.crossed or len(set(lay.data)) > 1 and not np.array_equal(lay.data, lay.model.astype(str)):
        per_data = rate_table(lay.data, lay.steps, lay.reached, is_super)
        for r in per_data:
            r["lift"] = r["super_share"] / out["share"] if out["share"] > 0 else np.nan
        out["per_data"] = per_data
    for axis, keys in (("split", lay.split), ("order", lay.order)):
        if lay.split_order_crossed:
            out[f"per_{axis}"] = rate_table(keys, lay.steps, lay.reached, is_super)
    return out
