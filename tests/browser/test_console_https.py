"""The console and the API over HTTPS from certificate files: HSTS, Secure cookies, the certificate
reloaded when its files change, and X-Forwarded-For believed from a listed proxy."""

from __future__ import annotations

import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.audit import AuditLog
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from simulators.broker import Mosquitto
from tests.browser.site import PASSWORD, Site, prepare, running
from tests.certs import self_signed


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("https")
    (folder / "tls").mkdir()
    cert, key = self_signed(folder / "tls")
    api = f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\ntrusted_proxies = ["127.0.0.1"]'
    with running(prepare(folder, mosquitto.port, "mfa_required_roles = []", api, ca=cert)) as up:
        yield up


def _login(site: Site, headers: dict[str, str] | None = None, password: str = PASSWORD) -> httpx.Response:
    client = httpx.Client(base_url=site.url, verify=site.verify, follow_redirects=False, headers=headers)
    pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"pre": pre, "username": "pia", "password": password})


def test_pages_come_over_https_with_hsts_and_secure_cookies(site: Site) -> None:
    page = httpx.get(site.url + "/login", verify=site.verify)
    assert page.status_code == 200 and page.headers["strict-transport-security"].startswith("max-age=")
    api = httpx.get(site.api + "/tickets", verify=site.verify)
    assert api.status_code == 401 and "strict-transport-security" in api.headers
    done = _login(site)
    assert done.status_code == 303 and "Secure" in done.headers["set-cookie"]


def test_a_listed_proxy_s_forwarded_address_is_the_origin(site: Site) -> None:
    _login(site, {"X-Forwarded-For": "198.51.100.7"}, "wrong password!")
    store = open_store(load(CollectorConfig, site.config))
    try:
        failed = [e for e in AuditLog(store).entries() if e.action == "console.login_failed"]
    finally:
        store.close()
    assert failed[-1].origin == "198.51.100.7"


def test_a_new_certificate_in_the_files_is_served_without_a_restart(site: Site, tmp_path: Path) -> None:
    config = load(CollectorConfig, site.config)
    assert config.api.tls_cert_file is not None and config.api.tls_key_file is not None
    new_cert, new_key = self_signed(tmp_path)
    shutil.copyfile(new_key, config.api.tls_key_file)
    shutil.copyfile(new_cert, config.api.tls_cert_file)
    wanted = ssl.PEM_cert_to_DER_cert(new_cert.read_text())
    port = int(site.api.rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port))) != wanted:
        assert time.monotonic() < deadline, "the collector still serves the old certificate"
        time.sleep(0.2)
    assert site.proc is not None and site.proc.poll() is None
