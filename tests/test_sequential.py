"""The group-sequential rule (jgrok.sequential): published boundaries, and a type I error at its nominal level."""

import numpy as np
import pytest

from jgrok import power, sequential


def test_boundaries_are_the_published_lan_demets_values():
    # K = 5 equally spaced looks, two-sided alpha 0.05: gsDesign's sfLDOF and sfLDPocock (test.type = 2)
    obf = sequential.boundaries(5)
    assert obf == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-3)
    pocock = sequential.boundaries(5, kind="pocock")
    assert pocock == pytest.approx([2.4380, 2.4268, 2.4102, 2.3966, 2.3860], abs=2e-3)
    assert sequential.boundaries(1) == pytest.approx([1.959964])  # one look: the fixed test
    assert sequential.spent(1.0) == pytest.approx(0.05) and sequential.spent(1.0, kind="pocock") == pytest.approx(0.05)


def test_type_one_error_is_nominal_and_a_real_difference_stops_early():
    rng = np.random.default_rng(0)
    T, n, look, B = 3000, 48, 12, 1500

    def groups(h):
        ta = np.ceil(rng.exponential(600 / h, (T, n)) / 20) * 20
        tb = np.ceil(rng.exponential(600, (T, n)) / 20) * 20
        return np.minimum(ta, B), ta <= B, np.minimum(tb, B), tb <= B

    null = sequential.run(*groups(1.0), look)
    # 0.05 +- 3 Monte-Carlo standard errors (0.004 at 3000 trials)
    assert abs(null.crossed.mean() - 0.05) < 0.012
    assert (null.look[~null.crossed] == 4).all() and set(np.unique(null.sign)) <= {-1, 0, 1}
    alt = sequential.run(*groups(2.5), look)
    assert alt.crossed.mean() > 0.9 and (alt.sign[alt.crossed] == 1).mean() > 0.99
    assert alt.look.mean() < 3  # it stops before the last look on average
    # the statistic at the last look is the fixed log-rank statistic over all seeds
    ta, ea, tb, eb = groups(1.0)
    o = sequential.run(ta[:5], ea[:5], tb[:5], eb[:5], n)
    assert o.z[:, 0] ** 2 == pytest.approx(power.logrank_chi2(ta[:5], ea[:5], tb[:5], eb[:5]))


def test_look_size_must_divide_the_seeds():
    z = np.zeros((1, 10))
    with pytest.raises(ValueError, match="does not divide"):
        sequential.run(z, z > 0, z, z > 0, 3)


# ----------------------------------------------------------------------------- the scan that trains in looks

def seq_cfg(seeds=8, look=2, futility=0.0, test="logrank"):
    import yaml

    from jgrok import config
    from tests.conftest import tiny

    cfg = tiny(wd=[0.5, 1.0], seed=list(range(seeds)))
    return config.from_dict({**yaml.safe_load(config.dump(cfg)),
                             "sequential": {"until_decided": "wd", "look_every": look, "futility": futility,
                                            "test": test}})


def fake_summary(rows, steps_of):
    """Summary rows for the runs ``rows``: steps_of(row) -> steps to 99% val acc, or None for never."""
    out = []
    for r in rows:
        s = steps_of(r)
        out.append({"run": r["run"], "step_val_acc_99": 12 if s is None else s, "reached_val_99": int(s is not None)})
    return out


def test_looks_take_the_seeds_in_order_and_the_decision_is_the_rule_on_them():
    from jgrok import grid

    cfg = seq_cfg(seeds=8, look=2)
    rows = grid.expand(cfg)
    looks = sequential.look_rows(cfg, rows)
    assert len(looks) == 4 and all(len(lk) == 4 for lk in looks)
    assert [sorted({r["seed"] for r in lk}) for lk in looks] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert all(sorted(r["wd"] for r in lk) == [0.5, 0.5, 1.0, 1.0] for lk in looks)
    # wd = 1 always at step 4, wd = 0.5 at step 8 (seed 0 never): the log-rank score of A (wd=0.5) is negative
    summary = fake_summary(rows, lambda r: 4 if r["wd"] == 1.0 else (None if r["seed"] == 0 else 8))
    d = sequential.decide(cfg, looks[:2], summary)
    assert (d.a, d.b, d.K, d.looks_done, d.seeds) == ("wd=0.5", "wd=1", 4, 2, 4)
    assert d.reached_a == [1, 3] and d.reached_b == [2, 4]
    ta = [12.0, 8, 8, 8]
    ea = [False, True, True, True]
    z2 = power.logrank_z(np.array([ta]), np.array([ea]), np.full((1, 4), 4.0), np.ones((1, 4), bool))[0]
    assert d.z[1] == pytest.approx(z2) and d.z[1] < 0
    assert d.bounds == pytest.approx(list(sequential.boundaries(4)))
    assert d.stopped_at is None and not d.finished and d.verdict() == "undecided so far"
    # the same Decision after a round trip through sequential.json
    assert sequential.Decision.from_dict(d.to_dict()) == d
    # given all four looks, the rule stops at the third (|Z| = 3.32 >= 2.36); the fourth does not count
    d4 = sequential.decide(cfg, looks, summary)
    assert d4.stopped_at == 3 and d4.looks_done == 3 and d4.finished and d4.crossed
    assert d4.verdict() == "wd=1 groks faster than wd=0.5" and "decided at look 3 of 4 (6 of 8 seeds" in d4.sentence()


def test_a_crossing_stops_and_says_which_group_is_faster():
    from jgrok import grid

    cfg = seq_cfg(seeds=64, look=16)
    rows = grid.expand(cfg)
    looks = sequential.look_rows(cfg, rows)
    summary = fake_summary(rows, lambda r: 4 if r["wd"] == 1.0 else None)  # wd=1 always, wd=0.5 never
    d = sequential.decide(cfg, looks[:1], summary)
    assert d.stopped_at == 1 and d.crossed and d.finished and abs(d.z[0]) >= d.bounds[0]
    assert d.verdict() == "wd=1 groks faster than wd=0.5"
    assert "decided at look 1 of 4 (16 of 64 seeds per group" in d.sentence() and "75% of the planned" in d.sentence()
    assert d.action(1) == "stop"


def test_futility_stops_a_comparison_that_shows_nothing():
    from jgrok import grid

    cfg = seq_cfg(seeds=8, look=2, futility=0.1)
    rows = grid.expand(cfg)
    looks = sequential.look_rows(cfg, rows)
    summary = fake_summary(rows, lambda r: 8)  # every run at the same step: Z = 0
    d = sequential.decide(cfg, looks[:1], summary)
    assert d.z == [0.0] and d.power_left(1) < 0.1
    assert d.stopped_at == 1 and not d.crossed and d.finished and d.action(1) == "stop for futility"
    assert d.verdict() == "no difference detected" and "stopped for futility at look 1 of 4" in d.sentence()
    # without --futility the same look continues
    d0 = sequential.decide(seq_cfg(seeds=8, look=2), looks[:1], summary)
    assert d0.stopped_at is None and d0.action(1) == "continue"


def test_conditional_power_and_the_paired_statistic():
    c = sequential.boundaries(4)[-1]
    assert sequential.conditional_power(0.0, 2, 4, c) == pytest.approx(2 * (1 - __import__("scipy").stats.norm.cdf(
        c / np.sqrt(0.5))))
    assert sequential.conditional_power(6.0, 2, 4, c) > 0.999
    # paired: (a - b) / sqrt(a + b), its square the sign chi^2
    ta, tb = np.array([[1.0, 2, 3, 4, 5]]), np.array([[2.0, 1, 4, 5, 5]])
    e = np.ones((1, 5), bool)
    assert power.paired_z(ta, e, tb, e)[0] == pytest.approx((3 - 1) / 2)
    assert power.paired_z(ta, e, tb, e)[0] ** 2 == pytest.approx(power.sign_chi2(ta, e, tb, e)[0])
    # the paired rule is the rule on that statistic
    out = sequential.run(np.tile(ta, (1, 2)), np.tile(e, (1, 2)), np.tile(tb, (1, 2)), np.tile(e, (1, 2)), 5,
                         test="paired")
    assert out.z[0, 1] == pytest.approx((6 - 2) / np.sqrt(8))


def test_run_ids_are_written_as_ranges():
    from jgrok import runids

    assert runids.text([7, 0, 1, 2, 9, 10]) == "0:3,7,9:11"
    assert runids.parse(runids.text([5, 3, 4, 40])) == [3, 4, 5, 40]


@pytest.mark.parametrize("extra, words", [
    (["--wd", "0.5,1.0,2.0"], "has 3 value(s) of wd"),
    (["--wd", "0.5,1.0", "--lr", "1e-3,3e-3"], "also varies lr"),
    (["--wd", "0.5,1.0", "--look-every", "3"], "must divide the scan's 8 seeds"),
    (["--wd", "0.5,1.0", "--look-every", "8"], "into two or more looks"),
    (["--wd", "0.5,1.0", "--look-every", "0"], "needs --look-every N"),
    (["--wd", "0.5,1.0", "--look-every", "2", "--num-processes", "2", "--process-id", "0"], "in one process"),
])
def test_until_decided_mistakes_are_one_sentence(extra, words, capsys):
    from jgrok import scan
    from tests.conftest import TINY_ARGS

    args = TINY_ARGS + ["--seeds", "0:8", "--until-decided", "wd", "--dry-run"]
    if "--look-every" not in extra:
        args += ["--look-every", "2"]
    assert scan.main(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("jgrok.scan: error:")


def test_look_every_and_futility_need_until_decided(capsys):
    from jgrok import scan
    from tests.conftest import TINY_ARGS

    for extra in (["--look-every", "2"], ["--futility", "0.1"]):
        assert scan.main(TINY_ARGS + ["--seeds", "0:8", "--wd", "0.5,1", "--dry-run"] + extra) == 2
        assert "needs --until-decided AXIS" in capsys.readouterr().err
    assert scan.main(TINY_ARGS + ["--seeds", "0:8", "--wd", "0.5,1", "--until-decided", "wd", "--look-every", "2",
                                  "--futility", "1.5", "--dry-run"]) == 2
    assert "conditional power in [0, 1)" in capsys.readouterr().err


def test_the_dry_run_shows_the_design(capsys):
    from jgrok import scan
    from tests.conftest import TINY_ARGS

    assert scan.main(TINY_ARGS + ["--seeds", "0:8", "--wd", "0.5,1", "--until-decided", "wd", "--look-every", "2",
                                  "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "# until decided: wd=0.5 against wd=1.0 in 4 looks of 2 seeds per group (4 runs each)" in out
    assert "O'Brien-Fleming boundaries |Z| >= 4.33 2.96 2.36 2.01" in out
    assert "sequential:\n  until_decided: wd\n  look_every: 2" in out


def test_no_difference_after_every_look():
    from jgrok import grid

    cfg = seq_cfg(seeds=8, look=2)
    rows = grid.expand(cfg)
    d = sequential.decide(cfg, sequential.look_rows(cfg, rows), fake_summary(rows, lambda r: 8))
    assert d.finished and d.stopped_at is None and not d.crossed and d.action(4) == "stop (last look)"
    assert d.sentence().startswith("no difference detected after all 4 looks (8 seeds per group")


SEQ_ARGS = ["--seeds", "0:8", "--wd", "0.5,1", "--until-decided", "wd", "--look-every", "2", "--wave-size", "4"]


@pytest.mark.slow
def test_a_scan_in_looks_stops_writes_its_decision_and_reads_as_an_ordinary_scan(tmp_path, capsys):
    import json

    import jax

    from jgrok import open_scan, report, scan
    from tests.conftest import TINY_ARGS

    out = tmp_path / "seq"
    # 12 updates: no run reaches 99%, Z = 0 at the first look, whose conditional power is below 0.2: futility
    assert scan.main(TINY_ARGS + SEQ_ARGS + ["--futility", "0.2", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "look 1 of 4 (2 seeds per group; reached 99%: 0 of wd=0.5, 0 of wd=1): Z = +0.00" in cap.err
    assert "stop for futility" in cap.err and "look 2 of 4" not in cap.err
    assert "no difference detected: stopped for futility at look 1 of 4" in cap.out
    d = json.loads((out / "sequential.json").read_text())
    assert d["stopped_at"] == 1 and not d["crossed"] and d["seeds_per_group"] == 2
    folder = open_scan(out)
    assert [r["run"] for r in folder.summary] == [0, 1, 8, 9] == [r["run"] for r in folder.runs]
    assert folder.only == "0:2,8:10" and sorted(p.name for p in (out / "looks").iterdir()) == ["look_0"]
    # parameters come from the look's own checkpoints
    for a, b in zip(jax.tree.leaves(folder.restore([9])[0]), jax.tree.leaves(open_scan(out / "looks" / "look_0")
                                                                          .restore([9])[0])):
        np.testing.assert_array_equal(a, b)
    assert folder.step(9) == 12
    text = report.build_report(out).read_text()
    assert "## Until decided (sequential comparison)" in text and "| 1 | 2 | 0 / 0 | +0.00 | 4.33 | stop for futility |" \
        in text and "| 2 | 4 | not trained |" in text
    # a run of it again with --only, as an ordinary scan at the same W: bit-identical
    again = tmp_path / "again"
    assert scan.main(["--config", str(out / "config.yaml"), "--only", "9", "--out", str(again), "--quiet"]) == 0
    assert "without the looks of --until-decided" in capsys.readouterr().err
    np.testing.assert_array_equal(open_scan(again).curves("val_loss")[0][0], folder.curves("val_loss")[0][1 + 2])
    assert not (again / "sequential.json").exists()


@pytest.mark.slow
def test_a_scan_in_looks_resumes_between_and_inside_looks_bit_identically(tmp_path, capsys):
    import shutil

    from jgrok import open_scan, scan
    from tests.conftest import TINY_ARGS

    whole = tmp_path / "whole"
    assert scan.main(TINY_ARGS + SEQ_ARGS + ["--out", str(whole)]) == 0
    err = capsys.readouterr().err
    assert "look 4 of 4 (8 seeds per group" in err and "stop (last look)" in err
    assert open_scan(whole).only is None and len(open_scan(whole).summary) == 16
    # a scan that was stopped during look 3 (its final checkpoint written, its results not) and before look 4
    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    for name in ("summary.csv", "metrics.npz", "final_info.json", "sequential.json"):
        (cut / name).unlink()
        (cut / "looks" / "look_2" / name).unlink(missing_ok=True)
    shutil.rmtree(cut / "looks" / "look_3")
    assert scan.main(["--resume", str(cut), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Look 4 of 4" not in err  # --quiet
    assert open_scan(cut).summary == open_scan(whole).summary
    a, b = open_scan(cut).metrics(per_update=True), open_scan(whole).metrics(per_update=True)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert (cut / "sequential.json").read_text() == (whole / "sequential.json").read_text()
    # the design cannot change on resume
    assert scan.main(["--resume", str(cut), "--look-every", "4"]) == 2
