import pytest

pytest.importorskip("transformers")


def test_vs_transformers_runs_end_to_end_on_tiny(capsys, load_benchmark):
    tiny = ["--train-presets", "tiny", "--inference-presets", "tiny", "--seconds", "0.5", "0.3"]
    load_benchmark("vs_transformers").main([*tiny, "--repeats", "1", "--threads", "1"])
    table = capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if "| tiny |" in line}
    assert set(rows) == {"wav2vec 2.0 training", "HuBERT training", "inference"}
    for line in rows.values():
        ours, theirs = line.split(" | ")[2].split(" / ")
        assert ours == theirs  # same architecture, same parameter count
