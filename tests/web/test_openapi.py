"""schemathesis against the OpenAPI description: generated requests, as an admin, never crash the
server, and every response matches what the description promises (status codes, schemas)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from tests.web.conftest import Server, make_server

ENDLESS = {"/api/stream"}  # a stream that never ends by itself; tests/web/test_stream.py reads it


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from make_server(tmp_path_factory.mktemp("openapi"))


def test_the_api_keeps_its_description(site: Server) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", site.app)
    tried = []
    for found in schema.get_all_operations():
        operation = found.ok()
        if operation.path in ENDLESS:
            continue
        tried.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            if case.path == "/api/tasks" and isinstance(case.body, dict):
                # "example" is the one registered repository: a generated task must not run.
                assume(case.body.get("repo") != "example")
            response = case.call_and_validate(
                headers=site.auth("admin"),
                # Requests for records that do not exist are 404 whatever their body; these
                # checks expect every schema-valid request to succeed.
                excluded_checks=[
                    positive_data_acceptance,
                    negative_data_rejection,
                    unsupported_method,
                ],
            )
            assert "Traceback" not in response.text

        check()
    assert len(tried) >= 20
