"""Phone alignments: the string format, frame labels by the frame-centre rule, and the synthetic corpus's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from speechssl.data.alignment import SILENCE, Segment, format_alignment, frame_labels, parse_alignment
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.synthetic import (
    SILENCE_SECONDS,
    WORDS,
    SyntheticConfig,
    generate_synthetic_corpus,
    sample_factors,
    synthesize_aligned,
    synthesize_utterance,
)


def test_format_and_parse_round_trip():
    segments = [Segment("s", 0.12, 0.3), Segment("a", 0.3, 0.4100625)]
    text = format_alignment(segments)
    assert text == "s:0.12:0.3 a:0.3:0.4100625"
    assert parse_alignment(text) == segments
    assert parse_alignment("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s:0.1", "expected segments 'label:start:end'"),
        ("s:x:0.2", "expected numeric times"),
        ("s:0.3:0.2", "expected 0 <= start < end"),
        ("s:0.1:0.3 a:0.2:0.4", "expected sorted, non-overlapping"),
    ],
)
def test_parse_rejects_malformed(text, message):
    with pytest.raises(ValueError, match=f"row 7: {message}"):
        parse_alignment(text, where="row 7")


def test_frame_labels_use_frame_centres():
    # R = 1600 samples at 16 kHz: frames of 0.1 s, centres 0.05, 0.15, ..., 0.55
    segments = [Segment("s", 0.1, 0.2), Segment("a", 0.2, 0.36), Segment("u", 0.5, 0.55)]
    labels = frame_labels(segments, num_frames=6, downsample_rate=1600, sample_rate=16000)
    # 0.05 before s; 0.15 in s; 0.25 and 0.35 in a; 0.45 in the gap; 0.55 == end of u is outside
    assert list(labels) == [SILENCE, "s", "a", "a", SILENCE, SILENCE]
    assert list(frame_labels([], 3, 160)) == [SILENCE] * 3
    assert frame_labels(segments, 0, 160).shape == (0,)


def test_synthesized_alignment_matches_the_waveform():
    factors = sample_factors(SyntheticConfig(num_utterances=3, num_speakers=2))[0]
    waveform, alignment = synthesize_aligned(factors, np.random.default_rng(5))
    same = synthesize_utterance(factors, np.random.default_rng(5))
    np.testing.assert_array_equal(waveform, same)
    assert [s.label for s in alignment] == list(WORDS[factors.word])
    assert SILENCE_SECONDS[0] <= alignment[0].start <= SILENCE_SECONDS[1] + 1e-9
    trailing = len(waveform) / DEFAULT_SAMPLE_RATE - alignment[-1].end
    assert SILENCE_SECONDS[0] - 1e-3 <= trailing <= SILENCE_SECONDS[1] + 1e-3
    assert all(a.end == b.start for a, b in itertools.pairwise(alignment))
    # the spoken part is louder than the leading silence
    start = round(alignment[0].start * DEFAULT_SAMPLE_RATE)
    assert np.abs(waveform[start:]).mean() > 2 * np.abs(waveform[: start - 160]).mean()


def test_synthetic_manifest_alignments_fit_the_durations(tmp_path):
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=12, num_speakers=2), tmp_path)
    for row in manifest:
        segments = parse_alignment(row.labels["phone_times"], where=row.id)
        assert [s.label for s in segments] == row.labels["phones"].split()
        assert segments[0].start > 0.0 and segments[-1].end < row.duration
        num_frames = int(row.duration * DEFAULT_SAMPLE_RATE) // 160
        labels = frame_labels(segments, num_frames, 160)
        assert labels[0] == SILENCE and labels[-1] == SILENCE
        assert set(labels) == {SILENCE, *row.labels["phones"].split()}
