"""Issue 13 §2: every method trains under bf16 autocast (the trainer's ``precision: bf16``), here on CPU."""

from __future__ import annotations

import pytest
import torch

from methods.conftest import EVERY_METHOD


@pytest.mark.parametrize("name, options, frontend, causal", EVERY_METHOD)
def test_a_bf16_autocast_step_gives_a_finite_float32_loss_and_gradients(
    name, options, frontend, causal, tiny_method, tone_batch
):
    torch.manual_seed(0)
    method = tiny_method(name, options, frontend, causal)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = method(tone_batch([8000, 6400])).loss
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    gradients = [p.grad for p in method.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(g).all() for g in gradients)
