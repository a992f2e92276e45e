"""``POST /v1/generations/{id}/cancel`` at the HTTP edge: the document it answers, 409 for a generation that has
ended, 404 for another account's, and the server-sent events that end on ``cancelled``. (How the runner stops the
work — a queued job never starting, a running worker stopped alone — is tested in ``tests/jobs/test_cancel.py``.)
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tastemaker.jobs import Watch

from .conftest import Api, generate, sse_events, upload_board

SMALL_BOARD = ["meadow.jpg", "cat-nap.jpg", "night-grass.jpg"]


def start(api: Api, headers: dict[str, str], selfie: bytes) -> dict[str, Any]:
    b = upload_board(api, headers, names=SMALL_BOARD)
    r = generate(api, headers, selfie, wait=None, board_id=b["id"])
    assert r.status_code == 202, r.text
    doc: dict[str, Any] = r.json()
    return doc


def test_cancel_answers_the_cancelled_generation(make_api: Any, selfie_bytes: bytes, held: threading.Event) -> None:
    api = make_api()
    alice = api.key("pro", "alice")
    job = start(api, alice, selfie_bytes)
    r = api.client.post(f"/v1/generations/{job['id']}/cancel", headers=alice)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["id"] == job["id"] and doc["status"] == "cancelled" and doc["finished_at"] is not None
    assert doc["error"] == {
        "code": "cancelled",
        "message": "the generation was cancelled at the account's request; its images went back to the quota",
        "retryable": False,
    }
    assert doc["links"]["self"].endswith(f"/v1/generations/{job['id']}")
    assert api.client.get(f"/v1/generations/{job['id']}", headers=alice).json() == doc
    assert api.client.get("/v1/usage", headers=alice).json()["images"]["used"] == 0
    r = api.client.get(f"/v1/generations/{job['id']}/images/0", headers=alice)
    assert r.status_code == 409 and r.json()["code"] == "not_ready"


def test_cancelling_a_finished_generation_is_409(make_api: Any, selfie_bytes: bytes) -> None:
    api = make_api()
    alice = api.key("pro", "alice")
    b = upload_board(api, alice, names=SMALL_BOARD)
    job = generate(api, alice, selfie_bytes, wait=30, board_id=b["id"]).json()
    assert job["status"] == "succeeded", job
    r = api.client.post(f"/v1/generations/{job['id']}/cancel", headers=alice)
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["code"] == "job_finished" and "Traceback" not in r.text and "retry-after" not in r.headers
    assert body["message"] == (
        f"generation {job['id']} has already succeeded; only a queued or running generation can be cancelled"
    )
    after = api.client.get(f"/v1/generations/{job['id']}", headers=alice).json()
    assert after["status"] == "succeeded" and len(after["images"]) == 1  # untouched, images and quota kept
    assert api.client.get("/v1/usage", headers=alice).json()["images"]["used"] == 1


def test_another_accounts_generation_is_404(make_api: Any, selfie_bytes: bytes, held: threading.Event) -> None:
    api = make_api()
    alice, bob = api.key("pro", "alice"), api.key("pro", "bob")
    job = start(api, alice, selfie_bytes)
    r = api.client.post(f"/v1/generations/{job['id']}/cancel", headers=bob)
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    r = api.client.post("/v1/generations/gen_doesnotexist/cancel", headers=alice)
    assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    assert api.client.get(f"/v1/generations/{job['id']}", headers=alice).json()["status"] in ("queued", "running")
    held.set()  # alice's job goes on (and fails as the fixture makes it): bob's request changed nothing


def test_the_event_stream_ends_with_cancelled(
    make_api: Any, selfie_bytes: bytes, held: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream has sent its first event and waits for the next when another request cancels the job: its
    last event is ``cancelled``, after which it ends."""
    api = make_api()
    alice = api.key("pro", "alice")
    job = start(api, alice, selfie_bytes)
    watchers = api.services.runner.watchers
    subscribed = threading.Event()  # set once the stream waits on its watch, i.e. after its first event
    add = watchers.add

    def add_and_tell(job_id: str) -> Watch:
        w = add(job_id)
        wait = w.wait

        async def wait_and_tell(timeout: float) -> bool:
            subscribed.set()
            return await wait(timeout)

        w.wait = wait_and_tell  # type: ignore[method-assign]
        return w

    monkeypatch.setattr(watchers, "add", add_and_tell)
    answers: list[Any] = []

    def cancel_once_watched() -> None:
        if subscribed.wait(30):
            answers.append(api.client.post(f"/v1/generations/{job['id']}/cancel", headers=alice))

    canceller = threading.Thread(target=cancel_once_watched)
    canceller.start()
    with api.client.stream("GET", job["links"]["events"], headers=alice) as stream:
        events = sse_events(stream.iter_lines())
    canceller.join(30)
    assert [a.status_code for a in answers] == [200]
    assert events[0]["event"] == "progress" and events[-1]["event"] == "cancelled", events
    assert events[-1]["data"]["status"] == "cancelled" and events[-1]["data"]["error"]["code"] == "cancelled"
    assert all(e["event"] == "progress" for e in events[:-1])
