"""``speechssl export``: a checkpoint's encoder written in another format, one function per format.

:data:`EXPORT_FORMATS` maps a format name to its writer ``(encoder, output) -> output``;
:func:`export_checkpoint` resolves a run or checkpoint folder
(:func:`speechssl.models.checkpoint.resolve_checkpoint`), loads its encoder and calls the
writer. Every writer publishes its output atomically (:mod:`speechssl.storage`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from speechssl.interop.graph import save_onnx, save_program
from speechssl.models.checkpoint import load_encoder, resolve_checkpoint
from speechssl.models.encoder import SpeechEncoder

Exporter = Callable[[SpeechEncoder, Path], Path]

EXPORT_FORMATS: dict[str, Exporter] = {
    "onnx": save_onnx,
    "torch-export": save_program,
}


def export_checkpoint(run: str | Path, format: str, output: str | Path) -> Path:
    """Write the encoder of ``run`` (a run folder, its latest checkpoint, or a checkpoint folder)
    to ``output`` in ``format`` (a key of :data:`EXPORT_FORMATS`); returns ``output``."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format: expected one of {', '.join(sorted(EXPORT_FORMATS))}, found {format!r}")
    encoder = load_encoder(resolve_checkpoint(run))
    return EXPORT_FORMATS[format](encoder, Path(output))


__all__ = ["EXPORT_FORMATS", "Exporter", "export_checkpoint"]
