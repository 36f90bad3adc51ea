"""A speechssl encoder as a self-contained graph: a ``torch.export`` program or an ONNX model.

Both have the same signature, with a dynamic batch and a dynamic number of samples::

    inputs:  waveforms (batch, samples) float32 at the encoder's sample rate, zero-padded
             lengths   (batch,)          int64, valid samples per utterance
    outputs: hidden_state_0 … hidden_state_L  (batch, frames, dim) float32, zero on padded frames
             frame_lengths                     (batch,) int64, valid frames per utterance

the hidden states of :meth:`speechssl.models.SpeechEncoder.forward` (index 0 the context
network's input, ``L`` the last layer). The graph is traced on the encoder's padded path
(what an accelerator runs: :func:`speechssl.data.batch.host_lengths` reads nothing under
``torch.export``), so its valid frames equal the eager encoder's for any batch and lengths.
Like the encoder's forward, it does not check lengths: every utterance needs at least
``EncoderConfig.min_samples`` samples (the waveform CNN's receptive field), and the
padded batch at least :func:`min_padded_samples` (two frames).

The ONNX model is converted from the ``torch.export`` program by ``torch.onnx.export(...,
dynamo=True)``, which needs the ``onnx`` extra (``onnx``, ``onnxscript``; ``onnxruntime``
to run it). Encoders with a Transformer context and the waveform or filterbank front-end
export; recurrent contexts do not (``torch.export`` unrolls LSTM and GRU layers over the
traced number of frames), nor does the unit front-end.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from speechssl.models.encoder import SpeechEncoder
from speechssl.storage import atomic_write

INPUT_NAMES = ("waveforms", "lengths")
FRAME_LENGTHS = "frame_lengths"
EXPORTABLE_FRONTENDS = ("waveform", "fbank")


def output_names(num_layers: int) -> list[str]:
    """Names of the graph's outputs: ``hidden_state_0`` … ``hidden_state_{num_layers - 1}``, ``frame_lengths``."""
    return [f"hidden_state_{i}" for i in range(num_layers)] + [FRAME_LENGTHS]


def check_exportable(encoder: SpeechEncoder) -> None:
    """Raise ValueError unless ``encoder`` can become a graph with a dynamic number of samples."""
    config = encoder.config
    if config.frontend not in EXPORTABLE_FRONTENDS:
        raise ValueError(
            f"frontend: expected 'waveform' or 'fbank' to export a graph, found {config.frontend!r}"
        )
    if config.context != "transformer":
        raise ValueError(
            f"context: expected 'transformer' to export a graph with a dynamic length (torch.export "
            f"unrolls LSTM/GRU layers over the traced frames), found {config.context!r}"
        )


class EncoderGraph(nn.Module):
    """The traced function: ``(waveforms, lengths) -> (hidden_states, frame_lengths)``.

    A frozen, eval-mode view of ``encoder`` whose forward returns plain tensors (what a
    graph can output) instead of an :class:`~speechssl.models.output.EncoderOutput`.
    """

    def __init__(self, encoder: SpeechEncoder) -> None:
        super().__init__()
        check_exportable(encoder)
        self.encoder = encoder.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> EncoderGraph:
        """The graph is inference only: dropout and layer drop stay off."""
        return super().train(False)

    def forward(
        self, waveforms: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Every hidden state ``(batch, frames, dim)`` and the frame lengths ``(batch,)`` of
        ``waveforms (batch, samples)`` with ``lengths (batch,)`` valid samples."""
        output = self.encoder(waveforms, lengths)
        return tuple(output.hidden_states), output.lengths


def example_inputs(encoder: SpeechEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch to trace with: ``waveforms (2, sample_rate)`` (one second) and
    ``lengths (2,)``, the second utterance 3/4 as long (so the padded path is traced)."""
    samples = max(encoder.sample_rate, 4 * encoder.config.min_samples)
    generator = torch.Generator().manual_seed(0)
    waveforms = 0.1 * torch.randn(2, samples, generator=generator)  # (batch, samples)
    lengths = torch.tensor([samples, 3 * samples // 4])
    waveforms[1, lengths[1] :] = 0.0
    return waveforms, lengths


def min_padded_samples(encoder: SpeechEncoder) -> int:
    """Shortest padded batch the graph takes: two frames' worth (``min_samples + downsample_rate``;
    ``torch.export`` specialises a dimension of size 1, so the traced frames axis starts at 2)."""
    return encoder.config.min_samples + encoder.downsample_rate


def export_program(encoder: SpeechEncoder) -> torch.export.ExportedProgram:
    """The ``torch.export`` program of ``encoder`` (float32, CPU) with a dynamic batch and length.

    ``program.module()(waveforms, lengths)`` returns ``(hidden_states, frame_lengths)``
    (see the module docstring). ``encoder`` itself is left as it was (a copy is traced).
    """
    graph = EncoderGraph(copy.deepcopy(encoder).float().cpu())
    batch = torch.export.Dim("batch", min=1)
    samples = torch.export.Dim("samples", min=min_padded_samples(encoder))
    return torch.export.export(
        graph,
        example_inputs(encoder),
        dynamic_shapes={"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}},
        strict=False,
    )


def save_program(encoder: SpeechEncoder, path: str | Path) -> Path:
    """Write the ``torch.export`` program of ``encoder`` to ``path`` (a ``.pt2`` archive), atomically.

    Load it with ``torch.export.load(path).module()``.
    """
    program = export_program(encoder)

    def write(temporary: Path) -> None:
        with temporary.open("wb") as file:  # a buffer: torch.export.save wants ".pt2" names
            torch.export.save(program, file)

    return atomic_write(path, write)


def _import_onnx_exporter() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs the {error.name} package: pip install 'speechssl[onnx]'"
        ) from error


def save_onnx(encoder: SpeechEncoder, path: str | Path) -> Path:
    """Write ``encoder`` as one ONNX model file (weights inside, so at most 2 GB) to ``path``, atomically.

    Inputs and outputs are named as in the module docstring; batch and samples (and so
    frames) are dynamic axes.
    """
    check_exportable(encoder)
    _import_onnx_exporter()
    program = export_program(encoder)
    onnx_program = torch.onnx.export(
        program,
        input_names=list(INPUT_NAMES),
        output_names=output_names(encoder.num_layers),
        dynamo=True,
        verbose=False,
    )
    return atomic_write(path, lambda temporary: onnx_program.save(temporary, external_data=False))


__all__ = [
    "EXPORTABLE_FRONTENDS",
    "FRAME_LENGTHS",
    "INPUT_NAMES",
    "EncoderGraph",
    "check_exportable",
    "example_inputs",
    "export_program",
    "min_padded_samples",
    "output_names",
    "save_onnx",
    "save_program",
]
