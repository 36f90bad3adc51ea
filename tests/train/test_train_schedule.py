"""Warmup-cosine schedule: endpoints, midpoint, floor, and the LambdaLR built from it."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from speechssl.train.schedule import build_scheduler, warmup_cosine


def test_warmup_starts_at_zero_and_reaches_peak():
    assert warmup_cosine(0, warmup=10, total=100, min_ratio=0.1) == 0.0
    assert warmup_cosine(5, warmup=10, total=100, min_ratio=0.1) == pytest.approx(0.5)
    assert warmup_cosine(10, warmup=10, total=100, min_ratio=0.1) == pytest.approx(1.0)


def test_cosine_midpoint_is_halfway_between_peak_and_floor():
    assert warmup_cosine(55, warmup=10, total=100, min_ratio=0.2) == pytest.approx(0.6)


def test_cosine_ends_on_the_floor_and_stays_there():
    assert warmup_cosine(100, warmup=10, total=100, min_ratio=0.05) == pytest.approx(0.05)
    assert warmup_cosine(250, warmup=10, total=100, min_ratio=0.05) == pytest.approx(0.05)
    values = [warmup_cosine(s, warmup=10, total=100, min_ratio=0.05) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_no_warmup_starts_at_peak():
    assert warmup_cosine(0, warmup=0, total=10, min_ratio=0.0) == 1.0
    assert warmup_cosine(10, warmup=0, total=10, min_ratio=0.0) == pytest.approx(0.0, abs=1e-12)


def test_scheduler_sets_optimizer_lr_per_update():
    parameter = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = build_scheduler(optimizer, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    seen = []
    for _ in range(14):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert seen[8] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert seen[12:] == pytest.approx([0.1, 0.1])
