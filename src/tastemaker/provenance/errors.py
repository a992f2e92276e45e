"""Errors raised by the provenance primitives (watermark, C2PA, ledger, record).

They live here until the lead folds them into :mod:`tastemaker.errors`; each subclasses the
project's hierarchy so the CLI and API edges already map them::

    TastemakerError
    ├── ProvenanceError                  exit 1   500 provenance_error
    │   ├── WatermarkError                        500 watermark_failed    (could not mark: fail closed)
    │   ├── C2paError                             500 c2pa_failed         (signing or reading failed)
    │   └── LedgerError                           500 ledger_error        (storage or signature problem)
    │       └── ProofError                        409 proof_invalid       (an inclusion/consistency proof
    │                                                                      or tree head does not verify)
    └── InputError
        └── ProvenanceInputError         exit 2   422 invalid_provenance_input (bad payload, image, format)
            └── WatermarkTooSmallError            422 image_too_small_to_mark
"""

from __future__ import annotations

from ..errors import InputError, TastemakerError


class ProvenanceError(TastemakerError):
    """Provenance could not be attached or checked; never ignored (fail closed)."""

    code = "provenance_error"


class WatermarkError(ProvenanceError):
    """Embedding failed or its self-check did not read the payload back; the image must not ship."""

    code = "watermark_failed"


class C2paError(ProvenanceError):
    """The C2PA manifest could not be built, signed or read."""

    code = "c2pa_failed"


class LedgerError(ProvenanceError):
    """The transparency log could not be read, written, or its signature is wrong."""

    code = "ledger_error"


class ProofError(LedgerError):
    """A Merkle proof or signed tree head does not verify: the log or the claim was tampered with."""

    code = "proof_invalid"
    http_status = 409


class ProvenanceInputError(InputError):
    """The caller passed something the provenance layer cannot use (payload range, pixels, format)."""

    code = "invalid_provenance_input"


class WatermarkTooSmallError(ProvenanceInputError):
    """The image is below the watermark's minimum size; we refuse rather than ship it unmarked."""

    code = "image_too_small_to_mark"


__all__ = [
    "C2paError",
    "LedgerError",
    "ProofError",
    "ProvenanceError",
    "ProvenanceInputError",
    "WatermarkError",
    "WatermarkTooSmallError",
]
