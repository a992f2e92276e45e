"""Append-only Merkle transparency log (RFC 9162 hashing) with Ed25519-signed tree heads.

* Hashing is RFC 6962/9162 section 2.1: ``leaf = SHA-256(0x00 || data)``,
  ``node = SHA-256(0x01 || left || right)``, empty tree = ``SHA-256("")``; the tree splits at the
  largest power of two below its size. Inclusion and consistency proofs are generated with the
  RFC's PATH / SUBPROOF definitions and checked with its verification algorithms
  (sections 2.1.3.2 and 2.1.4.2), tested against the transparency-dev/merkle vectors.
* Tree heads are C2SP signed-note checkpoints (``origin``, size, base64 root, plus a ``time``
  extension line), signed with Ed25519, so standard tooling can read them.
* Storage is one SQLite file (``ledger.sqlite``) in WAL mode with ``synchronous=FULL``: an append
  (leaf, the newly completed subtree hashes, the signed head) is one transaction, so a crash
  leaves either the old log or the new one. Its schema is versioned (``PRAGMA user_version``, the
  ordered steps in :data:`MIGRATIONS`): an older file is upgraded in place when opened, a newer one
  is refused. Triggers refuse UPDATE and DELETE on entries, nodes and
  signed heads; anyone able to bypass them still cannot make old proofs or published heads verify,
  which is the point.
* Every signed head is kept, so a verifier can ask for the head that was current when a record was
  added and a consistency proof from it (or from a head it saved itself) to today's: a log whose
  history was rewritten cannot produce one (:meth:`Ledger.check_consistency`).
* Complete subtree hashes are stored as they form, so the root costs O(log n) lookups and a
  proof O(log^2 n), not O(n).
* The Ed25519 key is created on first use as ``ledger-ed25519.pem`` (mode 0600) beside the
  database, unless one is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import LedgerError, ProofError, ProvenanceInputError
from .sqlite_schema import migrate_sqlite

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
DEFAULT_ORIGIN = "tastemaker.local/provenance-log"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Reference MTH over leaf hashes (O(n)); the log itself uses stored subtree hashes."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(root_from_leaf_hashes(hashes[:k]), root_from_leaf_hashes(hashes[k:]))


# ----------------------------------------------------------------------------- verifiers


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte hash")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root implied by ``proof`` for leaf hash ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        _check_hash(p, "proof element")
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` in the tree of ``size`` with ``root``."""
    _check_hash(root, "root")
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not lead to the tree head's root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2: raise :class:`ProofError` unless tree ``size2`` extends tree ``size1``."""
    if size1 < 0 or size2 < size1:
        raise ProofError(f"a log cannot shrink: size {size1} -> {size2}")
    if size1 == size2:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise ProofError("same tree size but different roots: the log was rewritten")
        return
    if size1 == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    _check_hash(root1, "first root")
    _check_hash(root2, "second root")
    path = list(proof)
    for p in path:
        _check_hash(p, "proof element")
    if size1 & (size1 - 1) == 0:  # exact power of two: the old root is itself a node of the new tree
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != root1 or sr != root2:
        raise ProofError(f"log of size {size2} is not an append-only extension of size {size1}")


# ----------------------------------------------------------------------------- signed tree heads


def _key_id(origin: str, public: Ed25519PublicKey) -> bytes:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4]


@dataclass(frozen=True)
class SignedTreeHead:
    """A C2SP checkpoint: origin, size, root and time, signed by the log's Ed25519 key."""

    origin: str
    size: int
    root: bytes
    timestamp_ms: int
    signature: bytes

    def body(self) -> bytes:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\ntime {self.timestamp_ms}\n".encode()

    def to_note(self) -> str:
        """The signed-note text (body, blank line, signature line)."""
        return self.body().decode() + f"\n\u2014 {self.origin} {base64.b64encode(self.signature).decode()}\n"

    @classmethod
    def from_note(cls, text: str) -> SignedTreeHead:
        try:
            body, sigs = text.split("\n\n", 1)
            lines = body.split("\n")
            origin, size, root_b64, time_line = lines[0], int(lines[1]), lines[2], lines[3]
            sig_line = sigs.strip().split("\n")[0]
            dash, name, sig_b64 = sig_line.split(" ")
            if dash != "\u2014" or name != origin or not time_line.startswith("time "):
                raise ValueError("unexpected checkpoint layout")
            return cls(
                origin, size, base64.b64decode(root_b64), int(time_line[5:]), base64.b64decode(sig_b64)
            )
        except (ValueError, IndexError) as exc:
            raise ProofError(f"not a tree head checkpoint: {exc}") from exc

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise :class:`ProofError` unless signed by ``public_key`` for this origin."""
        if len(self.signature) != 4 + 64 or self.signature[:4] != _key_id(self.origin, public_key):
            raise ProofError("tree head is signed by a different key")
        try:
            public_key.verify(self.signature[4:], self.body())
        except InvalidSignature as exc:
            raise ProofError("tree head signature does not verify") from exc


def sign_tree_head(
    key: Ed25519PrivateKey, origin: str, size: int, root: bytes, timestamp_ms: int | None = None
) -> SignedTreeHead:
    """Sign a checkpoint for (size, root)."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    unsigned = SignedTreeHead(origin, size, root, ts, b"")
    sig = _key_id(origin, key.public_key()) + key.sign(unsigned.body())
    return SignedTreeHead(origin, size, root, ts, sig)


# ----------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class LogEntry:
    index: int
    leaf_hash: bytes
    tree_head: SignedTreeHead


#: The log's schema, as ordered steps: step ``i`` brings a file from version ``i`` to ``i + 1`` (SQLite's
#: ``PRAGMA user_version``). A file from before versioning (version 0) already has step 1's tables, so step 1
#: only creates what is missing. Add a step for every change; never edit a published one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL, leaf BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, "
        "PRIMARY KEY (level, idx))",
        "CREATE TABLE IF NOT EXISTS heads (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL)",
        *(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table} "
          f"BEGIN SELECT RAISE(ABORT, '{what} append-only'); END"
          for table, what in (("entries", "the log is"), ("nodes", "the log is"), ("heads", "signed tree heads are"))
          for op in ("update", "delete")),
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 PEM key, or create one (mode 0600) if the file does not exist."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise LedgerError(f"{path} does not hold an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key


class Ledger:
    """A durable, append-only Merkle log in ``directory`` (created if needed)."""

    FILENAME = "ledger.sqlite"
    KEYFILE = "ledger-ed25519.pem"

    def __init__(
        self,
        directory: Path | str,
        *,
        origin: str = DEFAULT_ORIGIN,
        signing_key: Ed25519PrivateKey | None = None,
    ) -> None:
        if not origin or any(c.isspace() for c in origin):
            raise ProvenanceInputError(
                f"log origin must be a non-empty string without spaces, got {origin!r}"
            )
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._key = signing_key or load_or_create_key(self.directory / self.KEYFILE)
            self._db = sqlite3.connect(
                self.directory / self.FILENAME, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the provenance log in {self.directory}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            migrate_sqlite(self._db, MIGRATIONS, what=f"the provenance log {self.directory / self.FILENAME}")
        except (sqlite3.Error, LedgerError) as exc:
            self._db.close()
            if isinstance(exc, LedgerError):
                raise
            raise LedgerError(f"cannot open the provenance log in {self.directory}: {exc}") from exc
        self.origin = origin
        self._lock = threading.Lock()

    # -- lifecycle
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    # -- reads
    @property
    def size(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()
        return int(row[0])

    def entry(self, index: int) -> bytes:
        row = self._db.execute("SELECT data FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise LedgerError(f"no log entry {index} (log size {self.size})")
        return bytes(row[0])

    def _node(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self._db.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._db.execute(
                "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        if row is None:
            raise LedgerError(f"log is missing node ({level}, {index}); it is damaged")
        return bytes(row[0])

    def _subtree(self, start: int, n: int) -> bytes:
        """MTH of leaves [start, start + n), from stored complete subtrees."""
        if n & (n - 1) == 0 and start % n == 0:
            return self._node(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self._subtree(start, k), self._subtree(start + k, n - k))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._subtree(0, size)

    def tree_head(self) -> SignedTreeHead:
        """The latest signed tree head (an empty log gets a freshly signed empty head)."""
        row = self._db.execute("SELECT note FROM heads ORDER BY size DESC LIMIT 1").fetchone()
        if row is None:
            return sign_tree_head(self._key, self.origin, 0, EMPTY_ROOT)
        return SignedTreeHead.from_note(row[0])

    def head_at(self, size: int) -> SignedTreeHead | None:
        """The signed head the log published when it had ``size`` entries (None if it never signed one)."""
        row = self._db.execute("SELECT note FROM heads WHERE size = ?", (size,)).fetchone()
        return None if row is None else SignedTreeHead.from_note(row[0])

    def check_consistency(self, old: SignedTreeHead, new: SignedTreeHead | None = None) -> list[bytes]:
        """Prove that ``new`` (default: the latest head) extends ``old``, check the proof, and return it.

        Both heads must carry this log's signature. Raises :class:`ProofError` when ``old`` is not a prefix
        of the log as it stands: entries were rewritten, removed, or the log was replaced.
        """
        new = self.tree_head() if new is None else new
        old.verify(self.public_key)
        new.verify(self.public_key)
        if old.origin != new.origin:
            raise ProofError(f"tree heads of different logs ({old.origin} / {new.origin})")
        return self.prove_extends(old.size, old.root, new)

    def prove_extends(self, size: int, root: bytes, new: SignedTreeHead | None = None) -> list[bytes]:
        """The consistency proof from a tree of ``size`` entries with ``root`` (as someone saw it) to ``new``,
        checked; :class:`ProofError` if the log as it stands does not extend that tree."""
        new = self.tree_head() if new is None else new
        if size > new.size:
            raise ProofError(f"the log shrank: it had {size} entries, now {new.size}")
        if new.size > self.size:
            raise ProofError(f"the signed head says {new.size} entries but the log holds {self.size}")
        try:
            proof = self.consistency_proof(size, new.size)
        except LedgerError as exc:
            raise ProofError(f"no consistency proof from size {size}: {exc.message}") from exc
        verify_consistency(size, new.size, root, new.root, proof)
        return proof

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise LedgerError(f"tree size {size} is outside 0..{self.size}")

    def _path(self, m: int, start: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, start, k) + [self._subtree(start + k, n - k)]
        return self._path(m - k, start + k, n - k) + [self._subtree(start, k)]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 PATH(index, D[0:size])."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise LedgerError(f"leaf index {index} is outside a tree of size {size}")
        return self._path(index, 0, size)

    def _subproof(self, m: int, start: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [self._subtree(start, n)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, start, k, complete) + [self._subtree(start + k, n - k)]
        return self._subproof(m - k, start + k, n - k, False) + [self._subtree(start, k)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 PROOF(old_size, D[0:new_size]); empty when either size is 0 or they are equal."""
        new_size = self.size if new_size is None else new_size
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise LedgerError(f"cannot prove {old_size} -> {new_size}: sizes must not decrease")
        if old_size in (0, new_size):
            return []
        return self._subproof(old_size, 0, new_size, True)

    # -- writes
    def append(self, data: bytes) -> LogEntry:
        """Add ``data`` as the next leaf and sign the new tree head, atomically."""
        if not isinstance(data, bytes | bytearray):
            raise ProvenanceInputError(f"log entries are bytes, got {type(data).__name__}")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                index = self.size
                leaf = leaf_hash(bytes(data))
                self._db.execute(
                    "INSERT INTO entries (idx, data, leaf) VALUES (?, ?, ?)", (index, bytes(data), leaf)
                )
                h, level, i = leaf, 0, index
                while i & 1:  # the new leaf completes subtrees up the right edge
                    h = node_hash(self._node(level, i - 1), h)
                    level, i = level + 1, i >> 1
                    self._db.execute("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", (level, i, h))
                size = index + 1
                head = sign_tree_head(self._key, self.origin, size, self._subtree(0, size))
                self._db.execute(
                    "INSERT INTO heads (size, root, note) VALUES (?, ?, ?)", (size, head.root, head.to_note())
                )
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise LedgerError(f"could not append to the provenance log: {exc}") from exc
                raise
        return LogEntry(index, leaf, head)

    def audit(self) -> SignedTreeHead:
        """Recompute every leaf and the root from the stored data; raise :class:`ProofError` on any mismatch.

        Catches an entry edited or removed behind the triggers' back; returns the verified head.
        """
        head = self.tree_head()
        head.verify(self.public_key)
        rows = self._db.execute("SELECT idx, data, leaf FROM entries ORDER BY idx").fetchall()
        if [r[0] for r in rows] != list(range(len(rows))):
            raise ProofError("log entries are missing or out of order")
        leaves = [leaf_hash(bytes(r[1])) for r in rows]
        if any(bytes(r[2]) != lh for r, lh in zip(rows, leaves, strict=True)):
            raise ProofError("a log entry no longer matches its leaf hash")
        if head.size != len(leaves) or root_from_leaf_hashes(leaves) != head.root:
            raise ProofError("the stored entries do not reproduce the signed tree head")
        return head


__all__ = [
    "DEFAULT_ORIGIN",
    "EMPTY_ROOT",
    "Ledger",
    "LogEntry",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SignedTreeHead",
    "leaf_hash",
    "load_or_create_key",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "sign_tree_head",
    "verify_consistency",
    "verify_inclusion",
]
