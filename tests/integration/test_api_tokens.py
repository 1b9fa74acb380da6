"""API tokens in-process (ASGI) on a real SQLite store: expiry, scopes, rotation, and each use attributed
(token id) in the access log and the audit log, failures included."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from collector.api.app import create_app
from collector.audit import AuditLog
from collector.store.sqlite import SqliteStore
from collector.ticketing.lifecycle import Lifecycle
from collector.tokens import authenticate, create_token, rotate_token
from linewarden.book import ContractBook
from linewarden.cli import main
from linewarden.errors import LinewardenError
from tests.integration.collector_helpers import T0

NOW = [T0]
DAY = 86_400_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    NOW[0] = T0
    s = SqliteStore(tmp_path / "c.db")
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def app(store: SqliteStore, tmp_path: Path) -> FastAPI:
    lifecycle = Lifecycle(store, ContractBook({}, {}), lambda: NOW[0], "here")
    return create_app(store, lifecycle, lambda: NOW[0], tmp_path / "rca")


def _client(app: FastAPI, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             headers={"Authorization": f"Bearer {token}"})


def _failures(store: SqliteStore) -> list[Mapping[str, Any]]:
    return [e.details for e in AuditLog(store).entries() if e.action == "auth.failed"]


async def test_an_expired_token_is_refused_401_saying_so_and_audited(store: SqliteStore, app: FastAPI) -> None:
    token, info = create_token(store, "plant", None, "mes", T0, "test", "here", lifetime_ms=DAY)
    async with _client(app, token) as api:
        assert (await api.get("/tickets")).status_code == 200
        NOW[0] = T0 + DAY
        refused = await api.get("/tickets")
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]
    assert _failures(store)[-1]["token_id"] == info.id and "expired" in str(_failures(store)[-1]["reason"])


async def test_a_read_only_token_may_read_but_not_change(store: SqliteStore, app: FastAPI) -> None:
    token, _info = create_token(store, "plant", None, "dashboard", T0, "test", "here", scopes=("read",))
    body = {"assets": ["line3-plc"], "start": T0 + DAY, "end": T0 + 2 * DAY}
    async with _client(app, token) as api:
        assert (await api.get("/maintenance-windows")).status_code == 200
        refused = await api.post("/maintenance-windows", json={"site": "p1", **body})
    assert refused.status_code == 403 and "maintenance" in refused.json()["detail"]
    assert "scope maintenance" in str(_failures(store)[-1]["reason"])
    with pytest.raises(LinewardenError):
        create_token(store, "plant", None, "x", T0, "test", "here", scopes=("everything",))  # type: ignore[arg-type]


async def test_rotation_replaces_the_token_and_revokes_the_old_one(store: SqliteStore, app: FastAPI) -> None:
    old, info = create_token(store, "vendor", "acme", "acme desk", T0, "test", "here", lifetime_ms=30 * DAY,
                             scopes=("read", "tickets"))
    NOW[0] = T0 + DAY
    new, rotated = rotate_token(store, info.id, NOW[0], "cli", "here")
    assert (rotated.role, rotated.vendor, rotated.label, rotated.scopes) == ("vendor", "acme", "acme desk",
                                                                             ("read", "tickets"))
    assert rotated.expires_at == NOW[0] + 30 * DAY
    assert "rotated" in str(authenticate(store, old, NOW[0]))
    async with _client(app, old) as api:
        assert (await api.get("/tickets")).status_code == 401
    async with _client(app, new) as api:
        assert (await api.get("/tickets")).status_code == 200
    entry = next(e for e in AuditLog(store).entries() if e.action == "token.rotated")
    assert entry.object == f"token/{rotated.id}" and entry.details["replaces"] == info.id
    with pytest.raises(LinewardenError):
        rotate_token(store, info.id, NOW[0], "cli", "here")


async def test_each_use_is_in_the_access_log_and_each_change_in_the_audit_log(
    store: SqliteStore, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    token, info = create_token(store, "plant", None, "mes", T0, "test", "here")
    with caplog.at_level(logging.INFO, logger="collector.api.access"):
        async with _client(app, token) as api:
            await api.get("/tickets")
            await api.post("/tickets/acme-2026/inc-404/acknowledge")
    lines = [r.getMessage() for r in caplog.records if r.name == "collector.api.access"]
    assert f"token={info.id} actor=plant:{info.id} origin=127.0.0.1 GET /tickets 200" in lines[0]
    assert "POST /tickets/acme-2026/inc-404/acknowledge 403" in lines[1]  # refused: a plant token may not acknowledge
    calls = [e for e in AuditLog(store).entries() if e.action == "api.call"]
    assert len(calls) == 1 and calls[0].details["token_id"] == info.id and calls[0].details["status"] == 403
    assert json.dumps(calls[0].details).count(token) == 0


def test_the_cli_creates_an_expiring_scoped_token_and_rotates_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\n')
    base = ["collector", "token"]
    assert main([*base, "create", "--role", "plant", "--expires-in", "30d", "--scope", "read",
                 "--config", str(config)]) == 0
    first = capsys.readouterr().out.split()[1]
    assert main([*base, "rotate", first, "--config", str(config)]) == 0
    second = capsys.readouterr().out.split()[1]
    assert main([*base, "list", "--format", "json", "--config", str(config)]) == 0
    listed = {t["id"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed[first]["revoked"] and not listed[second]["revoked"]
    assert listed[second]["scopes"] == "read" and listed[second]["expires"]
    assert main([*base, "rotate", first, "--config", str(config)]) != 0  # revoked: nothing to rotate


@pytest.mark.parametrize("lifetime", ["999999999d", "36526d", "0s", "99999999999999999999d"])
def test_a_token_lifetime_beyond_100_years_or_none_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lifetime: str
) -> None:
    """Such a token used to be created, and `token list` then failed on its expiry beyond year 9999."""
    config = tmp_path / "collector.toml"
    config.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\n')
    base = ["collector", "token"]
    assert main([*base, "create", "--role", "plant", "--expires-in", lifetime, "--config", str(config)]) == 2
    assert "argument --expires-in" in capsys.readouterr().err
    assert main([*base, "list", "--config", str(config)]) == 0


async def test_an_address_giving_twenty_bad_tokens_is_locked_out_for_a_while(store: SqliteStore, app: FastAPI) -> None:
    good, _ = create_token(store, "plant", None, "mes", T0, "test", "here")
    async with _client(app, "lw_000000000000_guess") as guesser:
        for _ in range(20):
            assert (await guesser.get("/tickets")).status_code == 401
    async with _client(app, good) as api:
        locked = await api.get("/tickets")
        assert locked.status_code == 429 and "try again later" in locked.json()["detail"]
        NOW[0] = T0 + 15 * 60_000
        assert (await api.get("/tickets")).status_code == 200
