"""Offline transformers and tiny random models saved to a temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hf_models import make_hf_model


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def hf_model_dir(tmp_path: Path) -> Callable[[str], tuple[object, Path]]:
    """``hf_model_dir(name)`` -> (the model, the folder it was saved to with ``save_pretrained``)."""

    def save(name: str) -> tuple[object, Path]:
        model = make_hf_model(name)
        directory = tmp_path / name
        model.save_pretrained(directory)
        return model, directory

    return save
