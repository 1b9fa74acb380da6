"""The API in-process (ASGI) on a real SQLite store: body limits answered 413 while streaming, bad times 4xx; and on
both stores, a value the database cannot hold 4xx."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from collector.api.app import create_app
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import create_token
from linewarden.book import ContractBook, load_book
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.integration.collector_helpers import T0
from tests.integration.store_params import STORES, open_store_param

REPO = Path(__file__).resolve().parents[2]
KIB = 1024
BODY_LIMIT, UPLOAD_LIMIT = 64 * KIB, 96 * KIB


def _clock() -> int:
    return T0


def _with_a_ticket(s: Store) -> None:
    with s.transaction() as tx:
        tx.sql.execute(
            "INSERT INTO tickets (incident_id, contract_id, vendor, sink, vendor_id, vendor_display, severity, state,"
            " opened_at, raised_at, updated_at) VALUES ('inc-1', 'acme-2026', 'acme', 'webhook', 'V-1', 'V-1', 'S1',"
            " 'open', ?, ?, ?)",
            (T0, T0, T0),
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "c.db")
    s.migrate()
    _with_a_ticket(s)
    yield s
    s.close()


@pytest.fixture(params=STORES)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    for s in open_store_param(request, tmp_path):
        _with_a_ticket(s)
        yield s


@pytest.fixture
def app(store: SqliteStore, tmp_path: Path) -> FastAPI:
    lifecycle = Lifecycle(store, ContractBook({}, {}), _clock, "here")
    return create_app(
        store, lifecycle, _clock, tmp_path / "rca", max_body_bytes=BODY_LIMIT, max_upload_bytes=UPLOAD_LIMIT
    )


def _token(store: Store, role: str, vendor: str | None = None) -> dict[str, str]:
    token, _ = create_token(store, role, vendor, role, T0, "test", "here")  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield client


# ---------------------------------------------------------------- raw ASGI: what is read, and when


async def _call(app: FastAPI, path: str, chunks: int, chunk: bytes, headers: list[tuple[bytes, bytes]]):
    """POST `chunks` chunks of `chunk` to `path`; return (status, JSON body, how many chunks the app read)."""
    read = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": read < chunks}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"api"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1), "server": ("api", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), read


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(app: FastAPI) -> None:
    headers = [(b"content-length", str(100 * 1024 * KIB).encode())]
    status, body, read = await _call(app, "/tickets/acme-2026/inc-1/resolution", 1600, b"x" * (64 * KIB), headers)
    assert (status, read) == (413, 0)
    assert body == {"detail": f"request body over the limit of {BODY_LIMIT} bytes"}


async def test_a_streamed_body_is_cut_off_at_the_limit_not_read_to_its_end(app: FastAPI) -> None:
    # 100 MB announced by nothing (chunked): reading stops at the chunk that crosses the limit
    status, body, read = await _call(app, "/tickets/acme-2026/inc-1/resolution", 1600, b"x" * (16 * KIB), [])
    assert status == 413 and body["detail"] == f"request body over the limit of {BODY_LIMIT} bytes"
    assert read == BODY_LIMIT // (16 * KIB) + 1


async def test_the_rca_route_takes_a_document_up_to_the_upload_limit(app, http, store) -> None:
    acme = _token(store, "vendor", "acme")
    url = "/tickets/acme-2026/inc-1/rca"

    def doc(size: int) -> dict[str, Any]:
        return {"document": {"name": "rca.pdf", "content_base64": base64.b64encode(b"%" * size).decode()}}

    accepted = await http.post(url, headers=acme, json=doc(UPLOAD_LIMIT))
    assert accepted.status_code == 200, accepted.text
    over = await http.post(url, headers=acme, json=doc(UPLOAD_LIMIT + 1))
    assert over.status_code == 413
    assert over.json() == {"detail": f"document of {UPLOAD_LIMIT + 1} bytes is over the limit of {UPLOAD_LIMIT}"}
    far_over = await http.post(url, headers=acme, json=doc(10 * UPLOAD_LIMIT))
    assert far_over.status_code == 413 and "request body over the limit" in far_over.json()["detail"]
    # other routes keep the smaller body limit
    note = await http.post("/tickets/acme-2026/inc-1/resolution", headers=acme, json={"note": "n" * UPLOAD_LIMIT})
    assert note.status_code == 413


async def test_a_note_longer_than_its_limit_is_422_with_a_message(http, store) -> None:
    acme = _token(store, "vendor", "acme")
    r = await http.post("/tickets/acme-2026/inc-1/resolution", headers=acme, json={"note": "n" * 4001})
    assert r.status_code == 422 and "4000" in r.text


# ---------------------------------------------------------------- maintenance-window times


@pytest.mark.parametrize(
    ("start", "end"), [(-1, T0), (T0, 2**63), (T0, 10**30), (-(2**70), 0), (T0, 253_402_300_800_000)]
)
async def test_a_window_with_an_impossible_time_is_422(http, store, start: int, end: int) -> None:
    body = {"site": "plant-a", "start": start, "end": end, "assets": ["plc-1"]}
    r = await http.post("/maintenance-windows", headers=_token(store, "plant"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][1] in ("start", "end")
    assert store.table_rows("maintenance_windows") == []


@pytest.mark.parametrize("query", ["start=-5", "end=-1", f"end={2**64}", f"start={10**40}"])
async def test_listing_windows_with_an_impossible_time_is_422(http, store, query: str) -> None:
    r = await http.get(f"/maintenance-windows?{query}", headers=_token(store, "plant"))
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("period", ["0001-01", "1969-12", "9999-12"])
async def test_a_report_of_a_month_outside_the_wire_range_is_422(store, tmp_path: Path, period: str) -> None:
    config_path = REPO / "config" / "collector.toml"
    book = load_book(load(CollectorConfig, config_path), config_path)
    app = create_app(store, Lifecycle(store, book, _clock, "here"), _clock, tmp_path / "rca", book=book)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        r = await client.get(f"/reports/{period}?as_of=0", headers=_token(store, "admin"))
    assert r.status_code == 422 and "from 1970-01 to 9998-12" in r.json()["detail"], r.text


# ---------------------------------------------------------------- values the database cannot hold


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_nul_the_database_cannot_hold_is_4xx_not_500(any_store: Store, tmp_path: Path, method: str) -> None:
    """A NUL in any text, looked up or stored, is refused by both stores (PostgreSQL cannot hold one): never 500."""
    app = create_app(any_store, Lifecycle(any_store, ContractBook({}, {}), _clock, "here"), _clock, tmp_path / "rca")
    path = "/tickets/acme-2026/inc%00-1" + ("/acknowledge" if method == "POST" else "")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        r = await client.request(method, path, headers=_token(any_store, "admin"))
    assert 400 <= r.status_code < 500 and r.json()["detail"], r.text
