"""Issue 13 §2: a method's training step (forward, loss, backward) makes no host read."""

from __future__ import annotations

import pytest
import torch
from sync_helpers import host_reads, shapes_from_data

from methods.conftest import EVERY_METHOD


def test_the_counter_sees_item_and_tolist():
    values = torch.arange(3.0)
    reads = host_reads(lambda: (values.sum().item(), values.tolist(), bool(values.any())))
    assert sum(reads.values()) == 3


def test_the_counter_ignores_values_made_from_python_numbers_only():
    values = torch.arange(3.0)
    assert not host_reads(lambda: int(torch.tensor(400) // 160 + 1))  # a padded length's frames
    assert sum(host_reads(lambda: int((torch.tensor(2.0) * values).sum())).values()) == 1


@pytest.mark.parametrize("name, options, frontend, causal", EVERY_METHOD)
def test_a_training_step_makes_no_host_read(name, options, frontend, causal, tiny_method, tone_batch):
    torch.manual_seed(0)
    method = tiny_method(name, options, frontend, causal)
    batch = tone_batch([8000, 6400])
    reads = host_reads(lambda: method(batch).loss.backward())
    assert not reads, f"{name}: host reads {dict(reads)}"


@pytest.mark.parametrize("name, options, frontend, causal", EVERY_METHOD)
def test_a_training_step_has_no_shape_that_depends_on_data(
    name, options, frontend, causal, tiny_method, tone_batch
):
    torch.manual_seed(0)
    method = tiny_method(name, options, frontend, causal)
    batch = tone_batch([8000, 6400])
    ops = shapes_from_data(lambda: method(batch).loss.backward())
    assert not ops, f"{name}: data-dependent shapes {dict(ops)}"


def test_the_shape_counter_sees_boolean_indexing():
    values = torch.arange(4.0, requires_grad=True)
    ops = shapes_from_data(lambda: values[values > 1].sum().backward())
    assert ops["aten.index.Tensor"] == 1 and sum(ops.values()) == 2  # the selection and its backward
