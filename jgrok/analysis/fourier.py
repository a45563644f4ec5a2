"""Fourier progress measures of a finished scan, read from its curves (``--measures fourier``).

The measures (spectrum of the number-token embedding, its Gini coefficient, key frequencies, restricted and
excluded loss; Nanda et al. 2023) are computed inside the compiled chunk at every evaluation of every run:
definitions and formulas in jgrok.measures. This module only reads them from metrics.npz:

  final spectrum     a run's ``fourier_spectrum`` at its last evaluation with a finite value
  key frequencies    of that spectrum, by the rule of jgrok.measures.key_mask (the smallest set of frequencies
                     holding jgrok.measures.KEY_SHARE of the squared spectrum), largest first

Scans made before the measures existed have no such curves; run them again with ``--measures fourier`` (a
run's training does not depend on its measures, so the rescan trains the same runs and adds the curves).
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from jgrok import measures, plots


def has_curves(curves: dict) -> bool:
    return "fourier_spectrum" in curves


def final_spectra(curves: dict, n_freq_R: np.ndarray | None = None) -> np.ndarray:
    """float[R, F]: each run's spectrum at its last evaluation with a finite value (NaN rows if none).
    ``n_freq_R``: each run's own number of frequencies where runs of several moduli are padded to F
    (jgrok.io.results.PAD: the padding is NaN at every evaluation and does not count as a diverged one)."""
    spec = curves["fourier_spectrum"]  # [R, E, F]
    n = np.full(len(spec), spec.shape[2]) if n_freq_R is None else np.asarray(n_freq_R)
    padding = np.arange(spec.shape[2])[None, None, :] >= n[:, None, None]
    ok = (np.isfinite(spec) | padding).all(axis=2)
    last = spec.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    out = spec[np.arange(len(spec)), last]
    return np.where(ok.any(axis=1)[:, None], out, np.nan)


def key_frequencies(spec_F: np.ndarray) -> list[int]:
    """The key frequencies (1-based) of one spectrum, largest first (module docstring)."""
    if not np.isfinite(spec_F).all():
        return []
    mask, _ = measures.key_mask(jnp.asarray(spec_F, jnp.float32))
    keys = np.nonzero(np.asarray(mask))[0]
    return [int(k) + 1 for k in keys[np.argsort(-spec_F[keys])]]


def spectrum_figure(spectra_RxF: np.ndarray, run_ids: list[int], path: Path) -> Path:
    """fourier_norms.png: the final spectra of the chosen runs."""
    fig = plots.figure(8, 3.8)
    ax = fig.add_subplot()
    for rid, spec in zip(run_ids, spectra_RxF):
        ax.plot(np.arange(1, len(spec) + 1), spec, lw=0.9, label=f"run {rid}")
    ax.set(xlabel="frequency k", ylabel="norm of embedding Fourier component", title="embedding at the last evaluation")
    ax.grid(alpha=0.3)
    plots.legend(ax, len(run_ids))
    return plots.save(fig, path)
