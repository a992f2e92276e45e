"""Refused requests in the audit log, aggregated: one entry per client, minute and outcome.

A refusal (401, 403, 429) is worth recording, but not once per request: 600 keyless requests used to
write 600 hash-chained rows in 4 s, each one a serialised write on the audit head. Now the first refusal
of a kind from a client in a minute is written at once (so a probe shows up immediately, with its path and
request id) and the rest of that minute are counted; when the minute is over a background thread writes
one summary entry per group with how many more there were and on which paths (``"repeated": n``). Nothing
is lost — :meth:`DenialLog.flush` with ``everything=True`` (at shutdown) writes what is still counted.

Clients are named by a keyed hash of their address (``client:`` + 16 hex digits), never the address
itself: the audit log holds ids and hashes only. The number of groups held in memory is bounded; past the
bound, refusals are counted under the client ``client:*``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..audit import REQUEST_DENIED, AuditLog
from ..store import Store

log = logging.getLogger("tastemaker.api")

_CLIENT_LABEL = b"tastemaker.audit.client.v1"
#: Most (client, minute, account, outcome) groups held at once.
MAX_GROUPS = 10_000
#: Paths named in a summary entry (the busiest).
SUMMARY_PATHS = 5


@dataclass
class _Group:
    repeated: int = 0
    paths: Counter[str] = field(default_factory=Counter)
    detail: dict[str, Any] = field(default_factory=dict)


class DenialLog:
    """Records refusals in the audit log, one entry per client, minute, account and outcome."""

    def __init__(self, store: Store, audit: AuditLog, secret: str, *, flush_every_s: float = 5.0) -> None:
        self.store, self.audit = store, audit
        self._key = hmac.new(secret.encode(), _CLIENT_LABEL, hashlib.sha256).digest()
        self.flush_every_s = flush_every_s
        self._groups: dict[tuple[str, int, str | None, str], _Group] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def client_tag(self, address: str) -> str:
        """A keyed hash of the client's address: the same client always gets the same tag, unguessable."""
        return "client:" + hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()[:16]

    def note(
        self,
        *,
        address: str,
        outcome: str,
        account_id: str | None = None,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
        detail: dict[str, Any] | None = None,
    ) -> bool:
        """Count one refusal; the first of its group is written now (True), the rest at the minute's end."""
        tag = self.client_tag(address)
        minute = int(time.time() // 60)
        path = path[:100]
        with self._lock:
            key = (tag, minute, account_id, outcome)
            group = self._groups.get(key)
            if group is None and len(self._groups) >= MAX_GROUPS:
                key = ("client:*", minute, None, outcome)
                group = self._groups.get(key)
            if group is not None:
                group.repeated += 1
                group.paths[path] += 1
                return False
            self._groups[key] = _Group(detail={k: v for k, v in (detail or {}).items() if k == "bucket"})
        self._write(
            account_id=account_id,
            request_id=request_id,
            outcome=outcome,
            detail={"method": method, "path": path, "client": key[0], **(detail or {})},
        )
        return True

    def flush(self, *, everything: bool = False) -> int:
        """Write a summary entry for every finished minute's group that had repeats (all groups when
        ``everything``); returns how many entries were written."""
        now = int(time.time() // 60)
        with self._lock:
            done = [k for k in self._groups if everything or k[1] < now]
            groups = [(k, self._groups.pop(k)) for k in done]
        written = 0
        for (tag, minute, account_id, outcome), g in groups:
            if not g.repeated:
                continue
            at = datetime.fromtimestamp(minute * 60, UTC).isoformat(timespec="minutes")
            paths = dict(g.paths.most_common(SUMMARY_PATHS))
            self._write(
                account_id=account_id,
                request_id=None,
                outcome=outcome,
                detail={"client": tag, "minute": at, "repeated": g.repeated, "paths": paths, **g.detail},
            )
            written += 1
        return written

    def _write(self, *, account_id: str | None, request_id: str | None, outcome: str, detail: dict[str, Any]) -> None:
        try:
            with self.store.session() as s:
                self.audit.record(
                    s, REQUEST_DENIED, account_id=account_id, request_id=request_id, outcome=outcome, detail=detail
                )
        except Exception:  # the audit write must not turn a 401/429 into a 500; it is logged instead
            log.exception("could not audit a refused request")

    # ------------------------------------------------------------------ the background writer
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tm-denials", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            self.flush()

    def stop(self) -> None:
        """Stop the writer and write every group still counted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.flush(everything=True)
