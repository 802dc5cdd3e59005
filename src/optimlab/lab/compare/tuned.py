"""``optimlab compare --tuned-from OUT``: the hyperparameters a tuning study selected, so that
``optimlab tune`` then ``optimlab compare`` is one path.

The study is read from ``OUT/tune.db`` (what ``optimlab tune --out OUT`` writes). Each optimizer
of the study runs with its best trial's hyperparameters (selected on the validation split); the
comparison takes the study's epochs and batch size unless told otherwise, since those are what
the hyperparameters were chosen for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class TunedSettings:
    """What a comparison takes from a study."""

    specs: tuple[str, ...]  # the best trial's spec of each optimizer, in the study's order
    description: str  # where the hyperparameters come from, for the report
    epochs: int | None
    batch_size: int | str | None


def tuned_settings(folder: str | os.PathLike, task: str) -> TunedSettings:
    """The hyperparameters the study in ``folder`` selected for ``task``.

    Raises:
        UserError: no study there, several studies, ``task`` not tuned in it, or no optimizer
            with a finished trial.
    """
    from ..tune.results import load_results
    from ..tune.storage import DB_NAME, _quiet, default_storage_url, open_storage

    folder = Path(folder)
    if not (folder / DB_NAME).is_file():
        raise UserError(f"No tuning study in {folder} (expected {folder / DB_NAME}, written by "
                        f"optimlab tune --out {folder})")
    _quiet()
    storage = open_storage(default_storage_url(folder))
    roots = [s.study_name for s in storage.get_all_studies()
             if "optimlab_config" in s.user_attrs]
    if len(roots) != 1:
        raise UserError(f"Expected one tuning study in {folder / DB_NAME}, found "
                        f"{len(roots)}: {', '.join(sorted(roots)) or 'none'}")
    results = load_results(storage, roots[0])
    cfg = results.config
    if task not in cfg.tasks:
        raise UserError(f"Study {roots[0]!r} in {folder} did not tune task {task!r} "
                        f"(it tuned {', '.join(cfg.tasks)})")
    specs, missing = [], []
    for o in cfg.optimizers:
        best = results.results[(task, o)].best
        if best is None:
            missing.append(o)
        else:
            specs.append(best.user_attrs["spec"])
    if not specs:
        raise UserError(f"Study {roots[0]!r} in {folder} has no finished trial for {task!r}")
    epochs = "the task's epochs" if cfg.epochs is None else f"{cfg.epochs} epoch(s)"
    description = (
        f"tuned: each optimizer's best of {cfg.budget} complete trials ({cfg.space} search "
        f"space, {epochs} each, selected on a validation split of {cfg.validation_fraction:g}) "
        f"in study {roots[0]!r} of {folder}"
        + (f"; left out, no finished trial: {', '.join(missing)}" if missing else "")
    )
    return TunedSettings(tuple(specs), description, cfg.epochs, cfg.batch_size)
