"""Durable files and folders: atomic writes, atomic folder publishing, content-addressed entries.

Every file the toolkit writes for later reuse (checkpoints, manifests, metrics, evaluation
results, feature and unit-label cache entries) goes through this module, so all of them
have the same guarantee: a reader sees either the previous version or the complete new
one, never a half-written file, even after a crash or power loss.

* :func:`atomic_write` (and :func:`atomic_write_bytes`, :func:`atomic_write_text`,
  :func:`atomic_write_json`): the content goes to a temporary file in the destination's
  folder, which is flushed with ``fsync``, renamed over the destination with
  :func:`os.replace` (atomic on POSIX within one file system), and the folder is
  ``fsync``-ed so the rename itself survives a crash.
* :func:`staging_folder` and :func:`publish_folder`: a folder is filled under a temporary
  name beside its destination, every file in it is flushed, and it is renamed into place.
* :func:`cached_entry`: the content-addressed entry protocol of the feature cache and the
  unit-label cache. An entry's key is the SHA-256 of a JSON of everything its content
  depends on (:func:`content_key`); it lives in ``<root>/<key[:2]>/<key>/`` with the
  content, ``ids.json`` (the rows it holds, in order) and ``meta.json`` (the key, its
  parts, creation time, compute seconds); it is reused when present and intact,
  recomputed when damaged, and published atomically when computed.

Temporary names start with ``.`` and end with :data:`PARTIAL_SUFFIX`
(:func:`is_partial`), so leftovers of a crashed write can be recognised and removed. The
temporary files and folders are private while they are written; what is published gets the
permissions an ordinary ``open``/``mkdir`` would give (the process's umask).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

PARTIAL_SUFFIX = ".partial"
META_FILE = "meta.json"
IDS_FILE = "ids.json"

Entry = TypeVar("Entry")


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()  # read once, at import, before any thread could create files


def _publishable(path: Path) -> None:
    """Give ``path``, made private by ``tempfile``, the mode ``open``/``mkdir`` would have given it."""
    path.chmod((0o777 if path.is_dir() else 0o666) & ~_UMASK)


def is_partial(path: str | Path) -> bool:
    """Whether ``path`` is the temporary name of an unfinished write of this module."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def fsync_path(path: str | Path) -> None:
    """``fsync`` a file or folder (a folder so that the renames in it are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Make ``path`` hold what ``write(temporary path)`` writes, atomically and durably.

    ``write`` receives a path in the same folder as ``path`` (created if missing) and
    writes the whole file there; it is then ``fsync``-ed and renamed over ``path``, and
    the folder is ``fsync``-ed. If ``write`` raises, ``path`` is left as it was and no
    temporary file remains.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    os.close(fd)
    temporary = Path(name)
    try:
        write(temporary)
        _publishable(temporary)
        fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically and durably make ``path`` hold ``data`` (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically and durably make ``path`` hold ``text`` as UTF-8 (see :func:`atomic_write`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any, **dumps: Any) -> Path:
    """Atomically and durably write ``value`` to ``path`` as indented UTF-8 JSON.

    ``dumps`` are further :func:`json.dumps` options (e.g. ``default=str``).
    """
    return atomic_write_text(path, json.dumps(value, indent=2, **dumps) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON value stored in ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _fsync_tree(folder: Path) -> None:
    """``fsync`` every file and folder under ``folder``, ``folder`` last."""
    for parent, _, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(Path(parent) / name)
        fsync_path(parent)


def publish_folder(staging: str | Path, destination: str | Path, replace: bool = True) -> bool:
    """Flush every file of folder ``staging`` to disk and rename it to ``destination``.

    Args:
        staging: the filled folder, in the same file system as ``destination``
            (e.g. from :func:`staging_folder`).
        destination: the final folder name.
        replace: what to do when ``destination`` exists. ``True``: it is moved aside,
            ``staging`` takes its place and the old folder is deleted (``destination`` is
            missing only between two renames). ``False``: the existing folder is kept (for
            content-addressed folders, where another process wrote the same content) and
            ``staging`` is deleted.

    Returns:
        whether ``staging`` was published (``False`` only when ``replace`` is ``False`` and
        ``destination`` existed).
    """
    staging, destination = Path(staging), Path(destination)
    _publishable(staging)
    _fsync_tree(staging)
    aside = None
    if replace and destination.exists():
        aside = Path(
            tempfile.mkdtemp(
                prefix=f".{destination.name}.old.", suffix=PARTIAL_SUFFIX, dir=destination.parent
            )
        )
        os.replace(destination, aside)
    try:
        os.replace(staging, destination)
    except OSError:
        if aside is not None:
            os.replace(aside, destination)
        if replace or not destination.is_dir():
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return False
    fsync_path(destination.parent)
    if aside is not None:
        shutil.rmtree(aside)
    return True


@contextlib.contextmanager
def staging_folder(destination: str | Path) -> Iterator[Path]:
    """A new empty temporary folder beside ``destination``, removed on exit unless published.

    Fill it in the ``with`` block and hand it to :func:`publish_folder`; if the block
    raises, the folder and everything written into it are deleted.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=PARTIAL_SUFFIX, dir=destination.parent)
    )
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def content_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of ``parts`` as canonical JSON (sorted keys): the key of what they produce."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def entry_path(root: str | Path, key: str) -> Path:
    """The folder of the entry with hex ``key`` under ``root``: ``<root>/<key[:2]>/<key>``."""
    return Path(root) / key[:2] / key


def stored_entry(
    root: str | Path,
    parts: Mapping[str, Any],
    ids: Sequence[str],
    read: Callable[[Path, bool], Entry],
) -> Entry | None:
    """The stored entry of ``parts`` (``read(folder, True)``), or ``None`` when there is none.

    A damaged entry (see :func:`cached_entry`) is deleted and reads as ``None``.
    """
    key = content_key(parts)
    entry = entry_path(root, key)
    if not entry.is_dir():
        return None
    try:
        if read_json(entry / META_FILE)["key"] != key or read_json(entry / IDS_FILE) != list(ids):
            raise ValueError(f"{entry}: stored key or ids differ from the request's")
        return read(entry, True)
    except (OSError, ValueError, KeyError, TypeError):
        shutil.rmtree(entry, ignore_errors=True)  # damaged entry: recompute it
        return None


def cached_entry(
    root: str | Path,
    parts: Mapping[str, Any],
    ids: Sequence[str],
    write: Callable[[Path], Mapping[str, Any]],
    read: Callable[[Path, bool], Entry],
) -> Entry:
    """The content-addressed entry of ``parts``: read back when stored, else written and stored.

    The key is :func:`content_key` of ``parts``. An entry folder whose ``meta.json`` key or
    ``ids.json`` differ from the request, or that ``read`` rejects (``OSError``,
    ``ValueError``, ``KeyError``, ``TypeError``), is damaged: it is deleted and recomputed.

    Args:
        root: folder of the entries.
        parts: everything the content depends on (JSON-serialisable), stored in ``meta.json``.
        ids: the rows the entry holds, in order; stored as ``ids.json``.
        write: fills a new (staging) entry folder with the content and returns further
            ``meta.json`` fields.
        read: ``read(folder, hit)`` opens an entry folder; ``hit`` says whether it was
            stored before this call.
    """
    stored = stored_entry(root, parts, ids, read)
    if stored is not None:
        return stored
    entry = entry_path(root, content_key(parts))
    key = entry.name
    with staging_folder(entry) as staging:
        start = time.perf_counter()
        extra = dict(write(staging))
        (staging / IDS_FILE).write_text(json.dumps(list(ids), indent=2) + "\n", encoding="utf-8")
        meta = {
            "key": key,
            "parts": dict(parts),
            **extra,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "compute_seconds": round(time.perf_counter() - start, 3),
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        publish_folder(staging, entry, replace=False)
    return read(entry, False)


__all__ = [
    "IDS_FILE",
    "META_FILE",
    "PARTIAL_SUFFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cached_entry",
    "content_key",
    "entry_path",
    "fsync_path",
    "is_partial",
    "publish_folder",
    "read_json",
    "staging_folder",
    "stored_entry",
]
