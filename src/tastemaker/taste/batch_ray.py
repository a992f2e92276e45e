"""Batch profile builds on a Ray cluster (``tastemaker profile batch --ray ADDRESS``).

Imported only when ``--ray`` is given: Ray is an optional extra (``pip install 'tastemaker[ray]'``) and a
heavy import. Each board is one Ray task running the same :func:`.batch.build_one` as the local runner, so
the profiles are the same; a task whose worker process dies (killed, out of memory, node lost) is retried
by Ray up to ``max_retries`` times. Tasks return the profile text and the driver writes the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..raycluster import connect
from .batch import BoardJob, BoardResult, build_one


def run_ray(
    jobs: Sequence[BoardJob],
    address: str,
    *,
    max_retries: int = 3,
    on_done: Callable[[BoardResult], None] | None = None,
) -> list[BoardResult]:
    """Run one Ray task per job on the cluster at ``address``; results in completion order.

    A task that still fails after its retries (or raises inside Ray) is that board's error, not the batch's.
    """
    ray = connect(address, "Batch builds on Ray (--ray)")  # the driver's terminal keeps its progress bar
    try:
        task: Any = ray.remote(num_cpus=1, max_retries=max_retries)(build_one)
        pending = {task.remote(job): job for job in jobs}
        results: list[BoardResult] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as exc:  # retries used up (WorkerCrashedError), a node gone, ...
                    res = BoardResult(job.name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                results.append(res)
                if on_done is not None:
                    on_done(res)
        return results
    finally:
        ray.shutdown()
