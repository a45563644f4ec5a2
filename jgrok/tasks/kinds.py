"""Task kinds: classification over an operation table, regression over a dataset.

A task kind is everything the rest of jgrok needs to know about a family of tasks: what it builds (the table, its
sizes), how a run splits its rows, its training objective and its evaluation sums, the shapes of its data as a
compiled chunk receives it, its summary columns and their definitions, and which measures, plots and report
sections apply. Code outside ``jgrok/tasks`` asks the kind (``prog.kind``, :func:`for_task`, :func:`of_summary`)
and never tests a task's name. A new family of tasks is one more :class:`TaskKind` here and its table module.

=============  =====================================================  ==============================================
kind           classification (``CLASSIFY``)                          regression (``REGRESS``)
=============  =====================================================  ==============================================
tasks          every operation table of jgrok.tasks.algorithmic       ``mheight`` (jgrok.tasks.mheight_task)
inputs         int32 tokens ``[N, T]``, n_inputs = vocabulary         float32 features ``[N, F]``, n_inputs = F
targets        int32 class ``[N]``, n_out classes                     float32 log2 h ``[N]``, one output
split          a permutation of all rows (or the table's order,       per code group a permutation of its block
               ``task.split: ordered``); the first n_train train      (see :meth:`Regression.split`)
loss           ``train.loss`` (jgrok.losses): cross-entropy of the    mean squared error of log2 h
               answer, or next-token cross-entropy                    (no accuracy: ``acc`` is NaN, no ``*_acc``)
summary        steps to 99% val / train acc, grok delay, reached,     the sudden val-loss drop (jgrok.tasks.drop),
               final losses and accuracies (jgrok.io.results)         final losses, lowest val loss
=============  =====================================================  ==============================================
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jgrok import losses
from jgrok.tasks import algorithmic, drop, mheight_task

THRESHOLD = 0.99  # the accuracy of the fixed "steps to" columns (step_val_acc_99, ...)


@dataclasses.dataclass(frozen=True)
class TaskKind:
    """What a family of tasks builds and how its runs are trained, evaluated and written about (module docstring).

    columns: the kind's summary.csv columns after ``run`` and the run-group columns (jgrok.rungroup.COLUMNS), in
    file order; final_keys: the per-run values final_info.json averages per run group; headline: the summary
    values TensorBoard's hparams view shows first; measures: the progress measures (jgrok.measures.NAMES) that
    are defined for its tasks; plots / report_sections: the figures of jgrok.plots and the sections of report.md
    that apply to its scans."""

    name: str
    noun: str  # "a classification" / "a regression": what the kind is called in messages
    has_accuracy: bool  # its runs have accuracies (train_acc, val_acc, step_acc, steps to 99%)
    epochs: bool  # its results count epochs: metrics.npz holds updates_per_epoch, its figures have epoch axes
    traced_fraction: bool  # task.fraction can be a per-run value (jgrok.train.fraction_traced); else one a scan
    columns: tuple[str, ...]
    final_keys: tuple[str, ...]
    headline: tuple[str, ...]
    measures: tuple[str, ...]
    plots: tuple[str, ...]
    report_sections: tuple[str, ...]

    def build(self, name: str, tcfg):
        """The table of task ``name`` (tcfg: jgrok.config.TaskConfig)."""
        raise NotImplementedError

    def sizes(self, table) -> dict:
        """The Program's sizes of a table: n_inputs (input width), n_out, n_rows, n_train, n_groups."""
        raise NotImplementedError

    def abstract_data(self, prog):
        """Shapes and dtypes of (inputs, targets) of program ``prog``'s table as a chunk receives them."""
        raise NotImplementedError

    def split(self, prog, split_key):
        """int32[n_rows]: the run's row order; the first ``prog.n_train`` rows train, the rest validate."""
        raise NotImplementedError

    def loss(self, prog, model, x, y, w):
        """(loss, accuracy) of a weighted batch; ``model(x, all_positions=False)`` is the run's forward pass."""
        raise NotImplementedError

    def eval_sums(self, prog, out, y, w):
        """(weighted sum of the loss, weighted count of correct answers, or None without accuracy) of an
        evaluation slice, given the model's output ``out`` on it."""
        raise NotImplementedError

    def summary_values(self, metrics: dict, eval_step: np.ndarray, *, budget: int, per_epoch: int,
                       thresholds=()) -> list[dict]:
        """Per run, the values of its own columns (all but lanes, diverged_step and stopped_step, which the
        writer adds) from the curves at eval steps (definitions in jgrok.io.results); ``thresholds``: (accuracy,
        column label) of each extra "steps to" threshold (train.thresholds)."""
        raise NotImplementedError

    def describe_data(self, table) -> str | None:
        """A line about the data a scan reads (read now, so that a bad file fails before the output folder is
        made), or None when there is nothing to say."""
        return None


def first_step_above(curve_RxE: np.ndarray, eval_step_E: np.ndarray, budget: int, threshold: float = THRESHOLD):
    """(steps[R], reached[R]): first eval step whose value is > threshold; the budget where never."""
    above = np.nan_to_num(curve_RxE, nan=-np.inf) > threshold
    reached = above.any(axis=1)
    first = np.where(reached, eval_step_E[np.argmax(above, axis=1)], budget)
    return first.astype(np.int64), reached


def last_finite(curve_RxE: np.ndarray) -> np.ndarray:
    """The last finite value of each row (NaN if none)."""
    finite = np.isfinite(curve_RxE)
    idx = curve_RxE.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    vals = curve_RxE[np.arange(len(curve_RxE)), idx]
    return np.where(finite.any(axis=1), vals, np.nan)


def _finals(metrics: dict, keys) -> dict:
    return {f"final_{k}": last_finite(metrics[k]) for k in keys}


class Classification(TaskKind):
    def build(self, name, tcfg):
        return algorithmic.build(name, tcfg)

    def sizes(self, table) -> dict:
        return dict(n_inputs=table.n_vocab, n_out=table.n_out, n_rows=table.n_pairs, n_train=table.n_train,
                    n_groups=1)

    def abstract_data(self, prog):  # int32 tokens [N, T] (T = 3 for the nanda vocabulary, else 4), labels [N]
        T = algorithmic.n_tokens(prog.cfg.task)
        return jax.ShapeDtypeStruct((prog.n_rows, T), jnp.int32), jax.ShapeDtypeStruct((prog.n_rows,), jnp.int32)

    def split(self, prog, split_key):
        if prog.cfg.task.split == "ordered":  # the first n_train pairs of the table train, the rest validate
            return jnp.arange(prog.n_rows, dtype=jnp.int32)
        return jax.random.permutation(split_key, prog.n_rows).astype(jnp.int32)

    def loss(self, prog, model, x, y, w):
        log_probs = lambda z: losses.log_probs(prog, z)  # noqa: E731
        if prog.cfg.train.loss == "sequence":
            return losses.sequence_xent(model(x, all_positions=True), x, y, w, log_probs)
        return losses.xent(model(x), y, w, log_probs)

    def eval_sums(self, prog, out, y, w):
        nll = losses.nll(out, y, lambda z: losses.log_probs(prog, z))  # the training objective (train.loss)
        correct = (jnp.argmax(out, -1) == y).astype(jnp.float32)
        return jnp.sum(nll * w).astype(jnp.float32), jnp.sum(correct * w)

    def summary_values(self, metrics, eval_step, *, budget, per_epoch, thresholds=()):
        st, rt = first_step_above(metrics["train_acc"], eval_step, budget)
        sv, rv = first_step_above(metrics["val_acc"], eval_step, budget)
        extra = {}
        for t, label in thresholds:
            (st_t, rt_t), (sv_t, rv_t) = (first_step_above(metrics[k], eval_step, budget, t)
                                          for k in ("train_acc", "val_acc"))
            extra.update({f"step_train_acc_{label}": st_t, f"step_val_acc_{label}": sv_t,
                          f"reached_train_{label}": rt_t, f"reached_val_{label}": rv_t})
        finals = _finals(metrics, ("train_loss", "val_loss", "train_acc", "val_acc", "weight_norm"))
        out = []
        for i in range(len(st)):
            d = dict(step_train_acc_99=int(st[i]), step_val_acc_99=int(sv[i]), grok_delay=int(sv[i] - st[i]),
                     reached_train_99=int(rt[i]), reached_val_99=int(rv[i]))
            d.update({k: float(v[i]) for k, v in finals.items()})
            d.update({k: int(v[i]) for k, v in extra.items()})
            out.append(d)
        return out


class Regression(TaskKind):
    def build(self, name, tcfg):
        return mheight_task.build(tcfg)

    def sizes(self, table) -> dict:
        return dict(n_inputs=table.n_features, n_out=1, n_rows=table.n_rows, n_train=table.n_train,
                    n_groups=len(table.groups))

    def abstract_data(self, prog):  # float32 features [N, F] (F = prog.n_inputs), targets [N]
        return (jax.ShapeDtypeStruct((prog.n_rows, prog.n_inputs), jnp.float32),
                jax.ShapeDtypeStruct((prog.n_rows,), jnp.float32))

    def split(self, prog, split_key):
        """The training rows (``n_train / n_groups`` drawn from every group's block), then the validation rows
        (the rest of every block), each in group order. Group g's block is permuted with ``fold_in(split_key,
        g)``."""
        G = prog.n_groups
        per, tr = prog.n_rows // G, prog.n_train // G
        keys = jax.vmap(lambda g: jax.random.fold_in(split_key, g))(jnp.arange(G))
        perm_GxP = jax.vmap(lambda k: jax.random.permutation(k, per))(keys) + per * jnp.arange(G)[:, None]
        return jnp.concatenate([perm_GxP[:, :tr].reshape(-1), perm_GxP[:, tr:].reshape(-1)]).astype(jnp.int32)

    def loss(self, prog, model, x, y, w):
        return losses.mse(model(x), y, w)

    def eval_sums(self, prog, out, y, w):
        return jnp.sum(jnp.square(out - y) * w), None

    def summary_values(self, metrics, eval_step, *, budget, per_epoch, thresholds=()):
        step, found, factor = drop.detect(metrics["val_loss"], metrics["train_loss"], eval_step)
        finals = _finals(metrics, ("train_loss", "val_loss", "weight_norm"))
        with np.errstate(all="ignore"):
            min_val = np.nanmin(np.where(np.isfinite(metrics["val_loss"]), metrics["val_loss"], np.inf), axis=1)
        out = []
        for i in range(len(step)):
            d = dict(dropped=int(found[i]), drop_step=int(step[i]) if found[i] else "",
                     drop_epoch=float(step[i] / per_epoch) if found[i] else "",
                     drop_factor=float(factor[i]) if found[i] else "")
            d.update({k: float(v[i]) for k, v in finals.items()})
            d["min_val_loss"] = float(min_val[i]) if np.isfinite(min_val[i]) else float("nan")
            out.append(d)
        return out

    def describe_data(self, table) -> str:
        table.inputs  # noqa: B018 - reads the data now (generating the cached dataset if needed)
        return table.describe()


CLASSIFY = Classification(
    name="classify", noun="a classification", has_accuracy=True, epochs=False, traced_fraction=True,
    columns=("lanes", "step_train_acc_99", "step_val_acc_99", "grok_delay", "reached_train_99", "reached_val_99",
             "final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "final_weight_norm",
             "diverged_step", "stopped_step"),
    final_keys=("final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "step_val_acc_99"),
    headline=("step_val_acc_99",),
    measures=("fourier", "logits"),
    plots=("curves", "quantiles", "steps_hist", "steps_ecdf", "survival", "summary", "runs"),
    report_sections=("steps", "survival", "finals", "fastest", "thresholds", "measures", "diverged", "plots"))

REGRESS = Regression(
    name="regress", noun="a regression", has_accuracy=False, epochs=True, traced_fraction=False,
    columns=("lanes", "drop_step", "drop_epoch", "dropped", "drop_factor", "final_train_loss", "final_val_loss",
             "min_val_loss", "final_weight_norm", "diverged_step"),
    final_keys=("final_train_loss", "final_val_loss", "min_val_loss", "drop_epoch", "dropped"),
    headline=("drop_epoch", "min_val_loss"),
    measures=(),
    plots=("loss", "val_loss_runs", "weight_norm"),
    report_sections=("drops", "figures"))

KINDS = (CLASSIFY, REGRESS)


def for_task(name: str) -> TaskKind:
    """The kind of a task name (every name that is not a dataset task is an operation table)."""
    return REGRESS if name == mheight_task.NAME else CLASSIFY


def of_summary(summary: list[dict]) -> TaskKind:
    """The kind whose columns a summary's rows carry (an empty summary is read as a classification)."""
    return REGRESS if summary and "drop_step" in summary[0] else CLASSIFY
