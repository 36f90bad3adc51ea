"""ONNX and torch.export graphs of a speechssl encoder: dynamic batch and length, equal outputs."""

from __future__ import annotations

import sys

import pytest
import torch

from speechssl.cli import main
from speechssl.interop.graph import (
    check_exportable,
    min_padded_samples,
    output_names,
    save_onnx,
    save_program,
)
from speechssl.models import EncoderConfig, SpeechEncoder
from speechssl.models.encoder import UnitFeatureConfig, UnitTokenizerConfig
from speechssl.upstream import build_upstream

FRONTENDS = ("waveform", "fbank")
# Batches the graphs never saw (they are traced on 2 utterances of one second): other batch
# sizes, padded lengths, an utterance at the receptive field, a padded batch of two frames.
UNSEEN_LENGTHS = ([9000], [12000, 7777, 400, 10001], [400, 720])


def _tiny_encoder(frontend: str) -> SpeechEncoder:
    config = EncoderConfig(
        frontend=frontend,
        dim=32,
        layers=2,
        heads=4,
        ffn_dim=64,
        pos_conv_kernel=16,
        pos_conv_groups=4,
        n_mels=40,
        subsampling_channels=8,
        conv_channels=32,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return SpeechEncoder.from_config(config)


def _batch(lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    waveforms = 0.1 * torch.randn(len(lengths), max(lengths), generator=generator)  # (batch, samples)
    lengths_tensor = torch.tensor(lengths)
    waveforms[torch.arange(max(lengths))[None, :] >= lengths_tensor[:, None]] = 0.0
    return waveforms, lengths_tensor


@torch.no_grad()
def _eager(encoder: SpeechEncoder, waveforms: torch.Tensor, lengths: torch.Tensor):
    return encoder.eval()(waveforms, lengths)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_program_gives_the_encoders_hidden_states_on_unseen_batches(frontend, tmp_path):
    encoder = _tiny_encoder(frontend).train()
    path = save_program(encoder, tmp_path / "encoder.pt2")
    assert encoder.training and all(p.requires_grad for p in encoder.parameters()), "encoder left as it was"
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.pt2"], "no temporary file left"

    program = torch.export.load(path).module()
    for lengths in UNSEEN_LENGTHS:
        waveforms, lengths_tensor = _batch(lengths)
        hidden_states, frame_lengths = program(waveforms, lengths_tensor)
        expected = _eager(encoder, waveforms, lengths_tensor)
        assert torch.equal(frame_lengths, expected.lengths)
        assert len(hidden_states) == encoder.num_layers
        for exported, eager in zip(hidden_states, expected.hidden_states, strict=True):
            torch.testing.assert_close(exported, eager, atol=1e-5, rtol=0)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_onnxruntime_gives_the_encoders_hidden_states_on_unseen_batches(frontend, tmp_path):
    onnxruntime = pytest.importorskip(
        "onnxruntime", reason="needs the onnx extra: pip install 'speechssl[onnx]'"
    )
    pytest.importorskip("onnxscript", reason="needs the onnx extra: pip install 'speechssl[onnx]'")
    encoder = _tiny_encoder(frontend)
    path = save_onnx(encoder, tmp_path / "encoder.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["waveforms", "lengths"]
    assert [o.name for o in session.get_outputs()] == output_names(encoder.num_layers)

    # onnxruntime's STFT (a float32 DFT) differs from torch.stft by ~3e-5 relative on the
    # quietest log-mel bins, which the layers carry to ~1e-4 on values of ~3: the filterbank
    # encoder is compared relatively as well; the waveform encoder to 1e-4 absolute.
    rtol = 1e-4 if frontend == "fbank" else 0.0
    for lengths in UNSEEN_LENGTHS:
        waveforms, lengths_tensor = _batch(lengths)
        *hidden_states, frame_lengths = session.run(
            None, {"waveforms": waveforms.numpy(), "lengths": lengths_tensor.numpy()}
        )
        expected = _eager(encoder, waveforms, lengths_tensor)
        assert frame_lengths.tolist() == expected.lengths.tolist()
        for exported, eager in zip(hidden_states, expected.hidden_states, strict=True):
            torch.testing.assert_close(torch.from_numpy(exported), eager, atol=1e-4, rtol=rtol)


def test_padded_batches_need_two_frames():
    assert min_padded_samples(_tiny_encoder("waveform")) == 400 + 320  # receptive field + one hop
    assert min_padded_samples(_tiny_encoder("fbank")) == 1 + 640


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"context": "lstm"}, "context: expected 'transformer'"),
        ({"context": "gru", "frontend": "waveform"}, "context: expected 'transformer'"),
        (
            {"frontend": "units", "units": UnitTokenizerConfig(UnitFeatureConfig("mfcc"), num_units=4)},
            "frontend: expected 'waveform' or 'fbank'",
        ),
    ],
)
def test_encoders_without_a_dynamic_graph_are_refused(overrides, message, tmp_path):
    encoder = SpeechEncoder.from_config(EncoderConfig(dim=16, layers=1, heads=2, n_mels=16, **overrides))
    with pytest.raises(ValueError, match=message):
        check_exportable(encoder)
    with pytest.raises(ValueError, match=message):
        save_onnx(encoder, tmp_path / "encoder.onnx")
    assert not any(tmp_path.iterdir())


def test_export_command_writes_a_program_of_a_trained_run(tiny_run, tmp_path, capsys):
    output = tmp_path / "exports" / "run.pt2"
    assert main(["export", str(tiny_run.run_dir), "--format", "torch-export", "--output", str(output)]) == 0
    assert str(output) in capsys.readouterr().out

    upstream = build_upstream(str(tiny_run.run_dir))
    program = torch.export.load(output).module()
    waveforms, lengths = _batch([8000, 5000, 3000])
    hidden_states, frame_lengths = program(waveforms, lengths)
    expected = upstream(waveforms, lengths)
    assert torch.equal(frame_lengths, expected.lengths)
    for exported, eager in zip(hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(exported, eager, atol=1e-5, rtol=0)


def test_a_failed_export_keeps_the_previous_file(tmp_path, monkeypatch):
    output = tmp_path / "encoder.pt2"
    output.write_bytes(b"previous")

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch.export, "save", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_program(_tiny_encoder("waveform"), output)
    assert output.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.pt2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["RUN", "--format", "tflite"], "--format: expected one of hf, onnx, torch-export, found 'tflite'"),
        (["MISSING", "--format", "onnx"], "MISSING: expected a checkpoint directory"),
    ],
)
def test_export_command_errors_are_one_line(argv, message, tiny_run, tmp_path, capsys):
    argv = [
        str(tiny_run.run_dir) if a == "RUN" else str(tmp_path / "missing") if a == "MISSING" else a
        for a in argv
    ]
    assert main(["export", *argv, "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message.replace("MISSING", str(tmp_path / "missing")) in error
    assert not (tmp_path / "out").exists()


def test_export_command_names_a_missing_onnx_exporter(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript raises ImportError
    argv = ["export", str(tiny_run.run_dir), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "ONNX export needs the onnxscript package: pip install 'speechssl[onnx]'" in error
