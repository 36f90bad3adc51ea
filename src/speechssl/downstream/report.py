"""Plain-text tables of probe results."""

from __future__ import annotations


def format_probe_table(rows: list[dict]) -> str:
    """A fixed-width table: one line per (upstream, task, layer) with accuracy and chance."""
    header = f"{'upstream':32s} {'task':12s} {'layer':>5s} {'accuracy':>9s} {'chance':>7s} {'classes':>7s}"
    lines = [header, "-" * len(header)]
    for row in rows:
        name = row["upstream"] if len(row["upstream"]) <= 32 else "…" + row["upstream"][-31:]
        lines.append(
            f"{name:32s} {row['task']:12s} {row['layer']:5d} {row['accuracy']:9.3f} "
            f"{row['chance']:7.3f} {row['num_classes']:7d}"
        )
    return "\n".join(lines)


def format_accuracy_matrix(rows: list[dict], upstreams: list[str], tasks: list[str]) -> str:
    """Upstreams as rows, tasks as columns: ``accuracy (layer)``, with a chance-level row."""
    by_key = {(r["upstream"], r["task"]): r for r in rows}
    width = max(12, *(len(t) + 2 for t in tasks))
    lines = [f"{'upstream':16s}" + "".join(f"{t:>{width}s}" for t in tasks)]
    lines.append("-" * len(lines[0]))
    for upstream in upstreams:
        cells = []
        for task in tasks:
            row = by_key[(upstream, task)]
            cells.append(f"{row['accuracy']:.3f} (L{row['layer']})".rjust(width))
        lines.append(f"{upstream:16s}" + "".join(cells))
    chance = [by_key[(upstreams[0], t)]["chance"] for t in tasks]
    lines.append(f"{'chance':16s}" + "".join(f"{c:>{width}.3f}" for c in chance))
    return "\n".join(lines)
