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
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

PARTIAL_SUFFIX = ".partial"
META_FILE = "meta.json"
IDS_FILE = "ids.json"
CHECKSUMS_FILE = "checksums.json"
LOCK_FILE = ".lock"


class DamagedError(ValueError):
    """A stored file is missing, truncated or differs from the checksum recorded when it was written."""


class FolderLockedError(FileExistsError):
    """Another live process holds the lock of a folder."""


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
        tempfile.mkdtemp(
            prefix=f".{destination.name}.{_owner_tag()}.", suffix=PARTIAL_SUFFIX, dir=destination.parent
        )
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
    remove_stale_partials(entry.parent)
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


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of the content of file ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: str | Path) -> Path:
    """Record the size and SHA-256 of every file of ``folder`` in ``folder/checksums.json``.

    Call it last, on a staging folder before :func:`publish_folder`, so that the record is
    published with the files it describes.
    """
    folder = Path(folder)
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != CHECKSUMS_FILE
    }
    path = folder / CHECKSUMS_FILE
    path.write_text(json.dumps({"files": files}, indent=2) + "\n", encoding="utf-8")
    return path


def verify_checksums(folder: str | Path, names: Sequence[str] | None = None) -> bool:
    """Check the files of ``folder`` (or only ``names``) against ``folder/checksums.json``.

    Returns:
        ``True`` when every file checked matches its record; ``False`` when the folder has no
        ``checksums.json`` (written before checksums existed: nothing to check against).

    Raises:
        DamagedError: naming the first file that is missing, has another size, or another
            content, or a ``checksums.json`` that cannot be read.
    """
    folder = Path(folder)
    record = folder / CHECKSUMS_FILE
    if not record.is_file():
        return False
    try:
        files = read_json(record)["files"]
        expected = {name: (int(entry["bytes"]), str(entry["sha256"])) for name, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedError(f"{record}: unreadable checksum record ({error})") from error
    for name in names if names is not None else sorted(expected):
        path = folder / name
        if name not in expected:
            raise DamagedError(f"{path}: expected a checksum for it in {record}, found none")
        size, sha256 = expected[name]
        if not path.is_file():
            raise DamagedError(f"{path}: missing (recorded in {record})")
        found = path.stat().st_size
        if found != size:
            raise DamagedError(f"{path}: expected {size} bytes, found {found} (truncated or overwritten)")
        if file_sha256(path) != sha256:
            raise DamagedError(f"{path}: content differs from its checksum in {record} (damaged)")
    return True


def format_bytes(count: float) -> str:
    """``count`` bytes as a short human-readable size (``1.5 MB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def disk_full_error(folder: str | Path, needed: int, what: str) -> OSError:
    """The ``OSError(ENOSPC)`` saying that ``what`` needs ``needed`` bytes in ``folder`` and how much is free."""
    try:
        free = f"{format_bytes(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return OSError(
        errno.ENOSPC,
        f"{what}: not enough disk space in {folder}: needs about {format_bytes(needed)}, {free}; "
        "free some space (partial files were removed) and run again",
    )


def is_disk_full(error: BaseException, folder: str | Path, needed: int) -> bool:
    """Whether ``error`` (raised while writing ``needed`` bytes into ``folder``) means the disk is full:
    an ``ENOSPC``/``EDQUOT`` ``OSError`` in its chain, or less than ``needed`` bytes free now
    (libraries such as torch and safetensors report a full disk in their own words)."""
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        current = current.__cause__ or current.__context__
    try:
        return shutil.disk_usage(folder).free < needed
    except OSError:
        return False


def reserve_space(path: str | Path, what: str) -> None:
    """Allocate every block of file ``path`` now (``posix_fallocate``), so that writing it
    through a memory map cannot fail later with SIGBUS on a full disk.

    Raises:
        OSError: ``ENOSPC``, naming ``what``, the folder and the bytes needed.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        if hasattr(os, "posix_fallocate"):
            fd = os.open(path, os.O_RDWR)
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        elif shutil.disk_usage(path.parent).free < size:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full_error(path.parent, size, what) from error
        raise


def _owner_tag() -> str:
    return f"pid{os.getpid()}@{socket.gethostname()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: str | Path, max_age_s: float = 24 * 3600) -> list[Path]:
    """Delete the temporary files and folders (:func:`is_partial`) in ``folder`` that no live
    process is writing: those whose writer (its pid and host are in the name) is no longer
    running on this host, and those of another host or of unknown writer older than ``max_age_s``.

    Returns:
        What was deleted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host, now, removed = socket.gethostname(), time.time(), []
    for path in folder.iterdir():
        if not is_partial(path):
            continue
        owner = re.search(r"\.pid(\d+)@(.+)\.[^.]+" + re.escape(PARTIAL_SUFFIX) + "$", path.name)
        try:
            old = now - path.lstat().st_mtime > max_age_s
        except FileNotFoundError:
            continue
        stale = not _pid_alive(int(owner[1])) if owner is not None and owner[2] == host else old
        if stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "folder") -> Iterator[Path]:
    """Hold ``folder/.lock`` (this process's pid and host, created with ``O_EXCL``) for the block.

    A lock left by a process that is no longer running on this host is taken over (with a
    warning); a lock of a live process, or of another host, raises :class:`FolderLockedError`
    before anything else is done.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_FILE
    host, pid = socket.gethostname(), os.getpid()
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
                holder_pid, holder_host = int(holder["pid"]), str(holder["host"])
            except FileNotFoundError:
                continue  # released meanwhile: try again
            except (OSError, ValueError, KeyError, TypeError):
                holder_pid, holder_host = -1, host  # unreadable: a writer died mid-write
            if holder_host != host or (holder_pid > 0 and _pid_alive(holder_pid)):
                raise FolderLockedError(
                    f"{what} {folder} is in use by process {holder_pid} on {holder_host} (lock file {lock}); "
                    "wait for it to finish, or remove the lock file if that process is gone"
                ) from None
            warnings.warn(
                f"{lock}: taking over the lock of process {holder_pid}, which is no longer running",
                stacklevel=3,
            )
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"pid": pid, "host": host}) + "\n")
        break
    else:
        raise FolderLockedError(f"{what} {folder}: could not take the lock file {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(lock.read_text(encoding="utf-8"))["pid"] == pid:
                lock.unlink()


__all__ = [
    "CHECKSUMS_FILE",
    "IDS_FILE",
    "LOCK_FILE",
    "META_FILE",
    "PARTIAL_SUFFIX",
    "DamagedError",
    "FolderLockedError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "cached_entry",
    "content_key",
    "disk_full_error",
    "entry_path",
    "file_sha256",
    "folder_lock",
    "format_bytes",
    "fsync_path",
    "is_disk_full",
    "is_partial",
    "publish_folder",
    "read_json",
    "remove_stale_partials",
    "reserve_space",
    "staging_folder",
    "stored_entry",
    "verify_checksums",
    "write_checksums",
]
