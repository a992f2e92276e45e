"""A real third-party plugin package, installed the way pip would leave it: a module plus a ``.dist-info``
folder whose ``entry_points.txt`` declares it in the ``tastemaker`` group, on ``sys.path`` (``importlib.metadata``
finds it exactly as it finds a pip-installed one; no pip run, nothing left in the venv)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

#: The plugin: every hook, each behaviour switched on by the request's seed (or, for adjust_request, a prompt
#: word), so the CLI and the API drive it with nothing but a request (a seed, unlike a prompt, loads no text
#: model). VETO, CRASH, HOLD and DESCRIBE are the seeds.
HOUSE_RULES = '''
"""House rules: a test plugin that implements every Tastemaker hook."""

from tastemaker.engines import create_engine
from tastemaker.encoders.text import LexicalTextEncoder
from tastemaker.plugins import Verdict, Veto, hookimpl

VETO, CRASH, HOLD, DESCRIBE = 1301, 1302, 1303, 1304


class HouseWords(LexicalTextEncoder):
    name = "house_words"


def house_look(**config):
    engine = create_engine("look", **config)
    engine.name = "house_look"
    return engine


@hookimpl
def register_engines(register):
    register("house_look", house_look)


@hookimpl
def register_encoders(register):
    register("house_words", HouseWords)


@hookimpl
def adjust_profile(profile):
    modes = [m.model_copy(update={"name": "house " + m.name, "tags": {**m.tags, "house": 1.0}})
             for m in profile.modes]
    return profile.model_copy(update={"modes": modes})


@hookimpl
def adjust_request(request):
    if "forbidden" in request.prompt:
        raise Veto("the word 'forbidden' is against house rules")
    if request.strength > 0.7:
        return request.model_copy(update={"strength": 0.7})
    return None


@hookimpl
def check_output(output, request):
    if request.seed == CRASH:
        raise RuntimeError("house rules crashed")
    if request.seed == VETO:
        return Verdict.veto("no outputs on veto days")
    if request.seed == HOLD and output.hold < 0.6:
        return Verdict.hold("house rules want the face held", hold_seen=output.hold)
    return Verdict.annotate("checked by house rules", mode=output.mode.id, mode_name=output.mode.name,
                            strength=request.strength)


@hookimpl
def describe_output(output, request):
    if request.seed == DESCRIBE:
        return f"House description of variation {output.index}."
    return None
'''

VETO, CRASH, HOLD, DESCRIBE = 1301, 1302, 1303, 1304

BROKEN = '''
raise ImportError("this plugin needs a package that is not installed")
'''


def install(root: Path, dist: str, module: str, source: str, entry: str | None = None) -> None:
    """Write ``module.py`` and ``<dist>-0.1.dist-info`` (METADATA, entry_points.txt) under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tastemaker]\n{entry or module} = {module}\n")
    (info / "RECORD").write_text("")


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding the house-rules plugin package (and a broken one)."""
    root = tmp_path_factory.mktemp("site")
    install(root, "tastemaker-house-rules", "tm_house_rules", HOUSE_RULES, entry="house_rules")
    install(root, "tastemaker-broken", "tm_broken_plugin", BROKEN, entry="broken")
    return root


@pytest.fixture
def installed(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin packages installed for this test (on sys.path; PYTHONPATH for subprocesses)."""
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setenv("PYTHONPATH", str(plugin_site))
    yield plugin_site
    for name in ("tm_house_rules", "tm_broken_plugin"):
        sys.modules.pop(name, None)
