"""The upstream contract: baselines, random init and checkpoints behind one interface."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import EncoderConfig, SpeechEncoder
from speechssl.upstream import EncoderUpstream, FeatureUpstream, build_upstream


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    waveforms = torch.randn(3, 16000)
    lengths = torch.tensor([16000, 12000, 4000])
    waveforms[1, 12000:] = 0
    waveforms[2, 4000:] = 0
    return waveforms, lengths


@pytest.mark.parametrize(("spec", "dim"), [("fbank", 80), ("mfcc", 13)])
def test_feature_upstreams_are_one_layer_at_10ms(spec, dim):
    upstream = build_upstream(spec)
    assert isinstance(upstream, FeatureUpstream)
    assert (upstream.num_layers, upstream.hidden_sizes, upstream.downsample_rate) == (1, [dim], 160)
    output = upstream(*_batch())
    assert output.hidden_states[0].shape[-1] == dim
    assert output.lengths.tolist() == [101, 76, 26]
    assert upstream.output_lengths(torch.tensor([16000, 12000, 4000])).tolist() == [101, 76, 26]


def test_random_upstream_is_frozen_reproducible_and_reports_its_layers():
    upstream = build_upstream("random:tiny", seed=3)
    again = build_upstream("random:tiny", seed=3)
    other = build_upstream("random:tiny", seed=4)
    encoder = upstream.encoder
    assert upstream.num_layers == encoder.num_layers == len(upstream.hidden_sizes)
    assert upstream.downsample_rate == encoder.downsample_rate
    assert not any(p.requires_grad for p in upstream.parameters())
    upstream.train()
    assert not upstream.training and not encoder.training

    waveforms, lengths = _batch()
    first = upstream(waveforms, lengths)
    assert len(first.hidden_states) == upstream.num_layers
    assert upstream.output_lengths(lengths).tolist() == first.lengths.tolist()
    assert torch.equal(first.last_hidden_state, again(waveforms, lengths).last_hidden_state)
    assert not torch.equal(first.last_hidden_state, other(waveforms, lengths).last_hidden_state)


def test_checkpoint_upstream_loads_the_trained_encoder(tiny_run):
    from_checkpoint = build_upstream(str(tiny_run.checkpoint))
    from_run_dir = build_upstream(str(tiny_run.run_dir))
    assert isinstance(from_checkpoint, EncoderUpstream)
    assert from_run_dir.name == str(tiny_run.checkpoint)
    waveforms, lengths = _batch()
    assert torch.equal(
        from_checkpoint(waveforms, lengths).last_hidden_state,
        from_run_dir(waveforms, lengths).last_hidden_state,
    )
    untrained = build_upstream(f"random:{tiny_run.checkpoint / 'encoder.yaml'}")
    assert untrained.hidden_sizes == from_checkpoint.hidden_sizes


def test_bad_specs_name_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="expected 'fbank', 'mfcc', 'random:<preset>'"):
        build_upstream("wav2vec9")
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        build_upstream(str(tmp_path))


def test_fingerprints_follow_weights_and_config_not_origin(tiny_run):
    assert build_upstream("fbank").fingerprint() == build_upstream("fbank").fingerprint()
    assert build_upstream("fbank").fingerprint() != build_upstream("mfcc").fingerprint()
    same = build_upstream("random:tiny", seed=0)
    assert same.fingerprint() == build_upstream("random:tiny", seed=0).fingerprint()
    assert same.fingerprint() != build_upstream("random:tiny", seed=1).fingerprint()
    assert (
        build_upstream(str(tiny_run.checkpoint)).fingerprint()
        == build_upstream(str(tiny_run.run_dir)).fingerprint()
    )
    changed = build_upstream(str(tiny_run.checkpoint))
    with torch.no_grad():
        next(changed.encoder.parameters()).add_(1e-3)
    changed._fingerprint = None
    assert changed.fingerprint() != build_upstream(str(tiny_run.checkpoint)).fingerprint()


def test_encoder_upstream_rejects_audio_shorter_than_the_receptive_field():
    config = EncoderConfig(frontend="waveform", dim=16, layers=1, heads=2, ffn_dim=32, conv_channels=8)
    assert config.min_samples == 400
    upstream = EncoderUpstream(SpeechEncoder.from_config(config), "short")
    assert len(upstream(torch.zeros(2, 800), torch.tensor([800, 400])).hidden_states) == 2
    with pytest.raises(ValueError, match=r"at least 400 samples.*found 399"):
        upstream(torch.zeros(2, 800), torch.tensor([800, 399]))
