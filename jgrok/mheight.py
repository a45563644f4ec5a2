"""Generate exact m-height datasets: python -m jgrok.mheight generate --per-group 40000 --seed 0 --out data/mheight.npz

Options: --integer (P entries integers in [-100, 100]; some heights are then infinite and kept as inf),
--groups "9,4,2;10,5,3" (default: all 21 groups of jgrok.tasks.mheight_codes.GROUPS), --course-samples F
--course-heights F (also write the course's two pickles), --overwrite (replace existing output files).
The .npz layout is documented in jgrok/tasks/mheight_codes.py. Progress goes to stderr as one carriage-return line:
codes/s = codes done / seconds since start; ETA = codes left / codes/s.
"""

import argparse
import os
import sys
import time

from jgrok.errors import ConfigError, UserError
from jgrok.tasks import mheight_codes as mheight


def parse_groups(text: str | None):
    """'9,4,2;10,5,3' -> [(9, 4, 2), (10, 5, 3)]; None -> all GROUPS."""
    if text is None:
        return list(mheight.GROUPS)
    groups = []
    for part in text.split(";"):
        fields = part.strip().split(",")
        try:
            n, k, m = (int(f) for f in fields)
        except ValueError:
            msg = f"--groups entry {part.strip()!r} must be three integers n,k,m (e.g. '9,4,2;10,5,3')."
            raise ConfigError(msg) from None
        mheight.check_group(n, k, m)
        if (n, k, m) in groups:
            raise ConfigError(f"--groups lists ({n}, {k}, {m}) twice; list each group once.")
        groups.append((n, k, m))
    return groups


class _Progress:
    """One carriage-return line on stderr, redrawn at most every 0.2 s."""

    def __init__(self, groups, per_group):
        self.groups, self.per_group = groups, per_group
        self.total = len(groups) * per_group
        self.start = self.last = time.perf_counter()

    def __call__(self, g, group, done_in_group, final=False):
        now = time.perf_counter()
        if now - self.last < 0.2 and not final and done_in_group < self.per_group:
            return
        self.last = now
        done = g * self.per_group + done_in_group
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        n, k, m = group
        line = (f"\rgroup {g + 1}/{len(self.groups)} (n={n}, k={k}, m={m})  {done}/{self.total} codes  "
                f"{rate:,.0f} codes/s  ETA {eta:,.0f} s   ")
        sys.stderr.write(line)
        sys.stderr.flush()


def _check_out(path: str, overwrite: bool, what: str, suffix: str | None = None):
    if suffix and not path.endswith(suffix):
        raise ConfigError(f"{what} {path!r} must end in {suffix}.")
    if os.path.exists(path) and not overwrite:
        raise ConfigError(f"{what} {path!r} already exists; choose another path or pass --overwrite.")


def generate_main(args) -> None:
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}.")
    if args.per_group < 1:
        raise ConfigError(f"--per-group must be >= 1, got {args.per_group}.")
    groups = parse_groups(args.groups)
    if (args.course_samples is None) != (args.course_heights is None):
        raise ConfigError("pass both --course-samples and --course-heights, or neither.")
    _check_out(args.out, args.overwrite, "--out", ".npz")
    if args.course_samples is not None:
        if os.path.abspath(args.course_samples) == os.path.abspath(args.course_heights):
            raise ConfigError("--course-samples and --course-heights must be different files.")
        _check_out(args.course_samples, args.overwrite, "--course-samples")
        _check_out(args.course_heights, args.overwrite, "--course-heights")
    progress = _Progress(groups, args.per_group)
    data = mheight.generate(groups, args.per_group, args.seed, integer=args.integer, progress=progress)
    sys.stderr.write("\n")
    for path in [args.out, args.course_samples, args.course_heights]:
        if path is not None and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
    mheight.save_npz(args.out, data)
    if args.course_samples is not None:
        mheight.write_course(args.course_samples, args.course_heights, data)
    elapsed = time.perf_counter() - progress.start
    print(f"wrote {len(data['h'])} codes ({int(data['infinite'].sum())} infinite) in {len(groups)} groups "
          f"to {args.out} in {elapsed:.1f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jgrok.mheight", description="Exact m-height datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate codes and their exact m-heights")
    gen.add_argument("--per-group", type=int, required=True, help="codes per (n, k, m) group")
    gen.add_argument("--seed", type=int, default=0, help="root seed (group rng: default_rng([seed, n, k, m, integer]))")
    gen.add_argument("--out", required=True, help="output .npz (flat table, layout in jgrok/tasks/mheight_codes.py)")
    gen.add_argument("--integer", action="store_true", help="integer P entries in [-100, 100] (some heights inf)")
    gen.add_argument("--groups", default=None, help="'n,k,m;n,k,m;...' (default: all 21 groups)")
    gen.add_argument("--course-samples", default=None, help="also write the course's pickled [n, k, m, P] list here")
    gen.add_argument("--course-heights", default=None, help="and the course's pickled list of heights here")
    gen.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = parser.parse_args(argv)
    try:
        generate_main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
