"""Tiny SUPERB corpora in their native layouts: Speech Commands v0.01 (with its test-set
archive), Fluent Speech Commands, VoxCeleb1 and IEMOCAP, of generated audio.

Every class is a tone of its own frequency (plus a little noise), so that log-mel features
separate the classes and a trained head scores well above chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

RATE = 16000


def write_tone(
    path: Path, frequency: float, seconds: float = 0.3, seed: int = 0, amplitude: float = 0.3
) -> Path:
    """A sine of ``frequency`` Hz (``amplitude`` 0: noise only) written as a 16 kHz wav."""
    path.parent.mkdir(parents=True, exist_ok=True)
    time = np.arange(round(seconds * RATE)) / RATE
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(time))
    soundfile.write(
        str(path), (amplitude * np.sin(2 * np.pi * frequency * time) + noise).astype(np.float32), RATE
    )
    return path


KS_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed")
KS_FREQUENCY = {word: 200.0 + 150.0 * i for i, word in enumerate(KS_WORDS)}
KS_FREQUENCY["_unknown_"] = KS_FREQUENCY["bed"]
KS_SPEAKERS = {"0a0b0c0d": "train", "1a1b1c1d": "train", "2a2b2c2d": "valid", "3a3b3c3d": "test"}


def write_speech_commands(data_root: Path, noise_seconds: float = 3.5) -> Path:
    """``speech_commands_v0.01`` (10 keywords and ``bed``, 4 speakers, the two list files and
    ``_background_noise_``) and ``speech_commands_test_set_v0.01`` (one file per class)."""
    root = data_root / "speech_commands_v0.01"
    lists: dict[str, list[str]] = {"valid": [], "test": []}
    seed = 0
    for word in KS_WORDS:
        for speaker, split in KS_SPEAKERS.items():
            for n in range(2 if split == "train" else 1):
                relative = f"{word}/{speaker}_nohash_{n}.wav"
                write_tone(root / relative, KS_FREQUENCY[word], seed=(seed := seed + 1))
                if split != "train":
                    lists[split].append(relative)
    (root / "validation_list.txt").write_text("\n".join(lists["valid"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")
    write_tone(root / "_background_noise_" / "white_noise.wav", 0.0, seconds=noise_seconds, amplitude=0.0)
    (root / "_background_noise_" / "README.md").write_text("noise\n")
    test = data_root / "speech_commands_test_set_v0.01"
    for word in (*KS_WORDS[:10], "_unknown_"):
        write_tone(
            test / word / f"4a4b4c4d_nohash_0{'_bed' if word == '_unknown_' else ''}.wav",
            KS_FREQUENCY[word],
            seed=99,
        )
    write_tone(test / "_silence_" / "silence_0.wav", 0.0, seconds=1.0, amplitude=0.0, seed=98)
    return root


FSC_INTENTS = (
    ("activate", "lights", "kitchen"),
    ("deactivate", "lights", "none"),
    ("increase", "volume", "none"),
)
FSC_SPEAKERS = {
    "2BqVo8kVB2Skwgyb": "train",
    "4aGjX3AG5xcxeL7a": "train",
    "7B4XmNppyrCK977p": "valid",
    "4BrX8aDqK2cLZRYl": "test",
}


def write_fluent_speech_commands(data_root: Path) -> Path:
    """``fluent_speech_commands_dataset``: 3 intents, speaker-disjoint split CSVs."""
    root = data_root / "fluent_speech_commands_dataset"
    lines = {
        split: [",path,speakerId,transcription,action,object,location\n"]
        for split in ("train", "valid", "test")
    }
    for s, (speaker, split) in enumerate(FSC_SPEAKERS.items()):
        for i, (action, obj, location) in enumerate(FSC_INTENTS):
            for n in range(2 if split == "train" else 1):
                relative = f"wavs/speakers/{speaker}/{s}{i}{n}-uuid.wav"
                write_tone(root / relative, 300.0 + 400.0 * i, seed=100 * s + 10 * i + n)
                lines[split].append(
                    f"{len(lines[split]) - 1},{relative},{speaker},{action} {obj},{action},{obj},{location}\n"
                )
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train_data.csv"), ("valid", "valid_data.csv"), ("test", "test_data.csv")):
        (root / "data" / name).write_text("".join(lines[split]))
    return root


VOX_SPEAKERS = ("id10001", "id10002", "id10003")


def write_voxceleb1(data_root: Path) -> Path:
    """``VoxCeleb1`` with ``vox1_dev_wav/wav`` and ``vox1_test_wav/wav`` and ``iden_split.txt``:
    3 speakers, 4 videos each (2 train, 1 dev, 1 test)."""
    root = data_root / "VoxCeleb1"
    lines = []
    for s, speaker in enumerate(VOX_SPEAKERS):
        for v, identification_set in enumerate((1, 1, 2, 3)):
            relative = f"{speaker}/video{v}abcde/{v + 1:05d}.wav"
            archive = "vox1_test_wav" if speaker == VOX_SPEAKERS[-1] else "vox1_dev_wav"
            write_tone(root / archive / "wav" / relative, 250.0 + 500.0 * s, seed=10 * s + v)
            lines.append(f"{identification_set} {relative}")
    (root / "iden_split.txt").write_text("\n".join(lines) + "\n")
    return root


ER_FREQUENCY = {"neu": 300.0, "hap": 800.0, "exc": 800.0, "ang": 1300.0, "sad": 1800.0, "fru": 2300.0}
ER_LABELS = ("neu", "hap", "exc", "ang", "sad", "fru", "xxx")


def write_iemocap(data_root: Path) -> Path:
    """``IEMOCAP_full_release`` with Session1..5, one improvised dialog each, one utterance per
    label of :data:`ER_LABELS` per speaker (``fru`` and ``xxx`` are not among SUPERB's four)."""
    root = data_root / "IEMOCAP_full_release"
    for number in range(1, 6):
        session = root / f"Session{number}"
        dialog = f"Ses0{number}F_impro01"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for g, gender in enumerate("FM"):
            for i, label in enumerate(ER_LABELS):
                utterance = f"{dialog}_{gender}{i:03d}"
                frequency = ER_FREQUENCY.get(label, 2800.0)
                write_tone(
                    session / "sentences" / "wav" / dialog / f"{utterance}.wav",
                    frequency,
                    seed=100 * number + 10 * g + i,
                )
                lines += [
                    f"[{i}.0000 - {i}.5000]\t{utterance}\t{label}\t[2.5000, 2.5000, 2.5000]",
                    f"C-E1:\t{label};\t()",
                    "",
                ]
        evaluation = session / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        evaluation.parent.mkdir(parents=True)
        evaluation.write_text("\n".join(lines) + "\n")
    return root
