"""Helpers shared by the corpus loaders: folder checks and header-only file probing.

Loaders first list their files as :class:`PendingUtterance` candidates (id, speaker,
split and labels from names and metadata alone), then hand them all to
:func:`probe_utterances`, which reads the headers on a thread pool and either stops at the
first bad file or records it in a :class:`~speechssl.data.audio.BadFileSummary` and drops it.
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from speechssl.data.audio import AudioError, AudioInfo, BadFile, BadFileSummary, audio_info
from speechssl.data.manifest import Utterance

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


@dataclass(frozen=True)
class PendingUtterance:
    """A corpus file a loader found, before its header is read.

    Attributes:
        path: the audio file.
        id: utterance id within the manifest.
        speaker: speaker id.
        split: split name.
        labels: task label columns, name -> value.
    """

    path: Path
    id: str
    speaker: str
    split: str
    labels: Mapping[str, str] = field(default_factory=dict)


def require_folder(root: str | Path, corpus: str) -> Path:
    """``root`` as a Path, or FileNotFoundError naming the corpus and the folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"corpus {corpus!r}: folder not found: {root}")
    return root


def _read_header(path: Path) -> AudioInfo | AudioError:
    """The header of ``path``, or the :class:`AudioError` saying why it is unusable (0 frames included)."""
    try:
        info = audio_info(path)
    except AudioError as err:
        return err
    if info.frames == 0:
        return AudioError(path, "empty audio file (0 samples)")
    return info


def probe_utterances(
    candidates: Sequence[PendingUtterance],
    bad_files: BadFileSummary | None = None,
    workers: int = 4,
) -> list[Utterance]:
    """Utterances for ``candidates``, in their order, with duration and rate from each file's header.

    A file is bad when it is missing, its header is unreadable (not audio) or it holds 0 frames.

    Args:
        candidates: the files to probe.
        bad_files: where to record bad files (each as a :class:`BadFile` with the candidate's
            id and the reason) and drop their rows; ``None`` stops at the first bad file.
        workers: threads reading headers.

    Raises:
        ValueError: ``workers`` < 1.
        AudioError: with ``bad_files=None``, the first bad file in candidate order (naming it).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, found {workers}")
    rows: list[Utterance] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        headers = pool.map(_read_header, [candidate.path for candidate in candidates])
        for candidate, header in zip(candidates, headers, strict=True):
            if isinstance(header, AudioError):
                if bad_files is None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise header
                bad_files.add(BadFile(id=candidate.id, path=str(candidate.path), reason=header.reason))
                continue
            rows.append(
                Utterance(
                    id=candidate.id,
                    path=candidate.path,
                    duration=header.duration,
                    sample_rate=header.sample_rate,
                    speaker=candidate.speaker,
                    split=candidate.split,
                    labels=dict(candidate.labels),
                )
            )
    return rows


def list_audio(folder: Path, bad_files: BadFileSummary | None = None) -> list[Path]:
    """Audio files (by suffix, case-insensitive) anywhere under ``folder``, sorted.

    Links to folders are not followed. What has an audio suffix but cannot be read as a file
    is bad, and so is a folder that cannot be listed: a link whose target is missing, a link
    loop, a FIFO, socket or device, a subfolder without read permission.

    Args:
        folder: the corpus folder.
        bad_files: where to record each such entry (its id the path relative to ``folder``),
            leaving it out; ``None`` raises at the first.

    Raises:
        AudioError: with ``bad_files=None``, the first such entry (naming it).
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []

    def unlistable(err: OSError) -> None:
        problems.append((Path(err.filename), f"folder not readable ({err.strerror})"))

    for parent, _, names in os.walk(folder, onerror=unlistable):
        for name in names:
            path = Path(parent, name)
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            reason = _not_a_file(path)
            if reason is None:
                files.append(path)
            else:
                problems.append((path, reason))
    for path, reason in sorted(problems):
        if bad_files is None:
            raise AudioError(path, reason)
        bad_files.add(BadFile(id=path.relative_to(folder).as_posix(), path=str(path), reason=reason))
    return sorted(files)


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` (a name os.walk listed as no folder) is no readable regular file, or ``None``."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        if os.path.islink(path):
            return f"broken symbolic link (target {os.readlink(path)} not found)"
        return f"cannot be read ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = (
        "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or other special file"
    )
    return f"not a regular file ({kind})"


def file_ids(root: Path, files: Sequence[Path]) -> list[str]:
    """The utterance id of each of ``files``: its path relative to ``root`` without suffix
    (``yes/001``), keeping the suffix for files whose stems collide (``x.wav`` and ``x.flac``)
    so that neither is dropped and the ids of every other file stay as they were."""
    stems = [path.relative_to(root).with_suffix("").as_posix() for path in files]
    counts = Counter(stems)
    return [
        stem if counts[stem] == 1 else path.relative_to(root).as_posix()
        for stem, path in zip(stems, files, strict=True)
    ]


def warn_missing_listed(
    corpus: str, root: Path, missing: Mapping[str, Sequence[str]], shown: int = 3
) -> None:
    """Warn, in one line, that a corpus's list files name files its folder lacks (a subset of the
    corpus): the count and the first ``shown`` names per list file; the loader uses the files present.

    Args:
        corpus: the loader's name.
        root: the corpus folder.
        missing: list file name -> the files it names that are not under ``root``.
    """
    parts = [
        f"{name} names {len(files)} ({', '.join(files[:shown])}{', ...' if len(files) > shown else ''})"
        for name, files in missing.items()
        if files
    ]
    if parts:
        warnings.warn(
            f"corpus {corpus!r}: files not under {root}, left out: {'; '.join(parts)}", stacklevel=3
        )
