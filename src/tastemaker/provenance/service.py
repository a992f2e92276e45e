"""Provenance as one step: every output is recorded, watermarked, signed and logged — or not returned.

``Provenance.stamp(pixels, ...)`` does, in this order, and raises on any failure (fail closed):

1. allocate a fresh 40-bit record id (unique in this store);
2. embed the invisible watermark carrying that id, under this store's secret key (``watermark.embed``
   verifies its own output);
3. build the :class:`ProvenanceRecord`: the account as this store's pseudonym, the prompt as a keyed hash,
   the profile hash, the hash of the *marked* pixels and their :mod:`.fingerprint`;
4. encode to the requested format and embed a signed C2PA manifest (``c2pa.sign_image``);
5. append the record to the Merkle transparency log and index it by id and by fingerprint.

Only then are the bytes handed back. ``Provenance.verify(data)`` goes the other way and answers one verdict:

* ``verified``: the image is (an edited copy of) an output of this store: a record resolved from its
  watermark, its C2PA manifest or its fingerprint, the picture matches that record's fingerprint (or the
  manifest's hard binding holds), the record's inclusion proof and the log's consistency check out, and
  any manifest validates with a trusted signer;
* ``forged``: the watermark (or manifest) names a record, but the picture is not that record's picture:
  a mark copied onto another image;
* ``untrusted``: a manifest that claims to be ours, signed by a certificate outside the trust list;
* ``tampered``: a manifest that does not validate, a record that differs from the log, a failed proof, a
  mark replaced on a real output (the fingerprint index finds the real record), or too little of the
  picture left to confirm the record it names;
* ``not_ours``: nothing here resolves to a record of this store.

Everything lives under ``<data dir>/provenance`` (log, index, Ed25519 log key, store secret) and
``<data dir>/c2pa`` (local CA and signing certificate, made on first use; or the user's PEMs).

The verdicts, the report and the log's proofs are :mod:`.verdict`'s; ``VERDICT_EXIT``, ``VerifyReport``,
``Verdict`` and ``MatchedBy`` stay importable from here.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ImageError, LedgerError, WatermarkError
from ..media import decode_image, encode_image
from . import fingerprint as fpr
from . import watermark as wm
from .c2pa import ManifestReport, ensure_signing_identity, read_manifest, sign_image
from .keys import StoreKeys, load_store_keys
from .ledger import Ledger, SignedTreeHead
from .record import ProvenanceRecord, new_record_id
from .sqlite_schema import migrate_sqlite
from .verdict import VERDICT_EXIT, MatchedBy, Verdict, VerifyReport, check_log

#: a stored global descriptor this similar (cosine) to the picture's is a candidate for the index
_INDEX_MIN_SIMILARITY = 0.8
_INDEX_CANDIDATES = 5


@dataclass(frozen=True)
class Prepared:
    """A marked, encoded and signed output whose record is not logged yet."""

    data: bytes
    pixels: np.ndarray
    record: ProvenanceRecord
    glob: np.ndarray


@dataclass(frozen=True)
class Stamped:
    """A marked, signed, logged output."""

    data: bytes
    pixels: np.ndarray
    record: ProvenanceRecord
    log_index: int


#: the records and fingerprint index (``records.sqlite``): ordered migration steps, never edited once published
#: (add a step). Step 1 is the original schema, written with IF NOT EXISTS, so a file made before the index was
#: versioned is stamped version 1 as it is (:func:`~.sqlite_schema.migrate_sqlite`).
INDEX_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE IF NOT EXISTS records ("
        " record_id INTEGER PRIMARY KEY, log_index INTEGER NOT NULL UNIQUE, record TEXT NOT NULL)",
        "CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records"
        " BEGIN SELECT RAISE(ABORT, 'provenance records are append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records"
        " BEGIN SELECT RAISE(ABORT, 'provenance records are append-only'); END",
        "CREATE TABLE IF NOT EXISTS fingerprints (record_id INTEGER PRIMARY KEY, glob BLOB NOT NULL)",
        "CREATE TRIGGER IF NOT EXISTS fingerprints_no_update BEFORE UPDATE ON fingerprints"
        " BEGIN SELECT RAISE(ABORT, 'the fingerprint index is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS fingerprints_no_delete BEFORE DELETE ON fingerprints"
        " BEGIN SELECT RAISE(ABORT, 'the fingerprint index is append-only'); END",
    ),
)


def _sniff_format(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "unknown"


class Provenance:
    """The provenance store of one installation (or one API deployment).

    ``secret`` (a deployment's secret key) derives the store's keys; without it the store keeps a random key
    of its own (:mod:`.keys`). Either way the watermark layout, prompt hashes, account pseudonyms and
    fingerprints are keyed: nobody outside can write a valid mark or test a guess against a record.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        chain_pem: Path | str | None = None,
        key_pem: Path | str | None = None,
        anchor_pem: Path | str | None = None,
        secret: str | bytes | None = None,
        repeatable: bool = False,
    ) -> None:
        root = Path(data_dir)
        #: a throwaway store (``tastemaker eval``): record ids come from the pixels' hash, not at random, so
        #: an output is marked the same way in every run and what is measured on it repeats. Never for a
        #: real store: its ids would be guessable from the picture.
        self.repeatable = repeatable
        self.dir = root / "provenance"
        self.ledger = Ledger(self.dir)
        self.keys: StoreKeys = load_store_keys(self.dir, secret)
        self.identity = ensure_signing_identity(root / "c2pa", chain_pem=chain_pem, key_pem=key_pem,
                                                anchor_pem=anchor_pem)
        self._lock = threading.Lock()
        self._reserved: set[int] = set()
        self._globs = np.zeros((0, fpr.GLOBAL_DIMS), np.float32)
        self._glob_ids = np.zeros(0, np.int64)
        self._rowid = -1
        try:
            self._db = sqlite3.connect(self.dir / "records.sqlite", isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            migrate_sqlite(self._db, INDEX_MIGRATIONS, what=f"the provenance index {self.dir / 'records.sqlite'}")
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open the provenance index in {self.dir}: {exc}") from exc

    @property
    def key(self) -> int:
        """The watermark key of this store (secret: derived from the store's key)."""
        return self.keys.watermark_key

    def pseudonym(self, account: str) -> str:
        """How records and manifests of this store name ``account``."""
        return self.keys.pseudonym(account)

    def close(self) -> None:
        self.ledger.close()
        self._db.close()

    # ------------------------------------------------------------------ stamping
    def reserve_id(self, pixels: np.ndarray) -> int:
        """A fresh record id held for an output being made outside :meth:`prepare` (a clip); a :class:`Prepared`
        made with it is committed or discarded as usual, or give it back with :meth:`release_id`."""
        return self._reserve_id(pixels)

    def release_id(self, record_id: int) -> None:
        """Give back an id from :meth:`reserve_id` that will not be used."""
        self._release(record_id)

    def _reserve_id(self, pixels: np.ndarray) -> int:
        start = int.from_bytes(hashlib.sha256(pixels.tobytes()).digest()[:8], "big") if self.repeatable else 0
        with self._lock:
            for attempt in range(64):
                rid = (start + attempt) % (1 << wm.PAYLOAD_BITS) if self.repeatable else new_record_id()
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
        rendered_on: str | None = None,
    ) -> Prepared:
        """The expensive, uncommitted half of stamping: reserve an id, mark, record, encode, sign.

        Nothing is logged yet, so a prepared output that is then rejected (e.g. by the identity guard)
        leaves no trace: :meth:`discard` it. Only :meth:`commit` makes it an output. Thread-safe.
        ``rendered_on="device"``: an output made elsewhere and registered here (the record and manifest say so).
        """
        rid = self._reserve_id(pixels)
        try:
            marked = wm.embed(pixels, rid, key=self.key)
            fp = fpr.compute(marked, self.keys.fingerprint_seed)
            record = ProvenanceRecord.create(
                account=self.keys.pseudonym(account), prompt_hmac=self.keys.prompt_hash(prompt),
                profile_hash=profile_hash, engine=engine, engine_version=engine_version, seed=seed % (2**53),
                pixels=marked, fingerprint=fp.encode(), record_id=rid, rendered_on=rendered_on,
            )
            data = sign_image(encode_image(marked, fmt, quality=quality), fmt, record, self.identity,
                              prompt=prompt if include_prompt else None)
        except BaseException:
            self._release(rid)
            raise
        return Prepared(data=data, pixels=marked, record=record, glob=fp.glob)

    def commit(self, prepared: Prepared) -> Stamped:
        """Append a prepared output's record to the log and index it: from now on it exists."""
        record = prepared.record
        try:
            with self._lock:
                entry = self.ledger.append(record.canonical_json())
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("INSERT INTO records (record_id, log_index, record) VALUES (?, ?, ?)",
                                     (record.record_id, entry.index, record.canonical_json().decode()))
                    self._db.execute("INSERT INTO fingerprints (record_id, glob) VALUES (?, ?)",
                                     (record.record_id, prepared.glob.astype(np.int8).tobytes()))
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._db.execute("ROLLBACK")
                    raise LedgerError(f"could not index provenance record {record.id_hex}: {exc}") from exc
        finally:
            self._release(record.record_id)
        return Stamped(data=prepared.data, pixels=prepared.pixels, record=record, log_index=entry.index)

    def commit_once(self, record: ProvenanceRecord, glob: np.ndarray) -> int:
        """Log a prepared output's record unless it is in the log already; its log index either way.

        For work that may run twice (a queue worker taking over a job whose first worker died after logging
        some of its outputs): the record was staged with its id, so logging it again finds it and appends
        nothing. A different record under the same id is refused (:class:`LedgerError`).
        """
        found = self.lookup(record.record_id)
        if found is None:
            return self.commit(Prepared(data=b"", pixels=np.zeros((0, 0, 3), np.uint8), record=record,
                                        glob=glob)).log_index
        if found[0].canonical_json() != record.canonical_json():
            raise LedgerError(f"record {record.id_hex} is in the log with other content; not logged again")
        return found[1]

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

    # ------------------------------------------------------------------ lookup / index
    def lookup(self, record_id: int) -> tuple[ProvenanceRecord, int] | None:
        row = self._db.execute("SELECT record, log_index FROM records WHERE record_id = ?", (record_id,)).fetchone()
        if row is None:
            return None
        return ProvenanceRecord.from_json(row[0]), int(row[1])

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        """The global descriptors of every record (loaded once, then only what other processes added)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT rowid, record_id, glob FROM fingerprints WHERE rowid > ? ORDER BY rowid", (self._rowid,)
            ).fetchall()
            if rows:
                self._rowid = int(rows[-1][0])
                vecs = np.stack([np.frombuffer(r[2], np.int8).astype(np.float32) for r in rows])
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-9
                self._globs = np.concatenate([self._globs, vecs])
                self._glob_ids = np.concatenate([self._glob_ids, np.array([r[1] for r in rows], np.int64)])
            return self._globs, self._glob_ids

    def find_by_picture(self, pixels: np.ndarray, *, exclude: int | None = None) -> tuple[int, fpr.Match] | None:
        """The record whose picture this is, found by its fingerprint alone (a copy whose mark was stripped or
        replaced): candidates from the global descriptors in any of the eight orientations, confirmed by the
        cells on the full frame. ``exclude`` leaves one record out (the one a mark already named)."""
        globs, ids = self._index()
        if not len(ids):
            return None
        seed = self.keys.fingerprint_seed
        grey = fpr.luma(pixels)
        sims = fpr.orientation_descriptors(grey, seed) @ globs.T  # (8, N)
        best_orient = sims.argmax(axis=0)
        best = sims.max(axis=0)
        order = np.argsort(-best)[:_INDEX_CANDIDATES]
        for i in order:
            if best[i] < _INDEX_MIN_SIMILARITY:
                break
            rid = int(ids[i])
            if rid == exclude:
                continue
            found = self.lookup(rid)
            if found is None or found[0].fingerprint is None:
                continue
            fp = fpr.Fingerprint.decode(found[0].fingerprint)
            turned = np.ascontiguousarray(fpr.ORIENTATIONS[int(best_orient[i])](grey))
            h, w = turned.shape
            if abs((w / h) / (fp.width / fp.height) - 1.0) > 0.04:
                continue  # a different shape: not a full-frame copy
            if (h, w) != (fp.height, fp.width):
                interp = cv2.INTER_AREA if w > fp.width else cv2.INTER_CUBIC
                turned = cv2.resize(turned, (fp.width, fp.height), interpolation=interp)
            m = fpr.match(fp, turned, seed)
            if m.same:
                return rid, m
        return None

    def _coarse_mark(self, pixels: np.ndarray, det: wm.Detection) -> tuple[np.ndarray, wm.Detection]:
        """A frame of a clip at full size carries the clip's coarse mark (see ``clip.mark_scale`` in
        :mod:`.record`) at twice the scale the detector searches first: looked for again at half size. Returns
        the half-size picture and its detection when that finds a coarse-marked clip's record, else ``pixels`` and
        ``det``."""
        h, w = pixels.shape[:2]
        if min(h, w) // 2 < wm.MIN_SIDE:
            return pixels, det
        half = cv2.resize(pixels, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        try:
            d2 = wm.detect(half, key=self.key)
        except WatermarkError:
            return pixels, det
        named = self.lookup(d2.payload) if d2.payload is not None else None
        if named is None or (named[0].clip or {}).get("mark_scale") != 2:
            return pixels, det  # only a clip's coarse mark is read this way (a still's is found at full size)
        return half, d2

    def _match_record(self, record: ProvenanceRecord, pixels: np.ndarray, det: wm.Detection) -> fpr.Match | None:
        """How well the picture, lined up by its watermark's geometry, matches the record's fingerprint."""
        if record.fingerprint is None:
            return None  # a v1 record describes no picture
        k = int((record.clip or {}).get("mark_scale", 1))
        if k != 1:  # a clip's coarse mark: found at k times the picture's scale, its shift in units k times larger
            det = replace(det, scale=det.scale / k, shift=(det.shift[0] * k, det.shift[1] * k))
        grey, offset, valid = wm.original_frame(pixels, det)
        return fpr.match(fpr.Fingerprint.decode(record.fingerprint), grey, self.keys.fingerprint_seed,
                         offset=offset, valid=valid)

    # ------------------------------------------------------------------ verify
    def verify(self, data: bytes, *, known_head: SignedTreeHead | None = None) -> VerifyReport:
        """Check an image against this store and answer one verdict (see the module docstring).

        ``known_head`` is a tree head the caller saved earlier: the log must prove that it still extends it.
        """
        fmt = _sniff_format(data)
        manifest = (
            read_manifest(data, fmt, trust_anchor_pem=self.identity.anchor_pem)
            if fmt != "unknown" else ManifestReport("absent")
        )
        problems: list[str] = []
        pixels: np.ndarray | None = None
        try:
            pixels = decode_image(data, name="image")
        except ImageError as exc:
            if manifest.state == "absent":
                raise  # not a readable image, and no manifest either: bad input, not a verdict
            problems.append(f"the pixels cannot be decoded ({exc.message})")
        return self.verify_pixels(pixels, manifest, problems=problems, known_head=known_head)

    def verify_pixels(
        self,
        pixels: np.ndarray | None,
        manifest: ManifestReport,
        *,
        problems: list[str] | None = None,
        known_head: SignedTreeHead | None = None,
        detection: wm.Detection | None = None,
    ) -> VerifyReport:
        """:meth:`verify` once the file is read: decoded pixels (None: undecodable) and the file's manifest.

        For media whose pixels are not one image (a clip's frame, :mod:`tastemaker.clips`); ``detection`` is a
        watermark detection already made on ``pixels`` (not repeated).
        """
        problems = problems if problems is not None else []
        det: wm.Detection | None = detection
        if pixels is not None and det is None:
            try:
                det = wm.detect(pixels, key=self.key)
            except WatermarkError as exc:
                problems.append(f"watermark could not be read: {exc.message}")
        if pixels is not None and det is not None and det.payload is None:
            pixels, det = self._coarse_mark(pixels, det)
        wid = det.payload if det is not None else None
        report = VerifyReport(
            verdict="not_ours", c2pa=manifest, watermark_id=wid,
            watermark_confidence=float(det.confidence or 0.0) if det is not None and wid is not None else 0.0,
            problems=problems,
        )
        claims_ours = manifest.state != "absent" and manifest.claims_ours
        c2pa_rid = manifest.soft_binding_id if claims_ours else None
        if manifest.state == "tampered":
            problems.append("the C2PA manifest does not validate: the file was altered after signing")
        elif manifest.state == "valid" and claims_ours and not manifest.trusted:
            problems.append("the C2PA manifest is signed by a certificate outside this store's trust list")
        if wid is not None and c2pa_rid is not None and c2pa_rid != wid:
            problems.append(f"watermark id {wid:010x} differs from the manifest's {c2pa_rid:010x}")

        verdict: Verdict = "not_ours"
        found: tuple[ProvenanceRecord, int] | None = None
        if wid is not None and pixels is not None and det is not None:
            named = self.lookup(wid)
            m = None if named is None else self._match_record(named[0], pixels, det)
            report.match = m
            if named is not None and (m is None or m.same):
                found, report.matched_by, verdict = named, "watermark", "verified"
                if m is None:
                    problems.append("this record predates picture fingerprints: only its C2PA manifest can "
                                    "confirm that the picture is the one it describes")
                    verdict = "verified" if manifest.state == "valid" and manifest.trusted else "tampered"
            else:
                other = self.find_by_picture(pixels, exclude=wid)
                if other is not None:  # a real output whose mark was replaced
                    found, report.match, report.matched_by = self.lookup(other[0]), other[1], "fingerprint"
                    verdict = "tampered"
                    problems.append(f"the watermark names {wid:010x}, but the picture is output "
                                    f"{other[0]:010x}: its mark was replaced")
                elif named is None:
                    problems.append(f"id {wid:010x} is not in this provenance log")
                elif m is not None and m.different:
                    verdict = "forged"
                    problems.append(f"the watermark names record {wid:010x}, but the picture is not that record's "
                                    f"picture (fingerprint z {m.z:.1f} over {m.cells} cells): a copied mark")
                else:
                    found, verdict = named, "tampered"
                    problems.append(f"too little of the picture is left to confirm that it is record {wid:010x}'s "
                                    "picture")
        elif c2pa_rid is not None and manifest.state == "valid":
            named = self.lookup(c2pa_rid)
            if named is None:
                problems.append(f"id {c2pa_rid:010x} is not in this provenance log")
            else:  # the manifest's hard binding vouches for the pixels (when its signer is trusted)
                found, report.matched_by, verdict = named, "c2pa", "verified"
                problems.append("no watermark found; the record comes from the C2PA soft binding")
        elif pixels is not None:
            other = self.find_by_picture(pixels)
            if other is not None:
                found, report.match, report.matched_by = self.lookup(other[0]), other[1], "fingerprint"
                verdict = "verified"
                problems.append("no watermark found; the picture was recognised by its fingerprint")

        if found is not None:
            record, index = found
            report.record, report.log_index = record, index
            if manifest.record is not None and manifest.record != record.to_dict():
                problems.append("the manifest's record differs from the logged record")
                verdict = "tampered" if verdict != "forged" else verdict
            if not check_log(self.ledger, report, record, index, known_head) and verdict != "forged":
                verdict = "tampered"
        elif known_head is not None:
            check_log(self.ledger, report, None, None, known_head)
        if manifest.state == "tampered" and verdict in ("verified", "not_ours"):
            verdict = "tampered"
        if verdict == "verified" and any("differs" in p for p in problems):
            verdict = "tampered"
        if claims_ours and manifest.state == "valid" and not manifest.trusted and verdict in ("verified", "not_ours"):
            verdict = "untrusted"
        report.verdict = verdict
        return report


__all__ = [
    "VERDICT_EXIT",
    "MatchedBy",
    "Prepared",
    "Provenance",
    "Stamped",
    "Verdict",
    "VerifyReport",
]

