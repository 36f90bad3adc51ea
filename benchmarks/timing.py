"""Interleaved wall-clock timing shared by the benchmarks (run as ``python benchmarks/NAME.py``).

On a shared, noisy machine only ratios measured side by side mean something: contenders
run in turn, round after round, and each keeps its per-round times for medians and
min–max ranges.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_SAMPLE_SECONDS = 0.02


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``repeats`` rounds of one call each in turn (after a warm-up round).

    The order rotates every round, so each contender equally often follows each other one
    (a torch call right after numpy code pays for waking the sleeping thread pool).
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    calls = dict.fromkeys(names, 1)
    for round_index in range(repeats + 1):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            for _ in range(calls[name]):
                runs[name]()
            elapsed = time.perf_counter() - started
            if round_index:
                times[name].append(elapsed / calls[name])
            else:
                # Short calls are repeated to last about MIN_SAMPLE_SECONDS, above timer and wake-up noise.
                calls[name] = max(1, round(MIN_SAMPLE_SECONDS / max(elapsed, 1e-6)))
    return times
