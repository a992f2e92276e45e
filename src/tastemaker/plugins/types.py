"""What plugins receive and return: the output under judgement, a check's verdict, a refusal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import OutputVetoedError

if TYPE_CHECKING:
    from ..engines.base import VariationPlan
    from ..taste.profile import Mode

VerdictKind = Literal["pass", "annotate", "hold", "veto"]


@dataclass(frozen=True)
class Verdict:
    """A check's answer about one output; ``data`` (JSON-safe) goes into the output's record under the plugin's
    name, whatever the kind, so measurements are reported even when the output passes."""

    kind: VerdictKind = "pass"
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **data: Any) -> Verdict:
        return cls("pass", "", data)

    @classmethod
    def annotate(cls, reason: str, **data: Any) -> Verdict:
        return cls("annotate", reason, data)

    @classmethod
    def hold(cls, reason: str, **data: Any) -> Verdict:
        return cls("hold", reason, data)

    @classmethod
    def veto(cls, reason: str, **data: Any) -> Verdict:
        return cls("veto", reason, data)


class Veto(OutputVetoedError):
    """Raised by an ``adjust_request`` implementation to refuse a request; the message is the user's."""


@dataclass(frozen=True)
class OutputView:
    """One rendered output as checks and describers see it: the released (watermarked) pixels and how they
    were made. ``info`` is a copy; plugins report through their verdict, not by editing it."""

    pixels: np.ndarray
    index: int
    mode: Mode
    plan: VariationPlan
    hold: float
    face_box: tuple[int, int, int, int] | None
    info: dict[str, Any]

    @property
    def background(self) -> str:
        return self.plan.background

    @property
    def framing(self) -> str:
        return self.plan.framing


__all__ = ["OutputView", "Verdict", "VerdictKind", "Veto"]
