"""The evaluation report from typed rows: main and secondary metrics, paired tests, decodings, figures."""

from __future__ import annotations

from dataclasses import replace

from speechssl.downstream.report import saturated, task_chance, upstreams_as_rows, write_report
from speechssl.downstream.row import Row
from speechssl.downstream.statistics import summarize
from speechssl.downstream.tasks import ASRTask, UtteranceTask, VerificationTask


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


def accuracy_rows(values: dict[str, list[float]], task: str = "kws_toy") -> list[Row]:
    return [
        Row(task, seed, "accuracy", value, True, [0.2, 0.3, 0.5], {"chance": 0.25}, upstream)
        for upstream, seeds in values.items()
        for seed, value in enumerate(seeds)
    ]


KWS = UtteranceTask("kws_toy", "toy", "toy", "keyword", "toy split", lambda manifest: [manifest])


def test_paired_tests_are_holm_corrected_and_too_few_seeds_are_named(tmp_path):
    # b beats a on every seed: exact Wilcoxon p = 2/2^n; c equals a: p = 1
    a = [0.50, 0.52, 0.54, 0.56, 0.58, 0.60]
    values = {"a": a, "b": [v + 0.1 + 0.01 * i for i, v in enumerate(a)], "c": a}
    markdown = write_report(accuracy_rows(values), [KWS], list(values), tmp_path).read_text()
    # 6 seeds: p = 2/64 = 0.03125, Holm over 2 comparisons: 0.0625 -> not significant
    assert "| kws_toy | b | +0.125 | 6 | 0.0312 | 0.0625 | no |" in markdown
    assert "| kws_toy | c | +0.000 | 6 | 1 | 1 | no |" in markdown
    assert (
        "kws_toy: with 6 seeds the smallest two-sided Wilcoxon p-value is 2/2^6 = 0.0312, and Holm "
        "multiplies the smallest of 2 by 2: no difference can reach p < 0.05 whatever its size; "
        "7 seeds are needed." in markdown
    )
    seven = {name: [*seeds, seeds[-1] + (0.2 if name == "b" else 0.02)] for name, seeds in values.items()}
    markdown = write_report(accuracy_rows(seven), [KWS], list(seven), tmp_path).read_text()
    # 7 seeds, b − a = 0.75 + 0.33 over 7: p = 2/128 = 0.0156, Holm ×2 = 0.03125 -> significant, no note
    assert "| kws_toy | b | +0.154 | 7 | 0.0156 | 0.0312 | yes |" in markdown
    assert "seeds are needed" not in markdown


def test_intervals_are_clipped_and_pretrained_models_are_labelled(tmp_path):
    values = {
        "fbank": [0.98, 1.0, 1.0],
        "random:tiny": [0.6, 0.7, 0.8],
        str(tmp_path / "run"): [0.9, 0.9, 0.9],
    }
    markdown = write_report(
        accuracy_rows(values), [KWS], list(values), tmp_path, {str(tmp_path / "run"): "hubert"}
    )
    text = markdown.read_text()
    assert "0.993 ± 0.012 [0.965, 1.000]" in text  # the t interval would end at 1.022
    assert "| fbank | no learned weights |" in text
    assert "| random:tiny | random weights, drawn once |" in text
    assert "| hubert | pretrained once |" in text and "the seeds vary the probe only" in text


def test_many_upstreams_are_rows_and_few_are_columns(tmp_path):
    many = {f"upstream_{i:02d}": [0.5 + 0.01 * i, 0.52, 0.51] for i in range(20)}
    text = write_report(accuracy_rows(many), [KWS], list(many), tmp_path).read_text()
    assert "| upstream | kws_toy · test accuracy · toy split |" in text
    assert text.count("| upstream_") == 20 + 19 + 20  # results rows, paired tests, weights table
    html = (tmp_path / "report.html").read_text()
    results = html.split("<h2>Results")[1].split("</table>")[0]
    assert results.count("<tr>") == 22 and results.count("<th>") == 2  # 20 upstreams and chance, 2 columns
    assert "| chance | 0.250 |" in text
    assert '<div class="scroll"><table>' in html  # a wide table scrolls instead of overflowing the page
    few = {"a": [0.5, 0.6], "b": [0.6, 0.7]}
    text = write_report(accuracy_rows(few), [KWS], list(few), tmp_path).read_text()
    assert "| task | metric | split | a | b | chance |" in text
    assert (
        "| kws_toy | test accuracy | toy split | 0.550 ± 0.071 [0.000, 1.000] | 0.650 ± 0.071 [0.015, 1.000] | 0.250 |"
        in text
    )


def test_boxplots_show_the_rows_chance_and_the_layer_weights_are_a_heatmap(tmp_path):
    rows = accuracy_rows({"a": [0.5, 0.6], "b": [0.6, 0.7]})
    write_report(rows, [KWS], ["a", "b"], tmp_path)
    with_chance = (tmp_path / "boxplots.png").read_bytes()
    write_report([replace(r, extras={}) for r in rows], [KWS], ["a", "b"], tmp_path)
    assert (tmp_path / "boxplots.png").read_bytes() != with_chance
    assert task_chance(rows, KWS) == 0.25 and task_chance([replace(r, extras={}) for r in rows], KWS) is None
    verification = VerificationTask("sv_toy", "toy", "toy", "speaker", "toy trials")
    assert task_chance([], verification) == 0.5  # EER of a scorer that ignores its input, whatever the data
    assert (tmp_path / "layer_weights_kws_toy.png").is_file()


def test_orientation_rule():
    assert not upstreams_as_rows(4, 1) and upstreams_as_rows(5, 1) and upstreams_as_rows(20, 9)
    assert not upstreams_as_rows(20, 25)  # more tasks than upstreams: tasks stay the rows


def test_ceiling_column_and_saturation_note(tmp_path):
    tasks = [
        UtteranceTask(name, "toy", "toy", "keyword", "toy split", lambda m: [m]) for name in ("easy", "hard")
    ]
    values = {  # task: upstream: accuracy per seed; ceiling per task
        "easy": {"a": [0.97, 0.99, 1.0], "b": [0.95, 1.0, 0.99]},
        "hard": {"a": [0.60, 0.62, 0.61], "b": [0.90, 0.97, 0.99]},
    }
    ceiling = {"easy": 0.99, "hard": 0.98}
    rows = [
        Row(task, seed, "accuracy", value, True, None, {"chance": 0.1, "ceiling": ceiling[task]}, upstream)
        for task, by_upstream in values.items()
        for upstream, seeds in by_upstream.items()
        for seed, value in enumerate(seeds)
    ]
    markdown = write_report(rows, tasks, ["a", "b"], tmp_path).read_text()
    assert "| task | metric | split | a | b | chance | ceiling |" in markdown
    assert markdown.count("| 0.100 | 0.990 |") == 1 and "| 0.100 | 0.980 |" in markdown
    assert "easy: saturated, the ceiling 0.990 lies within every upstream's 95% CI" in markdown
    assert "hard: saturated" not in markdown  # a's interval [0.585, 0.635] stays below 0.98


def test_saturated_needs_every_interval_to_reach_the_ceiling():
    near, far = summarize([0.97, 0.99, 1.0]), summarize([0.60, 0.62, 0.61])
    assert saturated([near], 0.99) and not saturated([near, far], 0.99)
    assert not saturated([summarize([1.0])], 0.99)  # one seed: no interval, no verdict
    assert not saturated([summarize([0.50, 0.52, 0.51])], 0.03)  # far above a ceiling the condition broke
