"""The typed result of one evaluation: one :class:`Row` per (upstream, task, seed).

Every task kind (:mod:`speechssl.downstream.tasks`) returns :class:`Row` objects and names
its :class:`Metric`; the evaluator persists them as flat JSON (:meth:`Row.to_dict`) and the
report (:mod:`speechssl.downstream.report`) and the studies read them back typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Metric:
    """A task's main metric.

    Attributes:
        name: the value's name in rows (``accuracy``, ``eer``, ``map``, ``wer``).
        title: how the report names it.
        higher_is_better: the direction of improvement.
        secondary: ``(extras key, display name)`` of a second metric every row carries,
            shown in the report's secondary table (e.g. ``("cer", "CER")``), or ``None``.
        bounds: ``(low, high)`` values the metric can take; the report clips confidence
            intervals to it (``(0, 1)`` for accuracy, EER, MAP; WER has no upper bound).
        secondary_bounds: the same for the secondary metric (minDCF ``(0, 1)``, MTWV ``(−∞, 1)``).
        chance: the metric of a system that ignores its input, where it does not depend on
            the data (EER 0.5); tasks whose chance depends on the labels put a ``chance``
            value in each row's extras instead.
    """

    name: str
    title: str
    higher_is_better: bool = True
    secondary: tuple[str, str] | None = None
    bounds: tuple[float, float] = (0.0, 1.0)
    secondary_bounds: tuple[float, float] = (-math.inf, math.inf)
    chance: float | None = None


@dataclass
class Row:
    """One seed of one task on one upstream.

    Attributes:
        task: registered task name.
        seed: the seed (what it sets is the task kind's ``seed_meaning``).
        metric: name of the main metric (:attr:`Metric.name`).
        value: the main metric on the test data.
        higher_is_better: the main metric's direction.
        layer_weights: learnt softmax weights over upstream layers, or ``None`` (no weighted sum).
        extras: the task kind's other values (secondary metrics, the chosen layer, decodings, ...).
        upstream: the upstream spec ("" until the evaluator fills in where it came from).
        upstream_fingerprint: the upstream weights' fingerprint.
        data_digest: digest of the task's corpus manifest (its audio).
        annotation_digest: digest of the manifest's speakers, splits and labels.
        head: the trained head's settings, or ``None`` when nothing is trained.
    """

    task: str
    seed: int
    metric: str
    value: float
    higher_is_better: bool = True
    layer_weights: list[float] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    upstream: str = ""
    upstream_fingerprint: str = ""
    data_digest: str = ""
    annotation_digest: str = ""
    head: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-able dict: the fields, with ``extras`` spread at the top level."""
        named = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extras"}
        return {**named, **self.extras}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Row:
        """The row :meth:`to_dict` wrote (keys that are not fields go back to ``extras``)."""
        names = {f.name for f in fields(cls)} - {"extras"}
        missing = sorted({"task", "seed", "metric", "value"} - record.keys())
        if missing:
            raise ValueError(f"result row: expected keys {missing}, found {sorted(record)}")
        return cls(
            **{key: value for key, value in record.items() if key in names},
            extras={key: value for key, value in record.items() if key not in names},
        )


__all__ = ["Metric", "Row"]
