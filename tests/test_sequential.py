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
