"""C2PA content credentials for PNG, JPEG and WebP outputs (c2pa-python, ES256, local CA).

Each manifest carries three assertions:

* ``c2pa.actions``: one ``c2pa.created`` action, ``digitalSourceType`` = IPTC
  ``trainedAlgorithmicMedia`` (this is AI output), with Tastemaker as the software agent;
* ``c2pa.soft-binding``: names our watermark (:data:`watermark.ALGORITHM`) and its value (the
  40-bit record id, 5 bytes big-endian, base64), so a verifier can find the manifest's record
  again from a stripped copy;
* ``org.tastemaker.record``: the provenance record's fields (hashes only). The prompt text is
  included only when the caller passes it explicitly (opt-in).

An output rendered on the person's own device and registered afterwards (``POST /v1/records``) has
``rendered_on: device`` in its record assertion, and its ``c2pa.created`` action says so in its parameters.

Signing uses an ES256 certificate chain. On first use :func:`ensure_signing_identity` writes a
local CA (P-256, ``ca.pem`` / ``ca-key.pem``) and a leaf signing certificate issued by it
(``signer.pem`` holds leaf + CA, ``signer-key.pem``) into the given directory, keys mode 0600;
callers may pass their own PEMs instead. c2pa-rs rejects a lone self-signed leaf, accepts a
CA -> leaf chain, and reports "Trusted" when our CA is given as a trust anchor (``user_anchors``).

Reading maps c2pa's validation state to three answers: ``valid`` (signature and hashes check;
``trusted`` tells whether the chain ends in a given anchor), ``tampered`` (a manifest is there
but its hashes, signature or structure fail) and ``absent``. Thumbnails are off: they would
re-encode the output and add nothing to provenance. WebP is signed and read by c2pa-python 0.38
(c2pa-rs 0.91) like the other two; the tests cover all three.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .._version import __version__
from ..errors import C2paError, ProvenanceInputError
from .record import ProvenanceRecord
from .watermark import ALGORITHM, PAYLOAD_BITS

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RECORD_LABEL = "org.tastemaker.record"
#: mp4 and gif are the clips' containers (:mod:`tastemaker.clips`); c2pa-python 0.38 cannot sign WebM
MIME = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4",
        "gif": "image/gif"}
State = Literal["valid", "tampered", "absent"]


def _mime(fmt: str) -> str:
    try:
        return MIME[fmt.lower().lstrip(".")]
    except KeyError:
        raise ProvenanceInputError(f"C2PA signing supports png, jpeg, webp, mp4 and gif, got {fmt!r}") from None


# ----------------------------------------------------------------------------- signing identity


@dataclass(frozen=True)
class SigningIdentity:
    """PEM material for ES256 signing: the leaf+CA chain, the leaf key, and the CA (trust anchor)."""

    chain_pem: bytes
    key_pem: bytes
    anchor_pem: bytes | None = None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tastemaker"),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def create_signing_identity(common_name: str = "Tastemaker local signer") -> tuple[SigningIdentity, bytes]:
    """Make a fresh P-256 CA and a leaf certificate issued by it; returns (identity, CA key PEM)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Tastemaker local CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca_pem
    return SigningIdentity(chain, _pem_key(leaf_key), ca_pem), _pem_key(ca_key)


def _last_certificate(chain_pem: bytes) -> bytes | None:
    certs = x509.load_pem_x509_certificates(chain_pem)
    return certs[-1].public_bytes(serialization.Encoding.PEM) if certs else None


def ensure_signing_identity(
    directory: Path | str,
    *,
    chain_pem: Path | str | None = None,
    key_pem: Path | str | None = None,
    anchor_pem: Path | str | None = None,
) -> SigningIdentity:
    """Load the user's PEMs if given, else the ones in ``directory``, creating them on first use."""
    if (chain_pem is None) != (key_pem is None):
        raise ProvenanceInputError("give both a certificate chain PEM and its private key PEM, or neither")
    try:
        if chain_pem is not None and key_pem is not None:
            chain = Path(chain_pem).read_bytes()
            # without an explicit anchor, the chain's last certificate (its root or top intermediate) is the
            # one trusted: outputs signed by a chain outside the trust list verify as ``untrusted``
            anchor = Path(anchor_pem).read_bytes() if anchor_pem else _last_certificate(chain)
            return SigningIdentity(chain, Path(key_pem).read_bytes(), anchor)
        d = Path(directory)
        files = {n: d / n for n in ("signer.pem", "signer-key.pem", "ca.pem")}
        if not all(p.exists() for p in files.values()):
            d.mkdir(parents=True, exist_ok=True)
            identity, ca_key = create_signing_identity()
            _write_private(d / "ca-key.pem", ca_key)
            _write_private(files["signer-key.pem"], identity.key_pem)
            files["ca.pem"].write_bytes(identity.anchor_pem or b"")
            files["signer.pem"].write_bytes(identity.chain_pem)  # written last: marks a complete set
            return identity
        return SigningIdentity(
            files["signer.pem"].read_bytes(),
            files["signer-key.pem"].read_bytes(),
            files["ca.pem"].read_bytes(),
        )
    except (OSError, ValueError) as exc:
        raise C2paError(f"cannot read or create the C2PA signing certificates in {directory}: {exc}") from exc


# ----------------------------------------------------------------------------- sign / read


def soft_binding_value(record_id: int) -> str:
    """The watermark id as it appears in the soft-binding assertion (5 bytes, base64)."""
    return base64.b64encode(record_id.to_bytes(PAYLOAD_BITS // 8, "big")).decode()


def manifest_definition(
    record: ProvenanceRecord, *, prompt: str | None = None, title: str | None = None
) -> dict:
    """The manifest JSON handed to c2pa's Builder (exposed for inspection and tests)."""
    data: dict[str, Any] = record.to_dict()
    if prompt is not None:
        data["prompt"] = prompt
    return {
        "claim_generator_info": [{"name": "tastemaker", "version": __version__}],
        "title": title or f"tastemaker-{record.id_hex}",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        _created_action(record)
                    ]
                },
            },
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": ALGORITHM,
                    "blocks": [{"scope": {}, "value": soft_binding_value(record.record_id)}],
                },
            },
            {"label": RECORD_LABEL, "data": data},
        ],
    }


def _created_action(record: ProvenanceRecord) -> dict[str, Any]:
    """The ``c2pa.created`` action; for an output rendered on the person's device it says so (the signer registered
    the image, it did not watch it being made)."""
    action: dict[str, Any] = {
        "action": "c2pa.created",
        "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
        "softwareAgent": {"name": "tastemaker", "version": __version__},
    }
    if record.rendered_on is not None:
        action["parameters"] = {
            "org.tastemaker.rendered_on": record.rendered_on,
            "description": f"rendered on the person's {record.rendered_on} with Tastemaker, then registered with "
            "this service, which marked, signed and logged it (it did not render it)",
        }
    return action


def _context(anchor_pem: bytes | None) -> Any:
    import c2pa as _c2pa

    settings: dict[str, Any] = {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"remote_manifest_fetch": False},
    }
    if anchor_pem:
        settings["trust"] = {"user_anchors": anchor_pem.decode()}
    return _c2pa.Context.from_dict(settings)


def sign_image(
    data: bytes,
    fmt: str,
    record: ProvenanceRecord,
    identity: SigningIdentity,
    *,
    prompt: str | None = None,
    title: str | None = None,
) -> bytes:
    """Return ``data`` (an encoded png/jpeg/webp) with a signed C2PA manifest embedded.

    ``prompt`` is embedded in clear only when given: that is the user's opt-in.
    """
    import c2pa as _c2pa

    mime = _mime(fmt)
    try:
        signer = _c2pa.Signer.from_info(
            _c2pa.C2paSignerInfo(_c2pa.C2paSigningAlg.ES256, identity.chain_pem, identity.key_pem, None)
        )
        builder = _c2pa.Builder(
            manifest_definition(record, prompt=prompt, title=title), context=_context(identity.anchor_pem)
        )
        out = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), out)
    except _c2pa.C2paError as exc:
        raise C2paError(f"could not sign the {fmt} image with C2PA: {exc}") from exc
    return out.getvalue()


@dataclass(frozen=True)
class ManifestReport:
    """What :func:`read_manifest` found."""

    state: State
    trusted: bool = False
    validation_state: str | None = None
    manifest: dict | None = None
    failures: list[dict] = field(default_factory=list)
    error: str | None = None

    @property
    def record(self) -> dict | None:
        """The Tastemaker assertion's data, if the active manifest has one."""
        for a in (self.manifest or {}).get("assertions", []):
            if a.get("label") == RECORD_LABEL:
                return a.get("data")
        return None

    @property
    def claims_ours(self) -> bool:
        """The manifest says it is a Tastemaker output (our record assertion or our watermark's soft binding)."""
        for a in (self.manifest or {}).get("assertions", []):
            if a.get("label") == RECORD_LABEL:
                return True
            if a.get("label") == "c2pa.soft-binding" and (a.get("data") or {}).get("alg") == ALGORITHM:
                return True
        return False

    @property
    def soft_binding_id(self) -> int | None:
        for a in (self.manifest or {}).get("assertions", []):
            data = a.get("data")
            if a.get("label") == "c2pa.soft-binding" and isinstance(data, dict) and data.get("alg") == ALGORITHM:
                # a manifest is outside data: anything malformed in it means "no id", never an error
                try:
                    value = base64.b64decode(data["blocks"][0]["value"], validate=True)
                except (KeyError, IndexError, TypeError, ValueError):
                    return None
                return int.from_bytes(value, "big") if 0 < len(value) <= PAYLOAD_BITS // 8 else None
        return None


def read_manifest(data: bytes, fmt: str, *, trust_anchor_pem: bytes | None = None) -> ManifestReport:
    """Read and validate the C2PA manifest in ``data``: valid / tampered / absent."""
    import c2pa as _c2pa

    mime = _mime(fmt)
    try:
        reader = _c2pa.Reader.try_create(mime, io.BytesIO(data), None, _context(trust_anchor_pem))
    except _c2pa.C2paError as exc:  # a manifest store is there but cannot be parsed or verified
        return ManifestReport("tampered", error=str(exc))
    if reader is None:
        return ManifestReport("absent")
    with reader:
        store = json.loads(reader.json())
        state = store.get("validation_state")
        results = store.get("validation_results") or {}
        manifest = store.get("manifests", {}).get(store.get("active_manifest", ""))
    failures = list((results.get("activeManifest") or {}).get("failure", []))
    # An unknown signer is a trust question, not tampering: hashes and signature still checked out.
    integrity = [f for f in failures if not str(f.get("code", "")).startswith("signingCredential.untrusted")]
    ok = state in ("Valid", "Trusted") and not integrity
    return ManifestReport(
        "valid" if ok else "tampered",
        trusted=ok and state == "Trusted" and not failures,
        validation_state=state,
        manifest=manifest,
        failures=failures,
    )


__all__ = [
    "MIME",
    "RECORD_LABEL",
    "TRAINED_ALGORITHMIC_MEDIA",
    "ManifestReport",
    "SigningIdentity",
    "create_signing_identity",
    "ensure_signing_identity",
    "manifest_definition",
    "read_manifest",
    "sign_image",
    "soft_binding_value",
]
