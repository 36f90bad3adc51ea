"""Reading audio files: decoding, downmixing, resampling and clear errors for bad files.

Decoding goes through `soundfile <https://python-soundfile.readthedocs.io>`_ (libsndfile:
WAV, FLAC, OGG, ...) and resampling through `soxr <https://github.com/dofuuz/python-soxr>`_.
Every failure is an :class:`AudioError` naming the file, so that one corrupt file in a
corpus of thousands can be found; :class:`BadFileSummary` counts and lists the files that
were skipped instead when a caller chooses to go on without them.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import soxr

DEFAULT_SAMPLE_RATE = 16000
"""Hz: speechssl's default audio rate; what a run actually uses is ``EncoderConfig.sample_rate``
(checked against ``data.sample_rate``), passed to every consumer."""


class AudioError(Exception):
    """An audio file is missing, unreadable, empty or holds non-finite samples.

    Attributes:
        path: the file.
        reason: what is wrong with it, without the file name.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self) -> tuple:
        # Keeps the exception picklable, so it crosses DataLoader worker processes intact.
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read without decoding the samples.

    Attributes:
        frames: number of samples per channel.
        sample_rate: samples per second.
        channels: number of channels.
        format: container (``WAV``, ``FLAC``, ...).
        subtype: sample encoding (``PCM_16``, ``FLOAT``, ...).
    """

    frames: int
    sample_rate: int
    channels: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of ``path`` (``soundfile.info``) without decoding it.

    Raises:
        AudioError: the file is missing or is not an audio file libsndfile can read.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(path, f"not a readable audio file ({err})") from err
    return AudioInfo(
        frames=int(info.frames),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def load_audio(
    path: str | Path,
    target_sr: int | None = DEFAULT_SAMPLE_RATE,
    offset_seconds: float = 0.0,
    num_seconds: float | None = None,
) -> np.ndarray:
    """Decode ``path`` to a mono float32 waveform ``(samples,)`` at ``target_sr``.

    Channels are averaged to mono, then the signal is resampled with soxr (``HQ``
    quality) when the file's rate differs from ``target_sr``.

    Args:
        path: any file libsndfile reads (WAV, FLAC, OGG, ...).
        target_sr: output sample rate; ``None`` keeps the file's own rate.
        offset_seconds: start of the segment to read, in seconds from the file's start.
        num_seconds: length of the segment to read; ``None`` reads to the end. A segment
            running past the end of the file is cut short there.

    Returns:
        ``(samples,)`` float32 waveform, nominally in [-1, 1].

    Raises:
        AudioError: the file is missing, unreadable or not audio, holds no samples, the
            offset lies past its end, or the decoded samples are not all finite.
    """
    path = Path(path)
    if offset_seconds < 0:
        raise ValueError(f"{path}: offset_seconds must be >= 0, found {offset_seconds}")
    if num_seconds is not None and num_seconds <= 0:
        raise ValueError(f"{path}: num_seconds must be > 0, found {num_seconds}")
    if not path.is_file():
        raise AudioError(path, "file not found")
    return _decode(str(path), path, target_sr, offset_seconds, num_seconds)


def load_audio_bytes(
    data: bytes,
    name: str | Path,
    target_sr: int | None = DEFAULT_SAMPLE_RATE,
    offset_seconds: float = 0.0,
    num_seconds: float | None = None,
) -> np.ndarray:
    """:func:`load_audio` of an audio file's bytes held in memory (e.g. read from a tar shard).

    Args:
        data: the file's bytes, as stored.
        name: what errors call the file.

    Raises:
        AudioError: as :func:`load_audio`, naming ``name``.
    """
    if offset_seconds < 0:
        raise ValueError(f"{name}: offset_seconds must be >= 0, found {offset_seconds}")
    if num_seconds is not None and num_seconds <= 0:
        raise ValueError(f"{name}: num_seconds must be > 0, found {num_seconds}")
    return _decode(io.BytesIO(data), Path(name), target_sr, offset_seconds, num_seconds)


def _decode(
    source: str | io.BytesIO,
    path: Path,
    target_sr: int | None,
    offset_seconds: float,
    num_seconds: float | None,
) -> np.ndarray:
    """Decode, downmix and resample ``source`` (a file name or an open byte stream) called ``path``."""
    try:
        with soundfile.SoundFile(source) as file:
            source_sr = int(file.samplerate)
            if file.frames == 0:
                raise AudioError(path, "empty audio file (0 samples)")
            start = round(offset_seconds * source_sr)
            if start >= file.frames:
                raise AudioError(
                    path,
                    f"offset {offset_seconds:.3f} s is past the end of the file "
                    f"({file.frames / source_sr:.3f} s); is the manifest duration wrong?",
                )
            frames = -1 if num_seconds is None else max(1, round(num_seconds * source_sr))
            file.seek(start)
            data = file.read(frames, dtype="float32", always_2d=True)  # (samples, channels)
    except AudioError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioError(path, f"not a readable audio file ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(path, "empty audio file (0 samples decoded)")
    waveform = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]  # (samples,)
    if not np.isfinite(waveform).all():
        bad = int(np.count_nonzero(~np.isfinite(waveform)))
        raise AudioError(path, f"{bad} non-finite (NaN or inf) samples")
    if target_sr is not None and target_sr != source_sr:
        waveform = soxr.resample(waveform, source_sr, target_sr, quality="HQ")
    return np.ascontiguousarray(waveform, dtype=np.float32)


@dataclass(frozen=True)
class BadFile:
    """One file that could not be used.

    Attributes:
        id: utterance id in its manifest.
        path: the file.
        reason: the :class:`AudioError` reason.
    """

    id: str
    path: str
    reason: str


@dataclass
class BadFileSummary:
    """The files skipped because they were bad, in the order they were found."""

    files: list[BadFile] = field(default_factory=list)

    def add(self, bad: BadFile) -> None:
        self.files.append(bad)

    def extend(self, bad: Iterable[BadFile]) -> None:
        self.files.extend(bad)

    @property
    def count(self) -> int:
        return len(self.files)

    @property
    def ids(self) -> set[str]:
        return {bad.id for bad in self.files}

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[BadFile]:
        return iter(self.files)

    def __bool__(self) -> bool:
        return bool(self.files)

    def format(self, limit: int = 20) -> str:
        """Human-readable list: the count, then up to ``limit`` files with their reasons."""
        if not self.files:
            return "no bad files"
        lines = [f"{self.count} bad file(s) skipped:"]
        lines += [f"  {bad.id}: {bad.path}: {bad.reason}" for bad in self.files[:limit]]
        if self.count > limit:
            lines.append(f"  ... and {self.count - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {"count": self.count, "files": [asdict(bad) for bad in self.files]}
