"""Typed configuration of a pretraining run: optimizer, training loop and the whole run.

A run is described by one YAML file (see ``speechssl/configs/pretrain/``) plus
``key=value`` overrides; :func:`load_pretrain_config` resolves both into a
:class:`PretrainConfig` whose :func:`~speechssl.config.to_dict` is written next to every
checkpoint and loads back to the same config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from speechssl.config import ConfigError, apply_overrides, from_dict, load_yaml, merge, to_dict
from speechssl.data.config import DataConfig
from speechssl.methods import method_config, method_spec
from speechssl.models.encoder import EncoderConfig, load_encoder_preset


@dataclass
class OptimConfig:
    """AdamW (Loshchilov & Hutter 2019) with linear warmup and cosine decay.

    Attributes:
        lr: peak learning rate, reached after ``warmup_steps`` updates.
        betas: Adam's ``(beta1, beta2)``.
        eps: Adam's denominator epsilon.
        weight_decay: decoupled weight decay of matrices and kernels; biases and norm
            gains are never decayed.
        warmup_steps: updates of linear warmup from 0 to ``lr``.
        min_lr_ratio: floor of the cosine decay as a fraction of ``lr``.
        clip_grad_norm: maximum global gradient L2 norm, or ``null`` for no clipping.
    """

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.01
    warmup_steps: int = 1000
    min_lr_ratio: float = 0.01
    clip_grad_norm: float | None = 10.0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr: expected a finite number > 0, found {self.lr}")
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), found {list(self.betas)}")
        if not self.eps > 0:
            raise ValueError(f"eps: expected a number > 0, found {self.eps}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: expected a number >= 0, found {self.weight_decay}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected an integer >= 0, found {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio: expected a number in [0, 1], found {self.min_lr_ratio}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm: expected a number > 0 or null, found {self.clip_grad_norm}")


@dataclass
class TrainConfig:
    """The training loop: length, accumulation, logging, checkpoints, device and precision.

    Attributes:
        max_steps: optimizer updates of the whole run.
        grad_accum_steps: micro-batches whose gradients are summed into one update.
        log_every: updates between two lines of ``metrics.jsonl``.
        checkpoint_every: updates between two checkpoints (the last update is always saved).
        keep_last: number of most recent checkpoints kept on disk.
        seed: seed of every random generator (rank ``r`` of a distributed run uses ``seed + r``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
        find_unused_parameters: passed to ``DistributedDataParallel`` for methods whose
            forward pass leaves some trainable parameters unused.
        init_from: a checkpoint or run directory (e.g. an imported model) whose weights start
            the run: weights only, with a fresh optimizer and schedule from step 0. The
            encoder's architecture is the checkpoint's (its ``encoder.yaml`` replaces the
            ``encoder`` section); the method's heads are loaded too when the checkpoint was
            made by the same method and holds them. Empty: random initialisation.
        deterministic: bit-reproducible training, so an interrupted and resumed run equals
            an uninterrupted one on any method: deterministic algorithms only, cuDNN
            benchmarking and oneDNN (mkldnn) kernels off, ``CUBLAS_WORKSPACE_CONFIG`` set.
            Costs speed (see the README); off by default.
        collective_timeout_s: seconds a collective of a distributed run (gradient
            all-reduce, barrier …) may wait for the other ranks before the job stops with an
            error naming this rank and the collective, instead of hanging on a stalled rank.
    """

    max_steps: int = 10_000
    grad_accum_steps: int = 1
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    find_unused_parameters: bool = False
    init_from: str = ""
    deterministic: bool = False
    collective_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("max_steps", "grad_accum_steps", "log_every", "checkpoint_every", "keep_last"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {value}")
        if not (math.isfinite(self.collective_timeout_s) and self.collective_timeout_s > 0):
            raise ValueError(
                f"collective_timeout_s: expected a finite number of seconds > 0, found {self.collective_timeout_s}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: expected one of ['auto', 'cpu', 'cuda'], found {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision: expected one of ['auto', 'fp32', 'bf16'], found {self.precision!r}")


@dataclass
class PretrainConfig:
    """Everything a pretraining run needs, as written to ``config.yaml`` in its run directory.

    Attributes:
        method: registered pretext method name (see :func:`speechssl.methods.available_methods`).
        objective: the method's config dataclass (``method_spec(method).config_class``); a
            mapping only in ``config.yaml``.
        encoder: the architecture being pretrained.
        data: the unlabelled corpus and how it is batched.
        optim: optimizer and learning-rate schedule.
        train: the training loop.
    """

    method: str
    objective: Any
    encoder: EncoderConfig
    data: DataConfig
    optim: OptimConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        if not self.method:
            raise ValueError("method: expected a registered method name, found an empty string")
        config_class = method_spec(self.method).config_class
        if not isinstance(self.objective, config_class):
            raise ValueError(
                f"objective: expected a {config_class.__name__} for method {self.method!r}, "
                f"found {type(self.objective).__name__}"
            )


_SECTIONS = ("method", "objective", "encoder", "data", "optim", "train")


def load_pretrain_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), method: str | None = None
) -> PretrainConfig:
    """Resolve a YAML file, ``key=value`` overrides and an optional method name into a config.

    Args:
        path: a pretraining YAML file, or the name of one shipped in
            ``speechssl/configs/pretrain/`` (``barlow_twins_tiny``); ``None`` uses the
            method's ``<method>_tiny`` config when there is one, else every default.
        overrides: ``section.key=value`` strings applied after the file, values parsed as
            YAML (``optim.lr=3e-4``, ``encoder.dim=128``, ``encoder=base``).
        method: method name taking precedence over the file's ``method``.

    Raises:
        ConfigError: naming the file, the offending key, the expected and the found value.
    """
    if path is None and method is None:
        raise ConfigError("pretraining config: expected a config file or a method name, found neither")
    path = _packaged_config(f"{method}_tiny") if path is None else find_pretrain_config(path)
    source = str(path) if path is not None else f"<defaults of {method}>"
    try:
        raw = _encoder_as_section(load_yaml(path) if path is not None else {})
        raw = _encoder_as_section(apply_overrides(raw, overrides))
        if method is not None:
            raw["method"] = method
        return pretrain_config_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def pretrain_config_names() -> list[str]:
    """Names of the pretraining configs shipped in ``speechssl/configs/pretrain/``."""
    folder = resources.files("speechssl").joinpath("configs", "pretrain")
    names = [entry.name for entry in folder.iterdir()]
    return sorted(name.removesuffix(".yaml") for name in names if name.endswith(".yaml"))


def find_pretrain_config(name_or_path: str | Path) -> Path:
    """An existing YAML file, or the shipped config of that name (``barlow_twins_base``).

    Raises:
        ConfigError: neither exists; lists the shipped names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = _packaged_config(str(name_or_path).removesuffix(".yaml"))
    if packaged is None:
        raise ConfigError(
            f"pretraining config {str(name_or_path)!r}: expected a YAML file or one of "
            f"{', '.join(pretrain_config_names())}, found neither"
        )
    return packaged


def _packaged_config(name: str) -> Path | None:
    """``speechssl/configs/pretrain/<name>.yaml`` if it exists."""
    path = Path(str(resources.files("speechssl").joinpath("configs", "pretrain", f"{name}.yaml")))
    return path if path.is_file() else None


def pretrain_config_from_dict(raw: Mapping[str, Any]) -> PretrainConfig:
    """Build and check a :class:`PretrainConfig` from a plain mapping (one YAML document).

    ``encoder`` may be a preset name (``tiny``), a mapping of every field, or a preset
    with changes (``{preset: tiny, dim: 128}``). ``objective`` is checked against the
    config dataclass of ``method`` and stored as that dataclass.
    """
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]} (expected one of: {', '.join(_SECTIONS)})")
    method = raw.get("method")
    if not isinstance(method, str):
        raise ConfigError(f"method: expected a method name (str), found {method!r}")
    objective = _section(raw, "objective")
    if not isinstance(objective, Mapping):
        raise ConfigError(f"objective: expected a mapping, found {objective!r}")
    return PretrainConfig(
        method=method,
        objective=method_config(method, objective),
        encoder=resolve_encoder_config(_section(raw, "encoder")),
        data=from_dict(DataConfig, _section(raw, "data"), where="data"),
        optim=from_dict(OptimConfig, _section(raw, "optim"), where="optim"),
        train=from_dict(TrainConfig, _section(raw, "train"), where="train"),
    )


def _section(raw: Mapping[str, Any], name: str) -> Any:
    """Section ``name`` of ``raw`` as written (checked by its reader), ``{}`` when absent or empty
    (``optim:`` with nothing under it); a value such as ``optim=5`` is kept, so it is refused."""
    value = raw.get(name)
    return {} if value is None else value


def resolve_encoder_config(spec: str | Mapping[str, Any]) -> EncoderConfig:
    """An :class:`EncoderConfig` from a preset name, a full mapping, or ``{preset: name, **changes}``."""
    if isinstance(spec, str):
        return load_encoder_preset(spec)
    if not isinstance(spec, Mapping):
        raise ConfigError(f"encoder: expected a preset name or a mapping, found {spec!r}")
    changes = dict(spec)
    preset = changes.pop("preset", None)
    if preset is None:
        return from_dict(EncoderConfig, changes, where="encoder")
    if not isinstance(preset, str):
        raise ConfigError(f"encoder.preset: expected a preset name (str), found {preset!r}")
    return from_dict(EncoderConfig, merge(to_dict(load_encoder_preset(preset)), changes), where="encoder")


def _encoder_as_section(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn ``encoder: tiny`` into ``encoder: {preset: tiny}`` so ``encoder.dim=...`` overrides apply."""
    if isinstance(raw.get("encoder"), str):
        return {**raw, "encoder": {"preset": raw["encoder"]}}
    return raw
