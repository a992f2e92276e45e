"""The API fixtures, for the search route's tests."""

from ..api.conftest import make_api  # noqa: F401 (a fixture)
