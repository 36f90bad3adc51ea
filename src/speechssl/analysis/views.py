"""Hear and see the two views a joint-embedding method trains on (Brima et al.'s two-view figure).

:func:`render_views` augments one utterance twice with a :class:`~speechssl.augment.View`,
writes ``original.wav``, ``view_1.wav`` and ``view_2.wav`` (the waveform pipeline's output,
16 kHz) and ``views.png``: for each, the waveform and the log-mel spectrogram after the
feature pipeline (SpecAugment masks), i.e. what the encoder's front-end receives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from matplotlib.figure import Figure

from speechssl.augment.views import View
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.features import LogMelFilterbank


def render_views(
    waveform: np.ndarray,
    view: View,
    output: str | Path,
    seed: int = 0,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> dict[str, Path]:
    """Write the original and two augmented views of ``waveform (samples,)`` into ``output``.

    Returns:
        the written files by name (``original``, ``view_1``, ``view_2``, ``figure``).
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    batch = torch.as_tensor(waveform, dtype=torch.float32)[None, :]  # (1, samples)
    lengths = torch.tensor([batch.shape[1]])
    filterbank = LogMelFilterbank()
    signals = {"original": (batch, lengths, None)}
    for name in ("view_1", "view_2"):
        augmented, new_lengths = view(batch, lengths, generator)
        signals[name] = (augmented, new_lengths, view.feature_transform(generator))

    files = {}
    figure = Figure(figsize=(11, 7), layout="constrained")
    axes = figure.subplots(3, 2, gridspec_kw={"width_ratios": [1, 1.4]})
    for row, (name, (signal, signal_lengths, transform)) in enumerate(signals.items()):
        samples = int(signal_lengths[0])
        audio = signal[0, :samples].numpy()
        peak = max(1.0, float(np.abs(audio).max()))  # written without clipping
        files[name] = output / f"{name}.wav"
        sf.write(files[name], audio / peak, sample_rate)
        feats, frame_lengths = filterbank(signal[:, :samples], signal_lengths)  # (1, frames, mels)
        if transform is not None:
            feats = transform(feats, frame_lengths)
        time = np.arange(samples) / sample_rate
        axes[row, 0].plot(time, audio, linewidth=0.4)
        axes[row, 0].set_title(f"{name}: waveform ({samples / sample_rate:.2f} s)")
        axes[row, 0].set_xlabel("s")
        axes[row, 1].imshow(feats[0].T.numpy(), origin="lower", aspect="auto", cmap="magma")
        axes[row, 1].set_title(f"{name}: log-mel spectrogram" + (" after SpecAugment" if transform else ""))
        axes[row, 1].set_xlabel("frame")
        axes[row, 1].set_ylabel("mel channel")
    files["figure"] = output / "views.png"
    figure.savefig(files["figure"], dpi=100)
    return files


__all__ = ["render_views"]
