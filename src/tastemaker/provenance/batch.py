"""Several outputs' provenance prepared at once: marked, encoded and signed on worker threads, all or nothing.

Apart from :mod:`.service` because it is the one piece of concurrency around it: the pipeline, the guard loop
and the product pipeline prepare a request's outputs together (each marking is numpy and OpenCV, which release
the GIL), and a failure must give back every reservation made, never leave one behind.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

from .service import Prepared, Provenance


def prepare_many(
    prov: Provenance, images: list[np.ndarray], *, workers: int = 2,
    each: Callable[[int, Prepared], None] | None = None,
    waiting: Callable[[], AbstractContextManager[Any]] | None = None, **kw: Any,
) -> list[Prepared]:
    """Prepare several outputs on ``workers`` threads, in order.

    ``each(i, prepared)`` runs on the caller's thread as soon as output ``i`` is prepared, while the later ones
    are still being marked (the guard measures each marked picture so); ``waiting()`` is a context entered
    around each wait (a timer). If a preparation or ``each`` fails, the preparations not started are
    cancelled, every one made is discarded, and the first error is raised: nothing prepared is left behind.
    """
    done: list[Prepared] = []
    error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(images)))) as pool:
        futures = [pool.submit(prov.prepare, img, **kw) for img in images]
        for i, f in enumerate(futures):
            if error is not None:
                f.cancel()
            if f.cancelled():
                continue
            try:
                with waiting() if waiting is not None else nullcontext():
                    prepared = f.result()
            except BaseException as exc:  # keep the first error, release everything else
                error = error or exc
                continue
            done.append(prepared)
            if error is None and each is not None:
                try:
                    each(i, prepared)
                except BaseException as exc:
                    error = exc
    if error is not None:
        for prepared in done:
            prov.discard(prepared)
        raise error
    return done


__all__ = ["prepare_many"]
