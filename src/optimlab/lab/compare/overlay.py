"""Several comparisons' folders as one report (``optimlab report A B --out C``).

The folders must hold comparisons of one task (one clear line otherwise). Their optimizers are
drawn together in the order of the folders; an optimizer label found in more than one folder is
told apart by its folder (``adam (runs/a)``), and two specs of one name get distinct colours
(:func:`optimlab.lab.pages.colors`).
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

from ..errors import UserError
from ..pages import colors, short_labels
from .summary import ReportData


def _names(folders: list[str]) -> dict[str, str]:
    """How a folder is named in labels: its last part when those differ, else as given."""
    last = [Path(f).name or f for f in folders]
    return dict(zip(folders, last if len(set(last)) == len(last) else folders))


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
    unique = list(dict.fromkeys(specs))
    short = dict(zip(unique, short_labels(unique)))
    names = _names(folders)
    merged = []
    for (g, folder, clash), c in zip(groups, colors(specs)):
        tag = f" ({names[folder]})" if clash else ""
        merged.append(replace(g, optimizer=g.optimizer + tag, color=c, label=short[g.optimizer] + tag,
                              spec=g.spec or g.optimizer))
    first = datasets[0]
    experiment = {k: v if all(d.experiment.get(k) == v for d in datasets) else "differs by folder"
                  for k, v in first.experiment.items()}
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
