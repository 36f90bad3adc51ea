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
"""

from __future__ import annotations

import re
from pathlib import Path

from safetensors.torch import load_file

from speechssl.config import from_dict, load_yaml
from speechssl.models.encoder import EncoderConfig, SpeechEncoder

LATEST = "latest"
STEP_DIR = re.compile(r"^step_(\d{8,})$")


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
    """The checkpoint ``run_dir/latest`` names, else the highest ``step_*`` directory, else ``None``."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    if pointer.is_file():
        named = run_dir / pointer.read_text().strip()
        if named.is_dir():
            return named
    steps = list_checkpoints(run_dir)
    return steps[-1] if steps else None


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
    config = from_dict(EncoderConfig, load_yaml(checkpoint_dir / "encoder.yaml"), where="encoder")
    encoder = SpeechEncoder.from_config(config)
    encoder.load_state_dict(load_file(checkpoint_dir / "encoder.safetensors", device="cpu"), strict=True)
    return encoder


__all__ = [
    "LATEST",
    "checkpoint_name",
    "find_latest",
    "list_checkpoints",
    "load_encoder",
    "resolve_checkpoint",
]
