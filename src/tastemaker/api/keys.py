"""API keys: ``tm_`` + 27 base62 characters of randomness (160 bits) + a 6-character CRC32 checksum.

Each key carries **scopes** (as GitHub's fine-grained tokens do): ``boards:read`` (boards, pins and
engagement, profile history), ``boards:write`` (upload, add pins, delete, feedback), ``styleembed`` (the
differentially private taste release), ``generate`` (generations and their images), ``verify``
(provenance checks) and ``register`` (``POST /v1/records``: outputs rendered on the person's own device get this
deployment's watermark, C2PA manifest and log entry). A key handed to a third-party app for style embeddings gets
``styleembed`` only and cannot read raw pins. ``GET /v1/usage`` needs no scope; deleting the account needs all of them.

The checksum lets clients, secret scanners and the server itself reject a mistyped or truncated key
without a database lookup (CRC32 catches every single-character error and adjacent swap). Only the
SHA-256 of a key is stored — the key has 160 random bits, so a fast hash is safe and lookups stay O(1)
— together with a short display prefix so people can tell their keys apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from collections.abc import Iterable

from ..errors import InputError

PREFIX = "tm_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_BITS = 160
BODY_CHARS = 27  # 62**27 > 2**160
CHECK_CHARS = 6  # 62**6 > 2**32
KEY_LENGTH = len(PREFIX) + BODY_CHARS + CHECK_CHARS
DISPLAY_CHARS = len(PREFIX) + 8
SCOPES = ("boards:read", "boards:write", "styleembed", "generate", "verify", "register")
#: What a key stores: scopes separated by spaces (OAuth's ``scope`` format).
ALL_SCOPES = " ".join(SCOPES)
_SHAPE = re.compile(rf"^{PREFIX}[0-9A-Za-z]{{{BODY_CHARS + CHECK_CHARS}}}$")


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    if n:
        raise ValueError("number does not fit the width")
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECK_CHARS)


def generate_key() -> str:
    """A new random key (shown to its owner once, never stored)."""
    body = _base62(secrets.randbits(RANDOM_BITS), BODY_CHARS)
    return PREFIX + body + _checksum(body)


def is_well_formed(key: str) -> bool:
    """Offline check: right prefix, length, alphabet and checksum. Says nothing about validity."""
    if not _SHAPE.match(key):
        return False
    body, check = key[len(PREFIX) : len(PREFIX) + BODY_CHARS], key[len(PREFIX) + BODY_CHARS :]
    return secrets.compare_digest(_checksum(body), check)


def key_hash(key: str) -> str:
    """What the database stores and looks keys up by."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_CHARS]


def parse_scopes(values: Iterable[str] | None) -> str:
    """Scopes as given on the command line (repeated and/or comma-separated) -> the stored form; None or
    nothing means every scope. Unknown names are refused, naming the known ones."""
    names = [n.strip() for v in (values or ()) for n in re.split(r"[,\s]+", v) if n.strip()]
    if not names:
        return ALL_SCOPES
    unknown = sorted(set(names) - set(SCOPES))
    if unknown:
        raise InputError(f"unknown scope(s) {', '.join(unknown)}; a key's scopes are some of {', '.join(SCOPES)}")
    return " ".join(s for s in SCOPES if s in names)


def scope_set(stored: str) -> frozenset[str]:
    return frozenset(stored.split())
