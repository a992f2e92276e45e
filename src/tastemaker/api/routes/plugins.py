"""``GET /v1/plugins``: the plugins this server has installed, the hooks each implements, and which run.

Which run is the server's ``plugins`` setting (``TASTEMAKER_PLUGINS``); what a raising one does is its
``plugin_errors`` setting. Any valid key may read the list (it says what the server does to outputs).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...plugins import Plugins, Selection, parse_on_error
from ..deps import CurrentAccount, ServicesDep
from .common import AUTH_ERRORS

router = APIRouter(tags=["service"], responses=AUTH_ERRORS)


class PluginOut(BaseModel):
    name: str
    hooks: list[str]
    package: str | None = None
    version: str | None = None
    builtin: bool = False
    active: bool = Field(description="whether this server runs it (its plugins setting)")
    problem: str | None = Field(None, description="why it could not be loaded, if it could not")


class PluginsOut(BaseModel):
    selection: str = Field(description="the server's plugins setting: all, none, a,b or -a")
    on_error: dict[str, str] = Field(description="per hook, what a plugin that raises does: fail or skip")
    plugins: list[PluginOut]


@router.get("/v1/plugins", response_model=PluginsOut, summary="Installed plugins, their hooks, and which run")
def list_plugins(svc: ServicesDep, principal: CurrentAccount) -> PluginsOut:
    settings = svc.settings
    selection = Selection.parse(settings.plugins)
    installed = Plugins.load("all")
    rows = [PluginOut(**info.to_dict(), active=selection.picks(info.name)) for info in installed.info()]
    rows += [PluginOut(name=name, hooks=[], active=False, problem=why)
             for name, why in sorted(installed.problems.items())]
    on_error = parse_on_error(settings.plugin_errors)
    return PluginsOut(selection=settings.plugins, on_error=dict(on_error), plugins=rows)
