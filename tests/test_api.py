"""``import speechssl``: the Python entry points, light to import, documented in the README."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import speechssl
from speechssl.cli import main
from speechssl.downstream.training import HeadTrainingConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def test_importing_speechssl_loads_no_torch_until_a_model_is_asked_for():
    script = (
        "import sys, speechssl\n"
        "print('BEFORE', 'torch' in sys.modules, speechssl.__version__)\n"
        "speechssl.load_upstream\n"
        "print('AFTER', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    version = importlib.metadata.version("speechssl")
    assert f"BEFORE False {version}" in result.stdout and "AFTER True" in result.stdout


def test_every_entry_point_resolves_and_an_unknown_name_is_an_attribute_error():
    for name in speechssl.__all__:
        assert getattr(speechssl, name) is not None, name
    assert (
        speechssl.evaluate.__name__ == "run_evaluation"
        and speechssl.load_upstream.__name__ == "build_upstream"
    )
    assert set(dir(speechssl)) == set(speechssl.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'train_everything'"):
        speechssl.train_everything  # noqa: B018


def test_version_flag_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"speechssl {importlib.metadata.version('speechssl')}"


def test_an_upstream_encodes_a_list_of_waveforms_each_as_if_alone():
    upstream = speechssl.load_upstream("random:tiny")
    rng = np.random.default_rng(0)
    waveforms = [rng.standard_normal(n).astype(np.float32) for n in (16000, 9000)]
    output = upstream.encode(waveforms)
    assert len(output.hidden_states) == upstream.num_layers
    frames = upstream.output_lengths(torch.tensor([16000, 9000]))
    assert output.lengths.tolist() == frames.tolist()
    alone = upstream.encode(waveforms[1:])
    for batched, single in zip(output.hidden_states, alone.hidden_states, strict=True):
        torch.testing.assert_close(batched[1, : frames[1]], single[0], atol=1e-5, rtol=1e-4)
        assert not batched.requires_grad


def test_evaluating_from_python_writes_the_rows_and_the_report(shared_data, tmp_path):
    plan = speechssl.EvaluationPlan(
        tasks=["keyword_fsdd"],
        seeds=[0],
        data_root=shared_data("fsdd").parent,
        head=HeadTrainingConfig(max_epochs=3),
    )
    (row,) = speechssl.evaluate(["fbank"], plan, tmp_path / "eval")
    assert row.task == "keyword_fsdd" and 0.1 < row.value <= 1.0
    assert (tmp_path / "eval" / "report.md").is_file()


def test_the_readme_python_example_names_only_real_entry_points():
    section = README.read_text().split("## Using speechssl from Python", 1)[1].split("\n## ", 1)[0]
    used = set(re.findall(r"speechssl\.([A-Za-z_]+)", section))
    assert {"load_upstream", "pretrain", "evaluate", "import_model", "export_checkpoint"} <= used
    assert used <= set(speechssl.__all__), used - set(speechssl.__all__)
