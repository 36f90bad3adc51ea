"""Frozen representations behind one contract, built from a short spec string.

Specs: ``fbank`` and ``mfcc`` (hand-crafted baselines), ``random:<preset or encoder.yaml>``
(an untrained encoder of that architecture), ``hf:<directory>`` (a wav2vec2, HuBERT, WavLM
or data2vec-audio model saved with ``transformers``, loaded offline), or the path of a speechssl
checkpoint or run directory (any pretext method).
"""

from __future__ import annotations

from pathlib import Path

from speechssl.upstream.base import Upstream
from speechssl.upstream.encoder import EncoderUpstream
from speechssl.upstream.features import FeatureUpstream
from speechssl.upstream.huggingface import HuggingFaceUpstream


def weights_origin(spec: str) -> str:
    """Where the weights of the upstream named by ``spec`` come from, for reports:
    ``"no learned weights"`` (``fbank``, ``mfcc``), ``"random weights, drawn once"``
    (``random:``) or ``"pretrained once"`` (``hf:`` and checkpoints). An evaluation's
    seeds never change these weights: they vary the probe on top."""
    if spec in ("fbank", "mfcc"):
        return "no learned weights"
    if spec.startswith("random:"):
        return "random weights, drawn once"
    return "pretrained once"


def build_upstream(spec: str, seed: int = 0) -> Upstream:
    """The upstream named by ``spec`` (see module docstring)."""
    if spec in ("fbank", "mfcc"):
        return FeatureUpstream(spec)
    if spec.startswith("random:"):
        return EncoderUpstream.random_init(spec.removeprefix("random:"), seed=seed)
    if spec.startswith("hf:"):
        return HuggingFaceUpstream.from_pretrained(spec.removeprefix("hf:"))
    if Path(spec).exists():
        return EncoderUpstream.from_checkpoint(spec)
    raise ValueError(
        f"upstream {spec!r}: expected 'fbank', 'mfcc', 'random:<preset>', 'hf:<directory>' "
        "or an existing checkpoint path"
    )


__all__ = [
    "EncoderUpstream",
    "FeatureUpstream",
    "HuggingFaceUpstream",
    "Upstream",
    "build_upstream",
    "weights_origin",
]
