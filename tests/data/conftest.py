"""Fixtures for the data tests: tiny audio files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile


@pytest.fixture
def write_audio() -> Callable[..., Path]:
    """``write_audio(path, seconds=0.5, sample_rate=16000, channels=1, frequency=440.0, subtype=None)``.

    Writes a sine (plus a little deterministic noise) with soundfile and returns the path.
    """

    def write(
        path: Path,
        seconds: float = 0.5,
        sample_rate: int = 16000,
        channels: int = 1,
        frequency: float = 440.0,
        subtype: str | None = None,
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        time = np.arange(round(seconds * sample_rate)) / sample_rate
        tone = 0.3 * np.sin(2 * np.pi * frequency * time)  # (samples,)
        noise = 0.01 * np.random.default_rng(len(time)).standard_normal((len(time), channels))
        data = tone[:, None] * np.linspace(1.0, 0.5, channels)[None, :] + noise  # (samples, channels)
        soundfile.write(str(path), data.astype(np.float32), sample_rate, subtype=subtype)
        return path

    return write


@pytest.fixture
def bad_files(tmp_path: Path, write_audio: Callable[..., Path]) -> dict[str, Path]:
    """One file of each kind of badness (plus a good one), keyed by kind."""
    folder = tmp_path / "bad"
    folder.mkdir()
    good = write_audio(folder / "good.wav", seconds=0.3)
    zero_bytes = folder / "zero_bytes.wav"
    zero_bytes.write_bytes(b"")
    garbage = folder / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    empty = folder / "empty.wav"
    soundfile.write(str(empty), np.zeros((0, 1), dtype=np.float32), 16000, subtype="PCM_16")
    nan = folder / "nan.wav"
    samples = np.zeros(1600, dtype=np.float32)
    samples[100] = np.nan
    soundfile.write(str(nan), samples, 16000, subtype="FLOAT")
    return {
        "good": good,
        "zero_bytes": zero_bytes,
        "garbage": garbage,
        "empty": empty,
        "nan": nan,
        "missing": folder / "missing.wav",
    }


@pytest.fixture
def broken_folder(tmp_path: Path, write_audio: Callable[..., Path]) -> Path:
    """A folder corpus whose three good files sort between three with bad headers.

    Sorted: ``a.wav`` (good, 0.4 s), ``b.wav`` (random bytes), ``c/d.flac`` (good, 0.2 s),
    ``c/e.wav`` (zero bytes), ``e.wav`` (a valid header with 0 frames), ``f.wav`` (good, 0.3 s).
    """
    folder = tmp_path / "broken"
    write_audio(folder / "a.wav", seconds=0.4)
    (folder / "b.wav").write_bytes(np.random.default_rng(1).bytes(3000))
    write_audio(folder / "c" / "d.flac", seconds=0.2, sample_rate=8000)
    (folder / "c" / "e.wav").write_bytes(b"")
    soundfile.write(str(folder / "e.wav"), np.zeros((0, 1), dtype=np.float32), 16000, subtype="PCM_16")
    write_audio(folder / "f.wav", seconds=0.3)
    return folder
