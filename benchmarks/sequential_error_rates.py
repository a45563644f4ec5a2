"""The group-sequential rule's error rates, measured by simulation from a CPU pilot scan (jgrok.sequential).

    python -m jgrok.scan --config tiny_cpu --wd 0.5,1.0 --seeds 0:128 --out runs/tiny_wd_128
    python benchmarks/sequential_error_rates.py runs/tiny_wd_128 [--trials 4000]

  null          A vs A: both groups drawn from one run group's Kaplan-Meier curve (the pilot group named by
                --null-group, default the fastest-grokking one, whose runs nearly all reach 99%); the type I error
                of the sequential rule (looks of --look seeds up to --max seeds per group, O'Brien-Fleming and Pocock
                spending) and of the fixed log-rank test at --max seeds, with the Monte-Carlo standard error
  alternatives  the pilot's own difference (each group drawn from its own curve) and proportional-hazards
                differences of hazard ratio --hr applied to the null group's curve: the power, the mean seeds per
                group the rule trained before it stopped, and the fixed design with the same power (the smallest n,
                any n up to 16 and multiples of 8 above, whose simulated fixed-test power reaches the sequential
                power): the share of seed-steps the sequential scan saves against it
  designs       O'Brien-Fleming and Pocock spending with the log-rank test; O'Brien-Fleming with futility stopping
                (conditional power under the current trend below --futility, non-binding); O'Brien-Fleming with the
                paired test (log-rank stratified by seed). For the paired test the pilot's seeds are resampled with
                both of their runs (seed luck kept), and its null swaps a seed's two runs with probability 1/2 (no
                difference between the settings, seed luck still shared); its fixed design is the paired fixed test.
Prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jgrok import power, sequential  # noqa: E402
from jgrok.results_folder import open_scan  # noqa: E402


def draws(km_a, km_b, trials, n, budget, rng, h=1.0):
    ta, ea = power.draw(km_a, rng.random((trials, n)), budget, h)
    tb, eb = power.draw(km_b, rng.random((trials, n)), budget)
    return ta, ea, tb, eb


def fixed_n_for(km_a, km_b, budget, target, h, trials, seed):
    def sample(rng, trials_, n):
        return draws(km_a, km_b, trials_, n, budget, rng, h)
    return power.smallest_n(sample, power.logrank_chi2, trials, seed, target=target)


def paired_n_for(ta, ea, tb, eb, target, trials, seed):
    def sample(rng, trials_, n):
        i = rng.integers(0, len(ta), (trials_, n))
        return ta[i], ea[i], tb[i], eb[i]
    return power.smallest_n(sample, power.sign_chi2, trials, seed, target=target)


DESIGNS = [("obrien-fleming", "logrank", 0.0), ("pocock", "logrank", 0.0), ("obrien-fleming", "logrank", None),
           ("obrien-fleming", "paired", 0.0)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("--trials", type=int, default=4000)
    p.add_argument("--look", type=int, default=16)
    p.add_argument("--max", type=int, default=128)
    p.add_argument("--hr", default="1.5,2")
    p.add_argument("--futility", type=float, default=0.1)
    p.add_argument("--null-group")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    scan = open_scan(args.out).data()
    times = scan.grok_times()
    km = {label: g["km"] for label, g in times.items()}
    labels = list(km)
    med = {k: v.median()[0] for k, v in km.items()}
    null = args.null_group or min(labels, key=lambda k: med[k] if np.isfinite(med[k]) else math.inf)
    B, T, L, N = scan.budget, args.trials, args.look, args.max
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    print(f"pilot {scan.out}: {len(scan.rows)} runs, budget {B}; groups {', '.join(labels)}; null group {null}")
    print(f"looks of {L} seeds per group up to {N} (K = {N // L}), two-sided alpha 0.05, {T} trials per row\n")
    print("| scenario | design | rejections (sequential) | mean seeds per group used | fixed test at "
          f"{N} rejects | fixed n with the same power | seed-steps saved |")
    print("|---|---|---|---|---|---|---|")
    se = lambda p_: math.sqrt(p_ * (1 - p_) / T)  # noqa: E731
    pairs = None
    scenarios = [("null: A vs A from " + null, km[null], km[null], 1.0, True)]
    if len(labels) == 2:
        a, b = sorted(labels, key=lambda k: med[k] if np.isfinite(med[k]) else math.inf)
        scenarios.append((f"pilot's difference: {a} vs {b}", km[a], km[b], 1.0, False))
        from jgrok import compare

        keys = {label: key for key, label in zip(scan.groups, labels)}
        (xa, ga, sa), (xb, gb, sb) = (compare.group_runs(scan.rows, scan.groups, keys[g]) for g in (a, b))
        order = compare.pairing(sa, sb)
        if order is not None:  # the pilot's seeds, each with its run in a and in b
            pairs = (np.where(ga, xa, B).astype(float), np.asarray(ga, bool),
                     np.where(gb, xb, B).astype(float)[order], np.asarray(gb, bool)[order])
    scenarios += [(f"hazard ratio {h} on {null}'s curve", km[null], km[null], float(h), False)
                  for h in args.hr.split(",")]
    for name, ka, kb, h, is_null in scenarios:
        ta, ea, tb, eb = draws(ka, kb, T, N, B, rng, h)
        fixed = float((power.logrank_chi2(ta, ea, tb, eb) > 3.841458820694124).mean())
        for kind, test, fut in DESIGNS:
            fut = args.futility if fut is None else fut
            xs, fixed_here = (ta, ea, tb, eb), fixed
            if test == "paired":
                if pairs is None or not (is_null or name.startswith("pilot")):
                    continue
                i = rng.integers(0, len(pairs[0]), (T, N))
                xs = [x[i] for x in pairs]
                if is_null:  # swap a seed's two runs with probability 1/2: no difference, seed luck kept
                    swap = rng.random((T, N)) < 0.5
                    xs = [np.where(swap, xs[2], xs[0]), np.where(swap, xs[3], xs[1]),
                          np.where(swap, xs[0], xs[2]), np.where(swap, xs[1], xs[3])]
                fixed_here = float((power.sign_chi2(*xs) > 3.841458820694124).mean())
            o = sequential.run(*xs, L, kind=kind, test=test, K=N // L, futility=fut)
            rej = float(o.crossed.mean())
            used = float((o.look * L).mean())
            if is_null:
                saved, nfix = "–", "–"
            else:
                nf = (paired_n_for(*pairs, rej, min(T, 2000), args.seed + 1) if test == "paired"
                      else fixed_n_for(ka, kb, B, rej, h, min(T, 2000), args.seed + 1))
                nfix = str(nf) if nf else f">{power.MAX_SEEDS}"
                saved = f"{100 * (1 - used / nf):.0f}%" if nf else "–"
            design = f"{kind}, {test}" + (f", futility {fut:g}" if fut else "")
            print(f"| {name} | {design} | {rej:.4f} ± {se(rej):.4f} | {used:.1f} | {fixed_here:.4f} ± "
                  f"{se(fixed_here):.4f} | {nfix} | {saved} |")
    print(f"\n({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
