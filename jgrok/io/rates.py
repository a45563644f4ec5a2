"""Speeds measured by past scans on this machine, so that ``--dry-run`` can estimate a scan's time when a rate can
be known: a scan of the same compiled program, at the same lane width W, on the same device kind and count, has
finished here before.

File: ``$XDG_CACHE_HOME/jgrok/rates.json`` (``~/.cache/jgrok/rates.json``); the environment variable JGROK_RATES
names another file, or ``off`` to keep none. One entry per key (``key``), the newest scan's:

  first_chunk_s    wall seconds of the scan's first chunk of ``chunk`` updates: compilation plus one chunk of
                   every wave (less when the program was already compiled, e.g. by an earlier program of the scan)
  seed_steps_per_s seed-steps (runs x updates) per second after the first chunk, over ``runs`` runs
  runs, chunk, date

Estimate for R runs and S updates (``estimate``): compile ~ first_chunk_s; train ~ first_chunk_s + (S - chunk)
x R' / rate', where R' = R rounded up to whole waves (W lanes x devices) and rate' = seed_steps_per_s x (its own
runs rounded up the same way) / runs: padded lanes cost as much as real ones. Runs that stop early (--stop-when)
or diverge make the real time shorter.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path


def path() -> Path | None:
    env = os.environ.get("JGROK_RATES")
    if env is not None:
        return None if env.strip().lower() in ("off", "") else Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "jgrok" / "rates.json"


def key(program_key, lanes: int, platform: str) -> str:
    """The entry of one compiled program (``(Program.key, K)``) at W lanes on one device kind and count."""
    return hashlib.sha1(f"{program_key!r}|W={lanes}|{platform}".encode()).hexdigest()[:16]


def _read(p: Path) -> dict:
    try:
        data = json.loads(p.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def lookup(k: str) -> dict | None:
    p = path()
    return None if p is None else _read(p).get(k)


def record(k: str, first_chunk_s: float, seed_steps_per_s: float, runs: int, chunk: int) -> None:
    """Keep the newest measurement of an entry; a rate that cannot be known (one chunk only) is not recorded. The
    file is a cache: a write that fails is skipped."""
    p = path()
    if p is None or not (math.isfinite(first_chunk_s) and math.isfinite(seed_steps_per_s)):
        return
    data = _read(p)
    data[k] = dict(first_chunk_s=round(first_chunk_s, 3), seed_steps_per_s=round(seed_steps_per_s, 3), runs=runs,
                   chunk=chunk, date=time.strftime("%Y-%m-%d"))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(p)
    except OSError:
        pass


def estimate(entry: dict, runs: int, steps: int, lanes: int, devices: int) -> tuple[float, float]:
    """(compile seconds, train seconds) of the module docstring for a program of ``runs`` runs and ``steps``
    updates."""
    per_round = lanes * devices
    padded = lambda n: math.ceil(n / per_round) * per_round  # noqa: E731
    rate = entry["seed_steps_per_s"] * padded(entry["runs"]) / entry["runs"]
    rest = max(steps - entry["chunk"], 0) * padded(runs)
    return entry["first_chunk_s"], entry["first_chunk_s"] + rest / rate
