import itertools

import numpy as np
import pytest

from jgrok import config
from jgrok.errors import ConfigError
from jgrok.tasks import algorithmic

P = 97


def direct(name, a, b, p):
    """Straight Python arithmetic, independent of the NumPy tables."""
    inv = lambda y: pow(y, p - 2, p)  # noqa: E731
    return {
        "x_plus_y": lambda: (a + b) % p,
        "x_minus_y": lambda: (a - b) % p,
        "x_div_y": lambda: (a * inv(b)) % p,
        "x_times_y": lambda: (a * b) % p,
        "x2_plus_y": lambda: (a ** 2 + b) % p,
        "x3_plus_y": lambda: (a ** 3 + b) % p,
        "x2_plus_y2": lambda: (a ** 2 + b ** 2) % p,
        "x2_plus_xy_plus_y2": lambda: (a ** 2 + a * b + b ** 2) % p,
        "x2_plus_xy_plus_y2_plus_x": lambda: (a ** 2 + a * b + b ** 2 + a) % p,
        "x3_plus_xy": lambda: (a ** 3 + a * b) % p,
        "x3_plus_xy2_plus_y": lambda: (a ** 3 + a * b ** 2 + b) % p,
        "x_div_y_if_y_odd_else_x_minus_y": lambda: (a * inv(b)) % p if b % 2 else (a - b) % p,
        "x_plus_y_if_x_even_else_x_times_y": lambda: (a + b) % p if a % 2 == 0 else (a * b) % p,
        "x_plus_y_if_x_even_else_x_minus_y": lambda: (a + b) % p if a % 2 == 0 else (a - b) % p,
    }[name]()


MOD_OPS = [n for n in algorithmic.OPERATIONS if not n.startswith("perm")]


@pytest.mark.parametrize("name", MOD_OPS)
def test_modular_tables_match_python(name):
    t = algorithmic.build(name, config.TaskConfig(p=P))
    b_lo = 1 if name in ("x_div_y", "x_times_y") else 0
    pairs = [(a, b) for a in range(P) for b in range(b_lo, P)]
    assert t.n_pairs == len(pairs)
    expect = np.array([direct(name, a, b, P) for a, b in pairs])
    np.testing.assert_array_equal(t.targets, expect)
    np.testing.assert_array_equal(t.inputs[:, 0], [a + 2 for a, _ in pairs])
    np.testing.assert_array_equal(t.inputs[:, 2], [b + 2 for _, b in pairs])
    assert (t.inputs[:, 1] == 0).all() and (t.inputs[:, 3] == 1).all()  # "o" and "="
    assert t.n_vocab == P + 2 and t.n_out == P


def compose(x, y):
    return tuple(x[y[i]] for i in range(len(y)))


def inverse(x):
    out = [0] * len(x)
    for i, v in enumerate(x):
        out[v] = i
    return tuple(out)


@pytest.mark.parametrize("name,fn", [
    ("permutation", lambda a, b: compose(a, b)),
    ("perm_xyx_inv", lambda a, b: compose(compose(a, b), inverse(a))),
    ("perm_xyx", lambda a, b: compose(compose(a, b), a)),
])
def test_permutation_tables_match_python(name, fn):
    t = algorithmic.build(name, config.TaskConfig())
    perms = sorted(itertools.permutations(range(5)))
    assert t.n_pairs == 14400 and t.n_vocab == 122 and t.n_out == 120
    expect = [perms.index(fn(a, b)) for a in perms for b in perms]
    np.testing.assert_array_equal(t.targets, expect)


def test_ai_scientist_sizes():
    sizes = {n: algorithmic.build(n, config.TaskConfig()) for n in ("x_plus_y", "x_minus_y", "x_div_y", "permutation")}
    assert {n: t.n_pairs for n, t in sizes.items()} == {"x_plus_y": 9409, "x_minus_y": 9409, "x_div_y": 9312,
                                                       "permutation": 14400}
    assert {n: t.n_train for n, t in sizes.items()} == {"x_plus_y": 4704, "x_minus_y": 4704, "x_div_y": 4656,
                                                       "permutation": 7200}


def test_bad_tasks():
    with pytest.raises(ConfigError, match="prime"):
        algorithmic.build("x_div_y", config.TaskConfig(p=96))
    with pytest.raises(ConfigError, match="Unknown task"):
        algorithmic.build("x_pow_y", config.TaskConfig())
    # a non-prime modulus is fine where nothing is divided
    assert algorithmic.build("x_plus_y", config.TaskConfig(p=10)).n_pairs == 100
