"""A tiny corpus of pure tones: each utterance one of three well-separated frequencies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechssl.data import Manifest, Utterance

TONES_HZ = {"low": 300.0, "mid": 1200.0, "high": 4000.0}


def write_tone_corpus(folder: Path, per_tone: int = 4, seconds: float = 0.5) -> Manifest:
    """``per_tone`` WAVs of each tone of :data:`TONES_HZ` (label column ``tone``), 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for name, frequency in TONES_HZ.items():
        for index in range(per_tone):
            length = int(seconds * 16000) + 800 * index
            t = np.arange(length) / 16000
            waveform = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.003 * rng.standard_normal(length)
            path = folder / f"{name}{index}.wav"
            soundfile.write(path, waveform.astype(np.float32), 16000, subtype="PCM_16")
            rows.append(
                Utterance(
                    id=path.stem,
                    path=path,
                    duration=length / 16000,
                    sample_rate=16000,
                    speaker=f"s{index % 2}",
                    split="train",
                    labels={"tone": name},
                )
            )
    return Manifest(rows)


@pytest.fixture
def tone_corpus(tmp_path) -> Manifest:
    """12 utterances (0.5 to 0.65 s) of three tones, written under ``tmp_path / "tones"``."""
    return write_tone_corpus(tmp_path / "tones")
