"""Frame-level ground truth for unit quality: phone alignments or an utterance's label.

Two kinds (see :func:`frame_truth`):

* ``"phone"``: the manifest's ``phone_times`` alignment (``phone:start:end`` segments, as
  the synthetic corpus writes them) turned into one label per unit frame by the frame-centre
  convention of :func:`speechssl.data.alignment.frame_labels`; uncovered frames are ``sil``;
* any label column (``word``, ``keyword``, ...) or ``speaker``: every frame carries the
  utterance's value, so label purity becomes "word purity".
"""

from __future__ import annotations

import numpy as np

from speechssl.data import Manifest, Utterance
from speechssl.data.alignment import frame_labels, parse_alignment
from speechssl.data.audio import DEFAULT_SAMPLE_RATE

PHONE = "phone"
PHONE_TIMES = "phone_times"


def check_truth(manifest: Manifest, truth: str) -> None:
    """Raise a ValueError naming the available columns when ``manifest`` cannot give ``truth``."""
    available = ["speaker", *manifest.label_columns]
    if truth == PHONE:
        if PHONE_TIMES not in manifest.label_columns:
            raise ValueError(
                f"truth: 'phone' needs a {PHONE_TIMES!r} column of phone alignments, found columns {available}"
            )
    elif truth not in available:
        raise ValueError(f"truth: expected 'phone' or a label column of {available}, found {truth!r}")


def frame_truth(
    row: Utterance, truth: str, num_frames: int, downsample_rate: int, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> np.ndarray:
    """``(num_frames,)`` object array: the ground-truth label of each unit frame of ``row``.

    Args:
        row: the utterance.
        truth: ``"phone"`` (its ``phone_times`` alignment), ``"speaker"`` or a label column.
        num_frames: unit frames of the utterance.
        downsample_rate: samples per unit frame.
        sample_rate: Hz of those samples.
    """
    if truth == PHONE:
        if PHONE_TIMES not in row.labels:
            raise ValueError(f"utterance {row.id}: truth 'phone' needs a {PHONE_TIMES!r} label, found none")
        segments = parse_alignment(row.labels[PHONE_TIMES], where=f"utterance {row.id} {PHONE_TIMES}")
        return frame_labels(segments, num_frames, downsample_rate, sample_rate)
    value = row.speaker if truth == "speaker" else row.labels.get(truth)
    if value is None:
        raise ValueError(f"utterance {row.id}: expected a label column {truth!r}, found {sorted(row.labels)}")
    return np.full(num_frames, value, dtype=object)


__all__ = ["PHONE", "PHONE_TIMES", "check_truth", "frame_truth"]
