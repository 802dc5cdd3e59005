"""The tables of :mod:`optimlab.bench.step`'s results (rich for the terminal, Markdown for
``benchmarks/RESULTS.md``), and its JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = (
    "optimizer", "conv", "B/param", "ours foreach", "ours forloop", "ours fused", "ours torch kernel",
    "default (path)",
    "torch loop", "torch foreach", "torch fused", "default GB/s", "% axpy", "x torch best",
    "x torch fused", "setup s", "state B/param",
)


def rows(result: dict[str, Any]) -> list[list[str]]:
    """The cells of every row of ``result``, in :data:`COLUMNS` order (shared by both tables)."""

    def ms(r: dict[str, Any], key: str) -> str:
        v = r["paths"].get(key)
        return f"{v['median_ms']:.2f}" if v else "-"

    def ratio(x: float | None) -> str:
        return f"{x:.2f}" if x else "-"

    out = []
    for r in result["results"]:
        d = r["paths"]["optimlab.default"]
        out.append([
            r["optimizer"],
            r["convention"],
            str(r["bytes_per_param"]),
            ms(r, "optimlab.foreach"),
            ms(r, "optimlab.forloop"),
            ms(r, "optimlab.fused"),
            ms(r, "optimlab.torch_kernel"),
            f"{d['median_ms']:.2f} ({r['default_impl']})",
            ms(r, "torch.forloop"),
            ms(r, "torch.foreach"),
            ms(r, "torch.fused"),
            f"{d['gbs']:.1f}",
            f"{100 * r['default_fraction_of_axpy']:.0f}%",
            ratio(r.get("speedup_vs_torch_best")),
            ratio(r.get("speedup_vs_torch_fused")),
            f"{r['fused_setup_s']:.2f}",
            f"{r['state_bytes_per_param']:.1f}",
        ])
    return out


def table(result: dict[str, Any]):
    """Rich tables of ``result``: one row per optimizer and convention, then the small models."""
    from rich.console import Group
    from rich.table import Table

    bw = result["bandwidth_gbs"]
    t = Table(
        title=(
            f"optimizer step, {result['params']:,} {result['dtype']} params in "
            f"{result['tensors']} tensors, {result['machine']['threads']} threads; "
            f"axpy {bw['axpy']:.1f} GB/s, copy {bw['copy']:.1f} GB/s (median ms)"
        )
    )
    for col in COLUMNS:
        t.add_column(col, justify="left" if col in ("optimizer", "conv") else "right")
    for row in rows(result):
        t.add_row(*row)
    small = small_rows(result)
    if not small:
        return t
    sizes = result["small"]
    s = Table(
        title=(
            f"small models, 1 thread: the MLP ({sizes['mlp']['params']:,} params in "
            f"{sizes['mlp']['tensors']} tensors) and {sizes['196']['params']:,} params in "
            f"{sizes['196']['tensors']} tensors (median us)"
        )
    )
    for col in SMALL_COLUMNS:
        s.add_column(col, justify="left" if col == "optimizer" else "right")
    for row in small:
        s.add_row(*row)
    return Group(t, s)


def markdown(result: dict[str, Any]) -> str:
    """The table of ``result`` as Markdown (for RESULTS.md)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(result)]
    small = small_rows(result)
    if small:
        lines += ["", "| " + " | ".join(SMALL_COLUMNS) + " |", "|" + "---|" * len(SMALL_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in small]
    return "\n".join(lines)


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Write ``result`` atomically (a temporary file renamed over ``path``)."""
    from optimlab.lab.files import atomic_write_text

    atomic_write_text(Path(path), json.dumps(result, indent=1))



def small_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per optimizer: its default step on the MLP and on 196 tensors, and torch's."""
    small = result.get("small")
    if not small:
        return []
    rows_ = []
    for name, impl in small["mlp"]["impl"].items():
        mlp, many = small["mlp"]["us"][name], small["196"]["us"][name]
        ours_mlp, ours_many = mlp[f"optimlab.{name}"], many[f"optimlab.{name}"]
        adam = mlp.get("torch.adam.fused")
        fused = many.get(f"torch.{name}.fused")
        foreach = many.get(f"torch.{name}.foreach")
        best = min(v for v in (fused, foreach) if v) if (fused or foreach) else None
        rows_.append([
            name,
            f"{ours_mlp:.0f} ({impl})",
            f"{adam:.0f}" if adam else "-",
            f"{adam / ours_mlp:.2f}" if adam else "-",
            f"{ours_many:.0f} ({small['196']['impl'][name]})",
            f"{fused:.0f}" if fused else "-",
            f"{foreach:.0f}" if foreach else "-",
            f"{fused / ours_many:.2f}" if fused else "-",
            f"{best / ours_many:.2f}" if best else "-",
        ])
    return rows_


SMALL_COLUMNS = (
    "optimizer", "MLP: default us (path)", "MLP: torch fused Adam us", "x torch fused Adam",
    "196 tensors: default us (path)", "torch fused us", "torch foreach us", "x torch fused",
    "x torch best",
)


