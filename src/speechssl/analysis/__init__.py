"""Understanding representations: cross-correlation structure, training curves,
disentanglement metrics, 2-D factor maps and result figures."""

from speechssl.analysis.cross_correlation import (
    cross_correlation_matrix,
    diagonal_stats,
    plot_cross_correlation,
    view_cross_correlation,
)
from speechssl.analysis.training_curves import plot_training_curves

__all__ = [
    "cross_correlation_matrix",
    "diagonal_stats",
    "plot_cross_correlation",
    "plot_training_curves",
    "view_cross_correlation",
]
