"""Entry points behind ``speechssl units``: features from a spec, corpora by name, scoring.

* :func:`unit_features` turns ``mfcc`` or a run/checkpoint directory into the frames to
  cluster, pooled to a model's frame rate when asked;
* :func:`corpus_manifest` resolves ``--corpus``/``--data-root`` like pretraining does
  (:class:`~speechssl.data.DataConfig`, :func:`~speechssl.data.load_manifest`);
* :func:`load_tokenizer` reads a tokenizer directory or a quantizer run;
* :func:`score_units` scores stored units against frame-level ground truth
  (:mod:`speechssl.units.quality`, :mod:`speechssl.units.truth`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechssl.config import apply_overrides, from_dict, load_yaml
from speechssl.data import BadFileSummary, DataConfig, Manifest, load_manifest
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.features.filterbank import hop_samples
from speechssl.methods.tokenizers import tokenizer_from_run
from speechssl.models.checkpoint import load_encoder, resolve_checkpoint
from speechssl.models.encoder import EncoderConfig, SpeechEncoder, UnitFeatureConfig, load_encoder_preset
from speechssl.models.units import TOKENIZER_CONFIG, UnitFeatures, UnitTokenizer, load_unit_tokenizer
from speechssl.units.labels import UnitLabels
from speechssl.units.quality import JointCounter, UnitQuality
from speechssl.units.truth import check_truth, frame_truth
from speechssl.upstream import Upstream, build_upstream

MFCC = "mfcc"


def frame_rate_encoder(spec: str) -> SpeechEncoder:
    """The encoder of a preset (``tiny``, ``base``), encoder YAML or run directory."""
    path = Path(spec)
    if path.is_dir():
        return load_encoder(resolve_checkpoint(path))
    if path.suffix in (".yaml", ".yml"):
        config = from_dict(EncoderConfig, load_yaml(path), where=str(path))
    else:
        config = load_encoder_preset(spec)
    return SpeechEncoder.from_config(config)


def encoder_downsample_rate(spec: str) -> int:
    """Samples per frame of an encoder preset (``tiny``, ``base``), encoder YAML or run directory."""
    return frame_rate_encoder(spec).downsample_rate


def _pool_to(target_rate: int, native_rate: int, spec: str) -> int:
    if target_rate % native_rate:
        raise ValueError(
            f"frame_rate_of {spec}: expected a frame of a whole number of {native_rate}-sample feature "
            f"frames, found {target_rate} samples per frame"
        )
    return target_rate // native_rate


def unit_features(
    spec: str,
    layer: int = -1,
    pool: int | None = None,
    frame_rate_of: str | None = None,
    deltas: bool = True,
) -> UnitFeatures:
    """The frames named by ``spec``: ``"mfcc"``, a speechssl run or checkpoint, or any upstream spec.

    Args:
        spec: ``"mfcc"`` (13 MFCC + Δ + ΔΔ at 10 ms), a run/checkpoint directory (its
            encoder's hidden state ``layer``, weights loaded and saved with the tokenizer),
            or an upstream spec such as ``hf:<dir>`` (hidden state ``layer``; the tokenizer
            records the spec and the upstream's fingerprint, see :func:`load_tokenizer`).
        layer: hidden-state index for an encoder or upstream.
        pool: frames averaged into one; exclusive with ``frame_rate_of``.
        frame_rate_of: pool to the frame rate of this encoder (preset, YAML or run directory).
        deltas: append Δ and ΔΔ to the MFCC.
    """
    if pool is not None and frame_rate_of is not None:
        raise ValueError(
            f"pool: expected at most one of pool and frame_rate_of, found {pool} and {frame_rate_of}"
        )
    if spec == MFCC:
        sample_rate = DEFAULT_SAMPLE_RATE
        if frame_rate_of is not None:
            encoder = frame_rate_encoder(frame_rate_of)
            sample_rate = encoder.sample_rate  # MFCC at the rate of the encoder they are pooled for
            pool = _pool_to(encoder.downsample_rate, hop_samples(sample_rate), frame_rate_of)
        config = UnitFeatureConfig(source="mfcc", pool=pool or 1, deltas=deltas, sample_rate=sample_rate)
        return UnitFeatures(config)
    if not Path(spec).exists():
        upstream = upstream_from_spec(spec)
        if frame_rate_of is not None:
            pool = _pool_to(encoder_downsample_rate(frame_rate_of), upstream.downsample_rate, frame_rate_of)
        config = UnitFeatureConfig(
            source="upstream",
            layer=layer,
            pool=pool or 1,
            upstream=spec,
            upstream_fingerprint=upstream.fingerprint(),
        )
        return UnitFeatures(config, upstream)
    encoder = load_encoder(resolve_checkpoint(spec))
    if frame_rate_of is not None:
        pool = _pool_to(encoder_downsample_rate(frame_rate_of), encoder.downsample_rate, frame_rate_of)
    config = UnitFeatureConfig(source="encoder", layer=layer, pool=pool or 1, encoder=encoder.config)
    return UnitFeatures(config, encoder)


def upstream_from_spec(spec: str) -> Upstream:
    """A harness upstream (``hf:<dir>``, ``fbank``, ``random:<preset>``) whose layers units can be made of."""
    if spec != "fbank" and not spec.startswith(("hf:", "random:")):
        raise ValueError(
            "features: expected 'mfcc', a run/checkpoint directory or an upstream spec "
            f"(hf:<dir>, fbank, random:<preset>), found {spec!r}"
        )
    return build_upstream(spec)


def load_tokenizer(units: str | Path | None = None, quantizer: str | Path | None = None) -> UnitTokenizer:
    """The tokenizer saved in directory ``units``, or the quantizer of run ``quantizer`` (exactly one).

    A tokenizer made from an upstream (``hf:<dir>``, ...) rebuilds that upstream and checks
    that its content fingerprint is the one the units were made with.
    """
    if (units is None) == (quantizer is None):
        raise ValueError(f"units: expected exactly one of units and quantizer, found {units} and {quantizer}")
    if units is None:
        return tokenizer_from_run(quantizer)
    config = load_yaml(Path(units) / TOKENIZER_CONFIG)
    features = config.get("features", {}) if isinstance(config, dict) else {}
    if features.get("source") != "upstream":
        return load_unit_tokenizer(units)
    upstream = upstream_from_spec(features["upstream"])
    if upstream.fingerprint() != features.get("upstream_fingerprint"):
        raise ValueError(
            f"{Path(units) / TOKENIZER_CONFIG}: expected upstream {features['upstream']!r} with fingerprint "
            f"{features.get('upstream_fingerprint')}, found {upstream.fingerprint()} (the model changed "
            "since the units were made; fit them again)"
        )
    return load_unit_tokenizer(units, upstream)


def corpus_manifest(
    corpus: str,
    data_root: str | None = None,
    split: str | None = None,
    overrides: Sequence[str] = (),
    max_utterances: int | None = None,
    seed: int = 0,
) -> Manifest:
    """The manifest of ``corpus`` under ``data_root``, as ``data.corpus``/``data.root`` of pretraining.

    Args:
        corpus: a corpus name (``fsdd``, ``librispeech``, ..., ``manifest``) or ``synthetic``.
        data_root: its folder (or manifest file); for ``synthetic``, where it is generated.
        split: keep this split only; ``None`` keeps every row.
        overrides: further :class:`~speechssl.data.DataConfig` ``key=value`` settings, e.g.
            ``synthetic.num_utterances=40``.
        max_utterances: keep a seeded random subset of at most this many rows (in manifest order).
        seed: seed of that subset.
    """
    base = {"corpus": corpus, "root": data_root, "split": split}
    config = from_dict(DataConfig, apply_overrides(base, overrides), where="data")
    manifest = load_manifest(config, bad_files=BadFileSummary() if config.skip_bad else None)
    if max_utterances is not None:
        if max_utterances < 1:
            raise ValueError(f"max_utterances: expected a positive integer, found {max_utterances}")
        if max_utterances < len(manifest):
            chosen = np.random.default_rng(seed).choice(len(manifest), size=max_utterances, replace=False)
            manifest = manifest.select(np.sort(chosen))
    return manifest


def score_units(labels: UnitLabels, manifest: Manifest, truth: str) -> UnitQuality:
    """Purities, PNMI and codebook usage of ``labels`` against ``truth`` on every row of ``manifest``.

    Args:
        labels: the units of (at least) every utterance of ``manifest``.
        manifest: the utterances scored, with their ground truth.
        truth: ``"phone"`` or a label column (see :func:`~speechssl.units.truth.frame_truth`).
    """
    check_truth(manifest, truth)
    counter = JointCounter(labels.num_units)
    for row in manifest:
        if row.id not in labels:
            raise ValueError(f"{labels.entry}: no units for utterance {row.id!r} of the manifest")
        units = np.asarray(labels[row.id], dtype=np.int64)
        counter.update(frame_truth(row, truth, len(units), labels.downsample_rate, labels.sample_rate), units)
    return counter.quality()


__all__ = [
    "corpus_manifest",
    "encoder_downsample_rate",
    "load_tokenizer",
    "score_units",
    "unit_features",
    "upstream_from_spec",
]
