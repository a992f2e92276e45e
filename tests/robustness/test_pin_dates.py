"""Issue 12 item 1: pin dates. Import and upload refuse a date more than a day in the future (file and line, or
the ``pins[i]`` entry); whatever dates a stored board holds, building its profile never raises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tastemaker.boards import FUTURE_TOLERANCE, Pin, check_pinned_at
from tastemaker.taste.profile import ProfileConfig, build_profile
from tastemaker.taste.weights import WeightConfig, cap_weights, pin_weights

from ..api.conftest import Api, board_parts, demo_pins, make_settings, upload_board
from ..conftest import make_board, neon_image

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_future_dates_are_refused_but_clock_skew_is_not() -> None:
    assert check_pinned_at(NOW + timedelta(hours=20), now=NOW) == NOW + timedelta(hours=20)
    with pytest.raises(ValueError, match="in the future"):
        check_pinned_at(NOW + FUTURE_TOLERANCE + timedelta(minutes=1), now=NOW)
    with pytest.raises(ValueError, match="out of range"):
        check_pinned_at(datetime.fromisoformat("0001-01-01T00:00:00+05:00"), now=NOW)
    naive = check_pinned_at(datetime(2024, 5, 1, 12), now=NOW)
    assert naive.tzinfo is UTC and naive.hour == 12


dates = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(dates, st.integers(0, 10**6)), min_size=1, max_size=40))
def test_weights_are_finite_for_any_dates(pins: list[tuple[datetime | None, int]]) -> None:
    w = pin_weights([Pin(image=f"{i}.png", pinned_at=t, saves=s) for i, (t, s) in enumerate(pins)])
    assert np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1) < 1e-9


def test_cap_weights_never_returns_nan() -> None:
    for raw in ([0.0, 0.0], [np.nan, 1.0], [np.inf, 0.0], [1e-320, 0.0, 0.0], [-1.0, 2.0]):
        w = cap_weights(np.array(raw), WeightConfig())
        assert np.all(np.isfinite(w)) and abs(w.sum() - 1) < 1e-9, raw


@pytest.mark.parametrize("learned", [False, True], ids=["default", "learned"])
def test_a_stored_board_with_far_future_and_ancient_pins_builds(learned: bool) -> None:
    """Such a board can still exist (stored before the rule): the profile build, hand-set or learned weights
    (30+ dated pins), never raises and its weights are finite."""
    n = 32 if learned else 8
    stamps = [datetime(3024, 5, 2, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    stamps += [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=3 * i) for i in range(n - 2)]
    pins = [Pin(image=f"n{i}.png", saves=i % 4, pinned_at=t) for i, t in enumerate(stamps)]
    board = make_board("dated", [neon_image(s, 64) for s in range(n)], pins)
    profile = build_profile(board, ProfileConfig(weighting="learned" if learned else "default"))
    weights = [p.weight for p in profile.pins]
    assert all(np.isfinite(weights)) and abs(sum(weights) - 1) < 1e-3
    json.loads(profile.to_json(), parse_constant=lambda c: pytest.fail(f"{c} in the profile"))


# ----------------------------------------------------------------------------------------------- the API


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    from fastapi.testclient import TestClient

    from tastemaker.api.app import create_app

    settings = make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        yield Api(client, settings)


def test_api_refuses_a_far_future_pin(api: Api) -> None:
    pins = demo_pins()
    pins[3]["pinned_at"] = "3024-05-02T09:10:00Z"
    r = api.client.post(
        "/v1/boards", data={"name": "future", "pins": json.dumps(pins)}, files=board_parts(), headers=api.key()
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_board", r.text
    assert f"pins[3] ({pins[3]['image']}): pinned_at 3024-05-02T09:10:00+00:00 is in the future" in r.json()["message"]


def test_api_styleembed_works_on_a_stored_board_with_a_far_future_pin(api: Api) -> None:
    """A board stored before the rule (the dates written straight into the database) still serves
    /v1/styleembed: 200, not 500."""
    from sqlalchemy import update

    from tastemaker.store.sql.models import PinRecord

    headers = api.key()
    board = upload_board(api, headers)
    with api.services.store.session() as s:
        s.orm.execute(update(PinRecord).where(PinRecord.image == "cafe-morning.jpg")
                  .values(pinned_at=datetime(3024, 5, 2, 9, 10, tzinfo=UTC)))
        s.orm.execute(update(PinRecord).where(PinRecord.image == "cat-nap.jpg")
                  .values(pinned_at=datetime(1, 1, 1, tzinfo=UTC)))
        s.commit()
    r = api.client.post("/v1/styleembed", json={"board_id": board["id"]}, headers=headers)
    assert r.status_code == 200, r.text
