"""Curation's measuring step on a Ray cluster (``tastemaker curate --ray ADDRESS``).

Imported only with ``--ray``: Ray is the optional ``[ray]`` extra. Images go to Ray tasks in batches of
:data:`BATCH` running the same :func:`.analyse.analyse` as the local runner, so the measurements — and therefore
every decision and the shards' bytes — are the same; a task whose worker dies is retried by Ray. Deciding and
writing stay on the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import MissingDependencyError, RequestError
from .analyse import Analysis, ImageJob, analyse

BATCH = 16


def analyse_batch(jobs: Sequence[ImageJob]) -> list[Analysis]:
    """One Ray task's work: a batch of images, measured in order."""
    return [analyse(job) for job in jobs]


def run_ray(
    jobs: Sequence[ImageJob],
    address: str,
    *,
    max_retries: int = 3,
    on_done: Callable[[Analysis], None] | None = None,
) -> list[Analysis]:
    """Measure ``jobs`` on the Ray cluster at ``address``; results in job order."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("Curation on Ray (--ray)", "ray", "ray") from None
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        raise RequestError(f"--ray {address}: cannot connect to a Ray cluster there ({exc})") from None
    try:
        task: Any = ray.remote(num_cpus=1, max_retries=max_retries)(analyse_batch)
        batches = [list(jobs[i:i + BATCH]) for i in range(0, len(jobs), BATCH)]
        pending = {task.remote(batch): batch for batch in batches}
        out: list[Analysis] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                batch = pending.pop(ref)
                try:
                    results = ray.get(ref)
                except Exception as exc:  # retries used up: those images are unreadable for this run, and say why
                    reason = f"measuring failed on the Ray cluster ({type(exc).__name__}); run again"
                    results = [Analysis(job.index, error=reason) for job in batch]
                for res in results:
                    out.append(res)
                    if on_done is not None:
                        on_done(res)
        return sorted(out, key=lambda a: a.index)
    finally:
        ray.shutdown()
