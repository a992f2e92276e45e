"""One exception hierarchy for everything Tastemaker raises on purpose.

Each class knows two things about itself: ``code`` (a stable machine string, the API's ``code``
field) and ``exit_code`` (the CLI's). The HTTP status of each is decided at the API edge only
(:mod:`tastemaker.api.http_errors`), as the CLI's edge decides what to print. Messages say what was
received, what was expected, and what to do next. Errors that only the service raises (auth, quotas,
queues) are here too, under :class:`ServiceError`: one hierarchy, one file. (It is over 500 lines on
purpose: sixty small classes and no logic, and one place to read them all is the point.)

::

    TastemakerError                      exit 1   internal_error
    ├── InputError                       exit 2   invalid_input
    │   ├── ImageError                            invalid_image
    │   │   ├── ImageDecodeError                  image_unreadable    (empty, truncated, not an image)
    │   │   ├── UnsupportedImageError             image_unsupported   (a format we do not take)
    │   │   └── ImageTooLargeError                image_too_large     (bytes over the cap)
    │   │       └── ImagePixelLimitError          image_too_many_pixels (pixel count over the cap: a bomb)
    │   ├── BoardError                            invalid_board
    │   │   ├── EmptyBoardError                   board_empty
    │   │   └── PinsFileError                     pins_file_invalid   (names file and line)
    │   ├── FaceError                             face_error
    │   │   ├── NoFaceError                       no_face
    │   │   ├── MultipleFacesError                multiple_faces
    │   │   ├── FaceTooSmallError                 face_too_small
    │   │   └── IdentityMismatchError             identity_mismatch   (selfies of different people)
    │   ├── OutputVetoedError                     output_vetoed       (a plugin refused the output, with why)
    │   ├── RequestError                          invalid_request     (n, size, aspect, format...)
    │   │   ├── IdentityOnlyUnsupportedError      identity_only_unsupported (the engine redraws a selfie)
    │   │   ├── InvalidIdentityError              invalid_identity    (not 128 numbers or an identity file)
    │   │   ├── UnsupportedParameterError         unsupported_parameter (an OpenAI field we do not take: mask...)
    │   │   ├── JSONTooDeepError                  json_too_deep       (nested past safejson.MAX_DEPTH)
    │   │   ├── JSONNumberTooLargeError           json_number_too_large
    │   │   ├── JSONSyntaxError                   invalid_request     (not JSON at all)
    │   │   └── IncompleteTreeHeadError           incomplete_tree_head
    │   ├── ProfileError                          invalid_profile     (bad JSON, schema version, signature)
    │   │   └── UntrustedSignerError              untrusted_signer
    │   ├── ModelFilesError                       model_files_invalid (a weights file or folder is missing/wrong)
    │   │   └── DlibModelFormatError              model_files_invalid (names the byte offset)
    │   ├── ProvenanceInputError                  invalid_provenance_input (bad payload, image, format)
    │   │   └── WatermarkTooSmallError            image_too_small_to_mark
    │   ├── ServerStoreError                      server_store        (``forget`` pointed at a server's store)
    │   ├── CatalogueError                        catalogue_invalid   (a catalogue or index input; file and line)
    │   ├── SearchIndexError                      search_index_invalid (a search index missing, damaged or mixed)
    │   ├── SearchQueryError                      search_query_invalid (no query, or two kinds at once)
    │   ├── ConsentRulesError                     consent_rules_invalid (a consent rules file; file and line)
    │   ├── EmptyDatasetError                     dataset_empty       (a curation that would export nothing)
    │   ├── ConsentRequiredError                  consent_required
    │   ├── FilePartExpectedError                 file_part_expected  (a text part where a file goes)
    │   ├── RequestTooLargeError                  request_too_large
    │   ├── UnsupportedMediaTypeError             unsupported_media_type
    │   ├── IdempotencyKeyReusedError             idempotency_key_reused
    │   ├── MalformedBodyError                    malformed_body
    │   ├── RequestTimeoutError                   request_timeout     (headers or body too slow to arrive)
    │   └── ClientDisconnectedError               client_disconnected
    ├── OutputError                      exit 73  output_error        (cannot write results)
    ├── IdentityGuardError               exit 4   identity_guard      (output drifted from the selfie)
    ├── PluginError                      exit 6   plugin_failed       (a plugin raised; named, fail closed)
    ├── PrivacyBudgetError               exit 5   privacy_budget_exhausted
    │   ├── PrivacyBudgetDailyError               privacy_budget_daily    (resets; knows when)
    │   └── PrivacyBudgetLifetimeError            privacy_budget_lifetime (never resets)
    ├── ProvenanceError                  exit 1   provenance_error    (never ignored: fail closed)
    │   ├── WatermarkError                        watermark_failed    (could not mark the image)
    │   ├── C2paError                             c2pa_failed         (signing or reading failed)
    │   └── LedgerError                           ledger_error        (storage or signature problem)
    │       └── ProofError                        proof_invalid       (a proof or tree head does not verify)
    ├── AuditTamperedError               exit 5   audit_tampered      (the audit log was edited or cut)
    ├── MissingDependencyError           exit 3   missing_dependency  (optional extra not installed)
    ├── ConfigurationError               exit 78  configuration_error
    ├── StoreError                                store_error
    │   ├── BlobMissingError                      blob_missing
    │   └── StoreConflictError                    store_conflict      (a write names a row deleted meanwhile)
    ├── InternalError                             internal_error      (a bug: what an unexpected exception becomes)
    ├── ForwardedError                            (a core error raised in a worker process; keeps its name and code)
    └── ServiceError                              (the service's own: auth, quotas, queues)
        ├── AuthError                             unauthorized        (never raised itself)
        │   ├── MissingApiKeyError                missing_api_key
        │   ├── InvalidApiKeyError                invalid_api_key
        │   ├── RevokedApiKeyError                api_key_revoked
        │   └── SessionExpiredError               session_expired     (the web app's session: sign in again)
        ├── InsufficientScopeError                insufficient_scope  (names the scopes it needs)
        ├── CsrfError                             csrf_failed         (a web form without this session's token)
        ├── NotFoundError                         not_found
        ├── MethodNotAllowedError                 method_not_allowed  (knows the methods the path takes)
        ├── NotReadyError                         not_ready           (a job's images before it finished)
        ├── JobFinishedError                      job_finished        (cancelling a job that already ended)
        ├── AlreadyRegisteredError                already_registered  (POST /v1/records of an image marked here)
        ├── IdempotencyInProgressError            idempotency_key_in_use (retry in 1 s)
        ├── ConflictError                         conflict            (retry in 1 s)
        ├── RateLimitedError                      rate_limited        (knows when to retry)
        │   ├── QuotaExceededError                quota_exceeded
        │   ├── TooManyJobsError                  too_many_jobs
        │   └── VerifyBusyError                   verify_busy
        └── ServiceUnavailableError               service_unavailable (retry in 5 s unless told)
            ├── QueueFullError                    queue_full
            ├── WorkerCrashedError                worker_crashed
            ├── RateLimiterUnavailableError       rate_limiter_unavailable
            └── VerifyQueueFullError              verify_queue_full

``retry_after_s`` (seconds) on an error says when retrying can succeed; ``headers`` carries response
metadata only the service knows (the rate limiter's ``X-RateLimit-*``); the edge turns both into headers.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any


class TastemakerError(Exception):
    """Base class: anything Tastemaker raises deliberately."""

    code: str = "internal_error"
    exit_code: int = 1
    #: seconds after which a retry can succeed (the API sends it as Retry-After); None: do not retry as is
    retry_after_s: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the API returns for this error."""
        return {"code": self.code, "message": self.message, "error": type(self).__name__}


class InputError(TastemakerError):
    """The caller gave us something we cannot use; fixing the input fixes the problem."""

    code = "invalid_input"
    exit_code = 2


class ImageError(InputError):
    code = "invalid_image"


class ImageDecodeError(ImageError):
    code = "image_unreadable"


class UnsupportedImageError(ImageError):
    code = "image_unsupported"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class ImagePixelLimitError(ImageTooLargeError):
    """Too many pixels (a decompression bomb, or an enormous photo): refused from the header, before decoding.

    422 rather than 413: the upload itself was within the byte limit; its content is what is refused.
    """

    code = "image_too_many_pixels"


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


class IdentityOnlyUnsupportedError(RequestError):
    """An identity embedding without a selfie, for an engine that redraws a selfie (the look engine): the way to
    keep the face on the device is to render there (``tastemaker generate --remote``)."""

    code = "identity_only_unsupported"


class InvalidIdentityError(RequestError):
    """An ``identity`` that is not an identity embedding (its 128 numbers, or the identity file's object)."""

    code = "invalid_identity"


class UnsupportedParameterError(RequestError):
    """A field of the OpenAI images API that Tastemaker does not take (``mask``, ``stream``...); ``param`` names it."""

    code = "unsupported_parameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


class JSONTooDeepError(RequestError):
    """A JSON document nested deeper than :data:`safejson.MAX_DEPTH`."""

    code = "json_too_deep"


class JSONNumberTooLargeError(RequestError):
    """An integer literal longer than :data:`safejson.MAX_INT_DIGITS` digits, or NaN / Infinity."""

    code = "json_number_too_large"


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


class PluginError(TastemakerError):
    """A plugin raised (or could not be loaded) where the plugin policy fails closed; the message names it."""

    code = "plugin_failed"
    exit_code = 6


class OutputVetoedError(InputError):
    """A plugin refused the request or one of its outputs; the message names the plugin and its reason."""

    code = "output_vetoed"


class PrivacyBudgetError(TastemakerError):
    """A profile's differential-privacy budget for the period is spent; the release is refused."""

    code = "privacy_budget_exhausted"
    exit_code = 5


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

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional '{module}' package, which is not installed. "
            f"Install it with: pip install 'tastemaker[{extra}]'"
        )



class DlibModelFormatError(ModelFilesError):
    """The weights file is not the dlib face-recognition ResNet :mod:`tastemaker.encoders.dlib_resnet` reads."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte offset {offset})")
        self.offset = offset


class UntrustedSignerError(ProfileError):
    """The export is validly signed, but by a key this installation does not trust."""

    code = "untrusted_signer"


class IncompleteTreeHeadError(RequestError):
    """``since_size`` without ``since_root`` or the other way round (a rule across query parameters)."""

    code = "incomplete_tree_head"


class ServerStoreError(InputError):
    """``forget`` was pointed at a server's store."""

    code = "server_store"


class PrivacyBudgetDailyError(PrivacyBudgetError):
    """The period's budget is spent; it frees up at :attr:`resets_at`."""

    code = "privacy_budget_daily"

    def __init__(self, message: str, *, resets_at: datetime, now: datetime) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.retry_after_s = max(1.0, (resets_at - now).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "resets_at": self.resets_at.isoformat()}


class PrivacyBudgetLifetimeError(PrivacyBudgetError):
    """The profile's lifetime budget is spent: it never resets (a new board starts a new profile)."""

    code = "privacy_budget_lifetime"
    resets_at = None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "resets_at": None}


class AuditTamperedError(TastemakerError):
    """``tastemaker audit verify`` found the log edited, truncated or extended."""

    code = "audit_tampered"
    exit_code = 5


class ConfigurationError(TastemakerError):
    code = "configuration_error"
    exit_code = 78  # EX_CONFIG


class StoreError(TastemakerError):
    code = "store_error"


class BlobMissingError(StoreError):
    code = "blob_missing"


class StoreConflictError(StoreError):
    """A commit broke the store's integrity rules: it refers to an account or board deleted meanwhile, or
    repeats something unique. Nothing of the transaction was kept; callers say what vanished."""

    code = "store_conflict"


class ForwardedError(TastemakerError):
    """A Tastemaker error raised in a worker process, carried back as (class name, code, message, retry).

    Worker processes never pickle exception objects (some take extra constructor arguments); they send
    these values and the edges answer exactly as if the original had been raised here (the API finds the
    status by the original class's name, see :func:`error_class`).
    """

    def __init__(self, name: str, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.code = code
        self.retry_after_s = retry_after_s

    @classmethod
    def of(cls, exc: TastemakerError) -> tuple[str, str, str, float | None]:
        """The picklable values that stand for ``exc`` (the constructor's arguments)."""
        return type(exc).__name__, exc.code, exc.message, exc.retry_after_s

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "error": self.name}


# ------------------------------------------------------------------------------------- the service's own


class ServiceError(TastemakerError):
    """Base for errors only the service raises; ``headers`` is response metadata it alone knows."""

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})


class CatalogueError(InputError):
    """A catalogue (``products.csv``) or an index input that cannot be used: names the file and line."""

    code = "catalogue_invalid"

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line = str(path), line


class SearchIndexError(InputError):
    """A search index that is missing, damaged, or was made with another descriptor or engine."""

    code = "search_index_invalid"


class SearchQueryError(RequestError):
    """A search without a query (no image, text or board), or with two kinds of query at once."""

    code = "search_query_invalid"


class ConsentRulesError(InputError):
    """A consent rules file that cannot be used (unknown keys, wrong types): names the file and line."""

    code = "consent_rules_invalid"

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        where = f"{path}, line {line}" if line else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line = str(path), line


class EmptyDatasetError(InputError):
    """A curation in which every image was excluded: nothing is written, and the reasons are counted."""

    code = "dataset_empty"


class ConsentRequiredError(InputError):
    code = "consent_required"


class FilePartExpectedError(InputError):
    """A multipart part that must be a file (``images``, ``selfie``, ``image``) came as a text field: a part
    without a ``filename`` in its ``Content-Disposition`` (some clients drop an empty one)."""

    code = "file_part_expected"

    def __init__(self, field: str) -> None:
        super().__init__(
            f"{field}: send a file part, with a file name — Content-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"photo.jpg\" (curl: -F {field}=@photo.jpg); this one came as a text field"
        )
        self.field = field


class RequestTooLargeError(InputError):
    code = "request_too_large"


class UnsupportedMediaTypeError(InputError):
    code = "unsupported_media_type"


class IdempotencyKeyReusedError(InputError):
    code = "idempotency_key_reused"


class MalformedBodyError(InputError):
    """A body the framework parses (form, JSON model) that is not what its content type says."""

    code = "malformed_body"


class RequestTimeoutError(InputError):
    """The request's headers or body did not arrive in time (408, sent by the server's protocol layer)."""

    code = "request_timeout"


class ClientDisconnectedError(InputError):
    """The client went away before sending its whole body; nothing was done."""

    code = "client_disconnected"


class AuthError(ServiceError):
    code = "unauthorized"

    def __init__(self, message: str, *, account_id: str | None = None) -> None:
        super().__init__(message)
        self.account_id = account_id  # known for a revoked key (for the audit trail, never shown)


class InsufficientScopeError(ServiceError):
    """The key is valid but was not given the scope this endpoint needs (RFC 6750 ``insufficient_scope``)."""

    code = "insufficient_scope"

    def __init__(self, message: str, *, scopes: frozenset[str] | set[str]) -> None:
        super().__init__(message)
        self.scopes = frozenset(scopes)


class MissingApiKeyError(AuthError):
    code = "missing_api_key"


class InvalidApiKeyError(AuthError):
    code = "invalid_api_key"


class RevokedApiKeyError(AuthError):
    code = "api_key_revoked"


class SessionExpiredError(AuthError):
    """The web app's session cookie is missing, unknown, expired or its key revoked: sign in (again)."""

    code = "session_expired"


class CsrfError(ServiceError):
    """A web form without this session's CSRF token: refused, so another site cannot submit it for you."""

    code = "csrf_failed"


class NotFoundError(ServiceError):
    code = "not_found"


class MethodNotAllowedError(ServiceError):
    """The path exists but not with this method; ``allow`` is what it takes (the ``Allow`` header)."""

    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message, headers={"Allow": allow})
        self.allow = allow


class NotReadyError(ServiceError):
    code = "not_ready"


class JobFinishedError(ServiceError):
    """Cancelling a generation that has already ended (succeeded, failed or cancelled): nothing is left to stop,
    and retrying cannot change that, so no ``retry_after_s``."""

    code = "job_finished"


class AlreadyRegisteredError(ServiceError):
    """``POST /v1/records`` of an image that already carries this service's mark: it has a record (named in the
    message); registering it again would give one picture two."""

    code = "already_registered"


class IdempotencyInProgressError(ServiceError):
    code = "idempotency_key_in_use"
    retry_after_s = 1.0


class ConflictError(ServiceError):
    """The object changed under the request (e.g. pins added while feedback was applied); retry it."""

    code = "conflict"
    retry_after_s = 1.0


class RateLimitedError(ServiceError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers=headers)
        self.retry_after_s = retry_after_s


class QuotaExceededError(RateLimitedError):
    code = "quota_exceeded"


class TooManyJobsError(RateLimitedError):
    code = "too_many_jobs"


class VerifyBusyError(RateLimitedError):
    """The account already has as many provenance checks running as it may (``verify_per_account``)."""

    code = "verify_busy"


class ServiceUnavailableError(ServiceError):
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFullError(ServiceUnavailableError):
    code = "queue_full"


class WorkerCrashedError(ServiceUnavailableError):
    """The worker process handling the request died (a native crash, out of memory); retrying may work."""

    code = "worker_crashed"


class RateLimiterUnavailableError(ServiceUnavailableError):
    code = "rate_limiter_unavailable"


class VerifyQueueFullError(ServiceUnavailableError):
    code = "verify_queue_full"


class InternalError(TastemakerError):
    """A bug: what the API answers for an exception nobody raised on purpose (the log has the traceback)."""


def error_class_for_code(code: str) -> type[TastemakerError] | None:
    """The class that stands for an API error ``code`` (its most general class, where subclasses share a code);
    None for a code this hierarchy does not have. How clients turn an error body back into an exception."""
    todo: list[type[TastemakerError]] = [TastemakerError]
    while todo:
        cls = todo.pop(0)
        if vars(cls).get("code") == code or (cls is TastemakerError and code == cls.code):
            return cls
        todo.extend(cls.__subclasses__())
    return None


def error_class(name: str) -> type[TastemakerError] | None:
    """The class of this hierarchy called ``name`` (how a :class:`ForwardedError` finds what it stands for)."""
    todo: list[type[TastemakerError]] = [TastemakerError]
    while todo:
        cls = todo.pop()
        if cls.__name__ == name:
            return cls
        todo.extend(cls.__subclasses__())
    return None

__all__ = [
    "AlreadyRegisteredError",
    "AuditTamperedError",
    "AuthError",
    "BlobMissingError",
    "BoardError",
    "C2paError",
    "CatalogueError",
    "ClientDisconnectedError",
    "ConfigurationError",
    "ConflictError",
    "ConsentRequiredError",
    "ConsentRulesError",
    "CsrfError",
    "DlibModelFormatError",
    "EmptyDatasetError",
    "EmptyBoardError",
    "FaceError",
    "FaceTooSmallError",
    "FilePartExpectedError",
    "ForwardedError",
    "IdempotencyInProgressError",
    "IdempotencyKeyReusedError",
    "IdentityGuardError",
    "IdentityMismatchError",
    "IdentityOnlyUnsupportedError",
    "InvalidIdentityError",
    "ImageDecodeError",
    "ImageError",
    "ImagePixelLimitError",
    "ImageTooLargeError",
    "IncompleteTreeHeadError",
    "InputError",
    "InsufficientScopeError",
    "InternalError",
    "InvalidApiKeyError",
    "JSONNumberTooLargeError",
    "JSONSyntaxError",
    "JSONTooDeepError",
    "JobFinishedError",
    "LedgerError",
    "MalformedBodyError",
    "MethodNotAllowedError",
    "MissingApiKeyError",
    "MissingDependencyError",
    "ModelFilesError",
    "MultipleFacesError",
    "NoFaceError",
    "NotFoundError",
    "NotReadyError",
    "OutputError",
    "OutputVetoedError",
    "PinsFileError",
    "PluginError",
    "PrivacyBudgetDailyError",
    "PrivacyBudgetError",
    "PrivacyBudgetLifetimeError",
    "ProfileError",
    "ProofError",
    "ProvenanceError",
    "ProvenanceInputError",
    "QueueFullError",
    "QuotaExceededError",
    "RateLimitedError",
    "RateLimiterUnavailableError",
    "RequestError",
    "RequestTimeoutError",
    "RequestTooLargeError",
    "RevokedApiKeyError",
    "SearchIndexError",
    "SearchQueryError",
    "ServerStoreError",
    "ServiceError",
    "ServiceUnavailableError",
    "SessionExpiredError",
    "StoreConflictError",
    "StoreError",
    "TastemakerError",
    "TooManyJobsError",
    "UnsupportedImageError",
    "UnsupportedMediaTypeError",
    "UnsupportedParameterError",
    "UntrustedSignerError",
    "VerifyBusyError",
    "VerifyQueueFullError",
    "WatermarkError",
    "WorkerCrashedError",
    "WatermarkTooSmallError",
    "error_class",
    "error_class_for_code",
]
