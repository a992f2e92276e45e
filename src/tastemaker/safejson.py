"""JSON from strangers: bounded nesting and bounded numbers, refused with clear errors before parsing.

Python's parser recurses once per ``[``/``{`` (a few thousand levels end in ``RecursionError``) and turns
every integer literal into an ``int`` (over 4300 digits that is a ``ValueError`` — neither is a
``JSONDecodeError``, so callers that catch only that answer with a crash). Every JSON document that comes
from outside — API bodies, form fields, ``pins.jsonl`` lines — goes through :func:`loads`, which:

* measures nesting first with a scan that only looks at quotes, backslashes and brackets (base64 image
  payloads contain none, so a large body costs a regular-expression pass, not a Python loop per byte);
* refuses integer literals longer than :data:`MAX_INT_DIGITS` and ``NaN``/``Infinity``;
* raises :class:`JSONTooDeepError` (400 ``json_too_deep``), :class:`JSONNumberTooLargeError` (400
  ``json_number_too_large``) or :class:`JSONSyntaxError` (422 ``invalid_request``), all
  :class:`~tastemaker.errors.RequestError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import JSONNumberTooLargeError, JSONSyntaxError, JSONTooDeepError

#: Deepest nesting accepted. Tastemaker's own documents nest 6 levels at most.
MAX_DEPTH = 64
#: Longest integer literal accepted (a 64-bit integer has 20 digits).
MAX_INT_DIGITS = 64

_STRUCTURE = re.compile(r'["\\\[\]{}]')


def depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting in ``text`` (brackets inside strings do not count)."""
    level = deepest = 0
    in_string = False
    escaped_at = -1
    for m in _STRUCTURE.finditer(text):
        c, i = m.group(), m.start()
        if in_string:
            if i == escaped_at:
                continue  # an escaped quote or backslash
            if c == "\\":
                escaped_at = i + 1
            elif c == '"':
                in_string = False
            continue
        if c == '"':
            in_string = True
        elif c in "[{":
            level += 1
            deepest = max(deepest, level)
        elif c in "]}":
            level -= 1
    return deepest


def _bounded_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JSONNumberTooLargeError(
            f"a number in the JSON has {digits} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    return int(literal)


def _no_constants(name: str) -> Any:
    raise JSONNumberTooLargeError(f"{name} is not a JSON number; send a finite number")


def loads(data: str | bytes, *, what: str = "the body", max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as JSON within the bounds above; errors say which bound and name ``what``."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JSONSyntaxError(f"{what} is not UTF-8 text ({exc.reason})", exc.reason) from None
    else:
        text = data
    if depth(text) > max_depth:
        raise JSONTooDeepError(f"{what} is nested more than {max_depth} levels deep; flatten it")
    try:
        return json.loads(text, parse_int=_bounded_int, parse_constant=_no_constants)
    except (JSONTooDeepError, JSONNumberTooLargeError) as exc:
        exc.message = f"{what}: {exc.message}"
        raise
    except json.JSONDecodeError as exc:
        detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise JSONSyntaxError(f"{what} is not valid JSON ({detail})", detail) from None
    except (RecursionError, ValueError) as exc:  # belt and braces: never a crash on hostile input
        raise JSONSyntaxError(f"{what} is not valid JSON ({type(exc).__name__})", type(exc).__name__) from None


__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "JSONNumberTooLargeError", "JSONSyntaxError", "JSONTooDeepError", "loads"]
