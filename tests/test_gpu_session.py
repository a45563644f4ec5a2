"""benchmarks/gpu_session.py, the one prepared GPU call: its plan and budget logic, and its --tiny session on the
CPU through the same code path as on the GPU (so the script cannot rot between loans)."""

import importlib.util
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_session.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_session", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_session"] = mod  # its dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


gs = _load()


def _run(args, timeout, env=None, python=sys.executable):
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([python, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_budget_picks_the_largest_variant_that_fits_and_skips_what_does_not():
    item = gs.BY_NAME["throughput"]
    big, small = (gs.seconds(item.cost(v, False), gs.rates(False)) for v in item.variants(False)[:2])
    assert big > small > 0
    assert gs.choose(item, False, big + 1)["variant"]["label"] == item.variants(False)[0]["label"]
    mid = gs.choose(item, False, (big + small) / 2)
    assert mid["fits"] and mid["variant"]["label"] == item.variants(False)[1]["label"]
    least = min(gs.seconds(item.cost(v, False), gs.rates(False)) for v in item.variants(False))
    none = gs.choose(item, False, least - 1)
    assert not none["fits"] and none["variant"] is None and "no variant fits" in none["why"]
    # items after one that used the budget are planned against what is left
    decisions = gs.plan(["throughput", "bitexact"], least + 1, False)
    assert decisions[0]["fits"] and not decisions[1]["fits"]
    # a smaller variant is taken where the larger would leave no room for the next item's smallest one
    nxt = gs.smallest("bitexact", False)
    assert nxt > 0
    d = gs.choose(item, False, small + nxt + 1, reserve=nxt)
    assert d["variant"]["label"] == item.variants(False)[1]["label"] and "leaving the next item's" in d["why"]
    decisions = gs.plan(["throughput", "bitexact"], big + nxt + 1, False)
    assert decisions[0]["variant"]["label"] == item.variants(False)[0]["label"] and decisions[1]["fits"]


def test_measured_rates_replace_the_assumed_ones():
    item = gs.BY_NAME["aiscientist"]
    v = item.variants(False)[0]
    slow = gs.seconds(item.cost(v, False), gs.rates(False, {"tflops": {"fp32": 1.0}}))
    fast = gs.seconds(item.cost(v, False), gs.rates(False, {"tflops": {"fp32": 100.0}, "compile_s": 5.0}))
    assert slow > fast
    assert gs.rates(False, {"tflops": {"fp32": 1.0}})["source"].startswith("measured")


def test_every_item_has_a_tiny_variant_and_an_estimate():
    for item in gs.ITEMS:
        (v,) = item.variants(True)
        assert gs.seconds(item.cost(v, True), gs.rates(True)) > 0, item.name
        assert item.variants(False), item.name


@pytest.mark.slow
def test_plan_prints_the_flop_estimates_and_what_fits():
    r = _run(["--plan", "--budget-s", "200", "--only", "bitexact,aiscientist"], 300)
    assert r.returncode == 0, r.stderr
    assert "NVIDIA H200" in r.stdout and "TFLOP/s" in r.stdout and "TFLOP " in r.stdout
    lines = r.stdout.splitlines()
    assert any(x.startswith("RUN  bitexact") for x in lines), r.stdout
    assert any(x.startswith("skip aiscientist") for x in lines), r.stdout
    bad = _run(["--plan", "--only", "nonsense"], 120)
    assert bad.returncode == 2 and "unknown item" in bad.stderr


@pytest.mark.slow
def test_a_small_budget_records_every_item_as_skipped(tmp_path):
    r = _run(["--tiny", "--budget-s", "1", "--only", "throughput,bitexact", "--out", str(tmp_path)], 300)
    assert r.returncode == 0, r.stdout + r.stderr
    recs = _records(tmp_path)
    assert [x["item"] for x in recs] == ["environment", "throughput", "bitexact"]
    assert [x["status"] for x in recs[1:]] == ["skipped", "skipped"]
    assert "## bitexact" in (tmp_path / "results.md").read_text()


@pytest.mark.slow
def test_tiny_session_writes_a_result_for_every_item(tmp_path):
    """The whole --tiny session: every item done, its JSON valid, the bit-exactness checks true on the CPU.
    About 4 minutes (241-262 s) on a 2-core machine with a little other load (2026-12-02; each item 10-45 s, the
    bit-exactness item the longest); the budget and the timeout leave about 3 times that."""
    r = _run(["--tiny", "--budget-s", "720", "--out", str(tmp_path)], 780)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recs = _records(tmp_path)
    by = {x["item"]: x for x in recs}
    assert set(by) == {"environment"} | set(gs.BY_NAME)
    failed = {k: x.get("error", "")[-1500:] for k, x in by.items() if x["status"] != "done"}
    assert not failed, failed
    for name in gs.BY_NAME:
        assert by[name]["result"].get("table"), name
        assert by[name]["device"] and by[name]["date"]
    md = (tmp_path / "results.md").read_text()
    assert all(f"## {name}:" in md for name in gs.BY_NAME)
    bit = by["bitexact"]["result"]
    assert all(row["same scan twice identical"] and row["--only identical"] for row in bit["table"]), bit


def _image_without_tensorboardx(tmp_path: Path) -> Path:
    """A fresh venv (no system site-packages, no pip of its own) that sees this interpreter's packages except
    tensorboardX: one .pth line names a folder of links to every entry of this interpreter's site-packages but
    tensorboardX's (the .pth files among them are not processed there, so jgrok comes only from PYTHONPATH)."""
    import site

    src = Path(next(p for p in site.getsitepackages() if (Path(p) / "jax").is_dir()))
    farm = tmp_path / "image-site"
    farm.mkdir()
    for entry in src.iterdir():
        if not entry.name.lower().startswith("tensorboardx"):
            (farm / entry.name).symlink_to(entry)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    own = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    (Path(own) / "image.pth").write_text(str(farm) + "\n")
    return py


@pytest.mark.slow
def test_carried_wheels_install_without_an_index(tmp_path):
    """The install path of the device call: the session, started with a Python that has jgrok's dependencies but
    not tensorboardX (_image_without_tensorboardx: this machine's packages, linked, not downloaded), finds no
    tensorboardX, installs the wheel that benchmarks/gpu_wheels.sh put in a folder with pip --no-index into its
    work folder, and its children import it (the environment record) and run an item. What it proves: the carried
    wheel and the install step suffice where the image lacks tensorboardX. What it does not: the device's Python
    3.12 / jax 0.11 / CUDA, or that no network is reached (pip's --no-index is the guard). gpu_wheels.sh downloads
    the wheel (skipped without the network) unless GPU_SESSION_WHEELS names a folder that already holds it."""
    py = _image_without_tensorboardx(tmp_path)
    assert subprocess.run([str(py), "-c", "import tensorboardX"], capture_output=True).returncode != 0
    assert subprocess.run([str(py), "-c", "import jax, pip"], capture_output=True).returncode == 0
    wheels = Path(os.environ.get("GPU_SESSION_WHEELS") or tmp_path / "whl")
    if not any(wheels.glob("tensorboard*.whl")):
        fill = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_wheels.sh"), str(wheels)], capture_output=True,
                              text=True, timeout=600, env=dict(os.environ, PYTHON=str(py)))
        said = (fill.stderr + fill.stdout).lower()
        if fill.returncode != 0 and any(w in said for w in ("network", "connection", "no matching distribution")):
            pytest.skip(f"gpu_wheels.sh could not download (no network?): {fill.stderr[-300:]}")
        assert fill.returncode == 0, fill.stdout + fill.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["GPU_SESSION_WHEELS"] = str(wheels)
    out = tmp_path / "out"
    r = _run(["--tiny", "--only", "superseed", "--out", str(out)], 900, env=env, python=str(py))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    recs = _records(out)
    env_rec = recs[0]["result"]["table"][0]
    assert env_rec["wheels"].startswith("installed tensorboardx"), env_rec
    assert not str(env_rec["tensorboardX"]).startswith("missing"), env_rec
    assert recs[1]["status"] == "done", recs[1].get("error")
