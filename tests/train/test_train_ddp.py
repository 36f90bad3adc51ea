"""Two-process gloo run of the trainer: DDP wrapping, no_sync accumulation, rank-0 I/O."""

from __future__ import annotations

import json

import pytest
import torch
from distributed_helpers import spawn_ranks
from train_standins import ddp_worker

from speechssl.models.checkpoint import list_checkpoints
from speechssl.train.logging import read_metrics


@pytest.mark.timeout(180)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    spawn_ranks(ddp_worker, str(run_dir), str(out_dir), world_size=2)

    weights = [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(weights[1][name], tensor), name
    results = [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1] and results[0]["step"] == 3
    assert int(weights[0]["updates_seen"]) == 3
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_00000002", "step_00000003"]
    saved = torch.load(run_dir / "step_00000003" / "trainer_state.pt", weights_only=True)
    assert len(saved["rng_states"]) == 2
    assert not torch.equal(saved["rng_states"][0]["torch"], saved["rng_states"][1]["torch"])
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]
