"""Algorithmic tasks: binary operations on Z_p and on the permutation group S_n.

Every task is the table of a binary operation ``a o b = c``. By default (``task.vocab: template``) it is written
as a 4-token sequence exactly as the AI-Scientist grokking template writes it:

- vocabulary ``["o", "="] + elements``; token of element i is ``i + 2``, so ``"o"`` is 0 and ``"="`` is 1;
- input ``[a, "o", b, "="]``; label = index of c among the elements (p classes mod p, n! for permutations);
- pair index ``i`` stands for ``a = elems1[i // len(elems2)]``, ``b = elems2[i % len(elems2)]``;
- the split seed shuffles the pair indices; the first ``floor(N * fraction)`` are the training pairs.

Elements are ``0 .. p-1`` for the modular tasks and the permutations of ``range(n)`` in lexicographic order for
the group tasks (the template uses the order of a Python ``set``, which is not defined; we fix it).
Permutations compose as functions: ``(a * b)[i] = a[b[i]]``.

Other sources write the same table with other tokens (``task.vocab``, see :data:`VOCABS`): ironjr/grokfast
(``main.py``) puts the numbers first, ``"="`` = p and ``"o"`` = p + 1, and its output layer scores every one of the
p + 2 tokens; the Julia/Flux reproduction (``signed``) takes operands 1..p, computes ``c`` with Julia's ``%``
(the remainder with the sign of the dividend, so x - y can be negative) and writes numbers -p..p; Nanda et al.
(``nanda``, progress-measures-paper ``transformers.py``) write ``[a, b, "="]`` with no operator token
and "=" = p. Modular tasks only, for the non-template vocabularies.

Tables are built once with NumPy; nothing here runs at train time.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable

import numpy as np

from jgrok.errors import ConfigError

# name -> (formula for the docs, b range, function of (a, b, p) on int64 arrays, needs prime p)
# "b range": "all" is [0, p), "nonzero" is [1, p).
_MOD_OPS: dict[str, tuple[str, str, Callable, bool]] = {
    "x_plus_y": ("(x + y) mod p", "all", lambda a, b, p: a + b, False),
    "x_minus_y": ("(x - y) mod p", "all", lambda a, b, p: a - b, False),
    "x_div_y": ("x * y^(p-2) mod p  (x / y)", "nonzero", lambda a, b, p: a * _inverse(b, p), True),
    "x_times_y": ("x * y mod p", "nonzero", lambda a, b, p: a * b, False),
    "x2_plus_y": ("x^2 + y mod p", "all", lambda a, b, p: a * a + b, False),
    "x3_plus_y": ("x^3 + y mod p", "all", lambda a, b, p: a * a % p * a + b, False),
    "x2_plus_y2": ("x^2 + y^2 mod p", "all", lambda a, b, p: a * a + b * b, False),
    "x2_plus_xy_plus_y2": ("x^2 + xy + y^2 mod p", "all", lambda a, b, p: a * a + a * b + b * b, False),
    "x2_plus_xy_plus_y2_plus_x": (
        "x^2 + xy + y^2 + x mod p", "all", lambda a, b, p: a * a + a * b + b * b + a, False),
    "x3_plus_xy": ("x^3 + xy mod p", "all", lambda a, b, p: a * a % p * a + a * b, False),
    "x3_plus_xy2_plus_y": (
        "x^3 + x y^2 + y mod p", "all", lambda a, b, p: a * a % p * a + a * (b * b % p) + b, False),
    "x_div_y_if_y_odd_else_x_minus_y": (
        "x / y mod p if y is odd, else x - y mod p", "all",
        lambda a, b, p: np.where(b % 2 == 1, a * _inverse(b, p), a - b), True),
    "x_plus_y_if_x_even_else_x_times_y": (
        "x + y mod p if x is even, else x * y mod p", "all", lambda a, b, p: np.where(a % 2 == 0, a + b, a * b), False),
    "x_plus_y_if_x_even_else_x_minus_y": (
        "x + y mod p if x is even, else x - y mod p", "all", lambda a, b, p: np.where(a % 2 == 0, a + b, a - b), False),
}

_PERM_OPS: dict[str, tuple[str, Callable]] = {
    "permutation": ("x * y (composition in S_n)", lambda a, b, inv: _compose(a, b)),
    "perm_xyx_inv": ("x * y * x^-1 (conjugation in S_n)", lambda a, b, inv: _compose(_compose(a, b), inv(a))),
    "perm_xyx": ("x * y * x in S_n", lambda a, b, inv: _compose(_compose(a, b), a)),
}

OPERATIONS: dict[str, str] = {**{k: v[0] for k, v in _MOD_OPS.items()}, **{k: v[0] for k, v in _PERM_OPS.items()}}


def _inverse(b: np.ndarray, p: int) -> np.ndarray:
    """Multiplicative inverse b^(p-2) mod p (Fermat), elementwise; 0 maps to 0."""
    return np.array([pow(int(x), p - 2, p) for x in np.ravel(b)], dtype=np.int64).reshape(np.shape(b))


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of a and b are permutations; (a * b)[i] = a[b[i]]."""
    return np.take_along_axis(a, b, axis=-1)


@dataclasses.dataclass(frozen=True)
class Vocab:
    """How one source writes ``a o b = c`` as tokens (see the module docstring)."""

    name: str
    offset: int  # the token of number v is v + offset
    op: int | None  # the operator token (None: the input is [a, b, "="])
    eq: int  # the "=" token
    size: int  # tokens in the vocabulary
    full_output: bool  # the output layer scores every token (label = token of c), else the p elements (label = c)
    signed: bool = False  # operands 1..p and c = Julia rem(f(a, b), p) in -(p-1)..p-1

    @property
    def n_tokens(self) -> int:
        """T, the tokens of one example: [a, o, b, =], or [a, b, =] without an operator token."""
        return 4 if self.op is not None else 3

    def inputs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """int64[N, T] token sequences of operand values a, b."""
        n = len(a)
        cols = [a + self.offset] + ([np.full(n, self.op)] if self.op is not None else []) + [b + self.offset]
        return np.stack(cols + [np.full(n, self.eq)], axis=1).astype(np.int64)


VOCABS = ("template", "grokfast", "signed", "nanda")


def vocab(name: str, n_elems: int) -> Vocab:
    """The token layout ``name`` for a table of ``n_elems`` elements (p for the modular tasks)."""
    p = n_elems
    if name == "template":  # ["o", "="] + elements
        return Vocab(name, offset=2, op=0, eq=1, size=p + 2, full_output=False)
    if name == "grokfast":  # elements, then "=" = p, "o" = p + 1 (ironjr/grokfast main.py: eq_token, op_token)
        return Vocab(name, offset=0, op=p + 1, eq=p, size=p + 2, full_output=True)
    if name == "signed":  # numbers -p..p (2p + 1 tokens), then "=" and "o": 2p + 3 tokens (197 for p = 97)
        return Vocab(name, offset=p, op=2 * p + 2, eq=2 * p + 1, size=2 * p + 3, full_output=True, signed=True)
    if name == "nanda":  # elements, then "=" = p; no operator token; the unembedding scores all p + 1 tokens
        return Vocab(name, offset=0, op=None, eq=p, size=p + 1, full_output=True)
    raise ConfigError(f"task.vocab '{name}' is unknown; use one of {', '.join(VOCABS)}.")


def n_tokens(cfg) -> int:
    """T, the tokens per example of a task with task settings ``cfg`` (jgrok.config.TaskConfig)."""
    return vocab(getattr(cfg, "vocab", "template"), 2).n_tokens


def is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, math.isqrt(p) + 1))


def is_modular(name: str) -> bool:
    """True for the tasks on Z_p (the ones task.p applies to)."""
    return name in _MOD_OPS


def check_task(name: str, cfg) -> None:
    """Raise ConfigError if task ``name`` cannot be built with the task settings ``cfg``."""
    if name in _MOD_OPS:
        if cfg.p < 2:
            raise ConfigError(f"task.p must be at least 2, not {cfg.p}.")
        if cfg.p > 2000:
            raise ConfigError(f"task.p = {cfg.p} makes a table of {cfg.p ** 2} pairs; use p <= 2000.")
        if _MOD_OPS[name][3] and not is_prime(cfg.p):
            raise ConfigError(f"Task '{name}' divides mod p, so task.p must be prime; {cfg.p} is not.")
    elif name in _PERM_OPS:
        if not 2 <= cfg.perm_n <= 6:
            raise ConfigError(f"task.perm_n must be between 2 and 6, not {cfg.perm_n}.")
    else:
        raise ConfigError(f"Unknown task '{name}'; known tasks: {', '.join(OPERATIONS)}.")
    vocab_name = getattr(cfg, "vocab", "template")
    vocab(vocab_name, 2)  # a known name
    if vocab_name != "template" and name not in _MOD_OPS:
        raise ConfigError(f"task.vocab '{vocab_name}' writes numbers mod p; task '{name}' needs task.vocab: template.")
    if vocab_name == "signed" and _MOD_OPS[name][3]:
        raise ConfigError(f"task.vocab 'signed' takes operands 1..p, so p itself would be divided by; "
                          f"task '{name}' needs another task.vocab.")


@dataclasses.dataclass(frozen=True)
class Table:
    """All pairs of one operation. ``inputs[N, T]`` int32 tokens (T = ``vocab.n_tokens``), ``targets[N]`` int32 labels."""

    name: str
    inputs: np.ndarray
    targets: np.ndarray
    n_vocab: int
    n_out: int
    n_train: int  # floor(N * fraction)
    vocab: Vocab | None = None  # the token layout (None for the permutation tasks' template layout)

    @property
    def n_pairs(self) -> int:
        return len(self.targets)


def train_size(n_pairs: int, fraction: float) -> int:
    """The training-set size of a table of ``n_pairs`` pairs at training fraction ``fraction``: floor(N x
    fraction) (a run's training set is the first that many pairs of its split seed's permutation)."""
    return int(math.floor(n_pairs * fraction))


def build(name: str, cfg) -> Table:
    """Build the full table of task ``name`` (cfg: jgrok.config.TaskConfig)."""
    check_task(name, cfg)
    voc = None
    if name in _MOD_OPS:
        _, b_range, fn, _ = _MOD_OPS[name]
        p = cfg.p
        voc = vocab(getattr(cfg, "vocab", "template"), p)
        if voc.signed:  # Julia: for a in 1:p, for b in 1:p; c = f(a, b) % p (sign of the dividend)
            elems1 = elems2 = np.arange(1, p + 1, dtype=np.int64)
        else:
            elems1 = np.arange(p, dtype=np.int64)
            elems2 = np.arange(1 if b_range == "nonzero" else 0, p, dtype=np.int64)
        a = np.repeat(elems1, len(elems2))
        b = np.tile(elems2, len(elems1))
        labels = np.fmod(fn(a, b, p), p) if voc.signed else np.mod(fn(a, b, p), p)
        ia, ib, n_elems = a, b, p
    else:
        _, fn = _PERM_OPS[name]
        perms = np.array(sorted(itertools.permutations(range(cfg.perm_n))), dtype=np.int64)
        n_elems = len(perms)
        index = {tuple(q): i for i, q in enumerate(perms)}
        ia = np.repeat(np.arange(n_elems), n_elems)
        ib = np.tile(np.arange(n_elems), n_elems)
        inv = lambda x: np.argsort(x, axis=-1)  # noqa: E731  (inverse permutation)
        out = fn(perms[ia], perms[ib], inv)
        labels = np.array([index[tuple(r)] for r in out], dtype=np.int64)
    n = len(labels)
    voc = voc or vocab("template", n_elems)
    inputs = voc.inputs(ia, ib)
    if voc.full_output:  # the label is the token of c
        labels = labels + voc.offset
    return Table(
        name=name,
        inputs=inputs.astype(np.int32),
        targets=labels.astype(np.int32),
        n_vocab=voc.size,
        n_out=voc.size if voc.full_output else n_elems,
        n_train=train_size(n, cfg.fraction),
        vocab=voc,
    )

