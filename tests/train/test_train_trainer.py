"""The training loop: exact resumption, gradient accumulation, non-finite stops, logging."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from safetensors.torch import load_file
from train_standins import (
    CrashingData,
    InMemoryData,
    PreemptedError,
    StandInMethod,
    fast_optim_config,
    make_corpus,
    quiet_train_config,
)

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MethodOutput
from speechssl.models.checkpoint import find_latest, list_checkpoints
from speechssl.train.logging import read_metrics
from speechssl.train.schedule import warmup_cosine
from speechssl.train.trainer import (
    NonFiniteLossError,
    TrainingInterruptedError,
    build_optimizer,
    train,
    uses_fused_adamw,
)

RESOLVED = {"method": "stand_in", "note": "test"}


def _method(seed: int, **kwargs) -> StandInMethod:
    torch.manual_seed(seed)
    return StandInMethod(**kwargs)


def test_stopped_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    # 10 utterances in batches of 2: 5 micro-batches per epoch; 2 per update; 6 updates span
    # 2.4 epochs. The checkpoint after update 3 sits at batch 1 of epoch 1; the crash comes
    # after update 5, so updates 4 and 5 are redone after resuming.
    corpus = make_corpus(10, seed=1)
    config = quiet_train_config(max_steps=6, grad_accum_steps=2, checkpoint_every=3, keep_last=5)
    straight = train(
        _method(0), InMemoryData(corpus, 2), fast_optim_config(), config, tmp_path / "straight", RESOLVED
    )

    with pytest.raises(PreemptedError):
        train(
            _method(0),
            CrashingData(corpus, 2, crash_at=11),
            fast_optim_config(),
            config,
            tmp_path / "resumed",
            RESOLVED,
        )
    assert find_latest(tmp_path / "resumed").name == "step_00000003"
    assert max(r["step"] for r in read_metrics(tmp_path / "resumed")) == 5
    resumed = train(
        _method(99),
        InMemoryData(corpus, 2),
        fast_optim_config(),
        config,
        tmp_path / "resumed",
        RESOLVED,
        resume=True,
    )

    assert (resumed.step, resumed.loss) == (straight.step, straight.loss)
    expected = load_file(straight.checkpoint / "model.safetensors")
    found = load_file(resumed.checkpoint / "model.safetensors")
    assert found.keys() == expected.keys()
    for name in expected:
        assert torch.equal(found[name], expected[name]), name
    assert int(found["updates_seen"]) == 6
    expected_state = torch.load(straight.checkpoint / "trainer_state.pt", weights_only=True)
    found_state = torch.load(resumed.checkpoint / "trainer_state.pt", weights_only=True)
    for key, moments in expected_state["optimizer"]["state"].items():
        for name, tensor in moments.items():
            assert torch.equal(found_state["optimizer"]["state"][key][name], tensor), (key, name)
    assert (found_state["epoch"], found_state["batch_in_epoch"]) == (2, 2)
    timing = {"audio_seconds_per_second", "elapsed_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in read_metrics(tmp_path / "resumed")] == [
        {k: v for k, v in r.items() if k not in timing} for r in read_metrics(tmp_path / "straight")
    ]


def test_gradient_accumulation_matches_one_batch_twice_as_large(tmp_path):
    corpus = make_corpus(12, seed=2, ragged=False)
    results = {}
    for accum, batch_size in ((1, 4), (2, 2)):
        method = _method(0, stochastic=False)
        train(
            method,
            InMemoryData(corpus, batch_size, shuffle=False),
            fast_optim_config(warmup_steps=0),
            quiet_train_config(max_steps=3, grad_accum_steps=accum),
            tmp_path / f"accum{accum}",
            RESOLVED,
        )
        results[accum] = method.state_dict()
    for name, tensor in results[1].items():
        torch.testing.assert_close(results[2][name], tensor, rtol=0, atol=1e-6, msg=name)
    initial = _method(0, stochastic=False).state_dict()
    assert not torch.equal(results[1]["head.weight"], initial["head.weight"])


class _ExplodingMethod(StandInMethod):
    """Returns a NaN loss from its ``explode_at``-th forward pass on."""

    def __init__(self, explode_at: int) -> None:
        super().__init__()
        self.explode_at = explode_at
        self.calls = 0

    def forward(self, batch):
        self.calls += 1
        output = super().forward(batch)
        if self.calls >= self.explode_at:
            return MethodOutput(output.loss * float("nan"), output.metrics)
        return output


def test_non_finite_loss_stops_naming_the_update_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    method = _ExplodingMethod(explode_at=5)
    with pytest.raises(NonFiniteLossError, match=r"update 5: expected a finite loss.*step_00000004"):
        train(
            method,
            InMemoryData(make_corpus(10), 2),
            fast_optim_config(),
            quiet_train_config(max_steps=8, checkpoint_every=2),
            tmp_path,
            RESOLVED,
        )
    assert find_latest(tmp_path).name == "step_00000004"
    weights = load_file(tmp_path / "step_00000004" / "model.safetensors")
    assert all(torch.isfinite(t.float()).all() for t in weights.values())
    assert all(math.isfinite(r["loss"]) for r in read_metrics(tmp_path))


def test_logging_checkpointing_and_result(tmp_path):
    method = _method(0)
    result = train(
        method,
        InMemoryData(make_corpus(8), 2),
        fast_optim_config(),
        quiet_train_config(max_steps=7, log_every=3, checkpoint_every=2, keep_last=2),
        tmp_path,
        RESOLVED,
    )
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [3, 6, 7]
    for record in records:
        assert {
            "step",
            "epoch",
            "lr",
            "loss",
            "pooled_std",
            "grad_norm",
            "audio_seconds_per_second",
            "elapsed_s",
        } <= record.keys()
        assert math.isfinite(record["loss"]) and record["audio_seconds_per_second"] > 0
    assert result.loss_history == [(r["step"], r["loss"]) for r in records]
    # the lr logged with update s is the one that update used: multiplier of step s - 1
    assert [r["lr"] for r in records] == pytest.approx(
        [1e-2 * warmup_cosine(s - 1, warmup=2, total=7, min_ratio=0.1) for s in (3, 6, 7)]
    )
    assert result.step == 7 and result.checkpoint == tmp_path / "step_00000007"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000006", "step_00000007"]
    assert (tmp_path / "config.yaml").is_file()
    assert int(method.updates_seen) == 7


def test_a_used_run_directory_needs_resume_and_a_finished_run_resumes_to_nothing(tmp_path):
    data = InMemoryData(make_corpus(8), 2)
    first = train(_method(0), data, fast_optim_config(), quiet_train_config(max_steps=2), tmp_path, RESOLVED)
    with pytest.raises(FileExistsError, match="resume"):
        train(_method(0), data, fast_optim_config(), quiet_train_config(max_steps=2), tmp_path, RESOLVED)
    built = data.loaders_built
    again = train(
        _method(1),
        data,
        fast_optim_config(),
        quiet_train_config(max_steps=2),
        tmp_path,
        RESOLVED,
        resume=True,
    )
    assert (again.step, again.loss, again.checkpoint) == (first.step, first.loss, first.checkpoint)
    assert data.loaders_built == built


def test_an_empty_epoch_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="expected at least one non-empty batch in epoch 0"):
        train(
            _method(0),
            InMemoryData(make_corpus(1), 2),
            fast_optim_config(),
            quiet_train_config(),
            tmp_path,
            RESOLVED,
        )


def test_optimizer_decays_matrices_but_not_biases_or_norm_gains():
    method = _method(0)
    groups = build_optimizer(method, fast_optim_config(weight_decay=0.05)).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.05 for p in g["params"]}
    assert id(method.head.weight) in decayed and id(method.encoder.conv.weight) in decayed
    for parameter in (method.head.bias, method.encoder.norm.weight, method.encoder.norm.bias):
        assert id(parameter) not in decayed
    assert sum(len(g["params"]) for g in groups) == len(list(method.parameters()))


def test_adamw_is_fused_when_every_parameter_is_on_a_gpu():
    assert uses_fused_adamw({torch.device("cuda", 0)})
    assert not uses_fused_adamw({torch.device("cuda", 0), torch.device("cpu")})
    assert not uses_fused_adamw({torch.device("cpu")})
    assert not build_optimizer(_method(0), fast_optim_config()).defaults["fused"]  # CPU: PyTorch's default


class _SignallingData(InMemoryData):
    """Sends this process SIGTERM while serving micro-batch ``signal_at`` (1-based)."""

    def __init__(self, *args, signal_at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.signal_at = signal_at
        self.served = 0

    def loader_for_epoch(self, epoch, start_batch):
        return self._signal_when_due(super().loader_for_epoch(epoch, start_batch))

    def _signal_when_due(self, batches):
        for batch in batches:
            self.served += 1
            if self.served == self.signal_at:
                os.kill(os.getpid(), signal.SIGTERM)
            yield batch


def test_sigterm_checkpoints_the_update_in_progress_and_resumes_exactly(tmp_path):
    corpus = make_corpus(10, seed=4)
    config = quiet_train_config(max_steps=5, grad_accum_steps=2)
    data, optim = InMemoryData(corpus, 2), fast_optim_config()
    straight = train(_method(0), data, optim, config, tmp_path / "a", RESOLVED)
    previous_handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterruptedError, match="after update 2 of 5"):
        train(
            _method(0),
            _SignallingData(corpus, 2, signal_at=3),
            fast_optim_config(),
            config,
            tmp_path / "b",
            RESOLVED,
        )
    assert signal.getsignal(signal.SIGTERM) is previous_handler
    assert find_latest(tmp_path / "b").name == "step_00000002"
    resumed = train(_method(1), data, optim, config, tmp_path / "b", RESOLVED, resume=True)
    expected = load_file(straight.checkpoint / "model.safetensors")
    found = load_file(resumed.checkpoint / "model.safetensors")
    assert all(torch.equal(found[name], tensor) for name, tensor in expected.items())


class _SecondBatchUnreadable(InMemoryData):
    """Batch 1 (0-based) of every epoch comes out empty, as when all its files are bad."""

    def loader_for_epoch(self, epoch, start_batch):
        batches = list(super().loader_for_epoch(epoch, 0))
        batches[1] = AudioBatch(torch.zeros(0, 0), torch.zeros(0, dtype=torch.long), ids=[])
        return iter(batches[start_batch:])


def test_empty_batches_are_skipped_but_count_in_the_resume_position(tmp_path):
    result = train(
        _method(0),
        _SecondBatchUnreadable(make_corpus(10), 2),
        fast_optim_config(),
        quiet_train_config(max_steps=4),
        tmp_path,
        RESOLVED,
    )
    saved = torch.load(result.checkpoint / "trainer_state.pt", weights_only=True)
    assert (saved["epoch"], saved["batch_in_epoch"]) == (0, 5)
    assert math.isfinite(result.loss)
