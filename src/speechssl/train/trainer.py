"""The one training loop shared by every pretext method.

The trainer sees a method only through :class:`~speechssl.methods.base.PretextMethod`:
``forward(batch) -> MethodOutput(loss, metrics)``, ``on_step_end(step, max_steps)`` and
``.encoder``. Data arrive through :class:`PretrainData`. Distributed data parallelism
(Li et al. 2020, "PyTorch Distributed") is used only when a process group of more than one
rank exists; everything also runs in a single CPU process.

Exactness of resumption: a run of N updates and a run stopped after k updates and resumed
to N end with bit-identical weights on CPU. A checkpoint stores the optimizer and scheduler,
the position in the data (epoch and micro-batch index), every rank's RNG states and the
sums behind the next log line. With two or more CPU threads (or on a GPU) some kernels are
not bit-reproducible run to run; ``train.deterministic`` makes every method's resumption
exact there too (see :func:`~speechssl.train.rng.deterministic_algorithms`).

A stalled or dead rank of a distributed run makes the others' next collective fail after
``train.collective_timeout_s``; the trainer names this rank and the collective
(:class:`~speechssl.distributed.CollectiveTimeoutError`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from speechssl import distributed
from speechssl.data.batch import AudioBatch
from speechssl.models.checkpoint import checkpoint_name, find_latest, intact_checkpoints
from speechssl.storage import DamagedError
from speechssl.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from speechssl.train.config import OptimConfig, TrainConfig
from speechssl.train.logging import MetricsLogger
from speechssl.train.optimizer import parameter_groups
from speechssl.train.rng import (
    capture_rng_state,
    deterministic_algorithms,
    restore_rng_state,
    seed_everything,
)
from speechssl.train.schedule import build_scheduler

if TYPE_CHECKING:
    from speechssl.methods.base import MethodOutput, PretextMethod


class PretrainData(Protocol):
    """What the trainer needs from a corpus: resumable epochs of batches.

    Attributes:
        sample_rate: samples per second of every waveform (to count audio seconds).
    """

    sample_rate: int

    def loader_for_epoch(self, epoch: int, start_batch: int) -> Iterable[AudioBatch]:
        """This rank's batches of ``epoch`` (0-based), skipping its first ``start_batch``.

        Must be deterministic given ``(epoch, start_batch)``: batch ``start_batch + i`` of a
        resumed epoch is batch ``start_batch + i`` of the uninterrupted one.
        """
        ...


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        step: optimizer updates done.
        loss: loss of the last update (averaged over ranks).
        run_dir: the run directory.
        checkpoint: the final checkpoint directory.
        loss_history: ``(step, loss)`` of every line logged by this call.
    """

    step: int
    loss: float
    run_dir: Path
    checkpoint: Path
    loss_history: list[tuple[int, float]] = field(default_factory=list)


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; training stopped before the update."""


class TrainingInterruptedError(RuntimeError):
    """SIGTERM or SIGINT arrived: training stopped after checkpointing the update in progress."""


def train(
    method: PretextMethod,
    data: PretrainData,
    optim_config: OptimConfig,
    train_config: TrainConfig,
    run_dir: str | Path,
    resolved_config: dict[str, Any],
    resume: bool = False,
) -> TrainResult:
    """Pretrain ``method`` on ``data`` for ``train_config.max_steps`` optimizer updates.

    Each update sums the gradients of ``grad_accum_steps`` micro-batches (each loss divided
    by ``grad_accum_steps``, so an update equals one on the concatenated batch for methods
    whose loss is a batch mean), clips their global norm, steps AdamW and the warmup-cosine
    schedule and calls ``method.on_step_end``. Every ``log_every`` updates one line goes to
    ``run_dir/metrics.jsonl``; every ``checkpoint_every`` updates and at the end a checkpoint
    is written (see :mod:`speechssl.train.checkpoint`). A first SIGTERM or SIGINT (preemption,
    Ctrl-C) lets the update in progress finish, writes its checkpoint and raises
    :class:`TrainingInterruptedError`; a second one acts as usual.

    Args:
        method: the pretext method, built on any device; it is moved to the training device.
        data: this rank's batches (see :class:`PretrainData`).
        optim_config: optimizer and schedule.
        train_config: loop length, accumulation, logging, checkpoints, device, precision.
        run_dir: where checkpoints and logs go.
        resolved_config: the run's full config as a plain mapping, saved with each checkpoint.
        resume: continue from ``run_dir``'s latest checkpoint (a fresh start if it has none).

    Raises:
        FileExistsError: ``run_dir`` already holds checkpoints and ``resume`` is false.
        NonFiniteLossError: the loss or gradient norm of an update is not finite; names the
            update, and the last good checkpoint stays ``latest``.
        TrainingInterruptedError: a stop signal arrived; the checkpoint of the last update is saved.
    """
    run_dir = Path(run_dir)
    max_steps, accum = train_config.max_steps, train_config.grad_accum_steps

    # Setup: device and precision, seeds (one stream per rank), run directory.
    device = resolve_device(train_config.device)
    autocast_dtype = resolve_autocast_dtype(train_config.precision, device)
    seed_everything(train_config.seed + distributed.rank())
    method.to(device).train()
    latest = find_latest(run_dir)
    if latest is not None and not resume:
        raise FileExistsError(
            f"run directory {run_dir} already holds checkpoint {latest.name}: expected an empty run "
            "directory, or resume=True (speechssl pretrain --resume) to continue it"
        )
    if distributed.is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved_config, sort_keys=False))

    # Optimizer (AdamW, no decay on biases and norm gains) and warmup-cosine schedule.
    optimizer = build_optimizer(method, optim_config)
    scheduler = build_scheduler(optimizer, optim_config.warmup_steps, max_steps, optim_config.min_lr_ratio)
    trainable = [p for p in method.parameters() if p.requires_grad]

    # Resume: weights, optimizer, scheduler and data position now; RNG states once the first
    # loader is built (see _micro_batches).
    state = TrainerState(step=0, epoch=0, batch_in_epoch=0, elapsed_s=0.0, last_loss=math.nan, rng_states=[])
    if resume and latest is not None:
        latest = resumable_checkpoint(run_dir)
        state = load_checkpoint(latest, method, optimizer, scheduler)
    last_saved_step = state.step if resume and latest is not None else None
    model = wrap_distributed(method, device, train_config.find_unused_parameters)
    rng_state = _rng_state_of_this_rank(state.rng_states)
    batches = _micro_batches(data, state.epoch, state.batch_in_epoch, rng_state)

    loss_history: list[tuple[int, float]] = []
    resumed_elapsed, started = state.elapsed_s, time.perf_counter()
    with (
        MetricsLogger(run_dir, distributed.is_main_process(), max_steps, state.step) as logger,
        _StopSignals() as stop_signals,
        deterministic_algorithms(train_config.deterministic),
    ):
        logger.drop_after(state.step)
        window = _Window.restore(state.log_window if distributed.is_main_process() else {}, device)
        step_loss = torch.zeros((), device=device)
        micro = 0
        while state.step < max_steps:
            # Forward and backward of one micro-batch; DDP all-reduces gradients only on the last one.
            epoch, batch_in_epoch, batch = next(batches)
            micro += 1
            window.audio_seconds += float(batch.lengths.sum()) / data.sample_rate
            with (
                distributed.naming_stalls(
                    f"the forward/backward pass (gradient all-reduce) of update {state.step + 1}"
                ),
                _sync_gradients_if(model, micro == accum),
            ):
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    output: MethodOutput = model(batch.to(device, non_blocking=True))
                (output.loss / accum).backward()
            window.add(output.loss, output.metrics)
            step_loss += output.loss.detach().float() / accum
            if micro < accum:
                continue

            # Update: check finiteness, clip, step optimizer and schedule, let the method react.
            with distributed.naming_stalls(f"the loss all-reduce of update {state.step + 1}"):
                loss, grad_norm, stop = _agree_on_update(
                    step_loss, trainable, optim_config.clip_grad_norm, stop_signals.received
                )
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                raise NonFiniteLossError(
                    f"update {state.step + 1}: expected a finite loss and gradient norm, found loss={loss}, "
                    f"grad_norm={grad_norm}; stopped before applying it. Last good checkpoint: "
                    f"{find_latest(run_dir) or 'none'} (lower optim.lr or set optim.clip_grad_norm)"
                )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            method.on_step_end(state.step + 1, max_steps)
            state.step, state.last_loss = state.step + 1, loss
            state.epoch, state.batch_in_epoch = epoch, batch_in_epoch
            state.elapsed_s = resumed_elapsed + time.perf_counter() - started
            step_loss.zero_()
            micro = 0
            logger.advance()

            # Periodic logging and checkpointing; on a stop signal, checkpoint now and stop.
            if state.step % train_config.log_every == 0 or state.step == max_steps:
                with distributed.naming_stalls(f"the metrics all-reduce of update {state.step}"):
                    record = _log_record(window, state, lr, grad_norm, device)
                logger.log(record)
                loss_history.append((state.step, record["loss"]))
                window = _Window.restore({}, device)
            if state.step % train_config.checkpoint_every == 0 or stop:
                _save(
                    run_dir,
                    method,
                    optimizer,
                    scheduler,
                    state,
                    resolved_config,
                    train_config.keep_last,
                    window,
                )
                last_saved_step = state.step
            if stop and state.step < max_steps:
                raise TrainingInterruptedError(
                    f"stop signal received: stopped after update {state.step} of {max_steps} and saved "
                    f"{run_dir / checkpoint_name(state.step)}; continue with resume=True (--resume)"
                )

    # Final checkpoint (unless the last update was just saved, or a finished run was resumed).
    if last_saved_step != state.step:
        _save(run_dir, method, optimizer, scheduler, state, resolved_config, train_config.keep_last, window)
    final_checkpoint = run_dir / checkpoint_name(state.step)
    return TrainResult(state.step, state.last_loss, run_dir, final_checkpoint, loss_history)


def resumable_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of ``run_dir`` whose files verify; each newer one that does not is
    named in a warning with the reason and left in place.

    Raises:
        DamagedError: no checkpoint of ``run_dir`` verifies (naming each and why).
    """
    checkpoint, skipped = intact_checkpoints(run_dir)
    for path, reason in skipped:
        warnings.warn(f"resume: skipped checkpoint {path.name} ({reason}); nothing was deleted", stacklevel=3)
    if checkpoint is None:
        raise DamagedError(
            f"resume: no intact checkpoint in {run_dir}: " + "; ".join(reason for _, reason in skipped)
        )
    return checkpoint


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (this rank's GPU, as selected by ``setup_from_env``) or ``auto``.

    Raises:
        ValueError: ``cuda`` was asked for and none is available.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: expected an available CUDA device for 'cuda', found none")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def resolve_autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for ``train.precision``: bf16 for ``bf16`` and for ``auto`` on a bf16-capable
    GPU, ``None`` (fp32) otherwise.

    Raises:
        ValueError: ``bf16`` was asked for on a GPU without bf16 support.
    """
    if precision == "fp32":
        return None
    bf16_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16":
        if device.type == "cuda" and not bf16_gpu:
            raise ValueError(f"train.precision: expected a GPU with bf16 support for 'bf16', found {device}")
        return torch.bfloat16
    return torch.bfloat16 if bf16_gpu else None


def build_optimizer(method: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019) over the trainable parameters of ``method``.

    Weight decay follows :func:`~speechssl.train.optimizer.parameter_groups`: matrices and
    kernels are decayed, biases, norm gains and other 0-/1-d parameters are not. When every
    trainable parameter is on a GPU the fused kernel updates them all in one launch (no
    host synchronisation per parameter).

    Raises:
        ValueError: ``method`` has no trainable parameter.
    """
    groups = parameter_groups(method, config.weight_decay)
    devices = {parameter.device for group in groups for parameter in group["params"]}
    fused = True if uses_fused_adamw(devices) else None  # None: PyTorch's default (foreach where it can)
    return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps, fused=fused)


def uses_fused_adamw(devices: set[torch.device]) -> bool:
    """Whether :func:`build_optimizer` uses the fused AdamW kernel for parameters on ``devices``: all on CUDA."""
    return bool(devices) and all(device.type == "cuda" for device in devices)


def wrap_distributed(method: nn.Module, device: torch.device, find_unused_parameters: bool) -> nn.Module:
    """``method`` in :class:`DistributedDataParallel` when more than one rank trains, else itself.

    On GPUs, batch norms (e.g. in projector heads) become :class:`~torch.nn.SyncBatchNorm`
    so their statistics are those of the global batch, as in the reference implementations
    of Barlow Twins and VICReg; the conversion keeps the parameter objects, so the optimizer
    is unaffected. PyTorch's SyncBatchNorm has no CPU kernel: under gloo each rank
    normalises with its own batch statistics.
    """
    if distributed.world_size() <= 1:
        return method
    if device.type == "cuda":
        for name, child in method.named_children():
            setattr(method, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    return DistributedDataParallel(
        method,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused_parameters,
    )


@dataclass
class _Window:
    """Sums over the micro-batches since the last log line."""

    started: float
    micro_batches: int = 0
    audio_seconds: float = 0.0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def add(self, loss: torch.Tensor, metrics: dict[str, float | torch.Tensor]) -> None:
        """Add one micro-batch's loss and metrics (kept as tensors: no device sync per batch)."""
        self.micro_batches += 1
        for name, value in {"loss": loss, **metrics}.items():
            value = torch.as_tensor(value).detach().double()
            self.sums[name] = self.sums[name] + value if name in self.sums else value

    def totals(self, device: torch.device) -> tuple[list[str], list[float], float, int]:
        """Names, sums, audio seconds and micro-batches of every rank's window (one all-reduce)."""
        names = list(self.sums)
        counts = (self.audio_seconds, self.micro_batches)
        totals = torch.stack(
            [self.sums[name].to(device) for name in names]
            + [torch.tensor(count, dtype=torch.float64, device=device) for count in counts]
        )
        if distributed.is_distributed():
            dist.all_reduce(totals)
        *sums, audio_seconds, micro_batches = totals.tolist()
        return names, sums, audio_seconds, round(micro_batches)

    def snapshot(self, device: torch.device) -> dict[str, Any]:
        """Every rank's window summed, for :attr:`TrainerState.log_window` (float64 sums: exact)."""
        names, sums, audio_seconds, micro_batches = self.totals(device)
        return {
            "sums": dict(zip(names, sums, strict=True)),
            "audio_seconds": audio_seconds,
            "micro_batches": micro_batches,
            "seconds": time.perf_counter() - self.started,
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any], device: torch.device) -> _Window:
        """A window continuing ``snapshot`` (empty: a fresh window starting now)."""
        return cls(
            started=time.perf_counter() - snapshot.get("seconds", 0.0),
            micro_batches=snapshot.get("micro_batches", 0),
            audio_seconds=snapshot.get("audio_seconds", 0.0),
            sums={
                name: torch.tensor(value, dtype=torch.float64, device=device)
                for name, value in snapshot.get("sums", {}).items()
            },
        )


def _log_record(
    window: _Window, state: TrainerState, lr: float, grad_norm: float, device: torch.device
) -> dict[str, Any]:
    """One ``metrics.jsonl`` record: means over the window's micro-batches of every rank, the
    learning rate and gradient norm of the last update, and audio seconds per wall-clock second."""
    names, sums, audio_seconds, micro_batches = window.totals(device)
    means = {name: total / micro_batches for name, total in zip(names, sums, strict=True)}
    return {
        "step": state.step,
        "epoch": state.epoch,
        "lr": lr,
        **means,
        "grad_norm": grad_norm,
        "audio_seconds_per_second": audio_seconds / max(time.perf_counter() - window.started, 1e-9),
        "elapsed_s": state.elapsed_s,
    }


def _save(
    run_dir: Path,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
    config: dict[str, Any],
    keep_last: int,
    window: _Window,
) -> None:
    """Gather every rank's RNG states and log window, write the checkpoint on the main process, wait for it."""
    with distributed.naming_stalls(f"the checkpoint of update {state.step} (RNG and log gather, barrier)"):
        state.log_window = window.snapshot(next(method.parameters()).device)
        state.rng_states = _gather_rng_states()
        if distributed.is_main_process():
            save_checkpoint(run_dir, method, optimizer, scheduler, state, config, keep_last=keep_last)
        distributed.barrier()


def _gather_rng_states() -> list[dict[str, Any]]:
    """This process's RNG snapshot, or every rank's (in rank order) in a distributed run."""
    snapshot = capture_rng_state()
    if not distributed.is_distributed():
        return [snapshot]
    gathered: list[Any] = [None] * distributed.world_size()
    dist.all_gather_object(gathered, snapshot)
    return gathered


def _rng_state_of_this_rank(states: list[dict[str, Any]]) -> dict[str, Any] | None:
    """This rank's snapshot from a checkpoint; ``None`` (keep the fresh seed) when there is none."""
    if not states:
        return None
    if len(states) != distributed.world_size():
        warnings.warn(
            f"checkpoint: expected RNG states of {distributed.world_size()} ranks, found {len(states)}; "
            "random draws restart from train.seed, so this resumption is not bit-exact",
            stacklevel=2,
        )
        return None
    return states[distributed.rank()]


def _micro_batches(
    data: PretrainData, epoch: int, start_batch: int, rng_state: dict[str, Any] | None
) -> Iterator[tuple[int, int, AudioBatch]]:
    """Yield ``(epoch, batches consumed in that epoch, batch)`` forever, from ``start_batch`` of ``epoch``.

    ``rng_state`` (a checkpoint's snapshot) is restored right after the first loader is built:
    building a loader may draw from the global RNG (a DataLoader draws its workers' base
    seed), and in the uninterrupted run that draw came before the snapshot was taken.

    Empty batches (every file unreadable, with ``data.skip_bad``) are counted in the position
    but skipped in a single process; under data parallelism all ranks must run every batch,
    so one is an error there.

    Raises:
        ValueError: an epoch yields no non-empty batch, or a rank of a distributed run gets
            an empty batch.
    """
    while True:
        loader = iter(data.loader_for_epoch(epoch, start_batch))
        if rng_state is not None:
            restore_rng_state(rng_state)
            rng_state = None
        position, yielded = start_batch, 0
        for batch in loader:
            position += 1
            if len(batch) == 0 and distributed.is_distributed():
                raise ValueError(
                    f"data: batch {position} of epoch {epoch} on rank {distributed.rank()} has no readable "
                    "audio; expected every batch non-empty under data parallelism (remove the bad files "
                    "listed by `speechssl data validate` from the manifest)"
                )
            if len(batch):
                yielded += 1
                yield epoch, position, batch
        if start_batch == 0 and yielded == 0:
            raise ValueError(
                f"data: expected at least one non-empty batch in epoch {epoch}, found none "
                "(empty corpus, unreadable files, or every utterance longer than the batch budget?)"
            )
        epoch, start_batch = epoch + 1, 0


def _sync_gradients_if(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's ``no_sync()`` for micro-batches whose gradients are only accumulated locally."""
    if sync or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def _agree_on_update(
    step_loss: torch.Tensor, parameters: list[nn.Parameter], max_norm: float | None, stop_received: bool
) -> tuple[float, float, bool]:
    """What every rank must agree on before an update, in one all-reduce and one device sync.

    Returns:
        The update's loss averaged over ranks (so all ranks see a non-finite loss together),
        the global gradient norm (after clipping the gradients to ``max_norm`` if set) and
        whether any rank received a stop signal.
    """
    grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm is not None else math.inf)
    summed = torch.stack([step_loss.float(), step_loss.new_tensor(float(stop_received))])
    if distributed.is_distributed():
        dist.all_reduce(summed)
    loss_sum, stops, norm = torch.cat([summed, grad_norm.reshape(1).to(summed)]).tolist()
    return loss_sum / distributed.world_size(), norm, stops > 0


class _StopSignals:
    """Turns the first SIGTERM or SIGINT into a request to stop after the current update.

    The handlers are installed only in the main thread (Python's restriction) and the
    previous ones come back after the first signal, so a second one acts as usual.
    """

    signals = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True
        self._restore()

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def __exit__(self, *exc_info: object) -> None:
        self._restore()
