"""The report pages as people see them: every page fits 390 and 1400 px wide windows without
console errors, a diverged run does not stretch the loss axis, an iris comparison's band does not
either, one optimizer name has one colour on every page and PNG, and several comparisons overlay."""

from __future__ import annotations

import csv
import math
import random
import shutil

import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

from optimlab.lab import pages
from optimlab.lab.compare import compare
from optimlab.lab.compare.report import render_overlay, render_report
from optimlab.lab.runspec import EpochRecord
from optimlab.lab.store import Store
from optimlab.lab.surface.api import write_outputs
from optimlab.lab.surface.draw import Picture
from optimlab.lab.surface.run import run_surface

WIDTHS = (390, 1400)


def _write_store(out, task, optimizers, *, seeds, epochs, steps_per_epoch, loss, diverge=None):
    """A comparison's store written directly: ``loss(optimizer index, seed, step)`` per batch;
    ``diverge`` maps an optimizer index to the step where its runs diverge (loss 1e35, then nan)."""
    diverge = diverge or {}
    with Store.open(out) as store:
        store.set_experiment({"task": task, "optimizers": list(optimizers), "epochs": epochs,
                              "seeds": seeds, "batch_size": 32, "schedule": None})
        for k, name in enumerate(optimizers):
            for seed in range(seeds):
                rid = f"{task}|{name}|seed={seed}"
                store.begin_run(rid, task=task, optimizer=name, seed=seed, config={}, source="synthetic")
                total = epochs * steps_per_epoch
                end = diverge.get(k)
                n = end if end is not None else total
                steps = [(s, loss(k, seed, s), 0.001 * s) for s in range(1, n + 1)]
                if end is not None:
                    steps[-2:] = [(end - 1, 1e35, 0.001 * (end - 1)), (end, math.nan, 0.001 * end)]
                    store.write_progress(rid, steps=steps, epochs=[], wall_time_s=0.001 * end,
                                         step_time_share=0.3, status="diverged", diverged_step=end)
                    continue
                records = [EpochRecord(e, float(np.mean([v for s, v, _ in steps[(e - 1) * steps_per_epoch:
                                                                                e * steps_per_epoch]])),
                                       loss(k, seed, e * steps_per_epoch) * 1.1,
                                       min(0.99, 0.5 + 0.45 * e / epochs + 0.01 * seed), 0.001 * e * steps_per_epoch,
                                       e * steps_per_epoch) for e in range(1, epochs + 1)]
                store.write_progress(rid, steps=steps, epochs=records, wall_time_s=0.001 * total,
                                     step_time_share=0.2 + 0.02 * k + 0.01 * seed, status="finished")


SURFACE_OPTIMIZERS = "sgd:lr=0.02,adagrad:lr=0.1,rmsprop:lr=0.01,adam:lr=0.02"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every kind of page, built once per test session (the first test worker builds them, the
    others wait and read them): a real comparison, an iris-shaped one, one with diverged runs,
    their overlay, a surface and its picture."""
    root = tmp_path_factory.getbasetemp().parent / "report-pages"
    with FileLock(str(root) + ".lock"):
        if not (root / "done").is_file():
            shutil.rmtree(root, ignore_errors=True)
            _build(root)
            (root / "done").touch()
    return root, run_surface("saddle", SURFACE_OPTIMIZERS, steps=60)


def _build(root):
    compare(task="digits-mlp", optimizers="sgd:lr=0.05,adam:lr=0.001", seeds=2, epochs=2, jobs=1,
            threads=1, out=root / "compare")
    rng = random.Random(1)

    def iris_loss(k, seed, s):  # decaying, with the luckiest batches near zero
        return (0.6 / (1 + s / (100 + 50 * k))) * (rng.random() * 1.6 + 0.2 if rng.random() > 0.01 else 1e-6)

    _write_store(root / "iris", "iris-softmax", ["sgd:lr=0.1", "momentum:form=ema,momentum=0.9,lr=0.1",
                 "adagrad:lr=0.1,eps=0", "rmsprop:lr=0.1,alpha=0.9,eps=0", "adam:lr=0.1,eps=0"],
                 seeds=3, epochs=500, steps_per_epoch=4, loss=iris_loss)
    render_report(root / "iris", figures=False)
    _write_store(root / "diverged", "digits-mlp", ["adam:lr=0.001", "sgd:lr=3", "sgd:lr=1000000.0"],
                 seeds=3, epochs=3, steps_per_epoch=40, loss=lambda k, seed, s: 2.3 / (1 + s / 30) + 0.01 * seed,
                 diverge={1: 60, 2: 5})
    render_report(root / "diverged")
    render_overlay([root / "compare", root / "diverged"], root / "overlay", figures=False)
    run = run_surface("saddle", SURFACE_OPTIMIZERS, steps=60)
    write_outputs(run, root / "surface", fmt="none", max_frames=8)


PAGES = {"compare": "compare/report.html", "iris": "iris/report.html", "diverged": "diverged/report.html",
         "overlay": "overlay/report.html", "surface": "surface/saddle.html"}


@pytest.mark.chromium
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_fits_the_window_and_has_no_console_errors(built, layout_at, page, width):
    root, _ = built
    layout = layout_at(root / PAGES[page], width)
    assert layout.errors == []
    assert layout.inner_width == width
    assert layout.scroll_width <= layout.inner_width, f"{page} overflows at {width} px"
    assert layout.charts, "no chart was drawn"
    for chart in layout.charts:  # each chart shrinks to its card
        assert chart["svg"] is not None and chart["svg"] <= chart["box"] + 1, chart  # + rounding


def _charts(path) -> dict[str, dict]:
    return {c["id"]: c for c in pages.page_charts(path.read_text(encoding="utf-8"))}


def test_a_diverged_run_leaves_the_loss_axis_to_the_healthy_runs(built):
    root, _ = built
    for chart_id in ("chart-loss", "chart-loss-time"):
        chart = _charts(root / "diverged/report.html")[chart_id]
        low, high = (10**v for v in chart["layout"]["yaxis"]["range"])
        healthy = [y for t in chart["data"] if t.get("meta", {}).get("g") == 0 for y in t["y"] if y]
        assert low <= min(healthy) and max(healthy) <= high < 2 * max(healthy)  # not 1e35
        diverged = [t for t in chart["data"] if t.get("meta", {}).get("r") == "diverged"]
        edges = [t for t in chart["data"] if t.get("meta", {}).get("r") == "edge"]
        assert len(diverged) == 6 and len(edges) == 6  # two optimizers x three seeds
        assert all(y is None or y <= high for t in diverged for y in t["y"])  # held at the edge
        assert max(y for t in diverged for y in t["y"] if y) > 0.9 * high
        assert {y for t in edges for y in t["y"]} == {max(y for t in diverged for y in t["y"] if y)}
    text = (root / "diverged/report.html").read_text(encoding="utf-8")
    assert ">0/3<" in text and "3/3" in text  # seeds finished / total, not "3" for none finished
    assert "test accuracy (%)" in text and "± 95% CI (pp)" in text and "data-sortable" in text


def test_the_iris_band_does_not_stretch_the_axis_and_long_runs_have_no_markers(built):
    root, _ = built
    charts = _charts(root / "iris/report.html")
    low, high = (10**v for v in charts["chart-loss"]["layout"]["yaxis"]["range"])
    means = [y for t in charts["chart-loss"]["data"] if t.get("meta", {}).get("r") == "mean" for y in t["y"]]
    assert low > 0.3 * min(means) and high < 2 * max(means)  # the 1e-6 batches do not count
    ticks = charts["chart-loss"]["layout"]["yaxis"]["ticktext"]
    assert all("10<sup>" in t or t.isdigit() for t in ticks)  # one exponent style
    for chart_id in ("chart-loss-epoch", "chart-accuracy", "chart-test-loss"):
        assert {t["mode"] for t in charts[chart_id]["data"]} == {"lines"}  # 500 epochs: no markers
    acc = charts["chart-accuracy"]
    assert acc["layout"]["yaxis"]["range"][1] <= 100 and max(y for t in acc["data"] for y in t["y"] if y) > 1


def test_one_optimizer_name_has_one_colour_on_every_page_and_picture(built):
    root, run = built
    adam, sgd = pages.color("adam"), pages.color("sgd")
    for page in ("compare/report.html", "iris/report.html", "surface/saddle.html"):
        for chart in _charts(root / page).values():
            for t in chart["data"]:
                name = t.get("name", "")
                if name.startswith("adam") and "line" in t:
                    assert t["line"]["color"] == adam, (page, name)
                if name.startswith("sgd") and "line" in t:
                    assert t["line"]["color"] == sgd, (page, name)
    picture = Picture(run)
    assert picture.colors == [pages.color(p.label) for p in run.trajectories]
    for png in (root / "compare/loss.png", root / "diverged/accuracy.png"):
        rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
        assert (np.abs(rgb - pages.rgb(adam)).sum(axis=2) < 30).sum() > 50, png


def test_surface_pictures_say_what_the_shading_is_and_keep_paths_apart(built):
    root, run = built
    text = (root / "surface/saddle.html").read_text(encoding="utf-8")
    assert "sign(f)" not in text and "log10(1" not in text
    figure = _charts(root / "surface/saddle.html")["surface-plot"]
    shading = figure["data"][0]
    assert shading["showscale"] and "f(x, y) = %{text}" in shading["hovertemplate"]
    paths = [t for t in figure["data"] if t.get("legendgroup", "").startswith("path") and "line" in t]
    assert len({t["line"]["dash"] for t in paths}) == len(paths) == 4  # overlapping paths stay apart
    assert len({t["marker"]["symbol"] for t in paths}) == 4
    y0, y1 = figure["layout"]["yaxis"]["range"]
    assert y1 > 1.5 and y0 == -1.5  # the frame grew to hold the escaping paths
    assert "Shading: the value f(x, y)" in text and "logarithmic" in text
    header = text[text.index('<table id="metrics"'):text.index("</thead>", text.index('<table id="metrics"'))]
    assert "_" not in header and "time (ms)" in header and "escaped at step" in header
    assert "steps to tolerance" not in header  # a saddle has no minimum: no empty column
    picture = Picture(run)
    legend = picture.fig.legends[0]
    assert min(t.get_fontsize() * picture.fig.dpi / 72 for t in legend.get_texts()) >= 14  # px in the GIF
    assert len(picture.fig.axes) == 2  # the plot and its colour bar


def test_report_overlays_several_folders_of_one_task(built, run_cli, tmp_path):
    root, _ = built
    page = (root / "overlay/report.html").read_text(encoding="utf-8")
    for label in ("sgd (lr=0.05)", "sgd (lr=3)", "adam (compare)", "adam (diverged)"):
        assert pages.escape(label) in page, label
    code, _, _ = run_cli("report", str(root / "compare"), str(root / "diverged"), "--out", str(tmp_path / "c"))
    assert code == 0 and (tmp_path / "c/report.html").is_file() and (tmp_path / "c/summary.csv").is_file()
    rows = list(csv.DictReader((tmp_path / "c/summary.csv").open()))
    assert len(rows) == 2 + 3  # both folders' optimizers
    # an optimizer tagged with its folder keeps the lr and effective step of its spec
    tagged = [r for r in rows if r["optimizer"].endswith(")")]
    assert tagged and all(float(r["lr"]) > 0 and float(r["effective_lr"]) >= float(r["lr"]) for r in tagged)
    code, _, err = run_cli("report", str(root / "compare"), str(root / "iris"), "--out", str(tmp_path / "d"))
    assert code == 2 and "Cannot overlay comparisons of different tasks" in err and err.count("\n") == 1
    assert not (tmp_path / "d").exists()
    code, _, err = run_cli("report", str(root / "compare"), str(root / "diverged"))
    assert code == 2 and "give --out" in err
