"""Plain-text tables of probe results summarised over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

from speechssl.downstream.statistics import Summary, summarize


def _groups(rows: Sequence[dict]) -> dict[tuple[str, str, str | int], list[dict]]:
    groups: dict[tuple[str, str, str | int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["upstream"], row["task"], row["layer"]), []).append(row)
    return groups


def format_summary(summary: Summary) -> str:
    """``mean ± std [low, high]``, or just the mean for a single seed."""
    if summary.n == 1 or math.isnan(summary.std):
        return f"{summary.mean:.3f}"
    return f"{summary.mean:.3f} ± {summary.std:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def format_probe_table(rows: Sequence[dict]) -> str:
    """One line per (upstream, task, layer): test accuracy over seeds (mean ± std [95% CI]),
    the number of seeds, chance and classes."""
    header = (
        f"{'upstream':32s} {'task':12s} {'layer':>8s} {'accuracy over seeds':>32s} "
        f"{'seeds':>5s} {'chance':>7s} {'classes':>7s}"
    )
    lines = [header, "-" * len(header)]
    for (upstream, task, layer), group in _groups(rows).items():
        name = upstream if len(upstream) <= 32 else "…" + upstream[-31:]
        summary = summarize([r["value"] for r in group])
        lines.append(
            f"{name:32s} {task:12s} {layer!s:>8s} {format_summary(summary):>32s} {summary.n:5d} "
            f"{group[0]['chance']:7.3f} {group[0]['num_classes']:7d}"
        )
    return "\n".join(lines)


def format_accuracy_matrix(rows: Sequence[dict], upstreams: Sequence[str], tasks: Sequence[str]) -> str:
    """Upstreams as rows, tasks as columns: mean test accuracy over seeds and the layer
    (``L<index>``, or ``Lw`` for the weighted sum), with a chance-level row."""
    groups = {(upstream, task): group for (upstream, task, _), group in _groups(rows).items()}
    width = max(12, *(len(t) + 2 for t in tasks))
    lines = [f"{'upstream':16s}" + "".join(f"{t:>{width}s}" for t in tasks)]
    lines.append("-" * len(lines[0]))
    for upstream in upstreams:
        cells = []
        for task in tasks:
            group = groups[(upstream, task)]
            layer = "w" if group[0]["layer"] == "weighted" else group[0]["layer"]
            mean = sum(r["value"] for r in group) / len(group)
            cells.append(f"{mean:.3f} (L{layer})".rjust(width))
        lines.append(f"{upstream:16s}" + "".join(cells))
    chance = [groups[(upstreams[0], t)][0]["chance"] for t in tasks]
    lines.append(f"{'chance':16s}" + "".join(f"{c:>{width}.3f}" for c in chance))
    return "\n".join(lines)
