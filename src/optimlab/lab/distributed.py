"""Data-parallel training of a run under DDP or FSDP2, and the ``--nproc`` launcher (torchrun).

One :class:`~optimlab.lab.runspec.RunSpec` is trained by ``world`` processes, each running the
runner's training loop (:func:`optimlab.lab.runner.train`) with the :class:`ShardedBatches` hook.
Every process builds the model under the run's seed (the same initial weights as
:func:`optimlab.lab.runner.run`) and draws the same data order (the runner's per-epoch generator),
so the global batches are the runner's. Each global batch of ``B`` rows is cut into ``world``
contiguous shards of ``n_r`` rows; rank ``r`` computes

    loss_r = (1/n_r) * sum_{i in shard r} l_i * (n_r * world / B)

and backpropagates it. DDP (``torch.nn.parallel.DistributedDataParallel``) and FSDP2
(``torch.distributed.fsdp.fully_shard``) both average gradients over ranks, so every rank ends
up with ``(1/world) * sum_r grad loss_r = (1/B) * sum_i grad l_i``: the gradient of the global
batch's mean loss, whatever the shard sizes (the last batch of an epoch may not split evenly).
The optimizer then takes the same step as in one process. Results agree with single-process
training up to the order of floating-point sums (bitwise in no case; to ~1e-15 in float64).

Under FSDP2 the parameters are ``DTensor`` shards and every optimizer of :mod:`optimlab.optim`
updates its shard with the same elementwise rule (all of them are elementwise). The optimizers
run their per-tensor path there (``foreach=False`` unless the spec sets it): in torch 2.13
``DTensor`` has no sharding strategy for ``aten._foreach_copy_``, which the foreach path uses.

The launcher (:func:`launch`) runs ``python -m torch.distributed.run --standalone
--nproc_per_node N -m optimlab.lab.distributed ...``; rank 0 writes the result as JSON and the
launcher reads it back as a :class:`~optimlab.lab.runspec.RunResult`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from . import runner
from .errors import UserError
from .runner import Batches
from .runspec import EpochRecord, RunResult, RunSpec
from .spec import Phase
from .tasks import DataOptions, Dataset

MODES = ("ddp", "fsdp")


def shard_bounds(n: int, world: int, rank: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank`` when ``n`` rows are cut into ``world`` shards.

    Shards are contiguous and their sizes differ by at most one (the first ``n % world`` ranks
    get one more row).
    """
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _wrap(model: nn.Module, mode: str | None) -> nn.Module:
    if mode is None:
        return model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for module in model.modules():
            if module is not model and any(True for _ in module.parameters(recurse=False)):
                fully_shard(module)
        fully_shard(model)
        return model
    raise UserError(f"Unknown distributed mode {mode!r} (expected one of {', '.join(MODES)})")


def full_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Every parameter as a whole tensor (FSDP2 shards are gathered: call it on every rank)."""
    out = {}
    for name, p in model.named_parameters():
        t = p.detach()
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        out[name.removeprefix("module.")] = t.clone()
    return out


class ShardedBatches(Batches):
    """The training loop's hook for data-parallel training: each rank takes its shard of every
    global batch and back-propagates ``loss_r * n_r * world / B`` (see the module docstring);
    the step's loss is the all-reduced mean over the whole batch."""

    def __init__(self, mode: str | None, dtype: torch.dtype | None, device: torch.device | str | None
                 ) -> None:
        self.mode, self.dtype, self.device = mode, dtype, device
        self.world = dist.get_world_size() if mode is not None else 1
        self.rank = dist.get_rank() if mode is not None else 0

    def model(self, model: nn.Module) -> nn.Module:
        if self.dtype is not None:
            model = model.to(self.dtype)
        if self.device is not None:
            model = model.to(self.device)
        return _wrap(model, self.mode)

    def data(self, dataset: Dataset) -> Dataset:
        x_train, y_train, x_test, y_test = (dataset.x_train, dataset.y_train, dataset.x_test,
                                            dataset.y_test)
        if self.dtype is not None:
            x_train, x_test = x_train.to(self.dtype), x_test.to(self.dtype)
        if self.device is not None:
            x_train, y_train, x_test, y_test = (t.to(self.device)
                                                for t in (x_train, y_train, x_test, y_test))
        return Dataset(x_train, y_train, x_test, y_test, source=dataset.source)

    def phase(self, phase: Phase) -> Phase:
        if self.mode == "fsdp" and "foreach" not in phase.hyperparameters:
            # DTensor (torch 2.13) has no sharding rule for aten._foreach_copy_, which the foreach
            # path uses; the per-tensor path runs the same rule with DTensor-supported ops
            return replace(phase, hyperparameters={**phase.hyperparameters, "foreach": False})
        return phase

    def loss(self, model: nn.Module, loss_fn: Any, x: Tensor, y: Tensor, idx: Tensor | None
             ) -> tuple[Tensor, float]:
        if idx is None:
            idx = torch.arange(len(x))
        if self.device is not None:
            idx = idx.to(self.device)
        lo, hi = shard_bounds(len(idx), self.world, self.rank)
        mine = idx[lo:hi]
        if len(mine):
            local = loss_fn(model(x[mine]), y[mine])
            loss = local * (len(mine) * self.world / len(idx))
            total = local.detach() * len(mine)
        else:  # an empty shard still joins the gradient all-reduce
            loss = sum(p.sum() * 0 for p in model.parameters())
            total = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.mode is not None:
            total = total.clone()
            dist.all_reduce(total)
        return loss, total.item() / len(idx)


def train(spec: RunSpec, *, mode: str | None = None, data: DataOptions | None = None,
          dtype: torch.dtype | None = None, device: torch.device | str | None = None,
          return_parameters: bool = False) -> dict[str, Any]:
    """Train ``spec`` in this process, data-parallel over the initialised process group if any.

    It is the runner's training loop (:func:`optimlab.lab.runner.train`) with the
    :class:`ShardedBatches` hook: the same initial weights, data order and schedule handling.

    Args:
        spec: a :class:`~optimlab.lab.runspec.RunSpec`.
        mode: ``"ddp"``, ``"fsdp"``, or None for one process (no process group needed).
        data: :class:`~optimlab.lab.tasks.DataOptions`.
        dtype: cast the model and the data to this dtype (e.g. ``torch.float64``).
        device: where the model and data live (default: CPU).
        return_parameters: include ``"parameters"`` (name -> full tensor) in the result.

    Returns:
        On every rank: ``{"result": RunResult, "parameters": ...}``; the metrics are the global
        ones (losses averaged over all ranks' rows).
    """
    result, model = runner.train(spec, data=data, batches=ShardedBatches(mode, dtype, device))
    out: dict[str, Any] = {"result": result}
    if return_parameters:
        out["parameters"] = full_parameters(model)
    return out


def result_to_json(result: RunResult) -> dict[str, Any]:
    """A result as JSON-ready data (the spec as its text config)."""
    return {
        "spec": result.spec.config(),
        "status": result.status,
        "diverged_step": result.diverged_step,
        "step_losses": list(result.step_losses),
        "epochs": [asdict(e) for e in result.epochs],
        "wall_time_s": result.wall_time_s,
        "step_time_share": result.step_time_share,
        "step_times_s": list(result.step_times_s),
        "source": result.source,
    }


def result_from_json(data: dict[str, Any], spec: RunSpec | None = None) -> RunResult:
    """The result :func:`result_to_json` wrote (``spec``, when given, is used as it is)."""
    data = dict(data)
    config = data.pop("spec")
    spec = spec if spec is not None else RunSpec(**config)
    epochs = [EpochRecord(e["epoch"], float(e["train_loss"]), float(e["test_loss"]),
                          float(e["test_accuracy"]), float(e["wall_time_s"]), e["step"])
              for e in data.pop("epochs")]
    data["step_losses"] = [float(v) for v in data["step_losses"]]
    data["step_times_s"] = [float(v) for v in data.get("step_times_s", [])]
    for key in ("wall_time_s", "step_time_share"):
        data[key] = float(data[key])
    return RunResult(spec=spec, epochs=epochs, **data)


def launch(spec: RunSpec, nproc: int, *, mode: str = "ddp", data_dir: Path | None = None,
           timeout_s: float | None = None) -> RunResult:
    """Train ``spec`` with ``nproc`` processes under torchrun; the :class:`RunResult` of rank 0.

    Uses the gloo backend on CPU and NCCL when every process has a CUDA device. ``nproc`` is
    checked by the caller (``compare``).
    """
    if mode not in MODES:
        raise UserError(f"Unknown distributed mode {mode!r} (expected one of {', '.join(MODES)})")
    with tempfile.TemporaryDirectory() as tmp:
        result_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "optimlab.lab.distributed",
               "--spec", json.dumps(spec.config()), "--mode", mode, "--result", str(result_path)]
        if data_dir is not None:
            cmd += ["--data-dir", str(data_dir)]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
        if proc.returncode != 0 or not result_path.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise UserError(f"Distributed run of {spec.run_id()} failed (exit {proc.returncode}): "
                            + " | ".join(tail))
        return result_from_json(json.loads(result_path.read_text(encoding="utf-8")), spec)


def run_data_parallel(spec: RunSpec, *, nproc: int, mode: str = "ddp",
                      data: DataOptions | None = None, store: Any = None,
                      checkpoint_dir: Path | None = None, checkpoint_every: float = 0.0,
                      on_epoch: Any = None, progress: Any = None) -> RunResult:
    """:func:`optimlab.lab.runner.run`'s contract, trained by ``nproc`` processes (torchrun).

    The result is stored the way the runner stores it (one run row, its step and epoch rows),
    so that reports read it like any other run. The processes train the whole run at once:
    ``on_epoch`` and ``progress`` are called when it has ended, and ``checkpoint_dir`` and
    ``checkpoint_every`` are not used (a run interrupted under torchrun starts again from its
    first step).
    """
    data_dir = getattr(data, "data_dir", None) if data is not None else None
    result = launch(spec, nproc, mode=mode, data_dir=data_dir)
    if store is not None:
        run_id = spec.run_id()
        store.begin_run(run_id, task=spec.task, optimizer=spec.optimizer_label(), seed=spec.seed,
                        config={**spec.config(), "nproc": nproc, "distributed": mode},
                        source=result.source)
        store.truncate(run_id, after_step=0, after_epoch=0)
        store.write_progress(
            run_id,
            steps=zip(range(1, len(result.step_losses) + 1), result.step_losses,
                      result.step_times_s),
            epochs=result.epochs,
            wall_time_s=result.wall_time_s, step_time_share=None, status=result.status,
            diverged_step=result.diverged_step,
        )
    for record in result.epochs:
        if on_epoch is not None:
            on_epoch(record)
    if progress is not None:
        progress(len(result.step_losses), len(result.step_losses))
    return result


def main(argv: list[str] | None = None) -> None:
    """Entry point of each torchrun process (reads RANK, WORLD_SIZE, MASTER_ADDR from env)."""
    from .files import atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m optimlab.lab.distributed")
    parser.add_argument("--spec", required=True, help="RunSpec fields as JSON")
    parser.add_argument("--mode", choices=MODES, default="ddp")
    parser.add_argument("--result", required=True, type=Path)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    spec = RunSpec(**json.loads(args.spec))
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= int(
        os.environ.get("LOCAL_WORLD_SIZE", "1"))
    device = None
    if use_cuda:  # pragma: no cover - needs GPUs
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        out = train(spec, mode=args.mode, data=DataOptions(data_dir=args.data_dir), device=device)
        if dist.get_rank() == 0:
            atomic_write_text(args.result, json.dumps(_finite(result_to_json(out["result"]))))
    finally:
        dist.destroy_process_group()


def _finite(value: Any) -> Any:
    # JSON has no NaN/Inf: encode them as strings that float() reads back
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    main()
