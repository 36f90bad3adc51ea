"""``speechssl import`` / ``export``, and imported runs as teacher and initialisation of pretraining."""

from __future__ import annotations

import pytest
import torch
from hf_models import hf_hidden_states, padded_batch, transformers
from safetensors.torch import load_file

from speechssl.cli import main
from speechssl.config import load_yaml
from speechssl.models.checkpoint import find_latest, load_encoder
from speechssl.models.units import load_unit_tokenizer
from speechssl.train.checkpoint import save_weights

WAV2VEC2_TINY = [
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1",
    "encoder.conv_channels=16", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "objective.codebook_entries=16", "objective.codebook_dim=16", "objective.final_dim=16",
    "objective.num_negatives=20",
    "data.synthetic.num_utterances=24", "data.synthetic.num_speakers=2", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=2", "train.log_every=1", "train.checkpoint_every=2",
    "train.device=cpu",
]  # fmt: skip
HUBERT_TINY = [
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1", "encoder.n_mels=16",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "data.synthetic.num_utterances=24", "data.synthetic.num_speakers=2", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0", "optim.warmup_steps=1", "train.max_steps=2",
    "train.log_every=1", "train.checkpoint_every=2", "train.device=cpu",
    "objective.targets.num_units=8", "objective.targets.max_frames=400", "objective.final_dim=16",
]  # fmt: skip


def test_import_and_export_through_the_cli(hf_model_dir, tmp_path, capsys):
    model, directory = hf_model_dir("wavlm-base")
    run, exported = tmp_path / "run", tmp_path / "exported"
    assert main(["import", f"hf:{directory}", "--run-dir", str(run)]) == 0
    assert load_yaml(find_latest(run) / "config.yaml")["method"] == "hubert"
    assert main(["export", str(run), "--format", "hf", "--output", str(exported)]) == 0
    assert "exported" in capsys.readouterr().out
    again = transformers.AutoModel.from_pretrained(exported, local_files_only=True).eval()
    assert type(again).__name__ == "WavLMModel"
    waveforms = torch.randn(1, 1000)
    torch.testing.assert_close(
        hf_hidden_states(again, waveforms)[-1], hf_hidden_states(model, waveforms)[-1], atol=1e-5, rtol=0
    )

    assert main(["import", f"hf:{directory}", "--run-dir", str(run)]) == 2
    assert "--run-dir: " in capsys.readouterr().err


def test_an_encoder_without_a_transformers_equivalent_is_refused(tiny_run, tmp_path, capsys):
    assert main(["export", str(tiny_run.checkpoint), "--format", "hf", "--output", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("speechssl: error: frontend: 'fbank' has no transformers equivalent")
    assert "exportable encoders: the waveform front-end with a Transformer context" in error
    assert "\n" not in error and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [("hf:/nonexistent", "expected a transformers model directory"), ("model.bin", "expected 'hf:<")],
)
def test_import_refusals_are_one_line(source, message, tmp_path, capsys):
    assert main(["import", source, "--run-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error


def test_a_speechssl_trained_waveform_encoder_exports_with_equal_outputs(tmp_path):
    run = tmp_path / "run"
    overrides = [*WAV2VEC2_TINY, f"data.root={tmp_path / 'corpus'}"]
    assert main(["pretrain", "--method", "wav2vec2", "--run-dir", str(run), *overrides]) == 0
    assert main(["export", str(run), "--format", "hf", "--output", str(tmp_path / "hf")]) == 0
    exported = transformers.AutoModel.from_pretrained(tmp_path / "hf", local_files_only=True).eval()
    assert type(exported).__name__ == "Wav2Vec2Model"
    encoder = load_encoder(find_latest(run)).eval()
    waveforms = torch.randn(2, 4000)
    with torch.no_grad():
        ours = encoder(waveforms, None).hidden_states
    for a, b in zip(ours, hf_hidden_states(exported, waveforms), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

    onnxruntime = pytest.importorskip(
        "onnxruntime", reason="needs the onnx extra: pip install 'speechssl[onnx]'"
    )
    pytest.importorskip("onnxscript", reason="needs the onnx extra: pip install 'speechssl[onnx]'")
    assert main(["export", str(run), "--format", "onnx", "--output", str(tmp_path / "run.onnx")]) == 0
    session = onnxruntime.InferenceSession(str(tmp_path / "run.onnx"), providers=["CPUExecutionProvider"])
    waveforms, lengths = torch.randn(3, 6000), torch.tensor([6000, 4321, 2500])
    waveforms[torch.arange(6000)[None, :] >= lengths[:, None]] = 0.0  # zero-padded, as a batch is
    *hidden_states, frame_lengths = session.run(
        None, {"waveforms": waveforms.numpy(), "lengths": lengths.numpy()}
    )
    with torch.no_grad():
        expected = encoder(waveforms, lengths)
    assert frame_lengths.tolist() == expected.lengths.tolist()
    for onnx_state, eager in zip(hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(torch.from_numpy(onnx_state), eager, atol=1e-4, rtol=0)


def test_continued_pretraining_starts_from_an_imported_wav2vec2(hf_model_dir, tmp_path):
    """``--init-from``: the imported encoder's architecture and weights, heads included, and a
    fresh optimizer (a learning rate of 1e-9 leaves the weights where they started)."""
    _, directory = hf_model_dir("wav2vec2-base")
    imported, run = tmp_path / "imported", tmp_path / "continued"
    assert main(["import", f"hf:{directory}", "--run-dir", str(imported)]) == 0
    heads = ["objective.codebook_entries=5", "objective.codebook_dim=8", "objective.final_dim=6"]
    overrides = [*WAV2VEC2_TINY, *heads, "optim.lr=1e-9", f"data.root={tmp_path / 'corpus'}"]
    args = ["pretrain", "--method", "wav2vec2", "--init-from", str(imported), "--run-dir", str(run)]
    assert main([*args, *overrides]) == 0

    start = load_file(find_latest(imported) / "model.safetensors")
    end = load_file(find_latest(run) / "model.safetensors")
    assert start.keys() == end.keys()
    for name in start.keys() - {"quantizer.temperature"}:  # the annealed Gumbel temperature moves
        torch.testing.assert_close(end[name], start[name], atol=1e-6, rtol=0)
    assert start["quantizer.codebook"].shape == (2, 5, 4)
    config = load_yaml(find_latest(run) / "config.yaml")
    assert config["train"]["init_from"] == str(imported)
    assert config["encoder"] == load_yaml(find_latest(imported) / "encoder.yaml")
    assert config["encoder"]["layer_norm_first"] is False and config["encoder"]["dim"] == 16


def test_init_from_a_checkpoint_that_does_not_fit_names_the_tensor(tmp_path, capsys):
    from speechssl.models.encoder import EncoderConfig, SpeechEncoder

    encoder = SpeechEncoder.from_config(
        EncoderConfig(
            frontend="waveform", dim=16, layers=1, heads=2, ffn_dim=32, pos_conv_groups=2, conv_channels=8
        )
    )
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors["final_projection.weight"] = torch.zeros(3, 3)
    save_weights(tmp_path / "odd", tensors, encoder, {"method": "wav2vec2"})
    overrides = [*WAV2VEC2_TINY, f"data.root={tmp_path / 'corpus'}"]
    args = [
        "pretrain",
        "--method",
        "wav2vec2",
        "--init-from",
        str(tmp_path / "odd"),
        "--run-dir",
        str(tmp_path / "r"),
    ]
    assert main([*args, *overrides]) == 2
    assert "holds 'final_projection.weight', which does not fit the wav2vec2 heads" in capsys.readouterr().err


def test_hubert_iteration_two_with_an_imported_hubert_teacher(hf_model_dir, tmp_path):
    _, directory = hf_model_dir("hubert-base")
    teacher, run = tmp_path / "teacher", tmp_path / "it2"
    assert main(["import", f"hf:{directory}", "--run-dir", str(teacher)]) == 0
    args = [
        "pretrain",
        "--method",
        "hubert",
        "--iteration",
        "2",
        "--teacher",
        str(teacher),
        "--run-dir",
        str(run),
    ]
    assert main([*args, *HUBERT_TINY, "objective.targets.layer=1", f"data.root={tmp_path / 'corpus'}"]) == 0
    features = load_unit_tokenizer(run / "units").config.features
    assert (features.source, features.layer, features.pool) == ("encoder", 1, 32)  # 640 / 20 samples
    assert features.encoder == load_encoder(find_latest(teacher)).config
    assert find_latest(run).name == "step_00000002"


def test_an_imported_data2vec_audio_is_an_upstream(hf_model_dir, tmp_path):
    """Equal to the ``hf:`` upstream on the unpadded utterance of a batch (the original's
    positional convolutions read the padding of the others, see test_interop_hf)."""
    from speechssl.upstream import build_upstream

    _, directory = hf_model_dir("data2vec-audio")
    assert main(["import", f"hf:{directory}", "--run-dir", str(tmp_path / "run")]) == 0
    waveforms, lengths = padded_batch()
    ours = build_upstream(str(tmp_path / "run"))(waveforms, lengths)
    theirs = build_upstream(f"hf:{directory}")(waveforms, lengths)
    for a, b in zip(ours.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)


def test_a_data2vec_teacher_starts_from_the_imported_weights(hf_model_dir, tmp_path):
    """The encoder is initialised before the method copies it into the EMA teacher."""
    from speechssl.train import load_pretrain_config
    from speechssl.train.pretrain import build_pretrain_method, with_init_encoder

    _, directory = hf_model_dir("data2vec-audio")
    assert main(["import", f"hf:{directory}", "--run-dir", str(tmp_path / "run")]) == 0
    config = load_pretrain_config(None, [f"train.init_from={tmp_path / 'run'}"], method="data2vec")
    method = build_pretrain_method(with_init_encoder(config))
    imported = load_encoder(find_latest(tmp_path / "run"))
    assert method.encoder.config == imported.config
    source = imported.context if config.objective.ema_transformer_only else imported
    teacher = method.teacher.state_dict()
    assert teacher.keys() == source.state_dict().keys()
    assert all(torch.equal(teacher[name], tensor) for name, tensor in source.state_dict().items())
