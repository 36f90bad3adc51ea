"""Checkpoints in and out: published models as speechssl runs, speechssl encoders in others' formats.

One mapping between transformers and speechssl (:mod:`speechssl.interop.huggingface`)
serves both directions; fairseq checkpoints are read into transformers' names first
(:mod:`speechssl.interop.fairseq`). :func:`import_model` writes a run that upstreams,
teachers and ``train.init_from`` read; :func:`export_checkpoint` writes a run's encoder in
one of :data:`EXPORT_FORMATS`: a transformers model directory, an ONNX model or a
``torch.export`` program (:mod:`speechssl.interop.graph`).
"""

from speechssl.interop.export import EXPORT_FORMATS, export_checkpoint
from speechssl.interop.runs import import_model, read_model, write_run

__all__ = ["EXPORT_FORMATS", "export_checkpoint", "import_model", "read_model", "write_run"]
