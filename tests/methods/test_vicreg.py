"""VICReg loss: reference formula, properties of each term, errors."""

from __future__ import annotations

import pytest
import torch

from speechssl.methods.vicreg import VICRegLoss


def reference_vicreg(x: torch.Tensor, y: torch.Tensor, lam=25.0, mu=25.0, nu=1.0) -> torch.Tensor:
    """Bardes et al. 2022, eqs. 1-6, written out term by term in float64, with the two
    variance hinges averaged as the official ``main_vicreg.py`` (and lightly) do:
    ``mean(relu(1 - std_x)) / 2 + mean(relu(1 - std_y)) / 2``."""
    n, d = x.shape
    invariance = ((x - y) ** 2).mean()
    total = lam * invariance
    for z in (x, y):
        centred = z - z.mean(dim=0)
        std = torch.sqrt(centred.var(dim=0, unbiased=True) + 1e-4)
        total = total + mu * torch.relu(1 - std).mean() / 2
        cov = centred.T @ centred / (n - 1)
        off = cov - torch.diag(torch.diagonal(cov))
        total = total + nu * (off**2).sum() / d
    return total


def test_matches_the_reference_code():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, generator=generator, dtype=torch.float64) * 0.7
    y = x + 0.3 * torch.randn(32, 16, generator=generator, dtype=torch.float64)
    out = VICRegLoss()(x, y)
    torch.testing.assert_close(out.loss, reference_vicreg(x, y))
    assert out.loss == pytest.approx(
        float(25 * out.invariance + 25 * out.variance + 1 * out.covariance), rel=1e-12
    )


def test_terms_vanish_where_they_should():
    # orthogonal columns scaled to std 2: uncorrelated, above the std target, identical views
    basis = torch.linalg.qr(
        torch.randn(64, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )[0]
    z = basis - basis.mean(dim=0)
    z = z / z.std(dim=0) * 2.0
    out = VICRegLoss()(z, z.clone())
    assert float(out.invariance) == 0.0 and float(out.variance) == 0.0
    collapsed = VICRegLoss()(torch.ones(16, 8), torch.ones(16, 8))
    assert float(collapsed.variance) == pytest.approx(1 - 1e-2, rel=1e-6), "both views at std 0, averaged"


def test_gradients_flow_to_both_views():
    x = torch.randn(16, 4, requires_grad=True)
    y = torch.randn(16, 4, requires_grad=True)
    VICRegLoss()(x, y).loss.backward()
    assert x.grad is not None and y.grad is not None and torch.any(x.grad != 0)


def test_errors_say_expected_and_found():
    with pytest.raises(ValueError, match=r"equal shape \(batch, dim\), found \(4, 3\) and \(4, 2\)"):
        VICRegLoss()(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2 rows, found 1"):
        VICRegLoss()(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="gamma: expected > 0, found 0"):
        VICRegLoss(gamma=0)


def test_variance_term_averages_the_two_views():
    spread = torch.linalg.qr(
        torch.randn(32, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    )[0]
    spread = (spread - spread.mean(dim=0)) / spread.std(dim=0) * 2.0  # std 2: no hinge
    collapsed = torch.zeros_like(spread)  # std sqrt(eps): hinge 1 - 1e-2 on every dimension
    out = VICRegLoss()(spread, collapsed)
    assert float(out.variance) == pytest.approx((0.0 + (1 - 1e-2)) / 2, rel=1e-9)
