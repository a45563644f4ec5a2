"""The first hour of a new user: what the dry run shows, the first progress line, what config.yaml holds and the
time estimate that a finished scan makes possible."""

import math

import pytest
import yaml

from jgrok import config, scan
from jgrok.io import rates
from tests.conftest import TINY_ARGS, tiny, train_runs


def test_dry_run_lists_runs_and_human_sizes(capsys):
    assert scan.main(TINY_ARGS + ["--seeds", "0:3", "--wd", "0.5,1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#   run 0: wd=0.5 seed=0" in out and "#   run 5: wd=1 seed=2" in out
    assert "MiB at most (checkpoints and results)" in out and ",0" not in out.split("# disk:")[1]
    assert "time: no estimate" in out
    assert scan.main(TINY_ARGS + ["--seeds", "0:64", "--data-seeds", "0:2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    table = [ln for ln in out.splitlines() if ln.startswith("#   run ") or ln.startswith("#   ...")]
    assert len(table) == 21 and table[10] == "#   ... (108 runs more) ..."
    assert table[0] == "#   run   0: seed=0 split_seed=0 order_seed=0"
    assert table[-1] == "#   run 127: seed=63 split_seed=1 order_seed=1"


def test_human_bytes():
    assert [scan.human_bytes(n) for n in (512, 300 << 10, 22541.6 * 2**20, 3 << 40)] == \
        ["512 B", "300 KiB", "22.0 GiB", "3.00 TiB"]


@pytest.mark.slow
def test_first_progress_line_says_compiling(capsys):
    cfg = tiny(seed=[0, 1])
    from jgrok import engine, grid

    (prog, table, members), = grid.programs(cfg, grid.expand(cfg))
    res = engine.train_program(prog, table, members, 3, progress=True)  # W = 3: a wave shape no other test uses
    lines = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if ln.strip()]
    assert "0/12 updates x 2 runs | compiling and running the first chunk" in lines[0]
    assert "6/12 updates x 2 runs | first chunk (with compilation) took" in lines[1]
    assert "seed-steps/s" in lines[2] and res.first_chunk_s > 0 and res.rate > 0
    engine.train_program(prog, table, members, 3, progress=True)  # compiled already: it says so
    lines = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if ln.strip()]
    assert "| running the first chunk" in lines[0] and "| first chunk took" in lines[1]


def test_config_yaml_holds_only_fields_of_its_kind():
    cfg = tiny(seed=[0])
    text = config.dump(cfg)
    data = yaml.safe_load(text)
    for field in ("width", "blocks", "output"):
        assert field not in data["model"]
    for field in ("train_per_group", "val_per_group", "data", "gen_seed", "integer"):
        assert field not in data["task"]
    assert data["model"]["d_model"] == 16 and data["task"]["p"] == 11
    assert config.from_dict(data) == config.from_dict({**cfg.to_dict()})  # the full form still loads, the same
    reg = config.from_dict({"task": {"name": "mheight"}, "model": {"kind": "resnet"}})
    data = yaml.safe_load(config.dump(reg))
    assert "d_model" not in data["model"] and "p" not in data["task"] and "train_per_group" in data["task"]


@pytest.mark.slow
def test_a_finished_scan_gives_later_dry_runs_a_time_estimate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JGROK_RATES", str(tmp_path / "rates.json"))
    args = TINY_ARGS + ["--seeds", "0:2", "--wave-size", "2"]
    assert scan.main(args + ["--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert scan.main(args + ["--dry-run"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "time:" in ln)
    assert "for the first chunk (compilation included)" in line and "seed-steps/s measured on" in line
    entry = next(iter(__import__("json").loads((tmp_path / "rates.json").read_text()).values()))
    assert entry["runs"] == 2 and entry["chunk"] == 6 and entry["seed_steps_per_s"] > 0
    comp, total = rates.estimate(entry, 2, 12, 2, 1)
    assert comp == entry["first_chunk_s"]
    assert math.isclose(total, comp + 6 * 2 / entry["seed_steps_per_s"])
    # 3 runs in waves of 2 lanes cost 4 lanes
    assert math.isclose(rates.estimate(entry, 3, 12, 2, 1)[1], comp + 6 * 4 / entry["seed_steps_per_s"])


def test_every_scan_flag_is_in_the_readme_table():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("### Flags")[1].split("\n## ")[0]
    flags = [s for a in scan.build_parser()._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    missing = [f for f in flags if f"`{f}" not in table and f"{f}`" not in table and f"{f}," not in table]
    assert not missing, missing
