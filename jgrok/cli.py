"""``jgrok``: the console command that installing the package puts on the PATH.

    jgrok scan --config tiny_cpu --out runs/demo      # the same as: python -m jgrok.scan --config tiny_cpu ...
    jgrok report runs/demo

``jgrok COMMAND ARGS`` runs ``python -m jgrok.COMMAND ARGS``; it only picks the command, every option belongs to it.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "scan": "train every run of a grid at once and leave a results folder",
    "report": "plots and report.md of a finished scan (merges the shards of a multi-process scan)",
    "analyze": "seed grids, variance, spikes, chaos floor and chimeras of a finished scan",
    "aiscientist": "drop-in for the AI-Scientist grokking template's experiment.py",
    "mheight": "exact m-height datasets for the regression task",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: jgrok COMMAND [ARGS ...]   (jgrok COMMAND --help for a command's options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run one command; its exit code (2 for an unknown command, as for any usage mistake)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"jgrok: error: unknown command '{name}'; choose one of {', '.join(COMMANDS)} (see jgrok --help).",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"jgrok.{name}")
    if name == "scan":  # as python -m jgrok.scan: a second Ctrl-C ends the process at once
        return module.main(rest, hard_exit=True)
    return module.main(rest)


def run() -> None:
    """The console-script entry point."""
    sys.exit(main())
