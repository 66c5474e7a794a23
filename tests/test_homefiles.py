"""`pid_alive`: a live process is, a zombie or a reaped one is not — read from /proc as psutil reads it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from polycloud.homefiles import pid_alive


def _psutil_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _wait_for_zombie(pid: int) -> None:
    deadline = time.monotonic() + 10
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"{pid} did not exit"
        time.sleep(0.01)


def test_this_process_is_alive() -> None:
    assert pid_alive(os.getpid())


def test_a_running_child_is_alive_its_zombie_is_not_nor_once_reaped(tmp_path: Path) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    odd = tmp_path / "x) Z (y"  # a command name with spaces and parentheses, as /proc/PID/stat shows it
    odd.symlink_to(sleep)
    child = subprocess.Popen([str(odd), "30"])
    try:
        assert pid_alive(child.pid) and _psutil_alive(child.pid)
        child.kill()
        _wait_for_zombie(child.pid)
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc")
def test_it_agrees_with_psutil_on_every_process() -> None:
    differ = [pid for pid in psutil.pids() if pid_alive(pid) != _psutil_alive(pid)]
    # Asked again: a process may have ended (or become a zombie) between the two answers.
    assert [pid for pid in differ if pid_alive(pid) != _psutil_alive(pid)] == []
