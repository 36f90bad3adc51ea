"""Bad ``key=value`` overrides through the real command line: each is one line naming the
option, never a traceback, and nothing is trained."""

from __future__ import annotations

import pytest

from speechssl.cli import main

# (override, the option the message must name, what it must say)
BAD_OVERRIDES = [
    ("optim=5", "optim", "expected a mapping"),
    ("optim=0", "optim", "expected a mapping"),
    ("train=[1, 2]", "train", "expected a mapping"),
    ("data=text", "data", "expected a mapping"),
    ("encoder=5", "encoder", "expected a preset name or a mapping"),
    ("objective=3", "objective", "expected a mapping"),
    ("data.max_batch_seconds=inf", "data.max_batch_seconds", "finite"),
    ("data.max_batch_seconds=.nan", "data.max_batch_seconds", "finite"),
    ("data.max_batch_seconds=0", "max_batch_seconds", "> 0"),
    ("data.crop_seconds=nan", "data.crop_seconds", "finite"),
    ("data.crop_seconds=-inf", "data.crop_seconds", "finite"),
    ("data.crop_seconds=1e9", "crop_seconds", "(0, 3600]"),
    ("data.crop_seconds=-1", "crop_seconds", "(0, 3600]"),
    ("data.sample_rate=100", "sample_rate", "[8000, 192000] Hz"),
    ("data.sample_rate=1000000", "sample_rate", "[8000, 192000] Hz"),
    ("data.sample_rate=16k", "data.sample_rate", "expected int"),
    ("data.num_workers=-1", "num_workers", ">= 0"),
    ("data.skip_bad=maybe", "data.skip_bad", "expected bool"),
    ("data.corpus=timit", "corpus", "unknown corpus"),
    ("data.split=''", "split", "expected a split name"),
    ("data.synthetic.num_speakers=x", "data.synthetic.num_speakers", "expected int"),
    ("optim.lr=inf", "optim.lr", "finite"),
    ("optim.lr=-1", "lr", "finite number > 0"),
    ("optim.eps=nan", "optim.eps", "finite"),
    ("optim.betas=[0.9]", "optim.betas", "expected 2 items"),
    ("optim.betas=[0.9, 1.5]", "betas", "[0, 1)"),
    ("optim.clip_grad_norm=inf", "optim.clip_grad_norm", "finite"),
    ("optim.weight_decay=-0.1", "weight_decay", ">= 0"),
    ("optim.warmup_steps=1.5", "optim.warmup_steps", "expected int"),
    ("train.max_steps=0", "max_steps", ">= 1"),
    ("train.device=tpu", "train.device", "expected one of"),
    ("train.seed=[1]", "train.seed", "expected int"),
    ("train.nonsense=1", "train.nonsense", "unknown key"),
    ("objective.lambda_=nan", "objective.lambda_", "finite"),
    ("encoder.dim=abc", "encoder.dim", "expected int"),
    ("data.crop_seconds", "data.crop_seconds", "expected key=value"),
]


@pytest.mark.parametrize(("override", "option", "says"), BAD_OVERRIDES, ids=[o for o, _, _ in BAD_OVERRIDES])
def test_a_bad_override_is_one_line_naming_the_option(tmp_path, capsys, override, option, says):
    run_dir = tmp_path / "run"
    code = main(["pretrain", "--config", "barlow_twins_tiny", "--run-dir", str(run_dir), override])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speechssl: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert option in lines[0] and says in lines[0], lines[0]
    assert not run_dir.exists()  # refused before anything was written
