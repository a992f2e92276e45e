"""Which plugins run, and how their hooks are called with every failure contained and named.

:class:`Plugins` wraps a :class:`pluggy.PluginManager`. It loads the ``tastemaker`` entry points that a
:class:`Selection` picks (the built-ins are entry points of this package, loaded like any other), and calls
each implementation on its own so that a plugin that raises is reported by name: per hook, the ``on_error``
policy either fails the request (:class:`~tastemaker.errors.PluginError`, "fail") or skips that plugin with
a warning ("skip"). Guardrail hooks (``check_output``, ``adjust_request``) fail closed by default.

Library code never reads the environment: callers pass the selection (the CLI reads ``TASTEMAKER_PLUGINS``
and ``--no-plugins``, the server its settings) as text to :meth:`Selection.parse` or as a Selection.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import pluggy

from ..errors import OutputVetoedError, PluginError, RequestError
from . import hookspecs

log = logging.getLogger("tastemaker.plugins")

OnError = Literal["fail", "skip"]
HOOKS = ("register_engines", "register_encoders", "adjust_profile", "adjust_request", "check_output",
         "describe_output")
#: what a raising implementation does to the request, per hook (guardrails fail closed)
DEFAULT_ON_ERROR: dict[str, OnError] = {
    "register_engines": "skip", "register_encoders": "skip", "adjust_profile": "skip",
    "adjust_request": "fail", "check_output": "fail", "describe_output": "skip",
}


@dataclass(frozen=True)
class Selection:
    """Which installed plugins run: ``include`` None means all of them, minus ``exclude``."""

    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | Sequence[str] | None) -> Selection:
        """``all`` (or empty/None), ``none``, ``a,b`` (only these), ``-a`` or ``all,-a`` (all but these)."""
        parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else (text or ())) if p.strip()]
        if not parts or parts == ["all"]:
            return cls()
        if parts == ["none"]:
            return cls(include=frozenset())
        if "none" in parts:
            raise RequestError(f"plugins: 'none' cannot be combined with names (got {','.join(parts)!r})")
        exclude = frozenset(p[1:] for p in parts if p.startswith("-"))
        names = [p for p in parts if not p.startswith("-") and p != "all"]
        include = None if "all" in parts or not names else frozenset(names)
        return cls(include=include, exclude=exclude)

    def picks(self, name: str) -> bool:
        return name not in self.exclude and (self.include is None or name in self.include)


ALL = Selection()
NONE = Selection(include=frozenset())


def parse_on_error(text: str | Mapping[str, str] | None) -> dict[str, OnError]:
    """The policy per hook from ``fail``, ``skip`` or ``hook=fail,hook=skip`` (others keep their defaults)."""
    policy = dict(DEFAULT_ON_ERROR)
    if not text:
        return policy
    items = text.items() if isinstance(text, Mapping) else (
        (p.split("=", 1) if "=" in p else ("*", p)) for p in (s.strip() for s in text.split(",")) if p)
    for hook, value in items:
        hook, value = hook.strip(), value.strip()
        if value not in ("fail", "skip"):
            raise RequestError(f"plugin errors: {value!r} for {hook} is neither 'fail' nor 'skip'")
        if hook == "*":
            policy = dict.fromkeys(HOOKS, value)  # type: ignore[arg-type]
        elif hook in HOOKS:
            policy[hook] = value  # type: ignore[assignment]
        else:
            raise RequestError(f"plugin errors: unknown hook {hook!r}; hooks: {', '.join(HOOKS)}")
    return policy


@dataclass
class PluginInfo:
    """What ``tastemaker plugins`` and ``/v1/plugins`` show of one plugin."""

    name: str
    hooks: list[str]
    package: str | None = None
    version: str | None = None
    builtin: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hooks": self.hooks, "package": self.package, "version": self.version,
                "builtin": self.builtin}


@dataclass
class Plugins:
    """The plugins of one deployment (see the module docstring). Build with :meth:`load` or :meth:`none`."""

    pm: pluggy.PluginManager
    on_error: dict[str, OnError] = field(default_factory=lambda: dict(DEFAULT_ON_ERROR))
    #: installed plugins that could not be loaded, and why (shown by ``tastemaker plugins``)
    problems: dict[str, str] = field(default_factory=dict)
    _dists: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)

    @classmethod
    def none(cls) -> Plugins:
        """No plugins at all: a clean run."""
        return cls.load(NONE)

    @classmethod
    def load(cls, selection: Selection | str | Sequence[str] | None = None, *,
             on_error: str | Mapping[str, str] | None = None, extra: Iterable[tuple[str, object]] = ()) -> Plugins:
        """The ``tastemaker`` entry points ``selection`` picks (default: all installed), plus ``extra``
        ``(name, module_or_object)`` pairs, always registered (tests, programs that embed Tastemaker).

        A plugin named explicitly that cannot be imported is an error; with ``all`` it is skipped and kept in
        :attr:`problems`."""
        sel = selection if isinstance(selection, Selection) else Selection.parse(selection)
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        plugins = cls(pm, parse_on_error(on_error))
        for ep in _entry_points():
            if not sel.picks(ep.name) or pm.has_plugin(ep.name):
                continue
            try:
                plugins.register(ep.load(), ep.name)
            except Exception as exc:  # noqa: BLE001 - any import error of someone else's package
                why = f"{type(exc).__name__}: {exc}"
                if sel.include is not None:
                    raise PluginError(f"plugin {ep.name!r} could not be loaded ({why})") from exc
                plugins.problems[ep.name] = why
                log.warning("plugin %s could not be loaded: %s", ep.name, why)
                continue
            dist = getattr(ep, "dist", None)
            plugins._dists[ep.name] = (dist.name if dist else None, dist.version if dist else None)
        for name, obj in extra:  # given by the program itself: the selection is about installed ones
            plugins.register(obj, name)
        missing = sorted(n for n in (sel.include or ()) if not pm.has_plugin(n))
        if missing:
            known = sorted({ep.name for ep in _entry_points()} | {n for n, _ in pm.list_name_plugin()})
            raise RequestError(f"unknown plugin(s) {', '.join(missing)}; installed: {', '.join(known) or 'none'}")
        return plugins

    def register(self, plugin: object, name: str) -> None:
        """Add one plugin (a module or object with ``@hookimpl`` functions) under ``name``."""
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()  # a misspelt hook is an error now, not a hook that silently never runs
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            raise PluginError(f"plugin {name!r}: {exc}; hooks: {', '.join(HOOKS)}") from exc

    # ------------------------------------------------------------------ what is installed
    def names(self) -> list[str]:
        return sorted(n for n, _ in self.pm.list_name_plugin())

    def info(self) -> list[PluginInfo]:
        """Every loaded plugin with the hooks it implements."""
        out = []
        for name, plugin in sorted(self.pm.list_name_plugin()):
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            package, version = self._dists.get(name, (None, None))
            out.append(PluginInfo(name, hooks, package, version, builtin=package == "tastemaker"))
        return out

    # ------------------------------------------------------------------ calling hooks
    def calls(self, hook: str, notes: list[str] | None = None, **kwargs: Any) -> list[tuple[str, Any]]:
        """``(plugin name, result)`` of every implementation of ``hook`` (pluggy's order: last registered
        first), None results left out. A raising one fails the request or, by policy, is skipped with a
        warning appended to ``notes``. A :class:`~tastemaker.errors.OutputVetoedError` is never contained."""
        out = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            ok, result = self._invoke(hook, impl, {k: kwargs[k] for k in impl.argnames}, notes)
            if ok and result is not None:
                out.append((impl.plugin_name, result))
        return out

    def chain(self, hook: str, key: str, value: Any, notes: list[str] | None = None, **kwargs: Any) -> Any:
        """Pass ``value`` (argument ``key``) through every implementation in turn; each may return a new one."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            args = {k: (value if k == key else kwargs[k]) for k in impl.argnames}
            ok, result = self._invoke(hook, impl, args, notes)
            if ok and result is not None:
                value = result
        return value

    def _invoke(self, hook: str, impl: Any, args: dict[str, Any], notes: list[str] | None) -> tuple[bool, Any]:
        """(ran, its result) of one implementation: a veto goes up named, any other error is contained by
        policy (:meth:`_failed` raises or notes it)."""
        try:
            return True, impl.function(**args)
        except OutputVetoedError as exc:
            if impl.plugin_name not in exc.message:
                exc.message = f"refused by plugin {impl.plugin_name!r}: {exc.message}"
                exc.args = (exc.message,)
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's bug, contained and named
            self._failed(hook, impl.plugin_name, exc, notes)
            return False, None

    def register_engines(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        """Let plugins add engines to the engine registry."""
        self.calls("register_engines", register=register)

    def register_encoders(self, register: Callable[[str, Callable[[], Any]], None]) -> None:
        """Let plugins add text encoders to the encoder registry."""
        self.calls("register_encoders", register=register)

    def _failed(self, hook: str, name: str, exc: Exception, notes: list[str] | None) -> None:
        why = f"{type(exc).__name__}: {exc}"
        if self.on_error.get(hook, "fail") == "fail":
            raise PluginError(f"plugin {name!r} failed in {hook} ({why}); the request was stopped "
                              "(plugin errors fail closed for this hook)") from exc
        note = f"plugin {name!r} skipped in {hook}: {why}"
        log.warning(note)
        if notes is not None:
            notes.append(note)


_EP_LOCK = threading.Lock()


def _entry_points() -> list[EntryPoint]:
    with _EP_LOCK:
        return sorted(entry_points(group=hookspecs.PROJECT), key=lambda ep: ep.name)


__all__ = ["ALL", "DEFAULT_ON_ERROR", "HOOKS", "NONE", "OnError", "PluginInfo", "Plugins", "Selection",
           "parse_on_error"]
