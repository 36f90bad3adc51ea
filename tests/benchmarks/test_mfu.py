import pytest
import torch

from speechssl.models.encoder import load_encoder_preset

pytest.importorskip("transformers")


def test_mfu_runs_end_to_end_on_tiny(capsys, load_benchmark):
    mfu = load_benchmark("mfu")
    smoke = [
        "--preset",
        "tiny",
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--batch-seconds",
        "1",
        "--crop-seconds",
        "0.5",
    ]
    mfu.main([*smoke, "--steps", "1", "--warmup", "0", "--peak-tflops", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split(" | ") for line in lines if line.startswith(("| speechssl", "| transformers"))]
    labels = [row[0].strip("| ") for row in rows]
    assert labels == [
        "speechssl wav2vec2",
        "transformers Wav2Vec2ForPreTraining",
        "speechssl hubert",
        "speechssl data2vec",
        "speechssl barlow_twins",
    ]
    for row in rows:
        assert float(row[4].replace(",", "")) > 0  # GFLOP per step counted
        assert row[-1].endswith("% |")  # MFU against the given peak


def test_the_peak_is_unknown_on_cpu_and_read_from_the_device_name(load_benchmark, monkeypatch):
    mfu = load_benchmark("mfu")
    assert mfu.device_peak_tflops(torch.device("cpu"), "bf16") is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 PCIe")
    assert mfu.device_peak_tflops(torch.device("cuda"), "bf16") == mfu.PEAK_TFLOPS["H100 PCIe"]["bf16"]
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert mfu.device_peak_tflops(torch.device("cuda"), "fp32") == mfu.PEAK_TFLOPS["H100"]["fp32"]


@pytest.mark.parametrize("preset", ["small", "base"])
def test_every_method_builds_its_config_at_the_larger_presets(preset, load_benchmark, tmp_path):
    mfu = load_benchmark("mfu")
    architecture = load_benchmark("same_architecture")
    for method in mfu.METHODS:
        config = architecture.pretrain_config(method, preset, tmp_path / "units")
        assert (config.encoder.frontend, config.encoder.dim) == ("waveform", load_encoder_preset(preset).dim)
    assert config.objective.projector == [8192, 8192, 8192]  # Barlow Twins: the base config's objective
