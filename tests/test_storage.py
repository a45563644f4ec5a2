"""Storage faults: a read-only or too small output location is refused before training with one sentence; a disk
that fills up during a checkpoint save or while the results are written keeps the previous checkpoint intact, says
so in one sentence (exit 2) and the scan resumes to results bit-identical to an uninterrupted one.

Each fault runs twice: on a real file system (a read-only bind mount or a small tmpfs; skipped where ``mount`` is
not permitted) and with the operating system's error injected at the call that meets it (always runs).
"""

import errno
import shutil
import subprocess
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

import jgrok
from jgrok import scan
from jgrok.io import checkpoint, results
from tests.conftest import TINY_ARGS

ARGS = TINY_ARGS + ["--seeds", "0:2", "--steps", "18", "--checkpoint-every", "6", "--wave-size", "2"]


def call(args, capsys):
    code = scan.main(args)
    cap = capsys.readouterr()
    return code, cap.err


def one_sentence(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jgrok.scan: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    assert scan.main(ARGS + ["--out", str(out)]) == 0
    return out


def assert_same_results(ref, out):
    a, b = np.load(ref / "metrics.npz"), np.load(out / "metrics.npz")
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (ref / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()


def mount(*args):
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def mounted(tmp_path):
    """mounted(kind, size) -> a fresh mount point: 'tmpfs' of a size, or 'ro' (read-only bind of an empty folder)."""
    points = []

    def make(kind, size="1m"):
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command here")
        if kind == "tmpfs":
            ok = mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        else:
            src = tmp_path / f"src{len(points)}"
            src.mkdir()
            ok = mount("--bind", str(src), str(point))
            if ok:
                points.append(point)
                ok = mount("-o", "remount,bind,ro", str(point))
        if not ok:
            pytest.skip("mount is not permitted here (the injected-error variant of this test still runs)")
        if point not in points:
            points.append(point)
        return point

    yield make
    for p in reversed(points):
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


# ------------------------------------------------------------------ before training

def test_read_only_folder_is_refused_before_training(mounted, capsys):
    ro = mounted("ro")
    code, err = call(ARGS + ["--out", str(ro / "scan")], capsys)
    line = one_sentence(err)
    assert code == 2 and "Read-only file system" in line and "choose another --out" in line
    assert not any(ro.iterdir())


def test_read_only_folder_injected(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro" / "scan"
    real = Path.mkdir

    def mkdir(self, *a, **k):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    code, err = call(ARGS + ["--out", str(out)], capsys)
    line = one_sentence(err)
    assert code == 2 and "Read-only file system" in line and not (tmp_path / "ro").exists()


def test_too_small_location_is_refused_before_training(mounted, capsys):
    small = mounted("tmpfs", "1m")
    code, err = call(ARGS + ["--out", str(small / "a" / "scan")], capsys)
    line = one_sentence(err)
    assert code == 2 and "free but this scan writes about" in line
    assert not any(small.iterdir())  # the folders it had made are gone again


def test_too_small_location_injected(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 20, 10 << 20, 300 << 10))
    code, err = call(ARGS + ["--out", str(tmp_path / "scan")], capsys)
    assert code == 2 and "300 KiB free" in one_sentence(err) and not (tmp_path / "scan").exists()
    code, err = call(ARGS + ["--out", str(tmp_path / "scan"), "--dry-run"], capsys)
    assert code == 0  # a dry run estimates the space (see its "# disk:" line) but checks nothing


# ------------------------------------------------------------------ during training

def check_checkpoint_fault(out, code, err):
    line = one_sentence(err)
    assert code == 2
    assert "No space left on device" in line and "the checkpoint at update 6 is intact" in line
    assert f"python -m jgrok.scan --resume {out}" in line
    ck = out / "checkpoints" / "p0"
    assert sorted(c.name for c in ck.iterdir()) == ["6"]  # the partial save is gone, the previous one kept
    assert jgrok.load(out, run=1)[2] == 6  # and readable
    assert (out / "config.yaml").is_file() and not (out / "summary.csv").exists()


def test_disk_fills_during_a_checkpoint_save(mounted, capsys, monkeypatch, reference):
    disk = mounted("tmpfs", "24m")
    out = disk / "scan"
    real_save, calls = checkpoint.save, []

    def save(mngr, step, tree):  # before the second save, something else fills the disk
        calls.append(step)
        if len(calls) == 2:
            with open(disk / "filler", "wb", buffering=0) as f:
                for block in (1 << 20, 4096, 1):
                    try:
                        while True:
                            f.write(b"\0" * block)
                            f.flush()
                    except OSError:
                        pass
        return real_save(mngr, step, tree)

    monkeypatch.setattr(checkpoint, "save", save)
    code, err = call(ARGS + ["--out", str(out)], capsys)
    check_checkpoint_fault(out, code, err)
    (disk / "filler").unlink()
    monkeypatch.setattr(checkpoint, "save", real_save)
    assert scan.main(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(reference, out)


def test_disk_fills_during_a_checkpoint_save_injected(tmp_path, capsys, monkeypatch, reference):
    """The error as tensorstore raises it on a full disk, after part of the new checkpoint was written."""
    out = tmp_path / "scan"
    real, calls = ocp.CheckpointManager.save, []

    def save(self, step, *a, **k):
        calls.append(step)
        if len(calls) == 2:
            partial = Path(self.directory) / f"{step}.orbax-checkpoint-tmp" / "default"
            partial.mkdir(parents=True)
            (partial / "d").write_bytes(b"\0" * 1000)
            raise ValueError(f'RESOURCE_EXHAUSTED: Error writing "step" in OCDBT database at local file "{partial}": '
                             "Failed to write 47364 bytes to file 17: No space left on device [os_error_code='28']")
        return real(self, step, *a, **k)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save)
    code, err = call(ARGS + ["--out", str(out)], capsys)
    check_checkpoint_fault(out, code, err)
    monkeypatch.setattr(ocp.CheckpointManager, "save", real)
    assert scan.main(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(reference, out)


def test_disk_fills_while_writing_results_injected(tmp_path, capsys, monkeypatch, reference):
    out = tmp_path / "scan"
    real = results._atomic

    def atomic(path, write_fn):
        if path.name == "metrics.npz":
            def half(f):
                f.write(b"\0" * 100)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, half)
        return real(path, write_fn)

    monkeypatch.setattr(results, "_atomic", atomic)
    code, err = call(ARGS + ["--out", str(out)], capsys)
    line = one_sentence(err)
    assert code == 2 and "No space left on device" in line and f"--resume {out}" in line
    names = {p.name for p in out.iterdir()}
    assert "summary.csv" not in names and "metrics.npz" not in names and "metrics.npz.tmp" not in names
    assert jgrok.load(out, run=0)[2] == 18  # every run's final state is checkpointed
    monkeypatch.setattr(results, "_atomic", real)
    assert scan.main(["--resume", str(out), "--quiet"]) == 0
    assert_same_results(reference, out)
