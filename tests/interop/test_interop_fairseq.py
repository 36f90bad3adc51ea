"""fairseq checkpoints: a fake fairseq-layout file written here, read through the allow-list, or refused."""

from __future__ import annotations

import argparse
import pathlib
import re

import pytest
import torch
from hf_models import hf_hidden_states, make_hf_model

from speechssl.cli import main
from speechssl.interop import read_model
from speechssl.interop.fairseq import conv_layers

# transformers name -> fairseq name, as fairseq's Wav2Vec2Model / HubertModel save them
# (written out independently of speechssl.interop.fairseq, so that each checks the other)
TO_FAIRSEQ = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.layer_norm\.", r"feature_extractor.conv_layers.\1.2."),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^masked_spec_embed$", "mask_emb"),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.bias$", "encoder.pos_conv.0.bias"),
    (r"^encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
    (r"^quantizer\.codevectors$", "quantizer.vars"),
    (r"^project_hid\.", "final_proj."),
]
OPTIONS = {
    "encoder_embed_dim": 16, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_embed_dim": 32,
    "conv_feature_layers": "[(8, 10, 5)] + [(8, 3, 2)] * 2", "conv_pos": 4, "conv_pos_groups": 2,
    "extractor_mode": "default", "layer_norm_first": False, "conv_bias": False, "activation_fn": "gelu",
    "latent_vars": 5, "latent_groups": 2, "latent_dim": 8, "final_dim": 6, "encoder_layerdrop": 0.0,
}  # fmt: skip


def _fairseq_state(model) -> dict[str, torch.Tensor]:
    state = {}
    for name, tensor in model.state_dict().items():
        name = name.removeprefix("wav2vec2.")
        for pattern, replacement in TO_FAIRSEQ:
            name = re.sub(pattern, replacement, name)
        state[name] = tensor.clone()
    return state


def _fake_checkpoint(path: pathlib.Path, name: str, use_args: bool = False, **extra) -> object:
    model = make_hf_model("wav2vec2-base" if name == "wav2vec2" else "hubert-base")
    state = _fairseq_state(model)
    if name == "hubert":
        state["label_embs_concat"] = torch.randn(8, 6)
        state["final_proj.weight"], state["final_proj.bias"] = torch.randn(6, 16), torch.randn(6)
    options = {**OPTIONS, "_name": name}
    if use_args:
        content = {"args": argparse.Namespace(**{**options, "arch": name}), "model": state, **extra}
    else:
        content = {"cfg": {"model": options, "task": {"sample_rate": 16000}}, "model": state, **extra}
    torch.save(content, path)
    return model


@pytest.mark.parametrize(("name", "use_args"), [("wav2vec2", False), ("wav2vec2", True), ("hubert", False)])
def test_a_fairseq_checkpoint_converts_with_equal_hidden_states(tmp_path, name, use_args):
    model = _fake_checkpoint(tmp_path / "checkpoint.pt", name, use_args)
    imported = read_model(str(tmp_path / "checkpoint.pt"))
    assert imported.method == name
    waveforms = torch.randn(2, 1200)
    with torch.no_grad():
        ours = imported.encoder.eval()(waveforms, None).hidden_states
    for a, b in zip(ours, hf_hidden_states(model, waveforms), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    if name == "wav2vec2":
        assert torch.equal(
            imported.heads["quantizer.codebook"].reshape(1, 10, 4), model.quantizer.codevectors
        )
        assert (imported.objective.codebook_entries, imported.objective.final_dim) == (5, 6)
    else:
        assert imported.heads == {}


def test_a_fairseq_checkpoint_imports_through_the_cli(tmp_path):
    _fake_checkpoint(tmp_path / "checkpoint.pt", "wav2vec2")
    assert main(["import", str(tmp_path / "checkpoint.pt"), "--run-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "step_00000000" / "encoder.safetensors").is_file()


def test_a_class_outside_the_allow_list_is_refused_with_what_to_do(tmp_path, capsys):
    _fake_checkpoint(tmp_path / "checkpoint.pt", "wav2vec2", extra_state=pathlib.PurePosixPath("x"))
    assert main(["import", str(tmp_path / "checkpoint.pt"), "--run-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert "holds pathlib.PurePosixPath, which speechssl does not unpickle" in error
    assert "re-save the checkpoint with plain 'cfg' (dict) and 'model' (tensors) entries" in error
    assert "\n" not in error and not (tmp_path / "run").exists()


def test_conv_feature_layers_are_read_without_eval():
    assert conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2") == [
        (512, 10, 5),
        *[(512, 3, 2)] * 4,
        *[(512, 2, 2)] * 2,
    ]
    with pytest.raises(ValueError, match="conv_feature_layers: expected list literals"):
        conv_layers("[(512, 10, 5)] + __import__('os').system('true')")


def test_unsupported_fairseq_options_name_the_field(tmp_path, capsys):
    torch.save(
        {"cfg": {"model": {**OPTIONS, "_name": "wav2vec2", "quantize_input": True}}, "model": {}},
        tmp_path / "q.pt",
    )
    assert main(["import", str(tmp_path / "q.pt"), "--run-dir", str(tmp_path / "run")]) == 2
    assert "quantize_input: expected false" in capsys.readouterr().err


def test_the_task_normalize_option_becomes_waveform_norm(tmp_path):
    model = make_hf_model("wav2vec2-base")
    content = {"cfg": {"model": {**OPTIONS, "_name": "wav2vec2"}, "task": {"normalize": True}}}
    torch.save({**content, "model": _fairseq_state(model)}, tmp_path / "large.pt")
    assert read_model(str(tmp_path / "large.pt")).encoder.config.waveform_norm is True
