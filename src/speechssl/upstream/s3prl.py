"""A speechssl upstream behind s3prl's ``UpstreamExpert`` contract, for s3prl's downstream recipes.

s3prl (Yang et al. 2021, SUPERB) builds an upstream as ``UpstreamExpert(ckpt, model_config=…,
refresh=…)``, calls it with a list of 1-D waveforms of different lengths and reads the
``"hidden_states"`` entry of the returned dict: one ``(batch, frames, dim)`` tensor per
layer, which its ``Featurizer`` mixes with learned weights (or one layer it selects), then
cuts each utterance to ``round(samples / downsample_rate)`` frames using
``get_downsample_rates(key)``. :class:`UpstreamExpert` provides that over any speechssl
upstream spec (:func:`speechssl.upstream.build_upstream`: a run or checkpoint folder,
``hf:<dir>``, ``random:<preset>``, ``fbank``, ``mfcc``). Padding is handled as s3prl's
experts do: the waveforms are zero-padded to the longest and their lengths passed along,
so each utterance's valid frames do not depend on the batch; padded frames are zero.

To register it in an s3prl checkout, a ``hubconf.py`` in a new folder of
``s3prl/upstream/`` (README, "Using a speechssl run in s3prl") names a function returning
``UpstreamExpert(ckpt, **kwargs)``; s3prl collects it by that function's name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from speechssl.data.batch import pad_waveforms
from speechssl.upstream import build_upstream

S3PRL_SAMPLE_RATE = 16_000
"""The rate of the audio s3prl's recipes feed an upstream."""
SUPERB_TASK_KEYS = ("PR", "ASR", "QbE", "SID", "ASV", "SD", "ER", "SF", "SE", "SS", "secret")
"""Task keys of the SUPERB challenge's upstream outputs (each the same hidden states here)."""


class UpstreamExpert(nn.Module):
    """s3prl's upstream contract over the speechssl upstream ``ckpt``.

    Args:
        ckpt: a speechssl upstream spec: a run folder (its latest checkpoint), a checkpoint
            folder, ``hf:<dir>``, ``random:<preset>``, ``fbank`` or ``mfcc``, reading 16 kHz audio.
        model_config: s3prl's ``-g`` option; a speechssl checkpoint carries its own
            ``encoder.yaml``, so it must be left unset.
        kwargs: s3prl's other options (``refresh``, hooks), which a local, frozen upstream ignores.

    The upstream stays frozen (s3prl's default; fine-tuning it with ``--upstream_trainable``
    is not supported).
    """

    def __init__(self, ckpt: str, model_config: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        if model_config:
            raise ValueError(
                f"model_config: expected none (a speechssl checkpoint carries its encoder.yaml), found {model_config!r}"
            )
        self.upstream = build_upstream(str(ckpt))
        if self.upstream.sample_rate != S3PRL_SAMPLE_RATE:
            raise ValueError(
                f"sample_rate: expected an upstream at s3prl's {S3PRL_SAMPLE_RATE} Hz, found {ckpt} "
                f"at {self.upstream.sample_rate} Hz"
            )
        self.name = self.upstream.name

    def get_downsample_rates(self, key: str) -> int:
        """Input samples per output frame of every output ``key`` (320 for the waveform CNN, 640
        for the filterbank encoder at 16 kHz)."""
        return self.upstream.downsample_rate

    def forward(self, wavs: list[torch.Tensor]) -> dict[str, Any]:
        """Hidden states of ``wavs``, a list of ``(samples,)`` float waveforms at the upstream's rate.

        Returns:
            ``"hidden_states"``: one ``(batch, frames, dim)`` tensor per layer, ``frames`` those
            of the longest utterance, zero on each shorter utterance's padded frames;
            ``"last_hidden_state"`` and ``"hidden_state_{i}"``: single layers of it; and every
            key of :data:`SUPERB_TASK_KEYS`, the same list.
        """
        waveforms, lengths = pad_waveforms(wavs)  # (batch, samples) zero-padded, (batch,)
        hidden_states = list(self.upstream(waveforms, lengths).hidden_states)
        return {
            "hidden_states": hidden_states,
            "last_hidden_state": hidden_states[-1],
            **{f"hidden_state_{i}": hidden for i, hidden in enumerate(hidden_states)},
            **dict.fromkeys(SUPERB_TASK_KEYS, hidden_states),
        }


__all__ = ["S3PRL_SAMPLE_RATE", "SUPERB_TASK_KEYS", "UpstreamExpert"]
