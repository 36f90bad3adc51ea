"""TERA: Transformer Encoder Representations from Alteration.

Liu, Li, Lee (2021), "TERA: Self-Supervised Learning of Transformer Encoder Representation
for Speech", IEEE/ACM TASLP 29, §III. The input log-mel frames ``x`` go through three
stochastic alterations (:mod:`speechssl.models.alteration`):

* time alteration (§III-A): Mockingjay's 15% span selection with the 80/10/10 split;
* channel alteration (§III-B): one band of up to 20% of the mel channels set to zero;
* magnitude alteration (§III-C): with probability ``P_N``, Gaussian noise added to the
  whole utterance;

and the encoder with a prediction head reconstructs the clean ``x``. The L1 loss is taken
over the altered positions only, ``A = A_time ∪ A_channel ∪ A_magnitude``:

    L = (1 / |A|) Σ_{(t, c) ∈ A} |x_{t,c} − x̂_{t,c}|

with ``A_time`` every channel of the selected frames, ``A_channel`` the masked band on every
valid frame, and ``A_magnitude`` every valid value of a noised utterance (TERA trains to
denoise them; the authors' released code adds the noise but scores only ``A_time ∪
A_channel``). Units, head and targets are Mockingjay's (:mod:`speechssl.methods.mockingjay`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from speechssl.methods.mockingjay import Mockingjay, MockingjayConfig
from speechssl.models.alteration import ChannelAlteration, MagnitudeAlteration


@dataclass
class TERAConfig(MockingjayConfig):
    """TERA's alterations (Liu et al. 2021; defaults from the authors' ``T-F-M`` recipe).

    Attributes:
        time: the time alteration (inherited from Mockingjay: 15%, 80/10/10).
        channel: the channel alteration (widest band: 20% of the channels).
        magnitude: the magnitude alteration (probability 0.15, noise std 0.2).
    """

    channel: ChannelAlteration = field(default_factory=ChannelAlteration)
    magnitude: MagnitudeAlteration = field(default_factory=MagnitudeAlteration)


class TERA(Mockingjay):
    """TERA pretraining of an fbank encoder (Liu et al. 2021): Mockingjay with the channel
    and magnitude alterations added.

    Args:
        encoder: the encoder being pretrained; its front-end must be ``fbank``.
        config: the three alterations.
        generator: a CPU generator, source of the alteration randomness (global RNG when None).
    """

    config: TERAConfig

    def alter(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Time, then channel, then magnitude alteration; the union of their masks.

        Args:
            features: ``(batch, frames, n_mels)`` normalised log-mel frames.
            lengths: ``(batch,)`` valid frames per utterance.

        Returns:
            the altered features and the ``(batch, frames, n_mels)`` bool mask ``A``.
        """
        features, time_mask = self.config.time(features, lengths, self.generator, unit=self.unit)
        features, channel_mask = self.config.channel(features, lengths, self.generator)
        features, magnitude_mask = self.config.magnitude(features, lengths, self.generator)
        return features, time_mask | channel_mask | magnitude_mask


__all__ = ["TERA", "TERAConfig"]
