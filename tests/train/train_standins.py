"""Stand-ins for the trainer tests: a tiny pretext method and in-memory batch sources.

They depend only on the method/batch contracts, not on the real encoders, datasets or
methods, so the trainer is tested on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from speechssl import distributed
from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.train.config import OptimConfig, TrainConfig

SAMPLE_RATE = 16000


@dataclass
class TinyEncoderConfig:
    """Config the stand-in encoder carries as ``.config`` (what ``encoder.yaml`` stores)."""

    dim: int = 8


class TinyEncoder(nn.Module):
    """``(batch, samples)`` → ``(batch, dim, frames)``: one strided conv and a LayerNorm."""

    def __init__(self, config: TinyEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = nn.Conv1d(1, config.dim, kernel_size=16, stride=8)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        hidden = self.conv(waveforms.unsqueeze(1))  # (batch, dim, frames)
        return self.norm(hidden.transpose(1, 2)).transpose(1, 2)


class StandInMethod(PretextMethod):
    """Regress a fixed random target from the mean-pooled encoding.

    With ``stochastic`` it also draws from the global torch RNG every forward (dropout and
    additive noise), which exact resumption must reproduce. ``on_step_end`` counts updates in
    a buffer, so the hook's effect is checkpointed like an EMA teacher's would be.
    """

    def __init__(self, dim: int = 8, stochastic: bool = True, tie_weights: bool = False) -> None:
        super().__init__()
        self.encoder = TinyEncoder(TinyEncoderConfig(dim))
        self.head = nn.Linear(dim, dim)
        self.decoder = nn.Linear(dim, dim, bias=False)
        if tie_weights:
            self.decoder.weight = self.head.weight
        self.dropout = nn.Dropout(0.2 if stochastic else 0.0)
        self.stochastic = stochastic
        self.register_buffer("target", torch.linspace(-1.0, 1.0, dim))
        self.register_buffer("updates_seen", torch.zeros((), dtype=torch.long))

    def forward(self, batch: AudioBatch) -> MethodOutput:
        hidden = self.encoder(batch.waveforms)  # (batch, dim, frames)
        if self.stochastic:
            hidden = hidden + 0.01 * torch.randn_like(hidden)
        pooled = self.dropout(hidden.mean(dim=2))  # (batch, dim)
        prediction = self.decoder(torch.tanh(self.head(pooled)))  # (batch, dim)
        per_utterance = (prediction - self.target).pow(2).mean(dim=1)  # (batch,)
        return MethodOutput(per_utterance.mean(), {"pooled_std": pooled.detach().std()})

    def on_step_end(self, step: int, max_steps: int) -> None:
        self.updates_seen.fill_(step)


def make_corpus(count: int, samples: int = 800, seed: int = 0, ragged: bool = True) -> list[torch.Tensor]:
    """``count`` random waveforms of ``samples`` samples (or fewer, when ``ragged``)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(samples // 2, samples + 1, (count,), generator=generator) if ragged else None
    return [torch.randn(int(lengths[i]) if ragged else samples, generator=generator) for i in range(count)]


class InMemoryData:
    """A :class:`~speechssl.train.trainer.PretrainData` over in-memory waveforms.

    Each epoch is a seeded permutation cut into batches of ``batch_size`` (last partial
    batch dropped). Like a DataLoader building its iterator, every call draws once from
    the global torch RNG (which the trainer must not let break exact resumption).
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, waveforms: list[torch.Tensor], batch_size: int, seed: int = 0, shuffle: bool = True):
        self.waveforms = waveforms
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.loaders_built = 0

    def batches_per_epoch(self) -> int:
        return len(self.waveforms) // self.batch_size

    def loader_for_epoch(self, epoch: int, start_batch: int) -> Iterator[AudioBatch]:
        self.loaders_built += 1
        torch.empty((), dtype=torch.int64).random_()
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(len(self.waveforms), generator=generator)
        else:
            order = torch.arange(len(self.waveforms))
        return (
            collate([self.waveforms[i] for i in order[start : start + self.batch_size].tolist()])
            for start in range(
                start_batch * self.batch_size, self.batches_per_epoch() * self.batch_size, self.batch_size
            )
        )


class PreemptedError(Exception):
    """Raised by :class:`CrashingData` to simulate a job killed mid-run."""


class CrashingData(InMemoryData):
    """:class:`InMemoryData` raising :class:`PreemptedError` when asked for batch ``crash_at`` (1-based)."""

    def __init__(self, *args, crash_at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.crash_at = crash_at
        self.served = 0

    def loader_for_epoch(self, epoch: int, start_batch: int) -> Iterator[AudioBatch]:
        return self._crash_when_due(super().loader_for_epoch(epoch, start_batch))

    def _crash_when_due(self, batches: Iterator[AudioBatch]) -> Iterator[AudioBatch]:
        for batch in batches:
            self.served += 1
            if self.served == self.crash_at:
                raise PreemptedError(f"simulated preemption at batch {self.served}")
            yield batch


def collate(waveforms: list[torch.Tensor]) -> AudioBatch:
    """Zero-pad ``waveforms`` into an :class:`AudioBatch`."""
    lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long)
    padded = torch.zeros(len(waveforms), int(lengths.max()))
    for row, waveform in enumerate(waveforms):
        padded[row, : len(waveform)] = waveform
    return AudioBatch(padded, lengths, ids=[f"utt{i}" for i in range(len(waveforms))])


def quiet_train_config(**changes) -> TrainConfig:
    """A CPU, fp32 :class:`TrainConfig` for tests (no periodic checkpoints unless asked)."""
    options = {
        "max_steps": 6,
        "log_every": 1,
        "checkpoint_every": 1000,
        "keep_last": 2,
        "seed": 3,
        "device": "cpu",
        "precision": "fp32",
    }
    return TrainConfig(**{**options, **changes})


def fast_optim_config(**changes) -> OptimConfig:
    options = {
        "lr": 1e-2,
        "warmup_steps": 2,
        "min_lr_ratio": 0.1,
        "weight_decay": 0.01,
        "clip_grad_norm": 1.0,
    }
    return OptimConfig(**{**options, **changes})


def ddp_worker(rank: int, world_size: int, run_dir: str, out_dir: str) -> None:
    """One rank of the 2-process gloo run (started by ``distributed_helpers.spawn_ranks``):
    shard the corpus, train, save final weights."""
    from speechssl.train.trainer import train

    distributed.setup_from_env()
    try:
        torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
        method = StandInMethod(stochastic=True)
        corpus = make_corpus(16, seed=7)[rank::world_size]
        data = InMemoryData(corpus, batch_size=2, seed=rank)
        result = train(
            method,
            data,
            fast_optim_config(),
            quiet_train_config(max_steps=3, grad_accum_steps=2, checkpoint_every=2),
            run_dir,
            {"test": "ddp"},
            resume=False,
        )
        torch.save({k: v.clone() for k, v in method.state_dict().items()}, Path(out_dir) / f"rank{rank}.pt")
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"step": result.step, "loss": result.loss}))
    finally:
        distributed.cleanup()


class StallingData(InMemoryData):
    """:class:`InMemoryData` that sleeps ``seconds`` before serving batch ``stall_at`` (1-based), like a stopped rank."""

    def __init__(self, *args, stall_at: int | None, seconds: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.stall_at, self.seconds, self.served = stall_at, seconds, 0

    def loader_for_epoch(self, epoch: int, start_batch: int) -> Iterator[AudioBatch]:
        for batch in super().loader_for_epoch(epoch, start_batch):
            self.served += 1
            if self.served == self.stall_at:
                time.sleep(self.seconds)
            yield batch


def stalling_worker(rank: int, world_size: int, run_dir: str, out_dir: str, timeout_s: float) -> None:
    """One rank of a 2-process gloo run whose rank 1 stalls at its second batch for
    ``4 * timeout_s``; each rank writes its error (or ``finished``) and the seconds it took."""
    from speechssl.train.trainer import train

    distributed.setup_from_env(timeout_s)
    started = time.monotonic()
    try:
        torch.manual_seed(100)
        corpus = make_corpus(8, seed=7)[rank::world_size]
        data = StallingData(corpus, batch_size=2, stall_at=2 if rank == 1 else None, seconds=4 * timeout_s)
        train(
            StandInMethod(),
            data,
            fast_optim_config(),
            quiet_train_config(max_steps=2),
            run_dir,
            {"test": "stall"},
        )
        outcome = "finished"
    except Exception as err:
        outcome = f"{type(err).__name__}: {err}"
    finally:
        distributed.cleanup()
    Path(out_dir, f"rank{rank}.json").write_text(
        json.dumps({"outcome": outcome, "seconds": time.monotonic() - started})
    )
