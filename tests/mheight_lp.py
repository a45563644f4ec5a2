"""Reference m-height by linear programming: the published method, one LP per tuple (slow, exact).

Definitions. For a real codeword c of length n, sort |c_i| descending (0-based order statistics
|c|_(0) >= |c|_(1) >= ...). The m-height is h_m(c) = |c|_(0) / |c|_(m) (infinite if |c|_(m) = 0). For the
code C spanned by the rows of G (k x n, rank k), h_m(C) = max over nonzero codewords c = uG of h_m(c).

Published method (A. Jiang, "Analog Error-Correcting Codes: Designs and Analysis", IEEE Trans. IT 2024):
for every tuple (a, b, X, psi) with a != b positions, X an (m-1)-subset of the other n-2 positions and
psi = (s_0, s_j for j in X) in {+1, -1}^m, solve over u in R^k (c = uG)

    maximise  s_0 c_a
    s.t.      c_b = 1
              s_j c_j <= s_0 c_a   and   s_j c_j >= 1      for j in X
              |c_j| <= 1                                    for j not in {a, b} u X

and h_m(C) is the largest optimum over all n(n-1)C(n-2,m-1)2^m tuples, an infeasible LP counting 0 and an
unbounded one infinity. (Any codeword with |c|_(m) > 0, scaled so that its (m+1)-th largest entry b is 1, is
feasible for the tuple of its own order and signs with objective h_m(c); any feasible point has m+1 entries
a, X, b of magnitude >= 1 and all others <= 1, so its objective is <= h_m(c).)

`lp_height_reduced` solves an equivalent, smaller family (see `jgrok.tasks.mheight_codes` for the proof):
h_m(C) = max over m-subsets T and a in T of  max { c_a : |c_j| <= 1 for j not in T },  n C(n-1, m-1) LPs.
It is an independent check for groups where the published family is too slow to run in tests.

scipy is a dev dependency: this module is the reference for tests and benchmarks, not the fast path.
"""

import itertools

import numpy as np
from scipy.optimize import linprog


def _solve(c_obj, A_ub, b_ub, A_eq, b_eq, options=None):
    """-(min c_obj.u) subject to the rows given; 0.0 if infeasible, inf if unbounded."""
    res = linprog(
        c_obj, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=(None, None), method="highs", options=options
    )
    if res.status == 0:
        return -float(res.fun)
    if res.status == 2:
        return 0.0
    if res.status == 3:
        return np.inf
    raise RuntimeError(f"linprog failed (status {res.status}): {res.message}")


def lp_tuples(n: int, m: int):
    """Yield every published tuple (a, b, X, psi): psi[0] is s_0 (for a), psi[1:] the signs for X."""
    for a in range(n):
        for b in range(n):
            if b == a:
                continue
            rest = [j for j in range(n) if j not in (a, b)]
            for X in itertools.combinations(rest, m - 1):
                for psi in itertools.product((1.0, -1.0), repeat=m):
                    yield a, b, X, psi


def lp_count(n: int, m: int) -> int:
    """Number of LPs the published method solves: n (n-1) C(n-2, m-1) 2^m."""
    from math import comb

    return n * (n - 1) * comb(n - 2, m - 1) * 2**m


def _columns(G_kxn: np.ndarray, m: int) -> tuple[np.ndarray, int]:
    """The code's columns [n, k] in float64 and n; m must be in 1..n-1."""
    G_kxn = np.asarray(G_kxn, dtype=np.float64)
    n = G_kxn.shape[1]
    if not 1 <= m <= n - 1:
        raise ValueError(f"m must be in [1, {n - 1}], got {m}")
    return G_kxn.T, n


def lp_height(G_kxn: np.ndarray, m: int) -> float:
    """h_m(C) of the code spanned by G's rows, by the published LP family (np.inf when some LP is unbounded)."""
    cols_nxk, n = _columns(G_kxn, m)
    best = 0.0
    for a, b, X, psi in lp_tuples(n, m):
        s0, sX = psi[0], psi[1:]
        Y = [j for j in range(n) if j != a and j != b and j not in X]
        rows, rhs = [], []
        for s, j in zip(sX, X):
            rows.append(s * cols_nxk[j] - s0 * cols_nxk[a])  # s_j c_j - s_0 c_a <= 0
            rhs.append(0.0)
            rows.append(-s * cols_nxk[j])  # -s_j c_j <= -1
            rhs.append(-1.0)
        for j in Y:
            rows.append(cols_nxk[j])  # c_j <= 1
            rhs.append(1.0)
            rows.append(-cols_nxk[j])  # -c_j <= 1
            rhs.append(1.0)
        A_ub = np.array(rows) if rows else None
        b_ub = np.array(rhs) if rows else None
        value = _solve(-s0 * cols_nxk[a], A_ub, b_ub, cols_nxk[b][None, :], np.array([1.0]))
        if value == np.inf:
            return np.inf
        best = max(best, value)
    return best


def lp_height_reduced(G_kxn: np.ndarray, m: int) -> float:
    """h_m(C) by the equivalent family max_{T, a in T} max{c_a : |c_j| <= 1, j not in T} (n C(n-1,m-1) LPs)."""
    cols_nxk, n = _columns(G_kxn, m)
    best = 0.0
    for T in itertools.combinations(range(n), m):
        out = [j for j in range(n) if j not in T]
        A_ub = np.concatenate([cols_nxk[out], -cols_nxk[out]])
        b_ub = np.ones(2 * len(out))
        for a in T:  # max c_a = max |c_a|: the feasible set is symmetric under c -> -c
            value = _solve(-cols_nxk[a], A_ub, b_ub, None, None, {"presolve": False})  # ~15% faster here
            if value == np.inf:
                return np.inf
            best = max(best, value)
    return best
