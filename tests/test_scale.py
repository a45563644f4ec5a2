"""Early stop + compaction, many devices, many processes, device-memory back-off.

Every check here is bit-exact: at the same lane width W a run's numbers must not depend on compaction, on the
number of devices, on the process that trained it or on an out-of-memory retry.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from jgrok import config, engine, grid, report, scan, train
from jgrok.io import checkpoint
from tests.conftest import TINY_ARGS, tiny

ROOT = Path(__file__).resolve().parents[1]


def programs(cfg):
    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    return prog, table, members


def long_tiny(**changes):
    cfg = config.set_path(tiny(seed=[0, 1, 2, 3, 4, 5]), "train.steps", "36")
    for k, v in changes.items():
        cfg = config.set_path(cfg, k, v)
    return cfg


@pytest.fixture(scope="module")
def reference():
    """The 6 runs without a stop rule: 9 evaluations, 6 chunks, waves of 2 lanes."""
    prog, table, members = programs(long_tiny())
    return engine.train_program(prog, table, members, 2, progress=False)


def expected_stop(val_acc_RxE, eval_step, threshold, patience):
    out = []
    for row in val_acc_RxE:
        run = 0
        stop = -1
        for v, s in zip(row, eval_step):
            run = run + 1 if v > threshold else 0
            if run >= patience:
                stop = int(s)
                break
        out.append(stop)
    return np.array(out)


def assert_same(a, b):
    for k in a.metrics:
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)
    np.testing.assert_array_equal(a.step_loss, b.step_loss)
    np.testing.assert_array_equal(a.stopped_step, b.stopped_step)
    np.testing.assert_array_equal(a.diverged_step, b.diverged_step)
    for x, y in zip(jax.tree.leaves(a.final_params), jax.tree.leaves(b.final_params)):
        np.testing.assert_array_equal(x, y)


def counting_chunks(monkeypatch):
    """Count the lanes the compiled chunk is called on."""
    calls = []
    real = train.Program.compiled

    def wrapped(prog, K):
        init, chunk = real(prog, K)

        def counted(state, *args):
            calls.append(state.alive.shape[0])
            return chunk(state, *args)

        return init, counted

    monkeypatch.setattr(train.Program, "compiled", wrapped)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("patience", [1, 2])
def test_stop_rule_stops_where_the_curves_say_and_compaction_changes_nothing(reference, monkeypatch, patience):
    # a threshold that about half of the runs cross at some evaluation, at different times
    t = float(np.median(np.nanmax(reference.metrics["val_acc"], axis=1)))
    rule = f"val_acc>{t:.6f}"
    want = expected_stop(reference.metrics["val_acc"], reference.eval_step, float(f"{t:.6f}"), patience)
    assert (want > 0).any() and (want == -1).any()
    prog, table, members = programs(long_tiny(**{"train.stop_when": rule, "train.patience": str(patience)}))
    calls = counting_chunks(monkeypatch)
    packed = engine.train_program(prog, table, members, 2, progress=False)
    n_packed = sum(calls)
    calls.clear()
    loose = engine.train_program(prog, table, members, 2, progress=False, compact=False)
    assert sum(calls) == 6 * 3 * 2  # 6 chunks x 3 waves x 2 lanes
    assert_same(packed, loose)
    np.testing.assert_array_equal(packed.stopped_step, want)
    stopped = want > 0
    if len(set(want[stopped])) > 1 or stopped.sum() >= 2:
        assert n_packed < sum(calls)  # finished runs stopped costing lanes
    # a stopped run's curves are the unstopped run's curves up to its stop, NaN after
    for r in np.nonzero(stopped)[0]:
        s = want[r]
        keep = reference.eval_step <= s
        np.testing.assert_array_equal(packed.metrics["val_acc"][r, keep], reference.metrics["val_acc"][r, keep])
        assert np.isnan(packed.metrics["val_acc"][r, ~keep]).all() and np.isnan(packed.step_loss[r, s:]).all()
        np.testing.assert_array_equal(packed.step_loss[r, :s], reference.step_loss[r, :s])
    for r in np.nonzero(~stopped)[0]:  # runs that never stopped: the same numbers as without a rule
        np.testing.assert_array_equal(packed.step_loss[r], reference.step_loss[r])


@pytest.mark.slow
def test_resume_after_compaction_is_bit_identical(reference, tmp_path):
    t = float(np.median(np.nanmax(reference.metrics["val_acc"][:, :4], axis=1)))  # stops within 16 updates
    cfg = long_tiny(**{"train.stop_when": f"val_acc>{t:.6f}"})
    prog, table, members = programs(cfg)
    whole = engine.train_program(prog, table, members, 2, progress=False)
    assert (whole.stopped_step > 0).sum() >= 2
    asked = iter([False, False, True])  # stop after the third chunk (18 updates), after compaction
    with pytest.raises(engine.Interrupted) as e:
        engine.train_program(prog, table, members, 2, progress=False, ckpt=checkpoint.manager(tmp_path, 0),
                             should_stop=lambda: next(asked))
    assert e.value.step == 18
    import shutil

    shutil.copytree(tmp_path / "checkpoints", tmp_path / "copy" / "checkpoints")
    for compact, base in ((True, tmp_path), (False, tmp_path / "copy")):  # the checkpoint holds every run
        resumed = engine.train_program(prog, table, members, 2, progress=False, compact=compact,
                                       ckpt=checkpoint.manager(base, 0))
        assert_same(whole, resumed)


@pytest.mark.slow
def test_stop_when_cli_records_rule_and_summary_column(tmp_path, capsys):
    out = tmp_path / "s"
    args = TINY_ARGS + ["--seeds", "0:3", "--stop-when", "weight_norm>0", "--patience", "2", "--out", str(out)]
    assert scan.main(args) == 0
    printed = capsys.readouterr().out  # the rate counts the 8 updates each run did, not the budget of 12
    assert "3 runs x up to 12 updates (3 ended early: stop rule or divergence): this process trained 24 seed-steps" \
        in printed
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["stop_when"] == "weight_norm>0" and saved["train"]["patience"] == 2
    rows = (out / "summary.csv").read_text().splitlines()
    col = rows[0].split(",").index("stopped_step")
    assert [r.split(",")[col] for r in rows[1:]] == ["8"] * 3  # evals at 4 and 8: two in a row
    m = np.load(out / "metrics.npz")
    assert np.isnan(m["step_loss"][:, 8:]).all() and np.isfinite(m["step_loss"][:, :8]).all()


@pytest.mark.parametrize("bad, words", [
    (["--stop-when", "val_acc>>1"], "--stop-when takes"),
    (["--stop-when", "accuracy>0.9"], "not evaluated"),
    (["--stop-when", "val_acc>0.9", "--patience", "0"], "--patience must be"),
    (["--patience", "3"], "needs a stop rule"),
    (["--num-processes", "2"], "together"),
    (["--num-processes", "2", "--process-id", "2"], "--process-id must be"),
])
def test_stop_and_process_mistakes_are_one_sentence(tmp_path, capsys, bad, words):
    out = tmp_path / "x"
    assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--out", str(out)] + bad) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def _env(devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def _same_results(a: Path, b: Path):
    assert (a / "summary.csv").read_text() == (b / "summary.csv").read_text()
    x, y = np.load(a / "metrics.npz"), np.load(b / "metrics.npz")
    assert sorted(x.files) == sorted(y.files)
    for k in x.files:
        np.testing.assert_array_equal(x[k], y[k], err_msg=k)


SCALE_ARGS = TINY_ARGS + ["--seeds", "0:8", "--wave-size", "2", "--stop-when", "val_acc>0.15"]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    assert scan.main(SCALE_ARGS + ["--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_four_devices_give_the_one_device_results(one_device, tmp_path):
    out = tmp_path / "four"
    code = ("import jax, sys; from jgrok import scan; assert jax.local_device_count() == 4; "
            f"sys.exit(scan.main({SCALE_ARGS + ['--out', str(out)]!r}))")
    p = subprocess.run([sys.executable, "-c", code], env=_env(4), cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    _same_results(one_device, out)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_with_jax_distributed_write_shards_that_merge(one_device, tmp_path):
    """Two real processes on 127.0.0.1 with jax.distributed; each trains every 2nd run and writes its shard;
    jgrok.report merges them into the one-process results."""
    out = tmp_path / "multi"
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "jgrok.scan"] + SCALE_ARGS +
                              ["--out", str(out), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                               "--process-id", str(i)], env=_env(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    shard = yaml.safe_load((out / "shards" / "process_1" / "config.yaml").read_text())
    assert shard["process"] == "1/2" and shard["only"] == "1,3,5,7"
    assert not (out / "summary.csv").exists()
    assert (out / "shards" / "process_1" / "checkpoints" / "p0" / "12").is_dir()  # each process checkpoints
    assert report.main([str(out)]) == 0
    _same_results(one_device, out)
    merged = yaml.safe_load((out / "config.yaml").read_text())
    assert "only" not in merged and merged["lanes"] == 2


@pytest.mark.slow
def test_independent_jobs_and_missing_shards(one_device, tmp_path, capsys):
    """--num-processes/--process-id without a coordinator: independent jobs (a job array) sharing a folder."""
    out = tmp_path / "jobs"
    assert scan.main(SCALE_ARGS + ["--out", str(out), "--num-processes", "3", "--process-id", "2"]) == 0
    assert report.main([str(out)]) == 2
    assert "process_0" in capsys.readouterr().err
    for i in (0, 1):
        assert scan.main(SCALE_ARGS + ["--out", str(out), "--num-processes", "3", "--process-id", str(i)]) == 0
    shard = out / "shards" / "process_1"  # a job's shard resumes on its own
    (shard / "summary.csv").unlink()
    assert scan.main(["--resume", str(shard), "--quiet"]) == 0
    assert report.main([str(out)]) == 0
    _same_results(one_device, out)


@pytest.mark.slow
def test_out_of_memory_halves_w_once_and_records_it(tmp_path, monkeypatch, capsys):
    """An allocator error in the first chunk at W > 2 (injected) makes the scan retry at W/2 until it fits."""
    real = train.Program.compiled

    def limited(prog, K):
        init, chunk = real(prog, K)

        def chunk_or_oom(state, *args):
            if state.alive.shape[0] > 2:
                raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
                                                 "123456 bytes.")
            return chunk(state, *args)

        return init, chunk_or_oom

    ref = tmp_path / "w2"
    assert scan.main(TINY_ARGS + ["--seeds", "0:4", "--wave-size", "2", "--out", str(ref)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(train.Program, "compiled", limited)
    out = tmp_path / "w8"
    assert scan.main(TINY_ARGS + ["--seeds", "0:4", "--wave-size", "8", "--checkpoint-every", "6",
                                  "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("do not fit in device memory") == 1 and "W = 4" in err  # told once, though W fell twice
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lanes"] == 2 and saved["engine"]["wave_size"] == 2
    _same_results(ref, out)
    # at W = 1 there is nothing left to halve: one sentence, exit 2
    monkeypatch.setattr(train.Program, "compiled", lambda prog, K: (real(prog, K)[0], _always_oom))
    assert scan.main(TINY_ARGS + ["--seeds", "0:1", "--wave-size", "1", "--out", str(tmp_path / "w1")]) == 2
    assert "does not fit in device memory at W = 1" in capsys.readouterr().err


def _always_oom(*args):
    raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory")


@pytest.mark.slow
def test_measured_footprint_sizes_waves_to_free_memory():
    cfg = tiny(seed=list(range(64)))
    prog, _, _ = programs(cfg)
    fixed, per_lane = engine.measured_lane_bytes(prog, 6)
    assert per_lane > 0 and fixed >= 0  # the linear fit may put all of it in the lanes
    # plenty of memory: every run in one wave, without measuring
    assert engine.choose_wave_size(prog, 64, 1, free=1 << 40) == 64
    # memory for about 10 lanes (half of the free memory is the budget): the measured footprint decides
    free = 2 * (fixed + 10 * per_lane)
    assert engine.choose_wave_size(prog, 64, 1, free=free) == 10
    assert engine.choose_wave_size(prog, 64, 1, free=2 * (fixed + 3 * per_lane)) == 3
    assert engine.choose_wave_size(prog, 64, 1, free=1) == 1


def test_default_wave_on_a_cpu_is_a_rule_of_the_config_not_of_free_memory():
    from jgrok import config as config_mod

    def prog_of(cfg):
        (prog, _, _), = grid.programs(cfg, grid.expand(cfg)[:1])
        return prog

    tiny_cpu, template = prog_of(config_mod.load("tiny_cpu")), prog_of(config_mod.load("ai_scientist"))
    # the fastest widths measured on the 2-core CPU (benchmarks/RESULTS.md): 16 for tiny_cpu, 1 for the template
    assert engine.cpu_lanes(tiny_cpu) == 16 and engine.cpu_lanes(template) == 1
    for free in (1 << 34, 1 << 40):  # however much memory is free
        assert engine.choose_wave_size(tiny_cpu, 256, 1, free=free, backend="cpu") == 16
        assert engine.choose_wave_size(template, 64, 1, free=free, backend="cpu") == 1
    assert engine.choose_wave_size(tiny_cpu, 8, 1, free=1 << 40, backend="cpu") == 8  # no more than the runs need
    assert engine.choose_wave_size(tiny_cpu, 256, 1, free=1 << 40, backend="gpu") == 256  # a GPU: what fits
    # a power of two within CPU_WAVE_BYTES
    w = engine.cpu_lanes(tiny_cpu)
    assert w * engine.per_run_bytes(tiny_cpu) <= engine.CPU_WAVE_BYTES < 2 * w * engine.per_run_bytes(tiny_cpu)
