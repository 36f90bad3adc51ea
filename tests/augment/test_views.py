"""Views: config validation, pipeline assembly, the encoder hook, composition."""

from __future__ import annotations

import pytest
import torch

from speechssl.augment import (
    AddNoise,
    BandPass,
    Compose,
    Equalizer,
    FrequencyMask,
    Gain,
    MixUtterances,
    PitchShift,
    RandomCrop,
    Reverberation,
    SpeedPerturb,
    TempoPerturb,
    TimeMask,
    View,
    ViewConfig,
    build_view,
)
from speechssl.config import ConfigError, from_dict
from speechssl.data.batch import lengths_to_padding_mask


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([48000, 20000, 8000])
    waveforms = torch.randn(3, 48000, generator=torch.Generator().manual_seed(0))
    return waveforms.masked_fill(lengths_to_padding_mask(lengths), 0.0), lengths


def test_default_view_matches_speech_defaults() -> None:
    view = build_view(ViewConfig())
    crop, gain, noise = view.waveform
    assert crop == RandomCrop(2.0, 16000)
    assert gain == Gain((-6.0, 6.0), p=0.5)
    assert noise == AddNoise((5.0, 20.0), "white", p=0.5)
    time_mask, freq_mask = view.features
    assert time_mask == TimeMask(100, 2, max_fraction=0.1)
    assert freq_mask == FrequencyMask(8, 2)


def test_config_from_mapping_and_errors_name_the_key(tmp_path) -> None:
    config = from_dict(
        ViewConfig,
        {"crop_seconds": None, "noise": {"snr_db": [0, 10], "color": "pink"}, "reverb": {"p": 0.5}},
    )
    assert config.noise == AddNoise((0.0, 10.0), "pink", p=0.5), "p keeps the view's default"
    assert config.reverb == Reverberation(p=0.5)
    assert [type(t) for t in build_view(config).waveform] == [Reverberation, Gain, AddNoise]  # no crop
    with pytest.raises(ConfigError, match=r"noise: p: expected a probability in \[0, 1\], found 2.0"):
        from_dict(ViewConfig, {"noise": {"p": 2.0}})
    with pytest.raises(ConfigError, match=r"noise.color: expected one of"):
        from_dict(ViewConfig, {"noise": {"color": "blue"}})
    with pytest.raises(ConfigError, match="unknown key noise_p"):
        from_dict(ViewConfig, {"noise_p": 0.5})
    with pytest.raises(ValueError, match="crop_seconds: expected > 0 or None, found -1"):
        ViewConfig(crop_seconds=-1)
    with pytest.raises(ConfigError, match=r"gain: db: expected \(low, high\) with low <= high"):
        from_dict(ViewConfig, {"gain": {"db": [6.0, -6.0]}})
    with pytest.raises(FileNotFoundError, match="noise folder: no audio files"):
        build_view(from_dict(ViewConfig, {"background_noise": {"folder": str(tmp_path)}}))


def test_every_transform_can_join_the_pipeline_in_order() -> None:
    config = from_dict(
        ViewConfig,
        {name: {"p": 1.0} for name in ("speed", "tempo", "pitch", "reverb", "band_pass", "equalizer", "mix")},
    )
    assert config.changes_durations and not ViewConfig().changes_durations
    view = build_view(config)
    assert [type(t) for t in view.waveform] == [
        RandomCrop, SpeedPerturb, TempoPerturb, PitchShift, Reverberation, BandPass, Equalizer, Gain,
        MixUtterances, AddNoise,
    ]  # fmt: skip
    waveforms, lengths = batch()
    out, out_lengths = view(waveforms, lengths, torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and bool(
        (out[lengths_to_padding_mask(out_lengths, out.shape[1])] == 0).all()
    )
    assert next(type(t) for t in build_view(config, crop=False).waveform) is SpeedPerturb


def test_view_is_seeded_and_crops() -> None:
    waveforms, lengths = batch()
    view = build_view(ViewConfig(crop_seconds=1.0, noise=AddNoise(p=1.0), gain=Gain(p=1.0)))
    first = view(waveforms, lengths, torch.Generator().manual_seed(0))
    second = view(waveforms, lengths, torch.Generator().manual_seed(0))
    other = view(waveforms, lengths, torch.Generator().manual_seed(1))
    assert torch.equal(first[0], second[0])
    assert not torch.equal(first[0], other[0])
    assert first[0].shape == (3, 16000)
    assert first[1].tolist() == [16000, 16000, 8000]
    assert bool((first[0][lengths_to_padding_mask(first[1], 16000)] == 0).all())


def test_feature_hook_masks_and_keeps_shape() -> None:
    view = build_view(ViewConfig())
    feats = torch.randn(2, 200, 40)
    lengths = torch.tensor([200, 120])
    hook = view.feature_transform(torch.Generator().manual_seed(0))
    out = hook(feats, lengths)
    assert out.shape == feats.shape
    assert torch.equal(out[1, 120:], feats[1, 120:])
    assert (out != feats).any()
    again = view.feature_transform(torch.Generator().manual_seed(0))(feats, lengths)
    assert torch.equal(out, again)


def test_all_off_view_is_identity() -> None:
    config = ViewConfig(
        crop_seconds=None,
        noise=AddNoise(p=0.0),
        gain=Gain(p=0.0),
        time_mask=TimeMask(100, p=0.0),
        freq_mask=FrequencyMask(8, p=0.0),
    )
    view = build_view(config)
    waveforms, lengths = batch()
    out, out_lengths = view(waveforms, lengths)
    assert torch.equal(out, waveforms) and torch.equal(out_lengths, lengths)
    feats = torch.randn(3, 50, 10)
    assert torch.equal(view.feature_transform()(feats, torch.tensor([50, 30, 10])), feats)


def test_compose_threads_lengths_and_generator() -> None:
    waveforms, lengths = batch()
    pipeline = Compose([RandomCrop(0.75), Gain((6.0, 6.0))])
    out, out_lengths = pipeline(waveforms, lengths, torch.Generator().manual_seed(3))
    crop, crop_lengths = RandomCrop(0.75)(waveforms, lengths, torch.Generator().manual_seed(3))
    torch.testing.assert_close(out, crop * 10 ** (6 / 20))
    assert torch.equal(out_lengths, crop_lengths)
    assert torch.equal(Compose([])(waveforms, lengths)[0], waveforms)
    assert "RandomCrop(seconds=0.75" in repr(pipeline)
    assert isinstance(View(pipeline, Compose([])), View)
