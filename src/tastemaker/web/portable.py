"""Reading a portable taste export a person uploads: one check for every page that takes one.

``/account`` opens an export to show what it holds, and ``/generate`` takes one instead of a board (its profile
goes inline as :attr:`~tastemaker.api.schemas.GenerationCreate.profile`). Both verify it the same way, with
the CLI's own :func:`~tastemaker.taste.portable.import_document`: a valid signature (this server's profile key
or another's; the page says which), or no signature only when the person ticked "Accept an unsigned file".
Nothing is stored, and the CLI's trust-on-first-use list is neither read nor changed: on a server that list is
the operator's, not any one account's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ProfileError
from ..taste.portable import TrustStore, import_document
from ..taste.profile import TasteProfile

#: an export file is a few KB to a few hundred; anything far bigger is not one
IMPORT_MAX_BYTES = 2 * 1024 * 1024
#: how import_document's refusal of an unsigned file tells a CLI user to accept it
_CLI_FLAG = "pass --allow-unsigned"


@dataclass(frozen=True)
class VerifiedExport:
    """An export that passed the check: its profile, who signed it (None: unsigned) and whether that is us."""

    name: str
    profile: TasteProfile
    signer: str | None
    own: bool


def verify_export(svc: Any, name: str, data: bytes, *, allow_unsigned: bool) -> VerifiedExport:
    """Verify an uploaded export (size, text, schema, signature, profile) or raise a ProfileError saying why.

    An unsigned file is refused unless ``allow_unsigned``; the message names the page's checkbox, not the CLI's
    flag. Blocking (signature check, JSON parse): call it from a thread, not the event loop."""
    if len(data) > IMPORT_MAX_BYTES:
        raise ProfileError(f"{name}: over {IMPORT_MAX_BYTES // 1048576} MB, too big for a taste export")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{name}: not a text file (a taste export is JSON)") from None
    try:
        profile, signer = import_document(text, allow_unsigned=allow_unsigned, name=name)
    except ProfileError as exc:  # the CLI names its flag; the pages have a checkbox (tested: the words change)
        if _CLI_FLAG not in exc.message:
            raise
        raise ProfileError(exc.message.replace(_CLI_FLAG, "tick “Accept an unsigned file”")) from exc
    own = TrustStore(svc.settings.data_dir).own_key_id()
    return VerifiedExport(name, profile, signer, signer is not None and signer == own)


def describe(profile: TasteProfile) -> list[dict[str, Any]]:
    """The modes of an imported profile as the pages list them: id, name, share, pins, colours, tags."""
    total = sum(m.weight for m in profile.modes) or 1.0
    return [
        {
            "id": m.id,
            "name": m.name,
            "share": m.weight / total,
            "n_pins": m.n_pins,
            "colors": m.look.colors[:8],
            "tags": [t for t, _ in sorted(m.tags.items(), key=lambda kv: -kv[1])[:5]],
        }
        for m in profile.modes
    ]


__all__ = ["IMPORT_MAX_BYTES", "VerifiedExport", "describe", "verify_export"]
