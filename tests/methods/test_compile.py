"""Issue 13 §2: a method's training step runs under ``torch.compile`` with the loss of eager mode."""

from __future__ import annotations

import pytest
import torch

from speechssl.methods import build_method, method_config


@pytest.mark.parametrize(
    "name, options, frontend",
    [("data2vec", {"top_k_layers": 1}, "fbank"), ("wav2vec2", {}, "waveform")],
)
def test_a_compiled_training_step_matches_eager_mode(name, options, frontend, tiny_encoder, tone_batch):
    torch.manual_seed(0)
    method = build_method(name, method_config(name, options), tiny_encoder(frontend))
    batch = tone_batch([8000, 6400])
    losses, gradients = [], []
    # aot_eager traces forward and backward like inductor, without its C++ compile (seconds on CPU)
    for run in (method, torch.compile(method, backend="aot_eager")):
        torch.manual_seed(1)  # the same masks, views and Gumbel noise in both runs
        method.zero_grad(set_to_none=True)
        loss = run(batch).loss
        loss.backward()
        losses.append(loss.detach())
        gradients.append(next(p.grad for p in method.encoder.parameters() if p.grad is not None).clone())
    torch.testing.assert_close(losses[1], losses[0])
    torch.testing.assert_close(gradients[1], gradients[0])
