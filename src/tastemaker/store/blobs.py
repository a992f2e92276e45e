"""Content-addressed blob store: board images and generated outputs, one file per SHA-256.

``<root>/ab/cd/abcd...`` — identical bytes are stored once however many pins or accounts refer to
them; writes are atomic (temp file + rename); names are validated hex, so a hash can never become a
path outside the root. Deleting a blob is the repository's call (``collect``) once no row refers to
it; :attr:`lock` serialises "write blobs, then commit rows" against "check references, then delete",
so a blob being uploaded is never collected between its write and its commit.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from ..errors import BlobMissingError, OutputError, StoreError
from ..media import make_private_dirs, write_atomic

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Blobs under ``root``, named by the SHA-256 of their bytes."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()

    def path(self, sha256: str) -> Path:
        if not _HEX64.match(sha256):
            raise StoreError(f"not a SHA-256 hex digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (no-op if already present); returns its SHA-256."""
        digest = sha256_hex(data)
        p = self.path(digest)
        if p.exists():
            return digest
        try:
            make_private_dirs(p.parent)  # board images and outputs show faces: 0700 folders, 0600 files
            write_atomic(p, data)
        except (OSError, OutputError) as exc:
            raise StoreError(f"cannot write blob {digest[:12]}… under {self.root}: {exc}") from exc
        return digest

    def get(self, sha256: str) -> bytes:
        try:
            return self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise BlobMissingError(f"blob {sha256[:12]}… is missing from {self.root}") from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def delete(self, sha256: str) -> bool:
        """Remove a blob; True if it existed. Callers make sure nothing refers to it any more."""
        p = self.path(sha256)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        for parent in (p.parent, p.parent.parent):  # tidy empty fan-out folders
            try:
                parent.rmdir()
            except OSError:
                break
        return True

    def digests(self) -> Iterator[str]:
        """Every stored blob's SHA-256 (for audits of the store itself)."""
        for p in self.root.glob("??/??/*"):
            if _HEX64.match(p.name):
                yield p.name
