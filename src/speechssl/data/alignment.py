"""Time alignments of labels (phones) stored in a manifest column, and their frame labels.

An alignment is written as one string of space-separated segments ``label:start:end``,
times in seconds from the start of the file, e.g. ``"s:0.120:0.300 a:0.300:0.410"``.
Segments are sorted, non-overlapping and may leave gaps; time not covered by any segment
is silence.

Frame convention (:func:`frame_labels`): frame ``t`` of a representation with
``downsample_rate`` ``R`` input samples per frame at ``sample_rate`` ``f_s`` covers samples
``[t R, (t + 1) R)``, so its centre is at ``(t + ½) R / f_s`` seconds; it takes the label of
the segment ``[start, end)`` containing that centre, or the silence label. This is the
label-rate convention of HuBERT's frame targets (Hsu et al. 2021, §II-A: one target per
frame at the model's frame rate); analysis windows wider than ``R`` (e.g. MFCC's 25 ms at
a 10 ms hop) are centred within half a window of it, a shift far below a phone's length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from speechssl.data.audio import DEFAULT_SAMPLE_RATE

SILENCE = "sil"


class Segment(NamedTuple):
    """One aligned label: ``label`` from ``start`` to ``end`` seconds."""

    label: str
    start: float
    end: float


def format_alignment(segments: Sequence[Segment]) -> str:
    """``segments`` as the ``label:start:end`` string (times rounded to 0.1 µs)."""
    return " ".join(f"{s.label}:{round(s.start, 7)!r}:{round(s.end, 7)!r}" for s in segments)


def parse_alignment(text: str, where: str = "alignment") -> list[Segment]:
    """The segments of an alignment string (see the module docstring).

    Raises:
        ValueError: naming ``where``, for a malformed segment, a negative or reversed time
            span, or segments that are unsorted or overlap.
    """
    segments: list[Segment] = []
    for token in text.split():
        parts = token.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{where}: expected segments 'label:start:end', found {token!r}")
        try:
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise ValueError(f"{where}: expected numeric times in {token!r}") from None
        if not 0.0 <= start < end:
            raise ValueError(f"{where}: expected 0 <= start < end in {token!r}, found {start} and {end}")
        if segments and start < segments[-1].end:
            raise ValueError(
                f"{where}: expected sorted, non-overlapping segments, found {token!r} starting before "
                f"the previous segment's end {segments[-1].end}"
            )
        segments.append(Segment(parts[0], start, end))
    return segments


def frame_labels(
    segments: Sequence[Segment],
    num_frames: int,
    downsample_rate: int,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    silence: str = SILENCE,
) -> np.ndarray:
    """The label of each of ``num_frames`` frames by the frame-centre convention (module docstring).

    Args:
        segments: sorted, non-overlapping segments (as :func:`parse_alignment` returns).
        num_frames: frames of the representation.
        downsample_rate: input samples per frame ``R``.
        sample_rate: input sample rate ``f_s`` in Hz.
        silence: label of frames whose centre lies in no segment.

    Returns:
        ``(num_frames,)`` object array of labels.
    """
    if num_frames < 0 or downsample_rate < 1 or sample_rate < 1:
        raise ValueError(
            "num_frames, downsample_rate, sample_rate: expected >= 0, >= 1, >= 1, "
            f"found {num_frames}, {downsample_rate}, {sample_rate}"
        )
    labels = np.full(num_frames, silence, dtype=object)
    if not segments or not num_frames:
        return labels
    centres = (np.arange(num_frames) + 0.5) * downsample_rate / sample_rate  # (num_frames,) seconds
    starts = np.array([s.start for s in segments])  # (segments,)
    ends = np.array([s.end for s in segments])  # (segments,)
    names = np.array([s.label for s in segments], dtype=object)  # (segments,)
    index = np.searchsorted(starts, centres, side="right") - 1  # (num_frames,) last segment starting before
    inside = (index >= 0) & (centres < ends[index.clip(min=0)])
    labels[inside] = names[index[inside]]
    return labels


__all__ = ["SILENCE", "Segment", "format_alignment", "frame_labels", "parse_alignment"]
