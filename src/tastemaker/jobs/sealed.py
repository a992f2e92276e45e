"""A queued job's input, sealed for the trip through the database to a queue worker.

In queue mode (``TASTEMAKER_QUEUE_URL``) the API process that admits a generation is not the process that
runs it, and it may be gone (killed, restarted) before a worker takes the job. So what the job needs beyond
its row — the selfie's bytes, the face found in it, the profile, the board's pins (by blob key) — is written in
the transaction that creates the job, and deleted in the one that ends it. The selfie is never kept in the
clear: the input is pickled and sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the
deployment's secret key, with the job id as associated data, so a row cannot be read, altered, or moved to
another job by anyone without the secret. Unpickling happens only after the tag checks out, so only data this
deployment sealed is ever unpickled. The embedded default never writes one: its jobs live in memory.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import StoreError

_INFO = b"tastemaker job input v1"
_NONCE = 12


def _key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())


def seal(secret: str, job_id: str, value: Any) -> bytes:
    """``value`` pickled and encrypted for ``job_id`` (nonce || ciphertext+tag)."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(_key(secret)).encrypt(nonce, pickle.dumps(value, protocol=5), job_id.encode())


def unseal(secret: str, job_id: str, sealed: bytes) -> Any:
    """The value :func:`seal` sealed for ``job_id``; :class:`StoreError` if it was sealed for another job, with
    another secret, or altered."""
    try:
        plain = AESGCM(_key(secret)).decrypt(sealed[:_NONCE], sealed[_NONCE:], job_id.encode())
    except (InvalidTag, ValueError):
        raise StoreError(
            f"the input of job {job_id} does not open with this deployment's secret key (another secret, another "
            "job's input, or altered)"
        ) from None
    return pickle.loads(plain)  # noqa: S301 - authenticated above: only this deployment's own sealed data
