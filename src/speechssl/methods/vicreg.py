"""VICReg: variance, invariance and covariance regularisation of two views' embeddings.

Bardes, Ponce & LeCun (2022), "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR, eqs. 1–6. A loss for the same two-view architecture as
Barlow Twins (:class:`~speechssl.methods.barlow_twins.BarlowTwins` with ``loss=vicreg``),
the study's alternative to the cross-correlation objective: instead of standardising the
embeddings and pushing their cross-correlation to the identity, it keeps each dimension's
standard deviation above ``γ`` (variance), pulls the two views together in mean squared
error (invariance) and decorrelates the dimensions of each view (covariance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechssl import distributed


def check_global_rows(rows: int, world_size: int) -> None:
    """Raise unless a global batch of ``rows`` per rank on ``world_size`` ranks has at least 2 rows.

    Every rank holds at least one row (checked here, on each) so ``world_size ≥ 2`` ranks hold
    at least 2 rows together: the global count stays a device tensor, never read back.
    """
    if rows < 1 or rows * world_size < 2:
        raise ValueError(
            f"expected a global batch of at least 2 rows, found {rows} on each of {world_size} rank(s)"
        )


@dataclass
class VICRegLossOutput:
    """Terms of the VICReg objective.

    Attributes:
        loss: scalar ``λ s + μ (v(Z) + v(Z')) / 2 + ν (c(Z) + c(Z'))``.
        invariance: ``s(Z, Z')``, the mean squared difference of the two views.
        variance: ``(v(Z) + v(Z')) / 2``, the hinge on each dimension's standard deviation,
            averaged over the two views.
        covariance: ``c(Z) + c(Z')``, the squared off-diagonal covariances over ``dim``.
    """

    loss: torch.Tensor
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor


class VICRegLoss(nn.Module):
    """``ℓ = λ s(Z, Z') + μ [v(Z) + v(Z')] / 2 + ν [c(Z) + c(Z')]`` (Bardes et al. 2022, eq. 6, as in their code).

    With ``n`` embeddings of ``d`` dimensions: ``v(Z) = (1/d) Σ_j max(0, γ - sqrt(Var(z^j) + ε))``
    (eq. 1, unbiased variance), ``c(Z) = (1/d) Σ_{i≠j} C(Z)_ij²`` with ``C`` the unbiased
    covariance (eqs. 3–4), and ``s`` the mean squared difference of the paired embeddings
    averaged over the batch and the dimensions (the reference code's ``F.mse_loss``, for
    which the paper's weights λ = μ = 25, ν = 1 were tuned; eq. 5 sums over dimensions).
    The two variance terms are averaged, not summed as eq. 6 writes them: the official code
    (``main_vicreg.py``, and lightly's ``VICRegLoss``) averages them, and μ = 25 was tuned
    with that average (the covariance terms are summed in both). Eq. 6 as printed is
    ``variance_weight = 2 μ``.
    Under data parallelism the means, variances, covariances and ``s`` are all-reduced
    over ranks (autograd-aware), so the loss equals the single-process loss of the global batch.

    Args:
        invariance_weight: λ.
        variance_weight: μ.
        covariance_weight: ν.
        gamma: target standard deviation γ.
        eps: ε, added to the variance.
        gather_distributed: reduce over ranks when a process group is active.
    """

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("invariance_weight", invariance_weight),
            ("variance_weight", variance_weight),
            ("covariance_weight", covariance_weight),
            ("eps", eps),
        ):
            if value < 0:
                raise ValueError(f"{name}: expected >= 0, found {value}")
        if gamma <= 0:
            raise ValueError(f"gamma: expected > 0, found {gamma}")
        self.invariance_weight = invariance_weight
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.gamma = gamma
        self.eps = eps
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> VICRegLossOutput:
        """Args:
            z_a: ``(batch, dim)`` projector outputs of the first view.
            z_b: ``(batch, dim)`` projector outputs of the second view (same rows).

        Raises:
            ValueError: shapes differ, or the (global) batch has fewer than 2 rows.
        """
        if z_a.dim() != 2 or z_a.shape != z_b.shape:
            raise ValueError(
                f"expected z_a and z_b of equal shape (batch, dim), found {tuple(z_a.shape)} and {tuple(z_b.shape)}"
            )
        gathered = self.gather_distributed and distributed.is_distributed()
        reduce = distributed.all_reduce_sum if gathered else (lambda tensor: tensor)
        check_global_rows(z_a.shape[0], distributed.world_size() if gathered else 1)
        count = reduce(torch.tensor(float(z_a.shape[0]), device=z_a.device)) if gathered else z_a.shape[0]
        dim = z_a.shape[1]
        dtype = torch.promote_types(z_a.dtype, torch.float32)
        with torch.autocast(device_type=z_a.device.type, enabled=False):
            z = torch.stack([z_a.to(dtype), z_b.to(dtype)])  # (2, batch, dim)
            invariance = reduce((z[0] - z[1]).pow(2).sum()) / (count * dim)
            centred = z - reduce(z.sum(dim=1, keepdim=True)) / count  # (2, batch, dim)
            covariance = reduce(centred.transpose(1, 2) @ centred) / (count - 1)  # (2, dim, dim)
            std = torch.sqrt(torch.diagonal(covariance, dim1=1, dim2=2) + self.eps)  # (2, dim)
            variance = torch.relu(self.gamma - std).mean(dim=1).mean()  # (v(Z) + v(Z')) / 2
            diagonal = torch.diagonal(covariance, dim1=1, dim2=2)  # (2, dim)
            decorrelation = (covariance.pow(2).sum() - diagonal.pow(2).sum()) / dim  # off-diagonal squares
        loss = (
            self.invariance_weight * invariance
            + self.variance_weight * variance
            + self.covariance_weight * decorrelation
        )
        return VICRegLossOutput(loss, invariance, variance, decorrelation)

    def extra_repr(self) -> str:
        return (
            f"invariance_weight={self.invariance_weight}, variance_weight={self.variance_weight}, "
            f"covariance_weight={self.covariance_weight}, gamma={self.gamma}"
        )


__all__ = ["VICRegLoss", "VICRegLossOutput", "check_global_rows"]
