"""The one atomic writer: a writer killed mid-write leaves the old file whole."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from optimlab.lab import files
from optimlab.lab.files import atomic_output, atomic_write_bytes, remove_stale_temps

#: a process that writes 64 MiB to TARGET through the atomic writer, says so after the first
#: MiB, then waits to be killed before the rest (files.py is loaded on its own: it imports
#: nothing of optimlab, and the package would import torch first)
_WRITER = textwrap.dedent("""
    import importlib.util, sys, time
    spec = importlib.util.spec_from_file_location("files", sys.argv[2])
    files = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(files)
    atomic_output = files.atomic_output
    chunk = b"\\xab" * (1 << 20)
    with atomic_output(sys.argv[1]) as tmp, open(tmp, "wb") as f:
        for i in range(64):
            f.write(chunk)
            f.flush()
            if i == 0:
                print("writing", flush=True)
                time.sleep(60)
""")


def test_a_writer_killed_mid_write_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "big.bin"
    old = os.urandom(4096)
    atomic_write_bytes(target, old)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target), files.__file__],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        temps = list(tmp_path.glob(".big.bin.*.tmp"))
        assert len(temps) == 1 and temps[0].stat().st_size >= 1 << 20  # the write is under way
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == old
    remove_stale_temps(target)  # what the next writer of this file does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_a_finished_write_replaces_the_file_with_the_usual_mode(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]
