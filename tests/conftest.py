"""Shared fixtures: headless Chromium for the HTML reports (console errors, the rendered DOM, and
the page's layout measured at a given window width)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
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


def _chromium_and_page(path: Path) -> tuple[str, str]:
    """The Chromium executable (the test is skipped without one) and the page's text with the
    console-error shim right after its doctype."""
    exe = _find_chromium()
    if exe is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'); .ci/run installs it")
    text = Path(path).read_text(encoding="utf-8")
    m = re.match(r"\s*<!doctype[^>]*>", text, flags=re.IGNORECASE)
    cut = m.end() if m else 0
    return exe, text[:cut] + _SHIM + text[cut:]


def render_in_chromium(path: Path, budget_ms: int = 10000) -> tuple[list[str], str]:
    """Open ``path`` in headless Chromium; return (console errors, DOM after scripts ran)."""
    exe, text = _chromium_and_page(path)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / Path(path).name
        page.write_text(text, encoding="utf-8")
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


#: run in the page once it has loaded and drawn: its width against the window's, each chart's
#: width against its box's, and the console errors; posted to the window that framed the page
_MEASURE = """<script>window.addEventListener('load',function(){setTimeout(function(){
var d=document.documentElement,charts=[];document.querySelectorAll('.chart').forEach(function(c){
var s=c.querySelector('svg.main-svg');charts.push({id:c.id,box:c.clientWidth,
svg:s?Number(s.getAttribute('width')):null});});
var m={scrollWidth:d.scrollWidth,innerWidth:window.innerWidth,charts:charts,
errors:JSON.parse(d.getAttribute('data-console-errors')||'[]')};
parent.postMessage(JSON.stringify(m),'*');},300);});</script>"""


@dataclass
class Layout:
    """A page measured in Chromium at one window width."""

    scroll_width: int  # document.documentElement.scrollWidth
    inner_width: int  # window.innerWidth
    charts: list[dict]  # per element of class "chart": id, box (its width), svg (plotly's width)
    errors: list[str]  # console errors, uncaught exceptions, rejected promises


def measure_in_chromium(path: Path, width: int, height: int = 900, budget_ms: int = 10000) -> Layout:
    """Open ``path`` in headless Chromium in a window ``width`` pixels wide and measure it.

    Headless Chromium's windows are at least 500 px wide, so the page is loaded in an iframe of
    ``width`` x ``height`` pixels (what a phone's browser gives a page: ``innerWidth`` and media
    queries see ``width``); the page posts its measurements to the frame's parent, whose DOM
    Chromium dumps.
    """
    exe, text = _chromium_and_page(path)
    text = text.replace("</body>", _MEASURE + "</body>") if "</body>" in text else text + _MEASURE
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / Path(path).name
        page.write_text(text, encoding="utf-8")
        frame = Path(tmp) / "frame.html"
        frame.write_text(
            "<!DOCTYPE html><html><body style=\"margin:0\"><iframe src=\"" + page.as_uri()
            + f"\" style=\"width:{width}px;height:{height}px;border:0;display:block\"></iframe>"
            "<script>window.addEventListener('message',function(e){document.documentElement"
            ".setAttribute('data-measure',e.data);});</script></body></html>", encoding="utf-8")
        proc = subprocess.run(
            [exe, *_CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", "--allow-file-access-from-files",
             f"--window-size={max(width, 500) + 20},{height + 20}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", frame.as_uri()],
            check=False, capture_output=True, text=True, timeout=120,
        )
    found = re.search(r'data-measure="([^"]*)"', proc.stdout)
    if not found:
        raise AssertionError(f"the page posted no measurements (exit {proc.returncode}): {proc.stderr[-800:]}")
    m = json.loads(html.unescape(found.group(1)))
    return Layout(m["scrollWidth"], m["innerWidth"], m["charts"], m["errors"])


@pytest.fixture
def browser():
    """``errors, dom = browser(path)``: console errors and rendered DOM of an HTML file."""
    return render_in_chromium


@pytest.fixture
def layout_at():
    """``layout = layout_at(path, 390)``: the page measured at a window width (:class:`Layout`)."""
    return measure_in_chromium
