"""VoxCeleb1 speaker verification, read in its native layout.

Nagrani, Chung & Zisserman, *VoxCeleb: a large-scale speaker identification dataset*,
Interspeech 2017. Audio is ``wav/{speaker}/{youtube id}/{NNNNN}.wav`` (16 kHz), directly
under the root or in the extracted archives (any ``*/wav`` folder, e.g. ``vox1_dev_wav/wav``
and ``vox1_test_wav/wav``). The trial list ``veri_test.txt`` has one trial per line,
``{1|0} {enrolment path} {test path}`` (1: same speaker), paths relative to ``wav/``.

Splits follow SUPERB (s3prl ``sv_voxceleb1``): the speakers of the trial list are the
``test`` speakers (40 in VoxCeleb1), every other speaker (1,211) is a ``train`` (dev-set)
speaker. The head is trained on the ``train`` speakers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances, require_folder
from speechssl.data.corpora.voxceleb1 import wav_folders
from speechssl.data.manifest import Manifest

CORPUS = "voxceleb1_verification"
TRIAL_FILE = "veri_test.txt"


@dataclass(frozen=True)
class TrialLine:
    """One line of a VoxCeleb trial list: the label and the two utterance ids (paths without ``.wav``)."""

    target: bool
    enrolment: str
    test: str


def _utterance_id(path: str, where: str) -> str:
    if len(Path(path).parts) != 3 or not path.endswith(".wav"):
        raise ValueError(f"{where}: expected paths like id10270/5r0dWxy17C8/00001.wav, found {path!r}")
    return path.removesuffix(".wav")


def read_trial_list(path: str | Path) -> list[TrialLine]:
    """The trials of a VoxCeleb trial list (``{1|0} {speaker}/{video}/{file}.wav`` twice per line).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line not in that format (naming file and line), or an empty list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus {CORPUS!r}: trial list not found: {path}")
    trials = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        fields = line.split()
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise ValueError(f"{where}: expected '{{1|0}} enrolment.wav test.wav', found {line.strip()!r}")
        trials.append(
            TrialLine(fields[0] == "1", _utterance_id(fields[1], where), _utterance_id(fields[2], where))
        )
    if not trials:
        raise ValueError(f"corpus {CORPUS!r}: {path} holds no trials")
    return trials


def load_voxceleb1_verification(
    root: str | Path, bad_files: BadFileSummary | None = None, trials: str = TRIAL_FILE
) -> Manifest:
    """Manifest of every VoxCeleb1 file under ``root``, split into ``train`` (speakers absent
    from the trial list) and ``test`` (speakers of the trial list).

    Ids are paths relative to ``wav/`` without ``.wav`` (``id10270/5r0dWxy17C8/00001``), as
    the trial list names them; the speaker is their first part.

    Args:
        root: the folder holding ``trials`` and the ``wav`` folder(s).
        bad_files: where to record files whose header is bad (they are left out).
        trials: the trial list's file name under ``root`` (``veri_test.txt``; the cleaned
            ``veri_test2.txt`` has the same format).

    Raises:
        FileNotFoundError: no such folder, trial list or ``wav`` folder, or a file the
            trial list names is in no ``wav`` folder.
        ValueError: a malformed trial line, or no speaker left for training.
    """
    root = require_folder(root, CORPUS)
    listed = read_trial_list(root / trials)
    folders = wav_folders(root, CORPUS)
    files = {
        path.relative_to(folder).with_suffix("").as_posix(): path
        for folder in reversed(folders)
        for path in folder.glob("*/*/*.wav")
    }
    missing = sorted({u for t in listed for u in (t.enrolment, t.test)} - set(files))
    if missing:
        raise FileNotFoundError(
            f"corpus {CORPUS!r}: {root / trials} names {len(missing)} file(s) in no wav folder under "
            f"{root}, e.g. {missing[0]}.wav"
        )
    test_speakers = {u.split("/")[0] for t in listed for u in (t.enrolment, t.test)}
    if not {u.split("/")[0] for u in files} - test_speakers:
        raise ValueError(
            f"corpus {CORPUS!r}: every speaker under {root} is in {trials}; none is left to train on"
        )
    candidates = [
        PendingUtterance(
            files[utterance],
            id=utterance,
            speaker=utterance.split("/")[0],
            split="test" if utterance.split("/")[0] in test_speakers else "train",
        )
        for utterance in sorted(files)
    ]
    return Manifest(probe_utterances(candidates, bad_files))
