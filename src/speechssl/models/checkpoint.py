"""Reading pretraining checkpoints: the run-directory layout, the latest checkpoint, its encoder.

A run directory holds one directory per checkpoint plus a ``latest`` pointer (written by
:func:`speechssl.train.checkpoint.save_checkpoint`)::

    run_dir/
      latest                      # text: "step_00001000"
      step_00001000/
        model.safetensors         # the method's full state dict
        config.yaml               # the run's resolved config
        encoder.safetensors       # the encoder alone
        encoder.yaml              # its EncoderConfig
        ...

Everything that only reads checkpoints (upstreams, unit tokenizers of a teacher, studies)
uses this module; the writer and resume state live in :mod:`speechssl.train.checkpoint`.

Integrity: a checkpoint records the size and SHA-256 of each of its files in
``checksums.json`` (:func:`speechssl.storage.write_checksums`), and every read checks the
files it uses first (:func:`verify_checkpoint`). A checkpoint written before checksums
existed is checked as far as it can be: its files exist, safetensors headers parse, and
``trainer_state.pt`` is unpickled with ``weights_only=True``. Every damaged or unreadable file
becomes a :class:`~speechssl.storage.DamagedError` naming the file.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from speechssl.config import from_dict, load_yaml
from speechssl.models.encoder import EncoderConfig, SpeechEncoder
from speechssl.storage import DamagedError, verify_checksums

LATEST = "latest"
STEP_DIR = re.compile(r"^step_(\d{8,})$")
ENCODER_FILES = ("encoder.yaml", "encoder.safetensors")
WEIGHT_FILES = ("config.yaml", "model.safetensors", *ENCODER_FILES)
RESUME_FILES = (*WEIGHT_FILES, "trainer_state.pt")


def verify_checkpoint(checkpoint_dir: str | Path, names: Sequence[str] = WEIGHT_FILES) -> None:
    """Check files ``names`` of a checkpoint against its ``checksums.json``; without one (a
    checkpoint written before checksums existed), check that they exist and are not empty.

    Raises:
        DamagedError: naming the first missing, truncated or altered file.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise DamagedError(f"{checkpoint_dir}: expected a checkpoint folder, found none")
    if verify_checksums(checkpoint_dir, names):
        return
    for name in names:
        path = checkpoint_dir / name
        if not path.is_file():
            raise DamagedError(f"{path}: missing (expected in every checkpoint folder)")
        if path.stat().st_size == 0:
            raise DamagedError(f"{path}: empty file")


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of safetensors file ``path`` on the CPU.

    Raises:
        DamagedError: naming ``path``, when it is missing or not a complete safetensors file.
    """
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as error:
        raise DamagedError(f"{path}: unreadable safetensors file ({error})") from None


def read_torch_file(
    path: str | Path, allowed: Sequence[Any] = (), advice: str = "only tensors and plain containers are read"
) -> Any:
    """The content of a ``torch.save`` file, unpickled with ``weights_only=True``: only tensors,
    containers and the classes ``allowed`` are rebuilt, so the file cannot run code. ``advice``
    ends the message about a class outside them.

    Raises:
        DamagedError: naming ``path``, when it is missing, truncated, not a torch file, or holds
            any other class (the message names it; pickled code is never run).
    """
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = found[1] if found else "an object outside tensors and plain containers"
        raise DamagedError(
            f"{path}: holds {what}, which speechssl does not unpickle (it could run arbitrary code); {advice}"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        reason = "empty file" if isinstance(error, EOFError) else "truncated or not a torch.save file"
        if isinstance(error, FileNotFoundError):
            reason = "missing"
        raise DamagedError(f"{path}: unreadable ({reason})") from None


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint after ``step`` updates: ``step_00001000``."""
    return f"step_{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Every complete checkpoint directory of ``run_dir``, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def find_latest(run_dir: str | Path) -> Path | None:
    """The checkpoint ``run_dir/latest`` names, else the highest ``step_*`` directory, else ``None``.

    Raises:
        DamagedError: ``latest`` names something other than a ``step_*`` folder of ``run_dir``
            (a path elsewhere is never followed).
    """
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    if pointer.is_file():
        name = pointer.read_text(errors="replace").strip()
        named = run_dir / name
        if not STEP_DIR.match(name) or (named.exists() and named.resolve().parent != run_dir.resolve()):
            raise DamagedError(
                f"{pointer}: expected the name of a checkpoint folder inside {run_dir} (step_NNNNNNNN), "
                f"found {name[:200]!r}"
            )
        if named.is_dir():
            return named
    steps = list_checkpoints(run_dir)
    return steps[-1] if steps else None


def intact_checkpoints(
    run_dir: str | Path, names: Sequence[str] = RESUME_FILES
) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint of ``run_dir`` whose files ``names`` verify, and those skipped.

    Candidates, in order: the one ``latest`` names, then every ``step_*`` folder, newest first.
    Nothing is deleted.

    Returns:
        ``(checkpoint or None, [(skipped checkpoint, why), ...])``.
    """
    run_dir = Path(run_dir)
    latest = find_latest(run_dir)
    candidates = ([latest] if latest is not None else []) + [
        p for p in reversed(list_checkpoints(run_dir)) if p != latest
    ]
    skipped = []
    for candidate in candidates:
        try:
            verify_checkpoint(candidate, names)
            if "trainer_state.pt" in names and not (candidate / "checksums.json").is_file():
                read_torch_file(candidate / "trainer_state.pt")  # written before checksums: parse it
            return candidate, skipped
        except DamagedError as error:
            skipped.append((candidate, str(error)))
    return None, skipped


def resolve_checkpoint(path: str | Path) -> Path:
    """``path`` if it is a checkpoint directory (``config.yaml`` + ``model.safetensors``), else its latest.

    Raises:
        FileNotFoundError: naming ``path``, when it is neither.
    """
    path = Path(path)
    if (path / "config.yaml").is_file() and (path / "model.safetensors").is_file():
        return path
    latest = find_latest(path)
    if latest is None:
        raise FileNotFoundError(
            f"{path}: expected a checkpoint directory (config.yaml, model.safetensors) or a run directory "
            "with checkpoints, found neither"
        )
    return latest


def load_encoder(checkpoint_dir: str | Path) -> SpeechEncoder:
    """The pretrained encoder of a checkpoint, built from ``encoder.yaml`` with its weights loaded.

    This is what upstreams and probes use; it needs neither the method nor its config.
    """
    checkpoint_dir = Path(checkpoint_dir)
    verify_checkpoint(checkpoint_dir, ENCODER_FILES)
    config = from_dict(EncoderConfig, load_yaml(checkpoint_dir / "encoder.yaml"), where="encoder")
    encoder = SpeechEncoder.from_config(config)
    encoder.load_state_dict(read_safetensors(checkpoint_dir / "encoder.safetensors"), strict=True)
    return encoder


__all__ = [
    "ENCODER_FILES",
    "LATEST",
    "RESUME_FILES",
    "WEIGHT_FILES",
    "checkpoint_name",
    "find_latest",
    "intact_checkpoints",
    "list_checkpoints",
    "load_encoder",
    "read_safetensors",
    "read_torch_file",
    "resolve_checkpoint",
    "verify_checkpoint",
]
