"""Generating in the browser: the form (``/generate``, its mode choices per board), the job page with live progress
(``/generations/{id}``, its events, images and zip) and cancelling.

The form's fields, choices and limits come from :class:`~tastemaker.api.schemas.GenerationCreate`, and a
submission goes through the API's own admission (:func:`tastemaker.api.domain.generations.admit`), so the
browser gets exactly the checks, quota and audit entries a script gets. The selfie is parsed in memory (the
API's :class:`~tastemaker.api.routes.uploads.InMemoryMultiPartParser`: a file part never spills to a temporary
file), handed to the job as bytes and never stored.

The mode is a choice among the chosen board's taste modes (read from its cached profile, or built once and
cached as the taste page does); changing the board swaps the choices in place (``/generate/modes``, htmx), and
without JavaScript the server refuses a mode the chosen board does not have, next to the field.

The taste comes from one of the person's boards or from a portable taste export file (``source=export``: the
file ``/account`` downloads or ``tastemaker profile export`` writes). The file is verified as ``/account``'s
check does (:func:`tastemaker.web.portable.verify_export`: signed, or unsigned only with the box ticked) and its
profile goes to admission inline, as ``GenerationCreate.profile`` does for a script; nothing of it is stored
but the job's profile hash. Its modes are known only once it is read, so the mode is typed (``generate.js``
suggests the file's modes) and checked against the verified profile on submit, next to the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types as at
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from ...api.domain.common import Caller, owned_board, owned_job
from ...api.domain.generations import admit, too_many_jobs
from ...api.domain.profiles import ensure_profile
from ...api.http_errors import retry_after, status_of
from ...api.routes.uploads import InMemoryMultiPartParser
from ...api.schemas import GenerationCreate
from ...errors import (
    ConsentRequiredError,
    FaceError,
    FilePartExpectedError,
    ForwardedError,
    ImageError,
    ImageTooLargeError,
    NotFoundError,
    ProfileError,
    RequestError,
    RequestTooLargeError,
    TastemakerError,
    error_class,
)
from ...store.records import Job
from ..deps import ServicesDep, User, caller, need_scope
from ..portable import IMPORT_MAX_BYTES, VerifiedExport, verify_export
from ..render import explain, page, redirect
from ..session import CSRF_FIELD, CSRF_HEADER, WebUser, check_csrf

router = APIRouter(include_in_schema=False)

JobId = Annotated[str, PathParam(min_length=1, max_length=64)]
ImageIndex = Annotated[int, PathParam(ge=0, le=63)]

# ------------------------------------------------------------------------------------------ the form


@dataclass(frozen=True)
class FieldSpec:
    """One form field as the template renders it; choices and limits are read from the schema."""

    name: str
    label: str
    kind: Literal["select", "number", "text", "textarea", "mode"]
    default: str
    help: str = ""
    choices: tuple[str, ...] = ()
    min: str = ""
    max: str = ""
    step: str = ""
    maxlength: int | None = None
    placeholder: str = ""


#: the form's own words for each GenerationCreate field it shows (label, help, placeholder, number step)
_WORDS: dict[str, tuple[str, str, str, str]] = {
    "prompt": ("Prompt (optional)", "Mode hints, framing, background words: free text.",
               "e.g. golden hour, film grain", ""),
    "n": ("Images", "How many variations to make.", "", "1"),
    "size": ("Size (px)", "Longest side of each image.", "", "1"),
    "aspect": ("Aspect", "", "", ""),
    "output_format": ("Format", "", "", ""),
    "strength": ("Strength", "How far to move toward the board's look (0–1).", "", "0.01"),
    "seed": ("Seed (optional)", "Same seed, same images; empty picks one.", "random", "1"),
    "mode": ("Mode", "One of the board's looks, or let the board choose for each image.", "", ""),
    "background": ("Background", "", "", ""),
    "framing": ("Framing", "", "", ""),
}
#: GenerationCreate's field names the form sends, in the order shown
FIELDS = tuple(_WORDS)
#: a stored job's request keys that differ from the form's (the core calls it ``format``)
_STORED_NAMES = {"output_format": "format"}


def _field_spec(name: str) -> FieldSpec:
    field = GenerationCreate.model_fields[name]
    label, help_, placeholder, step = _WORDS[name]
    annotation = field.annotation
    default = "" if field.default is None else str(field.default)
    if name == "mode":  # a choice among the chosen board's modes (see ModeChoices), not free text
        return FieldSpec(name, label, "mode", default, help_)
    if get_origin(annotation) is Literal:
        return FieldSpec(name, label, "select", default, help_, choices=tuple(str(a) for a in get_args(annotation)))
    bounds: dict[str, str] = {}
    maxlength = None
    for m in field.metadata:
        if isinstance(m, at.Ge):
            bounds["min"] = str(m.ge)
        elif isinstance(m, at.Le):
            bounds["max"] = str(m.le)
        elif isinstance(m, at.Lt):
            bounds["max"] = str(int(m.lt) - 1)  # type: ignore[call-overload]
        elif isinstance(m, at.MaxLen):
            maxlength = m.max_length
    base = {a for a in get_args(annotation)} - {type(None)} or {annotation}
    if base <= {int, float}:
        return FieldSpec(name, label, "number", default, help_, min=bounds.get("min", ""), max=bounds.get("max", ""),
                         step=step, placeholder=placeholder)
    kind: Literal["text", "textarea"] = "textarea" if name == "prompt" else "text"
    return FieldSpec(name, label, kind, default, help_, maxlength=maxlength, placeholder=placeholder)


SPECS: tuple[FieldSpec, ...] = tuple(_field_spec(n) for n in FIELDS)
#: the consent checkbox's words: what the API's consent check asks the person to confirm
CONSENT_WORDS = "I confirm the selfie is of me, or that I have the person's consent to generate images of them."


def _defaults() -> dict[str, str]:
    return {s.name: s.default for s in SPECS}


def _restored(job: Job) -> dict[str, str]:
    """A stored generation's request as form values (its seed included: same seed, same images)."""
    values = _defaults()
    for name in FIELDS:
        value = job.request.get(_STORED_NAMES.get(name, name))
        if value is not None:
            values[name] = str(value)
    values["board_id"] = job.board_id or ""
    if job.board_id is None:  # made from a taste export: the file is chosen again, its mode typed
        values.update(source="export", export_mode=values["mode"], mode="")
    return values


@dataclass(frozen=True)
class ModeChoices:
    """The modes a board offers the form: ``(id, label)`` pairs, heaviest first, or why they could not be read
    (the board is not the caller's, or its profile cannot be built)."""

    board_id: str = ""
    board_name: str = ""
    options: tuple[tuple[str, str], ...] = ()
    error: TastemakerError | None = None

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(i for i, _ in self.options)

    @property
    def problem(self) -> str:
        return explain(self.error) if self.error is not None else ""


#: the first letter of each word (CSS's ``text-transform: capitalize``, which the taste page uses)
_WORD_START = re.compile(r"(?<![\w'’])([a-z])")


def mode_label(mode_id: str, name: str, share: float) -> str:
    """How a mode reads in the choice: its id (what the API takes), its look in words (capitalised as the taste
    page shows it) and its weight."""
    words = _WORD_START.sub(lambda m: m.group(1).upper(), name)
    return f"{mode_id} — {words} ({round(100 * share)}%)"


def mode_choices(svc: Any, c: Caller, board_id: str) -> ModeChoices:
    """The board's modes from its profile for the current revision: the cached one, or built in the CPU pool
    and cached (as the taste page and generation admission do), so the form offers exactly what a generation
    from this board can use. Blocking: call it from a thread, not the event loop."""
    if not board_id:
        return ModeChoices()
    try:
        with svc.store.session() as s:
            board = owned_board(svc, s, c, board_id[:64])
            cached = ensure_profile(svc, s, board)
            s.commit()
    except TastemakerError as exc:
        return ModeChoices(board_id, error=_unforwarded(exc))
    modes = cached.profile().modes
    total = sum(m.weight for m in modes) or 1.0
    options = tuple((m.id, mode_label(m.id, m.name, m.weight / total)) for m in sorted(modes, key=lambda m: -m.weight))
    return ModeChoices(board.id, board.name, options)


def _form(
    request: Request,
    svc: ServicesDep,
    user: WebUser,
    values: dict[str, str],
    modes: ModeChoices,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    restored_from: str | None = None,
) -> HTMLResponse:
    with svc.store.session() as s:
        boards = s.list_boards(user.principal.account_id)
    return page(
        request, "generate/form.html", user, nav="generate", status=status, specs=SPECS, values=values,
        errors=errors or {}, boards=boards, consent_words=CONSENT_WORDS, restored_from=restored_from,
        max_bytes=svc.settings.max_image_bytes, modes=modes, export_max_bytes=IMPORT_MAX_BYTES,
    )


@router.get("/generate", response_class=HTMLResponse)
def generate_form(
    request: Request, svc: ServicesDep, user: User, board: str = "", source: str = ""
) -> HTMLResponse:
    """The form; ``?from=<generation>`` fills it (seed and mode included) from that generation's stored
    request, ``?board=<id>`` pre-selects a board (and offers its modes); without either, the board changed
    most recently is chosen, so a person with one board has nothing to pick. ``?source=export`` chooses a
    taste export file as the taste instead (the account page's "Generate with this export")."""
    need_scope(user, "generate")
    c = caller(request, user)
    values = _defaults()
    values["board_id"] = board[:64]
    values["source"] = "export" if source == "export" else "board"
    from_job = request.query_params.get("from")
    with svc.store.session() as s:
        if from_job:
            values = _restored(owned_job(svc, s, c, from_job[:64]))
        elif not board:
            latest = s.list_boards(user.principal.account_id)[:1]
            values["board_id"] = latest[0].id if latest else ""
    return _form(request, svc, user, values, mode_choices(svc, c, values["board_id"]),
                 restored_from=from_job or None)


@router.get("/generate/modes", response_class=HTMLResponse)
def generate_modes(
    request: Request, svc: ServicesDep, user: User, board_id: str = "", mode: str = ""
) -> HTMLResponse:
    """The mode select's options for another board (htmx swaps them in when the board changes), keeping the
    chosen mode when that board has it, and the field's help (out of band) saying whose modes they are."""
    need_scope(user, "generate")
    modes = mode_choices(svc, caller(request, user), board_id[:64])
    return page(request, "generate/_modes.html", user, nav="generate", modes=modes, chosen=mode[:64], oob=True)


@dataclass
class _Submitted:
    """What the browser sent: text fields, the selfie (or why it is missing), a taste export file's bytes (None:
    none chosen) and the CSRF token presented."""

    values: dict[str, str]
    selfie: bytes | None
    selfie_name: str
    csrf: str | None
    problem: TastemakerError | None = None
    export: bytes | None = None
    export_name: str = "export.json"


async def _read(request: Request, max_bytes: int) -> _Submitted:
    """Parse the form in memory (never a temporary file), keeping every field even when the selfie is too large,
    so the form comes back filled."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sub = _Submitted({}, None, "selfie", request.headers.get(CSRF_HEADER))
    try:
        if ctype == "multipart/form-data":
            form = await InMemoryMultiPartParser(request.headers, request.stream(), max_files=2,
                                                 max_fields=len(FIELDS) + 12).parse()
        else:
            form = await request.form(max_files=0, max_fields=len(FIELDS) + 12)
    except MultiPartException as exc:
        sub.problem = RequestError(f"the form could not be read: {exc.message}")
        return sub
    except StarletteHTTPException as exc:  # the body went over the request cap while streaming
        sub.problem = RequestTooLargeError(str(exc.detail))
        return sub
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key == "export":  # verify_export refuses anything over its limit, next to the file field
                data = await value.read(IMPORT_MAX_BYTES + 1)
                if data or value.filename:
                    sub.export, sub.export_name = data, (value.filename or "export.json")[:255]
                continue
            data = await value.read(max_bytes + 1)
            if key != "selfie":
                continue
            if len(data) > max_bytes:
                sub.problem = ImageTooLargeError(
                    f"selfie: {len(data) / 1e6:.1f} MB or more is over the {max_bytes / 1e6:.0f} MB limit"
                )
            elif data:
                sub.selfie, sub.selfie_name = data, (value.filename or "selfie")[:255]
        elif key == CSRF_FIELD:
            sub.csrf = sub.csrf or value
        elif key == "selfie":
            if value:  # an empty text part is a form sent without a file
                sub.problem = FilePartExpectedError("selfie")
        elif key == "export":
            pass  # an empty text part: no file chosen (said next to the field when the export is the source)
        else:
            sub.values[key] = value[:4000]
    return sub


def _unforwarded(exc: TastemakerError) -> TastemakerError:
    """An error carried back from a worker process (the face check) as the class it stands for, so it is
    explained and placed like one raised here."""
    cls = error_class(exc.name) if isinstance(exc, ForwardedError) else None
    if cls is None:
        return exc
    real = cls.__new__(cls)
    TastemakerError.__init__(real, exc.message)
    real.retry_after_s = exc.retry_after_s
    return real


def _field_of(exc: TastemakerError) -> str:
    """Which form field an error belongs next to ("form": the top of the form)."""
    if isinstance(exc, ConsentRequiredError):
        return "consent"
    if isinstance(exc, FaceError | ImageError | FilePartExpectedError | RequestTooLargeError):
        return "selfie"
    if isinstance(exc, NotFoundError) and "board" in exc.message:
        return "board_id"
    if isinstance(exc, ProfileError) and "mode" in exc.message:
        return "mode"
    if isinstance(exc, RequestError):
        head = exc.message.split(":", 1)[0].strip()
        for name in FIELDS:
            if head in (name, _STORED_NAMES.get(name)):
                return name
        if "board_id" in exc.message:
            return "board_id"
    return "form"


def _validate(sub: _Submitted, export: VerifiedExport | None) -> tuple[GenerationCreate | None, dict[str, str]]:
    """The form as a GenerationCreate (from the board, or from the verified export's profile when the export is
    the source), or each field's problem in words."""
    data: dict[str, Any] = {k: v for k, v in sub.values.items() if k in FIELDS and v.strip() != ""}
    errors: dict[str, str] = {}
    data.update(consent=sub.values.get("consent") == "true", selfie="(in memory)", selfie_name=sub.selfie_name)
    if sub.values.get("source") == "export":
        data.pop("mode", None)
        if sub.values.get("export_mode", "").strip():
            data["mode"] = sub.values["export_mode"].strip()
        data.update(board_id=None, profile=json.loads(export.profile.to_json()) if export is not None else None)
    else:
        board = sub.values.get("board_id", "")
        data.update(board_id=board or None)
        if not board:
            errors["board_id"] = "Choose the board whose look to use."
    try:
        body = GenerationCreate.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "form"
            if name == "mode" and sub.values.get("source") == "export":
                name = "export_mode"
            elif name == "profile" or (name == "form" and export is None and sub.values.get("source") == "export"):
                continue  # the export's own problem is said next to the file field
            errors.setdefault(name if name in FIELDS or name in ("board_id", "export_mode") else "form",
                              err["msg"] + ".")
        return None, errors
    return (None if errors else body), errors


#: where an error about a board's taste belongs when the taste came from an export file instead
_EXPORT_FIELDS = {"mode": "export_mode", "board_id": "export"}


def _export_field_of(exc: TastemakerError) -> str:
    """:func:`_field_of` for a generation from a taste export: profile problems go next to the file field."""
    field = _field_of(exc)
    if isinstance(exc, ProfileError) and field != "mode":
        return "export"
    return _EXPORT_FIELDS.get(field, field)


def _check_export(svc: Any, sub: _Submitted) -> tuple[VerifiedExport | None, str]:
    """The submitted export verified (see :mod:`tastemaker.web.portable`), or why not in words. Blocking."""
    if sub.export is None:
        return None, "Choose a taste export file (.json), or take the taste from one of your boards."
    try:
        return verify_export(svc, sub.export_name, sub.export,
                             allow_unsigned=sub.values.get("allow_unsigned") == "yes"), ""
    except TastemakerError as exc:
        return None, explain(exc)


@router.post("/generate")
async def generate_submit(request: Request, svc: ServicesDep, user: User) -> Response:
    """Check and admit a generation (as ``POST /v1/generations`` does), then show its job page; any refusal
    comes back as the form, filled, with the message next to the field that caused it."""
    sub = await _read(request, svc.settings.max_image_bytes)
    check_csrf(user.csrf_token, sub.csrf)
    need_scope(user, "generate")
    from_export = sub.values.get("source") == "export"
    sub.values["source"] = "export" if from_export else "board"
    kept = ("board_id", "consent", "source", "export_mode", "allow_unsigned")
    values = {**_defaults(), **{k: v for k, v in sub.values.items() if k in FIELDS or k in kept}}
    export, export_problem = (await run_in_threadpool(_check_export, svc, sub)) if from_export else (None, "")
    body, errors = _validate(sub, export)
    if export_problem:
        errors["export"] = export_problem
    if sub.problem is not None:
        errors[_field_of(sub.problem)] = explain(sub.problem)
    elif sub.selfie is None:
        errors["selfie"] = "Choose a selfie (or take one with the camera)."
    c = caller(request, user)
    modes = await run_in_threadpool(mode_choices, svc, c, values.get("board_id", ""))
    status = status_of(sub.problem) if sub.problem is not None else 422
    if from_export:
        typed = values.get("export_mode", "").strip()
        have_ids = [m.id for m in export.profile.modes] if export is not None else []
        if typed and export is not None and typed not in have_ids and "export_mode" not in errors:
            errors["export_mode"] = (f"The export “{export.name}” has no mode {typed} (its modes: "
                                     f"{', '.join(have_ids) or 'none'}); type one of them, or leave it empty.")
    else:
        if modes.error is not None and "board_id" not in errors:  # as admission would refuse it, and audit it once
            errors[_field_of(modes.error)] = explain(modes.error)
            status = status_of(modes.error) if sub.problem is None else status
        chosen = values.get("mode", "").strip()
        if chosen and modes.error is None and modes.board_id and chosen not in modes.ids and "mode" not in errors:
            have = ", ".join(sorted(modes.ids)) or "none"
            errors["mode"] = (f"The board “{modes.board_name}” has no mode {chosen} (its modes: {have}); choose "
                              "one of its modes, or let the board choose.")
    if errors or body is None or sub.selfie is None:
        return _form(request, svc, user, values, modes, errors=errors, status=status)
    selfie = sub.selfie
    sub.selfie = None
    try:
        load = svc.runner.account_load(c.account_id)
        if load >= c.principal.tier.max_active_jobs:
            raise await run_in_threadpool(too_many_jobs, svc, c, load)
        job_id, _ = await admit(svc, c, body, selfie, None)
    except TastemakerError as raised:
        exc = _unforwarded(raised)
        field = _export_field_of(exc) if from_export else _field_of(exc)
        resp = _form(request, svc, user, values, modes, errors={field: explain(exc)}, status=status_of(exc))
        if exc.retry_after_s is not None:
            resp.headers["Retry-After"] = retry_after(exc.retry_after_s)
        return resp
    finally:
        del selfie  # the job holds its own reference; nothing here keeps the photo
    return redirect(f"/generations/{job_id}")


__all__ = ["CONSENT_WORDS", "FIELDS", "SPECS", "FieldSpec", "ModeChoices", "mode_choices", "mode_label", "router"]
