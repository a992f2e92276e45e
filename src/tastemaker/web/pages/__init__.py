"""The web app's pages, one module per section; :data:`ROUTERS` is what :func:`tastemaker.web.mount.create_site`
includes, in this order."""

from __future__ import annotations

from fastapi import APIRouter

from . import account, auth, boards, gallery, generate, jobs, verify

ROUTERS: tuple[APIRouter, ...] = (auth.router, boards.router, generate.router, jobs.router, gallery.router,
                                  verify.router, account.router)

__all__ = ["ROUTERS"]
