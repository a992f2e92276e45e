"""Plugins: extend the taste pipeline without forking it (pluggy hooks, entry-point group ``tastemaker``).

Write a module with ``@hookimpl`` functions named after the hooks in :mod:`.hookspecs` (``register_engines``,
``register_encoders``, ``adjust_profile``, ``adjust_request``, ``check_output``, ``describe_output``) and
declare it in your package's ``pyproject.toml``::

    [project.entry-points.tastemaker]
    my_plugin = "my_package.my_plugin"

:class:`Plugins` (:mod:`.manager`) chooses which installed plugins run and contains their errors. The
built-in guardrails (:mod:`.builtin`) are entry points of this package, loaded the same way.
"""

from .hookspecs import PROJECT, hookimpl, hookspec
from .manager import ALL, DEFAULT_ON_ERROR, HOOKS, NONE, PluginInfo, Plugins, Selection, parse_on_error
from .types import OutputView, Verdict, Veto

__all__ = [
    "ALL",
    "DEFAULT_ON_ERROR",
    "HOOKS",
    "NONE",
    "PROJECT",
    "OutputView",
    "PluginInfo",
    "Plugins",
    "Selection",
    "Verdict",
    "Veto",
    "hookimpl",
    "hookspec",
    "parse_on_error",
]
