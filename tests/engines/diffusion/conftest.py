"""Fixtures of the diffusion tests: the tiny engine, the demo subject, and plans for the demo profile."""

from __future__ import annotations

from typing import Any

import pytest

from tastemaker.boards import Board
from tastemaker.engines.base import GenerationRequest, Subject
from tastemaker.taste.profile import TasteProfile

from .helpers import tiny_engine


@pytest.fixture(scope="session")
def subject(selfie_path: Any) -> Subject:
    from tastemaker.pipeline import prepare_subject

    return prepare_subject([selfie_path])


@pytest.fixture(scope="session")
def engine(demo_board: Board, demo_profile: TasteProfile) -> Any:
    eng = tiny_engine()
    eng.prepare_board(demo_board, demo_profile)
    return eng


@pytest.fixture
def request_2() -> GenerationRequest:
    return GenerationRequest(n=2, size=256, aspect="1:1", seed=7)
