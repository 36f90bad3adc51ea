"""Storage faults of checkpoints: damaged files, a `latest` pointing elsewhere, a full disk,
two runs into one run folder."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from train_standins import InMemoryData, StandInMethod, fast_optim_config, make_corpus, quiet_train_config

from speechssl import storage
from speechssl.models.checkpoint import LATEST, find_latest, load_encoder
from speechssl.models.encoder import SpeechEncoder, load_encoder_preset
from speechssl.storage import DamagedError, FolderLockedError, folder_lock, is_partial
from speechssl.train import checkpoint as checkpoint_module
from speechssl.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from speechssl.train.pretrain import run_folder_lock
from speechssl.train.schedule import build_scheduler
from speechssl.train.trainer import train
from speechssl.upstream import build_upstream

RESOLVED = {"method": "stand_in"}
RAW_MESSAGES = ("invalid header", "central directory", "weights_only", "EOFError", "incomplete metadata")


def _run(run_dir, max_steps: int, resume: bool = False):
    torch.manual_seed(0)
    config = quiet_train_config(max_steps=max_steps, checkpoint_every=1, keep_last=5)
    data = InMemoryData(make_corpus(6, seed=1), 2)
    return train(StandInMethod(), data, fast_optim_config(), config, run_dir, RESOLVED, resume=resume)


def _damage(path, how: str) -> None:
    size = path.stat().st_size
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: size // 2])
    elif how == "zeroed":
        path.write_bytes(bytes(size))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Weights after 3 uninterrupted updates."""
    return load_file(_run(tmp_path_factory.mktemp("straight"), 3).checkpoint / "model.safetensors")


@pytest.mark.parametrize("how", ["truncated", "zeroed", "empty", "missing"])
@pytest.mark.parametrize("name", ["model.safetensors", "encoder.safetensors", "trainer_state.pt"])
def test_resume_skips_a_damaged_checkpoint_for_the_newest_intact_one(tmp_path, straight, name, how):
    _run(tmp_path, 2)
    _damage(tmp_path / "step_00000002" / name, how)
    with pytest.warns(UserWarning, match=rf"skipped checkpoint step_00000002 \(.*{name}") as caught:
        result = _run(tmp_path, 3, resume=True)
    assert not any(raw in str(w.message) for w in caught for raw in RAW_MESSAGES)
    assert result.step == 3
    found = load_file(result.checkpoint / "model.safetensors")
    assert all(torch.equal(found[key], straight[key]) for key in straight)  # resumed from step 1, exactly
    assert (tmp_path / "damaged-step_00000002").is_dir()  # the damaged one is kept, not deleted
    assert (tmp_path / "step_00000001").is_dir()


def test_an_empty_step_folder_and_a_bit_flip_are_skipped(tmp_path, straight):
    _run(tmp_path, 2)
    (tmp_path / "step_00000009").mkdir()
    model = tmp_path / "step_00000002" / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1  # same size, other content: only the checksum sees it
    model.write_bytes(bytes(data))
    with pytest.warns(UserWarning) as caught:
        result = _run(tmp_path, 3, resume=True)
    messages = " ".join(str(w.message) for w in caught)
    assert "step_00000009" in messages and "differs from its checksum" in messages
    assert all(
        torch.equal(load_file(result.checkpoint / "model.safetensors")[k], straight[k]) for k in straight
    )


def test_no_intact_checkpoint_is_one_error_naming_each(tmp_path):
    _run(tmp_path, 1)
    _damage(tmp_path / "step_00000001" / "trainer_state.pt", "truncated")
    with (
        pytest.raises(DamagedError, match=r"no intact checkpoint.*trainer_state\.pt"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        _run(tmp_path, 2, resume=True)


def test_a_checkpoint_without_checksums_still_loads_and_its_damage_is_still_named(tmp_path):
    _run(tmp_path, 2)
    for step in (1, 2):
        (tmp_path / f"step_0000000{step}" / "checksums.json").unlink()  # as written before checksums
    load_checkpoint(tmp_path / "step_00000002", StandInMethod())
    _damage(tmp_path / "step_00000002" / "trainer_state.pt", "truncated")
    with pytest.raises(DamagedError, match=r"step_00000002/trainer_state\.pt: unreadable \(truncated"):
        load_checkpoint(tmp_path / "step_00000002", StandInMethod())
    with pytest.warns(UserWarning, match="skipped checkpoint step_00000002"):
        assert _run(tmp_path, 3, resume=True).step == 3


class _Hostile:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_never_run_and_never_gets_weights_only_advice(tmp_path):
    _run(tmp_path, 1)
    checkpoint = tmp_path / "step_00000001"
    (checkpoint / "checksums.json").unlink()  # a legacy checkpoint: only the unpickler stands guard
    marker = tmp_path / "pwned"
    torch.save({"step": 1, "payload": _Hostile(str(marker))}, checkpoint / "trainer_state.pt")
    with pytest.raises(DamagedError) as caught:
        load_checkpoint(checkpoint, StandInMethod())
    message = str(caught.value)
    assert "trainer_state.pt" in message and "system" in message and "does not unpickle" in message
    assert "weights_only" not in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not marker.exists()
    assert pickle  # the module the payload relies on is the standard one


@pytest.mark.parametrize("pointer", ["../elsewhere/step_00000001", "/tmp/step_00000001", "step_1; rm"])
def test_latest_must_name_a_checkpoint_inside_its_run_folder(tmp_path, pointer):
    _run(tmp_path / "elsewhere", 1)
    _run(tmp_path / "run", 1)
    (tmp_path / "run" / LATEST).write_text(pointer + "\n")
    with pytest.raises(DamagedError, match=r"run/latest: expected the name of a checkpoint folder inside"):
        find_latest(tmp_path / "run")


def test_latest_naming_a_link_out_of_the_run_folder_is_refused(tmp_path):
    _run(tmp_path / "elsewhere", 1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "step_00000005").symlink_to(tmp_path / "elsewhere" / "step_00000001")
    (tmp_path / "run" / LATEST).write_text("step_00000005\n")
    with pytest.raises(DamagedError, match="inside"):
        find_latest(tmp_path / "run")


def _encoder_run(run_dir):
    config = dataclasses.replace(
        load_encoder_preset("tiny"), dim=32, layers=1, heads=2, ffn_dim=64, pos_conv_groups=4,
        pos_conv_kernel=8, subsampling_channels=8, n_mels=40,
    )  # fmt: skip
    method = nn.Module()
    method.encoder = SpeechEncoder.from_config(config)
    optimizer = torch.optim.AdamW(method.parameters())
    state = TrainerState(step=1, epoch=0, batch_in_epoch=0, elapsed_s=0.0, last_loss=0.0, rng_states=[])
    return save_checkpoint(
        run_dir, method, optimizer, build_scheduler(optimizer, 0, 10, 0.0), state, RESOLVED
    )


@pytest.mark.parametrize("how", ["truncated", "zeroed", "empty", "missing"])
def test_a_damaged_upstream_is_one_line_naming_the_file(tmp_path, how):
    checkpoint = _encoder_run(tmp_path / "run")
    build_upstream(str(tmp_path / "run"))
    _damage(checkpoint / "encoder.safetensors", how)
    for spec in (tmp_path / "run", checkpoint):
        with pytest.raises(ValueError) as caught:
            build_upstream(str(spec))
        message = str(caught.value)
        assert str(checkpoint / "encoder.safetensors") in message and "\n" not in message
        assert not any(raw in message for raw in RAW_MESSAGES)
    (checkpoint / "checksums.json").unlink()  # written before checksums: the reader names the file
    if how != "missing":
        with pytest.raises(DamagedError, match=r"encoder\.safetensors: (empty file|unreadable safetensors)"):
            load_encoder(checkpoint)


def _disk_full_save(path, data) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_checkpointing_names_the_folder_and_size_and_the_next_resume_proceeds(
    tmp_path, monkeypatch
):
    _run(tmp_path, 1)
    with monkeypatch.context() as patch:

        def save_then_fail(tensors, path):
            path.write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")

        patch.setattr(checkpoint_module, "save_file", save_then_fail)
        with pytest.raises(
            OSError, match=rf"checkpoint step_00000002: not enough disk space in {tmp_path}: needs about"
        ):
            _run(tmp_path, 2, resume=True)
    assert find_latest(tmp_path).name == "step_00000001"
    assert not [p for p in tmp_path.iterdir() if is_partial(p)]
    assert _run(tmp_path, 2, resume=True).step == 2


def test_torch_saying_unexpected_pos_on_a_full_disk_is_named_too(tmp_path, monkeypatch):
    _run(tmp_path, 1)

    def torch_full(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4096 vs 4000")

    monkeypatch.setattr(checkpoint_module.torch, "save", torch_full)
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**6, 10**6, 10))
    with pytest.raises(OSError, match=r"needs about .* 10 B free") as caught:
        _run(tmp_path, 2, resume=True)
    assert caught.value.errno == errno.ENOSPC
    assert not [p for p in tmp_path.iterdir() if is_partial(p)]


HOLD_LOCK = """
import sys, time
from speechssl.storage import folder_lock
with folder_lock(sys.argv[1], "run folder"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_of_a_run_folder_is_refused_before_writing_anything(
    tmp_path, tiny_pretrain_overrides
):
    from speechssl.train import load_pretrain_config, pretrain

    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = load_pretrain_config(None, tiny_pretrain_overrides, method="barlow_twins")
        with pytest.raises(
            FolderLockedError, match=rf"run folder {run_dir} is in use by process {holder.pid}"
        ):
            pretrain(config, run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # no config.yaml, no units
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is stale and is taken over, with a warning
    with (
        pytest.warns(UserWarning, match=rf"taking over the lock of process {holder.pid}"),
        run_folder_lock(run_dir),
    ):
        assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()
    assert not (run_dir / ".lock").exists()


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(FolderLockedError, match=r"process 1 on elsewhere\.example"), folder_lock(tmp_path):
        pass
    assert (tmp_path / ".lock").exists()


FILL_THE_DISK_THEN_CHECKPOINT = """
import os, sys, warnings
sys.path.insert(0, sys.argv[2])
from test_checkpoint_faults import _run

run = sys.argv[1]
_run(run, 1)
filler = os.path.join(os.path.dirname(run), "filler")
with open(filler, "wb") as handle:
    handle.write(bytes(os.statvfs(run).f_bavail * os.statvfs(run).f_frsize - 8192))
try:
    _run(run, 2, resume=True)
except OSError as error:
    print("OSError:", error)
print("left:", sorted(os.listdir(run)))
os.remove(filler)
print("resumed to step", _run(run, 2, resume=True).step)
"""


def test_a_real_full_tmpfs_while_checkpointing(tmp_path):
    """torch and safetensors meet a real full disk (torch says `unexpected pos`)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a private tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    here = os.path.dirname(__file__)
    command = (
        f"mount -t tmpfs -o size=1m tmpfs {disk} && cd {here} && "
        f"{sys.executable} -W ignore -c '{FILL_THE_DISK_THEN_CHECKPOINT}' {disk / 'run'} {here}"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    if "mount:" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr[-1000:]
    assert f"checkpoint step_00000002: not enough disk space in {disk / 'run'}: needs about" in done.stdout
    left = done.stdout.split("left: ")[1].splitlines()[0]
    assert "partial" not in left and "step_00000001" in left and "step_00000002" not in left
    assert "resumed to step 2" in done.stdout


def _lock_worker(rank: int, world_size: int, out_dir: str) -> None:
    from speechssl import distributed

    distributed.setup_from_env()
    try:
        outcomes = []
        for run_dir in (Path(out_dir) / "free", Path(out_dir) / "taken"):
            try:
                with run_folder_lock(run_dir):
                    holder = json.loads((run_dir / ".lock").read_text())["pid"]
                    outcomes.append(f"locked by {'me' if holder == os.getpid() else 'another rank'}")
                    distributed.barrier()
            except FolderLockedError as error:
                outcomes.append(f"refused: {error}")
        (Path(out_dir) / f"{rank}.json").write_text(json.dumps(outcomes))
    finally:
        distributed.cleanup()


@pytest.mark.timeout(120)
def test_under_two_ranks_only_rank_0_locks_and_both_stop_when_it_cannot(tmp_path):
    from distributed_helpers import spawn_ranks

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    spawn_ranks(_lock_worker, str(tmp_path), world_size=2)
    outcomes = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert [free for free, _ in outcomes] == ["locked by me", "locked by another rank"]
    assert all(taken.startswith("refused: run folder") for _, taken in outcomes)


def test_the_command_line_shows_a_locked_run_folder_and_a_damaged_resume_as_one_line(
    tmp_path, capsys, tiny_pretrain_overrides
):
    from speechssl.cli import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    assert (
        main(["pretrain", "--method", "barlow_twins", "--run-dir", str(run_dir), *tiny_pretrain_overrides])
        == 2
    )
    error = capsys.readouterr().err
    assert error.startswith(f"speechssl: error: run folder {run_dir} is in use") and error.count("\n") == 1

    (run_dir / ".lock").unlink()
    _run(run_dir, 1)
    _damage(run_dir / "step_00000001" / "model.safetensors", "zeroed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            [
                "pretrain",
                "--method",
                "barlow_twins",
                "--run-dir",
                str(run_dir),
                "--resume",
                *tiny_pretrain_overrides,
            ]
        )
    assert code == 2
    error = capsys.readouterr().err
    assert "no intact checkpoint" in error and "model.safetensors" in error and error.count("\n") == 1
