"""GFLOP/s of the template-size step's matmul shapes on the default device, for one lane and for W lanes.

    python benchmarks/batched_matmul.py                       # the template's shapes, W = 8
    python benchmarks/batched_matmul.py --lanes 16 --rows 512,2048,8192

One lane multiplies [M, K] x [K, N] (``a @ b`` under jax.jit); W lanes are the same product under jax.vmap over a
leading axis of W distinct operands, which XLA compiles to one batched dot_general: what a wave's dense layers
become. Rows M are examples x 4 tokens (2,048 for a training batch of 512; an evaluation slice of 2,048 examples
is 8,192; the template's whole validation split 18,816). Every number is the best of ``--repeats`` calls after a
warm-up. A gap between the two columns is a cost of vectorising that no choice of the model's forms removes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import best_seconds  # noqa: E402

SHAPES = ((128, 384), (128, 512), (512, 128), (128, 128))  # (K, N): qkv, MLP in, MLP out, attention out (d 128)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lanes", type=int, default=8, help="W for the batched column")
    ap.add_argument("--rows", default="2048,8192,18816", help="M values (comma list)")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    one = jax.jit(lambda x, y: x @ y)
    wave = jax.jit(jax.vmap(lambda x, y: x @ y))
    rows = []
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}; W = {a.lanes}")
    print(f"{'M x K x N':>20}{'1 lane GFLOP/s':>16}{'W lanes GFLOP/s':>17}{'W / 1':>7}")
    for m in (int(s) for s in a.rows.split(",") if s.strip()):
        for k, n in SHAPES:
            x = jnp.asarray(rng.standard_normal((a.lanes, m, k), np.float32))  # on the device before timing
            y = jnp.asarray(rng.standard_normal((a.lanes, k, n), np.float32))
            flop = 2 * m * k * n
            r1 = flop / best_seconds(one, x[0], y[0], repeats=a.repeats) / 1e9
            rw = a.lanes * flop / best_seconds(wave, x, y, repeats=a.repeats) / 1e9
            rows.append({"m": m, "k": k, "n": n, "one_gflops": r1, "wave_gflops": rw})
            print(f"{f'{m} x {k} x {n}':>20}{r1:>16.0f}{rw:>17.0f}{rw / r1:>7.2f}")
    return rows


if __name__ == "__main__":
    main()
