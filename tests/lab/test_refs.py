"""References ``module:attr``: imported, never evaluated; optimizer classes checked; no planted code."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from optimlab.lab.errors import UserError
from optimlab.lab.external import check_external, optimizer_class
from optimlab.lab.refs import import_module, is_reference, resolve


def test_a_torch_optimizer_resolves_to_its_class():
    assert optimizer_class("torch.optim:Adam") is torch.optim.Adam
    assert optimizer_class("torch.optim:SGD") is torch.optim.SGD
    check_external("torch.optim:Adam", {"lr": 0.05, "betas": (0.9, 0.99)})


@pytest.mark.parametrize(("reference", "message"), [
    ("os:system", "os:system is not a torch.optim.Optimizer subclass (got builtin_function_or_method)"),
    ("builtins:eval", "builtins:eval is not a torch.optim.Optimizer subclass"),
    ("torch.nn:Linear", "torch.nn:Linear is not a torch.optim.Optimizer subclass (got type)"),
    ("torch.optim:Optimizer", "is the abstract base class"),
    ("torch.optim:LBFGS", "torch.optim:LBFGS.step() requires a closure"),
    ("no_such_module_xyz:Adam", "No module named 'no_such_module_xyz'"),
    ("torch.optim:Adamm", "Module 'torch.optim' has no attribute 'Adamm'"),
    ("torch.optim:Adam()", "Invalid optimizer reference 'torch.optim:Adam()'"),
    ("../evil:Adam", "Invalid optimizer reference '../evil:Adam'"),
    ("torch.optim", "Invalid optimizer reference 'torch.optim'"),
])
def test_what_is_not_an_optimizer_class_is_one_line(reference, message):
    with pytest.raises(UserError) as info:
        optimizer_class(reference)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"lr": -1.0}, "^torch.optim:Adam: Invalid learning rate: -1.0$"),
    ({"bogus": 1}, "^torch.optim:Adam: .*unexpected keyword argument 'bogus'$"),
])
def test_bad_arguments_fail_when_checked(kwargs, pattern):
    with pytest.raises(UserError, match=pattern):
        check_external("torch.optim:Adam", kwargs)


def test_reference_shape():
    assert is_reference("torch.optim:Adam") and is_reference("pkg.sub.mod:TASK")
    assert not is_reference("adam") and not is_reference("adam:lr=0.1")
    assert not is_reference("a/b:c") and not is_reference(":x")


def _module(folder, name, marker):
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nVALUE = 42\n")


def test_a_module_in_a_folder_everyone_may_write_is_never_executed(tmp_path, monkeypatch):
    folder, marker = tmp_path / "shared", tmp_path / "marker"
    _module(folder, "planted_mod_ww", marker)
    folder.chmod(0o777)  # writable by all, no sticky bit
    monkeypatch.syspath_prepend(str(folder))
    with pytest.raises(UserError, match="Refusing to import 'planted_mod_ww': .* writable by every user"):
        resolve("planted_mod_ww:VALUE", "task")
    assert not marker.exists() and "planted_mod_ww" not in sys.modules


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown needs root")
def test_a_module_owned_by_another_user_is_never_executed(tmp_path, monkeypatch):
    folder, marker = tmp_path / "theirs", tmp_path / "marker"
    _module(folder, "planted_mod_uid", marker)
    os.chown(folder / "planted_mod_uid.py", 65534, 65534)
    monkeypatch.syspath_prepend(str(folder))
    with pytest.raises(UserError, match="belongs to another user"):
        import_module("planted_mod_uid")
    assert not marker.exists()


def test_a_module_of_this_user_imports(tmp_path, monkeypatch):
    folder, marker = tmp_path / "mine", tmp_path / "marker"
    _module(folder, "own_mod_ok", marker)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, "own_mod_ok", raising=False)
    assert resolve("own_mod_ok:VALUE", "task") == 42 and marker.read_text() == "ran"
    sys.modules.pop("own_mod_ok", None)


def test_an_error_inside_the_module_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "broken_mod_x.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="^Importing 'broken_mod_x' failed: RuntimeError: boom$"):
        import_module("broken_mod_x")
