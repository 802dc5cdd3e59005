"""Workers end within seconds of a kill -9 of their coordinator (parent-death signal, or the
portable check of the parent's pid)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from optimlab.lab import lifeline

# the worker loads lifeline.py by path: no torch import, so the test takes a fraction of a second
WORKER = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("lifeline", sys.argv[1])
    lifeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lifeline)
    lifeline.die_with_parent(int(sys.argv[3]), poll_s=0.2, use_signal=sys.argv[2] == "signal")
    print("ready", flush=True)
    time.sleep(120)
""")

COORDINATOR = textwrap.dedent("""
    import os, subprocess, sys, time
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3],
                               str(os.getpid())])
    print(worker.pid, flush=True)
    time.sleep(120)
""")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("how", ["signal", "poll"])
def test_a_worker_ends_when_its_coordinator_is_killed(how):
    if how == "signal" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    path = Path(lifeline.__file__)
    coordinator = subprocess.Popen(
        [sys.executable, "-c", COORDINATOR, WORKER, str(path), how],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        worker = int(coordinator.stdout.readline())
        assert coordinator.stdout.readline().strip() == "ready"  # the worker's own line
        assert alive(worker)
        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker), f"worker {worker} outlived its coordinator ({how})"
    finally:
        coordinator.kill()
        coordinator.wait()


def test_a_worker_whose_coordinator_is_already_gone_exits_at_once():
    code = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("lifeline", {lifeline.__file__!r})
        lifeline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lifeline)
        lifeline.die_with_parent(parent=1, use_signal=False)
        print("still here")
    """)
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == lifeline.ORPHAN_EXIT and "still here" not in done.stdout
