"""The files an evaluation can read: pretraining's skip-count-list policy for bad files.

Before an upstream extracts features, every file of the manifest has its header read; the
missing, unreadable and empty files, and those (by their header, not the manifest's
duration) shorter than the upstream reads
(:attr:`~speechssl.upstream.base.Upstream.min_samples`), are left out, counted and listed
(a warning, and ``bad_files.json`` in the output folder). The evaluation refuses to go on only
when a split would lose more than ``max_bad_fraction`` of its utterances, since its scores
would then describe another test set.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from speechssl.data import Manifest
from speechssl.data.audio import BadFileSummary
from speechssl.data.dataset import header_durations, short_utterances
from speechssl.storage import atomic_write_text

DEFAULT_MAX_BAD_FRACTION = 0.05
"""Share of a split's utterances an evaluation may lose to bad files before it refuses."""
BAD_FILES = "bad_files.json"


def check_max_bad_fraction(value: float) -> None:
    """Raise ValueError naming ``max_bad_fraction`` unless ``value`` is in [0, 1]."""
    if isinstance(value, bool) or not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"max_bad_fraction: expected a number in [0, 1], found {value}")


def usable_rows(
    manifest: Manifest,
    sample_rate: int,
    min_samples: int = 1,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    bad_files: BadFileSummary | None = None,
    headers: tuple[np.ndarray, BadFileSummary] | None = None,
) -> tuple[Manifest, BadFileSummary]:
    """``manifest`` without its bad files, and the bad files (headers read on a thread pool).

    Args:
        manifest: the utterances to evaluate on.
        sample_rate: the rate the upstream reads them at.
        min_samples: the shortest utterance the upstream reads (its receptive field).
        max_bad_fraction: the largest share of any split that may be left out.
        bad_files: files already left out while the manifest was built; they count too.
        headers: ``header_durations(manifest)`` when the caller has read them already (they do
            not depend on the upstream, so one read serves every upstream).

    Raises:
        ValueError: a split loses more than ``max_bad_fraction`` of its utterances (naming the
            split, the counts and the first bad file).
    """
    check_max_bad_fraction(max_bad_fraction)
    found = BadFileSummary(list(bad_files) if bad_files is not None else [])
    durations, unreadable = header_durations(manifest) if headers is None else headers
    readable = ~np.isnan(durations)
    found.extend(unreadable)
    found.extend(
        short_utterances(
            manifest.select(np.flatnonzero(readable)), durations[readable], sample_rate, min_samples
        )
    )
    if not found:
        return manifest, found
    left_out = found.ids
    for split, total in manifest.counts("split").items():
        lost = sum(1 for row in manifest if row.split == split and row.id in left_out)
        if lost > max_bad_fraction * total:
            first = next(bad for bad in found if bad.id in manifest.filter(split=split).ids)
            raise ValueError(
                f"split {split!r}: expected at most max_bad_fraction={max_bad_fraction:g} of its {total} "
                f"utterances to be bad files, found {lost} (first: {first.path}: {first.reason})"
            )
    return manifest.exclude_ids(left_out), found


def report_bad_files(bad_files: BadFileSummary, output: Path | None) -> None:
    """Warn about the files left out and list them in ``output/bad_files.json`` (when given)."""
    if not bad_files:
        return
    where = ""
    if output is not None:
        atomic_write_text(Path(output) / BAD_FILES, json.dumps(bad_files.to_dict(), indent=2))
        where = f"\n(listed in {Path(output) / BAD_FILES})"
    warnings.warn(f"{bad_files.format()}{where}", stacklevel=2)


__all__ = [
    "BAD_FILES",
    "DEFAULT_MAX_BAD_FRACTION",
    "check_max_bad_fraction",
    "report_bad_files",
    "usable_rows",
]
