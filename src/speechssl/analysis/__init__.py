"""Understanding representations: cross-correlation structure and training curves."""

from speechssl.analysis.cross_correlation import (
    cross_correlation_matrix,
    diagonal_stats,
    plot_cross_correlation,
)
from speechssl.analysis.training_curves import plot_training_curves

__all__ = ["cross_correlation_matrix", "diagonal_stats", "plot_cross_correlation", "plot_training_curves"]
