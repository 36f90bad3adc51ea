"""Issue 16: a stalled rank makes the others stop with an error naming the rank and collective, not hang."""

from __future__ import annotations

import json

import pytest
import torch
from distributed_helpers import spawn_ranks
from train_standins import stalling_worker


@pytest.mark.timeout(120)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_a_stalled_rank_ends_the_run_with_a_named_collective_timeout(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    timeout_s = 2.0
    spawn_ranks(stalling_worker, str(tmp_path / "run"), str(out_dir), timeout_s, world_size=2)

    waiting = json.loads((out_dir / "rank0.json").read_text())
    assert waiting["outcome"].startswith("CollectiveTimeoutError: rank 0 of 2: the forward/backward pass")
    assert "update 2" in waiting["outcome"] and "train.collective_timeout_s" in waiting["outcome"]
    assert "stalled: rank 1 (last: the " in waiting["outcome"] and "of update 1)" in waiting["outcome"]
    assert waiting["seconds"] < 4 * timeout_s  # gave up before the stalled rank woke
    stalled = json.loads((out_dir / "rank1.json").read_text())
    assert stalled["outcome"] != "finished"
