"""References to Python objects by name, ``package.module:attribute``, imported and never evaluated.

A reference names an importable module (dotted identifiers, found on ``sys.path`` as it is: the
lab never adds the current directory or any other folder to it) and one attribute of it. Before
each module of the dotted path is executed, its file and folder are checked: a file that another
user could have written (not owned by this user or root, or writable by everyone, or in a folder
everyone may write to without the sticky bit) is refused, so a reference never runs code that
someone else planted.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import UserError

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_reference(text: str) -> bool:
    """Whether ``text`` has the shape ``module:attribute`` (a name like ``adam`` has no colon)."""
    module, colon, attr = text.partition(":")
    return bool(colon) and bool(_DOTTED.match(module.strip())) and bool(_IDENT.match(attr.strip()))


def split_reference(text: str, what: str) -> tuple[str, str]:
    """``"pkg.mod:attr"`` -> ``("pkg.mod", "attr")``; raises :class:`UserError` for other shapes."""
    module, colon, attr = text.strip().partition(":")
    if not colon or not _DOTTED.match(module) or not _IDENT.match(attr):
        raise UserError(
            f"Invalid {what} reference {text!r} (expected package.module:attribute, e.g. "
            "torch.optim:Adam)"
        )
    return module, attr


def _writable_by_others(path: Path) -> str | None:
    """Why ``path`` (a file or folder) could have been written by another user, or None."""
    if not hasattr(os, "getuid"):  # no POSIX ownership to check (Windows)
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to another user (uid {st.st_uid})"
    if st.st_mode & stat.S_IWOTH and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        return f"{path} is writable by every user"
    return None


def _check_origin(name: str) -> None:
    """Refuse to execute module ``name`` when its source could have been planted by another user."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise UserError(f"No module named {name!r} (is it installed in this Python environment?)")
    if spec.origin is None or not spec.has_location:
        return  # built-in, frozen or namespace package: nothing on disk to check
    origin = Path(spec.origin)
    for path in (origin, origin.parent):
        reason = _writable_by_others(path)
        if reason is not None:
            raise UserError(f"Refusing to import {name!r}: {reason}")


def import_module(name: str) -> ModuleType:
    """Import ``name`` (dotted), checking each not yet imported module of the path first.

    Raises:
        UserError: the name is not a dotted identifier, a module is missing, its file could have
            been written by another user, or importing it failed (the error in one line).
    """
    if not _DOTTED.match(name):
        raise UserError(f"Invalid module name {name!r} (expected dotted identifiers, e.g. mypkg.tasks)")
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix in sys.modules:
            continue
        try:
            _check_origin(prefix)
            importlib.import_module(prefix)
        except UserError:
            raise
        except ModuleNotFoundError as e:
            raise UserError(f"No module named {e.name or prefix!r} (while importing {name!r})") from None
        except Exception as e:  # the module's own code failed: one line, the cause kept
            raise UserError(f"Importing {prefix!r} failed: {type(e).__name__}: {e}") from e
    return sys.modules[name]


def resolve(text: str, what: str) -> Any:
    """The object that the reference ``text`` names (imported, never evaluated).

    ``what`` names the kind of object in messages (``"optimizer"``, ``"task"``).
    """
    module_name, attr = split_reference(text, what)
    module = import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"Module {module_name!r} has no attribute {attr!r} (in {what} {text!r})") from None
