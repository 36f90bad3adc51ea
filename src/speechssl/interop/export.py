"""``speechssl export``: a checkpoint's encoder written in another format, one function per format.

:data:`EXPORT_FORMATS` maps a format name to its writer ``(checkpoint, output) -> output``;
:func:`export_checkpoint` resolves a run or checkpoint folder
(:func:`speechssl.models.checkpoint.resolve_checkpoint`) and calls the writer. Every writer
publishes its output atomically (:mod:`speechssl.storage`). A new format is one function
and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from speechssl.config import load_yaml
from speechssl.interop.graph import save_onnx, save_program
from speechssl.interop.hf_files import write_hf_model
from speechssl.interop.huggingface import hf_model_type
from speechssl.models.checkpoint import load_encoder, resolve_checkpoint

Exporter = Callable[[Path, Path], Path]


def export_hf(checkpoint: Path, output: Path) -> Path:
    """The encoder of ``checkpoint`` as the transformers model of its layout
    (:func:`~speechssl.interop.huggingface.hf_model_type`; ``HubertModel`` for a HuBERT run)."""
    method = (load_yaml(checkpoint / "config.yaml") or {}).get("method", "")
    encoder = load_encoder(checkpoint)
    return write_hf_model(encoder, hf_model_type(encoder.config, method), output)


def export_onnx(checkpoint: Path, output: Path) -> Path:
    """The encoder of ``checkpoint`` as an ONNX model with dynamic batch and length (:func:`~speechssl.interop.graph.save_onnx`)."""
    return save_onnx(load_encoder(checkpoint), output)


def export_program(checkpoint: Path, output: Path) -> Path:
    """The encoder of ``checkpoint`` as a ``torch.export`` program (:func:`~speechssl.interop.graph.save_program`)."""
    return save_program(load_encoder(checkpoint), output)


EXPORT_FORMATS: dict[str, Exporter] = {"hf": export_hf, "onnx": export_onnx, "torch-export": export_program}


def export_checkpoint(run: str | Path, format: str, output: str | Path) -> Path:
    """Write the encoder of ``run`` (a run folder, its latest checkpoint, or a checkpoint folder)
    to ``output`` in ``format`` (a key of :data:`EXPORT_FORMATS`); returns the written path."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format: expected one of {', '.join(sorted(EXPORT_FORMATS))}, found {format!r}")
    return EXPORT_FORMATS[format](resolve_checkpoint(run), Path(output))


__all__ = ["EXPORT_FORMATS", "Exporter", "export_checkpoint", "export_hf", "export_onnx", "export_program"]
