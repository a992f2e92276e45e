"""Property-based checks of the whole API against its own OpenAPI schema (schemathesis).

A bounded number of generated requests per operation, authenticated as a real account: no response may
be a 5xx, and every response must match the documented status codes, content types and body schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tastemaker.api.admin import issue_key  # noqa: E402
from tastemaker.api.app import create_app  # noqa: E402
from tastemaker.audit import AuditLog  # noqa: E402
from tastemaker.store import open_store  # noqa: E402

from ..robustness.conformance import positive_data_accepted  # noqa: E402
from .conftest import make_settings  # noqa: E402

MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """An app on a temp database and a key for it (issued before the app starts)."""
    settings = make_settings(Path(tmp_path_factory.mktemp("schemathesis")))
    store = open_store(settings.db_url, settings.blob_dir)
    store.upgrade()
    key = issue_key(store, AuditLog(settings.secret_key.get_secret_value()), settings, name="fuzz", tier="pro").key
    store.dispose()
    yield create_app(settings), key
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # stop the app's job runner when the module is done


@pytest.fixture(scope="module")
def api_schema(service: tuple[Any, str]) -> Any:
    app, _ = service
    return schemathesis.openapi.from_asgi("/openapi.json", app)


OPERATIONS = [
    ("POST", "/v1/boards"),
    ("GET", "/v1/boards/{board_id}"),
    ("DELETE", "/v1/boards/{board_id}"),
    ("POST", "/v1/boards/{board_id}/pins"),
    ("POST", "/v1/styleembed"),
    ("POST", "/v1/generations"),
    ("GET", "/v1/generations/{generation_id}"),
    ("GET", "/v1/generations/{generation_id}/events"),
    ("GET", "/v1/generations/{generation_id}/images/{k}"),
    ("GET", "/v1/generations/{generation_id}/images/{k}/clip"),
    ("POST", "/v1/generations/{generation_id}/cancel"),
    ("GET", "/v1/usage"),
    ("POST", "/v1/feedback"),
    ("GET", "/v1/boards/{board_id}/profile/history"),
    ("POST", "/v1/verify"),
    ("POST", "/v1/records"),
    ("GET", "/v1/search"),
    ("DELETE", "/v1/me"),
    ("GET", "/v1/plugins"),
    ("GET", "/healthz"),
]


def test_every_operation_is_covered(api_schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_conforms_to_its_schema(
    api_schema: Any, service: tuple[Any, str], method: str, path: str, mode: GenerationMode
) -> None:
    """Valid requests (positive) and requests that break the schema (negative): never a 5xx, always as
    documented, schema-breaking input refused with a 4xx, and schema-valid input accepted unless its content
    breaks a rule no schema can state (an image that does not decode: see tests/robustness/conformance.py)."""
    app, key = service
    if mode == GenerationMode.NEGATIVE and path == "/healthz":
        pytest.skip("/healthz takes no input, so no request can break its schema")
    operation = api_schema[path][method]
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              response_headers_conformance]
    if mode == GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    else:
        checks.append(positive_data_accepted)

    def key_for(case: Any) -> str:
        if path != "/v1/me":
            return key
        # deleting the account ends its keys: each DELETE /v1/me gets an account of its own
        svc = app.state.services
        return issue_key(svc.store, svc.audit, svc.settings, name="fuzz-me", tier="free").key

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {key_for(case)}"}, checks=checks)

    check()
