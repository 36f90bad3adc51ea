"""DataLoader workers die with their parent, even a SIGKILLed ``speechssl pretrain``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; PDEATHSIG is Linux's"
)


def _children(pid: int) -> set[int]:
    """Live (non-zombie) direct children of ``pid``, from ``/proc``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, ...
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_workers_die_when_pretrain_is_sigkilled(tmp_path, tiny_pretrain_overrides):
    overrides = [
        o for o in tiny_pretrain_overrides if not o.startswith(("data.num_workers", "train.max_steps"))
    ]
    argv = [
        "pretrain", "--method", "barlow_twins", "--run-dir", str(tmp_path / "run"), *overrides,
        "data.num_workers=2", "train.max_steps=100000", "train.checkpoint_every=100000",
        f"data.root={tmp_path / 'corpus'}",
    ]  # fmt: skip
    script = f"import sys; from speechssl.cli import main; sys.exit(main({argv!r}))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert _wait_for(lambda: len(_children(parent.pid)) >= 2 or parent.poll() is not None, 60), (
            "pretrain did not start its DataLoader workers within 60 s"
        )
        assert parent.poll() is None, parent.stderr.read().decode()
        workers = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        survived = not _wait_for(lambda: not any(_alive(pid) for pid in workers), 3)
        leftover = [pid for pid in workers if _alive(pid)]
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        assert not survived, f"DataLoader workers {leftover} outlived their SIGKILLed parent by 3 s"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
