import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("transformers")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vs_transformers.py"


def test_vs_transformers_runs_end_to_end_on_tiny(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as `python benchmarks/vs_transformers.py` runs it
    spec = importlib.util.spec_from_file_location("vs_transformers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--presets", "tiny", "--seconds", "0.5", "0.3", "--repeats", "1", "--threads", "1"])
    table = capsys.readouterr().out
    assert "| tiny |" in table
