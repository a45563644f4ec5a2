"""Slingshots and loss spikes: sudden jumps of the training loss, and what happens to val loss and weights then.

Detection, on one run's training-loss curve y (``train_loss`` at eval steps by default: the mean over the updates
since the previous evaluation; or ``step_loss``, the loss of each update's batch):
  baseline[t]  median of the ``window`` finite values before t (needs at least ``min(window, 3)`` of them)
  flagged t    y[t] > (1 + rel) x baseline[t]  and  y[t] - baseline[t] > min_jump
  spike        a maximal run of consecutive flagged points; its *onset* is the first, its *peak* the largest
               point, its *height* y[peak] / baseline[onset]

``min_jump`` keeps late-training noise out: when the loss is 1e-6, doubling it is a fluctuation, not a slingshot.

Alignment of a spike (read on the eval curves, with h = ``horizon`` evaluations; o = the eval index of the onset):
  val change      log10 min(val_loss[o .. o+h]) - log10 val_loss[o-1]   (negative: val loss fell)
  norm change     weight_norm[o+h] / weight_norm[o-1] - 1 (global L2 norm of all parameters), and the same for
                  each layer group's ``norm/<group>``
  vs. grokking    onset step - steps to 99% val acc
The same changes measured at every eval point at least h evaluations away from any spike of the run are the
*background*; a spike "aligns with a val-loss drop" when its val change is below ``drop`` (default -0.1, i.e. val
loss fell by at least 21%) and the report compares that share with the share of background points that do so.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclasses.dataclass(frozen=True)
class SpikeConfig:
    window: int = 10
    rel: float = 1.0
    min_jump: float = 0.01
    horizon: int = 5
    drop: float = -0.1
    curve: str = "train_loss"  # or "step_loss"


def rolling_baseline(y: np.ndarray, window: int) -> np.ndarray:
    """Median of the ``window`` finite values before each point (NaN where fewer than min(window, 3) exist)."""
    pad = np.concatenate([np.full(window, np.nan), y[:-1]]) if len(y) else y
    win = sliding_window_view(pad, window)[: len(y)]
    enough = np.isfinite(win).sum(axis=1) >= min(window, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        med = np.nanmedian(win, axis=1) if len(y) else np.zeros(0)
    return np.where(enough, med, np.nan)


def detect(y: np.ndarray, window: int = 10, rel: float = 1.0, min_jump: float = 0.01) -> list[dict]:
    """Spikes of one curve (module docstring): dicts with onset, peak (indices), height, base."""
    y = np.asarray(y, float)
    base = rolling_baseline(y, window)
    with np.errstate(invalid="ignore"):
        flag = (y > (1 + rel) * base) & (y - base > min_jump)
    flag &= np.isfinite(y) & np.isfinite(base)
    out = []
    t = 0
    while t < len(y):
        if flag[t]:
            end = t
            while end + 1 < len(y) and flag[end + 1]:
                end += 1
            peak = t + int(np.argmax(y[t:end + 1]))
            out.append(dict(onset=t, peak=peak, end=end, height=float(y[peak] / base[t]), base=float(base[t])))
            t = end + 1
        else:
            t += 1
    return out


def _change(curves: dict, run: int, o: int, h: int, norm_keys: list[str]) -> dict | None:
    """Changes around eval index o of one run (None where o-1 or o+h fall outside the curve)."""
    E = curves["val_loss"].shape[1]
    if o < 1 or o + h >= E:
        return None
    vl = curves["val_loss"][run]
    seg = vl[o:o + h + 1]
    if not np.isfinite(vl[o - 1]) or not np.isfinite(seg).any() or vl[o - 1] <= 0:
        return None
    d = {"val_change": float(np.log10(np.nanmin(seg)) - np.log10(vl[o - 1]))}
    for k in norm_keys:
        c = curves[k][run]
        d[k] = float(c[o + h] / c[o - 1] - 1) if c[o - 1] > 0 else np.nan
    return d


def analyse(curves: dict, eval_step: np.ndarray, step_loss, steps99: np.ndarray, reached: np.ndarray,
            runs: np.ndarray, cfg: SpikeConfig) -> dict:
    """Spikes of every run and their alignment. ``curves``: [R, E] arrays of metrics.npz; ``step_loss`` [R, S] or
    None; ``steps99`` [R] steps to 99% val acc and ``reached`` [R] whether it was reached; ``runs`` [R] run ids.
    A spike is *at grokking* when its onset lies within h evaluations of the run's 99%-val-acc evaluation."""
    norm_keys = ["weight_norm"] + sorted(k for k in curves if k.startswith("norm/"))
    h = cfg.horizon
    events, background = [], []
    per_run = np.zeros(len(runs), int)
    for i in range(len(runs)):
        if cfg.curve == "step_loss":
            found = detect(step_loss[i], cfg.window, cfg.rel, cfg.min_jump)
            for s in found:  # update index -> the first evaluation at or after it
                s["onset_step"] = s["onset"] + 1
                s["eval_onset"] = int(np.searchsorted(eval_step, s["onset"] + 1))
        else:
            found = detect(curves["train_loss"][i], cfg.window, cfg.rel, cfg.min_jump)
            for s in found:
                s["onset_step"] = int(eval_step[s["onset"]])
                s["eval_onset"] = s["onset"]
        per_run[i] = len(found)
        grok_e = int(np.searchsorted(eval_step, steps99[i])) if reached[i] else None
        near = np.zeros(len(eval_step), bool)
        for s in found:
            near[max(0, s["eval_onset"] - h):s["eval_onset"] + h + 1] = True
            ch = _change(curves, i, s["eval_onset"], h, norm_keys)
            events.append(dict(run=int(runs[i]), row=i, onset_step=s["onset_step"], height=s["height"],
                               eval_onset=s["eval_onset"],
                               since_grok=s["onset_step"] - float(steps99[i]) if reached[i] else np.nan,
                               at_grok=grok_e is not None and abs(s["eval_onset"] - grok_e) <= h,
                               **(ch or {"val_change": np.nan})))
        for o in np.nonzero(~near)[0]:
            ch = _change(curves, i, int(o), h, norm_keys)
            if ch is not None:
                background.append(ch)
    return dict(events=events, per_run=per_run, background=background, norm_keys=norm_keys,
                summary=summarise(events, background, per_run, norm_keys, cfg))


def summarise(events, background, per_run, norm_keys, cfg: SpikeConfig) -> dict:
    def share_drop(xs):
        v = np.array([x["val_change"] for x in xs], float)
        v = v[np.isfinite(v)]
        return (float(np.mean(v < cfg.drop)), len(v)) if len(v) else (np.nan, 0)

    out = dict(runs=len(per_run), runs_with_spikes=int((per_run > 0).sum()), spikes=int(per_run.sum()),
               median_per_spiking_run=float(np.median(per_run[per_run > 0])) if (per_run > 0).any() else 0.0)
    out["drop_share"], out["drop_n"] = share_drop(events)
    out["bg_drop_share"], out["bg_n"] = share_drop(background)
    out["at_grok"] = int(sum(e["at_grok"] for e in events))
    for k in norm_keys:
        ev = np.array([e.get(k, np.nan) for e in events], float)
        bg = np.array([b.get(k, np.nan) for b in background], float)
        out[f"{k}|spike"] = float(np.nanmedian(ev)) if np.isfinite(ev).any() else np.nan
        out[f"{k}|background"] = float(np.nanmedian(bg)) if np.isfinite(bg).any() else np.nan
    return out


def aligned(curves: dict, events: list[dict], key: str, h: int) -> np.ndarray:
    """[n_events, 2h+1]: log10 of ``key`` relative to its value just before each onset (offsets -h .. h)."""
    E = curves[key].shape[1]
    out = np.full((len(events), 2 * h + 1), np.nan)
    for j, e in enumerate(events):
        o, c = e["eval_onset"], curves[key][e["row"]]
        if o < 1 or not c[o - 1] > 0:
            continue
        for k, t in enumerate(range(o - h, o + h + 1)):
            if 0 <= t < E and c[t] > 0:
                out[j, k] = np.log10(c[t] / c[o - 1])
    return out
