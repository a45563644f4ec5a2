"""Codes per second: fast exact m-height generator vs the published per-code LP method.

python benchmarks/mheight_generator.py --json results.json [--fast-codes 2000] [--lp-groups "9,4,2;10,6,2"]

Definitions (per group (n, k, m)):
  fast codes/s      = codes / wall seconds of generate_group (drawing P + m_heights), one process, NumPy.
  LP s/code         = mean wall seconds of lp_height (n(n-1)C(n-2,m-1)2^m scipy linprog "highs" LPs) over
                      --lp-codes codes; measured only for --lp-groups.
  LP s/code (est.)  = LPs per code x the mean seconds per LP measured over all LP runs, for the other groups.
  speedup           = fast codes/s x LP s/code.
The LP runs also check that both methods agree to relative 1e-6 (the script fails otherwise).
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the LP oracle is a test module: tests/mheight_lp.py

from jgrok.mheight import parse_groups  # noqa: E402
from jgrok.tasks import mheight_codes as mheight  # noqa: E402
from tests.mheight_lp import lp_count, lp_height  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="write the results here")
    parser.add_argument("--fast-codes", type=int, default=2000, help="codes per group for the fast generator")
    parser.add_argument("--lp-groups", default="9,4,2;10,6,2;9,5,3;10,5,3", help="groups timed with the LP")
    parser.add_argument("--lp-codes", type=int, default=1, help="codes per LP group")
    args = parser.parse_args(argv)

    rows = {}
    for n, k, m in mheight.GROUPS:
        mheight.generate_group(n, k, m, 8, np.random.default_rng(1))  # warm caches
        t = time.perf_counter()
        mheight.generate_group(n, k, m, args.fast_codes, np.random.default_rng(0))
        rows[(n, k, m)] = {"n": n, "k": k, "m": m, "lps_per_code": lp_count(n, m),
                           "fast_codes_per_s": args.fast_codes / (time.perf_counter() - t)}

    lp_seconds, lp_total = 0.0, 0
    for n, k, m in parse_groups(args.lp_groups):
        P, h = mheight.generate_group(n, k, m, args.lp_codes, np.random.default_rng(2))
        t = time.perf_counter()
        lp = [lp_height(np.hstack([np.eye(k), p]), m) for p in P]
        dt = time.perf_counter() - t
        np.testing.assert_allclose(h, lp, rtol=1e-6)
        lp_seconds, lp_total = lp_seconds + dt, lp_total + args.lp_codes * lp_count(n, m)
        rows[(n, k, m)].update(lp_s_per_code=dt / args.lp_codes, lp_measured=True)
    s_per_lp = lp_seconds / lp_total
    for r in rows.values():
        if "lp_s_per_code" not in r:
            r.update(lp_s_per_code=r["lps_per_code"] * s_per_lp, lp_measured=False)
        r["speedup"] = r["fast_codes_per_s"] * r["lp_s_per_code"]

    print(f"{'group':>10} {'LPs/code':>9} {'fast codes/s':>13} {'LP s/code':>14} {'speedup':>10}")
    for r in rows.values():
        lp = f"{r['lp_s_per_code']:.2f}" + ("" if r["lp_measured"] else " (est.)")
        print(f"{r['n']:>4},{r['k']},{r['m']:<3} {r['lps_per_code']:>9} {r['fast_codes_per_s']:>13,.0f} {lp:>14} "
              f"{r['speedup']:>10,.0f}")
    print(f"mean {s_per_lp * 1e3:.2f} ms per LP; min speedup over measured groups "
          f"{min(r['speedup'] for r in rows.values() if r['lp_measured']):,.0f}x")
    result = {"machine": platform.platform(), "python": sys.version.split()[0], "numpy": np.__version__,
              "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
              "ms_per_lp": s_per_lp * 1e3, "fast_codes": args.fast_codes, "lp_codes": args.lp_codes,
              "groups": list(rows.values())}
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
