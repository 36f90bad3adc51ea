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
