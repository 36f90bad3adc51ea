"""Unit tokenizers: MFCC deltas, frame pooling, assignments, save/load and the units front-end."""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import torch

from speechssl.config import ConfigError, from_dict, to_dict
from speechssl.models import SpeechEncoder, load_encoder_preset
from speechssl.models.encoder import EncoderConfig, UnitFeatureConfig, UnitTokenizerConfig
from speechssl.models.gumbel_quantizer import GumbelVectorQuantizer
from speechssl.models.units import (
    UnitFeatures,
    UnitFrontend,
    UnitTokenizer,
    load_unit_tokenizer,
    mfcc_deltas,
    pool_frames,
    save_unit_tokenizer,
)


def _tiny_config(**changes: object) -> EncoderConfig:
    small = dict(dim=32, heads=2, ffn_dim=64, layers=2, n_mels=16, subsampling_channels=8)
    small.update(pos_conv_kernel=8, pos_conv_groups=4, conv_channels=16, dropout=0.0)
    return dataclasses.replace(load_encoder_preset("tiny"), **{**small, **changes})


def _audio(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    waveforms = 0.1 * torch.randn(len(lengths), max(lengths), generator=generator)
    lengths_tensor = torch.tensor(lengths)
    waveforms[torch.arange(max(lengths))[None, :] >= lengths_tensor[:, None]] = 0.0
    return waveforms, lengths_tensor


def _mfcc_tokenizer(num_units: int = 16, pool: int = 4, seed: int = 0) -> UnitTokenizer:
    config = UnitTokenizerConfig(UnitFeatureConfig("mfcc", pool=pool), num_units=num_units, feature_dim=39)
    centroids = torch.randn(num_units, 39, generator=torch.Generator().manual_seed(seed))
    return UnitTokenizer(config, UnitFeatures(config.features), centroids=centroids)


def test_mfcc_deltas_match_librosa_nearest_mode() -> None:
    frames = torch.randn(1, 30, 5, generator=torch.Generator().manual_seed(1))
    ours = mfcc_deltas(frames, torch.tensor([30]))[0]  # (frames, dim)
    reference = librosa.feature.delta(frames[0].T.numpy(), width=5, order=1, mode="nearest").T
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)


def test_mfcc_deltas_ignore_padding() -> None:
    frames = torch.randn(1, 12, 3, generator=torch.Generator().manual_seed(2))
    padded = torch.cat([frames, torch.full((1, 5, 3), 7.0)], dim=1)  # garbage after the end
    torch.testing.assert_close(
        mfcc_deltas(padded, torch.tensor([12]))[:, :12], mfcc_deltas(frames, torch.tensor([12]))
    )
    assert mfcc_deltas(padded, torch.tensor([12]))[:, 12:].abs().sum() == 0


def test_pool_frames_averages_only_valid_frames_of_the_last_group() -> None:
    x = torch.arange(1.0, 8.0).view(1, 7, 1)  # (batch, frames, dim): 1..7
    x = torch.cat([x, torch.full((1, 2, 1), 100.0)], dim=1)  # 2 padded frames
    pooled, lengths = pool_frames(x, torch.tensor([7]), pool=3)
    assert lengths.tolist() == [3]
    assert pooled[0, :, 0].tolist() == pytest.approx([2.0, 5.0, 7.0])  # (1+2+3)/3, (4+5+6)/3, 7/1


def test_mfcc_units_run_at_the_fbank_encoders_frame_rate() -> None:
    tokenizer = _mfcc_tokenizer(pool=4)
    encoder = SpeechEncoder.from_config(_tiny_config())
    waveforms, lengths = _audio([16000, 12345, 7000])
    sequence = tokenizer(waveforms, lengths)
    assert tokenizer.downsample_rate == encoder.downsample_rate == 640
    assert sequence.lengths.tolist() == encoder.output_lengths(lengths).tolist()
    assert sequence.lengths.tolist() == tokenizer.output_lengths(lengths).tolist()
    padding = torch.arange(sequence.units.shape[1])[None, :] >= sequence.lengths[:, None]
    assert (sequence.units[padding] == -1).all() and (sequence.units[~padding] >= 0).all()


def test_nearest_assignment_is_the_argmin_distance_and_padding_invariant() -> None:
    tokenizer = _mfcc_tokenizer(num_units=12)
    waveforms, lengths = _audio([9000, 16000])
    frames, frame_lengths = tokenizer.features(waveforms, lengths)
    expected = torch.cdist(frames[0, : frame_lengths[0]], tokenizer.centroids).argmin(dim=1)
    units = tokenizer(waveforms, lengths).units
    assert torch.equal(units[0, : frame_lengths[0]], expected)
    alone = tokenizer(waveforms[:1, :9000], lengths[:1]).units
    assert torch.equal(alone[0], units[0, : alone.shape[1]])


def test_gumbel_assignment_combines_the_quantizers_eval_choices() -> None:
    encoder = SpeechEncoder.from_config(_tiny_config(frontend="waveform"))
    quantizer = GumbelVectorQuantizer(16, groups=2, entries=5, code_dim=8).eval()
    features_config = UnitFeatureConfig("cnn", encoder=encoder.config)
    config = UnitTokenizerConfig(features_config, num_units=25, assignment="gumbel", groups=2, feature_dim=16)
    tokenizer = UnitTokenizer(config, UnitFeatures(features_config, encoder), logits=quantizer.logits)
    waveforms, lengths = _audio([8000, 6400])
    frames, frame_lengths = tokenizer.features(waveforms, lengths)
    indices = quantizer(frames, frame_lengths).indices  # (batch, frames, groups)
    units = tokenizer(waveforms, lengths).units
    valid = units >= 0
    assert torch.equal(units[valid], (indices[..., 0] + 5 * indices[..., 1])[valid])
    assert tokenizer.downsample_rate == 320


def test_save_and_load_round_trip_an_encoder_layer_tokenizer(tmp_path) -> None:
    encoder = SpeechEncoder.from_config(_tiny_config())
    features_config = UnitFeatureConfig("encoder", layer=1, encoder=encoder.config)
    config = UnitTokenizerConfig(features_config, num_units=6, feature_dim=32)
    centroids = torch.randn(6, 32, generator=torch.Generator().manual_seed(3))
    tokenizer = UnitTokenizer(config, UnitFeatures(features_config, encoder), centroids=centroids)
    loaded = load_unit_tokenizer(save_unit_tokenizer(tokenizer, tmp_path / "units"))
    waveforms, lengths = _audio([10000, 16000])
    assert torch.equal(loaded(waveforms, lengths).units, tokenizer(waveforms, lengths).units)
    assert loaded.config == tokenizer.config
    assert not any(p.requires_grad for p in loaded.parameters())


def test_load_names_the_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.yaml"):
        load_unit_tokenizer(tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(assignment="gumbel", groups=2, num_units=30), "entries\\^groups"),
        (dict(groups=2), "groups: expected 1"),
        (dict(num_units=0), "num_units: expected a positive integer"),
    ],
)
def test_tokenizer_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UnitTokenizerConfig(**changes)


def test_feature_config_and_centroid_errors() -> None:
    with pytest.raises(ValueError, match="encoder: expected an encoder config"):
        UnitFeatureConfig("encoder")
    config = UnitTokenizerConfig(num_units=4, feature_dim=39)
    with pytest.raises(ValueError, match=r"centroids: expected shape \(4, 39\), found \(4, 13\)"):
        UnitTokenizer(config, UnitFeatures(config.features), centroids=torch.zeros(4, 13))
    with pytest.raises(ValueError, match="feature_dim: expected the features' dim=39"):
        UnitTokenizer(UnitTokenizerConfig(num_units=4, feature_dim=13), UnitFeatures(config.features))


def test_units_frontend_embeds_tokens_and_keeps_the_tokenizer_frozen() -> None:
    tokenizer_config = _mfcc_tokenizer(num_units=10).config
    config = _tiny_config(frontend="units", units=tokenizer_config)
    encoder = SpeechEncoder.from_config(config)
    frontend = encoder.frontend
    assert isinstance(frontend, UnitFrontend) and frontend.mask_index == 10
    assert encoder.downsample_rate == 640
    assert not any(p.requires_grad for p in frontend.tokenizer.parameters())
    waveforms, lengths = _audio([16000, 9000])
    output = encoder(waveforms, lengths)
    assert output.lengths.tolist() == encoder.output_lengths(lengths).tolist()
    assert len(output.hidden_states) == 3
    masked, _ = frontend(waveforms, lengths, lambda units, _: torch.full_like(units, frontend.mask_index))
    torch.testing.assert_close(masked[0, 0], frontend.embedding.weight[10])


def test_units_frontend_needs_its_tokenizer_config() -> None:
    with pytest.raises(
        ValueError, match="units: expected a unit tokenizer config exactly when frontend='units'"
    ):
        _tiny_config(frontend="units")
    with pytest.raises(ConfigError, match=r"encoder\.units"):
        from_dict(EncoderConfig, {"frontend": "units", "units": {"num_units": "many"}}, where="encoder")
    with pytest.raises(ValueError, match="units: expected a UnitTokenizerConfig, found dict"):
        _tiny_config(frontend="units", units={"num_units": 4})
    saved = to_dict(_tiny_config(frontend="units", units=_mfcc_tokenizer(num_units=10).config))
    assert isinstance(saved["units"], dict)  # a mapping only when written to encoder.yaml
    assert from_dict(EncoderConfig, saved, where="encoder").units == _mfcc_tokenizer(num_units=10).config
