"""The provenance store's own secret, and every key derived from it.

The watermark layout, the prompt hashes, the account pseudonyms and the output fingerprints are all keyed,
so that nothing a verifier is shown can be recomputed, guessed or forged by someone who does not hold the
store's secret. Before this, the watermark key was a public constant: anyone could write any record id into
any picture.

Where the root secret comes from:

* ``secret`` given (a deployment's ``TASTEMAKER_SECRET_KEY``): the root is HMAC-SHA256 of it under a fixed
  label, so every replica of a deployment derives the same keys and no key has to be copied around;
* otherwise (the CLI's local store) a random 32-byte ``store.key`` beside the log (mode 0600, made on first
  use): each installation has its own.

Either way a short key id is kept in ``store-key.id``; opening a store with a different secret is refused
(its outputs' marks would silently stop resolving) rather than quietly starting a second key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import LedgerError

_ROOT_LABEL = b"tastemaker.provenance.store.v1"
KEY_FILE = "store.key"
KEY_ID_FILE = "store-key.id"


@dataclass(frozen=True, repr=False)
class StoreKeys:
    """Keys derived from one store secret (HMAC-SHA256 with a label per use). ``repr`` shows no key."""

    root: bytes

    def __repr__(self) -> str:
        return f"StoreKeys(id={self.key_id})"

    def derive(self, label: str) -> bytes:
        """A 32-byte key for one purpose; different labels give independent keys."""
        return hmac.new(self.root, b"tastemaker.provenance." + label.encode(), hashlib.sha256).digest()

    @property
    def key_id(self) -> str:
        """Names the secret without revealing it (stored beside the log to catch a changed secret)."""
        return self.derive("key-id").hex()[:16]

    @property
    def watermark_key(self) -> int:
        """The watermark's layout key (63 bits): unknown outside the store, so marks cannot be written."""
        return int.from_bytes(self.derive("watermark")[:8], "big") >> 1

    @property
    def fingerprint_seed(self) -> int:
        """Seed of the fingerprint's keyed projections."""
        return int.from_bytes(self.derive("fingerprint")[:8], "big")

    def prompt_hash(self, prompt: str) -> str:
        """Keyed hash of a prompt: a verifier cannot test guesses of the text against it."""
        return hmac.new(self.derive("prompt"), prompt.encode("utf-8"), hashlib.sha256).hexdigest()

    def pseudonym(self, account: str) -> str:
        """The account as records and manifests show it: stable per account, not reversible, not guessable."""
        return "acct~" + hmac.new(self.derive("account"), account.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600) holding ``data``, atomically: raises FileExistsError if it is there.

    Written to a temporary name and linked into place, so a process opening the store at the same moment
    sees either no file or the whole key, never half of one.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_store_keys(directory: Path | str, secret: str | bytes | None = None) -> StoreKeys:
    """The keys of the store in ``directory``, from ``secret`` or from the store's own key file.

    Raises :class:`LedgerError` when the store was made with another secret (fail closed).
    """
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        if secret is not None:
            raw = secret.encode() if isinstance(secret, str) else bytes(secret)
            if not raw:
                raise LedgerError("the provenance secret is empty")
            keys = StoreKeys(hmac.new(raw, _ROOT_LABEL, hashlib.sha256).digest())
        else:
            path = d / KEY_FILE
            if (d / KEY_ID_FILE).exists() and not path.exists():
                raise LedgerError(
                    f"the provenance store in {d} was made with a deployment secret; open it with that secret "
                    "(TASTEMAKER_SECRET_KEY), not with a key file of its own"
                )
            try:
                _write_private(path, secrets.token_bytes(32))
            except FileExistsError:
                pass
            root = path.read_bytes()
            if len(root) != 32:
                raise LedgerError(f"{path} is not a 32-byte provenance key; restore it from a backup")
            keys = StoreKeys(root)
        id_path = d / KEY_ID_FILE
        try:
            _write_private(id_path, keys.key_id.encode())
        except FileExistsError:
            known = id_path.read_text().strip()
            if not hmac.compare_digest(known, keys.key_id):
                how = "this secret" if secret is not None else "its own key file"
                raise LedgerError(
                    f"the provenance store in {d} was made with another secret than {how} (key id {known}); "
                    "its outputs' marks would no longer resolve. Use the secret it was made with."
                ) from None
    except OSError as exc:
        raise LedgerError(f"cannot read or create the provenance key in {d}: {exc}") from exc
    return keys


__all__ = ["KEY_FILE", "KEY_ID_FILE", "StoreKeys", "load_store_keys"]
