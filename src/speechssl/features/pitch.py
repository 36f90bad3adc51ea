"""Fundamental frequency and voicing with YIN, batched in torch.

de Cheveigné & Kawahara (2002), "YIN, a fundamental frequency estimator for speech and
music", JASA 111(4). Per analysis window, with integration window ``W``:

* difference function (eq. 6): ``d(τ) = Σ_{j=0}^{W−1} (x_j − x_{j+τ})²``, computed as
  ``E(0) + E(τ) − 2 r(τ)`` with the energies ``E(τ) = Σ_j x_{j+τ}²`` and the
  cross-correlation ``r(τ) = Σ_j x_j x_{j+τ}`` from one FFT;
* cumulative mean normalised difference (eq. 8): ``d'(0) = 1``,
  ``d'(τ) = d(τ) / ((1/τ) Σ_{j=1}^{τ} d(j))``;
* absolute threshold (step 4): the period is the minimum of the first dip of ``d'`` below
  ``threshold`` within the allowed lags, or the global minimum when there is none;
* parabolic interpolation (step 5) of ``d'`` around that lag.

A frame is voiced when a dip goes below the threshold and its mean power is above
``silence_db`` (YIN alone calls digital silence periodic); ``1 − d'(τ*)`` (clipped to
``[0, 1]``, zero on silence) serves as a voicing probability.

Why not librosa: ``librosa.yin`` runs per utterance on the CPU in numpy and gives no
voicing decision (``librosa.pyin`` does, at a far higher cost); this version runs on the
training batch's device inside the training step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from speechssl.features.framing import frame_signal


@dataclass
class PitchConfig:
    """YIN search range and decisions.

    Attributes:
        f0_min: lowest F0 in Hz (sets the longest lag searched).
        f0_max: highest F0 in Hz (sets the shortest lag).
        integration_ms: integration window ``W`` in milliseconds (the paper's 25 ms).
        threshold: absolute threshold on ``d'`` (the paper uses 0.1; 0.2 agrees better with
            ``librosa.pyin``'s voicing on LibriSpeech while keeping the same F0 where both are voiced).
        silence_db: frames with mean power below this many dB (re full scale 1.0) are unvoiced.
    """

    f0_min: float = 60.0
    f0_max: float = 400.0
    integration_ms: float = 25.0
    threshold: float = 0.2
    silence_db: float = -60.0

    def __post_init__(self) -> None:
        if not 0 < self.f0_min < self.f0_max:
            raise ValueError(
                f"f0_min/f0_max: expected 0 < f0_min < f0_max, found {self.f0_min}/{self.f0_max}"
            )
        if self.integration_ms <= 0:
            raise ValueError(f"integration_ms: expected > 0, found {self.integration_ms}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold: expected a number in (0, 1), found {self.threshold}")

    def lags(self, sample_rate: int) -> tuple[int, int]:
        """Shortest and longest period searched, in samples."""
        return max(1, math.floor(sample_rate / self.f0_max)), math.ceil(sample_rate / self.f0_min)

    def integration_samples(self, sample_rate: int) -> int:
        """The integration window ``W`` in samples."""
        return max(1, round(self.integration_ms * sample_rate / 1000))

    def window_length(self, sample_rate: int) -> int:
        """Samples per analysis window: ``W`` plus the longest lag plus one (for interpolation)."""
        return self.integration_samples(sample_rate) + self.lags(sample_rate)[1] + 1


@dataclass
class PitchEstimate:
    """Per-frame YIN output.

    Attributes:
        f0: ``(batch, frames)`` F0 in Hz of the best period (also set on unvoiced frames).
        periodicity: ``(batch, frames)`` ``1 − d'(τ*)`` in ``[0, 1]``, zero on silence.
        voiced: ``(batch, frames)`` bool voicing decision.
    """

    f0: torch.Tensor
    periodicity: torch.Tensor
    voiced: torch.Tensor


def yin(windows: torch.Tensor, sample_rate: int, config: PitchConfig) -> PitchEstimate:
    """YIN on analysis windows (de Cheveigné & Kawahara 2002, steps 2–5).

    Args:
        windows: ``(batch, frames, samples)`` with at least ``config.window_length(sample_rate)``
            samples each (the first that many are used).
        sample_rate: samples per second.
        config: search range and thresholds.

    Returns:
        the :class:`PitchEstimate` of every window.
    """
    integration = config.integration_samples(sample_rate)
    lag_min, lag_max = config.lags(sample_rate)
    length = config.window_length(sample_rate)
    if windows.dim() != 3 or windows.shape[-1] < length:
        raise ValueError(
            f"windows: expected (batch, frames, samples >= {length}), found {tuple(windows.shape)}"
        )
    lags = lag_max + 2  # d' at 0 .. lag_max + 1
    with torch.autocast(windows.device.type, enabled=False):
        x = windows[..., :length].to(torch.promote_types(windows.dtype, torch.float32))
        n_fft = 1 << math.ceil(math.log2(length + integration))  # no circular wrap-around
        spectrum = torch.fft.rfft(x, n_fft)  # (batch, frames, n_fft // 2 + 1)
        head = torch.fft.rfft(x[..., :integration], n_fft)
        # r(τ) = Σ_{j<W} x_j x_{j+τ}: (batch, frames, lags)
        correlation = torch.fft.irfft(spectrum * head.conj(), n_fft)[..., :lags]
        cumulative_energy = F.pad(x.pow(2).cumsum(-1), (1, 0))  # (batch, frames, length + 1)
        energy = cumulative_energy[..., integration : integration + lags] - cumulative_energy[..., :lags]
        difference = (energy[..., :1] + energy - 2 * correlation).clamp(min=0)  # d(τ), eq. 6
        tau = torch.arange(1, lags, device=x.device, dtype=x.dtype)  # (lags - 1,)
        mean_so_far = difference[..., 1:].cumsum(-1) / tau  # (1/τ) Σ_{j=1}^{τ} d(j)
        normalised = torch.cat(
            [torch.ones_like(difference[..., :1]), difference[..., 1:] / mean_so_far.clamp(min=1e-12)], dim=-1
        )  # d'(τ), eq. 8: (batch, frames, lags)
        candidates = normalised[..., lag_min : lag_max + 1]  # (batch, frames, searched lags)
        below = candidates < config.threshold
        positions = torch.arange(candidates.shape[-1], device=x.device)
        after_first = positions >= below.int().argmax(-1, keepdim=True)  # from the first lag below threshold
        first_dip = after_first & (torch.cumsum(after_first & ~below, dim=-1) == 0)  # its contiguous run
        dip_minimum = torch.where(first_dip, candidates, torch.inf).argmin(-1)
        best = torch.where(below.any(-1), dip_minimum, candidates.argmin(-1)) + lag_min  # τ*: (batch, frames)
        previous, centre, following = (
            normalised.gather(-1, (best + shift)[..., None]).squeeze(-1) for shift in (-1, 0, 1)
        )
        curvature = previous - 2 * centre + following
        offset = torch.where(
            curvature > 0, 0.5 * (previous - following) / curvature.clamp(min=1e-12), torch.zeros_like(centre)
        ).clamp(-1.0, 1.0)  # step 5: vertex of the parabola through the three points
        f0 = sample_rate / (best + offset)
        loud = energy[..., 0] / integration > 10 ** (config.silence_db / 10)  # mean power of the window
        periodicity = torch.where(loud, (1.0 - centre).clamp(0.0, 1.0), torch.zeros_like(centre))
        return PitchEstimate(f0, periodicity, below.any(-1) & loud)


def estimate_pitch(
    waveforms: torch.Tensor,
    lengths: torch.Tensor,
    num_frames: int,
    hop_length: int,
    sample_rate: int,
    config: PitchConfig,
    first_centre: int = 0,
) -> PitchEstimate:
    """YIN on windows centred at ``first_centre + k · hop_length`` (see :func:`~speechssl.features.framing.frame_signal`).

    Args:
        waveforms: ``(batch, samples)`` audio, zero-padded.
        lengths: ``(batch,)`` valid samples per utterance.
        num_frames: frames per utterance.
        hop_length: samples between frame centres.
        sample_rate: samples per second.
        config: YIN settings.
        first_centre: centre of frame 0, in samples.

    Returns:
        the :class:`PitchEstimate` of ``(batch, num_frames)`` frames.
    """
    window = config.window_length(sample_rate)
    # the integration window, not the whole analysis window, is centred on the frame
    centre = first_centre - config.integration_samples(sample_rate) // 2 + window // 2
    windows = frame_signal(waveforms, lengths, num_frames, hop_length, window, centre)
    return yin(windows, sample_rate, config)


def interpolate_unvoiced(values: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Fill unvoiced frames by linear interpolation between the nearest voiced frames.

    Frames before the first (after the last) voiced frame take its value; utterances
    without a voiced frame come out as zeros. PASE's prosody worker predicts log-F0
    interpolated this way (Pascual et al. 2019, §2.2).

    Args:
        values: ``(batch, frames)`` e.g. log-F0, meaningful on voiced frames.
        voiced: ``(batch, frames)`` bool.

    Returns:
        ``(batch, frames)`` with voiced frames unchanged.
    """
    frames = values.shape[1]
    positions = torch.arange(frames, device=values.device).expand_as(values)  # (batch, frames)
    previous = torch.where(voiced, positions, -1).cummax(dim=1).values  # last voiced index <= t, or -1
    following = (
        torch.where(voiced, positions, frames).flip(1).cummin(dim=1).values.flip(1)
    )  # next voiced >= t
    has_previous, has_following = previous >= 0, following < frames
    left = values.gather(1, previous.clamp(min=0))
    right = values.gather(1, following.clamp(max=frames - 1))
    span = (following - previous).clamp(min=1).to(values.dtype)
    weight = (positions - previous).to(values.dtype) / span  # 0 at the previous voiced frame, 1 at the next
    between = left + weight * (right - left)
    filled = torch.where(
        has_previous & has_following,
        between,
        torch.where(has_previous, left, torch.where(has_following, right, 0)),
    )
    return torch.where(voiced, values, filled)


__all__ = ["PitchConfig", "PitchEstimate", "estimate_pitch", "interpolate_unvoiced", "yin"]
