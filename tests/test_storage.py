"""Atomic writes, folder publishing and the content-addressed entry protocol of speechssl.storage."""

from __future__ import annotations

import json
import os
import stat

import pytest

from speechssl.storage import (
    IDS_FILE,
    META_FILE,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    cached_entry,
    content_key,
    entry_path,
    is_partial,
    publish_folder,
    staging_folder,
)


def test_atomic_write_text_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "sub" / "note.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second ü")
    assert path.read_text(encoding="utf-8") == "second ü"
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["note.txt"]


def test_a_write_that_raises_midway_keeps_the_old_file_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "result.json"
    atomic_write_json(path, {"a": 1})

    def half_then_fail(temporary):
        temporary.write_text('{"a": ')
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(path, half_then_fail)
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_atomic_write_json_round_trips_with_a_trailing_newline(tmp_path):
    path = atomic_write_json(tmp_path / "x.json", {"b": [1, 2]})
    assert path.read_text().endswith("}\n")
    assert json.loads(path.read_text()) == {"b": [1, 2]}


def test_temporary_names_are_recognised_as_partial(tmp_path):
    names = []
    atomic_write(
        tmp_path / "f.txt", lambda temporary: names.append(temporary.name) or temporary.write_text("")
    )
    assert is_partial(names[0]) and not is_partial("f.txt") and not is_partial("step_00000001")


def test_publish_folder_replaces_an_existing_folder_or_keeps_it(tmp_path):
    destination = tmp_path / "entry"
    for content, replace, published in (("one", True, True), ("two", True, True), ("three", False, False)):
        with staging_folder(destination) as staging:
            (staging / "data.txt").write_text(content)
            assert publish_folder(staging, destination, replace=replace) is published
    assert (destination / "data.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_a_staging_folder_is_removed_when_its_block_raises(tmp_path):
    with pytest.raises(ValueError), staging_folder(tmp_path / "entry") as staging:
        (staging / "half.bin").write_bytes(b"\0" * 10)
        raise ValueError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_content_key_is_order_independent_and_sensitive_to_values():
    assert content_key({"a": 1, "b": [2]}) == content_key({"b": [2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert len(content_key({})) == 64


class _Writer:
    """Writes ``value.txt`` and counts its calls."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, folder):
        self.calls += 1
        (folder / "value.txt").write_text(self.value)
        return {"length": len(self.value)}


def _read(folder, hit):
    return (folder / "value.txt").read_text(), hit


def test_a_content_addressed_entry_is_written_once_then_reused(tmp_path):
    write = _Writer("hello")
    parts = {"format": 1, "input": "abc"}
    assert cached_entry(tmp_path, parts, ["u1", "u2"], write, _read) == ("hello", False)
    assert cached_entry(tmp_path, parts, ["u1", "u2"], write, _read) == ("hello", True)
    assert write.calls == 1
    entry = entry_path(tmp_path, content_key(parts))
    meta = json.loads((entry / META_FILE).read_text())
    assert meta["key"] == content_key(parts) and meta["parts"] == parts and meta["length"] == 5
    assert json.loads((entry / IDS_FILE).read_text()) == ["u1", "u2"]
    assert not any(is_partial(p) for p in tmp_path.rglob("*"))


def test_other_parts_make_another_entry(tmp_path):
    write = _Writer("x")
    cached_entry(tmp_path, {"input": 1}, [], write, _read)
    cached_entry(tmp_path, {"input": 2}, [], write, _read)
    assert write.calls == 2


def test_a_damaged_entry_or_one_with_other_ids_is_recomputed(tmp_path):
    write = _Writer("v")
    parts = {"input": 1}
    cached_entry(tmp_path, parts, ["a"], write, _read)
    entry = entry_path(tmp_path, content_key(parts))
    (entry / META_FILE).write_text("{not json")
    assert cached_entry(tmp_path, parts, ["a"], write, _read) == ("v", False)
    assert cached_entry(tmp_path, parts, ["b"], write, _read) == ("v", False)
    assert write.calls == 3
    assert json.loads((entry / IDS_FILE).read_text()) == ["b"]


def test_an_entry_whose_write_fails_leaves_nothing(tmp_path):
    def fail(folder):
        (folder / "value.txt").write_text("half")
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space"):
        cached_entry(tmp_path, {"input": 1}, [], fail, _read)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_published_files_and_folders_get_the_umask_permissions_not_tempfiles_private_ones(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    file = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask
    with staging_folder(tmp_path / "folder") as staging:
        (staging / "b.txt").write_text("y")
        publish_folder(staging, tmp_path / "folder")
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
