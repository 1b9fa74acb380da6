"""A real collector for the console's tests: contracts of two vendors, a history imported relative to now
(one closed and one open S1 incident), users of every role, and `linewarden collector run` in a process of
its own on a real broker and a real SQLite store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import httpx

from linewarden.cli import main
from tests.integration.test_collector_cli import CONTRACT

PASSWORD = "correct horse battery"
USERS = {  # name: (role, vendor)
    "ada": ("admin", None),
    "pia": ("plant_it", None),
    "pro": ("procurement", None),
    "ivy": ("vendor", "integrator"),
    "sam": ("vendor", "scada"),
}
SCADA = (CONTRACT.replace('id = "plc-support"', 'id = "scada-support"').replace('"integrator"', '"scada"')
         .replace('"line3-plc"', '"scada-srv"'))
MIN = 60_000
DAY = 86_400_000
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(seq: int, at: int, type_: str, body: dict[str, object]) -> str:
    return json.dumps({"site": "p1", "agent": "a1", "seq": seq, "ts": at, "type": type_, "body": body})


def _change(seq: int, at: int, target: str, asset: str, frm: str, to: str, reason: str) -> str:
    return _event(seq, at, "state_change",
                  {"target": target, "asset": asset, "from": frm, "to": to, "reason": reason, "at": at})


def _opened(seq: int, at: int, incident: str, target: str, asset: str) -> str:
    return _event(seq, at, "incident_opened",
                  {"incident": incident, "target": target, "asset": asset, "criticality": "critical",
                   "severity": "S1", "state": "DOWN", "reason": "connection refused", "in_production": True,
                   "opened_at": at})


def history(now: int) -> list[str]:
    start, outage = now - 20 * DAY, now - 2 * DAY
    return [
        _change(1, start, "plc", "line3-plc", "UNKNOWN", "UP", "ok"),
        _change(2, start, "scada", "scada-srv", "UNKNOWN", "UP", "ok"),
        _change(3, outage, "plc", "line3-plc", "UP", "DOWN", "connection refused"),
        _opened(4, outage, "inc-1", "plc", "line3-plc"),
        _change(5, outage + 180 * MIN, "plc", "line3-plc", "DOWN", "UP", "ok"),
        _event(6, outage + 180 * MIN, "incident_resolved", {"incident": "inc-1", "at": outage + 180 * MIN}),
        _change(7, now - 10 * MIN, "scada", "scada-srv", "UP", "DOWN", "connection refused"),
        _opened(8, now - 10 * MIN, "inc-2", "scada", "scada-srv"),
        json.dumps({"record": "ticket_raised", "incident": "inc-1", "at": outage + MIN, "actor": "lw"}),
        json.dumps({"record": "ticket_acknowledged", "incident": "inc-1", "at": outage + 90 * MIN,
                    "actor": "integrator"}),
        json.dumps({"record": "ticket_raised", "incident": "inc-2", "at": now - 9 * MIN, "actor": "lw"}),
    ]  # fmt: skip


@dataclass
class Site:
    folder: Path
    config: Path
    url: str  # the console's root, ending in /console
    api: str
    broker_port: int
    proc: subprocess.Popen[bytes] | None = None
    verify: ssl.SSLContext | bool = True  # how clients check the collector's HTTPS certificate


def cli(*args: str, stdin: str = "") -> tuple[int, str]:
    """`linewarden …` in this process; (exit code, what it printed)."""
    out = io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out):
            code = main(list(args))
    finally:
        sys.stdin = old
    return code, out.getvalue()


def prepare(folder: Path, broker_port: int, console: str = "", api: str = "", ca: Path | None = None) -> Site:
    """The site in `folder`; `console` is the `[console]` table's body (default settings when empty), `api`
    more lines of `[api]`; with `ca` (the certificate's issuer) the site serves HTTPS."""
    (folder / "contracts").mkdir(parents=True)
    (folder / "contracts" / "plc.toml").write_text(CONTRACT)
    (folder / "contracts" / "scada.toml").write_text(SCADA)
    port = free_port()
    config = folder / "collector.toml"
    config.write_text(
        f'[collector]\ndata_dir = "{folder / "data"}"\ntimezone = "UTC"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {broker_port}\n'
        f'[liveness]\nmissed_heartbeats = 3\n[api]\nhost = "127.0.0.1"\nport = {port}\n{api}\n[console]\n{console}\n'
    )
    path = folder / "history.jsonl"
    path.write_text("\n".join(history(int(time.time() * 1000))) + "\n")
    assert cli("collector", "import", "--config", str(config), str(path))[0] == 0
    for name, (role, vendor) in USERS.items():
        extra = ["--vendor", vendor] if vendor else []
        code, _ = cli("collector", "user", "add", name, "--role", role, *extra, "--password-stdin",
                      "--config", str(config), stdin=PASSWORD + "\n")
        assert code == 0
    scheme = "https" if ca else "http"
    verify = ssl.create_default_context(cafile=str(ca)) if ca else True
    return Site(folder, config, f"{scheme}://127.0.0.1:{port}/console", f"{scheme}://127.0.0.1:{port}", broker_port,
                verify=verify)


@contextmanager
def running(site: Site) -> Iterator[Site]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (site.folder / "collector.log").open("wb")
    code = "import sys; from linewarden.cli import main; sys.exit(main(sys.argv[1:]))"
    site.proc = subprocess.Popen([sys.executable, "-c", code, "collector", "run", "--config", str(site.config)],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120  # a collector starting on a busy machine
        while True:
            try:
                if httpx.get(site.url + "/login", timeout=2, verify=site.verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if site.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start: {(site.folder / 'collector.log').read_text()}")
            time.sleep(0.2)
        yield site
    finally:
        site.proc.terminate()
        try:
            site.proc.wait(20)
        except subprocess.TimeoutExpired:
            site.proc.kill()
            site.proc.wait()
        log.close()


def login(site: Site, user: str, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client logged in as `user` (as a browser does: the login form, its cookie, then the session)."""
    client = httpx.Client(base_url=site.url, follow_redirects=False, timeout=10, verify=site.verify)
    page = client.get("/login")
    pre = page.text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    done = client.post("/login", data={"pre": pre, "username": user, "password": password, "next": ""})
    assert done.status_code == 303, done.text
    return client


def outage_month() -> str:
    """The month of inc-1 (history above): the contract page to look at for its figures."""
    return time.strftime("%Y-%m", time.gmtime(time.time() - 2 * DAY / 1000))


def csrf(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def totp(secret: str, ahead: int = 0) -> str:
    """The authenticator app's code (RFC 6238: HMAC-SHA1, 6 digits, 30 s), `ahead` steps from now; written
    here from the RFC rather than taken from the collector, so the test checks the collector against it."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30 + ahead), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return f"{(int.from_bytes(mac[offset:offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"
