"""Provenance primitives: invisible watermark, C2PA content credentials, transparency log, record.

Every output gets (1) a robust watermark whose 40-bit payload is its record id, written under the
store's secret key, (2) a record with keyed hashes, an account pseudonym and a keyed fingerprint of
the picture, (3) a signed C2PA manifest naming that watermark and the record, (4) a leaf in an
append-only Merkle log with signed tree heads. The pipeline/CLI/store wire these together; this
package has no I/O outside the directories it is given, and never imports torch.
"""

from ..errors import (
    C2paError,
    LedgerError,
    ProofError,
    ProvenanceError,
    ProvenanceInputError,
    WatermarkError,
    WatermarkTooSmallError,
)
from .c2pa import (
    ManifestReport,
    SigningIdentity,
    create_signing_identity,
    ensure_signing_identity,
    manifest_definition,
    read_manifest,
    sign_image,
)
from .fingerprint import Fingerprint
from .keys import StoreKeys, load_store_keys
from .ledger import (
    Ledger,
    LogEntry,
    SignedTreeHead,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from .record import ProvenanceRecord, new_record_id, pixels_sha256, sha256_hex
from .watermark import ALGORITHM, MIN_SIDE, PAYLOAD_BITS, Detection, detect, embed

__all__ = [
    "ALGORITHM",
    "C2paError",
    "Detection",
    "Fingerprint",
    "Ledger",
    "LedgerError",
    "LogEntry",
    "MIN_SIDE",
    "ManifestReport",
    "PAYLOAD_BITS",
    "ProofError",
    "ProvenanceError",
    "ProvenanceInputError",
    "ProvenanceRecord",
    "SignedTreeHead",
    "SigningIdentity",
    "StoreKeys",
    "WatermarkError",
    "WatermarkTooSmallError",
    "create_signing_identity",
    "detect",
    "embed",
    "ensure_signing_identity",
    "leaf_hash",
    "load_store_keys",
    "manifest_definition",
    "new_record_id",
    "node_hash",
    "pixels_sha256",
    "read_manifest",
    "sha256_hex",
    "sign_image",
    "verify_consistency",
    "verify_inclusion",
]
