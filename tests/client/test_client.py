"""``tastemaker.client`` against a real server on loopback: typed methods, progress from the server's events,
retries that never duplicate a job, errors as the library's classes, timeouts, and the async client."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import tastemaker.jobs.tasks as tasks
from tastemaker import errors
from tastemaker.client import AsyncClient, Client, Generation, Retry
from tastemaker.client.errors import error_from_response

from .conftest import DEMO, LiveServer, board_files, demo_pins


@pytest.fixture(scope="module")
def owner(live: LiveServer) -> tuple[str, str]:
    key = live.key()
    with Client(live.url, key) as tm:
        board = tm.create_board("demo", board_files()[:8], demo_pins())
    return key, board.id


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Generations wait until the event is set, then fail without rendering (the tests cancel them first)."""
    release = threading.Event()

    def wait_then_fail(*args: Any, **kw: Any) -> tasks.Outcome:
        release.wait(20)
        return ("error", "InternalError", "internal_error", "held by the test", None)

    monkeypatch.setattr(tasks, "task_generate", wait_then_fail)
    yield release
    release.set()


def test_boards_taste_generation_feedback_verify_usage(live: LiveServer, owner: tuple[str, str], tmp_path: Any,
                                                      selfie_bytes: bytes) -> None:
    key, board_id = owner
    with Client(live.url, key) as tm:
        board = tm.get_board(board_id)
        assert board.n_pins == 8 and board.pins[0].sha256
        added = tm.add_pins(board_id, board_files()[8:])
        assert added.board.n_pins == len(board_files())
        taste = tm.styleembed(board_id)
        assert taste.board_id == board_id and taste.modes and taste.profile["modes"]
        seen: list[Generation] = []
        job = tm.generate(board_id=board_id, selfie=DEMO / "selfie.jpg", consent=True, n=1, size=256, seed=3,
                          on_progress=seen.append)
        assert job.status == "succeeded" and seen[-1].status == "succeeded" and len(job.images) == 1
        files = tm.download_all(job, tmp_path)
        assert files[0].read_bytes() == tm.download(job.id, 0)
        assert tm.verify(files[0]).verdict == "verified"
        reaction = tm.feedback("like", generation_id=job.id)
        assert reaction.board_id == board_id and reaction.version >= 1
        assert tm.profile_history(board_id).versions
        usage = tm.usage()
        assert usage.images.used == 1 and usage.generations == 1 and "records" in usage.rate_limits
        with pytest.raises(errors.JobFinishedError):
            tm.cancel(job.id)


def test_errors_are_the_librarys_classes(live: LiveServer, owner: tuple[str, str]) -> None:
    key, board_id = owner
    with Client(live.url, key) as tm:
        with pytest.raises(errors.NotFoundError) as nf:
            tm.get_board("brd_nope")
        assert nf.value.status_code == 404 and nf.value.request_id
        pin = board_files()[0]
        with pytest.raises(errors.NoFaceError):  # a board picture has no face
            tm.submit(board_id=board_id, selfie=pin, consent=True, n=1, size=256)
        with pytest.raises(errors.ConsentRequiredError):
            tm.submit(board_id=board_id, selfie=DEMO / "selfie.jpg", consent=False)
    with Client(live.url, "tm_" + "B" * 33) as bad, pytest.raises(errors.InvalidApiKeyError):
        bad.usage()
    with Client(live.url, live.key(scopes=["boards:read"])) as narrow, pytest.raises(errors.InsufficientScopeError):
        narrow.styleembed(board_id)
    tight = live.key(tier="tight")  # 2 images a month: the month's refusal is raised at once (Retry-After: days)
    with Client(live.url, tight) as tm, pytest.raises(errors.QuotaExceededError) as quota:
        tm.submit(board_id="brd_x", selfie=DEMO / "selfie.jpg", consent=True, n=3)
    assert quota.value.retry_after_s is not None and quota.value.retry_after_s > 3600
    # an unknown code keeps its code, as the class for its status
    odd = error_from_response(418, {}, {"code": "teapot", "message": "short and stout"}, "")
    assert isinstance(odd, errors.InputError) and odd.code == "teapot"


class LoseFirstAnswer(httpx.HTTPTransport):
    """Sends every request to the real server, but the first answer to a POST is lost and replaced by a 503 with
    Retry-After: 0 — as when a proxy drops a response: the server did the work, the client did not hear."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str | None] = []
        self.lost = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST":
            self.keys.append(request.headers.get("idempotency-key"))
            if not self.lost:
                self.lost = True
                response.read()
                return httpx.Response(503, headers={"Retry-After": "0", "content-type": "application/json"},
                                      json={"code": "service_unavailable", "message": "lost", "error": "x"})
        return response


def test_a_retried_submit_never_makes_two_jobs(live: LiveServer, owner: tuple[str, str], held: threading.Event) -> None:
    key, board_id = owner
    transport = LoseFirstAnswer()
    with Client(live.url, key, transport=transport) as tm:
        before = tm.usage().active_jobs.used
        job = tm.submit(board_id=board_id, selfie=DEMO / "selfie.jpg", consent=True, n=1, size=256)
        assert len(transport.keys) == 2 and transport.keys[0] == transport.keys[1] is not None
        assert tm.usage().active_jobs.used == before + 1  # one job, not two
        with pytest.raises(TimeoutError):
            tm.wait(job.id, timeout=0.5)
        cancelled = tm.cancel(job.id)
        assert cancelled.status == "cancelled"
        assert tm.wait(job.id).status == "cancelled"


class BusyOnce(httpx.HTTPTransport):
    """The real server, except that the first request is answered 429 with ``Retry-After: 1``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"code": "rate_limited", "message": "busy",
                                                                           "error": "RateLimitedError"})
        return super().handle_request(request)


def test_429_is_retried_after_retry_after(live: LiveServer, owner: tuple[str, str]) -> None:
    import time

    transport = BusyOnce()
    with Client(live.url, owner[0], transport=transport) as tm:
        t = time.monotonic()
        assert tm.usage().tier == "free"
        assert transport.calls == 2 and time.monotonic() - t >= 1.0


def test_timeouts_and_unreachable_servers_are_clear_errors() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with Client(url, "tm_x", timeout=0.3, retry=Retry(attempts=2, backoff_s=0.01)) as tm, \
                pytest.raises(errors.ServiceUnavailableError) as err:
            tm.usage()
        assert err.value.code == "connection_failed" and "timed out" in err.value.message
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", "tm_x", retry=Retry(attempts=2, backoff_s=0.01)) as tm, \
            pytest.raises(errors.ServiceUnavailableError):
        tm.usage()


def test_async_client(live: LiveServer, owner: tuple[str, str], held: threading.Event) -> None:
    key, board_id = owner

    async def run() -> None:
        async with AsyncClient(live.url, key) as tm:
            usage = await tm.usage()
            assert usage.account_id.startswith("acc_")
            job = await tm.submit(board_id=board_id, selfie=DEMO / "selfie.jpg", consent=True, n=1, size=256)
            assert job.status in ("queued", "running")
            seen: list[str] = []
            waiter = asyncio.create_task(tm.wait(job.id, on_progress=lambda g: seen.append(g.status)))
            await tm.cancel(job.id)
            assert (await waiter).status == "cancelled" and seen[-1] == "cancelled"
            with pytest.raises(errors.NotFoundError):
                await tm.get_generation("gen_nope")

    asyncio.run(run())


def test_delete_account(live: LiveServer) -> None:
    with Client(live.url, live.key()) as tm:
        gone = tm.delete_account()
        assert gone.account_id.startswith("acc_")
        with pytest.raises(errors.InvalidApiKeyError):
            tm.usage()
