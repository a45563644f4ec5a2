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
import shutil
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from jgrok import config as config_mod
from jgrok.errors import ConfigError

RESULT_ENTRIES = ("config.yaml", "metrics.npz", "metrics.npz.tmp", "summary.csv", "final_info.json", "plots", "tb",
                  "checkpoints", "report.md", "analysis")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one sentence, exit 2, no usage dump
        raise ConfigError(f"{message[0].upper()}{message[1:]} (see --help).")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m jgrok.scan", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--config", help="YAML file or preset name in configs/ (default: the AI-Scientist template)")
    a("--task", help="task name, or a comma list (an axis); see the README's task table")
    a("--seeds", help="model seeds: A:B (half-open) or a comma list")
    a("--data-seeds", help="seeds of the train/val split and the batch order together (an axis)")
    a("--split-seeds", help="seeds of the train/val split alone (an axis)")
    a("--order-seeds", help="seeds of the batch order alone (an axis)")
    a("--wd", help="weight decay values (comma list)")
    a("--lr", help="learning rates (comma list)")
    a("--init", help="init schemes (comma list): default, xavier_uniform, ...")
    a("--init-scale", help="initial-parameter multipliers (comma list)")
    a("--optimizer", help="optimisers (comma list): adamw, adam_l2, sgd")
    a("--filter", help="Grokfast gradient filters (comma list): none, ema, ma")
    a("--filter-alpha", help="EMA filter alpha values (comma list)")
    a("--filter-lambda", help="filter lambda values (comma list)")
    a("--filter-window", help="MA filter windows (comma list)")
    a("--steps", help="updates per run")
    a("--batch-size", help="training batch size")
    a("--eval-every", help="updates between evaluations")
    a("--precision", help="fp32 (default), tf32 or bf16")
    a("--out", help="results folder (default: runs/scan-<date>-<time>)")
    a("--overwrite", action="store_true", help="replace an existing results folder")
    a("--only", help="train only these run ids of the grid: comma list and A:B ranges")
    a("--wave-size", help="lanes W per compiled wave (default: chosen from device memory, then recorded)")
    a("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config field, e.g. train.sampling=full")
    a("--tb-runs", help="runs whose full per-run scalars go to TensorBoard (default 0:16)")
    a("--resume", metavar="OUT", help="continue an interrupted scan from its last checkpoint")
    a("--checkpoint-every", help="updates between checkpoints (default: only at the end)")
    a("--stop-when", metavar="RULE", help="stop a run when an evaluated metric meets RULE, e.g. 'val_acc>0.99'")
    a("--patience", help="consecutive evaluations that must meet --stop-when before a run stops (default 1)")
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


AXIS_FLAGS = {  # flag attribute -> grid axis
    "task": "task", "seeds": "seed", "data_seeds": "data_seed", "split_seeds": "split_seed",
    "order_seeds": "order_seed", "wd": "wd", "lr": "lr", "init": "init", "init_scale": "init_scale",
    "optimizer": "optimizer", "filter": "filter", "filter_alpha": "filter_alpha", "filter_lambda": "filter_lambda",
    "filter_window": "filter_window",
}
FIELD_FLAGS = {"tb_runs": "engine.tb_runs", "checkpoint_every": "engine.checkpoint_every", "steps": "train.steps", "batch_size": "train.batch_size", "eval_every": "train.eval_every",
               "precision": "train.precision", "wave_size": "engine.wave_size", "stop_when": "train.stop_when",
               "patience": "train.patience"}


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
    axes = {}
    for attr, axis in AXIS_FLAGS.items():
        value = getattr(args, attr)
        if value is not None:
            flag = "--" + attr.replace("_", "-")
            axes[axis] = parse_values(flag, value, seeds=axis in config_mod.SEED_AXES)
    if "data_seed" in axes:  # a seed flag replaces the preset's other kind of data-seed axes
        cfg = dataclasses.replace(cfg, grid={k: v for k, v in cfg.grid.items() if k not in ("split_seed", "order_seed")})
    if "split_seed" in axes or "order_seed" in axes:
        cfg = dataclasses.replace(cfg, grid={k: v for k, v in cfg.grid.items() if k != "data_seed"})
    cfg = config_mod.with_grid(cfg, **axes) if axes else cfg
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


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to touch an existing folder unless asked; with --overwrite remove only jgrok's own entries."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder path.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"Output folder {out} already exists; choose another --out or pass --overwrite.")
        if not (out / "config.yaml").is_file():
            raise ConfigError(f"Output folder {out} is not a jgrok results folder; choose another --out.")
        for name in RESULT_ENTRIES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"Cannot write to output folder {out} ({e.strerror}); choose another --out.") from None


def main(argv=None) -> int:
    try:
        return _main(argv)
    except ConfigError as e:
        print(f"jgrok.scan: error: {e}", file=sys.stderr)
        return 2


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    only = args.only
    if args.resume is not None:
        out = Path(args.resume)
        if not (out / "config.yaml").is_file() or not (out / "checkpoints").is_dir():
            raise ConfigError(f"{out} is not a jgrok scan that can be resumed (it needs config.yaml and checkpoints/).")
        if (out / "summary.csv").is_file():
            print(f"{out} is already finished; nothing to do.")
            return 0
        saved = config_mod.load_yaml(out / "config.yaml")
        only = saved.pop("only", None)
        saved.pop("process", None)
        cfg = config_mod.from_dict(saved)
        proc, n_proc = 0, 1
    else:
        cfg = resolve(args)
        proc, n_proc = processes(args)

    # heavy imports after argument checks, so mistakes are reported at once
    from jgrok import engine, grid, train
    from jgrok.io import results

    rows = grid.expand(cfg)
    if only is not None:
        keep = set(grid.parse_ids(str(only), len(rows)))
        rows = [r for r in rows if r["run"] in keep]
    n_dev = engine.n_devices()
    # one lane width for the whole scan (recorded in config.yaml), so that --config OUT/config.yaml --only ...
    # reproduces any of its runs; with several processes it is sized for the largest share, so equal machines
    # choose equal W
    W = cfg.engine.wave_size or min(engine.choose_wave_size(p, -(-len(m) // n_proc), n_dev)
                                    for p, _, m in grid.programs(cfg, rows))
    if n_proc > 1:  # this process trains every n_proc-th run of the table
        rows = rows[proc::n_proc]
        if not rows:
            raise ConfigError(f"Process {proc} of {n_proc} has no runs; the scan has fewer runs than processes.")
        only = ",".join(str(r["run"]) for r in rows)
    progs = grid.programs(cfg, rows)
    for prog, _, _ in progs:
        train.stop_rule(prog)  # an unknown stop metric is a mistake reported before anything is written
    lanes = {id(p): W for p, _, _ in progs}

    if args.dry_run:
        print(config_mod.dump(cfg), end="")
        print(f"# runs: {len(rows)} in {len(progs)} program(s) on {engine.platform()}")
        for prog, table, members in progs:
            W = lanes[id(prog)]
            per = engine.per_run_bytes(prog)
            print(f"# {prog.cfg.task.name} / {prog.cfg.optim.name}: {len(members)} runs, "
                  f"{prog.n_params:,} parameters per run, {table.n_pairs} pairs ({table.n_train} train), "
                  f"lanes W = {W} x {n_dev} device(s), estimated device memory "
                  f"{per / 2**20:.1f} MiB per run, {per * W / 2**30:.2f} GiB per device")
        return 0

    if args.resume is None:
        out = Path(args.out) if args.out else Path("runs") / datetime.now().strftime("scan-%Y%m%d-%H%M%S")
        if n_proc > 1:
            top = out
            if top.exists() and not top.is_dir():
                raise ConfigError(f"--out {top} is a file; choose a folder path.")
            out = top / "shards" / f"process_{proc}"
        prepare_out(out, args.overwrite)
        write_config(out, cfg, W, only, (proc, n_proc) if n_proc > 1 else None)

    from jgrok.io import checkpoint

    stop = {"asked": False}

    def ask_stop(signum, frame):
        stop["asked"] = True
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint after the current chunk...", file=sys.stderr)

    old = {s: signal.signal(s, ask_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    from jgrok.io import tb

    t0 = time.perf_counter()
    told = False
    try:
        while True:
            logger = tb.Logger(out, rows, cfg.engine.tb_runs, results.group_axes(rows))
            try:
                done = [engine.train_program(p, t, m, lanes[id(p)], progress=not args.quiet, on_chunk=logger.log,
                                             ckpt=checkpoint.manager(out, i),
                                             checkpoint_every=cfg.engine.checkpoint_every,
                                             should_stop=lambda: stop["asked"])
                        for i, (p, t, m) in enumerate(progs)]
                break
            except engine.OutOfMemory as e:
                logger.close()
                if args.resume is not None or e.lanes == 1:
                    raise ConfigError(f"The scan does not fit in device memory at W = {e.lanes} lanes"
                                      + (" (the W of its checkpoints); resume it on a device with more memory."
                                         if args.resume is not None else "; make the model or batch smaller.")) from None
                W = e.lanes // 2
                if not told:
                    print(f"jgrok.scan: {e.lanes} lanes per wave do not fit in device memory; using fewer "
                          f"(W = {W}, recorded in {out / 'config.yaml'}).", file=sys.stderr)
                    told = True
                lanes = {id(p): W for p, _, _ in progs}
                for name in ("checkpoints", "tb"):  # both belong to the wider attempt
                    shutil.rmtree(out / name, ignore_errors=True)
                cfg = config_mod.set_path(cfg, "engine.wave_size", str(W))
                write_config(out, cfg, W, only, (proc, n_proc) if n_proc > 1 else None)
    except engine.Interrupted as e:
        print(f"Stopped after {e.step} updates; checkpoint saved. Resume with: python -m jgrok.scan --resume {out}",
              file=sys.stderr)
        logger.close()
        return 130
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    cfg_text = (out / "config.yaml").read_text()
    wall = time.perf_counter() - t0
    logger.close(results.save_scan(out, cfg_text, done))
    from jgrok import plots

    plots.make_plots(out)
    summary = results.read_summary(out / "summary.csv")
    n_steps = sum(len(d.rows) for d in done) * cfg.train.steps
    print(f"\n{len(rows)} runs x {cfg.train.steps} updates in {wall:.1f} s "
          f"({n_steps / wall:,.0f} seed-steps/s including compilation) -> {out}  "
          f"(plots in {out / 'plots'}; python -m jgrok.report {out} writes report.md)")
    for line in results.distribution_lines(_typed(summary), cfg.train.steps):
        print(line)
    if n_proc > 1:
        print(f"Process {proc} of {n_proc} wrote its shard to {out}; once every process has finished, "
              f"python -m jgrok.report {out.parent.parent} merges the shards.")
    return 0


def write_config(out: Path, cfg, W: int, only, process: tuple[int, int] | None) -> None:
    """OUT/config.yaml: the resolved config with the lane width W actually used (and the runs of a partial scan)."""
    if cfg.engine.wave_size != W:
        cfg = config_mod.set_path(cfg, "engine.wave_size", str(W))
    extra = {"lanes": W}
    if only is not None:
        extra["only"] = str(only)
    if process is not None:
        extra["process"] = f"{process[0]}/{process[1]}"
    (out / "config.yaml").write_text(config_mod.dump(cfg, extra))


def _typed(summary: list[dict]) -> list[dict]:
    out = []
    for r in summary:
        d = dict(r)
        for k in ("run", "seed", "step_val_acc_99", "step_train_acc_99", "reached_val_99"):
            d[k] = int(d[k])
        out.append(d)
    return out


if __name__ == "__main__":
    sys.exit(main())
