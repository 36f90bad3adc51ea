"""Issue 16: every method resumes exactly (weights and log lines), on two CPU threads, with
``train.deterministic``."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from methods.conftest import EVERY_METHOD, _tiny_method
from safetensors.torch import load_file
from train_standins import (
    CrashingData,
    InMemoryData,
    PreemptedError,
    fast_optim_config,
    make_corpus,
    quiet_train_config,
)

from speechssl.methods import available_methods
from speechssl.models.checkpoint import find_latest
from speechssl.train.logging import read_metrics
from speechssl.train.trainer import train

RESOLVED = {"method": "every", "note": "test"}


class Paired:
    """``data``'s batches with a paired word and 8x8 image per utterance (the multi-modal
    methods read them, the others ignore them), both drawn from the utterance's length so
    that the interrupted and the uninterrupted run see the same pairs."""

    def __init__(self, data):
        self.data = data
        self.sample_rate = data.sample_rate

    def batches_per_epoch(self) -> int:
        return self.data.batches_per_epoch()

    def loader_for_epoch(self, epoch: int, start_batch: int):
        return map(self.pair, self.data.loader_for_epoch(epoch, start_batch))  # built now, as the data's

    @staticmethod
    def pair(batch):
        digits = (batch.lengths % 5).tolist()
        images = torch.stack([torch.full((1, 8, 8), float(d)) for d in digits])  # (batch, 1, 8, 8)
        return dataclasses.replace(batch, text=[f"w{d}" for d in digits], images=images)


@pytest.fixture
def two_threads():
    """Two intra-op threads, where oneDNN's convolution backward is not reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_every_registered_method_is_in_the_table():
    assert {name for name, *_ in EVERY_METHOD} == set(available_methods())


@pytest.mark.parametrize("name, options, frontend, causal", EVERY_METHOD)
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(
    name, options, frontend, causal, tmp_path, two_threads
):
    # 6 clips in batches of 2; checkpoints after updates 1 and 2; the crash comes when update 3
    # asks for its batch. The one log line, of update 3, averages updates 1 to 3 in both runs.
    corpus = make_corpus(6, samples=3200, seed=1)
    config = quiet_train_config(max_steps=3, log_every=3, checkpoint_every=1, keep_last=5, deterministic=True)

    def method(seed: int):
        torch.manual_seed(seed)
        return _tiny_method(name, options, frontend, causal, tmp_path / "units")

    straight = train(
        method(0),
        Paired(InMemoryData(corpus, 2)),
        fast_optim_config(),
        config,
        tmp_path / "straight",
        RESOLVED,
    )
    with pytest.raises(PreemptedError):
        crashing = CrashingData(corpus, 2, crash_at=3)
        train(method(0), Paired(crashing), fast_optim_config(), config, tmp_path / "resumed", RESOLVED)
    assert find_latest(tmp_path / "resumed").name == "step_00000002"
    resumed = train(
        method(99),
        Paired(InMemoryData(corpus, 2)),
        fast_optim_config(),
        config,
        tmp_path / "resumed",
        RESOLVED,
        resume=True,
    )

    expected = load_file(straight.checkpoint / "model.safetensors")
    found = load_file(resumed.checkpoint / "model.safetensors")
    assert found.keys() == expected.keys()
    differing = [key for key in expected if not torch.equal(found[key], expected[key])]
    assert not differing, f"{name}: resumed weights differ in {differing}"
    logged = [
        {k: v for k, v in r.items() if k not in ("audio_seconds_per_second", "elapsed_s")}
        for r in read_metrics(tmp_path / "resumed")
    ]
    reference = [
        {k: v for k, v in r.items() if k not in ("audio_seconds_per_second", "elapsed_s")}
        for r in read_metrics(tmp_path / "straight")
    ]
    assert logged == reference
