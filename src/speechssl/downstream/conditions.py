"""Recording conditions a test set is shifted to: train on clean audio, test on the same
corpus heard through added noise, a telephone-band path or a gain change.

A :class:`Condition` applies one of :mod:`speechssl.augment`'s transforms to a single
utterance with a generator seeded from the utterance id, so every run writes the same
audio. :func:`shifted_copies` writes the shifted copy of each row as a 16 kHz FLAC under a
folder and returns their manifest (ids suffixed ``@<condition>``); a file already there is
kept, so the feature cache (which keys on each file's size and ``mtime_ns``) hits on rerun.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import soundfile
import torch

from speechssl.augment import AddNoise, Gain
from speechssl.augment.resample import resample
from speechssl.data import Manifest
from speechssl.data.audio import load_audio

SAMPLE_RATE = 16000
WaveformShift = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def _noise(snr_db: float) -> WaveformShift:
    def shift(waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return AddNoise(snr_db=(snr_db, snr_db))(waveforms, lengths, generator)[0]

    return shift


def _gain(db: float) -> WaveformShift:
    def shift(waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return Gain(db=(db, db))(waveforms, lengths, generator)[0]

    return shift


def _telephone(waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Down to 8 kHz and back (julius' windowed-sinc resampler): nothing above 4 kHz is left."""
    narrow, narrow_lengths = resample(waveforms, lengths, Fraction(1, 2))
    wide, _ = resample(narrow, narrow_lengths, Fraction(2, 1))
    return wide[:, : waveforms.shape[1]]  # (batch, samples), the original length


@dataclass(frozen=True)
class Condition:
    """A named, seeded shift of the test audio.

    Attributes:
        name: suffix of the task and of the shifted ids (``noise20db``, ``telephone``, ``gain-20db``).
        description: one line for reports.
        shift: ``(waveforms (1, samples), lengths (1,), generator) -> waveforms (1, samples)``.
    """

    name: str
    description: str
    shift: WaveformShift

    def apply(self, waveform: torch.Tensor, utterance_id: str) -> torch.Tensor:
        """The shifted ``(samples,)`` waveform, its randomness seeded from ``utterance_id``."""
        seed = int.from_bytes(hashlib.sha256(utterance_id.encode()).digest()[:8], "little")
        generator = torch.Generator().manual_seed(seed)
        lengths = torch.tensor([waveform.shape[0]])
        return self.shift(waveform[None], lengths, generator)[0]  # (1, samples) -> (samples,)


CONDITIONS = {
    condition.name: condition
    for condition in (
        Condition("noise20db", "white noise at 20 dB SNR (AddNoise)", _noise(20.0)),
        Condition("telephone", "8 kHz band limit: resampled to 8 kHz and back", _telephone),
        Condition("gain-20db", "gain x0.1 (Gain, -20 dB)", _gain(-20.0)),
    )
}


def shifted_copies(manifest: Manifest, condition: Condition, folder: Path) -> Manifest:
    """Write every row's audio through ``condition`` as ``folder/<n>.flac`` (16 kHz, 24-bit;
    a sample beyond ±1 clips); rows keep their labels, ids get ``@<condition>``.

    Args:
        manifest: the clean rows.
        condition: the shift.
        folder: where the copies go (created; an existing copy is reused).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, row in enumerate(manifest):
        path = folder / f"{index:06d}.flac"
        if not path.is_file():
            waveform = torch.from_numpy(load_audio(row.path, SAMPLE_RATE))
            shifted = condition.apply(waveform, row.id).numpy()
            staging = path.with_suffix(".tmp.flac")
            soundfile.write(staging, shifted, SAMPLE_RATE, subtype="PCM_24")
            staging.replace(path)
        rows.append(
            dataclasses.replace(row, id=f"{row.id}@{condition.name}", path=path, sample_rate=SAMPLE_RATE)
        )
    return Manifest(rows)
