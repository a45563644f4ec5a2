"""Initial parameters as pure functions of (seeds, schemes, scale) over a parameter pytree.

Every tensor is classified by its path (see :mod:`jgrok.models.transformer` for the layout) and drawn with its
own key: ``fold_in(fold_in(key(seed), INIT), leaf_index)``. The seed is the run's model seed unless the tensor's
*layer group* takes its values from another seed (``seed_G``) and its scheme may differ per group
(``scheme_G``), which is how chimeras between a fast and a slow seed are built. A tensor drawn with seed s and
scheme x is the same tensor whatever else the run does, so a group override takes exactly the values the other
seed would have had.

Schemes (fan_in / fan_out as PyTorch computes them: a Linear weight ``[out, in]`` has fan_in = in; an
Embedding ``[V, D]`` has fan_in = D and fan_out = V):

==================  ===========================================================================================
``default``         PyTorch's defaults: Embedding N(0, 1); Linear weight and bias U(+-1/sqrt(fan_in));
                    attention in-projection Xavier-uniform with zero bias; zero out-projection bias.
``xavier_uniform``  U(+-sqrt(6 / (fan_in + fan_out)))
``xavier_normal``   N(0, 2 / (fan_in + fan_out))
``he_uniform``      Kaiming uniform, fan_in, ReLU gain: U(+-sqrt(6 / fan_in))
``he_normal``       Kaiming normal, fan_in, ReLU gain: N(0, 2 / fan_in)
``orthogonal``      torch.nn.init.orthogonal_ (gain 1) on the ``[out, in]`` matrix
``uniform``         U(-0.1, 0.1)
``lecun_normal``    N(0, 1 / fan_in) (not truncated)
``nanda``           Nanda et al. (2023), progress-measures-paper ``transformers.py``: every weight matrix,
                    embedding and the attention in-projection N(0, 1 / d_model), the output layer N(0, 1 / V)
                    (V its outputs), biases zero
==================  ===========================================================================================

As in the AI-Scientist init study, a non-default scheme applies to the Linear and Embedding weights and sets the
Linear biases to zero; LayerNorm is always 1 / 0; the attention in-projection keeps PyTorch's default (it is a
parameter of ``nn.MultiheadAttention``, not an ``nn.Linear``, so the study's ``isinstance`` loop never touches it).
``scale`` (Omnigrok's alpha) multiplies every initial parameter.

Layer groups (stable names, used by overrides and by chimera attribution) are named by the model that owns the
parameter (``layer_group`` of each module in jgrok.models): the transformer's ``embedding``, ``position``,
``block{i}_attn`` (in- and out-projection), ``block{i}_mlp`` (both MLP layers), ``norms`` (every LayerNorm),
``head`` (the output layer). The m-height ResNet (:mod:`jgrok.models.resnet`): ``input``, ``block{i}`` (its
Linear), ``norms``, ``head``. The MLP (:mod:`jgrok.models.mlp`): ``hidden{i}``, ``head``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jgrok import models

SCHEMES = ("default", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "orthogonal", "uniform",
           "lecun_normal", "nanda")
PURPOSE_INIT = 0  # purposes of the per-run keys: see jgrok.train


@dataclasses.dataclass(frozen=True)
class Leaf:
    path: str  # "blocks/0/attn/qkv/kernel"
    index: int  # position in the sorted list of leaves: the per-tensor key's fold-in
    shape: tuple
    kind: str  # embedding, kernel, bias, qkv_kernel, zero_bias, ln_scale, ln_bias
    group: str
    fan_in: int
    fan_out: int


def path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _classify(parts: list[str], shape: tuple, kernels: dict) -> tuple[str, str, int, int]:
    name = parts[-1]
    owner = "/".join(parts[:-1])
    group = models.layer_group(parts)  # the model that owns the path names its group
    if name == "embedding":
        return "embedding", group, shape[1], shape[0]
    if name == "scale":
        return "ln_scale", group, 0, 0
    if name == "bias" and group == "norms":
        return "ln_bias", group, 0, 0
    if name == "kernel":
        kind = "qkv_kernel" if parts[-2] == "qkv" else "kernel"
        return kind, group, shape[0], shape[1]
    if name == "bias":
        if parts[-2] in ("qkv", "out") and parts[-3] == "attn":
            return "zero_bias", group, 0, 0
        fan_in = kernels[owner][0]
        return "bias", group, fan_in, 0
    raise ValueError(f"cannot classify parameter {'/'.join(parts)}")


def leaves(shapes) -> list[Leaf]:
    """Describe every tensor of a parameter pytree (of arrays or ShapeDtypeStructs), in flatten order."""
    flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
    paths = [path_str(p) for p, _ in flat]
    kernels = {p.rsplit("/", 1)[0]: tuple(x.shape) for p, (_, x) in zip(paths, flat) if p.endswith("kernel")}
    order = {p: i for i, p in enumerate(sorted(paths))}
    out = []
    for p, (_, x) in zip(paths, flat):
        kind, group, fan_in, fan_out = _classify(p.split("/"), tuple(x.shape), kernels)
        out.append(Leaf(p, order[p], tuple(x.shape), kind, group, fan_in, fan_out))
    return out


def groups(shapes) -> list[str]:
    """Layer-group names of a model, in a stable order."""
    names = []
    for leaf in sorted(leaves(shapes), key=lambda l: l.index):
        if leaf.group not in names:
            names.append(leaf.group)
    first = ("embedding", "position", "input")
    key = lambda g: (0, g) if g in first else (2, g) if g in ("norms", "head") else (1, g)  # noqa
    return sorted(names, key=key)


def qr_q(a_MxN):
    """Q of the thin QR decomposition ``a = Q R`` with a positive diagonal of R, for M >= N, computed with plain
    array operations: Gram-Schmidt with the projection applied twice per column ("twice is enough", which keeps
    Q orthonormal to float32 rounding for any full-rank matrix), one column per step of a ``fori_loop``.

    Why not ``jnp.linalg.qr``: on CPU it calls jaxlib's LAPACK kernel through XLA's CPU runtime, whose kernels
    wait on XLA's own thread pool; several of them at once (one per lane of a wave) filled the pool and hung the
    scan forever under jax 0.10 on a 2-core machine. This function is ordinary XLA arithmetic on every backend.
    The QR with positive diag(R) is unique, so this Q equals LAPACK's Q times sign(diag(R)), which is exactly
    what ``torch.nn.init.orthogonal_`` returns (up to rounding)."""
    m, n = a_MxN.shape
    hi = jax.lax.Precision.HIGHEST  # full float32 products on every backend (GPUs would otherwise use TF32)

    def column(j, q_MxN):  # columns >= j of q are still zero, so they do not take part in the projection
        v = jax.lax.dynamic_index_in_dim(a_MxN, j, axis=1, keepdims=False)
        for _ in range(2):
            v = v - jnp.dot(q_MxN, jnp.dot(v, q_MxN, precision=hi), precision=hi)
        v = v * jax.lax.rsqrt(jnp.sum(v * v))
        return jax.lax.dynamic_update_index_in_dim(q_MxN, v, j, axis=1)

    return jax.lax.fori_loop(0, n, column, jnp.zeros((m, n), a_MxN.dtype))


def _orthogonal(key, rows: int, cols: int):
    """torch.nn.init.orthogonal_ for a [rows, cols] matrix: orthonormal rows or columns, whichever are fewer.
    As torch does: a standard normal matrix, transposed to be tall, Q of its QR with R's diagonal made positive
    (that sign correction is what makes Q Haar-distributed), transposed back."""
    flat = jax.random.normal(key, (rows, cols), jnp.float32)
    if rows < cols:
        flat = flat.T
    q = qr_q(flat)
    return q.T if rows < cols else q


def _draw(key, scheme: str, leaf: Leaf):
    """The value of one tensor under one scheme (PyTorch's fan conventions)."""
    shape, kind = leaf.shape, leaf.kind
    u = lambda bound: jax.random.uniform(key, shape, jnp.float32, -bound, bound)  # noqa: E731
    n = lambda std: std * jax.random.normal(key, shape, jnp.float32)  # noqa: E731
    if kind == "ln_scale":
        return jnp.ones(shape, jnp.float32)
    if kind in ("ln_bias", "zero_bias"):
        return jnp.zeros(shape, jnp.float32)
    if scheme == "nanda" and kind in ("embedding", "kernel", "qkv_kernel"):
        if leaf.group == "head":  # W_U: randn(d_model, d_vocab) / sqrt(d_vocab)
            return n(shape[1] ** -0.5)
        # every other matrix is randn / sqrt(d_model); d_model is the smaller side of each (embeddings [V, D] too,
        # since V >= D is not assumed: their width is the last axis)
        return n((shape[1] if kind == "embedding" else min(shape)) ** -0.5)
    if kind == "qkv_kernel":  # torch: xavier_uniform on in_proj_weight [3D, D], whatever the scheme
        return u((6.0 / (leaf.fan_in + leaf.fan_out)) ** 0.5)
    if scheme == "default":
        if kind == "embedding":
            return n(1.0)
        return u(leaf.fan_in ** -0.5)  # kernel and bias: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in))
    if kind == "bias":
        return jnp.zeros(shape, jnp.float32)
    fi, fo = leaf.fan_in, leaf.fan_out
    if scheme == "xavier_uniform":
        return u((6.0 / (fi + fo)) ** 0.5)
    if scheme == "xavier_normal":
        return n((2.0 / (fi + fo)) ** 0.5)
    if scheme == "he_uniform":
        return u((6.0 / fi) ** 0.5)
    if scheme == "he_normal":
        return n((2.0 / fi) ** 0.5)
    if scheme == "lecun_normal":
        return n((1.0 / fi) ** 0.5)
    if scheme == "uniform":
        return u(0.1)
    if scheme == "orthogonal":
        if kind == "embedding":  # torch weight [V, D] is stored as is
            return _orthogonal(key, shape[0], shape[1])
        return _orthogonal(key, shape[1], shape[0]).T  # torch weight [out, in] = our kernel transposed
    raise ValueError(scheme)


def tensor_key(seed, leaf: Leaf):
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), PURPOSE_INIT), leaf.index)


def init_params(shapes, seed_G, scheme_G, scale, schemes: tuple[str, ...]):
    """Initial parameters of one run.

    shapes:  the model's parameter pytree (arrays or ShapeDtypeStructs).
    seed_G:  int array [G], the seed of each layer group (``groups(shapes)`` order).
    scheme_G: int array [G], index into ``schemes`` (the static tuple of schemes this scan uses) per group.
    scale:   float, multiplies every tensor.
    """
    group_names = groups(shapes)
    flat, treedef = jax.tree_util.tree_flatten(shapes)
    out = []
    for leaf in leaves(shapes):
        g = group_names.index(leaf.group)
        key = tensor_key(seed_G[g], leaf)
        options = [_draw(key, s, leaf) for s in schemes]
        value = options[0]
        for i in range(1, len(schemes)):
            value = jnp.where(scheme_G[g] == i, options[i], value)
        out.append(value * scale)
    return jax.tree_util.tree_unflatten(treedef, out)


def leaf_groups(shapes) -> dict[str, str]:
    """path -> layer group, for analysis code that works on saved parameters."""
    return {leaf.path: leaf.group for leaf in leaves(shapes)}


PURPOSE_PERTURB = 3  # key purpose of the chaos-floor perturbation (see jgrok.train for the others)


def perturb_ulp(params, k):
    """Perturbation ``k`` of initial parameters by rounding-level noise: for k = 0 the parameters unchanged; for
    k > 0 every float32 entry moved by exactly one ulp, up or down (``jnp.nextafter`` towards +inf or -inf), with a
    sign pattern drawn from ``fold_in(fold_in(key(k), PURPOSE_PERTURB), leaf)``. It depends only on k and the
    tensor's position, never on the run's seeds, so perturbation k of two runs flips the same entries the same way.
    """
    flat, treedef = jax.tree_util.tree_flatten(params)
    out = []
    for i, x in enumerate(flat):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(k), PURPOSE_PERTURB), i)
        up = jax.random.bernoulli(key, 0.5, x.shape)
        moved = jnp.nextafter(x, jnp.where(up, jnp.inf, -jnp.inf).astype(x.dtype))
        out.append(jnp.where(k > 0, moved, x))
    return jax.tree_util.tree_unflatten(treedef, out)
