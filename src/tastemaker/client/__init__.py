"""``tastemaker.client``: the Tastemaker HTTP API from Python — :class:`Client` and :class:`AsyncClient`.

::

    from tastemaker.client import Client

    with Client("http://127.0.0.1:8000", api_key) as tm:
        board = tm.create_board("my look", ["pins/a.jpg", "pins/b.jpg"])
        job = tm.generate(board_id=board.id, selfie="me.jpg", consent=True, n=2)
        tm.download_all(job, "out/")

        local = tm.generate_local(board.id, ["me.jpg"], n=4)   # on-device: the selfie never leaves this machine

Typed methods for boards, pins, taste (``styleembed``), generations (submit, wait with the server's progress
events, cancel, download), feedback, verify, registering on-device outputs, usage and deleting the account.
Retries 429/503 after ``Retry-After`` and dropped connections with backoff; one ``Idempotency-Key`` per logical
write, so a retried submit never makes two jobs; API errors raise the library's own classes, one per error code
(:mod:`.errors`). Needs only the core install (httpx); no server extra.
"""

from __future__ import annotations

from .aio import AsyncClient
from .errors import build_error, error_from_response
from .http import Retry
from .local import DeviceMarks
from .models import (
    AccountDeleted,
    BoardInfo,
    FeedbackResult,
    Generation,
    LocalGeneration,
    LocalImage,
    OutputImage,
    PinsAdded,
    ProfileHistory,
    RegisteredRecord,
    StyleEmbed,
    Usage,
    VerifyResult,
)
from .sync import Client

__all__ = [
    "AccountDeleted",
    "AsyncClient",
    "BoardInfo",
    "Client",
    "DeviceMarks",
    "FeedbackResult",
    "Generation",
    "LocalGeneration",
    "LocalImage",
    "OutputImage",
    "PinsAdded",
    "ProfileHistory",
    "RegisteredRecord",
    "Retry",
    "StyleEmbed",
    "Usage",
    "VerifyResult",
    "build_error",
    "error_from_response",
]
