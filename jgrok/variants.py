"""Named variants in results: how runs of a ``variant`` axis are labelled (the config side is
:func:`jgrok.config.variant_config`).

A variant sets several fields at once (``orthogonal: {optim.orthogonal_grad: true, optim.b2: 0.999}``), so the
columns it sets vary between runs along with it. Group labels name such runs by the variant alone
(``variant=orthogonal``, not ``orthogonal_grad=True|variant=orthogonal``); an axis that also varies *within* a
variant keeps its own place in the label.
"""

from __future__ import annotations


def label_axes(rows: list[dict], axes: list[str]) -> list[str]:
    """``axes`` less those constant within every variant, when ``variant`` is one of them."""
    if "variant" not in axes:
        return list(axes)
    by_variant: dict = {}
    for r in rows:
        by_variant.setdefault(str(r["variant"]), []).append(r)
    return [a for a in axes if a == "variant" or any(len({str(r[a]) for r in m}) > 1 for m in by_variant.values())]
