"""Result figures: seed box plots and layer-weight bars are written as PNGs, deterministically."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import pytest

from speechssl.downstream.figures import plot_boxplots, plot_layer_weights

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VALUES = {
    "keyword_spotting": {"barlow_twins": [0.91, 0.93, 0.92], "fbank": [0.55, 0.60, 0.58]},
    "asr": {"barlow_twins": [0.31, 0.29], "fbank": [0.62]},
}


def test_boxplots_write_a_png(tmp_path: Path) -> None:
    path = plot_boxplots(VALUES, tmp_path / "figures" / "boxes.png", metric_names={"asr": "WER"})
    assert path == tmp_path / "figures" / "boxes.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > height > 100  # two panels side by side


def test_boxplots_of_many_upstreams_wrap_one_task_per_row(tmp_path: Path) -> None:
    many = {
        task: {f"upstream_{i}": [0.5 + 0.01 * i, 0.52] for i in range(18)} for task in ("a", "b", "c", "d")
    }
    height, width, _ = matplotlib.image.imread(plot_boxplots(many, tmp_path / "many.png")).shape
    assert height > 4 * 300 and width < 2000  # four rows, not 4 x 18 boxes side by side


def test_boxplot_jitter_is_reproducible(tmp_path: Path) -> None:
    first = plot_boxplots(VALUES, tmp_path / "a.png").read_bytes()
    second = plot_boxplots(VALUES, tmp_path / "b.png").read_bytes()
    assert first == second
    shifted = {"keyword_spotting": {**VALUES["keyword_spotting"], "fbank": [0.55, 0.60, 0.70]}}
    assert (
        plot_boxplots(shifted, tmp_path / "c.png").read_bytes()
        != plot_boxplots({"keyword_spotting": VALUES["keyword_spotting"]}, tmp_path / "d.png").read_bytes()
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "at least one task"),
        ({"ks": {}}, "task 'ks': expected at least one upstream"),
        ({"ks": {"bt": []}}, r"upstream 'bt': expected >= 1 finite value, found \[\]"),
        ({"ks": {"bt": [0.5, math.nan]}}, "finite value"),
    ],
)
def test_boxplots_reject_bad_values(tmp_path: Path, values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_boxplots(values, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_layer_weights_write_a_png(tmp_path: Path) -> None:
    weights = {"barlow_twins": [0.1, 0.2, 0.3, 0.4], "wav2vec2": [0.5, 0.25, 0.25]}
    path = plot_layer_weights(weights, tmp_path / "weights.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert matplotlib.image.imread(path).shape[0] > 100


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "at least one upstream"),
        ({"bt": []}, "non-empty"),
        ({"bt": [1.5, -0.5]}, "non-negative"),
        ({"bt": [2.0, 3.0]}, "summing to 1, found sum 5"),
    ],
)
def test_layer_weights_reject_bad_weights(tmp_path: Path, weights: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plot_layer_weights(weights, tmp_path / "bad.png")


def test_layer_weights_of_20_upstreams_are_a_heatmap_row_each(tmp_path: Path) -> None:
    weights = {f"upstream_{i:02d}": [1 / 13] * 13 for i in range(19)} | {"shallow": [0.25] * 4}
    height, width, _ = matplotlib.image.imread(plot_layer_weights(weights, tmp_path / "h.png", "ks")).shape
    assert 20 * 20 < height < 1200 and width < 1200  # one row of cells per upstream, not 20 × 13 bars
    few_height = matplotlib.image.imread(plot_layer_weights({"a": [0.5, 0.5]}, tmp_path / "s.png")).shape[0]
    assert few_height < height / 3


def test_boxplots_draw_the_chance_level(tmp_path: Path) -> None:
    plain = plot_boxplots(VALUES, tmp_path / "plain.png").read_bytes()
    chance = plot_boxplots(VALUES, tmp_path / "chance.png", chance={"keyword_spotting": 0.0833}).read_bytes()
    assert chance != plain
    with pytest.raises(ValueError, match=r"chance: expected levels of plotted tasks .*found \['sid'\]"):
        plot_boxplots(VALUES, tmp_path / "bad.png", chance={"sid": 0.5})
