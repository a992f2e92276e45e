"""Issue 12, the command line: every hostile input of the corpus ends with its exit code and a clear message.

Cases that could hang, need file permissions to apply (root runs them through ``setpriv``) or a signal run in a
subprocess of their own; the others through Typer's runner in this process. Ctrl-C is in test_cli_signals.py.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastemaker.cli import app

from .corpus import CASES, Case, CaseUnavailable, Outcome, run

runner = CliRunner()
SIGNALS = {"sigint_during_render", "sigint_with_guard_workers"}


def run_in_process(case: Case) -> Outcome:
    for argv in case.before:
        res = runner.invoke(app, argv, env=case.env)
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, case.argv, env=case.env)
    output = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        output += "".join(traceback.format_exception(res.exception))
    outcome = Outcome(res.exit_code, output)
    if case.check is not None:
        outcome.problems += case.check()
    return outcome


@pytest.mark.parametrize("make", [m for m in CASES if m.__name__ not in SIGNALS], ids=lambda m: m.__name__)
def test_hostile_input(make: Callable[[Path], Case], tmp_path: Path) -> None:
    try:
        case = make(tmp_path)
    except CaseUnavailable as why:
        pytest.skip(str(why))
    case.cwd = tmp_path
    try:
        outcome = run(case) if case.subprocess_only else run_in_process(case)
    except CaseUnavailable as why:
        pytest.skip(str(why))
    assert outcome.failures(case) == [], outcome.output[-3000:]


def test_the_corpus_covers_the_cli_items(tmp_path: Path) -> None:
    """Items 1, 2, 3, 5, 6, 7, 8 and 11 of issue 12 (their CLI part) each have cases."""
    items = set()
    for make in CASES:
        d = tmp_path / make.__name__
        d.mkdir()
        try:
            items.add(make(d).item)
        except CaseUnavailable:
            continue
    assert {1, 2, 3, 5, 6, 7, 8, 11} <= items
