"""Imported models as speechssl runs, and runs as files other toolkits load.

:func:`import_model` converts a published model (``hf:<dir>``, or a fairseq ``.pt`` file)
into a run directory holding one weights-only checkpoint
(:func:`speechssl.train.checkpoint.save_weights`), which every consumer of a run reads:
``build_upstream(RUN)``, a HuBERT teacher (``objective.targets.teacher``) and
``train.init_from``; :mod:`speechssl.interop.export` writes runs the other way.
"""

from __future__ import annotations

from pathlib import Path

from speechssl.config import to_dict
from speechssl.data.config import DataConfig
from speechssl.interop.fairseq import read_fairseq_checkpoint
from speechssl.interop.hf_files import ImportedModel, read_hf_model
from speechssl.methods import build_method, method_config
from speechssl.models.checkpoint import find_latest
from speechssl.train.checkpoint import save_weights
from speechssl.train.config import OptimConfig, PretrainConfig, TrainConfig


def read_model(source: str) -> ImportedModel:
    """The published model ``source`` names: ``hf:<directory>`` or a fairseq checkpoint file ``<file>.pt``."""
    if source.startswith("hf:"):
        return read_hf_model(source.removeprefix("hf:"))
    if source.endswith(".pt"):
        return read_fairseq_checkpoint(source)
    raise ValueError(
        f"source {source!r}: expected 'hf:<transformers model directory>' or a fairseq '<file>.pt'"
    )


def write_run(model: ImportedModel, run_dir: str | Path) -> Path:
    """Write ``model`` as the only checkpoint of the new run ``run_dir``; returns the checkpoint.

    ``config.yaml`` names the model's method (with the imported objective, else the method's
    defaults) and default data, optimizer and loop settings; ``model.safetensors`` holds the
    encoder (``encoder.*``), and with imported heads the whole method's state dict (its
    buffers, e.g. the Gumbel temperature, at their initial values).

    Raises:
        ValueError: ``run_dir`` already holds checkpoints.
    """
    if find_latest(run_dir) is not None:
        raise ValueError(f"run_dir: {run_dir} already holds checkpoints; expected a new run folder")
    encoder = model.encoder
    objective = model.objective if model.objective is not None else method_config(model.method, {})
    config = PretrainConfig(
        method=model.method,
        objective=objective,
        encoder=encoder.config,
        data=DataConfig(sample_rate=encoder.sample_rate),
        optim=OptimConfig(),
        train=TrainConfig(),
    )
    tensors = {f"encoder.{name}": tensor for name, tensor in encoder.state_dict().items()}
    if model.heads:
        method = build_method(model.method, objective, encoder)
        unexpected = method.load_state_dict(model.heads, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(
                f"{model.source}: {unexpected[0]} is no tensor of speechssl's {model.method} heads"
            )
        tensors = method.state_dict()
    return save_weights(run_dir, tensors, encoder, to_dict(config))


def import_model(source: str, run_dir: str | Path) -> Path:
    """Convert the published model ``source`` (see :func:`read_model`) into run ``run_dir``."""
    return write_run(read_model(source), run_dir)
