"""Provenance as one step: every output is recorded, watermarked, signed and logged — or not returned.

``Provenance.stamp(pixels, ...)`` does, in this order, and raises on any failure (fail closed):

1. allocate a fresh 40-bit record id (unique in this store);
2. embed the invisible watermark carrying that id (``watermark.embed`` verifies its own output);
3. build the :class:`ProvenanceRecord` (hashes of prompt, profile and the *marked* pixels);
4. encode to the requested format and embed a signed C2PA manifest (``c2pa.sign_image``);
5. append the record to the Merkle transparency log and index it by id.

Only then are the bytes handed back. ``Provenance.verify(data)`` goes the other way: the C2PA manifest
and its validation state, the watermark id (works on images whose metadata was stripped), the record
it resolves to, and that record's inclusion proof against the current signed tree head.

Everything lives under ``<data dir>/provenance`` (log, index, Ed25519 log key) and
``<data dir>/c2pa`` (local CA and signing certificate, made on first use; or the user's PEMs).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ImageError, LedgerError, ProofError, WatermarkError
from ..media import decode_image, encode_image
from . import watermark as wm
from .c2pa import ManifestReport, ensure_signing_identity, read_manifest, sign_image
from .ledger import Ledger, leaf_hash, verify_inclusion
from .record import ProvenanceRecord, new_record_id

Verdict = Literal["verified", "not_ours", "tampered"]
#: CLI exit codes of ``tastemaker verify``.
VERDICT_EXIT = {"verified": 0, "not_ours": 20, "tampered": 21}


@dataclass(frozen=True)
class Prepared:
    """A marked, encoded and signed output whose record is not logged yet."""

    data: bytes
    pixels: np.ndarray
    record: ProvenanceRecord


@dataclass(frozen=True)
class Stamped:
    """A marked, signed, logged output."""

    data: bytes
    pixels: np.ndarray
    record: ProvenanceRecord
    log_index: int


@dataclass
class VerifyReport:
    """What ``verify`` found, and its verdict."""

    verdict: Verdict
    c2pa: ManifestReport
    watermark_id: int | None
    watermark_confidence: float
    record: ProvenanceRecord | None = None
    log_index: int | None = None
    tree_size: int | None = None
    tree_root: str | None = None
    inclusion_proof: list[str] = field(default_factory=list)
    proof_ok: bool = False
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "c2pa": {
                "state": self.c2pa.state,
                "trusted": self.c2pa.trusted,
                "validation_state": self.c2pa.validation_state,
                "record": self.c2pa.record,
            },
            "watermark": {
                "id": None if self.watermark_id is None else f"{self.watermark_id:010x}",
                "confidence": round(self.watermark_confidence, 3),
            },
            "record": None if self.record is None else self.record.to_dict(),
            "log": {
                "index": self.log_index,
                "tree_size": self.tree_size,
                "root": self.tree_root,
                "inclusion_proof": self.inclusion_proof,
                "proof_ok": self.proof_ok,
            },
            "problems": self.problems,
        }


_INDEX = """
CREATE TABLE IF NOT EXISTS records (
    record_id INTEGER PRIMARY KEY, log_index INTEGER NOT NULL UNIQUE, record TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'provenance records are append-only'); END;
"""


def _sniff_format(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "unknown"


class Provenance:
    """The provenance store of one installation (or one API deployment)."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        chain_pem: Path | str | None = None,
        key_pem: Path | str | None = None,
        anchor_pem: Path | str | None = None,
        key: int = wm.DEFAULT_KEY,
    ) -> None:
        root = Path(data_dir)
        self.dir = root / "provenance"
        self.ledger = Ledger(self.dir)
        self.identity = ensure_signing_identity(root / "c2pa", chain_pem=chain_pem, key_pem=key_pem,
                                                anchor_pem=anchor_pem)
        self.key = key
        self._lock = threading.Lock()
        self._reserved: set[int] = set()
        try:
            self._db = sqlite3.connect(self.dir / "records.sqlite", isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_INDEX)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the provenance index in {self.dir}: {exc}") from exc

    def close(self) -> None:
        self.ledger.close()
        self._db.close()

    # ------------------------------------------------------------------ stamping
    def _reserve_id(self) -> int:
        with self._lock:
            for _ in range(64):
                rid = new_record_id()
                taken = self._db.execute("SELECT 1 FROM records WHERE record_id = ?", (rid,)).fetchone()
                if taken is None and rid not in self._reserved:
                    self._reserved.add(rid)
                    return rid
        raise LedgerError("could not find an unused record id (the id space looks exhausted)")

    def prepare(
        self,
        pixels: np.ndarray,
        *,
        fmt: str,
        prompt: str,
        profile_hash: str,
        engine: str,
        engine_version: str,
        seed: int,
        account: str = "local",
        include_prompt: bool = False,
        quality: int = 92,
    ) -> Prepared:
        """The expensive, uncommitted half of stamping: reserve an id, mark, record, encode, sign.

        Nothing is logged yet, so a prepared output that is then rejected (e.g. by the identity guard)
        leaves no trace: :meth:`discard` it. Only :meth:`commit` makes it an output. Thread-safe.
        """
        rid = self._reserve_id()
        try:
            marked = wm.embed(pixels, rid, key=self.key)
            record = ProvenanceRecord.create(
                account=account, prompt=prompt, profile_hash=profile_hash, engine=engine,
                engine_version=engine_version, seed=seed % (2**53), pixels=marked, record_id=rid,
            )
            data = sign_image(encode_image(marked, fmt, quality=quality), fmt, record, self.identity,
                              prompt=prompt if include_prompt else None)
        except BaseException:
            self._release(rid)
            raise
        return Prepared(data=data, pixels=marked, record=record)

    def commit(self, prepared: Prepared) -> Stamped:
        """Append a prepared output's record to the log and index it: from now on it exists."""
        record = prepared.record
        try:
            with self._lock:
                entry = self.ledger.append(record.canonical_json())
                try:
                    self._db.execute("INSERT INTO records (record_id, log_index, record) VALUES (?, ?, ?)",
                                     (record.record_id, entry.index, record.canonical_json().decode()))
                except sqlite3.Error as exc:
                    raise LedgerError(f"could not index provenance record {record.id_hex}: {exc}") from exc
        finally:
            self._release(record.record_id)
        return Stamped(data=prepared.data, pixels=prepared.pixels, record=record, log_index=entry.index)

    def discard(self, prepared: Prepared) -> None:
        """Drop a prepared output that will not be released (its id goes back to the pool)."""
        self._release(prepared.record.record_id)

    def _release(self, rid: int) -> None:
        with self._lock:
            self._reserved.discard(rid)

    def stamp(self, pixels: np.ndarray, **kw: Any) -> Stamped:
        """Mark, record, sign and log one output (``prepare`` + ``commit``). Raises rather than return
        anything unmarked."""
        return self.commit(self.prepare(pixels, **kw))

    # ------------------------------------------------------------------ lookup / verify
    def lookup(self, record_id: int) -> tuple[ProvenanceRecord, int] | None:
        row = self._db.execute("SELECT record, log_index FROM records WHERE record_id = ?", (record_id,)).fetchone()
        if row is None:
            return None
        return ProvenanceRecord.from_json(row[0]), int(row[1])

    def verify(self, data: bytes) -> VerifyReport:
        """Check an image against this store: C2PA, watermark, record, inclusion proof."""
        fmt = _sniff_format(data)
        report_c2pa = (
            read_manifest(data, fmt, trust_anchor_pem=self.identity.anchor_pem)
            if fmt != "unknown" else ManifestReport("absent")
        )
        problems: list[str] = []
        wid: int | None = None
        conf = 0.0
        try:
            pixels = decode_image(data, name="image")
        except ImageError as exc:
            if report_c2pa.state == "absent":
                raise  # not a readable image, and no manifest either: bad input, not a verdict
            problems.append(f"the pixels cannot be decoded ({exc.message})")
        else:
            try:
                det = wm.detect(pixels, key=self.key)
                wid, conf = det.payload, float(det.confidence or 0.0)
            except WatermarkError as exc:
                problems.append(f"watermark could not be read: {exc.message}")
        rid = wid
        c2pa_rid = report_c2pa.soft_binding_id if report_c2pa.state != "absent" else None
        if rid is None and c2pa_rid is not None and report_c2pa.state == "valid":
            rid = c2pa_rid
            problems.append("no watermark found; the record comes from the C2PA soft binding")
        if rid is not None and c2pa_rid is not None and c2pa_rid != rid:
            problems.append(f"watermark id {rid:010x} differs from the manifest's {c2pa_rid:010x}")
        report = VerifyReport(
            verdict="not_ours", c2pa=report_c2pa, watermark_id=wid, watermark_confidence=conf, problems=problems,
        )
        if report_c2pa.state == "tampered":
            problems.append("the C2PA manifest does not validate: the file was altered after signing")
        if rid is None:
            report.verdict = "tampered" if report_c2pa.state == "tampered" else "not_ours"
            return report
        found = self.lookup(rid)
        if found is None:
            problems.append(f"id {rid:010x} is not in this provenance log")
            report.verdict = "tampered" if report_c2pa.state == "tampered" else "not_ours"
            return report
        record, index = found
        report.record, report.log_index = record, index
        if report_c2pa.record is not None and report_c2pa.record != record.to_dict():
            problems.append("the manifest's record differs from the logged record")
        try:
            head = self.ledger.tree_head()
            head.verify(self.ledger.public_key)
            proof = self.ledger.inclusion_proof(index, head.size)
            verify_inclusion(index, head.size, leaf_hash(record.canonical_json()), proof, head.root)
            report.proof_ok = True
            report.tree_size, report.tree_root = head.size, head.root.hex()
            report.inclusion_proof = [p.hex() for p in proof]
        except (ProofError, LedgerError) as exc:
            problems.append(f"inclusion proof failed: {exc.message}")
        bad = report_c2pa.state == "tampered" or not report.proof_ok or any("differs" in p for p in problems)
        report.verdict = "tampered" if bad else "verified"
        return report


def prepare_many(prov: Provenance, images: list[np.ndarray], *, workers: int = 2, **kw: Any) -> list[Prepared]:
    """Prepare several outputs on ``workers`` threads; if one fails, the others are discarded too."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(images)))) as pool:
        futures = [pool.submit(prov.prepare, img, **kw) for img in images]
    done, error = [], None
    for f in futures:
        try:
            done.append(f.result())
        except BaseException as exc:  # keep the first error, release everything else
            error = error or exc
    if error is not None:
        for prepared in done:
            prov.discard(prepared)
        raise error
    return done


def stamp_many(prov: Provenance, images: list[np.ndarray], *, workers: int = 2, **kw: Any) -> list[Stamped]:
    """Stamp several outputs, marking/encoding/signing them on ``workers`` threads."""
    return [prov.commit(p) for p in prepare_many(prov, images, workers=workers, **kw)]


__all__ = ["VERDICT_EXIT", "Prepared", "Provenance", "Stamped", "VerifyReport", "prepare_many", "stamp_many"]

