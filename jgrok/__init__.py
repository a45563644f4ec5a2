"""jgrok: vectorised grokking scans in JAX. See README.md; the CLI is ``python -m jgrok.scan``."""


def load(out, run: int):
    """The NNX model, single-run config and update count of run ``run`` of the scan in folder ``out``."""
    from jgrok.io.load import load as _load

    return _load(out, run)
