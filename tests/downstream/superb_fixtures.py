"""Tiny SUPERB corpora in their native layouts, written with generated audio (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def speaker_tone(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-like tone: harmonics of ``f0`` (slightly jittered per call) plus a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    f = f0 * (1 + rng.normal(0, 0.01))
    wave = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6))
    return (0.2 * wave + 0.01 * rng.normal(size=len(t))).astype(np.float32)


def write_voxceleb1(root: Path, dev_speakers: int = 6, test_speakers: int = 3, per_speaker: int = 4) -> Path:
    """VoxCeleb1 as distributed: ``vox1_dev_wav/wav`` and ``vox1_test_wav/wav`` folders of
    ``{speaker}/{video}/{NNNNN}.wav`` and a ``veri_test.txt`` over the test speakers
    (every same-speaker pair and as many different-speaker pairs). Each speaker has its own
    pitch, so speakers are easy to tell apart."""
    rng = np.random.default_rng(0)
    utterances: dict[str, list[str]] = {}
    for index in range(dev_speakers + test_speakers):
        speaker = f"id1{index:04d}"
        archive = "vox1_test_wav" if index >= dev_speakers else "vox1_dev_wav"
        for u in range(per_speaker):
            relative = f"{speaker}/video{u % 2}/{u + 1:05d}.wav"
            path = root / archive / "wav" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, speaker_tone(110.0 * 1.25**index, 0.5, rng), RATE)
            utterances.setdefault(speaker, []).append(relative)
    test = [s for s in sorted(utterances)[dev_speakers:]]
    lines = []
    for i, speaker in enumerate(test):
        other = test[(i + 1) % len(test)]
        for a in range(per_speaker):
            for b in range(a + 1, per_speaker):
                lines.append(f"1 {utterances[speaker][a]} {utterances[speaker][b]}")
                lines.append(f"0 {utterances[speaker][a]} {utterances[other][b]}")
    (root / "veri_test.txt").write_text("\n".join(lines) + "\n")
    return root
