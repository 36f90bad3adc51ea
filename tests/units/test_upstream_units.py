"""Units of any harness upstream (``fbank``, ``hf:<dir>``): fitted, saved without its weights, checked on load."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
import yaml
from safetensors.torch import load_file

from speechssl.models.kmeans import KMeansConfig, fit_units
from speechssl.models.units import (
    TOKENIZER_CONFIG,
    TOKENIZER_WEIGHTS,
    load_unit_tokenizer,
    save_unit_tokenizer,
)
from speechssl.units.pipeline import load_tokenizer, unit_features
from speechssl.units.quality import joint_counts, unit_quality

transformers = pytest.importorskip("transformers")


def _tones(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(max(lengths)) / 16000
    waveforms = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) for f in (300.0, 4000.0)])
    waveforms[1, lengths[1] :] = 0
    return waveforms, torch.tensor(lengths)


def test_fbank_units_separate_tones_and_are_saved_without_the_upstream(tmp_path, tone_corpus) -> None:
    features = unit_features("fbank", layer=0, pool=4)
    assert features.config.upstream == "fbank" and features.downsample_rate == 640
    tokenizer, report = fit_units(features, tone_corpus, KMeansConfig(k=3, max_frames=300, backend="sklearn"))
    assert report["frames"] <= 300

    truth, units, tone_ids = [], [], {}
    for row in tone_corpus:
        waveform = torch.from_numpy(soundfile.read(row.path, dtype="float32")[0])
        sequence = tokenizer(waveform[None], torch.tensor([len(waveform)]))
        units.append(sequence.units[0, : int(sequence.lengths[0])].numpy())
        truth.append(np.full(len(units[-1]), tone_ids.setdefault(row.labels["tone"], len(tone_ids))))
    quality = unit_quality(joint_counts(np.concatenate(truth), np.concatenate(units), 3, 3))
    assert quality.pnmi > 0.9

    directory = save_unit_tokenizer(tokenizer, tmp_path / "units")
    assert set(load_file(directory / TOKENIZER_WEIGHTS)) == {"centroids"}  # no filterbank tensors
    loaded = load_tokenizer(units=directory)
    waveforms, lengths = _tones([16000, 9000])
    assert torch.equal(loaded(waveforms, lengths).units, tokenizer(waveforms, lengths).units)


def test_a_changed_upstream_or_a_missing_one_is_an_error(tmp_path, tone_corpus) -> None:
    tokenizer, _ = fit_units(unit_features("fbank"), tone_corpus, KMeansConfig(k=2, max_frames=100))
    directory = save_unit_tokenizer(tokenizer, tmp_path / "units")
    with pytest.raises(ValueError, match="reads upstream 'fbank'; build it and pass it"):
        load_unit_tokenizer(directory)
    config = yaml.safe_load((directory / TOKENIZER_CONFIG).read_text())
    config["features"]["upstream_fingerprint"] = "0" * 64
    (directory / TOKENIZER_CONFIG).write_text(yaml.safe_dump(config))
    with pytest.raises(
        ValueError, match=r"expected upstream 'fbank' with fingerprint 0+, found [0-9a-f]{64}"
    ):
        load_tokenizer(units=directory)


def test_units_of_a_hugging_face_layer(tmp_path, tone_corpus) -> None:
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(config).save_pretrained(tmp_path / "hf")
    spec = f"hf:{tmp_path / 'hf'}"
    features = unit_features(spec, layer=1)
    assert (features.dim, features.downsample_rate) == (32, 10)
    tokenizer, _ = fit_units(features, tone_corpus, KMeansConfig(k=4, max_frames=400, backend="sklearn"))
    waveforms, lengths = _tones([4000, 2500])
    hidden = features.encoder(waveforms, lengths)
    expected = torch.cdist(hidden.hidden_states[1][0], tokenizer.centroids).argmin(dim=1)
    assert torch.equal(tokenizer(waveforms, lengths).units[0], expected)

    directory = save_unit_tokenizer(tokenizer, tmp_path / "units")
    assert set(load_file(directory / TOKENIZER_WEIGHTS)) == {"centroids"}
    assert torch.equal(
        load_tokenizer(units=directory)(waveforms, lengths).units, tokenizer(waveforms, lengths).units
    )


def test_bad_feature_specs_say_what_was_expected() -> None:
    with pytest.raises(
        ValueError,
        match=r"expected 'mfcc', a run/checkpoint directory or an upstream spec \(hf:<dir>, fbank, random:<preset>\), found 'no_such_model'",
    ):
        unit_features("no_such_model")
    with pytest.raises(
        ValueError, match="layer: expected an index into the 1 hidden states of upstream 'fbank'"
    ):
        unit_features("fbank", layer=3)
