"""The ``tastemaker`` command line (Typer + rich): the root app, its command groups, and ``main``.

Errors are translated at this edge and only here (:func:`.common.handle_errors`): a
:class:`~tastemaker.errors.TastemakerError` prints ``ErrorName: message`` on stderr and exits with the error's
``exit_code``; nothing prints a traceback for bad input. Every numeric option must be finite and in its range
(exit 2 otherwise). Ctrl-C prints one line and exits 130 (see :mod:`tastemaker._interrupt`).

One module per command group (:mod:`.generate`, :mod:`.taste`, :mod:`.eval`, :mod:`.diffusion`,
:mod:`.serve`, :mod:`.worker`, :mod:`.discover`), each with a ``register(app)``; this module imports them all and
nothing imports it back.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .. import _interrupt
from .._version import __version__
from . import catalogue, diffusion, discover, generate, serve, taste, worker
from . import eval as eval_commands
from . import plugins as plugin_commands
from .common import console

app = typer.Typer(
    name="tastemaker",
    help="A selfie + your board -> you, in your aesthetic. Offline, on your machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"tastemaker {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    no_plugins: Annotated[
        bool, typer.Option("--no-plugins", help="Run without any plugin (built-in guardrails included).")
    ] = False,
) -> None:
    """Tastemaker: learn a portable taste profile from a board and draw you in it."""
    if no_plugins:  # the settings every command loads read it (TASTEMAKER_PLUGINS)
        os.environ["TASTEMAKER_PLUGINS"] = "none"


for group in (generate, taste, eval_commands, diffusion, serve, worker, discover, plugin_commands, catalogue):
    group.register(app)


def main() -> None:
    """Console-script entry point: the app, with Ctrl-C handled once (one line, exit 130, no finalisation
    under running threads; see :mod:`tastemaker._interrupt`)."""
    _interrupt.install()
    try:
        app()
    except BaseException:
        if _interrupt.interrupted():  # whatever ended the command after Ctrl-C (a cancelled task...) ends quietly
            _interrupt.exit_now()
        raise
    if _interrupt.interrupted():
        _interrupt.exit_now()


if __name__ == "__main__":  # pragma: no cover
    main()
