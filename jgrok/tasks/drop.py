"""The sudden validation-loss drop of a regression run (regression grokking), found from its eval curves: the
regression kind's summary columns (jgrok.tasks.kinds) are defined by it.

Definition (per run; curves at eval steps e = 0 .. E-1, NaN where there was no evaluation):

1. v_e = log10 val_loss_e and t_e = log10 train_loss_e (train loss at an eval = mean batch loss since the previous
   eval), each smoothed by a trailing mean over ``smooth`` evals (NaNs ignored): v~, t~.
2. The drop over the window ending at eval e is D_e = v~_{e-W} - v~_e (W = ``window`` evals): how many decades the
   smoothed val loss fell in those W evals.
3. Eval e is *eligible* when the train loss had plateaued before the window began: |t~_{e-W} - t~_{e-2W}| <=
   log10(1 + ``plateau_tol``) (it changed by less than ``plateau_tol``, relative, over the W evals before).
4. The drop is the eligible e* with the largest D_e, provided D_e* >= log10(``min_factor``) (the val loss fell by at
   least that factor within W evals); otherwise the run has no drop.
5. Its step is the first eval step in (e*-W, e*] at which v~ has covered half of D_e* (v~ <= v~_{e*-W} - D_e*/2);
   ``factor`` = 10^D_e*. Epoch = step / updates per epoch (``jgrok.config.updates_per_epoch``).

A smooth decline (val loss falling with the train loss, or slowly while it is flat) has no drop; a flat val
loss that falls by ``min_factor`` within W evals after the train loss settled does.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class DropParams:
    window: int = 10  # W: evals over which a drop is measured (the preset evaluates every 5 epochs: 50 epochs)
    smooth: int = 3  # evals in the trailing mean
    min_factor: float = 2.0  # the smoothed val loss must fall at least this many times within the window
    plateau_tol: float = 0.2  # relative change of the smoothed train loss allowed over the W evals before


def _trailing_mean(x_RxE: np.ndarray, n: int) -> np.ndarray:
    finite = np.isfinite(x_RxE)
    val = np.where(finite, x_RxE, 0.0)
    csum = np.cumsum(val, axis=1)
    ccnt = np.cumsum(finite, axis=1)
    pad = lambda c: np.concatenate([np.zeros_like(c[:, :n]), c], axis=1)[:, :-n]  # noqa: E731 (shift by n)
    s, c = csum - pad(csum), ccnt - pad(ccnt)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def _log10(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.asarray(x) > 0, np.log10(np.where(np.asarray(x) > 0, x, 1.0)), np.nan)


def detect(val_loss_RxE, train_loss_RxE, eval_step_E, params: DropParams = DropParams()):
    """(step[R] int64, found[R] bool, factor[R] float64) as defined in the module docstring; step is -1 and factor
    NaN where no drop was found."""
    val = np.atleast_2d(np.asarray(val_loss_RxE, np.float64))
    trn = np.atleast_2d(np.asarray(train_loss_RxE, np.float64))
    steps = np.asarray(eval_step_E)
    R, E = val.shape
    W = params.window
    v = _trailing_mean(_log10(val), params.smooth)
    t = _trailing_mean(_log10(trn), params.smooth)
    step = np.full(R, -1, np.int64)
    factor = np.full(R, np.nan)
    if E <= 2 * W:
        return step, np.zeros(R, bool), factor
    e = np.arange(2 * W, E)
    D = v[:, e - W] - v[:, e]
    plateau = np.abs(t[:, e - W] - t[:, e - 2 * W]) <= np.log10(1.0 + params.plateau_tol)
    score = np.where(plateau & np.isfinite(D) & (D >= np.log10(params.min_factor)), D, -np.inf)
    found = np.isfinite(score.max(axis=1))
    for r in np.nonzero(found)[0]:
        j = int(e[np.argmax(score[r])])
        d = float(D[r, j - 2 * W])
        target = v[r, j - W] - d / 2
        window = np.arange(j - W + 1, j + 1)
        hit = window[np.nan_to_num(v[r, window], nan=np.inf) <= target]
        step[r] = int(steps[hit[0]]) if len(hit) else int(steps[j])
        factor[r] = 10.0 ** d
    return step, found, factor
