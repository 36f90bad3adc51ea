"""Log-mel filterbank and MFCC features, batched and padding-aware.

Both follow the definitions used by librosa (Slaney's Auditory Toolbox mel scale and
area-normalised triangular filters; McFee et al. 2015) so that they can be checked
against it, but run in torch on the input's device and take per-utterance ``lengths``:
the frames of an utterance are the same whether it is computed alone or zero-padded
inside a batch, and padded frames are exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.batch import host_lengths, lengths_to_padding_mask

WINDOW_SECONDS = 0.025
"""Default analysis window: 25 ms (400 samples at 16 kHz)."""
HOP_SECONDS = 0.010
"""Default frame shift: 10 ms (160 samples at 16 kHz), the MFCC / log-mel frame rate."""


CHUNK_SAMPLES = 160_000
"""Padded samples per STFT call in a batch (10 s at 16 kHz; at least one utterance). Under
``torch.export`` the whole batch is one call: the program serves every batch size."""


def hop_samples(sample_rate: int) -> int:
    """Samples in the default 10 ms frame shift at ``sample_rate`` Hz (160 at 16 kHz)."""
    return round(HOP_SECONDS * sample_rate)


@dataclass
class FilterbankConfig:
    """Short-time Fourier transform and mel filterbank options.

    Attributes:
        sample_rate: input sampling rate in Hz.
        n_fft: FFT size; the spectrum has ``n_fft // 2 + 1`` bins. None: 25 ms at ``sample_rate``.
        win_length: Hann window length in samples, zero-padded to ``n_fft``. None: 25 ms at
            ``sample_rate`` (400 samples at 16 kHz).
        hop_length: samples between frame starts. None: 10 ms at ``sample_rate``
            (:func:`hop_samples`; 160 at 16 kHz).
        n_mels: number of mel bands.
        f_min: lowest filter edge in Hz.
        f_max: highest filter edge in Hz; ``None`` means ``sample_rate / 2``.
        center: pad ``n_fft // 2`` zeros on both sides so frame ``t`` is centred on
            sample ``t * hop_length`` (librosa's ``center=True, pad_mode="constant"``).
        log_offset: added to the mel energies before the natural log.
        mel_scale: ``"slaney"`` (linear below 1 kHz, logarithmic above; Slaney 1998) or
            ``"htk"`` (``2595 log10(1 + f / 700)``; Young et al., HTK book).
        power: exponent of the magnitude spectrum (2.0 = power, 1.0 = magnitude).
        floor_db: when set, each utterance's mel energies are floored this many dB below its own
            peak (``log(mel + offset + peak * 10^(-floor_db / 10))``), as Whisper clamps its
            log-mel 80 dB below the peak (Radford et al. 2022): the floor then moves with the
            recording level, so a gain change shifts every valid frame by the same constant.
            An absolute ``log_offset`` alone puts silence at a fixed level that quiet
            recordings (RAVDESS peaks near ``log 0.1``) reach over most of their frames.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    n_fft: int | None = None
    win_length: int | None = None
    hop_length: int | None = None
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    center: bool = True
    log_offset: float = 1e-6
    mel_scale: Literal["slaney", "htk"] = "slaney"
    power: float = 2.0
    floor_db: float | None = None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate: expected a positive integer, found {self.sample_rate}")
        window = round(WINDOW_SECONDS * self.sample_rate)
        if self.win_length is None:
            self.win_length = window
        if self.n_fft is None:
            self.n_fft = window
        if self.hop_length is None:
            self.hop_length = hop_samples(self.sample_rate)
        for name in ("n_fft", "win_length", "hop_length", "n_mels"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive integer, found {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length: expected at most n_fft={self.n_fft}, found {self.win_length}")
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0.0 <= self.f_min < f_max:
            raise ValueError(f"f_min: expected 0 <= f_min < f_max={f_max}, found {self.f_min}")
        if f_max > nyquist:
            raise ValueError(f"f_max: expected at most sample_rate / 2 = {nyquist}, found {f_max}")
        if self.log_offset <= 0:
            raise ValueError(f"log_offset: expected > 0, found {self.log_offset}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale: expected 'slaney' or 'htk', found {self.mel_scale!r}")
        if self.power <= 0:
            raise ValueError(f"power: expected > 0, found {self.power}")
        if self.floor_db is not None and self.floor_db <= 0:
            raise ValueError(f"floor_db: expected > 0 or None, found {self.floor_db}")

    @property
    def n_freqs(self) -> int:
        """Number of one-sided spectrum bins."""
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Exact STFT frame count for ``num_samples`` valid samples (any shape, int64)."""
        if self.center:
            return num_samples // self.hop_length + 1
        return torch.clamp((num_samples - self.n_fft) // self.hop_length + 1, min=0)


def hz_to_mel(frequencies: torch.Tensor, mel_scale: str) -> torch.Tensor:
    """Hertz to mels on the HTK or Slaney scale (librosa's ``hz_to_mel``)."""
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + frequencies / 700.0)
    f_sp = 200.0 / 3  # Hz per mel in the linear region
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = frequencies / f_sp
    logarithmic = min_log_mel + torch.log(frequencies.clamp(min=min_log_hz) / min_log_hz) / logstep
    return torch.where(frequencies >= min_log_hz, logarithmic, linear)


def mel_to_hz(mels: torch.Tensor, mel_scale: str) -> torch.Tensor:
    """Mels to hertz, the inverse of :func:`hz_to_mel`."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = f_sp * mels
    logarithmic = min_log_hz * torch.exp(logstep * (mels - min_log_mel))
    return torch.where(mels >= min_log_mel, logarithmic, linear)


def mel_filterbank(config: FilterbankConfig) -> torch.Tensor:
    """Area-normalised triangular mel filters, ``(n_freqs, n_mels)`` float32.

    Band ``m`` rises linearly (in Hz) from edge ``f[m]`` to ``f[m + 1]`` and falls to
    ``f[m + 2]``, with the ``n_mels + 2`` edges equally spaced in mels between ``f_min``
    and ``f_max``; each triangle is scaled by ``2 / (f[m + 2] - f[m])`` so that all bands
    have unit area ("slaney" normalisation, as librosa's ``filters.mel``).
    """
    f_max = config.sample_rate / 2 if config.f_max is None else config.f_max
    fft_freqs = torch.linspace(0.0, config.sample_rate / 2, config.n_freqs, dtype=torch.float64)
    mel_min, mel_max = hz_to_mel(torch.tensor([config.f_min, f_max], dtype=torch.float64), config.mel_scale)
    steps = torch.linspace(0.0, 1.0, config.n_mels + 2, dtype=torch.float64)
    mel_edges = mel_min + (mel_max - mel_min) * steps  # (n_mels + 2,)
    hz_edges = mel_to_hz(mel_edges, config.mel_scale)  # (n_mels + 2,)
    widths = hz_edges.diff()  # (n_mels + 1,)
    ramps = hz_edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_freqs)
    rising = -ramps[:-2] / widths[:-1, None]  # (n_mels, n_freqs)
    falling = ramps[2:] / widths[1:, None]  # (n_mels, n_freqs)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    return weights.T.to(torch.float32)  # (n_freqs, n_mels)


def check_audio(waveforms: torch.Tensor, lengths: torch.Tensor) -> None:
    """Raise ValueError unless ``waveforms`` is ``(batch, samples)`` and ``lengths`` is ``(batch,)``."""
    if waveforms.dim() != 2:
        raise ValueError(f"waveforms: expected (batch, samples), found shape {tuple(waveforms.shape)}")
    if lengths.shape != (waveforms.shape[0],):
        raise ValueError(
            f"lengths: expected shape (batch,) = ({waveforms.shape[0]},), found {tuple(lengths.shape)}"
        )


class LogMelFilterbank(nn.Module):
    """Log mel-filterbank energies ``log(M |STFT(x)|^p + offset)``, one row per frame.

    The mel matrix ``M`` and the Hann window are non-persistent buffers derived from the
    config, so they follow the module across devices and dtypes but are not learned and
    not saved in checkpoints.
    """

    mel_filters: torch.Tensor
    window: torch.Tensor

    def __init__(self, config: FilterbankConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else FilterbankConfig()
        self.hop_length = self.config.hop_length
        self.register_buffer("mel_filters", mel_filterbank(self.config), persistent=False)
        self.register_buffer(
            "window", torch.hann_window(self.config.win_length, periodic=True), persistent=False
        )

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Exact frame count for ``num_samples`` valid samples (any shape, int64)."""
        return self.config.num_frames(num_samples)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel energies ``(batch, frames, n_mels)`` of ``(batch, samples)`` audio, padding included."""
        config = self.config
        spectrum = torch.stft(
            waveforms,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.win_length,
            window=self.window.to(waveforms.dtype),
            center=config.center,
            pad_mode="constant",
            return_complex=True,
        )  # (batch, n_freqs, frames)
        if config.power == 2.0:
            # |z|^2 = re^2 + im^2 without the square root of abs() and its temporaries.
            real, imag = torch.view_as_real(spectrum).unbind(-1)  # each (batch, n_freqs, frames)
            power = real.square().addcmul_(imag, imag)  # (batch, n_freqs, frames)
        else:
            power = spectrum.abs().pow_(config.power)  # (batch, n_freqs, frames)
        # (frames, n_freqs) @ (n_freqs, n_mels) on the transposed view, no copy of the spectrum.
        mel = power.transpose(1, 2) @ self.mel_filters.to(power.dtype)  # (batch, frames, n_mels)
        return mel.add_(config.log_offset).log_()

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the features of a padded batch.

        Args:
            waveforms: ``(batch, samples)`` float audio; samples past ``lengths`` are ignored.
            lengths: ``(batch,)`` int64 number of valid samples per utterance.

        Returns:
            ``features (batch, frames, n_mels)`` with padded frames set to zero, and
            ``frame_lengths (batch,)`` int64, the number of valid frames per utterance.
        """
        check_audio(waveforms, lengths)
        # Features are computed at the input's precision, never in autocast's half precision.
        with torch.autocast(waveforms.device.type, enabled=False):
            samples = host_lengths(lengths)
            if samples is None:  # no host synchronisation: every chunk at the padded length
                padding = lengths_to_padding_mask(lengths, waveforms.shape[1])  # (batch, samples)
                waveforms = waveforms.masked_fill(padding, 0.0)
                if torch.compiler.is_exporting():  # one program for every batch size: no chunks
                    features = self.log_mel(waveforms)
                else:
                    rows = max(1, CHUNK_SAMPLES // max(1, waveforms.shape[1]))
                    features = torch.cat([self.log_mel(chunk) for chunk in waveforms.split(rows)])
            else:
                features = self._log_mel_by_length(waveforms, samples)
        frame_lengths = self.num_frames(lengths)
        frame_padding = lengths_to_padding_mask(frame_lengths, features.shape[1])  # (batch, frames)
        if self.config.floor_db is not None:
            features = floor_below_peak(features, frame_padding, self.config.floor_db)
        return features.masked_fill_(frame_padding[:, :, None], 0.0), frame_lengths

    def _log_mel_by_length(self, waveforms: torch.Tensor, samples: list[int]) -> torch.Tensor:
        """Log-mel energies ``(batch, frames, n_mels)`` of padded ``waveforms (batch, samples)``
        whose valid ``samples`` are known on the host: utterances of similar length run together,
        each chunk cut at its longest (shorter ones zero-padded), so no STFT frame is computed
        past the longest one.

        The STFT's frame and spectrum temporaries are a few times the audio's size: a chunk of
        about ``CHUNK_SAMPLES`` stays in cache, which beats one pass over a big batch.
        """
        padded_frames = int(self.num_frames(torch.tensor(waveforms.shape[1])))
        features = waveforms.new_zeros(waveforms.shape[0], padded_frames, self.n_mels)
        order = sorted(range(len(samples)), key=samples.__getitem__, reverse=True)
        start = 0
        while start < len(order):
            longest = samples[order[start]]
            picked = order[start : start + max(1, CHUNK_SAMPLES // max(1, longest))]
            rows = torch.tensor(picked, device=waveforms.device)
            chunk_lengths = torch.tensor([samples[row] for row in picked], device=waveforms.device)
            chunk = waveforms[rows, :longest]  # (rows, longest), a copy
            chunk.masked_fill_(lengths_to_padding_mask(chunk_lengths, longest), 0.0)
            chunk_features = self.log_mel(chunk)  # (rows, chunk frames, n_mels)
            features[rows, : chunk_features.shape[1]] = chunk_features
            start += len(picked)
        return features


def floor_below_peak(features: torch.Tensor, frame_padding: torch.Tensor, floor_db: float) -> torch.Tensor:
    """``log(exp(features) + peak * 10^(-floor_db / 10))`` with ``peak`` the largest mel energy
    of each utterance's valid frames (see :attr:`FilterbankConfig.floor_db`).

    Args:
        features: ``(batch, frames, n_mels)`` log-mel energies.
        frame_padding: ``(batch, frames)`` True on padded frames.
        floor_db: how far below the peak the floor lies, in dB.
    """
    valid = features.masked_fill(frame_padding[:, :, None], -math.inf)  # (batch, frames, n_mels)
    log_peak = valid.amax(dim=(1, 2), keepdim=True)  # (batch, 1, 1)
    floor = log_peak - floor_db * math.log(10.0) / 10.0
    return torch.logaddexp(features, floor.expand_as(features))


def dct_matrix(n_input: int, n_output: int) -> torch.Tensor:
    """Orthonormal DCT-II basis, ``(n_input, n_output)`` float32.

    ``y[k] = s_k sum_n x[n] cos(pi k (2n + 1) / (2N))`` with ``s_0 = sqrt(1/N)`` and
    ``s_k = sqrt(2/N)`` otherwise (the ``norm="ortho"`` DCT-II of scipy.fft.dct),
    truncated to the first ``n_output`` coefficients.
    """
    n = torch.arange(n_input, dtype=torch.float64)
    k = torch.arange(n_output, dtype=torch.float64)
    basis = torch.cos(math.pi / n_input * (n[:, None] + 0.5) * k[None, :])  # (n_input, n_output)
    scale = torch.full((n_output,), math.sqrt(2.0 / n_input), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n_input)
    return (basis * scale).to(torch.float32)


class MFCC(nn.Module):
    """Mel-frequency cepstral coefficients: DCT-II (orthonormal) of the log-mel energies.

    Davis & Mermelstein (1980); the first ``n_mfcc`` coefficients, no liftering.
    """

    dct: torch.Tensor

    def __init__(self, filterbank: LogMelFilterbank | None = None, n_mfcc: int = 13) -> None:
        super().__init__()
        self.filterbank = filterbank if filterbank is not None else LogMelFilterbank()
        if not 0 < n_mfcc <= self.filterbank.n_mels:
            raise ValueError(f"n_mfcc: expected 1..n_mels={self.filterbank.n_mels}, found {n_mfcc}")
        self.n_mfcc = n_mfcc
        self.hop_length = self.filterbank.hop_length
        self.register_buffer("dct", dct_matrix(self.filterbank.n_mels, n_mfcc), persistent=False)

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        """Exact frame count for ``num_samples`` valid samples (any shape, int64)."""
        return self.filterbank.num_frames(num_samples)

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the cepstra of a padded batch.

        Args:
            waveforms: ``(batch, samples)`` float audio.
            lengths: ``(batch,)`` int64 number of valid samples per utterance.

        Returns:
            ``features (batch, frames, n_mfcc)`` (zero on padded frames) and
            ``frame_lengths (batch,)``.
        """
        log_mel, frame_lengths = self.filterbank(waveforms, lengths)  # (batch, frames, n_mels)
        return log_mel @ self.dct.to(log_mel.dtype), frame_lengths
