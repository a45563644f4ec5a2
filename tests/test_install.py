"""jgrok as a user installs it: a wheel built from the project's files, installed into a fresh virtual environment
outside the checkout, used from another folder. Every preset resolves (they are package data) and the README's demo
runs, through the ``jgrok`` console command and the ``python -m`` form.

The fresh environment borrows the dependencies (jax, flax, ...) of the environment running the tests through a
.pth line, placed after its own site-packages, so that only jgrok comes from the wheel; nothing is downloaded.
"""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300  # every step below is a subprocess with this hard limit

pytestmark = pytest.mark.slow  # builds a wheel and a virtual environment: a minute or more of subprocesses


def run(cmd, cwd, env, timeout=TIMEOUT_S):
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(map(str, cmd))} did not finish in {timeout} s:\n{e.stderr}")
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """(python, bin folder, clean env) of a fresh venv holding jgrok from a freshly built wheel."""
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        pytest.skip("pip is not available to build and install the wheel")
    # the wheel is built without build isolation (nothing downloaded), so with this environment's setuptools, which
    # must read pyproject.toml's PEP 639 license string; the dev extra brings one that can
    try:
        setuptools_major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        setuptools_major = 0
    if setuptools_major < 77:
        pytest.fail("building the wheel needs setuptools >= 77 in the test environment: pip install -e '.[dev]'")
    tmp = tmp_path_factory.mktemp("install")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["JAX_PLATFORMS"] = "cpu"
    src = tmp / "src"  # the project's own files only, so the build writes nothing into the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv*", "runs", "data", "build", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis", "tests",
                                                             "benchmarks"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
         str(src)], tmp, env)
    wheel, = (tmp / "dist").glob("jgrok-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], tmp, env)
    bindir = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    site = run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp, env).stdout.strip()
    deps = sysconfig.get_path("purelib")  # the test environment's packages (jax, flax, ...), after the venv's own
    Path(site, "zz_jgrok_test_deps.pth").write_text(deps + "\n")
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        tmp, env)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return py, bindir, env, tmp


def test_wheel_has_every_preset_and_the_console_command(venv):
    py, bindir, env, tmp = venv
    work = tmp / "elsewhere"
    work.mkdir()
    where = run([str(py), "-c", "import jgrok; print(jgrok.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(tmp / "venv"), f"jgrok imported from {where}, not from the wheel"
    presets = sorted(p.stem for p in (ROOT / "jgrok" / "configs").glob("*.yaml"))
    assert len(presets) >= 10
    # the console command, then every preset's dry run in one process of the installed environment (at a given
    # lane width: sizing W for the larger presets compiles their chunks, a minute of CPU that says nothing here)
    help_text = run([str(bindir / "jgrok"), "--help"], work, env).stdout
    assert all(c in help_text for c in ("scan", "report", "analyze", "aiscientist", "mheight"))
    code = ("import sys; from jgrok import cli\n"
            "for p in sys.argv[1:]:\n"
            "    print('== preset', p, flush=True)\n"
            "    assert cli.main(['scan', '--config', p, '--dry-run', '--wave-size', '8']) == 0, p\n")
    out = run([str(py), "-c", code] + presets, work, env).stdout
    for p in presets:
        assert f"== preset {p}" in out
    assert out.count("# runs: ") == len(presets), out
    assert "presets: none" not in out


def test_readme_demo_from_the_wheel(venv):
    """The README's demo (``python -m jgrok.scan --config tiny_cpu --out runs/demo``) for a few updates, then the
    report through the console command, from a folder that is not the checkout."""
    py, bindir, env, tmp = venv
    work = tmp / "demo"
    work.mkdir()
    run([str(py), "-m", "jgrok.scan", "--config", "tiny_cpu", "--out", "runs/demo", "--steps", "20",
         "--eval-every", "10", "--quiet"], work, env)
    assert (work / "runs" / "demo" / "summary.csv").is_file()
    run([str(bindir / "jgrok"), "report", "runs/demo"], work, env)
    assert (work / "runs" / "demo" / "report.md").is_file()
    bad = subprocess.run([str(bindir / "jgrok"), "scna"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert bad.returncode == 2 and "unknown command 'scna'" in bad.stderr and "Traceback" not in bad.stderr
