"""Shared tiny configs. Tests run on CPU in seconds; compiled programs are shared through jgrok.engine's cache,
so tests that use the same config and lane width compile once per process, and through a persistent compilation
cache (see pytest_configure). A loaded executable is the compiled one, so results stay bit-identical."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JGROK_RATES", "off")  # tests keep no speed cache in the home folder (jgrok.io.rates)

import pytest  # noqa: E402

from jgrok import config  # noqa: E402

TINY = {
    "task": {"name": "x_plus_y", "p": 11, "fraction": 0.5},
    "model": {"n_layers": 1, "d_model": 16, "n_heads": 2},
    "optim": {"warmup": 2, "lr": 3e-3},
    "train": {"steps": 12, "batch_size": 16, "eval_every": 4},
    "engine": {"chunk": 6},
}


def tiny(**grid):
    cfg = config.from_dict(TINY)
    return config.with_grid(cfg, **grid) if grid else cfg


TINY_ARGS = ["--task", "x_plus_y", "--set", "task.p=11", "--set", "model.n_layers=1", "--set", "model.d_model=16",
             "--set", "model.n_heads=2", "--set", "optim.warmup=2", "--set", "engine.chunk=6", "--lr", "3e-3",
             "--steps", "12", "--batch-size", "16", "--eval-every", "4", "--quiet"]


def train_runs(cfg, only=None, lanes=4):
    """Train the runs of a one-program config (or the ids in ``only``) in waves of ``lanes``; the ProgramResult."""
    from jgrok import engine, grid

    rows = grid.expand(cfg)
    if only is not None:
        rows = [r for r in rows if r["run"] in only]
    (prog, table, members), = grid.programs(cfg, rows)
    return engine.train_program(prog, table, members, lanes, progress=False)


def params_of(res, run_id):
    """The final parameters of one run of a ProgramResult."""
    import jax

    i = [r["run"] for r in res.rows].index(run_id)
    return jax.tree.map(lambda x: x[i], res.final_params)


JIT_CACHE_MAX_BYTES = 1 << 30  # a cache grown past this (old programs of earlier runs) starts again empty


def pytest_configure(config):
    """One persistent compilation cache for the session: pytest-xdist workers and the scans that tests run as
    subprocesses (both inherit the environment) load what another process compiled instead of compiling it again.
    It lives in pytest's cache folder, so that a later run loads what this one compiled (``--cache-clear`` empties
    it); with the cache plugin off (``-p no:cacheprovider``) it is a temporary folder, removed at the end. A
    JAX_COMPILATION_CACHE_DIR set by the user (or by xdist's controller) is kept."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    cache = getattr(config, "cache", None)
    if cache is not None:
        path = cache.mkdir("jgrok-jit")
        if sum(f.stat().st_size for f in path.iterdir() if f.is_file()) > JIT_CACHE_MAX_BYTES:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="jgrok-tests-jit-"))
        atexit.register(shutil.rmtree, path, True)  # by the process that made it (xdist's controller)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=str(path), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    import jax  # imported already (jgrok.config): tell it too, before the first compilation

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def tiny_cfg():
    return tiny()


def assert_gradients_match(grads, theirs: dict, rel: float = 2e-3) -> None:
    """Every tensor of jgrok's gradient pytree within ``rel`` of the largest entry of the reference's gradient of the
    same name (``theirs``: jgrok flat names -> numpy arrays, as the tests' PyTorch references give them)."""
    import jax
    import numpy as np

    from jgrok import init

    for p, gv in jax.tree_util.tree_flatten_with_path(grads)[0]:
        name = init.path_str(p)
        scale = np.abs(theirs[name]).max() + 1e-8
        assert np.abs(np.asarray(gv) - theirs[name]).max() <= rel * scale + 1e-7, name


# ------------------------------------------------------------------------------------------- figures of scans

# A scan run in-process (jgrok.scan.main) ends by drawing a dozen figures, several seconds of matplotlib per scan
# that most tests never look at. Here a scan draws them only in tests marked `scan_plots`; plots.make_plots called
# from anywhere else (a test, the report) draws as always. The figures are checked by the marked tests, by
# test_plots_report.py, and by every scan that a test runs as a subprocess.
_FIGURES = {"drawn": False}


@pytest.fixture(scope="session", autouse=True)
def _scan_figures_only_where_asked():
    from jgrok import plots

    real = getattr(plots, "make_plots", None)
    if real is None:  # nothing to leave out
        yield
        return

    def make_plots(out_dir, *args, **kwargs):
        if _FIGURES["drawn"] or sys._getframe(1).f_globals.get("__name__") != "jgrok.scan":
            return real(out_dir, *args, **kwargs)
        return []

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "make_plots", make_plots)
        yield


@pytest.fixture(autouse=True)
def _figures_if_marked(request):
    _FIGURES["drawn"] = request.node.get_closest_marker("scan_plots") is not None
    yield
    _FIGURES["drawn"] = False
