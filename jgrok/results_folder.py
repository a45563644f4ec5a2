"""A results folder read back: ``scan = jgrok.open_scan(OUT)``, the one way the readers get at a scan.

    scan = jgrok.open_scan("runs/wd")
    scan.config                      # the saved Config (config.yaml without its bookkeeping keys)
    scan.runs                        # the runs table of the trained runs (jgrok.grid.expand, --only applied)
    scan.summary                     # summary.csv rows, cells typed (int, float, bool, str; None where empty)
    acc, steps = scan.curves("val_acc")      # float [runs, evals] in run-id order, and the eval steps [evals]
    scan.padding("fourier_spectrum") # each run's own extents where runs of other shapes are padded (or None)
    params = scan.restore([3, 17])   # final parameters of runs 3 and 17 (numpy pytrees)
    model = scan.model(17)           # run 17 as an NNX model holding those parameters
    data = scan.data()               # what the readers use: summary and curves aligned, run groups, grokking
                                     # times, log-rank tests (jgrok.scandata)

Every method reads its files when first asked (and keeps what it read), so opening a folder costs nothing and a
folder that is still training (config.yaml and checkpoints, no summary.csv yet) can be read as far as it goes.
Parameters come from the newest readable checkpoint of the run's program: the final parameters of a finished
scan; if that checkpoint cannot be read, the one before it (jgrok.io.checkpoint.restore).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import numpy as np
import yaml
from flax import nnx

from jgrok import axes
from jgrok import config as config_mod
from jgrok import engine, grid, runids, scandata, train
from jgrok.errors import ConfigError
from jgrok.io import checkpoint, results

# keys of config.yaml that describe the scan's bookkeeping rather than its config
BOOKKEEPING = ("only", "process", "lanes")


def open_scan(out) -> ResultsFolder:
    """The results folder ``out``; ConfigError (one sentence) when there is no such folder."""
    out = Path(out)
    if not out.is_dir():
        raise ConfigError(f"Results folder {out} does not exist, so it is not a jgrok results folder; pass the --out "
                          "folder of a scan.")
    return ResultsFolder(out)


class ResultsFolder:
    """The files of one scan's results folder (module docstring). Runs are named by their ids."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self._saved = None
        self._config = None
        self._runs = None
        self._summary = None
        self._layout = None  # [(program, its runs)] in checkpoint order, without --init-from parameters
        self._checkpoints: dict[int, tuple[int, list]] = {}  # program index -> (step, per-run state leaves)
        self._shapes: dict = {}  # program index -> its training state as shapes
        self._looks = None  # run id -> the look folder that trained it (a scan with --until-decided)

    # ------------------------------------------------------------------------------------------- config and runs

    @property
    def saved(self) -> dict:
        """config.yaml as the mapping it holds ({} when there is none or it holds something else)."""
        if self._saved is None:
            path = self.out / "config.yaml"
            data = yaml.safe_load(path.read_text()) if path.is_file() else {}
            self._saved = data if isinstance(data, dict) else {}
        return self._saved

    @property
    def config(self) -> config_mod.Config:
        """The saved Config; ConfigError when the folder has no config.yaml."""
        if self._config is None:
            path = self.out / "config.yaml"
            if not path.is_file():
                raise ConfigError(f"{self.out} is not a jgrok results folder (no config.yaml).")
            data = config_mod.load_yaml(path)
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if k not in BOOKKEEPING}
            self._config = config_mod.from_dict(data)  # a ConfigError sentence for anything else
        return self._config

    @property
    def only(self) -> str | None:
        """The ``--only`` text of a partial scan (a shard's runs), or None when it trained the whole grid."""
        only = self.saved.get("only")
        return None if only is None else str(only)

    @property
    def lanes(self) -> int:
        """The lane width W the scan trained at (recorded in config.yaml)."""
        return int(self.saved.get("lanes") or self.config.engine.wave_size or 1)

    @property
    def runs(self) -> list[dict]:
        """The runs table of the runs this scan trained: jgrok.grid.expand of its config, ``--only`` applied."""
        if self._runs is None:
            self._runs = runids.keep(grid.expand(self.config), self.only)
        return self._runs

    def run(self, run: int) -> dict:
        """One row of the runs table; ConfigError when the scan did not train that run."""
        for r in self.runs:
            if r["run"] == run:
                return r
        raise ConfigError(f"Run {run} is not part of the scan in {self.out}.")

    def run_config(self, run: int) -> config_mod.Config:
        """The config of one run alone: the scan's config with that run's axis values (its variant applied): every
        axis with a config field (jgrok.axes) sets that field to the run's value."""
        row = self.run(run)
        return config_mod.base_for_axes(config_mod.variant_config(self.config, row.get("variant")),
                                        {a.name: row[a.name] for a in axes.fields()})

    # ------------------------------------------------------------------------------------------ results files

    @property
    def finished(self) -> bool:
        """True once summary.csv is written (it is written last, so the results files are complete)."""
        return (self.out / "summary.csv").is_file()

    @property
    def summary(self) -> list[dict]:
        """summary.csv: one dict per run in run-id order, each cell typed once by jgrok.io.results.parse_value
        (which defines the columns)."""
        if self._summary is None:
            self._need("summary.csv")
            self._summary = results.parse_summary(results.read_summary(self.out / "summary.csv"))
        return self._summary

    def data(self) -> scandata.ScanData:
        """The finished scan as the readers use it: summary and curves aligned, run groups, grokking times and
        log-rank tests (jgrok.scandata); ConfigError (one sentence) unless the scan has finished."""
        return scandata.load(self)

    @property
    def regression(self) -> bool:
        """True for a finished regression scan (task mheight: summary.csv has the drop columns)."""
        return self.finished and results.is_regression(self.summary)

    def metrics(self, per_update: bool = False) -> dict[str, np.ndarray]:
        """The arrays of metrics.npz (its docstring: jgrok.io.results), runs in run-id order; the per-update
        ``step_*`` arrays ([R, S], gigabytes for a large scan) only with ``per_update``."""
        with np.load(self._need("metrics.npz")) as z:
            return {k: np.asarray(z[k]) for k in z.files if per_update or not k.startswith("step_")}

    @property
    def arrays(self) -> list[str]:
        """The names of the arrays in metrics.npz."""
        with zipfile.ZipFile(self._need("metrics.npz")) as zf:
            return [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]

    def curves(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values [runs, evals] (``fourier_spectrum``: [runs, evals, F]) in run-id order, eval steps [evals]) of
        one metric of metrics.npz, e.g. "val_acc"; ConfigError when the scan has no such curve. Runs of programs
        of other shapes are padded with NaN (``padding`` says how far each run's own values go)."""
        with np.load(self._need("metrics.npz")) as z:
            if name not in z.files:
                have = sorted(k for k in z.files if k not in ("run", "eval_step") and not k.startswith(results.PAD))
                raise ConfigError(f"{self.out / 'metrics.npz'} has no curve '{name}'; it has {', '.join(have)}.")
            return np.asarray(z[name]), np.asarray(z["eval_step"])

    def padding(self, name: str) -> np.ndarray | None:
        """int [runs, ndim - 1]: each run's own extent of the axes after the runs axis of curve ``name``, where the
        scan's programs wrote it in different shapes (jgrok.io.results.PAD; 0: the run's model has no such
        curve); None where every run's has the same shape (nothing is padded)."""
        with np.load(self._need("metrics.npz")) as z:
            key = results.PAD + name
            return np.asarray(z[key]) if key in z.files else None

    def rows_of(self, name: str, run_ids) -> np.ndarray:
        """The rows of one array of metrics.npz for some runs, without reading the others (``step_loss`` [R, S]
        of a large scan is gigabytes)."""
        path = self._need("metrics.npz")
        with np.load(path) as z:
            pos = {int(r): i for i, r in enumerate(z["run"])}
        return results.npz_rows(path, name, [pos[r] for r in run_ids])

    def _need(self, name: str) -> Path:
        """OUT/name; ConfigError when it is not there (the scan has not finished)."""
        path = self.out / name
        if not path.is_file():
            raise ConfigError(f"{self.out} has no {name}: the scan has not finished (resume it with python -m "
                              f"jgrok.scan --resume {self.out}).")
        return path

    # ------------------------------------------------------------------------------------- parameters and models

    def look_of(self, run: int) -> ResultsFolder | None:
        """The folder OUT/looks/look_<k>/ that trained a run of a scan with ``--until-decided`` (a results folder of
        its own, whose checkpoints hold the run's parameters), or None for any other scan."""
        if self._looks is None:
            self._looks = {}
            for d in sorted((self.out / "looks").glob("look_*")) if (self.out / "looks").is_dir() else []:
                part = ResultsFolder(d)
                self._looks.update({r["run"]: part for r in part.runs})
        return self._looks.get(run)

    def restore(self, run_ids) -> list:
        """The parameters (pytrees of numpy arrays) of the runs ``run_ids``, in that order, from the newest
        readable checkpoint of each run's program (module docstring)."""
        out = []
        for run in run_ids:
            if self.look_of(run) is not None:
                self.run(run)
                out += self.look_of(run).restore([run])
                continue
            i, _, members = self._program_of(run)
            _, leaves = self._checkpoint(i, run)
            k = [r["run"] for r in members].index(run)
            out.append(self._state(i, [x[k] for x in leaves]).params)
        return out

    def step(self, run: int) -> int:
        """The number of updates behind the parameters ``restore`` gives for a run."""
        if self.look_of(run) is not None:
            return self.look_of(run).step(run)
        i, _, _ = self._program_of(run)
        return self._checkpoint(i, run)[0]

    def model(self, run: int) -> nnx.Module:
        """Run ``run`` as an NNX model holding its restored parameters."""
        _, prog, _ = self._program_of(run)
        graphdef, _ = prog.model
        return nnx.merge(graphdef, self.restore([run])[0])

    def program(self, run: int) -> train.Program:
        """The Program that trains a run, as the scan built it (with the parameters of ``init.from_run``)."""
        row = self.run(run)
        (prog, _, _), = programs(self.config, [row])
        return prog

    def _programs(self) -> list:
        if self._layout is None:  # shapes only: the --init-from parameters are not needed to read checkpoints
            self._layout = [(prog, members) for prog, _, members in grid.programs(self.config, self.runs)]
        return self._layout

    def _program_of(self, run: int):
        self.run(run)
        for i, (prog, members) in enumerate(self._programs()):
            if any(r["run"] == run for r in members):
                return i, prog, members
        raise ConfigError(f"Run {run} is not part of the scan in {self.out}.")

    def _abstract(self, i: int):
        """The training state of program i as shapes (one run)."""
        if i not in self._shapes:
            prog, members = self._programs()[i]
            init_fn, _ = prog.compiled(1)
            self._shapes[i] = jax.eval_shape(init_fn, grid.hyper(prog, members[:1]))
        return self._shapes[i]

    def _state(self, i: int, leaves: list):
        return jax.tree.unflatten(jax.tree.structure(self._abstract(i)), leaves)

    def _checkpoint(self, i: int, run: int) -> tuple[int, list]:
        if i not in self._checkpoints:
            prog, members = self._programs()[i]
            R = len(members)
            like = [np.zeros((R,) + x.shape[1:], x.dtype) for x in jax.tree.leaves(self._abstract(i))]
            restored = checkpoint.restore(checkpoint.manager(self.out, i), checkpoint.pack(like, _host_like(
                prog, members), 0))
            if restored is None:
                raise ConfigError(f"{self.out} has no checkpoint for run {run} yet.")
            step, tree = restored
            self._checkpoints[i] = step, [tree["state"][f"leaf_{j:04d}"] for j in range(len(like))]
        return self._checkpoints[i]


def _host_like(prog: train.Program, members: list[dict]) -> dict:
    """The curves a checkpoint of this program holds beside the state, as zeros of their shapes."""
    total, R = prog.cfg.train.steps, len(members)
    E = len(engine.eval_steps(total, prog.cfg.train.eval_every))
    host = {f"eval/{k}": np.zeros((R, E) + shape, np.float32) for k, shape in train.eval_shapes(prog).items()}
    host["step_loss"] = np.zeros((R, total), np.float32)
    host["step_acc"] = np.zeros((R, total), np.float32)
    host["run"] = np.array([r["run"] for r in members], np.int64)
    return host


def programs(cfg: config_mod.Config, rows: list[dict], starts: dict | None = None) -> list:
    """``jgrok.grid.programs`` whose runs start from the final parameters of another scan's run where the config
    says so (``init.from_run`` / ``--init-from``): those are read here, once per (folder, run) while ``starts``
    (a dict the caller may keep between calls) holds them."""
    starts = {} if starts is None else starts

    def load(out: str, run: int):
        if (out, run) not in starts:
            starts[(out, run)] = open_scan(out).restore([run])[0]
        return starts[(out, run)]

    return grid.programs(cfg, rows, load_start=load)
