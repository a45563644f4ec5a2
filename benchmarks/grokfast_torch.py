"""The source's own distribution: ironjr/grokfast's training loop (main.py), in PyTorch, over seeds.

    python benchmarks/grokfast_torch.py ema --seeds 0:8 --json out.json
    python benchmarks/grokfast_torch.py ma --seeds 0:8
    python benchmarks/grokfast_torch.py ema --seeds 0:4 --twin

benchmarks/fidelity.py sets jgrok's distribution of steps to 95% val acc beside the one number of Grokfast's README.
One number cannot tell a lucky seed from a difference, so this runs the source's setup itself for several torch
seeds, on the CPU, with the model, filters and optimiser of tests/grokfast_reference.py (a re-implementation of
the source checked against jgrok by tests/test_fidelity_grokfast.py) and the loop of main.py, in main.py's order
of random draws: ``torch.manual_seed(seed)``, the model's initialisation, ``torch.randperm`` for the split into
halves, then one ``torch.randperm`` per epoch for the shuffle; batches of 512 by ``torch.split`` (the last one the
remainder), validation on the whole split after every epoch. So seed 0 here is the source's seed 0 on a CPU.

  steps to 95% val acc   updates done at the first epoch end whose validation accuracy is > 0.95 (the source's
                         plots put that evaluation at (epoch - 1) x 10, ten updates earlier; both are recorded)
  --twin                 jgrok's update (model, filter, Adam of the preset, jitted) trained in lockstep from the
                         torch model's initial weights on the same batches: if the source's number is reached there
                         too, jgrok's arithmetic is the source's, and a gap between the two distributions over seeds
                         can only come from the random draws (initialisation, split, order)
Presets: ema (alpha 0.98, lambda 2, weight decay 0.005; README 910) and ma (window 100, lambda 5, weight decay
0.01; README 790), the settings of the grokfast_ema / grokfast_ma presets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tests import grokfast_reference as ref  # noqa: E402

SETTINGS = {  # filter: (weight decay, filter factory, the README's steps to 95% val acc)
    "ema": (0.005, lambda: ref.EmaFilter(alpha=0.98, lamb=2.0), 910),
    "ma": (0.01, lambda: ref.MaFilter(window=100, lamb=5.0), 790),
}


class Twin:
    """jgrok's update rule (the preset's model, filter and Adam, jitted) in lockstep with the source's loop: it
    starts from the torch model's initial weights and takes exactly the source's batches, so any difference in the
    steps to 95% comes from the update arithmetic (and the chaos float rounding seeds), not from random draws."""

    def __init__(self, kind: str, model):
        import jax
        import jax.numpy as jnp

        from jgrok import config, train

        prog, _ = ref.jgrok_program(config.load(f"grokfast_{kind}"))
        tx, self._step = ref.jgrok_update(prog)
        self.params = ref.jgrok_tree(prog, ref.jgrok_params(model))
        self.opt_state = tx.init(self.params)
        self.steps, self.val_acc = None, []
        self._predict = jax.jit(lambda params, x: jnp.argmax(train.apply(prog, params, x), axis=-1))

    def update(self, x_TxB):
        x = x_TxB.numpy().T
        self.params, self.opt_state = self._step(self.params, self.opt_state, x[:, :-1], x[:, -1])

    def evaluate(self, valid_TxB, updates: int, threshold: float):
        x = valid_TxB.numpy().T
        self.val_acc.append(float(np.mean(np.asarray(self._predict(self.params, x[:, :-1])) == x[:, -1])))
        if self.steps is None and self.val_acc[-1] > threshold:
            self.steps = updates


def run(seed: int, kind: str, budget: int, threshold: float = 0.95, batch: int = 512, twin: bool = False,
        device: str = "cpu") -> dict:
    """One run of main.py's loop; stops at the first epoch whose val acc passes the threshold (with twin, once
    jgrok's twin has passed it too). On ``device`` "cuda" the model is initialised on the CPU and moved, and every
    permutation is drawn by the CPU generator, as main.py does, so a seed draws the same numbers on either."""
    wd, make_filter, _ = SETTINGS[kind]
    torch.manual_seed(seed)
    model = ref.Decoder()
    jg = Twin(kind, model) if twin else None
    model.to(device)
    data = torch.from_numpy(ref.table(97)).long()
    train_idx, valid_idx = torch.randperm(data.shape[1]).split(data.shape[1] // 2)
    train, valid = data[:, train_idx].to(device), data[:, valid_idx].to(device)
    opt, sched = ref.optimizer(model, wd)
    filt = make_filter()
    per_epoch = math.ceil(train.shape[1] / batch)
    updates, val_acc, done, curve = 0, 0.0, None, []
    for epoch in range(budget // per_epoch):
        train = train[:, torch.randperm(train.shape[1]).to(device)]
        model.train(True)
        for x in torch.split(train, batch, dim=1):
            with torch.device(device):  # the model's position indices are made on the model's device
                loss = F.cross_entropy(model(x[:-1])[-1], x[-1])
            model.zero_grad()
            loss.backward()
            filt(model)
            opt.step()
            sched.step()
            updates += 1
            if jg is not None:
                jg.update(x)
        model.train(False)
        with torch.no_grad(), torch.device(device):
            hits = sum(int((model(x[:-1])[-1].argmax(-1) == x[-1]).sum()) for x in torch.split(valid, batch, dim=1))
        val_acc = hits / valid.shape[1]
        curve.append(val_acc)
        if jg is not None:
            jg.evaluate(valid, updates, threshold)
        if val_acc > threshold and done is None:
            done = {"seed": seed, "steps": updates, "plot_x": epoch * per_epoch, "reached": True, "val_acc": val_acc}
        if done is not None and (jg is None or jg.steps is not None):
            break
    done = done or {"seed": seed, "steps": budget, "plot_x": None, "reached": False, "val_acc": val_acc}
    if jg is not None:
        done.update(val_acc_curve=curve, twin_steps=jg.steps or budget, twin_reached=jg.steps is not None,
                    twin_val_acc=jg.val_acc)
    return done


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("filter", choices=sorted(SETTINGS))
    ap.add_argument("--seeds", default="0:8", help="A:B, torch seeds A..B-1")
    ap.add_argument("--steps", type=int, default=3000, help="update budget per run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--twin", action="store_true",
                    help="also train jgrok's update rule from the same initial weights on the same batches")
    ap.add_argument("--json", help="write the numbers here")
    a = ap.parse_args(argv)
    try:
        lo, hi = (int(v) for v in a.seeds.split(":"))
        if hi <= lo or lo < 0:
            raise ValueError
    except ValueError:
        print(f"grokfast_torch.py: --seeds takes A:B with 0 <= A < B, not '{a.seeds}'.", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    runs = []
    for seed in range(lo, hi):
        runs.append(run(seed, a.filter, a.steps, twin=a.twin))
        r = runs[-1]
        twin = f"; jgrok's twin: {r['twin_steps'] if r['twin_reached'] else 'not reached'}" if a.twin else ""
        print(f"seed {seed}: {r['steps'] if r['reached'] else 'not reached'} updates to 95% val acc "
              f"(the source's plot axis: {r['plot_x']}){twin}", flush=True)
    steps = np.array([r["steps"] for r in runs])
    source = SETTINGS[a.filter][2]
    q1, med, q3 = np.percentile(steps, [25, 50, 75])
    print(f"torch source loop, {a.filter}: median {med:g} (quartiles {q1:g} - {q3:g}), "
          f"{sum(r['reached'] for r in runs)}/{len(runs)} reached within {a.steps}; README: {source}; "
          f"wall {time.perf_counter() - t0:.0f} s, process CPU {time.process_time() - c0:.0f} s")
    if a.twin:
        tq1, tmed, tq3 = np.percentile([r["twin_steps"] for r in runs], [25, 50, 75])
        print(f"jgrok's twin (same weights, same batches): median {tmed:g} (quartiles {tq1:g} - {tq3:g})")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "filter": a.filter, "seeds": a.seeds, "twin": a.twin, "budget": a.steps, "readme": source, "runs": runs,
            "median": float(med), "quartiles": [float(q1), float(q3)], "torch": torch.__version__,
            "threads": a.threads, "machine": platform.processor() or platform.machine(),
            "date": datetime.date.today().isoformat(), "wall_s": time.perf_counter() - t0}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
