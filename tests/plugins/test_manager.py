"""Choosing plugins, loading them from entry points, and containing their errors (no rendering)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tastemaker.errors import OutputVetoedError, PluginError, RequestError
from tastemaker.plugins import DEFAULT_ON_ERROR, Plugins, Selection, Veto, hookimpl, parse_on_error

BUILTINS = {"alt_text", "contrast", "skin_tone"}


@pytest.mark.parametrize(("text", "include", "exclude"), [
    (None, None, set()), ("", None, set()), ("all", None, set()), ("none", set(), set()),
    ("a, b", {"a", "b"}, set()), ("-a", None, {"a"}), ("all,-a,-b", None, {"a", "b"}),
])
def test_selection_parse(text: str | None, include: set[str] | None, exclude: set[str]) -> None:
    sel = Selection.parse(text)
    assert (None if sel.include is None else set(sel.include)) == include and set(sel.exclude) == exclude


def test_selection_refuses_none_with_names() -> None:
    with pytest.raises(RequestError, match="none"):
        Selection.parse("none,skin_tone")


def test_on_error_policy() -> None:
    assert parse_on_error("") == DEFAULT_ON_ERROR
    assert DEFAULT_ON_ERROR["check_output"] == "fail" and DEFAULT_ON_ERROR["describe_output"] == "skip"
    assert set(parse_on_error("skip").values()) == {"skip"}
    assert parse_on_error("check_output=skip")["check_output"] == "skip"
    with pytest.raises(RequestError, match="unknown hook"):
        parse_on_error("check_outptu=skip")
    with pytest.raises(RequestError, match="neither"):
        parse_on_error("check_output=maybe")


def test_builtins_are_entry_points_like_any_other() -> None:
    info = {i.name: i for i in Plugins.load().info()}
    assert BUILTINS <= set(info)
    assert info["skin_tone"].hooks == ["check_output"] and info["alt_text"].hooks == ["describe_output"]
    assert all(info[n].builtin and info[n].package == "tastemaker" for n in BUILTINS)
    assert Plugins.none().names() == []
    assert "skin_tone" not in Plugins.load("-skin_tone").names()


def test_an_installed_package_is_found_by_its_entry_point(installed: Path) -> None:
    plugins = Plugins.load()
    info = {i.name: i for i in plugins.info()}
    assert info["house_rules"].package == "tastemaker-house-rules" and info["house_rules"].version == "0.1"
    assert not info["house_rules"].builtin
    assert info["house_rules"].hooks == ["adjust_profile", "adjust_request", "check_output", "describe_output",
                                         "register_encoders", "register_engines"]
    # a package that cannot be imported is reported, not fatal, when all plugins were asked for...
    assert "broken" in plugins.problems and "not installed" in plugins.problems["broken"]
    # ...and an error when it was named
    with pytest.raises(PluginError, match="'broken' could not be loaded"):
        Plugins.load("broken")
    assert Plugins.load("house_rules").names() == ["house_rules"]
    with pytest.raises(RequestError, match="unknown plugin"):
        Plugins.load("house_rulez")


def test_a_misspelt_hook_is_refused() -> None:
    bad = SimpleNamespace(check_outputs=hookimpl(lambda output: None))
    with pytest.raises(PluginError, match="check_outputs"):
        Plugins.none().register(bad, "typo")


def _raising(hook: str) -> object:
    def fn(output: object) -> None:
        raise ValueError("boom")

    fn.__name__ = hook
    return SimpleNamespace(**{hook: hookimpl(fn)})


def test_a_raising_plugin_fails_closed_or_is_skipped_by_setting() -> None:
    plugins = Plugins.none()
    plugins.register(_raising("check_output"), "faulty")
    with pytest.raises(PluginError, match="plugin 'faulty' failed in check_output.*ValueError: boom"):
        plugins.calls("check_output", output=None, subject=None, profile=None, request=None)
    skipping = Plugins.load("none", on_error="check_output=skip")
    skipping.register(_raising("check_output"), "faulty")
    notes: list[str] = []
    assert skipping.calls("check_output", notes, output=None, subject=None, profile=None, request=None) == []
    assert notes == ["plugin 'faulty' skipped in check_output: ValueError: boom"]


def test_a_veto_is_never_contained() -> None:
    def adjust_request(request: object) -> None:
        raise Veto("not here")

    plugins = Plugins.load("none", on_error="skip")
    plugins.register(SimpleNamespace(adjust_request=hookimpl(adjust_request)), "rules")
    with pytest.raises(OutputVetoedError, match="refused by plugin 'rules': not here"):
        plugins.chain("adjust_request", "request", object(), profile=None)


def test_a_program_passes_its_own_plugins_whatever_the_selection() -> None:
    def describe_output(output: object) -> str:
        return "mine"

    plugins = Plugins.load("none", extra=[("mine", SimpleNamespace(describe_output=hookimpl(describe_output)))])
    assert plugins.names() == ["mine"]
    assert plugins.calls("describe_output", output=None, subject=None, profile=None, request=None) == [("mine", "mine")]
