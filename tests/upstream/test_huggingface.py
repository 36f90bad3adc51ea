"""Transformers speech models as upstreams: tiny random models saved to disk, loaded offline."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from speechssl.upstream import HuggingFaceUpstream, build_upstream

transformers = pytest.importorskip("transformers")

TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16, 16),
    "conv_kernel": (10, 3),
    "conv_stride": (5, 2),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
}
LAYER_NORM_FRONT_END = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _save(
    directory: Path, config_class: str, seed: int = 0, head: str = "Model", **overrides: object
) -> Path:
    """A random ``<Family><head>`` built from ``config_class`` with the tiny sizes, saved in ``directory``."""
    config = getattr(transformers, config_class)(**{**TINY, **overrides})
    model_class = getattr(transformers, config_class.removesuffix("Config") + head)
    torch.manual_seed(seed)
    model_class(config).save_pretrained(directory)
    return directory


def _conv_frames(samples: int) -> int:
    for kernel, stride in zip(TINY["conv_kernel"], TINY["conv_stride"], strict=True):
        samples = (samples - kernel) // stride + 1
    return samples


def _padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    waveforms = 0.3 * torch.randn(2, 1600, generator=generator) + 0.1
    lengths = torch.tensor([1600, 700])
    waveforms[1, 700:] = 0
    return waveforms, lengths


@pytest.mark.parametrize(
    ("config_class", "overrides", "mask", "padding_invariant"),
    [
        ("Wav2Vec2Config", {}, False, False),
        ("Wav2Vec2Config", LAYER_NORM_FRONT_END, True, True),
        ("HubertConfig", LAYER_NORM_FRONT_END, True, True),
        ("WavLMConfig", LAYER_NORM_FRONT_END, True, True),
        # Padding leaks through its stacked positional convolutions (as in transformers and fairseq).
        ("Data2VecAudioConfig", {"num_conv_pos_embeddings": 2, "conv_pos_kernel_size": 5}, True, False),
    ],
)
def test_every_layer_with_lengths_from_the_convolutions(
    tmp_path, config_class, overrides, mask, padding_invariant
):
    upstream = build_upstream(f"hf:{_save(tmp_path, config_class, **overrides)}")
    assert isinstance(upstream, HuggingFaceUpstream)
    assert upstream.name == f"hf:{tmp_path}"
    assert upstream.num_layers == TINY["num_hidden_layers"] + 1
    assert upstream.hidden_sizes == [TINY["hidden_size"]] * upstream.num_layers
    assert upstream.downsample_rate == 10
    assert upstream.min_samples == 1 + 9 + 2 * 5  # the CNN's receptive field: evaluation skips shorter files
    # Without a preprocessor config, only layer-normalised front-ends get a mask and normalisation.
    assert (upstream.use_attention_mask, upstream.normalize) == (mask, mask)

    waveforms, lengths = _padded_batch()
    output = upstream(waveforms, lengths)
    assert output.lengths.tolist() == [_conv_frames(1600), _conv_frames(700)] == [159, 69]
    assert output.lengths.tolist() == upstream.model._get_feat_extract_output_lengths(lengths).tolist()
    assert upstream.output_lengths(lengths).tolist() == [159, 69]
    assert output.downsample_rate == 10
    assert len(output.hidden_states) == upstream.num_layers
    assert all(hidden.shape == (2, 159, TINY["hidden_size"]) for hidden in output.hidden_states)
    assert all(torch.isfinite(hidden).all() for hidden in output.hidden_states)

    if padding_invariant:
        alone = upstream(waveforms[1:, :700], lengths[1:])
        assert alone.lengths.tolist() == [69]
        for padded, single in zip(output.hidden_states, alone.hidden_states, strict=True):
            torch.testing.assert_close(padded[1, :69], single[0], atol=1e-4, rtol=1e-4)


def test_last_layer_is_after_the_final_layer_norm_of_pre_ln_models(tmp_path):
    upstream = build_upstream(f"hf:{_save(tmp_path, 'Wav2Vec2Config', **LAYER_NORM_FRONT_END)}")
    waveforms, lengths = _padded_batch()
    last = upstream(waveforms, lengths).last_hidden_state
    first = waveforms[:1]
    reference = upstream.model((first - first.mean()) / torch.sqrt(first.var(unbiased=False) + 1e-7))
    torch.testing.assert_close(last[0], reference.last_hidden_state[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last.mean(-1), torch.zeros(2, 159), atol=1e-4, rtol=0)


def test_preprocessor_config_decides_normalisation_and_mask_as_transformers_does(tmp_path):
    directory = _save(tmp_path, "HubertConfig", head="ForCTC", **LAYER_NORM_FRONT_END)
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)
    extractor.save_pretrained(directory)
    upstream = build_upstream(f"hf:{directory}")
    assert (upstream.normalize, upstream.use_attention_mask) == (True, True)

    waveforms, lengths = _padded_batch()
    waveforms[1, 700:] = 5.0  # whatever pads the batch must not leak into the statistics
    output = upstream(waveforms, lengths)
    inputs = extractor(
        [waveforms[0].numpy(), waveforms[1, :700].numpy()],
        sampling_rate=16000,
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        reference = upstream.model(**inputs, output_hidden_states=True)
    expected = [*reference.hidden_states[:-1], reference.last_hidden_state]
    for ours, theirs in zip(output.hidden_states, expected, strict=True):
        torch.testing.assert_close(ours[0], theirs[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours[1, :69], theirs[1, :69], atol=1e-4, rtol=1e-4)

    json_path = directory / "preprocessor_config.json"
    json_path.write_text(json.dumps({"do_normalize": False, "return_attention_mask": False}))
    plain = build_upstream(f"hf:{directory}")
    assert (plain.normalize, plain.use_attention_mask) == (False, False)
    assert plain.fingerprint() != upstream.fingerprint()
    assert not torch.allclose(plain(waveforms, lengths).last_hidden_state[0], output.last_hidden_state[0])


def test_frozen_and_fingerprinted_by_content(tmp_path):
    directory = _save(tmp_path / "a", "WavLMConfig", seed=0)
    upstream = build_upstream(f"hf:{directory}")
    assert not any(parameter.requires_grad for parameter in upstream.parameters())
    upstream.train()
    assert not upstream.training and not upstream.model.training

    copy = shutil.copytree(directory, tmp_path / "elsewhere")
    assert build_upstream(f"hf:{directory}").fingerprint() == upstream.fingerprint()
    assert build_upstream(f"hf:{copy}").fingerprint() == upstream.fingerprint()
    other = build_upstream(f"hf:{_save(tmp_path / 'b', 'WavLMConfig', seed=1)}")
    assert other.fingerprint() != upstream.fingerprint()


def test_directories_that_are_not_a_supported_model_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="found no directory"):
        build_upstream(f"hf:{tmp_path / 'absent'}")
    with pytest.raises(FileNotFoundError, match=r"with config\.json"):
        build_upstream(f"hf:{tmp_path}")

    bert = tmp_path / "bert"
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(bert)
    with pytest.raises(ValueError, match="model_type 'bert' is not supported"):
        build_upstream(f"hf:{bert}")

    adapter = _save(tmp_path / "adapter", "Wav2Vec2Config", add_adapter=True, output_hidden_size=32)
    with pytest.raises(ValueError, match="add_adapter=True is not supported"):
        build_upstream(f"hf:{adapter}")

    resampled = _save(tmp_path / "8k", "Wav2Vec2Config")
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(resampled)
    with pytest.raises(ValueError, match="sampling_rate 8000 is not supported"):
        build_upstream(f"hf:{resampled}")


def test_incomplete_weights_are_refused_rather_than_randomly_initialised(tmp_path):
    from safetensors.torch import load_file, save_file

    directory = _save(tmp_path, "Wav2Vec2Config", head="ForPreTraining")
    weights = load_file(directory / "model.safetensors")
    projection = [key for key in weights if key.endswith("feature_projection.projection.weight")]
    assert len(projection) == 1
    del weights[projection[0]]
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lack 1 tensor\(s\) of Wav2Vec2Model \(feature_projection"):
        build_upstream(f"hf:{directory}")


def test_missing_transformers_names_the_extra(tmp_path, monkeypatch):
    directory = _save(tmp_path, "HubertConfig")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install speechssl\[hf\]"):
        HuggingFaceUpstream.from_pretrained(directory)
