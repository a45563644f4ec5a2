"""jgrok: vectorised grokking scans in JAX. See README.md; the CLI is ``python -m jgrok.scan``.

``jgrok.open_scan(OUT)`` reads a results folder back (jgrok.results_folder).
"""


def open_scan(out):
    """The results folder ``out`` of a scan: config, runs, summary, curves, parameters and models
    (jgrok.results_folder.ResultsFolder)."""
    from jgrok.results_folder import open_scan as _open

    return _open(out)


def load(out, run: int):
    """(model, config, step): the NNX model of run ``run`` of the scan in folder ``out`` with the parameters of its
    newest checkpoint (the final parameters of a finished scan), that run's single-run config, and the number of
    updates behind them. Short for ``open_scan(out)``'s ``model``, ``run_config`` and ``step``."""
    scan = open_scan(out)
    return scan.model(run), scan.run_config(run), scan.step(run)
