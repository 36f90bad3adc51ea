"""Reverberation with synthetic room impulse responses, batched in torch.

A room impulse response (RIR) is modelled statistically, as in the late-reverberation model
of Polack (1988) used for simulated-RIR augmentation (e.g. Ko et al. 2017, "A study on data
augmentation of reverberant speech for robust speech recognition"): a unit direct path,
then, after a short pre-delay, Gaussian noise under an exponential envelope whose energy
decays by 60 dB in ``RT60`` seconds, ``h(t) = n(t) exp(-3 ln(10) t / RT60)``, scaled to a
drawn direct-to-reverberant ratio (DRR). Each utterance gets its own RT60 and DRR; the
convolution is one batched FFT; the output keeps the input's length (the tail past it is
cut) and its energy over valid samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from speechssl.augment.base import bernoulli, check_batch, check_probability, check_range, randn, uniform
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.batch import lengths_to_padding_mask


def synthetic_rir(
    rt60: torch.Tensor,
    drr_db: torch.Tensor,
    samples: int,
    sample_rate: int,
    predelay: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``(batch, samples)`` impulse responses: a unit impulse at 0, the decaying tail after
    ``predelay`` seconds with energy ``10^(-drr/10)`` relative to the direct path.

    Args:
        rt60: ``(batch,)`` reverberation times in seconds.
        drr_db: ``(batch,)`` direct-to-reverberant energy ratios in dB.
        samples: impulse response length.
        sample_rate: samples per second.
        predelay: seconds between the direct path and the tail.
        generator: source of the tail's noise.
    """
    device = rt60.device
    time = torch.arange(samples, device=device, dtype=torch.float32) / sample_rate  # (samples,)
    envelope = torch.exp(-3.0 * math.log(10.0) * time[None, :] / rt60[:, None])  # (batch, samples)
    after = (time >= predelay) & (time > 0)  # (samples,) the tail starts after the direct path
    tail = randn((rt60.shape[0], samples), generator, device) * envelope * after
    energy = tail.pow(2).sum(dim=1, keepdim=True).clamp(min=1e-12)  # (batch, 1)
    tail = tail * torch.sqrt(10.0 ** (-drr_db[:, None] / 10.0) / energy)  # (batch, samples)
    tail[:, 0] = 1.0  # the direct path
    return tail


@dataclass(frozen=True)
class Reverberation:
    """Convolve each utterance with its own synthetic room impulse response.

    Attributes:
        rt60: ``(low, high)`` reverberation time range in seconds.
        drr_db: ``(low, high)`` direct-to-reverberant ratio range in dB (lower is more reverberant).
        predelay: seconds between the direct path and the reverberant tail.
        sample_rate: samples per second.
        p: probability of reverberating each utterance.
    """

    rt60: tuple[float, float] = (0.2, 0.8)
    drr_db: tuple[float, float] = (0.0, 10.0)
    predelay: float = 0.005
    sample_rate: int = DEFAULT_SAMPLE_RATE
    p: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.rt60, "rt60")
        check_range(self.drr_db, "drr_db")
        check_probability(self.p)
        if not self.rt60[0] > 0:
            raise ValueError(f"rt60: expected reverberation times > 0 s, found {self.rt60}")
        if not self.predelay >= 0:
            raise ValueError(f"predelay: expected >= 0 s, found {self.predelay}")

    def __call__(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``waveforms (batch, samples)``, ``lengths (batch,)`` -> reverberant waveforms, same lengths."""
        check_batch(waveforms, lengths, "(batch, samples)")
        if self.p == 0.0:
            return waveforms, lengths
        batch, samples = waveforms.shape
        device = waveforms.device
        lengths = lengths.to(device)
        apply = bernoulli(self.p, batch, generator, device)
        rt60 = uniform(*self.rt60, batch, generator, device)
        drr = uniform(*self.drr_db, batch, generator, device)
        rir_samples = min(samples, math.ceil(self.rt60[1] * self.sample_rate))
        rir = synthetic_rir(
            rt60, drr, rir_samples, self.sample_rate, self.predelay, generator
        )  # (batch, rir)
        size = samples + rir_samples
        dry = waveforms.float()
        wet = torch.fft.irfft(
            torch.fft.rfft(dry, n=size, dim=1) * torch.fft.rfft(rir, n=size, dim=1), n=size, dim=1
        )[:, :samples]  # (batch, samples)
        valid = ~lengths_to_padding_mask(lengths, samples)  # (batch, samples)
        wet = wet * valid
        dry_energy = dry.pow(2).sum(dim=1, keepdim=True)  # (batch, 1)
        wet_energy = wet.pow(2).sum(dim=1, keepdim=True).clamp(min=1e-12)  # (batch, 1)
        wet = wet * torch.sqrt(dry_energy / wet_energy)
        return torch.where(apply[:, None], wet, dry).to(waveforms.dtype), lengths


__all__ = ["Reverberation", "synthetic_rir"]
