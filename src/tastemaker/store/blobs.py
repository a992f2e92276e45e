"""Content-addressed blobs: board images and generated outputs, named by the SHA-256 of their bytes.

:class:`BlobStore` is what the service needs of a blob backend; :class:`FilesystemBlobStore` keeps them as
files. Identical bytes are stored once however many pins or accounts refer to them. Deleting a blob is the
service's call once no row refers to it (:meth:`~tastemaker.store.protocol.StoreSession.unreferenced_blobs`);
a store's :attr:`~BlobStore.lock` serialises "write blobs, then commit the rows naming them" against "check
references, then delete", so a blob being uploaded is never collected between its write and its commit.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ..errors import BlobMissingError, OutputError, StoreError
from ..media import make_private_dirs, write_atomic

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    """Bytes by content hash. Another backend (object storage, a database) implements these and is done.

    The job runner hands the store to its worker processes, which read the pins' bytes themselves: with
    ``executor="process"`` an implementation must pickle to something that reaches the same blobs (a
    folder, a bucket, a database URL), as :class:`FilesystemBlobStore` does. Queue workers
    (``tastemaker worker``, possibly on other machines) get no store and no path from the API at all: a job
    names its pins by SHA-256 (the blob key) and each worker opens the blob store of its own settings — for
    the filesystem store, the same shared volume mounted at ``TASTEMAKER_DATA_DIR`` (``docs/deploy.md``).
    """

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Held from writing blobs to committing the rows that name them, and from checking that nothing names
        a blob to deleting it (re-entrant: ``threading.RLock()`` in one process)."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (a no-op when it is there already); returns its SHA-256 (hex)."""

    def get(self, sha256: str) -> bytes:
        """The bytes, or :class:`~tastemaker.errors.BlobMissingError`."""

    def open(self, sha256: str) -> BinaryIO:
        """The bytes as a readable binary stream (close it), or :class:`~tastemaker.errors.BlobMissingError`."""

    def exists(self, sha256: str) -> bool: ...
    def delete(self, sha256: str) -> bool:
        """Remove a blob; True if it existed. Callers make sure nothing refers to it any more."""


class FilesystemBlobStore:
    """Blobs as files: ``<root>/ab/cd/abcd...``. Writes are atomic (temp file + rename), folders 0700 and files
    0600; names are validated hex, so a hash can never become a path outside the root. Picklable (a worker
    process can read blobs itself; the lock stays behind)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"])  # type: ignore[misc]

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
        with self.open(sha256) as fh:
            return fh.read()

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise BlobMissingError(f"blob {sha256[:12]}… is missing from {self.root}") from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def delete(self, sha256: str) -> bool:
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
