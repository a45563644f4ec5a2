"""``python -m jgrok.scan``: train every run of a grid at once and leave a results folder.

    python -m jgrok.scan --seeds 0:2048 --task x_div_y
    python -m jgrok.scan --config ai_scientist --task x_plus_y --seeds 0:64 --wd 0.1,0.5,1.0 --out runs/wd
    python -m jgrok.scan --task permutation --seeds 0:8 --steps 2000 --eval-every 50 --dry-run

Axis flags take comma lists (``--wd 0.1,0.5``); seed flags also take half-open ranges (``--seeds 0:64``).
Every combination of the axes is a run. A user mistake prints one sentence and exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from jgrok import axes
from jgrok import config as config_mod
from jgrok.errors import ArgumentParser, ConfigError, StorageError, UserError, one_line

RESULT_ENTRIES = ("config.yaml", "metrics.npz", "metrics.npz.tmp", "summary.csv", "final_info.json", "plots", "tb",
                  "checkpoints", "report.md", "analysis")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m jgrok.scan", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--config", help="YAML file or preset name in jgrok/configs/ (default: the AI-Scientist template)")
    for axis in axes.REGISTRY:  # the axis flags, in the registry's order
        if axis.flag is not None:
            a(axis.flag, help=axis.help)
        if axis.name == "init_scale":  # the init settings that are not axes, beside the init axes
            a("--init-group", metavar="GROUP=seed:N|scheme:NAME,...",
              help="per-layer-group init overrides, e.g. head=seed:7,embedding=scheme:orthogonal (groups: see README)")
            a("--init-from", metavar="OUT:RUN[:GROUP,...]",
              help="start every run from the final parameters of run RUN of the scan in OUT (all groups or those "
                   "named)")
    a("--steps", help="updates per run")
    a("--epochs", help="shuffled epochs per run (train.sampling epochs; replaces --steps), e.g. for task mheight")
    a("--batch-size", help="training batch size")
    a("--eval-every", help="updates between evaluations")
    a("--precision", help="fp32 (default), tf32 or bf16")
    a("--out", help="results folder (default: runs/scan-<date>-<time>)")
    a("--overwrite", action="store_true", help="replace an existing results folder")
    a("--only", help="train only these run ids of the grid: comma list and A:B ranges")
    a("--until-decided", metavar="AXIS", help="compare the two values of AXIS and train the seeds in looks, stopping "
                                              "once the comparison is decided (with --look-every; jgrok.sequential)")
    a("--look-every", metavar="N", help="seeds per run group between the looks of --until-decided")
    a("--futility", metavar="CP", help="with --until-decided: also stop once the conditional power under the current "
                                       "trend falls below CP, e.g. 0.1 (default 0: never)")
    a("--wave-size", help="lanes W per compiled wave (default: chosen from device memory, then recorded)")
    a("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config field, e.g. train.sampling=full")
    a("--tb-runs", help="runs whose own curves go to TensorBoard: ids like 0:16, none, or auto (default: 16 runs "
                        "taken from every group in turn)")
    a("--no-tensorboard", action="store_true", help="write no TensorBoard logs (engine.tensorboard=false)")
    a("--resume", metavar="OUT", help="continue an interrupted scan from its last checkpoint")
    a("--checkpoint-every", help="updates between checkpoints (default: only at the end)")
    a("--stop-when", metavar="RULE", help="stop a run when an evaluated metric meets RULE, e.g. 'val_acc>0.99'")
    a("--threshold", metavar="ACC[,ACC]", help="accuracy thresholds of the 'steps to' columns, e.g. 0.95,0.99 "
      "(train.thresholds; 0.99 is always reported)")
    a("--patience", help="consecutive evaluations that must meet --stop-when before a run stops (default 1)")
    a("--measures", help="progress measures evaluated for every run (comma list): fourier, logits; see README")
    a("--coordinator", metavar="HOST:PORT", help="multi-host: jax.distributed coordinator (with --num-processes, "
                                                 "--process-id)")
    a("--num-processes", help="multi-host: number of processes sharing the scan")
    a("--process-id", help="multi-host: this process's index in [0, --num-processes)")
    a("--distributed", action="store_true", help="multi-host: jax.distributed.initialize() with the cluster's "
                                                 "own environment (SLURM, Open MPI, ...)")
    a("--dry-run", action="store_true", help="print the resolved config, runs, parameters and memory, then exit")
    a("--quiet", action="store_true", help="no progress bar")
    return p


def parse_values(flag: str, text: str, seeds: bool = False) -> list[str]:
    """A comma list, or for seeds also a half-open range A:B."""
    text = text.strip()
    if seeds and ":" in text and "," not in text:
        parts = text.split(":")
        try:
            lo, hi = (int(x) for x in parts)
        except ValueError:
            raise ConfigError(f"{flag} takes a range A:B of whole numbers or a comma list, not '{text}'.") from None
        if len(parts) != 2 or hi <= lo:
            raise ConfigError(f"{flag} {text} is an empty range; write A:B with A < B.")
        if hi - lo > config_mod.MAX_RUNS:
            raise ConfigError(f"{flag} {text} has {hi - lo:,} values, more than jgrok's limit of "
                              f"{config_mod.MAX_RUNS:,} runs per scan.")
        return [str(i) for i in range(lo, hi)]
    values = [v.strip() for v in text.split(",")]
    if not text or any(v == "" for v in values):
        raise ConfigError(f"{flag} needs a comma list of values, not '{text}'.")
    if seeds:
        for v in values:
            try:
                int(v)
            except ValueError:
                raise ConfigError(f"{flag} takes whole numbers (A:B or a comma list), not '{v}'.") from None
    return values


AXIS_FLAGS = {a.attr: a.name for a in axes.REGISTRY if a.flag is not None}  # flag attribute -> grid axis
FIELD_FLAGS = {"init_group": "init.groups", "init_from": "init.from_run", "tb_runs": "engine.tb_runs",
               "checkpoint_every": "engine.checkpoint_every", "steps": "train.steps", "batch_size": "train.batch_size",
               "eval_every": "train.eval_every", "precision": "train.precision", "wave_size": "engine.wave_size",
               "stop_when": "train.stop_when", "patience": "train.patience", "measures": "train.measures",
               "threshold": "train.thresholds", "until_decided": "sequential.until_decided",
               "look_every": "sequential.look_every", "futility": "sequential.futility"}
# --epochs counts shuffled epochs instead of updates; applied first, so that --epochs 0 --steps N works
FIELD_FLAGS = {"epochs": "train.epochs", **FIELD_FLAGS}


def resolve(args) -> config_mod.Config:
    """The config a command line asks for: preset, then --set, then the named flags."""
    cfg = config_mod.load(args.config)
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, e.g. train.steps=1000, not '{item}'.")
        key, value = item.split("=", 1)
        cfg = config_mod.set_path(cfg, key.strip(), value)
    for attr, field in FIELD_FLAGS.items():
        value = getattr(args, attr)
        if value is not None:
            cfg = config_mod.set_path(cfg, field, value)
    given = {}
    for attr, axis in AXIS_FLAGS.items():
        value = getattr(args, attr)
        if value is not None:
            flag = "--" + attr.replace("_", "-")
            given[axis] = parse_values(flag, value, seeds=axis in config_mod.SEED_AXES)
    if "data_seed" in given:  # a seed flag replaces the preset's other kind of data-seed axes
        cfg = dataclasses.replace(cfg, grid={k: v for k, v in cfg.grid.items() if k not in ("split_seed", "order_seed")})
    if "split_seed" in given or "order_seed" in given:
        cfg = dataclasses.replace(cfg, grid={k: v for k, v in cfg.grid.items() if k != "data_seed"})
    if args.no_tensorboard:
        cfg = config_mod.set_path(cfg, "engine.tensorboard", "false")
    cfg = config_mod.with_grid(cfg, **given) if given else cfg
    if args.patience is not None and not cfg.train.stop_when:
        raise ConfigError("--patience needs a stop rule; add --stop-when, e.g. --stop-when 'val_acc>0.99'.")
    return cfg


def processes(args) -> tuple[int, int]:
    """(this process's index, number of processes). With --coordinator or --distributed, jax.distributed is
    initialised and tells; with --num-processes/--process-id alone, the processes are independent jobs (a job
    array) that share nothing but the output folder; otherwise (0, 1)."""
    def whole(flag, text):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{flag} takes a whole number, not '{text}'.") from None

    n = None if args.num_processes is None else whole("--num-processes", args.num_processes)
    i = None if args.process_id is None else whole("--process-id", args.process_id)
    if n is not None and n < 1:
        raise ConfigError(f"--num-processes must be at least 1, not {n}.")
    if (n is None) != (i is None) and not args.distributed:
        raise ConfigError("Give --num-processes and --process-id together.")
    if i is not None and not 0 <= i < n:
        raise ConfigError(f"--process-id must be in [0, {n}), not {i}.")
    if args.coordinator is not None and n is None:
        raise ConfigError("--coordinator needs --num-processes and --process-id.")
    if args.coordinator is not None or args.distributed:
        import jax

        kw = {} if args.coordinator is None else dict(coordinator_address=args.coordinator, num_processes=n,
                                                      process_id=i)
        try:
            jax.distributed.initialize(**kw)
        except (RuntimeError, ValueError) as e:
            raise ConfigError(f"jax.distributed.initialize failed ({str(e).splitlines()[0]}).") from None
        return jax.process_index(), jax.process_count()
    return (0, 1) if n is None else (i, n)


def prepare_out(out: Path, overwrite: bool) -> Path | None:
    """Refuse to touch an existing folder unless asked; with --overwrite remove only jgrok's own entries. Check that
    the folder can be written. Returns the outermost folder this call created (to remove if the scan cannot start),
    or None when the folder existed."""
    try:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; choose a folder path.")
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:
                raise ConfigError(f"Output folder {out} already exists; choose another --out or pass --overwrite.")
            if not (out / "config.yaml").is_file():
                raise ConfigError(f"Output folder {out} is not a jgrok results folder; choose another --out.")
            remove_results(out)
        created = None
        for folder in [out, *out.parents]:  # the outermost folder that does not exist yet
            if folder.exists():
                break
            created = folder
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except UserError:
        raise
    except OSError as e:
        raise StorageError(f"Cannot write to output folder {out} ({e.strerror}); choose another --out.") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"--out {str(out)!r} is not a usable folder name.") from None
    return created


def remove_results(out: Path) -> None:
    """Delete jgrok's own entries of a results folder (and nothing else)."""
    for name in RESULT_ENTRIES:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def disk_bytes(progs: list, checkpoint_every: int) -> int:
    """Disk space a scan needs at its peak: per program the checkpoints on disk at once (the two kept plus the one
    being written; one plus a final one without --checkpoint-every) and metrics.npz, plus room for TensorBoard logs
    and plots. A checkpoint is every run's training state and its curves so far, plus Orbax's metadata."""
    import jax

    from jgrok import engine, grid, train
    from jgrok.io import checkpoint

    copies = checkpoint.KEEP + 1 if checkpoint_every else 2
    total = 8 << 20  # TensorBoard logs, plots, summary, config: a few MiB at most for thousands of runs
    for prog, _, members in progs:
        state = jax.eval_shape(jax.vmap(lambda hp, prog=prog: train.init_run(prog, hp)), grid.hyper(prog, members[:1]))
        n_evals = len(engine.eval_steps(prog.cfg.train.steps, prog.cfg.train.eval_every))
        curves = 4 * (2 * prog.cfg.train.steps + n_evals * len(train.eval_keys(prog)) + 2)
        per_run = checkpoint.tree_bytes(state) + curves
        ckpt = len(members) * per_run * 11 // 10 + (256 << 10)
        total += copies * ckpt + len(members) * curves
    return total


def check_space(out: Path, need: int) -> None:
    """StorageError before training when the output location has less free space than the scan needs."""
    try:
        free = shutil.disk_usage(out).free
    except OSError:
        return
    if free < need:
        raise StorageError(f"Output folder {out} has {human_bytes(free)} free but this scan writes about "
                           f"{human_bytes(need)} (checkpoints and results); free space or choose another --out.")


def main(argv=None, *, hard_exit: bool = False) -> int:
    """Run the command line; returns the exit code: 0 done, 2 a mistake or storage fault (one sentence on
    stderr), 130 stopped by SIGINT/SIGTERM (after saving a checkpoint when training had begun).

    hard_exit (set by the command line, not by in-process callers): a second SIGINT/SIGTERM ends the process at
    once with ``os._exit(130)`` instead of raising KeyboardInterrupt, so that neither a chunk still running on the
    device nor the runtime's shutdown waiting for it can delay the exit; checkpoints are written to a temporary
    folder and renamed, so the newest complete one stays readable."""
    # asked: a stop was requested; training: the scan has not finished training; clock: the engine's ChunkClock of
    # the chunk being waited for (set once training starts)
    stop = {"asked": False, "training": True, "clock": None}

    def ask_stop(signum, frame):
        if stop["asked"]:  # asked twice: stop at once (the newest complete checkpoint stays readable)
            print(f"\n{signal.Signals(signum).name} again: stopping now without saving.", file=sys.stderr, flush=True)
            if hard_exit:
                os._exit(130)
            raise KeyboardInterrupt
        stop["asked"] = True
        if stop["training"]:
            running = stop["clock"].running_s() if stop["clock"] is not None else None
            ran = "" if running is None else f", which has run for {running:.1f} s"
            print(f"\n{signal.Signals(signum).name}: stopping; a checkpoint is saved after the current chunk{ran} "
                  "(send it again to stop at once)...", file=sys.stderr, flush=True)
        else:  # training is over: the results are being written, which takes seconds
            print(f"\n{signal.Signals(signum).name}: training is done; finishing the results first "
                  "(send it again to stop at once)...", file=sys.stderr)

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _main(argv, stop)
    except UserError as e:
        print(f"jgrok.scan: error: {one_line(e)}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        return 130
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@dataclasses.dataclass
class Plan:
    """What a scan trains: its config, the runs of this process and their programs, the lane width W (one for
    every program of the scan), the --only text to record, this process's index and the number of processes."""
    cfg: config_mod.Config
    rows: list
    progs: list
    W: int
    only: str | None
    proc: int = 0
    n_proc: int = 1
    looks: list | None = None  # --until-decided: the runs of each look (jgrok.sequential.look_rows), else None
    starts: dict = dataclasses.field(default_factory=dict)  # --init-from parameters, read once

    @property
    def process(self) -> tuple[int, int] | None:
        return (self.proc, self.n_proc) if self.n_proc > 1 else None


def _main(argv, stop) -> int:
    args = build_parser().parse_args(argv)
    if args.resume is not None:
        saved = _resume_folder(args)
        if saved is None:
            return 0
        out, cfg, only = Path(args.resume), saved.config, saved.only
        proc, n_proc = 0, 1
    else:
        out, cfg, only = None, resolve(args), args.only
        proc, n_proc = processes(args)
    plan = make_plan(cfg, only, proc, n_proc, check_tb=args.resume is None)
    if args.dry_run:
        print_dry_run(plan)
        return 0
    # regression data is read (or generated into its cache) before the output folder is made, so a bad data file
    # leaves nothing behind
    for p, t, _ in plan.progs:  # data read from files (regression: which codes, and how many were left out)
        line = p.kind.describe_data(t)
        if line is not None:
            print(f"{p.cfg.task.name}: {line}", file=sys.stderr)
    need = disk_bytes(plan.progs, plan.cfg.engine.checkpoint_every)
    if out is None:
        out = _new_out(args, plan, need)
    else:
        check_space(out, need // 2)  # the checkpoints already there are replaced one by one, not added to
    trained = _train_looks(args, out, plan, stop) if plan.looks else _train(args, out, plan, stop)
    if trained is None:
        return 130
    _finish(out, plan, *trained)
    return 0


def _resume_folder(args):
    """The results folder that ``--resume OUT`` continues (jgrok.open_scan), or None when it is finished."""
    given = [a for a in ("config", "out", "overwrite", "only", "set", *AXIS_FLAGS, *FIELD_FLAGS) if getattr(args, a)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"--resume continues a scan with its saved config; drop {flag} "
                          "(or start a new scan with --out).")
    out = Path(args.resume)
    try:
        ok = (out / "config.yaml").is_file()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{out} is not a jgrok scan that can be resumed (it has no config.yaml).")
    if (out / "summary.csv").is_file():  # written last and atomically: the scan finished
        print(f"{out} is already finished; nothing to do.")
        return None
    from jgrok.results_folder import open_scan

    saved = open_scan(out)
    saved.config  # noqa: B018 - a config that cannot be read is reported now
    return saved


def make_plan(cfg, only, proc: int, n_proc: int, check_tb: bool = True) -> Plan:
    """The runs of this process, their programs (with the --init-from parameters) and the lane width W."""
    # heavy imports after argument checks, so mistakes are reported at once
    from jgrok import engine, grid, results_folder, runids
    from jgrok.io import tb

    rows = runids.keep(grid.expand(cfg), only)
    config_mod.check_looks(cfg)
    looks = None
    if cfg.sequential.until_decided and only is not None:  # e.g. --config OUT/config.yaml --only 17
        if check_tb:
            print("jgrok.scan: --only trains the runs it names as an ordinary scan, without the looks of "
                  "--until-decided.", file=sys.stderr)
        cfg = dataclasses.replace(cfg, sequential=config_mod.SequentialConfig())
    if cfg.sequential.until_decided:
        if n_proc > 1:
            raise ConfigError("--until-decided decides between looks in one process; run it without "
                              "--num-processes or --distributed.")
        from jgrok import sequential

        looks = sequential.look_rows(cfg, rows)
    if check_tb:  # checked when the scan began (a shard's saved --only holds its own runs alone)
        tb.check_runs(cfg.engine.tb_runs, [r["run"] for r in rows])
    n_dev = engine.n_devices()
    starts: dict = {}  # --init-from parameters, read once
    # one lane width for the whole scan (recorded in config.yaml), so that --config OUT/config.yaml --only ...
    # reproduces any of its runs; with several processes it is sized for the largest share, so equal machines
    # choose equal W; a scan in looks trains one look at a time
    sized = looks[0] if looks else rows
    W = cfg.engine.wave_size or min(engine.choose_wave_size(p, -(-len(m) // n_proc), n_dev)
                                    for p, _, m in results_folder.programs(cfg, sized, starts))
    if n_proc > 1:  # this process trains every n_proc-th run of the table
        rows = rows[proc::n_proc]
        if not rows:
            raise ConfigError(f"Process {proc} of {n_proc} has no runs; the scan has fewer runs than processes.")
        only = ",".join(str(r["run"]) for r in rows)
    progs = results_folder.programs(cfg, rows, starts)
    from jgrok import train

    for prog, _, _ in progs:
        train.stop_rule(prog)  # an unknown stop metric is a mistake reported before anything is written
    return Plan(cfg, rows, progs, W, only, proc, n_proc, looks, starts)


def print_dry_run(plan: Plan) -> None:
    """--dry-run: the resolved config, the runs, and per program its size, memory and time estimate."""
    from jgrok import engine

    cfg, n_dev, W = plan.cfg, engine.n_devices(), plan.W
    print(config_mod.dump(cfg), end="")
    print(f"# runs: {len(plan.rows)} in {len(plan.progs)} program(s) on {engine.platform()}")
    for line in runs_table(plan.rows):
        print("#   " + line)
    for i, (prog, table, members) in enumerate(plan.progs):
        print(f"# program {i}: {program_title(plan.rows, members)}")
        per = engine.per_run_bytes(prog)
        mem = f"estimated device memory {human_bytes(per)} per run, {human_bytes(per * W)} per device"
        if prog.kind.epochs:
            tr = prog.cfg.train
            print(f"#   {len(members)} runs, {prog.n_params:,} parameters per run (ResNet width {prog.cfg.model.width}, "
                  f"{prog.cfg.model.blocks} blocks, {prog.n_inputs} input features), {table.describe()}; "
                  f"{config_mod.updates_per_epoch(tr, prog.n_train)} updates per epoch, {tr.steps} updates, "
                  f"evaluation every {tr.eval_every} updates; lanes W = {W} x {n_dev} device(s), {mem}")
        else:
            print(f"#   {len(members)} runs, {prog.n_params:,} parameters per run ({prog.cfg.model.kind}), {prog.n_rows} pairs "
                  f"({split_sizes(prog, members)}), lanes W = {W} x {n_dev} device(s), {mem}")
        print("#   " + time_estimate(prog, len(members), W, n_dev))
    if plan.looks:
        print("# " + looks_design(plan))
    print(f"# disk: about {human_bytes(disk_bytes(plan.progs, cfg.engine.checkpoint_every))} at most "
          "(checkpoints and results)")


def program_title(rows: list[dict], members: list[dict]) -> str:
    """'x_plus_y / adamw d_model=64 n_layers=2, runs 12:16': a program of the dry run, named by its task, its
    optimiser, and the values of the other program axes (jgrok.axes) that vary in the scan, with its run ids."""
    from jgrok import rungroup, runids

    shown = [a.name for a in axes.program() if a.name not in ("task", "optimizer", "variant")
             and len({rungroup.value_text(r[a.name]) for r in rows}) > 1]
    r = members[0]
    variant = f" / variant {r['variant']}" if r.get("variant") else ""
    values = "".join(f" {a}={rungroup.value_text(r[a])}" for a in shown)
    return f"{r['task']} / {r['optimizer']}{variant}{values}, runs {runids.text(m['run'] for m in members)}"


def split_sizes(prog, members: list[dict]) -> str:
    """The dry run's train / validation sizes of a program's runs, per training fraction where they differ."""
    from jgrok import rungroup, train

    sizes = {r["fraction"]: train.row_n_train(prog, r) for r in members}
    if len(sizes) == 1:
        (n,) = sizes.values()
        return f"{n} train, {prog.n_rows - n} validation"
    return "; ".join(f"fraction={rungroup.value_text(f)}: {n} train, {prog.n_rows - n} validation"
                     for f, n in sorted(sizes.items()))


def looks_design(plan: Plan) -> str:
    """The dry run's line for a scan with --until-decided: what is compared, the looks and their boundaries."""
    from jgrok import sequential

    s = plan.cfg.sequential
    K = len(plan.looks)
    c = sequential.boundaries(K, s.alpha, s.spending)
    a, b = (f"{s.until_decided}={v}" for v in plan.cfg.grid[s.until_decided])
    return (f"until decided: {a} against {b} in {K} looks of {s.look_every} seeds per group "
            f"({len(plan.looks[0])} runs each), {sequential.SPENDING_NAMES[s.spending]} boundaries |Z| >= "
            f"{' '.join(f'{x:.2f}' for x in c)} ({sequential.TEST_NAMES[s.test]} test, alpha {s.alpha:g}); "
            "training stops at the first look that crosses")


def _new_out(args, plan: Plan, need: int) -> Path:
    """The output folder of a new scan, made and holding config.yaml; if it cannot take the scan, nothing is left
    behind."""
    out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("scan-%Y%m%d-%H%M%S")
    if plan.n_proc > 1:
        top = out
        if top.exists() and not top.is_dir():
            raise ConfigError(f"--out {top} is a file; choose a folder path.")
        out = top / "shards" / f"process_{plan.proc}"
    created = prepare_out(out, args.overwrite)
    try:  # nothing is trained yet: if the folder cannot take the scan, leave nothing behind
        check_space(out, need)
        write_config(out, plan.cfg, plan.W, plan.only, plan.process)
    except (UserError, OSError) as e:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        else:
            remove_results(out)
        if isinstance(e, OSError):
            raise StorageError(f"Cannot write to output folder {out} ({e.strerror}); "
                               "choose another --out.") from None
        raise
    return out


def _train(args, out: Path, plan: Plan, stop: dict, scan_out: Path | None = None):
    """Train every program and write the results files: (the programs' results, seconds of training), or None when
    stopped by a signal (checkpoint saved). A W that does not fit in device memory is halved (and recorded in
    config.yaml) until it fits; ``plan.W`` and ``plan.cfg`` end as the ones used. scan_out: the folder to resume
    (a look's scan, when ``out`` is one of its looks)."""
    from jgrok import engine
    from jgrok.io import checkpoint, results, tb

    stop["clock"] = engine.ChunkClock()
    stop["training"] = True
    resume_hint = f"python -m jgrok.scan --resume {scan_out or out}"
    t0 = time.perf_counter()
    logger = None
    told = False
    try:
        while True:
            logger = tb.Logger(out, plan.rows, plan.cfg.engine.tb_runs, results.group_axes(plan.rows)) \
                if plan.cfg.engine.tensorboard else None
            try:
                done = [engine.train_program(p, t, m, plan.W, progress=not args.quiet,
                                             on_chunk=logger.log if logger else None,
                                             ckpt=checkpoint.manager(out, i, cleanup=True),
                                             checkpoint_every=plan.cfg.engine.checkpoint_every,
                                             should_stop=lambda: stop["asked"], clock=stop["clock"])
                        for i, (p, t, m) in enumerate(plan.progs)]
                stop["training"] = False
                break
            except engine.Interrupted as e:
                if logger is not None:
                    logger.close()
                print(f"Stopped after {e.step} updates; checkpoint saved. Resume with: {resume_hint}", file=sys.stderr)
                return None
            except engine.OutOfMemory as e:
                if logger is not None:
                    logger.close()
                told = _narrower(args, out, plan, e, told)
        cfg_text = (out / "config.yaml").read_text()
        wall = time.perf_counter() - t0
        record_rates(done, engine.n_devices())
        summary = results.save_scan(out, cfg_text, done)
        if logger is not None:
            logger.close(summary)
    except (OSError, StorageError) as e:
        if logger is not None:
            logger.close_quietly()
        if isinstance(e, StorageError):
            raise
        raise StorageError(f"Could not write to {out} ({checkpoint.reason(e)}); the checkpoints written so far are "
                           f"intact, so free space (or fix the folder) and resume with: {resume_hint}") from None
    return done, wall


def _train_looks(args, out: Path, plan: Plan, stop: dict):
    """--until-decided: train the looks one after another, each a complete results folder OUT/looks/look_<k>/
    (a look finished before a resume is read back, not trained again), and after each apply the sequential rule
    (jgrok.sequential) to every look so far; stop at the first look that decides. Then OUT/sequential.json and
    the merged results files. Returns (the programs trained now, seconds of training, the Decision), or None when
    stopped by a signal."""
    from jgrok import results_folder, runids, sequential
    from jgrok.io import results

    done, wall, summary, decision = [], 0.0, [], None
    K = len(plan.looks)
    for k, rows in enumerate(plan.looks):
        where = out / "looks" / f"look_{k}"
        if not (where / "summary.csv").is_file():
            if stop["asked"]:
                print(f"Stopped before look {k + 1} of {K}; resume with: python -m jgrok.scan --resume {out}",
                      file=sys.stderr)
                return None
            only = runids.text(r["run"] for r in rows)
            look = Plan(plan.cfg, rows, results_folder.programs(plan.cfg, rows, plan.starts), plan.W, only)
            where.mkdir(parents=True, exist_ok=True)
            if not (where / "config.yaml").is_file():
                write_config(where, plan.cfg, plan.W, only, None)
            if not args.quiet:
                print(f"Look {k + 1} of {K}: seeds {k * plan.cfg.sequential.look_every}.."
                      f"{(k + 1) * plan.cfg.sequential.look_every - 1} of each run group ({len(rows)} runs)",
                      file=sys.stderr)
            trained = _train(args, where, look, stop, scan_out=out)
            if trained is None:
                return None
            if look.W != plan.W:  # narrowed to fit in memory: every later look trains at that W
                plan.W, plan.cfg = look.W, look.cfg
                write_config(out, plan.cfg, plan.W, None, None)
            done += trained[0]
            wall += trained[1]
        summary += results.parse_summary(results.read_summary(where / "summary.csv"))
        decision = sequential.decide(plan.cfg, plan.looks[: k + 1], summary)
        print(decision.look_line(k + 1), file=sys.stderr)
        if decision.finished:
            break
    stop["training"] = False
    parts = [out / "looks" / f"look_{k}" for k in range(decision.looks_done)]
    trained_runs = [r["run"] for lk in plan.looks[: decision.looks_done] for r in lk]
    results.atomic_text(out / "sequential.json", json.dumps(decision.to_dict(), indent=1) + "\n")
    only = None if decision.looks_done == K else runids.text(trained_runs)
    results.merge_parts(out, parts, config_text(plan.cfg, plan.W, only, None))
    plan.rows = [r for lk in plan.looks[: decision.looks_done] for r in lk]
    return done, wall, decision


def _narrower(args, out: Path, plan: Plan, e, told: bool) -> bool:
    """After an out-of-memory error at W lanes: W / 2 from now on (recorded in config.yaml), the wider attempt's
    checkpoints and logs removed; ConfigError when W cannot shrink (1 lane, or a resumed scan's checkpoints).
    Returns whether the user has been told."""
    if args.resume is not None or e.lanes == 1:
        raise ConfigError(f"The scan does not fit in device memory at W = {e.lanes} lanes"
                          + (" (the W of its checkpoints); resume it on a device with more memory."
                             if args.resume is not None else "; make the model or batch smaller.")) from None
    plan.W = e.lanes // 2
    if not told:
        print(f"jgrok.scan: {e.lanes} lanes per wave do not fit in device memory; using fewer "
              f"(W = {plan.W}, recorded in {out / 'config.yaml'}).", file=sys.stderr)
    for name in ("checkpoints", "tb"):  # both belong to the wider attempt
        shutil.rmtree(out / name, ignore_errors=True)
    plan.cfg = config_mod.set_path(plan.cfg, "engine.wave_size", str(plan.W))
    write_config(out, plan.cfg, plan.W, plan.only, plan.process)
    return True


def _updates_trained(done: list) -> tuple[int, int]:
    """(seed-steps this process trained, runs that ended before the budget). A run that stopped or diverged counts
    the updates it did, not the budget; a resumed scan counts from its checkpoint, not from update 0."""
    import numpy as np

    from jgrok import engine

    n_steps = n_early = 0
    for d in done:
        budget, R = d.prog.cfg.train.steps, len(d.rows)
        stopped = d.stopped_step if d.stopped_step is not None else np.full(R, -1)
        end = engine.end_step(np.asarray(d.diverged_step), np.asarray(stopped))
        n_early += int(((end >= 0) & (end < budget)).sum())
        n_steps += int(np.maximum(np.where(end >= 0, end, budget) - d.start_step, 0).sum())
    return n_steps, n_early


def _finish(out: Path, plan: Plan, done: list, wall: float, decision=None) -> None:
    """The plots, then the end-of-scan printout (with --until-decided, ``decision`` is where the looks ended)."""
    from jgrok import distribution, plots
    from jgrok.io import checkpoint, results

    try:
        plots.make_plots(out)
    except OSError as e:
        raise StorageError(f"The results in {out} are complete but the plots could not be written "
                           f"({checkpoint.reason(e)}); free space and run: python -m jgrok.report {out}") from None
    summary = results.read_summary(out / "summary.csv")
    budget = plan.progs[0][0].cfg.train.steps  # in updates (resolved from train.epochs where the config counts epochs)
    n_steps, n_early = _updates_trained(done)
    resumed_at = sorted({d.start_step for d in done})
    n_runs = len(plan.rows)
    trained = f"{n_runs} runs x {'up to ' if n_early else ''}{budget} updates"
    if n_early:
        trained += f" ({n_early} ended early: stop rule or divergence)"
    if resumed_at and resumed_at != [0]:
        trained += f", resumed at update {'/'.join(map(str, resumed_at))}"
    now = sum(len(d.rows) for d in done)
    if now < n_runs:  # a scan in looks resumed after some of its looks had finished
        trained += f", {now} of them in this session"
    if n_early or resumed_at != [0]:  # then the seed-steps are not runs x budget: say how many
        trained += f": this process trained {n_steps:,} seed-steps"
    trained += f" in {wall:.1f} s"
    speed = f" ({n_steps / wall:,.0f} seed-steps/s including compilation)" if wall > 0 else ""
    print(f"\n{trained}{speed} -> {out}  "
          f"(plots in {out / 'plots'}; python -m jgrok.report {out} writes report.md)")
    rate = n_steps / wall if n_steps and wall > 0 else None
    if rate:  # the rate jgrok.power prices extra seeds at (the newest process's)
        results.atomic_text(out / "timing.json", json.dumps(dict(seed_steps=int(n_steps), wall_s=round(wall, 3),
                                                                 date=time.strftime("%Y-%m-%d"))) + "\n")
    typed = results.parse_summary(summary)
    for line in distribution.distribution_lines(typed, budget):
        print(line)
    for line in distribution.comparison_lines(typed, budget, rate):
        print(line)
    if decision is not None:
        print(f"Until decided ({decision.design()}): {decision.sentence()}")
    print(f"Lane width W = {plan.W}: {results.W_NOTE}")
    if plan.n_proc > 1:
        print(f"Process {plan.proc} of {plan.n_proc} wrote its shard to {out}; once every process has finished, "
              f"python -m jgrok.report {out.parent.parent} merges the shards.")


def human_bytes(n: float) -> str:
    """'512 B', '3.40 KiB', '22.0 GiB', '512 MiB': binary units, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            break
        n /= 1024
    digits = 0 if unit == "B" or n >= 100 else 1 if n >= 10 else 2
    return f"{n:.{digits}f} {unit}"


def runs_table(rows: list[dict], edge: int = 10) -> list[str]:
    """'run <id>: <axis>=<value> ...' for every run (the run id is what --only and --tb-runs take), with the axes
    that vary and the seeds; the first and the last ``edge`` runs when there are more than 2 x edge."""
    from jgrok import rungroup

    shown = ["task"] * (len({r["task"] for r in rows}) > 1) + rungroup.axes(rows) + rungroup.seed_columns(rows)
    width = len(str(max(r["run"] for r in rows)))
    line = lambda r: f"run {r['run']:>{width}}: " + " ".join(  # noqa: E731
        f"{a}={rungroup.value_text(r[a])}" for a in shown)
    if len(rows) <= 2 * edge:
        return [line(r) for r in rows]
    return ([line(r) for r in rows[:edge]] + [f"... ({len(rows) - 2 * edge} runs more) ..."]
            + [line(r) for r in rows[-edge:]])


def time_estimate(prog, n_runs: int, W: int, n_dev: int) -> str:
    """The dry run's compile and train estimate from a past scan of the same program (jgrok.io.rates)."""
    from jgrok import engine
    from jgrok.io import rates

    K = min(prog.cfg.engine.chunk, prog.cfg.train.steps)
    entry = rates.lookup(rates.key((prog.key, K), W, engine.platform()))
    if entry is None:
        return ("time: no estimate (no scan of this program at this W has finished on this machine yet; the first "
                "progress line after compilation shows the rate)")
    comp, total = rates.estimate(entry, n_runs, prog.cfg.train.steps, W, n_dev)
    return (f"time: about {comp:.0f} s for the first chunk (compilation included) and {total:.0f} s in all, from "
            f"{entry['seed_steps_per_s']:,.0f} seed-steps/s measured on {entry['date']} over {entry['runs']} runs "
            "(early stops make it shorter)")


def record_rates(done: list, n_dev: int) -> None:
    """Keep each program's measured speed for later dry runs (jgrok.io.rates)."""
    from jgrok import engine
    from jgrok.io import rates

    for d in done:
        K = min(d.prog.cfg.engine.chunk, d.prog.cfg.train.steps)
        if d.start_step == 0:  # a resumed scan's first chunk restores rather than starts
            rates.record(rates.key((d.prog.key, K), d.lanes, engine.platform()), d.first_chunk_s,
                         d.rate, len(d.rows), K)


def write_config(out: Path, cfg, W: int, only, process: tuple[int, int] | None) -> None:
    """OUT/config.yaml: the resolved config with the lane width W actually used (and the runs of a partial scan)."""
    (out / "config.yaml").write_text(config_text(cfg, W, only, process))


def config_text(cfg, W: int, only, process: tuple[int, int] | None) -> str:
    """The text of config.yaml (``write_config``)."""
    if cfg.engine.wave_size != W:
        cfg = config_mod.set_path(cfg, "engine.wave_size", str(W))
    extra = {"lanes": W}
    if only is not None:
        extra["only"] = str(only)
    if process is not None:
        extra["process"] = f"{process[0]}/{process[1]}"
    return config_mod.dump(cfg, extra)


if __name__ == "__main__":
    sys.exit(main(hard_exit=True))
