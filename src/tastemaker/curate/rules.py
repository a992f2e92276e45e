"""Consent rules: what may be exported, per account, board or source — read from YAML, strictly.

::

    version: 1
    default: exclude            # images no rule matches: exclude (the default) or include
    rules:                      # the first rule that matches an image decides
      - match: {board: impressionism}
        allow: true
        basis: "public domain (see SOURCES.md)"   # recorded per image as its consent basis
        licence: CC0-1.0
      - match: {account: alice, source: "instagram.com*"}
        allow: false
        reason: "Instagram's terms do not allow it"
      - match: {board: "portraits-*"}
        allow: true
        basis: "model release on file, 2024-05"
        faces_consented: true   # the people shown agreed: images with faces may be exported

``match`` keys (all given must match; each a shell-style pattern, ``*`` and ``?``): ``account``, ``board``,
``source`` (the pin's ``source`` or a product's brand), ``kind`` (``pin`` or ``product``), ``path`` (the
image's path as given) and ``id`` (the product id, or the pin's file name). An empty ``match`` matches every
image. A key this format does not know — anywhere — is an error naming the file and line, as is a value of the
wrong type: a typo such as ``alow: true`` must not silently export nothing (or everything).

Whatever the rules say, an image whose C2PA manifest says ``notAllowed`` for training or data mining is not
exported, and an image with a face is not exported unless its rule has ``faces_consented: true``.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import ConsentRulesError
from ..media import read_bounded

MATCH_KEYS = ("account", "board", "source", "kind", "path", "id")
RULE_KEYS = ("match", "allow", "basis", "licence", "faces_consented", "reason")
TOP_KEYS = ("version", "default", "rules")
MAX_RULES_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Rule:
    """One rule: where it matches and what it decides."""

    match: dict[str, str]
    allow: bool
    basis: str = ""
    licence: str = ""
    faces_consented: bool = False
    reason: str = ""
    line: int = 0  #: where it starts in the rules file (0 for rules not read from one)

    def matches(self, facts: dict[str, str]) -> bool:
        return all(fnmatch.fnmatchcase(facts.get(k, ""), pattern) for k, pattern in self.match.items())

    def describe(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.match.items()) or "every image"
        return f"rule at line {self.line} ({where})" if self.line else f"rule ({where})"


@dataclass(frozen=True)
class ConsentRules:
    """A parsed rules file (or the built-in default: nothing is exported without a rule that allows it)."""

    rules: tuple[Rule, ...] = ()
    default: Literal["exclude", "include"] = "exclude"
    source: str = ""  #: the file's path, "" for the built-in default
    sha256: str = ""  #: of the file's bytes

    def decide(self, facts: dict[str, str]) -> tuple[Rule | None, bool, str]:
        """``(rule, allowed, reason)`` for an image described by ``facts`` (the :data:`MATCH_KEYS`)."""
        for rule in self.rules:
            if rule.matches(facts):
                if rule.allow:
                    return rule, True, f"allowed by the {rule.describe()}" + (f": {rule.basis}" if rule.basis else "")
                why = rule.reason or "the rule does not allow export"
                return rule, False, f"excluded by the {rule.describe()}: {why}"
        if self.default == "include":
            return None, True, "no rule matched; the rules' default is include"
        return None, False, "no rule matched; without a rule that allows it nothing is exported (default: exclude)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "default": self.default,
            "rules": [{"line": r.line, "match": r.match, "allow": r.allow, "basis": r.basis, "licence": r.licence,
                       "faces_consented": r.faces_consented, "reason": r.reason} for r in self.rules],
        }


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _scalar(node: Any, path: Path, what: str, kind: type) -> Any:
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise ConsentRulesError(path, _line(node), f"{what} must be a {kind.__name__}, got a "
                                                   f"{'list' if isinstance(node, yaml.SequenceNode) else 'mapping'}")
    value = yaml.safe_load(yaml.serialize(node))
    if kind is str:
        if value is None or isinstance(value, bool | list | dict):
            raise ConsentRulesError(path, _line(node), f"{what} must be text, got {node.value!r}")
        return str(value)
    if kind is bool and not isinstance(value, bool):
        raise ConsentRulesError(path, _line(node), f"{what} must be true or false, got {node.value!r}")
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConsentRulesError(path, _line(node), f"{what} must be a whole number, got {node.value!r}")
    return value


def _mapping(node: Any, path: Path, what: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise ConsentRulesError(path, _line(node), f"{what} must be a mapping (key: value)")
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        if key not in allowed:
            raise ConsentRulesError(path, _line(key_node), f"unknown key {key!r} in {what}; the keys are "
                                                           f"{', '.join(allowed)}")
        if key in out:
            raise ConsentRulesError(path, _line(key_node), f"{key!r} is given twice in {what}")
        out[key] = value_node
    return out


def parse_rules(text: str, path: Path | str = "rules.yaml") -> ConsentRules:
    """Parse rules text; every problem is a :class:`ConsentRulesError` naming the file and line."""
    import yaml

    p = Path(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConsentRulesError(p, line, f"not valid YAML ({exc.problem})") from None
    except yaml.YAMLError as exc:
        raise ConsentRulesError(p, None, f"not valid YAML ({exc})") from None
    if root is None:
        raise ConsentRulesError(p, None, "the file is empty; it needs at least 'rules:'")
    top = _mapping(root, p, "the rules file", TOP_KEYS)
    if "version" in top and _scalar(top["version"], p, "version", int) != 1:
        raise ConsentRulesError(p, _line(top["version"]), "version must be 1")
    default = "exclude"
    if "default" in top:
        default = _scalar(top["default"], p, "default", str)
        if default not in ("exclude", "include"):
            raise ConsentRulesError(p, _line(top["default"]), f"default must be exclude or include, got {default!r}")
    if "rules" not in top:
        raise ConsentRulesError(p, _line(root), "missing 'rules:' (a list of rules)")
    seq = top["rules"]
    if not isinstance(seq, yaml.SequenceNode):
        raise ConsentRulesError(p, _line(seq), "'rules' must be a list (each item starting with '- ')")
    rules = []
    for n, node in enumerate(seq.value, start=1):
        fields = _mapping(node, p, f"rule {n}", RULE_KEYS)
        if "allow" not in fields:
            raise ConsentRulesError(p, _line(node), f"rule {n} has no 'allow: true|false'")
        match: dict[str, str] = {}
        if "match" in fields:
            mnode = fields["match"]
            if not (isinstance(mnode, yaml.ScalarNode) and mnode.value in ("", "~", "null")):
                for key, value in _mapping(mnode, p, f"rule {n}'s match", MATCH_KEYS).items():
                    match[key] = _scalar(value, p, f"rule {n}'s match.{key}", str)
        rules.append(Rule(
            match=match,
            allow=_scalar(fields["allow"], p, f"rule {n}'s allow", bool),
            basis=_scalar(fields["basis"], p, f"rule {n}'s basis", str) if "basis" in fields else "",
            licence=_scalar(fields["licence"], p, f"rule {n}'s licence", str) if "licence" in fields else "",
            faces_consented=(_scalar(fields["faces_consented"], p, f"rule {n}'s faces_consented", bool)
                             if "faces_consented" in fields else False),
            reason=_scalar(fields["reason"], p, f"rule {n}'s reason", str) if "reason" in fields else "",
            line=_line(node),
        ))
    return ConsentRules(tuple(rules), "include" if default == "include" else "exclude", str(p),
                        hashlib.sha256(text.encode()).hexdigest())


def load_rules(path: Path | str) -> ConsentRules:
    """Read and parse a rules file (a regular UTF-8 file of at most 1 MB)."""
    try:
        import yaml  # noqa: F401
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("consent rules files", "curate", "pyyaml") from None
    p = Path(path)
    data = read_bounded(p, MAX_RULES_BYTES, lambda m: ConsentRulesError(p, None, m), name="the rules file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConsentRulesError(p, None, f"not UTF-8 text ({exc.reason})") from None
    return parse_rules(text, p)
