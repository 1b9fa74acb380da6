"""At rest on the host: databases, outbox and RCA documents are 0600 in 0700 folders; the database URL and
HTTP probe headers take their secrets from the environment or a file."""

from __future__ import annotations

import base64
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from agent.outbox import Outbox
from collector.store import open_store
from collector.store.sqlite import SqliteStore
from collector.tokens import create_token
from linewarden.config.agent import OutboxConfig
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import validate
from linewarden.domain import State
from linewarden.errors import ConfigError, StoreError
from simulators.http import JsonHttpServer, Request, Response, Router
from tests.integration.collector_helpers import T0, incident_opened, state_change
from tests.integration.probe_helpers import fast_context, probe
from tests.integration.test_ticketing_e2e import CONTRACT, Agent, _collector, _fake, _stop, agent  # noqa: F401
from tests.integration.ticketing_helpers import SECRET, SECRET_ENV, book, contract
from tests.waiting import async_wait_until

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX; Windows uses the installer's ACL")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_collector_database_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "collector.db"
    store = SqliteStore(db)
    store.migrate()
    try:
        create_token(store, "admin", None, "ops", T0, "test", "here")
        assert _mode(db.parent) == 0o700
        assert {p.name: _mode(p) for p in db.parent.iterdir()} == {
            "collector.db": 0o600, "collector.db-wal": 0o600, "collector.db-shm": 0o600,
        }  # fmt: skip
    finally:
        store.close()


def test_an_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    db = tmp_path / "collector.db"
    db.touch(mode=0o644)
    db.chmod(0o644)
    SqliteStore(db).close()
    assert _mode(db) == 0o600


def test_the_agent_outbox_is_private(tmp_path: Path) -> None:
    path = tmp_path / "agent-data" / "outbox.db"
    outbox = Outbox(path, OutboxConfig())
    try:
        assert _mode(path.parent) == 0o700
        assert all(_mode(p) == 0o600 for p in path.parent.iterdir())
    finally:
        outbox.close()


@pytest.mark.broker
async def test_rca_documents_are_private(mosquitto: object, agent: Agent, tmp_path: Path,  # noqa: F811
                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv(SECRET_ENV, SECRET)
    hook, _, sink = _fake("webhook")
    svc = await _collector(mosquitto, tmp_path, book(contract(CONTRACT, "acme", ["line3-plc"], sink)), serve_api=True)
    token, _ = create_token(svc.store, "vendor", "acme", "acme", T0, "test", "here")
    try:
        await agent.send([state_change(1, T0), incident_opened(2, T0 + 1000, incident="inc-rca")])
        await async_wait_until(lambda: svc.dispatcher.ticket("inc-rca", CONTRACT), what="ticket raised")
        document = {"name": "rca.pdf", "content_base64": base64.b64encode(b"%PDF root cause").decode()}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.api_port}") as http:
            await http.post(f"/tickets/{CONTRACT}/inc-rca/rca", json={"document": document},
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        [saved] = (tmp_path / "rca").iterdir()
        assert saved.read_bytes() == b"%PDF root cause"
        assert (_mode(saved), _mode(saved.parent)) == (0o600, 0o700)
    finally:
        await _stop(svc)
        hook.stop()


def test_database_url_secrets_come_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="is a secret"):
        validate(CollectorConfig, {"collector": {"database_url": "postgresql://lw:hunter2@db/lw"}}, "c.toml")
    fine = validate(CollectorConfig, {"collector": {"database_url": "postgresql://lw@db/lw"}}, "c.toml")
    assert fine.collector.database() == "postgresql://lw@db/lw"
    secret = tmp_path / "db-url"
    secret.write_text("postgresql://lw:hunter2@db/lw\n")
    from_file = validate(CollectorConfig, {"collector": {"database_url": {"file": str(secret)}}}, "c.toml")
    assert from_file.collector.database() == "postgresql://lw:hunter2@db/lw"
    assert "hunter2" not in repr(from_file)
    from_env = validate(CollectorConfig, {"collector": {"database_url": {"env": "LW_TEST_DB_URL"}}}, "c.toml")
    monkeypatch.delenv("LW_TEST_DB_URL", raising=False)
    with pytest.raises(StoreError, match="LW_TEST_DB_URL is not set"):
        open_store(from_env)


def test_database_url_from_env_opens_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_TEST_DB_URL", postgres_url)
    config = validate(CollectorConfig, {"collector": {"database_url": {"env": "LW_TEST_DB_URL"}}}, "c.toml")
    open_store(config).close()


async def test_http_probe_header_secrets_are_read_at_each_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def health(request: Request) -> Response:
        ok = request.headers.get("authorization") == "Bearer " + os.environ.get("WANTED", "")
        return Response(200 if ok else 401, {"status": "ok"})

    router = Router()
    router.add("GET", "/health", health)
    server = JsonHttpServer(router)
    await server.start()
    context = fast_context()
    token = tmp_path / "mes-token"
    token.write_text("Bearer first\n")
    monkeypatch.setenv("WANTED", "first")
    try:
        url = f"http://{server.host}:{server.port}/health"
        p = probe(context, type="http", url=url, headers={"Authorization": {"file": str(token)}, "X-Plant": "a"})
        assert (await p.poll(time.time())).state == State.UP
        token.write_text("Bearer second\n")  # rotated: used from the next poll, no restart
        monkeypatch.setenv("WANTED", "second")
        assert (await p.poll(time.time())).state == State.UP
        token.unlink()
        missing = await p.poll(time.time())
        assert (missing.state, missing.cause) == (State.UNKNOWN, "config.secret_unavailable")
        assert "cannot read secret file" in missing.reason
    finally:
        await context.close()
        await server.stop()
