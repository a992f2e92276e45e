"""``tastemaker eval --ray``: the same results.json as the local run, on a real two-node Ray cluster.

The cluster is the session fixture ``ray_cluster`` of ``tests/conftest.py`` (``ray start`` on 127.0.0.1);
these tests are skipped when Ray is not installed. Only what measures time or memory may differ between the
two runs; every score, every error and every output's pixel hash must not.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from tastemaker.eval import BaselineContext, register_baseline, unregister_baseline

from ..conftest import ROOT, free_port
from .conftest import make_app

runner = CliRunner()
#: fields that measure time or memory, or say when the run went: they differ between any two runs
TIMING_KEYS = {"latency_ms", "engine_stages_ms", "peak_rss_mb", "latency_setup_ms", "duration_s", "created_at",
               "resources"}


class CrashOnceBaseline:
    """The selfie as it is framed, like ``none`` — but the first call anywhere kills its own process (as an
    out-of-memory kill would), once: the file ``marker`` says it happened."""

    name = "crash-once"
    description = "the framed selfie; kills its process the first time"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def render(self, framed: Sequence[np.ndarray], ctx: BaselineContext) -> list[np.ndarray]:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # one process wins, even two at once
        except FileExistsError:
            return [f.copy() for f in framed]
        os.close(fd)
        os._exit(1)


@pytest.fixture()
def crash_once(tmp_path: Path) -> Iterator[Path]:
    """The ``crash-once`` baseline registered here, and shipped to Ray workers by value (they cannot import a
    test module); yields its marker file."""
    ray = pytest.importorskip("ray")
    marker = tmp_path / "crashed-once"
    register_baseline("crash-once", functools.partial(CrashOnceBaseline, str(marker)))
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield marker
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        unregister_baseline("crash-once")


def _local_run(args: list[str], marker: Path, log: Path) -> subprocess.Popen[bytes]:
    """``tastemaker eval ARGS`` in a process of its own, with ``crash-once`` registered (its marker already
    there: it never crashes), which fails if anything imported Ray."""
    marker.touch()
    code = (
        "import functools, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.eval.test_eval_ray import CrashOnceBaseline\n"
        "from tastemaker.eval import register_baseline\n"
        f"register_baseline('crash-once', functools.partial(CrashOnceBaseline, {str(marker)!r}))\n"
        "from tastemaker.cli.app import app\n"
        f"sys.argv = ['tastemaker', *{args!r}]\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)


def _args(eval_data: dict[str, Path], out: Path, baselines: str, n: int = 1) -> list[str]:
    return ["eval", "--selfies", str(eval_data["selfies"]), "--boards", str(eval_data["boards"]), "-o", str(out),
            "-n", str(n), "--size", "256", "--baselines", baselines]


def _strip(obj: Any) -> Any:
    """The document without the fields that measure time or memory (wherever they are in it)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def test_eval_on_ray_equals_local_and_a_dead_worker_is_retried(
    ray_cluster: str, eval_data: dict[str, Path], crash_once: Path, tmp_path: Path
) -> None:
    """One selfie x two boards, the engine and two baselines: on the cluster, where the first ``crash-once``
    call kills its worker and Ray runs that cell again, and meanwhile here without ``--ray`` (in a process of
    its own, which never imports Ray)."""
    baselines = "reinhard,crash-once"
    log = tmp_path / "local.log"
    local = _local_run(_args(eval_data, tmp_path / "local", baselines), tmp_path / "local-marker", log)
    try:
        remote = runner.invoke(make_app(), [*_args(eval_data, tmp_path / "ray", baselines), "--ray", ray_cluster])
    finally:
        local.wait(timeout=300)
    assert local.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert remote.exit_code == 0, remote.output
    assert crash_once.exists(), "the crashing baseline did not run"  # ...and its task was retried: no error
    a = json.loads((tmp_path / "local" / "results.json").read_text())
    b = json.loads((tmp_path / "ray" / "results.json").read_text())
    # the same outputs, pixel for pixel, and the same measures
    assert len(a["requests"]) == 2 * 3 and len(a["images"]) == 2 * 3 and all(r["ok"] for r in a["requests"])
    assert [r["pixels_sha256"] for r in a["images"]] == [r["pixels_sha256"] for r in b["images"]]
    assert _strip(a) == _strip(b)
    assert b["latency_setup_ms"]["engine_warmup"] > 0  # each worker process warmed its engine up
    assert (tmp_path / "ray" / "report.html").is_file()


def test_a_wrong_ray_address_is_a_clear_error_before_any_work(
    eval_data: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    app = make_app()
    for address, says in ((f"127.0.0.1:{free_port()}", "cannot connect to a Ray cluster there"),
                          ("127.0.0.1:port", "not a Ray address")):
        result = runner.invoke(app, [*_args(eval_data, tmp_path / "out", "none"), "--ray", address])
        assert result.exit_code == 2, result.output
        assert says in result.output and address in result.output
    assert not (tmp_path / "out" / "results.json").exists()
