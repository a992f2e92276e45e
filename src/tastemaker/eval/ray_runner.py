"""Evaluation cells on a Ray cluster (``tastemaker eval --ray ADDRESS``).

Imported only when ``--ray`` is given: Ray is an optional extra (``pip install 'tastemaker[ray]'``) and a
heavy import. Each selfie x board is one Ray task running :func:`.cells.run_cell`, the same
:func:`.cells.measure_cell` as the local run, so the measures are the same; a task whose worker process dies
(killed, out of memory, node lost) is retried by Ray up to ``max_retries`` times. The run's inputs (people,
prepared boards, baselines) are put in the object store once, not shipped with every task, and the driver
gets the outcomes back in cell order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import RequestError
from ..raycluster import check_reachable, connect, require_ray
from .cells import CellInputs, CellJob, CellOutcome, run_cell

FEATURE = "Evaluation on Ray (--ray)"


def check_cluster(address: str) -> None:
    """Fail now, before the long preparation, if Ray is not installed or nothing answers at ``address``."""
    require_ray(FEATURE)
    check_reachable(address)


def run_cells_ray(
    jobs: Sequence[CellJob],
    inputs: CellInputs,
    address: str,
    *,
    progress: Callable[[str, int, int], None],
    total: int,
    max_retries: int = 3,
) -> list[CellOutcome]:
    """Run one Ray task per cell on the cluster at ``address``; the outcomes in ``jobs`` order.

    ``progress`` hears of each cell as it completes (``total`` counts every method of every cell). A cell
    that still fails after its retries fails the run: an evaluation with a hole in it would not compare.
    """
    ray = connect(address, FEATURE)
    try:
        task: Any = ray.remote(num_cpus=1, max_retries=max_retries)(run_cell)
        shared = ray.put(inputs)
        refs = [task.remote(job, shared) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        per_cell = 1 + len(inputs.baselines)
        outcomes: dict[int, CellOutcome] = {}
        pending = list(refs)
        progress(f"{len(jobs)} cells on Ray at {address}", 0, total)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                try:
                    outcomes[i] = ray.get(ref)
                except Exception as exc:  # retries used up (WorkerCrashedError), a node gone, a bug in a cell
                    first = str(exc).splitlines()[0][:300] if str(exc) else ""
                    raise RequestError(f"--ray: cell {inputs.label(jobs[i])} failed (after up to {max_retries} "
                                       f"retries): {type(exc).__name__}: {first}") from None
                progress(f"{inputs.label(jobs[i])}: done", len(outcomes) * per_cell, total)
        return [outcomes[i] for i in range(len(jobs))]
    finally:
        ray.shutdown()
