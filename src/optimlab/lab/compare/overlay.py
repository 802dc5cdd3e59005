"""Several comparisons' folders as one report (``optimlab report A B --out C``).

The folders must hold comparisons of one task (one clear line otherwise). Their optimizers are
drawn together in the order of the folders; an optimizer label found in more than one folder is
told apart by its folder (``adam (runs/a)``), and two specs of one name get distinct colours
(:func:`optimlab.lab.pages.colors`).
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from ..errors import UserError
from ..pages import colors, short_labels
from .summary import ReportData


def merge(datasets: list[ReportData], folders: list[str], out: str | None = None) -> ReportData:
    """One :class:`ReportData` of several folders' (``folders[i]`` names ``datasets[i]``)."""
    tasks = sorted({d.task for d in datasets if d.task})
    if len(tasks) > 1:
        listed = ", ".join(f"{f} ({d.task})" for f, d in zip(folders, datasets) if d.task)
        raise UserError(f"Cannot overlay comparisons of different tasks: {listed}")
    seen: dict[str, int] = {}
    for d in datasets:
        for g in d.groups:
            seen[g.optimizer] = seen.get(g.optimizer, 0) + 1
    groups, specs = [], []
    for folder, d in zip(folders, datasets):
        for g in d.groups:
            groups.append((g, folder, seen[g.optimizer] > 1))
            specs.append(g.optimizer)
    merged = []
    for (g, folder, clash), c, label in zip(groups, colors(specs), short_labels(specs)):
        name = f"{g.optimizer} ({folder})" if clash else g.optimizer
        merged.append(replace(g, optimizer=name, color=c, label=f"{label} ({folder})" if clash else label))
    first = datasets[0]
    experiment = dict(first.experiment)
    experiment["folders"] = folders
    stamps = [d.updated_at for d in datasets if d.updated_at is not None]
    records = []
    for folder, d in zip(folders, datasets):
        if d.provenance:
            records.append({**d.provenance[0], "folder": folder})
    command = shlex.join(["optimlab", "report", *folders, *(["--out", out] if out else [])])
    return ReportData(
        experiment, merged, first.task, next((d.source for d in datasets if d.source), ""),
        provenance=records, updated_at=max(stamps) if stamps else None, overlay_command=command,
    )
