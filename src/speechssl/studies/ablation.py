"""Loss-variant ablations of Barlow Twins: loss variant × λ × projector, pretrained and compared.

Brima et al. (2024, §5) ablate the Barlow Twins objective on speech; ``speechssl ablate``
runs such a grid from one base config: every combination of a loss variant
(:data:`LOSS_VARIANTS`), a redundancy weight λ and a projector shape is pretrained the same
number of steps and evaluated with the downstream harness over several seeds, beside the
baselines, in one report (table, paired tests, box plots).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from speechssl.downstream.plan import EvaluationPlan
from speechssl.studies.grid import GridResult, run_pretraining_grid

LOSS_VARIANTS: dict[str, tuple[str, ...]] = {
    # the paper's loss (Zbontar et al. 2021, eq. 1)
    "bt": (),
    # Modified Barlow Twins: unit-norm embeddings before the cross-correlation (Brima et al. 2024)
    "modified_bt": ("objective.normalize_latents=true",),
    # VICReg's variance / invariance / covariance terms (Bardes et al. 2022)
    "vicreg": ("objective.loss=vicreg",),
    # ablations: one term of eq. 1 only
    "invariance_only": ("objective.lambda_=0",),
    "redundancy_only": ("objective.invariance_weight=0",),
    # the same loss on paired frames of one crop instead of pooled utterances
    "frame_bt": ("objective.level=frame",),
}
USES_LAMBDA = {"bt", "modified_bt", "redundancy_only", "frame_bt"}


def parse_projector(text: str) -> list[int]:
    """``"512x512"`` -> ``[512, 512]`` (hidden and output widths of the projector)."""
    try:
        widths = [int(part) for part in text.lower().split("x")]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"--projectors: expected widths like 512x512, found {text!r}")
    return widths


def ablation_variants(
    losses: Sequence[str], lambdas: Sequence[float], projectors: Sequence[str]
) -> dict[str, list[str]]:
    """Variant name -> overrides for every loss × λ × projector (λ only where the loss uses it).

    Names read ``<loss>_l<λ>_p<projector>``, e.g. ``modified_bt_l0.005_p512x512``.
    """
    unknown = [loss for loss in losses if loss not in LOSS_VARIANTS]
    if unknown:
        raise ValueError(f"--losses: expected names from {sorted(LOSS_VARIANTS)}, found {unknown}")
    if not (losses and lambdas and projectors):
        raise ValueError("--losses/--lambdas/--projectors: expected at least one value each")
    variants: dict[str, list[str]] = {}
    for loss in losses:
        for lambda_ in lambdas if loss in USES_LAMBDA else [None]:
            for projector in projectors:
                widths = parse_projector(projector)
                name = loss + (f"_l{lambda_:g}" if lambda_ is not None else "") + f"_p{projector.lower()}"
                overrides = [*LOSS_VARIANTS[loss], f"objective.projector=[{','.join(map(str, widths))}]"]
                if lambda_ is not None:
                    overrides.append(f"objective.lambda_={lambda_:g}")
                variants[name] = overrides
    return variants


def run_ablation(
    base_config: str | Path | None,
    losses: Sequence[str],
    lambdas: Sequence[float],
    projectors: Sequence[str],
    output: str | Path,
    plan: EvaluationPlan,
    overrides: Sequence[str] = (),
) -> GridResult:
    """Pretrain every ablation variant (``overrides`` apply to all of them) and evaluate it with ``plan``."""
    variants = {
        name: [*overrides, *variant]
        for name, variant in ablation_variants(losses, lambdas, projectors).items()
    }
    return run_pretraining_grid(base_config, variants, output, plan, method="barlow_twins")


__all__ = ["LOSS_VARIANTS", "ablation_variants", "parse_projector", "run_ablation"]
