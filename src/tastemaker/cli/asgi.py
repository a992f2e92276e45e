"""Import strings for uvicorn's process model (``tastemaker serve --workers N``).

uvicorn starts each API process fresh (spawn) and finds the app and the HTTP protocol by import string, so
they cannot be objects built in the ``serve`` command. Each process builds its own from the environment — the
same ``TASTEMAKER_*`` settings ``serve`` checked before starting them (this is command-line code: it may read
the environment).
"""

from __future__ import annotations

from fastapi import FastAPI

from ..api.server import protocol_class
from ..api.settings import load_server_settings

_settings = load_server_settings()
#: uvicorn's HTTP protocol with the request read deadlines (see :mod:`tastemaker.api.server`)
DeadlineProtocol = protocol_class(_settings.request_header_timeout_seconds, _settings.request_body_timeout_seconds)


def create() -> FastAPI:
    """The app (API + web pages) of one API process."""
    from ..web.mount import create_site

    return create_site(load_server_settings())
