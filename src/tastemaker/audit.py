"""Append-only, hash-chained audit log of sensitive actions — ids and hashes only, never image bytes.

Entry ``n`` stores ``prev_hash`` (entry ``n-1``'s hash) and its own ``hash``, an HMAC-SHA256 keyed by
the server secret over the canonical JSON of ``[seq, at, account_id, action, objects, request_id,
outcome, detail, prev_hash]``. A single head row holds the last ``seq`` and ``hash`` with a MAC of its
own. :meth:`AuditLog.verify` then detects:

* an **edited** entry — its recomputed HMAC differs (an attacker without the secret cannot re-sign);
* a **deleted** entry — a gap in ``seq`` and a ``prev_hash`` that no longer matches; deleting the newest
  entries leaves the head pointing past the end;
* an **inserted** entry — its HMAC is wrong, and the entries around it no longer chain.

What a chain cannot see by itself is its own **tail being cut off**: restore an older head row (its MAC is
still valid) and delete the entries after it, and what is left is a shorter, perfectly consistent chain.
Only something kept outside the database can tell. So the log exports **signed checkpoints** (entry count,
last hash, time, and an HMAC under the server secret: nobody without it can forge or alter one):
``tastemaker audit checkpoint -o FILE`` appends one to a file the operator keeps elsewhere (a cron job, a
write-once bucket), and ``tastemaker audit verify --checkpoint FILE`` reports any checkpointed entry that is
gone or different — a truncation, a rollback, or a wiped and restarted log. (``--anchor SEQ:HASH`` is the
same check for one hand-copied head.)

Appends serialise on the head (the store locks it: :meth:`~tastemaker.store.protocol.StoreSession.lock_audit_head`),
inside the caller's transaction: the action and its audit entry commit together or not at all. This module
computes and checks the chain; the store only keeps it (``append_audit_entry``, ``audit_entries``, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .store.protocol import StoreSession
from .store.records import AuditEntry

GENESIS = "0" * 64
_KEY_LABEL = b"tastemaker.audit.v1"
CHECKPOINT_FORMAT = "tastemaker.audit.checkpoint/v1"

# The actions the service records (one per sensitive action).
KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
BOARD_CREATED = "board.created"
BOARD_PINS_ADDED = "board.pins_added"
BOARD_DELETED = "board.deleted"
STYLEEMBED = "styleembed"
GENERATION_CREATED = "generation.created"
GENERATION_FINISHED = "generation.finished"
GENERATION_CANCELLED = "generation.cancelled"
REQUEST_DENIED = "request.denied"
PROFILE_FEEDBACK = "profile.feedback"
PROVENANCE_VERIFIED = "provenance.verified"
RECORD_REGISTERED = "record.registered"
ACCOUNT_DELETED = "account.deleted"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Problem:
    seq: int
    what: str


@dataclass(frozen=True)
class Checkpoint:
    """The log's length and last hash at a time, signed: kept outside the database to catch truncation."""

    seq: int
    hash: str
    at: str
    mac: str

    def to_json(self) -> str:
        return json.dumps(
            {"format": CHECKPOINT_FORMAT, "seq": self.seq, "hash": self.hash, "at": self.at, "mac": self.mac},
            sort_keys=True,
        )


def parse_checkpoints(text: str) -> list[Checkpoint]:
    """Checkpoints from a file, one JSON object per line (blank lines skipped); ValueError names a bad line."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"not a {CHECKPOINT_FORMAT} object")
            cp = Checkpoint(seq=obj["seq"], hash=obj["hash"], at=obj["at"], mac=obj["mac"])
            if not isinstance(cp.seq, int) or isinstance(cp.seq, bool) or cp.seq < 0:
                raise ValueError("seq must be a whole number")
            if not all(isinstance(v, str) for v in (cp.hash, cp.at, cp.mac)):
                raise ValueError("hash, at and mac must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {n}: {exc}") from None
        out.append(cp)
    if not out:
        raise ValueError("no checkpoints in the file")
    return out


@dataclass
class AuditReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problems: list[Problem] = field(default_factory=list)


class AuditLog:
    """Appends and verifies the chain with a key derived from the server secret."""

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(raw, _KEY_LABEL, hashlib.sha256).digest()

    # ------------------------------------------------------------------ hashing
    def entry_hash(
        self,
        *,
        seq: int,
        at: str,
        account_id: str | None,
        action: str,
        objects: Mapping[str, Any],
        request_id: str | None,
        outcome: str,
        detail: Mapping[str, Any],
        prev_hash: str,
    ) -> str:
        payload = [seq, at, account_id, action, dict(objects), request_id, outcome, dict(detail), prev_hash]
        return hmac.new(self._key, _canonical(payload), hashlib.sha256).hexdigest()

    def head_mac(self, seq: int, last_hash: str) -> str:
        return hmac.new(self._key, f"head|{seq}|{last_hash}".encode(), hashlib.sha256).hexdigest()

    def _checkpoint_mac(self, seq: int, last_hash: str, at: str) -> str:
        return hmac.new(self._key, _canonical([CHECKPOINT_FORMAT, seq, last_hash, at]), hashlib.sha256).hexdigest()

    def checkpoint(self, s: StoreSession) -> Checkpoint:
        """A signed checkpoint of the log as it stands (its head). Verify the chain first: a checkpoint of a
        tampered log only preserves the tampering."""
        head = s.audit_head()
        seq, last = (0, GENESIS) if head is None else (int(head.seq), str(head.hash))
        at = _now()
        return Checkpoint(seq, last, at, self._checkpoint_mac(seq, last, at))

    def _check_checkpoints(
        self, s: StoreSession, checkpoints: list[Checkpoint], last_seq: int, problems: list[Problem]
    ) -> None:
        for cp in checkpoints:
            if not hmac.compare_digest(self._checkpoint_mac(cp.seq, cp.hash, cp.at), cp.mac):
                problems.append(Problem(cp.seq, f"the checkpoint of {cp.at} is not signed by this server's secret"))
                continue
            if cp.seq == 0:
                continue
            if cp.seq > last_seq:
                problems.append(Problem(
                    last_seq + 1,
                    f"the checkpoint of {cp.at} recorded {cp.seq} entries but the log ends at {last_seq}: "
                    "entries were cut off the end (truncated, or the log was rolled back)",
                ))
                continue
            entry = s.audit_entry(cp.seq)
            if entry is None:
                problems.append(Problem(cp.seq, f"entry {cp.seq}, checkpointed at {cp.at}, is missing"))
            elif not hmac.compare_digest(entry.hash, cp.hash):
                problems.append(Problem(cp.seq, f"entry {cp.seq} differs from the checkpoint of {cp.at} (history "
                                                "rewritten)"))

    def _hash_of(self, e: AuditEntry) -> str:
        values = {k: v for k, v in asdict(e).items() if k != "hash"}
        return self.entry_hash(**values)

    # ------------------------------------------------------------------ writing
    def append(
        self,
        s: StoreSession,
        action: str,
        *,
        account_id: str | None = None,
        objects: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Add an entry to the caller's transaction; the caller commits (soon: the head stays locked).

        ``objects`` maps kinds to ids (``{"board": "brd_..."}``); ``detail`` holds hashes and small
        scalars. Nothing here may contain image bytes or secrets.
        """
        objects = {k: v for k, v in (objects or {}).items() if v is not None}
        detail = dict(detail or {})
        _check_small(objects, "objects")
        _check_small(detail, "detail")
        head = s.lock_audit_head()
        fields: dict[str, Any] = dict(seq=head.seq + 1, at=_now(), account_id=account_id, action=action,
                                      objects=objects, request_id=request_id, outcome=outcome, detail=detail,
                                      prev_hash=head.hash)
        entry = AuditEntry(**fields, hash=self.entry_hash(**fields))
        s.append_audit_entry(entry, self.head_mac(entry.seq, entry.hash))
        return entry

    def append_many(self, s: StoreSession, action: str, calls: list[Mapping[str, Any]]) -> list[AuditEntry]:
        """Add one ``action`` entry per item of ``calls`` (each the keyword arguments of :meth:`append`), chained
        in order, with one lock of the head and one write of it: a group commit's entries (see
        :mod:`tastemaker.api.groupcommit`). The chain is the same as ``len(calls)`` appends."""
        if not calls:
            return []
        head = s.lock_audit_head()
        seq, prev, entries = head.seq, head.hash, []
        at = _now()
        for call in calls:
            objects = {k: v for k, v in (call.get("objects") or {}).items() if v is not None}
            detail = dict(call.get("detail") or {})
            _check_small(objects, "objects")
            _check_small(detail, "detail")
            seq += 1
            fields: dict[str, Any] = dict(seq=seq, at=at, account_id=call.get("account_id"), action=action,
                                          objects=objects, request_id=call.get("request_id"),
                                          outcome=call.get("outcome", "ok"), detail=detail, prev_hash=prev)
            entries.append(AuditEntry(**fields, hash=self.entry_hash(**fields)))
            prev = entries[-1].hash
        s.append_audit_entries(entries, self.head_mac(seq, prev))
        return entries

    def record(self, s: StoreSession, action: str, **kwargs: Any) -> AuditEntry:
        """Append in a transaction of its own (denied requests, worker events) and commit."""
        entry = self.append(s, action, **kwargs)
        s.commit()
        return entry

    # ------------------------------------------------------------------ checking
    def verify(
        self,
        s: StoreSession,
        *,
        anchor: tuple[int, str] | None = None,
        checkpoints: list[Checkpoint] | None = None,
        batch: int = 1000,
    ) -> AuditReport:
        """Walk the whole chain; report every inconsistency rather than stopping at the first.

        ``checkpoints`` (exported earlier by :meth:`checkpoint`) must all still be in the log: a shorter log
        or a different entry at a checkpointed position is reported.
        """
        problems: list[Problem] = []
        expected_seq, prev, count, last_seq = 1, GENESIS, 0, 0
        anchor_seen = anchor is None
        for e in s.audit_entries(batch=batch):
            count += 1
            if e.seq != expected_seq:
                if e.seq > expected_seq:
                    gap = f"{expected_seq}" if e.seq == expected_seq + 1 else f"{expected_seq}..{e.seq - 1}"
                    problems.append(Problem(e.seq, f"entries {gap} are missing (deleted)"))
            if e.prev_hash != prev:
                problems.append(
                    Problem(
                        e.seq,
                        "prev_hash does not match the entry before it (an entry was deleted, inserted or re-chained)",
                    )
                )
            if not hmac.compare_digest(self._hash_of(e), e.hash):
                problems.append(
                    Problem(e.seq, "content does not match its hash (edited, or not written by this server)")
                )
            if anchor is not None and e.seq == anchor[0]:
                anchor_seen = True
                if e.hash != anchor[1]:
                    problems.append(Problem(e.seq, "hash differs from the recorded anchor"))
            prev, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
        head = s.audit_head()
        if head is None:
            problems.append(Problem(0, "the audit head row is missing"))
            head_seq, head_hash = 0, GENESIS
        else:
            head_seq, head_hash = head.seq, head.hash
            genesis = head.seq == 0 and head.hash == GENESIS and head.mac == ""
            if not genesis and not hmac.compare_digest(self.head_mac(head.seq, head.hash), head.mac):
                problems.append(Problem(head.seq, "the head's MAC is wrong (head edited)"))
            if head.seq > last_seq:
                problems.append(
                    Problem(
                        last_seq + 1,
                        f"the head records {head.seq} entries but the log ends at "
                        f"{last_seq}: entries were deleted from the end",
                    )
                )
            elif head.seq < last_seq:
                problems.append(
                    Problem(head.seq + 1, f"entries after {head.seq} were added without updating the head (inserted)")
                )
            elif head.hash != prev:
                problems.append(Problem(last_seq, "the last entry's hash differs from the head's"))
        if not anchor_seen and anchor is not None:
            problems.append(Problem(anchor[0], "the anchored entry is missing"))
        if checkpoints:
            self._check_checkpoints(s, checkpoints, last_seq, problems)
        return AuditReport(ok=not problems, entries=count, head_seq=head_seq, head_hash=head_hash, problems=problems)


def _check_small(values: Mapping[str, Any], name: str) -> None:
    """Audit fields are ids, hashes and small scalars; refuse anything that could smuggle in content."""
    for k, v in values.items():
        if isinstance(v, bytes | bytearray | memoryview):
            raise ValueError(f"audit {name}[{k!r}] is bytes; record a hash instead")
        if isinstance(v, str) and len(v) > 200:
            raise ValueError(f"audit {name}[{k!r}] is {len(v)} characters; record ids and hashes only")
        if isinstance(v, list | tuple) and (len(v) > 64 or any(isinstance(x, bytes | dict) for x in v)):
            raise ValueError(f"audit {name}[{k!r}] must be a short list of ids or hashes")


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as printed by ``tastemaker audit verify``."""
    seq, _, h = text.partition(":")
    if not seq.isdigit() or len(h) != 64:
        raise ValueError(f"anchor must look like 42:<64 hex digits>, got {text!r}")
    return int(seq), h.lower()
