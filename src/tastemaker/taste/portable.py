"""Portable, signed taste profiles: export from one installation, import into another.

The export file (``schema: tastemaker.taste-export``, ``schema_version: 1``; JSON Schema published in
``schemas/taste-export.v1.schema.json``) holds the profile's modes, weights and look parameters and
the style encoder's name and version. It never holds pixels, pin file names, per-pin vectors or face
data: the ``pins`` list is emptied and medoids (pin ids) are dropped. With ``--private`` the modes are
a differentially private release instead (see :mod:`.privacy`), which also drops titles and tags.

Signature: Ed25519 over the canonical JSON (sorted keys, no whitespace) of everything but the
``signature`` block; the key is made on first use in ``<data dir>/keys/profile-ed25519.pem`` (0600).
Import verifies it and refuses a tampered file; an unsigned file is refused unless the caller says
``allow_unsigned``. An incompatible encoder version is refused by the profile loader.

A valid signature only says *someone* signed the file — the public key travels inside it, so a tampered
profile re-signed with another key verifies too. So import also asks who signed: :class:`TrustStore`
(``<data dir>/keys/trusted-signers.json``, 0600) lists the signers this installation accepts. Its own key
is always trusted; the first signer ever imported is trusted on first use (and said so); any other signer
is refused (:class:`UntrustedSignerError`) until the person vouches for it (``--trust KEY_ID``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ProfileError, TastemakerError, UntrustedSignerError
from ..media import make_private_dirs, write_atomic
from ..provenance.ledger import load_or_create_key
from .profile import TasteProfile

EXPORT_SCHEMA = "tastemaker.taste-export"
EXPORT_VERSION = 1


def profile_key(data_dir: Path | str) -> Ed25519PrivateKey:
    """This installation's profile-signing key (created on first use)."""
    d = make_private_dirs(Path(data_dir) / "keys")
    return load_or_create_key(d / "profile-ed25519.pem")


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def portable_copy(profile: TasteProfile) -> TasteProfile:
    """The profile without anything that points at pins: no pin list, no medoids."""
    modes = [m.model_copy(update={"medoids": []}) for m in profile.modes]
    return profile.model_copy(update={"pins": [], "modes": modes, "feedback": [], "feedback_base": None})


def export_document(profile: TasteProfile, key: Ed25519PrivateKey | None) -> dict[str, Any]:
    """The export document, signed when ``key`` is given."""
    doc: dict[str, Any] = {
        "schema": EXPORT_SCHEMA,
        "schema_version": EXPORT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": json.loads(portable_copy(profile).to_json()),
    }
    if key is not None:
        pub = key.public_key()
        doc["signature"] = {
            "alg": "Ed25519",
            "key_id": key_id(pub),
            "public_key": base64.b64encode(
                pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            ).decode(),
            "value": base64.b64encode(key.sign(_canonical(doc))).decode(),
        }
    return doc



class TrustStore:
    """The signers whose exports this installation imports: key id -> public key (base64), when and why."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / "keys" / "trusted-signers.json"

    def signers(self) -> dict[str, dict[str, str]]:
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a damaged list must not turn into "trust anyone"
            raise ProfileError(f"the trusted-signers list {self.path} is unreadable ({exc}); fix or remove it") from exc
        return {k: v for k, v in doc.get("signers", {}).items() if isinstance(v, dict)}

    def own_key_id(self) -> str | None:
        pem = self.data_dir / "keys" / "profile-ed25519.pem"
        return key_id(profile_key(self.data_dir).public_key()) if pem.exists() else None

    def add(self, signer: str, public_key: str, how: str) -> None:
        signers = self.signers()
        signers[signer] = {"public_key": public_key, "added": datetime.now(UTC).isoformat(timespec="seconds"),
                           "how": how}
        make_private_dirs(self.path.parent)
        write_atomic(self.path, json.dumps({"signers": signers}, indent=1, sort_keys=True).encode())

    def admit(self, signer: str, public_key: str, *, trust: Sequence[str] = (), name: str = "export") -> str:
        """Accept ``signer`` or raise :class:`UntrustedSignerError`; says how it is trusted: ``own``, ``known``,
        ``vouched`` (named in ``trust``, now remembered) or ``first use`` (the list was empty)."""
        if signer == self.own_key_id():
            return "own"
        known = self.signers()
        if signer in known:
            if known[signer].get("public_key") != public_key:  # key ids are 64 bits: never trust a collision
                raise UntrustedSignerError(f"{name}: key id {signer} is trusted for a different public key")
            return "known"
        if signer in trust or public_key in trust:
            self.add(signer, public_key, "vouched")
            return "vouched"
        if not known:
            self.add(signer, public_key, "first use")
            return "first use"
        raise UntrustedSignerError(
            f"{name}: signed by key {signer}, which this installation does not trust (it trusts "
            f"{', '.join(sorted(known))}). Someone may have changed the profile and signed it again. If you know "
            f"the key is the exporter's, import with --trust {signer}"
        )


def import_document(
    text: str,
    *,
    allow_unsigned: bool = False,
    name: str = "export",
    trust_store: TrustStore | None = None,
    trust: Sequence[str] = (),
) -> tuple[TasteProfile, str | None]:
    """Verify and load an export; returns the profile and the signer's key id (None if unsigned).

    With ``trust_store`` the signer must also be trusted (see :meth:`TrustStore.admit`; ``trust`` lists key
    ids or public keys the caller vouches for). Without one only the signature is checked.
    """
    from .. import safejson

    try:
        doc = safejson.loads(text, what=name)
    except safejson.JSONSyntaxError as exc:
        raise ProfileError(f"{name}: not valid JSON ({exc.detail})") from exc
    except TastemakerError as exc:  # nested too deep, a number too long
        raise ProfileError(exc.message) from exc
    if not isinstance(doc, dict) or doc.get("schema") != EXPORT_SCHEMA:
        raise ProfileError(f"{name}: not a Tastemaker taste export (expected \"schema\": \"{EXPORT_SCHEMA}\")")
    if doc.get("schema_version") != EXPORT_VERSION:
        raise ProfileError(f"{name}: export schema_version {doc.get('schema_version')!r} is not supported "
                           f"(this Tastemaker reads version {EXPORT_VERSION})")
    sig = doc.get("signature")
    signer = public_b64 = None
    if sig is None:
        if not allow_unsigned:
            raise ProfileError(f"{name}: the export is not signed; pass --allow-unsigned to accept it anyway")
    else:
        try:
            if sig.get("alg") != "Ed25519":
                raise ProfileError(f"{name}: unsupported signature algorithm {sig.get('alg')!r}")
            pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public_key"]))
            pub.verify(base64.b64decode(sig["value"]), _canonical(doc))
        except (InvalidSignature, KeyError, ValueError, TypeError) as exc:
            raise ProfileError(
                f"{name}: signature does not match the contents: the file was modified after it was exported"
            ) from exc
        signer, public_b64 = key_id(pub), str(sig["public_key"])
        if sig.get("key_id") not in (None, signer):
            raise ProfileError(f"{name}: the signature's key id does not match its public key")
    if not isinstance(doc.get("profile"), dict):
        raise ProfileError(f"{name}: missing the profile")
    profile = TasteProfile.from_json(json.dumps(doc["profile"]), name=name)  # refuse a bad profile before trusting
    if trust_store is not None and signer is not None and public_b64 is not None:
        trust_store.admit(signer, public_b64, trust=trust, name=name)
    return profile, signer
