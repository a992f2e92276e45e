"""Connecting to a Ray cluster for the batch commands' ``--ray ADDRESS`` (profile batch builds, eval).

Ray is an optional extra (``pip install 'tastemaker[ray]'``) and a heavy import, so nothing imports this module
but the Ray runners, and this module imports Ray only inside its functions. Before ``ray.init`` the address is
tried with a plain TCP connection: Ray itself retries an address where nothing listens for ten minutes or more
before it gives up, so a mistyped port or a head that is not running would look like a hang.
"""

from __future__ import annotations

import logging
import socket
from types import ModuleType

from .errors import MissingDependencyError, RequestError

#: seconds the TCP check waits for the head's port to answer
CONNECT_TIMEOUT_S = 5.0


def require_ray(feature: str) -> ModuleType:
    """The ``ray`` module, or a :class:`MissingDependencyError` naming ``feature`` and the extra to install."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(feature, "ray", "ray") from None
    return ray


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A :class:`RequestError` unless something answers at ``address`` (``HOST:PORT``, the head's GCS port).

    Other forms Ray accepts (``auto``, ``ray://HOST:PORT``) are left to Ray.
    """
    if "://" in address or ":" not in address:
        return
    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RequestError(f"--ray {address}: not a Ray address; give the head node's HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RequestError(f"--ray {address}: cannot connect to a Ray cluster there ({reason}); is its head "
                           f"running (ray start --head) and is that its port?") from None


def connect(address: str, feature: str) -> ModuleType:
    """``ray.init(address=...)`` after the checks above; returns the ``ray`` module (``ray.shutdown()`` it).

    The driver's terminal keeps its progress bar: workers' log lines are not forwarded to it.
    """
    ray = require_ray(feature)
    check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:  # ConnectionError, ValueError for a malformed address, ...
        raise RequestError(f"--ray {address}: cannot connect to a Ray cluster there ({exc})") from None
    return ray
