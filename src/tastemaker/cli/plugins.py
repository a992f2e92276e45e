"""``tastemaker plugins``: the installed plugins (entry-point group ``tastemaker``), their hooks, and which run.

Which plugins run comes from ``TASTEMAKER_PLUGINS`` (``all`` by default, ``none``, ``a,b``, ``-a``) or from
``tastemaker --no-plugins <command>`` (a clean run); the CLI is one of the two places that read it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from ..config import load_settings
from ..plugins import Plugins, Selection
from .common import console


def plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List installed plugins, the hooks each implements, and whether it runs (TASTEMAKER_PLUGINS)."""
    settings = load_settings()
    selection = Selection.parse(settings.plugins)
    installed = Plugins.load("all")
    rows: list[dict[str, Any]] = []
    for info in installed.info():
        rows.append({**info.to_dict(), "active": selection.picks(info.name)})
    for name, why in sorted(installed.problems.items()):
        rows.append({"name": name, "hooks": [], "package": None, "version": None, "builtin": False,
                     "active": False, "problem": why})
    if as_json:
        console.print_json(json.dumps({"selection": settings.plugins, "plugins": rows}))
        return
    table = Table(title=f"Plugins (TASTEMAKER_PLUGINS={settings.plugins})")
    for col in ("name", "runs", "hooks", "from"):
        table.add_column(col)
    for r in rows:
        origin = "built in" if r["builtin"] else f"{r['package'] or '?'} {r['version'] or ''}".strip()
        runs = "[red]cannot load[/]" if r.get("problem") else ("yes" if r["active"] else "no")
        table.add_row(r["name"], runs, ", ".join(r["hooks"]) or r.get("problem", ""), origin)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``plugins`` to ``app``."""
    from .common import handle_errors

    app.command("plugins")(handle_errors(plugins))
