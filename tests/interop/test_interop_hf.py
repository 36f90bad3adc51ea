"""transformers ↔ speechssl: equal hidden states after import, round trips, bit-identical weights."""

from __future__ import annotations

import pytest
import torch
from hf_models import ARCHITECTURES, hf_hidden_states, make_hf_model, normalized, padded_batch, transformers

from speechssl.interop import export_checkpoint, import_model, read_model
from speechssl.interop.huggingface import encoder_config_from_hf, hf_to_speechssl, tensor_rules
from speechssl.models.checkpoint import load_encoder
from speechssl.models.encoder import EncoderConfig, SpeechEncoder
from speechssl.upstream import build_upstream

TOLERANCE = 1e-5


def _close(ours: torch.Tensor, theirs: torch.Tensor, frames: int) -> None:
    torch.testing.assert_close(ours[:frames], theirs[:frames], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_import_gives_the_hidden_states_of_each_utterance(name, hf_model_dir):
    """The imported encoder on a padded batch equals the original on each utterance alone.

    The originals depend on padding where speechssl does not: group-norm BASE models are fed
    zero-padded audio without attention mask (their first CNN layer normalises over the padding
    too), and data2vec-audio's stacked positional convolutions read padded frames after the
    first; so the reference is each utterance run alone, as it would be used without padding
    (normalised by its feature extractor for the layer-norm models, which the encoder does itself).
    """
    model, directory = hf_model_dir(name)
    encoder = read_model(f"hf:{directory}").encoder.eval()
    assert encoder.config.waveform_norm == (encoder.config.conv_norm == "layer")
    waveforms, lengths = padded_batch()
    with torch.no_grad():
        output = encoder(waveforms, lengths)
    assert len(output.hidden_states) == encoder.num_layers == 3
    for row, length in enumerate(lengths.tolist()):
        utterance = waveforms[row : row + 1, :length]
        reference = hf_hidden_states(
            model, normalized(utterance) if encoder.config.waveform_norm else utterance
        )
        frames = int(output.lengths[row])
        assert reference[0].shape[1] == frames
        for ours, theirs in zip(output.hidden_states, reference, strict=True):
            _close(ours[row], theirs[0], frames)


@pytest.mark.parametrize("name", ["wav2vec2-large", "hubert-large", "wavlm-large"])
def test_layer_norm_models_with_an_attention_mask_equal_the_padded_batch(name, hf_model_dir):
    """Layer-norm CNNs with an attention mask are padding-exact in transformers as well."""
    model, directory = hf_model_dir(name)
    encoder = read_model(f"hf:{directory}").encoder.eval()
    waveforms, lengths = padded_batch()
    mask = (torch.arange(waveforms.shape[1])[None, :] < lengths[:, None]).long()
    inputs = torch.zeros_like(waveforms)
    for row, length in enumerate(lengths.tolist()):
        inputs[row, :length] = normalized(waveforms[row : row + 1, :length])[0]
    reference = hf_hidden_states(model, inputs, mask)
    with torch.no_grad():
        output = encoder(waveforms, lengths)
    for row, frames in enumerate(output.lengths.tolist()):
        for ours, theirs in zip(output.hidden_states, reference, strict=True):
            _close(ours[row], theirs[row], frames)


def test_group_norm_models_equal_an_unpadded_batch():
    """Without padding (lengths None) both run the same group norm over whole utterances."""
    model = make_hf_model("wav2vec2-base")
    state = {k: v for k, v in model.wav2vec2.state_dict().items()}
    config = encoder_config_from_hf(model.config.to_dict())
    encoder = SpeechEncoder.from_config(config).eval()
    encoder.load_state_dict(hf_to_speechssl(state, config)[0])
    waveforms = torch.randn(2, 1200)
    with torch.no_grad():
        ours = encoder(waveforms, None).hidden_states
    for a, b in zip(ours, hf_hidden_states(model, waveforms), strict=True):
        torch.testing.assert_close(a, b, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_round_trip_hf_speechssl_hf(name, hf_model_dir, tmp_path):
    """hf → speechssl run → hf: equal hidden states, the exported class of the layout, and
    export → import gives bit-identical weights."""
    model, directory = hf_model_dir(name)
    run = tmp_path / "run"
    import_model(f"hf:{directory}", run)
    exported = export_checkpoint(run, "hf", tmp_path / "exported")
    extractor = transformers.AutoFeatureExtractor.from_pretrained(exported, local_files_only=True)
    layer_norm = load_encoder(run / "step_00000000").config.conv_norm == "layer"
    assert extractor.do_normalize == extractor.return_attention_mask == layer_norm
    again = transformers.AutoModel.from_pretrained(exported, local_files_only=True).eval()
    expected_class = ARCHITECTURES[name][0].replace("ForPreTraining", "Model")
    assert type(again).__name__ == expected_class
    waveforms = torch.randn(2, 1500)
    for a, b in zip(hf_hidden_states(again, waveforms), hf_hidden_states(model, waveforms), strict=True):
        torch.testing.assert_close(a, b, atol=TOLERANCE, rtol=0)

    first = load_encoder(run / "step_00000000").state_dict()
    second = read_model(f"hf:{exported}").encoder.state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_wav2vec2_pretraining_heads_are_imported(hf_model_dir):
    model, directory = hf_model_dir("wav2vec2-base")
    imported = read_model(f"hf:{directory}")
    assert imported.method == "wav2vec2"
    objective = imported.objective
    assert (
        objective.codebook_groups,
        objective.codebook_entries,
        objective.codebook_dim,
        objective.final_dim,
    ) == (
        2,
        5,
        8,
        6,
    )
    assert objective.mask_prob * objective.mask_length == pytest.approx(model.config.mask_time_prob)
    codebook = imported.heads["quantizer.codebook"]
    assert codebook.shape == (2, 5, 4)
    assert torch.equal(codebook.reshape(1, 10, 4), model.quantizer.codevectors.detach())
    assert torch.equal(imported.heads["final_projection.weight"], model.project_hid.weight.detach())
    assert torch.equal(imported.heads["target_projection.bias"], model.project_q.bias.detach())


@pytest.mark.parametrize("name", ["wav2vec2-large", "hubert-large", "wavlm-large"])
def test_an_imported_run_is_the_upstream_the_original_is(name, hf_model_dir, tmp_path):
    """``build_upstream(RUN)`` equals ``build_upstream("hf:<dir>")`` (normalisation and attention
    mask included) on a padded batch."""
    _, directory = hf_model_dir(name)
    import_model(f"hf:{directory}", tmp_path / "run")
    waveforms, lengths = padded_batch()
    ours = build_upstream(str(tmp_path / "run"))(waveforms, lengths)
    theirs = build_upstream(f"hf:{directory}")(waveforms, lengths)
    assert ours.lengths.tolist() == theirs.lengths.tolist()
    for row, frames in enumerate(ours.lengths.tolist()):
        for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True):
            _close(a[row], b[row], frames)


def test_a_speechssl_encoder_exports_with_equal_outputs(tmp_path):
    """A speechssl layout never imported (pre-LN, group-norm CNN) leaves as a Wav2Vec2Model."""
    from speechssl.interop.hf_files import write_hf_model

    torch.manual_seed(0)
    config = EncoderConfig(
        frontend="waveform", dim=16, layers=2, heads=2, ffn_dim=32, pos_conv_kernel=5, pos_conv_groups=2,
        conv_channels=8, conv_kernels=(10, 3), conv_strides=(5, 2), conv_norm="group",
    )  # fmt: skip
    encoder = SpeechEncoder.from_config(config).eval()
    exported = transformers.AutoModel.from_pretrained(
        write_hf_model(encoder, "wav2vec2", tmp_path / "hf"), local_files_only=True
    ).eval()
    waveforms = torch.randn(2, 900)
    with torch.no_grad():
        ours = encoder(waveforms, None).hidden_states
    for a, b in zip(ours, hf_hidden_states(exported, waveforms), strict=True):
        torch.testing.assert_close(a, b, atol=TOLERANCE, rtol=0)


def test_every_tensor_of_each_layout_has_one_rule():
    for name in ARCHITECTURES:
        model = make_hf_model(name)
        base = getattr(model, "wav2vec2", model)
        config = encoder_config_from_hf(model.config.to_dict())
        covered = [key for rule in tensor_rules(config) for key in rule.hf]
        assert sorted(covered) == sorted(base.state_dict()), name
        ours = [key for rule in tensor_rules(config) for key in rule.ours]
        assert sorted(ours) == sorted(SpeechEncoder.from_config(config).state_dict()), name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hidden_act": "relu"}, "hidden_act: expected 'gelu'"),
        ({"conv_dim": (8, 16, 8)}, r"conv_dim: expected one width for every CNN layer, found \[8, 16, 8\]"),
        ({"layer_norm_eps": 1e-6}, "layer_norm_eps: expected 1e-05"),
        ({"model_type": "bert"}, "model_type: expected one of"),
    ],
)
def test_unsupported_config_values_name_the_field(changes, message):
    config = {**transformers.Wav2Vec2Config(**TINY_CONFIG).to_dict(), **changes}
    with pytest.raises(ValueError, match=message):
        encoder_config_from_hf(config)


TINY_CONFIG = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}


def test_weights_without_a_mask_embedding_import_without_one(tmp_path):
    """Fine-tuned checkpoints often lack ``masked_spec_embed``: transformers would draw it at random."""
    from safetensors.torch import load_file, save_file

    model = make_hf_model("hubert-large")
    model.save_pretrained(tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if k != "masked_spec_embed"}, weights)
    encoder = read_model(f"hf:{tmp_path / 'model'}").encoder
    assert encoder.mask_embedding is None and encoder.config.mask_embedding is False
