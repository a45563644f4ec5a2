"""The results files of a scan merged from the shards of several processes: each written atomically (through a
temporary file renamed into place), summary.csv last, so that a folder with summary.csv is complete."""

import pytest

from jgrok import report, scan
from jgrok.io import results
from tests.conftest import TINY_ARGS


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = tmp_path_factory.mktemp("merge") / "jobs"
    for i in (0, 1):  # independent jobs (no coordinator), one run each
        assert scan.main(TINY_ARGS + ["--seeds", "0:2", "--out", str(out), "--num-processes", "2",
                                      "--process-id", str(i), "--set", "engine.tensorboard=false"]) == 0
    return out


def test_merge_writes_each_file_atomically_and_summary_last(shards, monkeypatch):
    written = []
    real = results._atomic

    def record(path, write_fn):
        written.append(path.name)
        return real(path, write_fn)

    monkeypatch.setattr(results, "_atomic", record)
    assert results.merge_shards(shards) == 2
    assert sorted(written) == ["config.yaml", "final_info.json", "metrics.npz", "summary.csv"]
    assert written[-1] == "summary.csv"
    assert len(results.read_summary(shards / "summary.csv")) == 2


def test_a_merge_that_fails_midway_leaves_no_summary(shards, monkeypatch, capsys):
    (shards / "summary.csv").unlink(missing_ok=True)
    real = results._atomic

    def fail_on_final_info(path, write_fn):
        if path.name == "final_info.json":
            raise OSError(28, "No space left on device")
        return real(path, write_fn)

    monkeypatch.setattr(results, "_atomic", fail_on_final_info)
    with pytest.raises(OSError):
        results.merge_shards(shards)
    assert not (shards / "summary.csv").exists() and not list(shards.glob("*.tmp"))
    monkeypatch.setattr(results, "_atomic", real)
    assert report.main([str(shards)]) == 0 and (shards / "summary.csv").is_file()
