"""The evaluation report from typed rows: main and secondary metrics, paired tests, decodings, figures."""

from __future__ import annotations

from speechssl.downstream.report import write_report
from speechssl.downstream.row import Row
from speechssl.downstream.tasks import ASRTask


def test_report_lists_secondary_metrics_paired_tests_and_decodings(tmp_path):
    task = ASRTask("asr_toy", "toy", "toy", "transcript", "toy split")
    rows = [
        Row(
            "asr_toy", seed, "wer", base + 0.01 * seed, False, [0.5, 0.5],
            {"cer": base / 2, "examples": [["THE CAT", f"THE CAT {upstream}"]]}, upstream,
        )
        for upstream, base in (("a", 0.9), ("b", 0.7))
        for seed in range(3)
    ]  # fmt: skip
    markdown = write_report(rows, [task], ["a", "b"], tmp_path).read_text()
    assert "| asr_toy | test WER (lower is better) | toy split | 0.910 ± 0.010" in markdown
    assert "| asr_toy | CER | 0.450 ± 0.000 [0.450, 0.450] | 0.350 ± 0.000 [0.350, 0.350] |" in markdown
    assert "| asr_toy | b | -0.200 |" in markdown
    assert "| asr_toy | b | THE CAT | THE CAT b |" in markdown
    html = (tmp_path / "report.html").read_text()
    assert "<td>THE CAT b</td>" in html and 'src="layer_weights_asr_toy.png"' in html
