"""Tokenizers from trained quantizers equal the methods' own quantizer choices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from speechssl.config import to_dict
from speechssl.methods import build_method, method_config
from speechssl.methods.tokenizers import tokenizer_from_run
from speechssl.models import EncoderConfig, SpeechEncoder
from speechssl.models.units import load_unit_tokenizer, save_unit_tokenizer
from speechssl.train.checkpoint import TrainerState, save_checkpoint

VQ_APC_ENCODER = dict(
    context="lstm", dim=32, layers=2, heads=2, ffn_dim=64, dropout=0.0, attention_dropout=0.0,
    pos_conv_kernel=8, pos_conv_groups=4, n_mels=20, subsampling_channels=4, causal=True, feature_norm=False,
)  # fmt: skip
WAV2VEC2_ENCODER = dict(
    frontend="waveform", dim=16, layers=1, heads=2, ffn_dim=32, dropout=0.0, attention_dropout=0.0,
    pos_conv_kernel=4, pos_conv_groups=2, conv_channels=16, conv_kernels=(10, 4), conv_strides=(5, 4),
)  # fmt: skip
WAV2VEC2_OBJECTIVE = dict(
    num_negatives=10, codebook_groups=2, codebook_entries=8, codebook_dim=8, final_dim=16, quantizer_dropout=0.0
)  # fmt: skip


def _build(name: str, encoder: dict, objective: dict):
    torch.manual_seed(0)
    return build_method(
        name, method_config(name, objective), SpeechEncoder.from_config(EncoderConfig(**encoder))
    )


def _save_run(run_dir: Path, method, encoder: dict) -> None:
    """``method`` saved as the step-1 checkpoint of run ``run_dir``."""
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = TrainerState(step=1, epoch=0, batch_in_epoch=0, elapsed_s=0.0, last_loss=0.0, rng_states=[])
    name = {"VQAPC": "vq_apc", "Wav2Vec2": "wav2vec2", "APC": "apc"}[type(method).__name__]
    config = {"method": name, "objective": to_dict(method.config), "encoder": encoder}
    save_checkpoint(run_dir, method, optimizer, scheduler, state, config)
    method.eval()


def _audio(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([8000, 6400, 5000][:batch])
    waveforms = 0.1 * torch.randn(batch, 8000, generator=generator)  # (batch, samples)
    waveforms[torch.arange(8000)[None, :] >= lengths[:, None]] = 0.0
    return waveforms, lengths


def test_vq_apc_tokenizer_is_the_codebook_on_the_last_hidden_state(tmp_path):
    method = _build("vq_apc", VQ_APC_ENCODER, {"codebook_size": 16}).eval()
    waveforms, lengths = _audio()
    with torch.no_grad():  # codes at hidden states of the batch, so that several are chosen
        hidden = method.encoder(waveforms, lengths).last_hidden_state  # (batch, frames, dim)
        valid = hidden[:, :8].reshape(-1, hidden.shape[-1])  # (batch, 8, dim) -> (batch * 8, dim)
        method.quantizer.codebook.copy_(valid[:16] + 0.01 * torch.randn(16, hidden.shape[-1]))
    _save_run(tmp_path / "run", method, VQ_APC_ENCODER)
    tokenizer = tokenizer_from_run(tmp_path / "run")  # a run directory: its latest checkpoint
    assert tokenizer.num_units == 16 and tokenizer.config.features.source == "encoder"
    with torch.no_grad():
        output = method.encoder(waveforms, lengths)
        codes = method.quantizer(output.last_hidden_state, output.lengths).codes  # (batch, frames)
    sequence = tokenizer(waveforms, lengths)
    torch.testing.assert_close(sequence.lengths, output.lengths)
    assert torch.equal(sequence.units, codes)
    assert len(set(codes[codes >= 0].tolist())) > 1  # not a degenerate single code

    reloaded = load_unit_tokenizer(save_unit_tokenizer(tokenizer, tmp_path / "tokenizer"))
    assert torch.equal(reloaded(waveforms, lengths).units, codes)


def test_wav2vec2_tokenizer_combines_group_indices(tmp_path):
    method = _build("wav2vec2", WAV2VEC2_ENCODER, WAV2VEC2_OBJECTIVE)
    _save_run(tmp_path / "run", method, WAV2VEC2_ENCODER)
    checkpoint = next((tmp_path / "run").glob("step_*"))
    tokenizer = tokenizer_from_run(checkpoint)
    assert tokenizer.num_units == 64 and tokenizer.config.assignment == "gumbel"
    waveforms, lengths = _audio()
    frontend = method.encoder.frontend
    with torch.no_grad():
        features, frame_lengths = frontend.feature_encoder(waveforms[:, None, :], lengths)
        features = frontend.layer_norm(features.transpose(1, 2))  # (batch, frames, channels)
        indices = method.quantizer(features, frame_lengths).indices  # (batch, frames, groups)
    expected = indices[..., 0] + 8 * indices[..., 1]  # Σ_g i_g V^g
    sequence = tokenizer(waveforms, lengths)
    valid = sequence.units >= 0
    assert torch.equal(sequence.lengths, frame_lengths)
    assert torch.equal(sequence.units[valid], expected[valid])
    assert len(set(expected[valid].tolist())) > 1


def test_runs_without_a_quantizer_are_refused(tmp_path):
    _save_run(tmp_path / "apc", _build("apc", VQ_APC_ENCODER, {}), VQ_APC_ENCODER)
    with pytest.raises(ValueError, match=r"config.yaml: method 'apc' has no quantizer"):
        tokenizer_from_run(tmp_path / "apc")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'empty'}: expected a checkpoint directory"):
        tokenizer_from_run(tmp_path / "empty")
