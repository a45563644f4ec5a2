"""Run ids as the command line writes them: a comma list of ids and half-open ranges A:B, e.g. ``3,17,40:48``.

One parser for every flag and field that names runs (``--only``, ``--tb-runs`` / ``engine.tb_runs``,
``jgrok.report --runs``, ``jgrok.analyze --chaos`` and ``--fourier-runs``). It imports nothing of jgrok but the
errors, so that the config, the grid and the readers can all use it.
"""

from __future__ import annotations

from jgrok.errors import ConfigError


def parse(text: str, n_runs: int | None = None) -> list[int]:
    """The run ids of ``text`` in the order written, each once. With ``n_runs``, an id outside 0..n_runs-1 is a
    ConfigError (a range is checked at its ends, so a huge one costs nothing)."""
    ids = []
    for part in str(text).split(","):
        part = part.strip()
        bounds = part.split(":")
        try:
            numbers = [int(b) for b in bounds]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2) or len(numbers) != len(bounds):
            raise ConfigError(f"Run ids must be whole numbers or ranges A:B, not '{part}'.")
        if len(numbers) == 1:
            ids.append(numbers[0])
            continue
        lo, hi = numbers
        if hi <= lo:
            raise ConfigError(f"Run range '{part}' is empty; write A:B with A < B.")
        if n_runs is not None and (lo < 0 or hi > n_runs):
            _missing(lo if lo < 0 else hi - 1, n_runs)
        ids.extend(range(lo, hi))
    if n_runs is not None:
        for i in ids:
            if not 0 <= i < n_runs:
                _missing(i, n_runs)
    return list(dict.fromkeys(ids))


def parse_optional(text: str, n_runs: int | None = None) -> list[int]:
    """``parse`` for a list that may name no run (``engine.tb_runs``): 'none', '' and empty items name none."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if str(text).strip().lower() == "none" or not parts:
        return []
    return parse(",".join(parts), n_runs)


def _missing(run: int, n_runs: int):
    raise ConfigError(f"Run id {run} does not exist; this grid has runs 0 to {n_runs - 1}.")


def keep(rows: list[dict], only) -> list[dict]:
    """The rows of a runs table whose ids an ``--only`` text names (all of them when ``only`` is None)."""
    if only is None:
        return rows
    chosen = set(parse(str(only), len(rows)))
    return [r for r in rows if r["run"] in chosen]


def text(ids) -> str:
    """The shortest ``parse`` text of some run ids, ascending: consecutive ids as half-open ranges, e.g.
    [0, 1, 2, 7] -> '0:3,7'."""
    ids = sorted(set(int(i) for i in ids))
    parts, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if j == i else f"{ids[i]}:{ids[j] + 1}")
        i = j + 1
    return ",".join(parts)
