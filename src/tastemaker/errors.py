"""One exception hierarchy for everything Tastemaker raises on purpose.

Each class knows three things about itself, so the edges never have to guess:
``code`` (a stable machine string for the HTTP API), ``exit_code`` (the CLI's), and
``http_status``. Messages say what was received, what was expected, and what to do next.

::

    TastemakerError                      exit 1   500 internal_error
    ├── InputError                       exit 2   422 invalid_input
    │   ├── ImageError                            422 invalid_image
    │   │   ├── ImageDecodeError                  422 image_unreadable    (empty, truncated, not an image)
    │   │   ├── UnsupportedImageError             415 image_unsupported   (a format we do not take)
    │   │   └── ImageTooLargeError                413 image_too_large     (bytes over the cap)
    │   │       └── ImagePixelLimitError          422 image_too_many_pixels (pixel count over the cap: a bomb)
    │   ├── BoardError                            422 invalid_board
    │   │   ├── EmptyBoardError                   422 board_empty
    │   │   └── PinsFileError                     422 pins_file_invalid   (names file and line)
    │   ├── FaceError                             422 face_error
    │   │   ├── NoFaceError                       422 no_face
    │   │   ├── MultipleFacesError                422 multiple_faces
    │   │   ├── FaceTooSmallError                 422 face_too_small
    │   │   └── IdentityMismatchError             422 identity_mismatch   (selfies of different people)
    │   ├── RequestError                          422 invalid_request     (n, size, aspect, format...)
    │   │   ├── JSONTooDeepError                  400 json_too_deep       (nested past safejson.MAX_DEPTH)
    │   │   ├── JSONNumberTooLargeError           400 json_number_too_large
    │   │   └── JSONSyntaxError                   422 invalid_request     (not JSON at all)
    │   ├── ProfileError                          422 invalid_profile     (bad JSON, schema version, signature)
    │   ├── ModelFilesError                       422 model_files_invalid (a weights file or folder is missing/wrong)
    │   └── ProvenanceInputError                  422 invalid_provenance_input (bad payload, image, format)
    │       └── WatermarkTooSmallError            422 image_too_small_to_mark
    ├── OutputError                      exit 73  500 output_error        (cannot write results)
    ├── IdentityGuardError               exit 4   500 identity_guard      (output drifted from the selfie)
    ├── PrivacyBudgetError               exit 5   429 privacy_budget_exhausted
    ├── ProvenanceError                  exit 1   500 provenance_error    (never ignored: fail closed)
    │   ├── WatermarkError                        500 watermark_failed    (could not mark the image)
    │   ├── C2paError                             500 c2pa_failed         (signing or reading failed)
    │   └── LedgerError                           500 ledger_error        (storage or signature problem)
    │       └── ProofError                        409 proof_invalid       (a proof or tree head does not verify)
    └── MissingDependencyError           exit 3   501 missing_dependency  (optional extra not installed)
"""

from __future__ import annotations

from pathlib import Path


class TastemakerError(Exception):
    """Base class: anything Tastemaker raises deliberately."""

    code: str = "internal_error"
    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        """The JSON body the API returns for this error."""
        return {"code": self.code, "message": self.message, "error": type(self).__name__}


class InputError(TastemakerError):
    """The caller gave us something we cannot use; fixing the input fixes the problem."""

    code = "invalid_input"
    exit_code = 2
    http_status = 422


class ImageError(InputError):
    code = "invalid_image"


class ImageDecodeError(ImageError):
    code = "image_unreadable"


class UnsupportedImageError(ImageError):
    code = "image_unsupported"
    http_status = 415


class ImageTooLargeError(ImageError):
    code = "image_too_large"
    http_status = 413


class ImagePixelLimitError(ImageTooLargeError):
    """Too many pixels (a decompression bomb, or an enormous photo): refused from the header, before decoding.

    422 rather than 413: the upload itself was within the byte limit; its content is what is refused.
    """

    code = "image_too_many_pixels"
    http_status = 422


class BoardError(InputError):
    code = "invalid_board"


class EmptyBoardError(BoardError):
    code = "board_empty"


class PinsFileError(BoardError):
    """A malformed row in pins.csv / pins.jsonl; carries the file and 1-based line."""

    code = "pins_file_invalid"

    def __init__(self, path: Path | str, line: int, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        super().__init__(f"{self.path.name}, line {line}: {problem}")


class FaceError(InputError):
    code = "face_error"


class NoFaceError(FaceError):
    code = "no_face"


class MultipleFacesError(FaceError):
    code = "multiple_faces"

    def __init__(self, message: str, n_faces: int) -> None:
        super().__init__(message)
        self.n_faces = n_faces


class FaceTooSmallError(FaceError):
    code = "face_too_small"


class IdentityMismatchError(FaceError):
    code = "identity_mismatch"


class RequestError(InputError):
    code = "invalid_request"


class JSONTooDeepError(RequestError):
    """A JSON document nested deeper than :data:`safejson.MAX_DEPTH`."""

    code = "json_too_deep"
    http_status = 400


class JSONNumberTooLargeError(RequestError):
    """An integer literal longer than :data:`safejson.MAX_INT_DIGITS` digits, or NaN / Infinity."""

    code = "json_number_too_large"
    http_status = 400


class JSONSyntaxError(RequestError):
    """Not JSON at all (422 ``invalid_request``, as any other unreadable input)."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ProfileError(InputError):
    code = "invalid_profile"


class ModelFilesError(InputError):
    """A model folder or weights file is missing, incomplete, or made for another model; the message names it."""

    code = "model_files_invalid"


class OutputError(TastemakerError):
    code = "output_error"
    exit_code = 73  # EX_CANTCREAT


class IdentityGuardError(TastemakerError):
    code = "identity_guard"
    exit_code = 4


class PrivacyBudgetError(TastemakerError):
    """A profile's differential-privacy budget for the period is spent; the release is refused."""

    code = "privacy_budget_exhausted"
    exit_code = 5
    http_status = 429


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


class MissingDependencyError(TastemakerError):
    """An optional backend was asked for but its extra is not installed."""

    code = "missing_dependency"
    exit_code = 3
    http_status = 501

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional '{module}' package, which is not installed. "
            f"Install it with: pip install 'tastemaker[{extra}]'"
        )


__all__ = [
    "BoardError",
    "C2paError",
    "EmptyBoardError",
    "FaceError",
    "FaceTooSmallError",
    "IdentityGuardError",
    "IdentityMismatchError",
    "ImageDecodeError",
    "ImageError",
    "ImagePixelLimitError",
    "ImageTooLargeError",
    "InputError",
    "LedgerError",
    "MissingDependencyError",
    "ModelFilesError",
    "MultipleFacesError",
    "NoFaceError",
    "OutputError",
    "PinsFileError",
    "PrivacyBudgetError",
    "ProfileError",
    "ProofError",
    "ProvenanceError",
    "ProvenanceInputError",
    "RequestError",
    "TastemakerError",
    "UnsupportedImageError",
    "WatermarkError",
    "WatermarkTooSmallError",
]
