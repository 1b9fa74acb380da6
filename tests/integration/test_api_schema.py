"""Property: the API driven from its own OpenAPI schema (schemathesis, in-process over ASGI) never answers 500
and never shows a traceback, whatever the generated paths, queries and bodies.

Requests carry an admin token (so they pass authentication and reach the handlers) and name a ticket that
exists where a path names one; the store is real SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from collector.api.app import create_app
from collector.store.sqlite import SqliteStore
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import create_token
from linewarden.book import load_book
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.integration.collector_helpers import T0

REPO = Path(__file__).resolve().parents[2]
# Small enough for the fast suite; raise it for a long hunt: LW_API_EXAMPLES=1000 pytest this file
EXAMPLES_PER_OPERATION = int(os.environ.get("LW_API_EXAMPLES", "40"))


def _clock() -> int:
    return T0


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    root = tmp_path_factory.mktemp("api")
    store = SqliteStore(root / "c.db")
    store.migrate()
    with store.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO tickets (incident_id, contract_id, vendor, sink, vendor_id, vendor_display, severity, state,"
            " opened_at, raised_at, updated_at) VALUES ('inc-1', 'acme-2026', 'acme', 'webhook', 'V-1', 'V-1', 'S1',"
            " 'open', ?, ?, ?)",
            (T0, T0, T0),
        )
    token, _ = create_token(store, "admin", None, "fuzz", T0, "test", "here")
    config_path = REPO / "config" / "collector.toml"  # the example contracts, so reports have something to report
    book = load_book(load(CollectorConfig, config_path), config_path)
    app = create_app(store, Lifecycle(store, book, _clock, "here"), _clock, root / "rca", book=book)
    yield app, token
    store.close()


def test_no_input_makes_the_api_answer_500(api: tuple[object, str]) -> None:
    app, token = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 11  # every route of the app

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            if case.path_parameters:
                case.path_parameters = {**case.path_parameters, "contract_id": "acme-2026", "incident_id": "inc-1"}
            response = case.call(headers={"Authorization": f"Bearer {token}"})  # an app exception fails here
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
            assert "Traceback" not in response.text

        call()
