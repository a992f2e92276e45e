"""What a clip request may ask for, checked once for the CLI and the API alike (errors name the field)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RequestError

MIN_SECONDS, MAX_SECONDS = 1.0, 6.0
FPS_CHOICES = (24, 30)
FORMATS = ("mp4", "webm", "gif")
MEDIA_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}
#: the largest frame: 1080p either way round (long side, short side)
MAX_LONG, MAX_SHORT = 1920, 1080
#: a GIF is drawn at most this long on its long side (a palette file of 1080p frames with grain would be huge)
GIF_MAX_LONG = 640
#: a GIF larger than this is made again smaller (down to GIF_MIN_LONG), then refused
GIF_MAX_BYTES = 20 * 1024 * 1024
GIF_MIN_LONG = 256
#: the largest clip file ``verify`` reads (6 s of 1080p H.264 with grain stays well under it)
CLIP_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ClipOptions:
    """A clip of ``seconds`` (1-6) at ``fps`` (24 or 30) in ``format`` (mp4, webm or gif)."""

    seconds: float
    fps: int = 24
    format: str = "mp4"

    @classmethod
    def create(cls, seconds: float | None, fps: int | None = None, fmt: str | None = None, *,
               prefix: str = "") -> ClipOptions | None:
        """Loose input (CLI flags, API fields) to options, or None when no clip was asked for.

        ``prefix`` is how the caller names its fields (``--`` for the CLI): errors say e.g. ``--clip: ...``.
        """
        sep = "-" if prefix else "_"
        names = {"seconds": f"{prefix}clip", "fps": f"{prefix}fps", "format": f"{prefix}clip{sep}format"}
        if seconds is None:
            given = [names[k] for k, v in (("fps", fps), ("format", fmt)) if v is not None]
            if given:
                raise RequestError(f"{' and '.join(given)}: only apply to a clip; add {names['seconds']} SECONDS (1-6)")
            return None
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            raise RequestError(f"{names['seconds']}: must be a number of seconds, 1 to 6, got {seconds!r}") from None
        if not MIN_SECONDS <= value <= MAX_SECONDS:  # also refuses NaN
            raise RequestError(
                f"{names['seconds']}: a clip lasts 1 to 6 seconds, got {seconds!r} (longer clips are not offered: the "
                "motion is a gentle camera move over one picture, and it would only repeat)"
            )
        rate = 24 if fps is None else fps
        if isinstance(rate, bool) or rate not in FPS_CHOICES:
            raise RequestError(f"{names['fps']}: must be 24 or 30, got {fps!r}")
        kind = "mp4" if fmt is None else str(fmt).strip().lower().lstrip(".")
        if kind not in FORMATS:
            raise RequestError(f"{names['format']}: must be mp4, webm or gif, got {fmt!r}")
        return cls(seconds=value, fps=int(rate), format=kind)

    def to_dict(self) -> dict[str, float | int | str]:
        """The options as a job's stored request holds them (``clip``)."""
        return {"seconds": self.seconds, "fps": self.fps, "format": self.format}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ClipOptions:
        """Options back from :meth:`to_dict` (checked again)."""
        made = cls.create(doc.get("seconds"), doc.get("fps"), doc.get("format"))
        assert made is not None
        return made

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]

    @property
    def suffix(self) -> str:
        return "." + self.format


def clip_size(width: int, height: int, fmt: str) -> tuple[int, int]:
    """The frame size for an output of ``width`` x ``height``: its own, within 1080p (GIF: 640 px), even sides."""
    long_cap = GIF_MAX_LONG if fmt == "gif" else MAX_LONG
    short_cap = GIF_MAX_LONG if fmt == "gif" else MAX_SHORT
    f = min(1.0, long_cap / max(width, height), short_cap / min(width, height))
    w, h = max(2, int(width * f)), max(2, int(height * f))
    return w - w % 2, h - h % 2
