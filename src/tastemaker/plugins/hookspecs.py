"""The hooks a Tastemaker plugin can implement (pluggy project name and entry-point group: ``tastemaker``).

A plugin is a module (or any object) with functions decorated ``@tastemaker.plugins.hookimpl`` whose names
are the hooks below; a package makes it installable with an entry point in the ``tastemaker`` group::

    [project.entry-points.tastemaker]
    house_rules = "tastemaker_house_rules"

Each hook is called once per implementing plugin; an implementation may take any subset of the arguments.
How the results are combined (chained, collected, first wins) is said hook by hook, and what happens when
an implementation raises is the plugin manager's ``on_error`` policy (:mod:`.manager`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..boards import Board
    from ..engines.base import GenerationRequest, Subject
    from ..taste.profile import TasteProfile
    from .types import OutputView, Verdict

PROJECT = "tastemaker"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_engines(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Add engines: call ``register(name, factory)`` for each (``factory(**config)`` returns an Engine)."""


@hookspec
def register_encoders(register: Callable[[str, Callable[[], Any]], None]) -> None:
    """Add text encoders (prompt against mode text): ``register(name, factory)``; used as ``text_encoder=name``."""


@hookspec
def adjust_profile(profile: TasteProfile, board: Board | None) -> TasteProfile | None:
    """Return a changed profile (re-weighted or renamed modes, added tags: cultural context), or None.

    Chained: each plugin gets the previous plugin's result. ``board`` is None when the profile was given.
    """


@hookspec
def adjust_request(request: GenerationRequest, profile: TasteProfile) -> GenerationRequest | None:
    """Return a changed request (house rules on prompt and parameters), or None; raise :class:`~.types.Veto`
    to refuse the request with a reason the user sees. Chained like :func:`adjust_profile`."""


@hookspec
def check_output(output: OutputView, subject: Subject | None, profile: TasteProfile,
                 request: GenerationRequest) -> Verdict | None:
    """Judge one output before it is released: None or ``Verdict.ok()`` passes, ``Verdict.annotate(reason)``
    adds a note, ``Verdict.hold(reason)`` asks for the output re-rendered with the face held more,
    ``Verdict.veto(reason)`` refuses the whole request with an error the user sees (never a silent drop)."""


@hookspec
def describe_output(output: OutputView, subject: Subject | None, profile: TasteProfile,
                    request: GenerationRequest) -> str | None:
    """Text for an output (its ``alt_text``). The first non-empty answer wins: plugins installed after the
    built-in one are called first, so a third-party description replaces the built-in."""
