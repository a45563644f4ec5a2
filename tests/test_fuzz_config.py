"""Property-based fuzzing of the command line and the config loader (hypothesis).

Every input must end in exactly one of two ways: exit 0 (a finished run or dry run), or exit 2 with one line on
stderr (``jgrok.scan: error: <one sentence>``) and no output folder. Never a traceback, never a half-written folder.
Examples are counted per outcome and printed (run with ``-s`` to see the tallies); the counts are asserted so the
test cannot pass by trying nothing.
"""

import collections
import os
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jgrok import config, scan
from jgrok.errors import ConfigError
from tests.conftest import TINY_ARGS

# the tallies read what the fuzz tests of this module counted in this process: under pytest-xdist (CI's second
# stage) they need --dist loadfile, which runs a file's tests in one worker, in file order

N_DRY = int(os.environ.get("JGROK_FUZZ_DRY", 300))
N_REAL = int(os.environ.get("JGROK_FUZZ_REAL", 6))
N_YAML = int(os.environ.get("JGROK_FUZZ_YAML", 300))
N_FILE = int(os.environ.get("JGROK_FUZZ_FILE", 150))
FAST = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])

TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

# ---------------------------------------------------------------- values

NUMBERS = st.one_of(
    st.integers(-10, 10), st.integers(-2**70, 2**70), st.integers(10**300, 10**320),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, 1, 2, 3, 1e-9, 1e300, -1e-300, 0.5, 0.99]),
)
WORDS = st.sampled_from([
    "", " ", ",", ",,", ":", "::", "0:", ":5", "5:2", "1:2:3", "0:0", "-3:2", "0:99999999999999", "0:2147483648",
    "a:b", "1,,2", "1, 2", " 0:2 ", "nan", "inf", "-inf", "1e400", "1_000", "0x10", "true", "null", "~", "[1, 2]",
    "{a: 1}", "[]", "{}", "!!python/object:os.system", "&a [*a]", "'", '"', "é", "✓,✓", "\x00", "a\nb", "\t",
    "x_plus_y", "x_div_y,x_plus_y", "permutation", "adamw,sgd", "ema", "ma", "none,ema", "orthogonal", "bf16",
    "0:3", "0,1", "3", "0.1,1.0", "1e-3", "-0.1", "10", "2", "4", "post", "gelu", "full", "epochs",
])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUE = st.one_of(WORDS, NUMBERS.map(str), TEXT, st.lists(NUMBERS.map(str), min_size=1, max_size=3).map(",".join))

VALUE_FLAGS = ["--config", "--task", "--seeds", "--data-seeds", "--split-seeds", "--order-seeds", "--wd", "--lr",
               "--init", "--init-scale", "--optimizer", "--filter", "--filter-alpha", "--filter-lambda",
               "--filter-window", "--steps", "--batch-size", "--eval-every", "--precision", "--only", "--wave-size",
               "--tb-runs", "--checkpoint-every", "--set"]
SET_KEYS = [f"{s}.{f}" for s, cls in config.SECTIONS.items() for f in config.field_types(cls)] + [
    f"grid.{a}" for a in config.AXES] + ["grid", "task", "x.y", "task.nope", "grid.nope", "a.b.c", "", ".", "é.é"]
BARE_FLAGS = ["--overwrite", "--quiet", "--bogus", "--help", "-h", "--res", "--s", "-x", "--", "stray"]


@st.composite
def argv(draw, n_max=5):
    out = []
    for _ in range(draw(st.integers(0, n_max))):
        kind = draw(st.integers(0, 9))
        if kind <= 5:
            flag = draw(st.sampled_from(VALUE_FLAGS))
            if flag == "--set":
                value = draw(st.sampled_from(SET_KEYS)) + draw(st.sampled_from(["=", "", "=="])) + draw(VALUE)
            else:
                value = draw(VALUE)
            form = draw(st.integers(0, 9))  # --flag value, --flag=value (so values may start with '-'), or no value
            out += [flag, value] if form < 5 else [f"{flag}={value}"] if form < 9 else [flag]
        elif kind <= 7:
            out.append(draw(st.sampled_from(BARE_FLAGS)))
        else:
            out += ["--set", draw(st.sampled_from(SET_KEYS)) + "=" + draw(VALUE)]
    return out


def check_outcome(kind, code, err, out_dir):
    """Exit 0, or exit 2 with one line on stderr and no output folder."""
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("jgrok.scan: error: "), err
        msg = lines[0][len("jgrok.scan: error: "):]
        assert msg.rstrip().endswith((".", ")")), msg
        assert not out_dir.exists(), f"exit 2 left {sorted(p.name for p in out_dir.iterdir())}"
        TALLY[kind][msg.split()[0]] += 1
    else:
        TALLY[kind]["exit 0"] += 1


def call(args, capsys):
    code = scan.main(args)
    cap = capsys.readouterr()
    return code, cap.err


# ---------------------------------------------------------------- the CLI, dry runs

@pytest.mark.slow
@settings(FAST, max_examples=N_DRY)
@given(args=argv())
def test_cli_dry_run_fuzz(args, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("fuzz") / "out"
    code, err = call(TINY_ARGS + args + ["--dry-run", "--out", str(out)], capsys)
    check_outcome("cli dry-run", code, err, out)
    assert not out.exists()  # a dry run writes nothing


@pytest.mark.slow  # tallies test_cli_dry_run_fuzz, which is slow
def test_cli_dry_run_fuzz_tally():
    t = TALLY["cli dry-run"]
    print(f"\ncli dry-run fuzz: {sum(t.values())} examples, {dict(t.most_common())}")
    assert sum(t.values()) >= N_DRY // 2 and t["exit 0"] > 0 and sum(t.values()) > t["exit 0"]


# ---------------------------------------------------------------- the CLI, real tiny runs

REAL_FLAGS = st.sampled_from([
    ["--seeds", "0:2"], ["--seeds", "0,5"], ["--lr", "3e-3,10"], ["--lr", "1e-2"], ["--wd", "0,1.0"],
    ["--steps", "6"], ["--steps", "18"], ["--eval-every", "1"], ["--eval-every", "5"], ["--eval-every", "100"],
    ["--only", "1"], ["--only", "0:2"], ["--tb-runs", "1"], ["--tb-runs", ""], ["--checkpoint-every", "6"],
    ["--checkpoint-every", "1"], ["--init-scale", "0.5,2"], ["--data-seeds", "3"], ["--split-seeds", "0,1"],
])  # values that change only per-run arrays or traced scalars, so the examples share one compiled program


@settings(FAST, max_examples=N_REAL)
@given(flags=st.lists(st.one_of(REAL_FLAGS, REAL_FLAGS, argv(n_max=1)), max_size=4))
def test_cli_real_run_fuzz(flags, tmp_path_factory, capsys, monkeypatch):
    """Real tiny scans; plots are left out here (they take seconds per scan and are tested elsewhere)."""
    from jgrok import plots

    monkeypatch.setattr(plots, "make_plots", lambda out: None)
    out = tmp_path_factory.mktemp("fuzz") / "out"
    args = TINY_ARGS + ["--steps", "12", "--wave-size", "4"] + [a for f in flags for a in f]
    args = [a for a in args if a not in ("--dry-run", "--help", "-h", "--res", "--overwrite")] + ["--out", str(out)]
    code, err = call(args, capsys)
    check_outcome("cli real", code, err, out)
    if code == 0 and out.exists():  # a finished folder is complete
        names = {p.name for p in out.iterdir()}
        assert {"config.yaml", "metrics.npz", "summary.csv", "final_info.json", "checkpoints"} <= names, names
        assert not any(n.endswith(".tmp") for n in names), names


def test_cli_real_run_fuzz_tally():
    t = TALLY["cli real"]
    print(f"\ncli real-run fuzz: {sum(t.values())} examples, {dict(t.most_common())}")
    assert sum(t.values()) >= N_REAL // 2 and t["exit 0"] > 0


# ---------------------------------------------------------------- the config loader and YAML files

SECTIONS = list(config.SECTIONS) + ["grid", "lanes", "only", "nope", "", "é"]
FIELDS = sorted({f for cls in config.SECTIONS.values() for f in config.field_types(cls)} | set(config.AXES)
                | {"nope", ""})
LEAF = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, WORDS)
YAML_VALUE = st.recursive(LEAF, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(TEXT, inner, max_size=2)), max_leaves=6)
SECTION_BODY = st.one_of(YAML_VALUE, st.dictionaries(st.sampled_from(FIELDS), YAML_VALUE, max_size=4))
DOC = st.one_of(st.dictionaries(st.sampled_from(SECTIONS), SECTION_BODY, max_size=4), YAML_VALUE)


@settings(FAST, max_examples=N_YAML)
@given(doc=DOC)
def test_from_dict_fuzz(doc):
    try:
        cfg = config.from_dict(doc)
    except ConfigError as e:
        msg = str(e)
        assert msg and "\n" not in msg.strip() and msg.rstrip().endswith((".", ")")), msg
        TALLY["from_dict"]["ConfigError"] += 1
    else:
        assert isinstance(cfg, config.Config)
        # a valid config survives a round trip through its YAML dump unchanged
        assert config.from_dict(yaml.safe_load(config.dump(cfg))) == cfg
        TALLY["from_dict"]["ok"] += 1


RAW_YAML = st.one_of(
    st.text(alphabet=string.printable, max_size=80),
    st.text(max_size=40),
    st.sampled_from(["task: [", "{", "a: b: c", "- 1\n- 2", "!!binary AAAA", "!!python/object/apply:os.system [ls]",
                     "task: &a [*a]", "[" * 2000 + "]" * 2000, "task:\n  p: 0x1F\n", "train: {steps: 1e3}",
                     "\ufeffmodel: {d_model: 16}", "%YAML 1.1\n---\ntask: {}", "--- 1\n--- 2", "\x00", "\udcff"]),
    DOC.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
)


@pytest.mark.slow
@settings(FAST, max_examples=N_FILE)
@given(text=RAW_YAML)
def test_yaml_file_fuzz(text, tmp_path_factory, capsys):
    """Random bytes and documents as a --config file, through the CLI (dry run)."""
    d = tmp_path_factory.mktemp("yaml")
    path = d / "c.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    out = d / "out"
    code, err = call(["--config", str(path), "--dry-run", "--quiet", "--out", str(out)], capsys)
    check_outcome("yaml file", code, err, out)


def _check_tally(kind, n):
    t = TALLY[kind]
    print(f"\n{kind} fuzz: {sum(t.values())} examples, {dict(t.most_common())}")
    assert sum(t.values()) >= n // 2 and 0 < t["ok"] + t["exit 0"] < sum(t.values())


def test_config_fuzz_tally():
    _check_tally("from_dict", N_YAML)


@pytest.mark.slow  # tallies test_yaml_file_fuzz, which is slow
def test_yaml_file_fuzz_tally():
    _check_tally("yaml file", N_FILE)


@pytest.mark.parametrize("args", [
    ["--seeds", "0:2147483647"], ["--only", "0:99999999999999"], ["--seeds", "0:2000", "--data-seeds", "0:2000"],
    ["--set", "train.steps=" + "9" * 400], ["--config", "/bin/sh"], ["--out", "a\x00b"], ["--task", "a\nb"],
])
def test_known_nasty_inputs(args, tmp_path, capsys):
    """Inputs the fuzzer found (or that are too slow to find by chance): each is one sentence, exit 2, quickly."""
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    code, err = call(TINY_ARGS + args + (["--out", str(tmp_path / "o")] if "--out" not in args else []), capsys)
    check_outcome("nasty", code, err, tmp_path / "o")
    assert code == 2
