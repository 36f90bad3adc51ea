"""Loss-variant ablations: loss variant × λ × projector, pretrained and compared.

Brima et al. (2024, §5) ablate the Barlow Twins objective on speech; ``speechssl ablate``
runs such a grid from one base config: every combination of a loss variant
(:data:`LOSS_VARIANTS`), a redundancy weight λ and a projector shape is pretrained the same
number of steps and evaluated with the downstream harness over several seeds, beside the
baselines, in one report (table, paired tests, box plots). The variants of one grid share a
method: Barlow Twins' (with VICReg's loss), or HuBERT's weighting ``β`` of its masked and
unmasked terms (from a HuBERT base config, e.g. ``hubert_tiny``). Each variant is the base
config with typed changes to its objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from speechssl.downstream.plan import EvaluationPlan
from speechssl.studies.grid import GridResult, run_pretraining_grid
from speechssl.train import PretrainConfig, load_pretrain_config

BARLOW_TWINS = "barlow_twins"
HUBERT = "hubert"

# loss variant -> (method, changes of its objective config)
LOSS_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # the paper's loss (Zbontar et al. 2021, eq. 1)
    "bt": (BARLOW_TWINS, {}),
    # Modified Barlow Twins: unit-norm embeddings before the cross-correlation (Brima et al. 2024)
    "modified_bt": (BARLOW_TWINS, {"normalize_latents": True}),
    # VICReg's variance / invariance / covariance terms (Bardes et al. 2022)
    "vicreg": (BARLOW_TWINS, {"loss": "vicreg"}),
    # ablations: one term of eq. 1 only
    "invariance_only": (BARLOW_TWINS, {"lambda_": 0.0}),
    "redundancy_only": (BARLOW_TWINS, {"invariance_weight": 0.0}),
    # the same loss on paired frames of one crop instead of pooled utterances
    "frame_bt": (BARLOW_TWINS, {"level": "frame"}),
    # HuBERT's L = β L_m + (1 − β) L_u (Hsu et al. 2021, eq. 3): β = 1, masked frames only (the paper's)
    "hubert": (HUBERT, {"masked_weight": 1.0}),
    # β = 0.5: masked and unmasked frames weigh the same
    "hubert_all_frames": (HUBERT, {"masked_weight": 0.5}),
}
USES_LAMBDA = {"bt", "modified_bt", "redundancy_only", "frame_bt"}
USES_PROJECTOR = {name for name, (method, _) in LOSS_VARIANTS.items() if method == BARLOW_TWINS}


def parse_projector(text: str) -> list[int]:
    """``"512x512"`` -> ``[512, 512]`` (hidden and output widths of the projector)."""
    try:
        widths = [int(part) for part in text.lower().split("x")]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"projectors: expected widths like 512x512, found {text!r}")
    return widths


def ablation_method(losses: Sequence[str]) -> str:
    """The one method every loss variant of ``losses`` belongs to."""
    unknown = [loss for loss in losses if loss not in LOSS_VARIANTS]
    if unknown:
        raise ValueError(f"losses: expected names from {sorted(LOSS_VARIANTS)}, found {unknown}")
    methods = sorted({LOSS_VARIANTS[loss][0] for loss in losses})
    if len(methods) != 1:
        raise ValueError(f"losses: expected variants of one method, found variants of {', '.join(methods)}")
    return methods[0]


def ablation_variants(
    losses: Sequence[str], lambdas: Sequence[float], projectors: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Variant name -> changes of the objective for every loss × λ × projector.

    λ and the projector vary only where the loss has them (Barlow Twins' variants). Names
    read ``<loss>_l<λ>_p<projector>``, e.g. ``modified_bt_l0.005_p512x512``, or ``<loss>``.
    """
    ablation_method(losses)
    for name, values in (("losses", losses), ("lambdas", lambdas), ("projectors", projectors)):
        if not values:
            raise ValueError(f"{name}: expected at least one value, found none")
    variants: dict[str, dict[str, Any]] = {}
    for loss in losses:
        for lambda_ in lambdas if loss in USES_LAMBDA else [None]:
            for projector in projectors if loss in USES_PROJECTOR else [None]:
                name, changes = loss, dict(LOSS_VARIANTS[loss][1])
                if lambda_ is not None:
                    name += f"_l{lambda_:g}"
                    changes["lambda_"] = float(lambda_)
                if projector is not None:
                    name += f"_p{projector.lower()}"
                    changes["projector"] = parse_projector(projector)
                variants[name] = changes
    return variants


def with_objective(config: PretrainConfig, changes: Mapping[str, Any]) -> PretrainConfig:
    """``config`` with ``changes`` made to its objective (checked by the objective's own validation)."""
    return dataclasses.replace(config, objective=dataclasses.replace(config.objective, **changes))


def run_ablation(
    base_config: str | Path | None,
    losses: Sequence[str],
    lambdas: Sequence[float],
    projectors: Sequence[str],
    output: str | Path,
    plan: EvaluationPlan,
    overrides: Sequence[str] = (),
) -> GridResult:
    """Pretrain every ablation variant of ``base_config`` (``overrides`` apply to all of them) and
    evaluate it with ``plan``.

    ``base_config`` is a config of the variants' method (``None``: its ``<method>_tiny``).
    """
    base = load_pretrain_config(base_config, overrides, method=ablation_method(losses))
    variants = {
        name: with_objective(base, changes)
        for name, changes in ablation_variants(losses, lambdas, projectors).items()
    }
    return run_pretraining_grid(variants, output, plan)


__all__ = [
    "LOSS_VARIANTS",
    "ablation_method",
    "ablation_variants",
    "parse_projector",
    "run_ablation",
    "with_objective",
]
