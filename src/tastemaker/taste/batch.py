"""Batch profile builds: one folder of board folders in, one profile per board out.

The per-board step (:func:`build_one`) is a plain, picklable function of a :class:`BoardJob` so that every
runner calls exactly the same code: :func:`run_local` (in this process, or a process pool) here, and
``batch_ray.run_ray`` on a Ray cluster. Workers return the profile's JSON text; the driver writes the files
(:func:`write_result`), so a retried or duplicated task never leaves a half-written file behind and the
output bytes do not depend on where a board was built. Nothing here imports Ray.

A board that fails is a :class:`BoardResult` with ``error`` set, never an exception: one bad board out of
thousands must not stop the other builds.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..boards import load_board
from ..errors import BoardError, TastemakerError
from ..media import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, write_atomic
from .profile import ProfileConfig, build_profile

#: the summary file written next to the profiles; a board folder of this name would clash with it
SUMMARY_NAME = "batch.json"


@dataclass(frozen=True)
class BoardJob:
    """Everything one board's build needs, as plain values (it crosses process and machine boundaries)."""

    name: str
    folder: str
    max_modes: int = 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    #: tests of retries only: when set and the file does not exist yet, create it and kill this process
    crash_once_marker: str | None = None


@dataclass
class BoardResult:
    """The outcome of one board: its profile JSON and summary, or the error that stopped it."""

    name: str
    pins: int = 0
    modes: int = 0
    skipped: int = 0
    content_hash: str = ""
    error: str = ""
    profile_json: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    def summary(self) -> dict[str, Any]:
        """This board's entry in ``batch.json`` (no profile body)."""
        if not self.ok:
            return {"name": self.name, "ok": False, "error": self.error}
        data = asdict(self)
        for key in ("profile_json", "error"):
            data.pop(key)
        return {"name": self.name, "ok": True, "profile": f"{self.name}.json",
                **{k: v for k, v in data.items() if k != "name"}}


def find_boards(boards_dir: Path) -> list[tuple[str, Path]]:
    """The board folders of ``boards_dir`` (its visible sub-folders), sorted by name."""
    if not boards_dir.is_dir():
        raise BoardError(f"{boards_dir} is not a folder; it should hold one sub-folder per board")
    try:
        boards = sorted((p.name, p) for p in boards_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise BoardError(f"{boards_dir}: cannot read ({exc.strerror})") from None
    if not boards:
        raise BoardError(f"{boards_dir} has no board folders (it should hold one sub-folder per board)")
    return boards


def make_jobs(
    boards_dir: Path,
    *,
    max_modes: int = 4,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    crash_once: dict[str, str] | None = None,
) -> list[BoardJob]:
    """One :class:`BoardJob` per board folder. ``crash_once`` (board name → marker path) is for tests."""
    marks = crash_once or {}
    return [
        BoardJob(name, str(folder), max_modes, max_pixels, max_bytes, marks.get(name))
        for name, folder in find_boards(boards_dir)
    ]


def build_one(job: BoardJob) -> BoardResult:
    """Load one board and build its profile; errors become the result's ``error``, never an exception."""
    if job.crash_once_marker is not None and not os.path.exists(job.crash_once_marker):
        Path(job.crash_once_marker).touch()
        os._exit(1)  # a worker process dying mid-task, as an OOM kill would
    if job.name == Path(SUMMARY_NAME).stem:
        return BoardResult(job.name, error=f"BoardError: a board named {job.name!r} would overwrite "
                                           f"{SUMMARY_NAME}; rename the folder")
    try:
        board = load_board(job.folder, max_pixels=job.max_pixels, max_bytes=job.max_bytes)
        prof = build_profile(board, ProfileConfig(max_modes=job.max_modes))
        text = prof.to_json()
    except TastemakerError as exc:
        return BoardResult(job.name, error=f"{type(exc).__name__}: {exc.message}")
    except Exception as exc:  # a bug on one board's data must not cost the other boards their profiles
        return BoardResult(job.name, error=f"{type(exc).__name__}: {exc}")
    return BoardResult(job.name, pins=len(prof.pins), modes=len(prof.modes), skipped=len(board.skipped),
                       content_hash=prof.content_hash(), profile_json=text)


def write_result(out_dir: Path, result: BoardResult) -> None:
    """Write a built board's profile as ``OUT_DIR/<board>.json`` (atomically; nothing for a failed board)."""
    if result.ok:
        write_atomic(out_dir / f"{result.name}.json", result.profile_json.encode("utf-8"))


def summary_document(results: Sequence[BoardResult], *, runner: str) -> dict[str, Any]:
    """The ``batch.json`` document: boards in name order, so it does not depend on completion order."""
    ordered = sorted(results, key=lambda r: r.name)
    return {
        "runner": runner,
        "n_boards": len(ordered),
        "n_ok": sum(r.ok for r in ordered),
        "n_failed": sum(not r.ok for r in ordered),
        "boards": [r.summary() for r in ordered],
    }


def run_local(
    jobs: Sequence[BoardJob],
    *,
    workers: int = 1,
    on_done: Callable[[BoardResult], None] | None = None,
) -> list[BoardResult]:
    """Build every job here: in this process with ``workers <= 1``, else in a pool of ``workers`` processes.

    The pool uses ``spawn`` (not ``fork``): the caller may have threads running (a progress bar), and a
    forked child inherits their locks. Results come back in completion order; ``on_done`` sees each.
    """
    results: list[BoardResult] = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            res = build_one(job)
            results.append(res)
            if on_done is not None:
                on_done(res)
        return results
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = {pool.submit(build_one, job): job for job in jobs}
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except Exception as exc:  # the pool lost a process (killed, out of memory): its boards failed
                res = BoardResult(futures[fut].name, error=f"{type(exc).__name__}: worker process failed ({exc})")
            results.append(res)
            if on_done is not None:
                on_done(res)
    return results
