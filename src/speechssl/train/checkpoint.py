"""Atomic, exactly resumable checkpoints of a pretraining run: writing them and resume state.

Reading (the layout, :func:`~speechssl.models.checkpoint.find_latest`,
:func:`~speechssl.models.checkpoint.load_encoder`) lives in :mod:`speechssl.models.checkpoint`.
A run directory holds one directory per checkpoint plus a ``latest`` pointer::

    run_dir/
      latest                      # text: "step_00001000"
      step_00001000/
        model.safetensors         # the method's full state dict (encoder, heads, teachers)
        trainer_state.pt          # optimizer, scheduler, step, epoch, batch, RNG states
        config.yaml               # the run's resolved config
        encoder.safetensors       # the encoder alone: what upstreams and probes load
        encoder.yaml              # its EncoderConfig
        checksums.json            # size and SHA-256 of each file above, written last

Every checkpoint is written into a temporary sibling directory, flushed to disk with
``fsync`` and renamed into place (:func:`speechssl.storage.publish_folder`); only then is
``latest`` replaced (:func:`speechssl.storage.atomic_write_text`). A crash at any point
leaves ``latest`` naming a complete checkpoint, and a directory named ``step_*`` is always
complete. A write that fails (a full disk included) removes its temporary folder; a full
disk is reported as an ``OSError`` naming the run folder and the space the checkpoint needs.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from speechssl.config import to_dict
from speechssl.models.checkpoint import (
    LATEST,
    RESUME_FILES,
    checkpoint_name,
    find_latest,
    list_checkpoints,
    read_safetensors,
    read_torch_file,
    verify_checkpoint,
)
from speechssl.models.encoder import SpeechEncoder
from speechssl.storage import (
    DamagedError,
    atomic_write_text,
    disk_full_error,
    is_disk_full,
    is_partial,
    publish_folder,
    staging_folder,
    verify_checksums,
    write_checksums,
)


@dataclass
class TrainerState:
    """Where training stands when a checkpoint is written.

    Attributes:
        step: optimizer updates done.
        epoch: current epoch (0-based).
        batch_in_epoch: micro-batches of ``epoch`` already consumed; resumption starts at
            this batch index.
        elapsed_s: training wall time so far, summed over resumptions.
        last_loss: loss of the last update.
        rng_states: one :func:`~speechssl.train.rng.capture_rng_state` snapshot per rank.
        log_window: the sums behind the next ``metrics.jsonl`` line so far (all ranks), so
            the first line after a resume equals the uninterrupted run's; empty in older
            checkpoints.
    """

    step: int
    epoch: int
    batch_in_epoch: int
    elapsed_s: float
    last_loss: float
    rng_states: list[dict[str, Any]]
    log_window: dict[str, Any] = dataclasses.field(default_factory=dict)


def save_checkpoint(
    run_dir: str | Path,
    method: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: TrainerState,
    config: Mapping[str, Any],
    keep_last: int | None = None,
) -> Path:
    """Atomically write checkpoint ``run_dir/step_{state.step:08d}``, point ``latest`` at it, prune.

    Args:
        run_dir: run directory (created if missing).
        method: the unwrapped pretext method; its ``encoder`` must carry the dataclass
            ``config`` it was built from.
        optimizer, scheduler: their state dicts are saved for exact resumption.
        state: step, position in the data and RNG snapshots.
        config: the run's resolved config as a plain mapping.
        keep_last: keep only this many most recent checkpoints; ``None`` keeps all.

    Returns:
        The checkpoint directory.
    """
    run_dir = Path(run_dir)
    trainer_state = {
        **dataclasses.asdict(state),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
    }
    final = _write_checkpoint(run_dir, state.step, method.state_dict(), method.encoder, config, trainer_state)
    if keep_last is not None:
        prune_checkpoints(run_dir, keep_last)
    return final


def save_weights(
    run_dir: str | Path,
    model_tensors: Mapping[str, torch.Tensor],
    encoder: SpeechEncoder,
    config: Mapping[str, Any],
    step: int = 0,
) -> Path:
    """Atomically write a checkpoint without trainer state (weights of a model made elsewhere,
    e.g. an imported one) as ``run_dir/step_{step:08d}`` and point ``latest`` at it.

    Upstreams, teachers and ``train.init_from`` read it like any checkpoint; it cannot be
    resumed (there is no optimizer state).

    Args:
        run_dir: run directory (created if missing).
        model_tensors: ``model.safetensors``: the encoder under ``encoder.`` and any method heads.
        encoder: the encoder, carrying the dataclass ``config`` it was built from.
        config: the resolved run config as a plain mapping (``config.yaml``).
        step: the step the checkpoint is named after.
    """
    return _write_checkpoint(Path(run_dir), step, model_tensors, encoder, config, None)


def _write_checkpoint(
    run_dir: Path,
    step: int,
    model_tensors: Mapping[str, torch.Tensor],
    encoder: SpeechEncoder,
    config: Mapping[str, Any],
    trainer_state: dict[str, Any] | None,
) -> Path:
    final = run_dir / checkpoint_name(step)
    model = _safetensors_ready(model_tensors)
    encoder_tensors = _safetensors_ready(encoder.state_dict())
    needed = _tensor_bytes(model) + _tensor_bytes(encoder_tensors) + _tensor_bytes(trainer_state) + (64 << 10)
    _keep_damaged_aside(final)
    try:
        with staging_folder(final) as staging:
            save_file(model, staging / "model.safetensors")
            save_file(encoder_tensors, staging / "encoder.safetensors")
            _dump_yaml(to_dict(encoder.config), staging / "encoder.yaml")
            _dump_yaml(dict(config), staging / "config.yaml")
            if trainer_state is not None:
                torch.save(trainer_state, staging / "trainer_state.pt")
            write_checksums(staging)
            publish_folder(staging, final)
    except Exception as error:
        if is_disk_full(error, run_dir, needed):
            raise disk_full_error(run_dir, needed, f"checkpoint {final.name}") from error
        raise
    atomic_write_text(run_dir / LATEST, final.name + "\n")
    return final


def _tensor_bytes(value: Any) -> int:
    """Bytes of every tensor in ``value`` (nested mappings and sequences): the size of a checkpoint file."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Mapping):
        return sum(_tensor_bytes(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(item) for item in value)
    return 0


def _keep_damaged_aside(final: Path) -> None:
    """Rename an existing checkpoint folder ``final`` that fails verification to
    ``damaged-<name>`` (kept for inspection) instead of letting the new write delete it."""
    if not final.is_dir():
        return
    try:
        if not verify_checksums(final):
            verify_checkpoint(final)
    except DamagedError:
        aside = final.with_name(f"damaged-{final.name}")
        suffix = 1
        while aside.exists():
            aside, suffix = final.with_name(f"damaged-{final.name}.{suffix}"), suffix + 1
        final.rename(aside)


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints (never the one ``latest`` names).

    Also removes temporary files and directories left by writes that crashed. Returns what
    was deleted.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last: expected an integer >= 1, found {keep_last}")
    run_dir = Path(run_dir)
    latest = find_latest(run_dir)
    doomed = [p for p in list_checkpoints(run_dir)[:-keep_last] if p != latest]
    doomed += [p for p in run_dir.iterdir() if is_partial(p)]
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return doomed


def load_checkpoint(
    path: str | Path,
    method: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> TrainerState:
    """Load checkpoint directory ``path`` into ``method`` (and optimizer/scheduler if given).

    Weights are loaded strictly: a missing or unexpected key raises with the key's name.
    RNG states are returned in the :class:`TrainerState`, not applied (see
    :func:`speechssl.train.rng.restore_rng_state`).

    Raises:
        DamagedError: a file is missing, truncated or differs from its checksum (naming it).
    """
    path = Path(path)
    if not (path / "trainer_state.pt").is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint directory (expected trainer_state.pt in it)")
    verify_checkpoint(path, RESUME_FILES)
    method.load_state_dict(read_safetensors(path / "model.safetensors"), strict=True)
    saved = read_torch_file(path / "trainer_state.pt")
    if optimizer is not None:
        optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    return TrainerState(
        **{f.name: saved[f.name] for f in dataclasses.fields(TrainerState) if f.name in saved}
    )


def _safetensors_ready(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors that share no storage, as :func:`safetensors.torch.save_file` requires.

    Tied weights (two names, one storage) and views are cloned, so each name is saved in
    full and loading restores every name.
    """
    ready: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        storage = tensor.untyped_storage()
        shares = storage.data_ptr() in seen or storage.nbytes() != tensor.numel() * tensor.element_size()
        seen.add(storage.data_ptr())
        if shares or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        ready[name] = tensor
    return ready


def _dump_yaml(data: Mapping[str, Any], path: Path) -> None:
    path.write_text(yaml.safe_dump(dict(data), sort_keys=False))
