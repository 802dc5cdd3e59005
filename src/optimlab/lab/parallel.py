"""The lab's one way to run work in parallel: processes on this machine.

:func:`run_all` runs a list of calls in a pool of worker processes and hands each result back as
it comes (the runs of ``optimlab compare --jobs N``, the final seeds of ``optimlab tune``);
:func:`start_processes` starts long-lived processes that work on their own (the local workers of
``optimlab tune --workers N``). Both:

* pool processes fork when the parent runs torch on one thread and has not initialized CUDA
  (they inherit the loaded datasets), and spawn otherwise, since forking after an OpenMP pool
  or CUDA has started is unsafe;
  long-lived processes always spawn: a fresh interpreter shares no open database connection;
* give each child the parent's number of torch threads (or ``threads``);
* end each child when the parent dies, even by kill -9 (:func:`optimlab.lab.lifeline.die_with_parent`:
  the parent-death signal on Linux, a check of the parent's pid everywhere), so that no orphan
  goes on writing a store that a ``--resume`` is writing too.

A call running in a pool process reports progress with :func:`report_progress`; the parent sums
the reports of the calls in flight.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing.process import BaseProcess
from typing import Any

from .lifeline import die_with_parent

#: a call: a picklable function and its arguments
Call = tuple[Callable[..., Any], tuple[Any, ...]]

_PROGRESS: Any = None  # a pool process's queue for (call index, steps done, total steps)
_INDEX: int | None = None  # the index of the call a pool process is running
_LAST_REPORT = [0.0]


def _context(threads: int) -> multiprocessing.context.BaseContext:
    import torch

    # a forked child cannot use CUDA once the parent has initialized it (naming the GPU does)
    fork = threads == 1 and not torch.cuda.is_initialized()
    method = "fork" if fork and "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _init(threads: int, progress: Any, parent: int) -> None:
    import torch

    global _PROGRESS
    die_with_parent(parent)
    torch.set_num_threads(threads)
    _PROGRESS = progress


def _call(index: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    global _INDEX
    _INDEX = index
    try:
        return fn(*args)
    finally:
        _INDEX = None


def report_progress(done: int, total: int) -> None:
    """In a call that :func:`run_all` runs: ``done`` of ``total`` steps (a few updates a second
    reach the parent); a no-op elsewhere."""
    if _PROGRESS is None or _INDEX is None:
        return
    now = time.monotonic()
    if now - _LAST_REPORT[0] > 0.1 or done == total:
        _LAST_REPORT[0] = now
        _PROGRESS.put((_INDEX, done, total))


def in_worker() -> bool:
    """Whether this code runs in a call of :func:`run_all`."""
    return _INDEX is not None


def run_all(
    calls: Sequence[Call],
    jobs: int,
    *,
    threads: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[int, Any], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Run ``calls`` in ``jobs`` processes, at most ``jobs`` at a time, in the order given.

    Args:
        calls: ``(function, args)`` pairs; both picklable.
        jobs: processes (>= 1).
        threads: torch threads per process (default: this process's).
        on_start: ``on_start(index)`` when call ``index`` is handed to a process.
        on_done: ``on_done(index, result)`` as each call returns (in completion order).
        on_progress: ``on_progress(done, total)``: the steps reported by the calls in flight,
            summed.

    Returns:
        The results, in the order of ``calls``. An exception of a call propagates (the calls not
        started are cancelled); on KeyboardInterrupt the processes get SIGINT too, so that they
        stop at their next consistent point instead of finishing their calls.
    """
    import torch

    threads = threads or torch.get_num_threads()
    context = _context(threads)
    progress = context.SimpleQueue()
    steps: dict[int, tuple[int, int]] = {}  # index -> (steps done, total) of calls in flight
    results: dict[int, Any] = {}
    queue = list(enumerate(calls))

    def drain() -> None:
        updated = False
        while not progress.empty():
            index, done_steps, total_steps = progress.get()
            if index in steps:
                steps[index] = (done_steps, total_steps)
                updated = True
        if updated and on_progress is not None:
            on_progress(sum(d for d, _ in steps.values()), sum(t for _, t in steps.values()))

    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init,
                             initargs=(threads, progress, os.getpid())) as pool:
        pending: dict[Any, int] = {}

        def submit() -> None:
            index, (fn, args) = queue.pop(0)
            if on_start is not None:
                on_start(index)
            steps[index] = (0, 1)
            pending[pool.submit(_call, index, fn, args)] = index

        try:
            while queue and len(pending) < jobs:
                submit()
            while pending:
                done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    index = pending.pop(future)
                    steps.pop(index, None)
                    results[index] = future.result()
                    if on_done is not None:
                        on_done(index, results[index])
                    if queue:
                        submit()
        except BaseException as e:
            for future in pending:
                future.cancel()
            if isinstance(e, KeyboardInterrupt):
                # a signal sent to this process alone (kill -INT) reaches the workers too
                for process in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(OSError):
                        os.kill(process.pid, signal.SIGINT)
            raise
    return [results[i] for i in sorted(results)]


def _main(threads: int, parent: int, fn: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> None:
    _init(threads, None, parent)
    fn(*args, **kwargs)


def start_processes(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], *,
                    kwargs: Sequence[dict[str, Any]] | None = None,
                    threads: int | None = None) -> list[BaseProcess]:
    """Start one process per argument tuple, each running ``fn(*args[i], **kwargs[i])``; they
    end with this one.

    Arguments travel through a pipe, never the command line or the environment, so a password in
    them stays out of process lists. ``fn`` must be importable (a module-level function).
    """
    import torch

    threads = threads or torch.get_num_threads()
    context = multiprocessing.get_context("spawn")
    kwargs = kwargs if kwargs is not None else [{} for _ in args]
    procs = [context.Process(target=_main, args=(threads, os.getpid(), fn, a, k), daemon=False)
             for a, k in zip(args, kwargs)]
    for p in procs:
        p.start()
    return procs
