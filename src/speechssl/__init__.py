"""speechssl: self-supervised speech representation learning.

The few entry points a Python user needs (each is imported on first use, so ``import
speechssl`` stays light and loads torch only when a model is asked for)::

    import speechssl

    upstream = speechssl.load_upstream("runs/bt_fsdd")        # a run, "hf:<dir>", "random:tiny", "fbank"
    output = upstream.encode([speechssl.load_audio("a.wav"), speechssl.load_audio("b.flac")])
    output.hidden_states                                       # one (batch, frames, dim) per layer

    config = speechssl.load_pretrain_config("barlow_twins_tiny", ["train.max_steps=100"])
    speechssl.pretrain(config, "runs/bt")

    plan = speechssl.EvaluationPlan(tasks=["keyword_fsdd"], seeds=range(5))
    rows = speechssl.evaluate(["fbank", "runs/bt"], plan, "outputs/eval")

    speechssl.import_model("hf:models/wav2vec2-base", "runs/w2v_base")
    speechssl.export_checkpoint("runs/bt", "onnx", "exports/bt.onnx")
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("speechssl")
except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

# public name -> (module, attribute)
_ENTRY_POINTS = {
    "load_upstream": ("speechssl.upstream", "build_upstream"),
    "load_audio": ("speechssl.data.audio", "load_audio"),
    "pad_waveforms": ("speechssl.data.batch", "pad_waveforms"),
    "load_pretrain_config": ("speechssl.train.config", "load_pretrain_config"),
    "PretrainConfig": ("speechssl.train.config", "PretrainConfig"),
    "pretrain": ("speechssl.train.pretrain", "pretrain"),
    "EvaluationPlan": ("speechssl.downstream.plan", "EvaluationPlan"),
    "evaluate": ("speechssl.downstream.evaluate", "run_evaluation"),
    "import_model": ("speechssl.interop.runs", "import_model"),
    "export_checkpoint": ("speechssl.interop.export", "export_checkpoint"),
    "EncoderConfig": ("speechssl.models.encoder", "EncoderConfig"),
    "SpeechEncoder": ("speechssl.models.encoder", "SpeechEncoder"),
}

__all__ = ["__version__", *_ENTRY_POINTS]


def __getattr__(name: str) -> Any:
    if name not in _ENTRY_POINTS:
        raise AttributeError(f"module 'speechssl' has no attribute {name!r}")
    module, attribute = _ENTRY_POINTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
