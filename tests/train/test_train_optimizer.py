"""The weight-decay rule shared by pretraining and the downstream heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speechssl.train.optimizer import parameter_groups


class _LayerLogits(nn.Module):
    """A 1-d parameter like the downstream featurizer's layer-mixing logits."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(3))


def test_matrices_are_decayed_and_biases_norms_and_layer_logits_are_not():
    model = nn.Sequential(_LayerLogits(), nn.Linear(4, 5), nn.LayerNorm(5), nn.Conv1d(5, 2, 3))
    groups = parameter_groups(model, 0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    undecayed = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert decayed == {id(model[1].weight), id(model[3].weight)}
    assert undecayed == {id(p) for p in model.parameters()} - decayed
    assert id(model[0].logits) in undecayed


def test_frozen_parameters_are_left_out_and_none_trainable_is_an_error():
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    assert parameter_groups(model, 0.5) == [{"params": [model.weight], "weight_decay": 0.5}]
    model.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="Linear: expected trainable parameters"):
        parameter_groups(model, 0.5)
