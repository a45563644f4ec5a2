import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jgrok import config, init
from jgrok.models import transformer

D = 128


def shapes(n_vocab=99, n_out=97):
    return transformer.abstract(config.ModelConfig(), n_vocab, n_out)[1]


def test_parameter_counts():
    count = lambda s: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(s))  # noqa: E731
    assert count(shapes(99, 97)) == 422_625  # mod-97 tasks
    assert count(shapes(122, 120)) == 428_536  # S5


def params_for(scheme, seed=0):
    s = shapes()
    G = len(init.groups(s))
    schemes = (scheme,)
    p = jax.jit(lambda: init.init_params(s, jnp.full(G, seed), jnp.zeros(G, jnp.int32), 1.0, schemes))()
    return {init.path_str(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(p)[0]}


@pytest.fixture(scope="module")
def default_params():
    return params_for("default")


def check_uniform(x, bound):
    assert np.abs(x).max() <= bound
    assert np.abs(x).max() > 0.98 * bound  # fills the interval
    assert abs(x.var() - bound ** 2 / 3) < 0.05 * bound ** 2 / 3 + 4 * bound ** 2 / np.sqrt(x.size)


def check_normal(x, std):
    assert abs(x.mean()) < 5 * std / np.sqrt(x.size)
    assert abs(x.std() - std) < 0.03 * std + 5 * std / np.sqrt(2 * x.size)


def test_pytorch_default_init(default_params):
    p = default_params
    check_normal(p["tok_emb/embedding"], 1.0)  # nn.Embedding: N(0, 1)
    check_normal(p["pos_emb/embedding"], 1.0)
    for i in range(2):
        b = f"blocks/{i}"
        check_uniform(p[f"{b}/attn/qkv/kernel"], np.sqrt(6 / (D + 3 * D)))  # in_proj: xavier_uniform
        assert (p[f"{b}/attn/qkv/bias"] == 0).all() and (p[f"{b}/attn/out/bias"] == 0).all()
        check_uniform(p[f"{b}/attn/out/kernel"], 1 / np.sqrt(D))  # nn.Linear: U(+-1/sqrt(fan_in))
        check_uniform(p[f"{b}/mlp_in/kernel"], 1 / np.sqrt(D))
        check_uniform(p[f"{b}/mlp_in/bias"], 1 / np.sqrt(D))
        check_uniform(p[f"{b}/mlp_out/kernel"], 1 / np.sqrt(4 * D))
        check_uniform(p[f"{b}/mlp_out/bias"], 1 / np.sqrt(4 * D))
        for ln in ("ln1", "ln2"):
            assert (p[f"{b}/{ln}/scale"] == 1).all() and (p[f"{b}/{ln}/bias"] == 0).all()
    check_uniform(p["head/kernel"], 1 / np.sqrt(D))
    check_uniform(p["head/bias"], 1 / np.sqrt(D))
    assert (p["final_ln/scale"] == 1).all()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", [s for s in init.SCHEMES if s != "default"])
def test_scheme_statistics(scheme):
    p = params_for(scheme)
    # (kernel shape [in, out]: fan_in = in, fan_out = out; embedding [V, D]: fan_in = D, fan_out = V)
    for name, (fi, fo) in {"blocks/0/mlp_in/kernel": (D, 4 * D), "blocks/1/mlp_out/kernel": (4 * D, D),
                           "tok_emb/embedding": (D, 99), "head/kernel": (D, 97)}.items():
        x = p[name]
        if scheme == "xavier_uniform":
            check_uniform(x, np.sqrt(6 / (fi + fo)))
        elif scheme == "xavier_normal":
            check_normal(x, np.sqrt(2 / (fi + fo)))
        elif scheme == "he_uniform":
            check_uniform(x, np.sqrt(6 / fi))
        elif scheme == "he_normal":
            check_normal(x, np.sqrt(2 / fi))
        elif scheme == "lecun_normal":
            check_normal(x, np.sqrt(1 / fi))
        elif scheme == "uniform":
            check_uniform(x, 0.1)
        elif scheme == "orthogonal":
            w = x.T if name.endswith("kernel") else x  # torch's [out, in] / [V, D] matrix
            small = min(w.shape)
            gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
            np.testing.assert_allclose(gram, np.eye(small), atol=2e-5)
        elif scheme == "nanda":  # randn / sqrt(d_model), the output layer randn / sqrt(V)
            check_normal(x, 1 / np.sqrt(fo if name == "head/kernel" else D))
    if scheme == "nanda":  # Nanda's W_Q, W_K, W_V are randn / sqrt(d_model) too
        check_normal(p["blocks/0/attn/qkv/kernel"], 1 / np.sqrt(D))
        p["blocks/0/attn/qkv/kernel"] = params_for("default")["blocks/0/attn/qkv/kernel"]
    # a non-default scheme zeroes Linear biases, keeps LayerNorm 1/0 and the attention in-projection default
    assert (p["blocks/0/mlp_in/bias"] == 0).all() and (p["head/bias"] == 0).all()
    assert (p["blocks/0/ln1/scale"] == 1).all()
    np.testing.assert_array_equal(p["blocks/0/attn/qkv/kernel"], params_for("default")["blocks/0/attn/qkv/kernel"])


def test_groups_are_stable_and_cover_every_tensor():
    s = shapes()
    assert init.groups(s) == ["embedding", "position", "block0_attn", "block0_mlp", "block1_attn", "block1_mlp",
                              "head", "norms"]
    lg = init.leaf_groups(s)
    assert lg["blocks/1/attn/qkv/kernel"] == "block1_attn" and lg["final_ln/scale"] == "norms"
    assert lg["head/kernel"] == "head" and lg["blocks/0/ln2/bias"] == "norms"


@pytest.mark.slow
def test_group_override_takes_exactly_that_groups_tensors():
    """A run whose 'head' group uses seed 1 has seed 1's head and seed 0's everything else."""
    s = shapes()
    G = len(init.groups(s))
    g_head = init.groups(s).index("head")
    seeds = np.zeros(G, np.int32)
    seeds[g_head] = 1
    mixed = init.init_params(s, jnp.asarray(seeds), jnp.zeros(G, jnp.int32), 1.0, ("default",))
    p0, p1 = params_for("default", 0), params_for("default", 1)
    for k, v in jax.tree_util.tree_flatten_with_path(mixed)[0]:
        name = init.path_str(k)
        src = p1 if name.startswith("head/") else p0
        np.testing.assert_array_equal(np.asarray(v), src[name])


@pytest.mark.parametrize("rows,cols", [(6, 6), (99, 128), (512, 128), (7, 1)])
def test_orthogonal_is_torchs_haar_construction(rows, cols):
    """The orthogonal scheme is torch.nn.init.orthogonal_'s construction: the same normal matrix, made tall, Q of
    its QR with diag(R) > 0 (the sign correction that makes Q Haar-distributed), made wide again. Checked against
    LAPACK's QR in float64 (NumPy), sign-corrected; jgrok computes it without LAPACK (init.qr_q)."""
    key = jax.random.key(rows * 1000 + cols)
    q = np.asarray(jax.jit(init._orthogonal, static_argnums=(1, 2))(key, rows, cols))
    a = np.asarray(jax.random.normal(key, (rows, cols), jnp.float32), np.float64)
    a = a.T if rows < cols else a
    ref, r = np.linalg.qr(a)
    ref = ref * np.sign(np.diag(r))[None, :]
    np.testing.assert_allclose(q, ref.T if rows < cols else ref, atol=2e-6)


def test_init_uses_no_lapack_kernel():
    """No LAPACK custom call (they hang XLA's CPU thread pool when several run at once) in a run's initialisation,
    whatever the scheme."""
    s = shapes()
    G = len(init.groups(s))
    text = jax.jit(lambda seed, scheme: init.init_params(s, jnp.full(G, seed), jnp.full(G, scheme), 1.0,
                                                         init.SCHEMES)).lower(0, 0).as_text()
    assert "lapack" not in text.lower() and "custom_call" not in text, "a LAPACK kernel is back in init_params"
