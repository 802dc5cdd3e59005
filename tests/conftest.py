"""Shared fixtures: headless Chromium for the HTML reports."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]

# Records console.error calls, uncaught exceptions and rejected promises in an attribute of the
# root element, so that --dump-dom returns them along with the rendered page.
_SHIM = """<script>(function(){var errs=[];function rec(m){errs.push(String(m));
document.documentElement.setAttribute('data-console-errors',JSON.stringify(errs));}
var ce=console.error;console.error=function(){rec(Array.prototype.slice.call(arguments).join(' '));
return ce.apply(console,arguments);};
window.addEventListener('error',function(e){rec('uncaught: '+(e.message||e));});
window.addEventListener('unhandledrejection',function(e){rec('unhandled rejection: '+e.reason);});
})();</script>"""


def _find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def render_in_chromium(path: Path, budget_ms: int = 10000) -> tuple[list[str], str]:
    """Open ``path`` in headless Chromium; return (console errors, DOM after scripts ran)."""
    exe = _find_chromium()
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'); .ci/run installs it")
    text = Path(path).read_text(encoding="utf-8")
    m = re.match(r"\s*<!doctype[^>]*>", text, flags=re.IGNORECASE)
    cut = m.end() if m else 0
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / Path(path).name
        page.write_text(text[:cut] + _SHIM + text[cut:], encoding="utf-8")
        proc = subprocess.run(
            [exe, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
             f"--virtual-time-budget={budget_ms}", "--dump-dom", page.as_uri()],
            check=False, capture_output=True, text=True, timeout=120,
        )
    dom = proc.stdout
    errors: list[str] = []
    m = re.search(r'data-console-errors="([^"]*)"', dom)
    if m:
        errors = json.loads(html.unescape(m.group(1)))
    # uncaught errors raised before the shim could run still reach the log
    for line in proc.stderr.splitlines():
        if "CONSOLE" in line and "Uncaught" in line and not any("uncaught" in e for e in errors):
            errors.append(line)
    if not dom.strip():
        errors.append(f"chromium returned no DOM (exit {proc.returncode}): {proc.stderr[-500:]}")
    return errors, dom


@pytest.fixture
def browser():
    """``errors, dom = browser(path)``: console errors and rendered DOM of an HTML file."""
    return render_in_chromium
