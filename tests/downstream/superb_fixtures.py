"""Tiny SUPERB corpora in their native layouts, written with generated audio (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def speaker_tone(f0: float, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-like tone: harmonics of ``f0`` (slightly jittered per call) plus a little noise."""
    t = np.arange(int(seconds * RATE)) / RATE
    f = f0 * (1 + rng.normal(0, 0.01))
    wave = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6))
    return (0.2 * wave + 0.01 * rng.normal(size=len(t))).astype(np.float32)


def write_voxceleb1(root: Path, dev_speakers: int = 6, test_speakers: int = 3, per_speaker: int = 4) -> Path:
    """VoxCeleb1 as distributed: ``vox1_dev_wav/wav`` and ``vox1_test_wav/wav`` folders of
    ``{speaker}/{video}/{NNNNN}.wav`` and a ``veri_test.txt`` over the test speakers
    (every same-speaker pair and as many different-speaker pairs). Each speaker has its own
    pitch, so speakers are easy to tell apart."""
    rng = np.random.default_rng(0)
    utterances: dict[str, list[str]] = {}
    for index in range(dev_speakers + test_speakers):
        speaker = f"id1{index:04d}"
        archive = "vox1_test_wav" if index >= dev_speakers else "vox1_dev_wav"
        for u in range(per_speaker):
            relative = f"{speaker}/video{u % 2}/{u + 1:05d}.wav"
            path = root / archive / "wav" / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, speaker_tone(110.0 * 1.25**index, 0.5, rng), RATE)
            utterances.setdefault(speaker, []).append(relative)
    test = [s for s in sorted(utterances)[dev_speakers:]]
    lines = []
    for i, speaker in enumerate(test):
        other = test[(i + 1) % len(test)]
        for a in range(per_speaker):
            for b in range(a + 1, per_speaker):
                lines.append(f"1 {utterances[speaker][a]} {utterances[speaker][b]}")
                lines.append(f"0 {utterances[speaker][a]} {utterances[other][b]}")
    (root / "veri_test.txt").write_text("\n".join(lines) + "\n")
    return root


QUESST_RATE = 8000


def _word(word: int, rng: np.random.Generator) -> np.ndarray:
    """A spoken-term stand-in: three 0.12 s tones whose frequencies spell ``word``."""
    scale = 1 + rng.normal(0, 0.01)
    tones = [300.0 * (1.5 ** ((word + k * 2) % 7)) * scale for k in range(3)]
    t = np.arange(int(0.12 * QUESST_RATE)) / QUESST_RATE
    return np.concatenate([0.3 * np.sin(2 * np.pi * f * t) for f in tones])


def _noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    return 0.02 * rng.normal(size=int(seconds * QUESST_RATE))


def write_quesst14(root: Path, words: int = 4, documents: int = 12) -> Path:
    """``quesst14Database`` as distributed: ``Audio/`` documents, ``dev_queries/`` and
    ``eval_queries/`` (one query per word, words split between dev and eval), and the NIST STD
    ground truth of each set under ``scoring/groundtruth_quesst14_{dev,eval}/``. Document
    ``d`` holds word ``d % (words + 2)`` (words ``words`` and ``words + 1`` are never queried)
    and a distractor word between stretches of noise, so each query occurs in 1/6 of the
    documents and a found occurrence's per-query z-score exceeds 2 (a YES decision)."""
    rng = np.random.default_rng(0)
    (root / "Audio").mkdir(parents=True)
    contents = {}
    for d in range(documents):
        name = f"quesst14_{d + 1:05d}"
        held = [d % (words + 2), words + 2]
        parts = [
            _noise(0.2, rng),
            _word(held[0], rng),
            _noise(0.3, rng),
            _word(held[1], rng),
            _noise(0.2, rng),
        ]
        sf.write(root / "Audio" / f"{name}.wav", np.concatenate(parts).astype(np.float32), QUESST_RATE)
        contents[name] = held
    sets = {"dev": range(0, words // 2), "eval": range(words // 2, words)}
    for query_set, query_words in sets.items():
        (root / f"{query_set}_queries").mkdir()
        truth = root / "scoring" / f"groundtruth_quesst14_{query_set}"
        truth.mkdir(parents=True)
        terms, rttm = [], []
        for number, word in enumerate(query_words, start=1):
            termid = f"quesst14_{query_set}_{number:04d}"
            audio = np.concatenate([_noise(0.05, rng), _word(word, rng), _noise(0.05, rng)])
            sf.write(root / f"{query_set}_queries" / f"{termid}.wav", audio.astype(np.float32), QUESST_RATE)
            terms.append(f'  <term termid="{termid}"><termtext>{termid}</termtext></term>')
            for name, held in contents.items():
                for position, held_word in enumerate(held):
                    if held_word == word:
                        start = 0.2 + position * 0.66
                        rttm.append(f"LEXEME {name} 1 {start:.2f} 0.36 {termid} lex <NA> <NA>")
        excerpts = [
            f'  <excerpt audio_filename="Audio/{name}.wav" channel="1" tbeg="0.000" dur="1.22" source_type="splitcts"/>'
            for name in contents
        ]
        (truth / "quesst14.ecf.xml").write_text(
            '<ecf source_signal_duration="9.76" version="quesst14">\n' + "\n".join(excerpts) + "\n</ecf>\n"
        )
        (truth / f"quesst14_{query_set}.tlist.xml").write_text(
            '<termlist ecf_filename="quesst14.ecf.xml" version="1" language="multiple" encoding="UTF-8">\n'
            + "\n".join(terms)
            + "\n</termlist>\n"
        )
        (truth / f"quesst14_{query_set}.rttm").write_text("\n".join(rttm) + "\n")
    return root


LIBRISPEECH_SUBSETS = {  # subset: (speaker, chapter, transcripts)
    "train-clean-100": (
        "19",
        "198",
        ["HELLO WORLD", "THE CAT SAT", "DON'T GO", "A QUICK BROWN FOX", "JUMPED OVER", "THE LAZY DOG",
         "XYZZYQ PLUGH"],
    ),
    "dev-clean": ("84", "121", ["THE DOG SAT", "HELLO CAT"]),
    "test-clean": ("61", "70", ["THE QUICK CAT", "GO OVER"]),
    "train-other-500": ("20", "205", ["NOT PART OF SUPERB"]),
}  # fmt: skip


def write_librispeech(data_root: Path) -> Path:
    """``LibriSpeech/<subset>/<speaker>/<chapter>/`` with FLAC files and ``<speaker>-<chapter>.trans.txt``,
    as the corpus is distributed (SUPERB's three subsets and one it does not use); returns ``data_root``."""
    rng = np.random.default_rng(0)
    for subset, (speaker, chapter, texts) in LIBRISPEECH_SUBSETS.items():
        folder = data_root / "LibriSpeech" / subset / speaker / chapter
        folder.mkdir(parents=True)
        lines = []
        for number, text in enumerate(texts):
            utt = f"{speaker}-{chapter}-{number:04d}"
            t = np.arange(int(RATE * 0.15 * len(text))) / RATE
            audio = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t) + 0.01 * rng.normal(size=t.size)
            sf.write(folder / f"{utt}.flac", audio.astype(np.float32), RATE)
            lines.append(f"{utt} {text}")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return data_root
