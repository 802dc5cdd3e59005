"""The kernel store loads nothing another user could have written (issue 12, item 5).

Each case plants something where a kernel would be found, in place of a real kernel of the same
name and with its recorded hash where that makes the plant look genuine: a shared object whose
constructor would leave a marker file if it were ever loaded. Every plant is refused (never
loaded: no marker), the kernel is rebuilt in a safe place, and the step is still right. The tests
run as root in CI, so another user is simulated with ``os.chown``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time

import pytest
import torch

from optimlab import optim
from optimlab.optim import _cc, _fused, _kstore

pytestmark = pytest.mark.skipif(
    _cc.compiler() is None or not hasattr(os, "getuid"), reason="needs a C compiler and POSIX owners"
)

OTHER_UID = 4242


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh kernel folder and temporary folder; nothing cached in the process."""
    cache, tmp = tmp_path / "kernels", tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("OPTIMLAB_KERNEL_CACHE", str(cache))
    monkeypatch.setattr(_kstore.tempfile, "gettempdir", lambda: str(tmp))
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)
    _fused.KERNELS.clear()
    yield cache, tmp
    _fused.KERNELS.clear()


def _step_and_check() -> None:
    """One adamax step on the fused path (the C loop), checked against the foreach path."""
    results = []
    for flags in ({"fused": True}, {"foreach": True}):
        p = torch.linspace(-1, 1, 50, dtype=torch.float64).requires_grad_(True)
        opt = optim.create("adamax", [p], **flags)
        p.grad = torch.cos(p.detach())
        opt.step()
        results.append((opt.param_groups[0]["impl"], p.detach()))
    assert results[0][0] == "fused"
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-12, atol=1e-14)


def _kernel_name(store) -> str:
    """The file name of the kernel :func:`_step_and_check` uses (built once, then forgotten)."""
    _step_and_check()
    (built,) = _fused.KERNELS.c_built()
    _fused.KERNELS.clear()
    return f"step-{built.key}.so"


def _plant(path, marker) -> None:
    """A shared object at ``path`` that writes ``marker`` when loaded."""
    source = path.with_suffix(".c")
    source.write_text(
        "#include <stdio.h>\n"
        "__attribute__((constructor)) static void planted(void) {\n"
        f'  FILE* f = fopen("{marker}", "w"); if (f) {{ fputs("loaded", f); fclose(f); }}\n'
        "}\nvoid step(void) {}\n"
    )
    subprocess.run([_cc.compiler(), "-shared", "-fPIC", str(source), "-o", str(path)], check=True)
    source.unlink()


def _record_hash(path, target=None) -> None:
    """Write the sidecar a genuine build would have written for ``target`` (default: path)."""
    digest = hashlib.sha256((target or path).read_bytes()).hexdigest()
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(digest)
    sidecar.chmod(0o600)


def _built_in(folder, name) -> bool:
    f = folder / name
    return f.is_file() and not f.is_symlink() and f.stat().st_uid == os.getuid()


def test_a_shared_object_owned_by_another_user_is_never_loaded(store, tmp_path):
    cache, tmp = store
    name = _kernel_name(store)
    marker = tmp_path / "loaded"
    planted = cache / name
    planted.unlink()
    _plant(planted, marker)
    planted.chmod(0o700)
    _record_hash(planted)
    os.chown(planted, OTHER_UID, OTHER_UID)
    _step_and_check()
    assert not marker.exists()
    assert planted.stat().st_uid == OTHER_UID  # left alone
    assert _built_in(tmp / f"optimlab-kernels-{os.getuid()}", name)  # built in the next folder


def test_a_world_writable_shared_object_is_never_loaded(store, tmp_path):
    cache, _ = store
    name = _kernel_name(store)
    marker = tmp_path / "loaded"
    planted = cache / name
    planted.unlink()
    _plant(planted, marker)
    _record_hash(planted)
    planted.chmod(0o777)
    _step_and_check()
    assert not marker.exists()
    assert _built_in(cache, name) and not (cache / name).stat().st_mode & 0o022  # rebuilt, ours


def test_a_symlink_to_a_world_writable_shared_object_is_never_followed(store, tmp_path):
    cache, _ = store
    name = _kernel_name(store)
    marker = tmp_path / "loaded"
    elsewhere = tmp_path / "shared" / "evil.so"
    elsewhere.parent.mkdir()
    _plant(elsewhere, marker)
    elsewhere.chmod(0o777)
    (cache / name).unlink()
    (cache / name).symlink_to(elsewhere)
    _record_hash(cache / name, target=elsewhere)
    _step_and_check()
    assert not marker.exists()
    assert _built_in(cache, name)  # the link itself replaced by a build of ours
    assert elsewhere.is_file()  # the target untouched


def test_a_tampered_shared_object_is_never_loaded(store, tmp_path):
    cache, _ = store
    name = _kernel_name(store)
    marker = tmp_path / "loaded"
    genuine_hash = (cache / (name + ".sha256")).read_text()
    _plant(cache / name, marker)  # same owner and mode, other bytes: the recorded hash fails
    (cache / name).chmod(0o700)
    _step_and_check()
    assert not marker.exists()
    assert hashlib.sha256((cache / name).read_bytes()).hexdigest() == genuine_hash


def test_a_shared_object_without_a_recorded_hash_is_never_loaded(store, tmp_path):
    cache, _ = store
    name = _kernel_name(store)
    marker = tmp_path / "loaded"
    _plant(cache / name, marker)
    (cache / name).chmod(0o700)
    (cache / (name + ".sha256")).unlink()
    _step_and_check()
    assert not marker.exists() and (cache / (name + ".sha256")).is_file()


@pytest.mark.parametrize("plant", ["symlink", "foreign"])
def test_a_fallback_folder_made_in_advance_by_someone_else_is_never_used(store, tmp_path, plant):
    cache, tmp = store
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)  # the configured folder is refused: others can write to it
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    attacker.chmod(0o777)
    fallback = tmp / f"optimlab-kernels-{os.getuid()}"
    if plant == "symlink":
        fallback.symlink_to(attacker)
    else:
        fallback.mkdir(mode=0o700)
        os.chown(fallback, OTHER_UID, OTHER_UID)
    _kstore.reset()
    _step_and_check()
    assert not list(attacker.iterdir()) and not list(cache.iterdir())
    if plant == "foreign":
        assert not list(fallback.iterdir())
    private = [f for f in tmp.iterdir() if f != fallback]
    assert len(private) == 1 and private[0].stat().st_mode & 0o777 == 0o700  # mkdtemp's
    assert any(f.name.endswith(".so") for f in private[0].iterdir())


def test_builds_happen_under_the_folder_lock(store):
    """Two threads building the same name: the second waits for the lock, then loads what the
    first built instead of building it again."""
    built = []

    def build(folder, tmp):
        built.append(tmp)
        time.sleep(0.2)
        with open(folder.where(tmp), "wb") as f:
            f.write(b"not really a shared object")

    loaded = []
    threads = [
        threading.Thread(target=lambda: loaded.append(_kstore.load("x.bin", build, len)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(loaded) == 2
