"""HuBERT (with its label pipeline) and data2vec (with its EMA teacher) on two gloo ranks.

Each rank runs what ``torchrun speechssl pretrain`` runs: the process group from the
environment, the method's ``prepare`` hook (:func:`~speechssl.train.pretrain.prepare_method`:
rank 0 fits the tokenizer, the other waits), then the shared trainer. Both ranks must end with identical weights, frozen
tokenizer and EMA teacher included.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from distributed_helpers import spawn_ranks

from speechssl import distributed
from speechssl.config import to_dict
from speechssl.train import load_pretrain_config
from speechssl.train.pretrain import build_pretrain_data, build_pretrain_method, prepare_method
from speechssl.train.trainer import train

TINY = [
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=2", "encoder.n_mels=16",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "data.synthetic.num_utterances=24", "data.synthetic.num_speakers=2", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0", "optim.warmup_steps=1", "train.max_steps=3",
    "train.log_every=1", "train.checkpoint_every=3", "train.device=cpu",
]  # fmt: skip
METHOD_OVERRIDES = {
    "hubert": ["objective.targets.num_units=8", "objective.targets.max_frames=400", "objective.final_dim=16"],
    "data2vec": ["objective.top_k_layers=2", "objective.ema.anneal_steps=2"],
}


def _worker(rank: int, world_size: int, method: str, root: str) -> None:
    """One rank of ``torchrun speechssl pretrain --method <method>``; saves its final weights."""
    run_dir = Path(root) / "run"
    overrides = [*TINY, *METHOD_OVERRIDES[method], f"data.root={Path(root) / 'corpus'}"]
    distributed.setup_from_env()
    try:
        config = prepare_method(load_pretrain_config(None, overrides, method=method), run_dir)
        data = build_pretrain_data(config)
        trained = build_pretrain_method(config)
        train(trained, data, config.optim, config.train, run_dir, to_dict(config))
        state = {name: tensor.clone() for name, tensor in trained.state_dict().items()}
        torch.save(state, Path(root) / f"rank{rank}.pt")
    finally:
        distributed.cleanup()


@pytest.mark.timeout(300)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without torch.distributed")
@pytest.mark.parametrize("method", ["hubert", "data2vec"])
def test_two_ranks_end_with_identical_weights(tmp_path: Path, method: str) -> None:
    spawn_ranks(_worker, method, str(tmp_path), world_size=2)
    weights = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.equal(weights[1][name], tensor), name
    frozen = "tokenizer." if method == "hubert" else "teacher."
    assert any(name.startswith(frozen) for name in weights[0])
    if method == "hubert":
        assert (tmp_path / "run" / "units" / "tokenizer.yaml").is_file()
        assert not list(tmp_path.joinpath("run").glob(".units-*"))  # no staging folder left behind
