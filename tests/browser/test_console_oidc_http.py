"""Single sign-on over HTTP: httpx follows the redirects through the local OpenID provider, which checks the
authorization and token requests (PKCE S256, state, nonce, client authentication)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from collector.audit import AuditLog
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from simulators.broker import Mosquitto
from tests.browser.oidc_site import oidc_site
from tests.browser.site import Site, cli
from tests.fakes.oidc import FakeOidc


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[tuple[Site, FakeOidc]]:
    with oidc_site(tmp_path_factory.mktemp("oidc"), mosquitto.port) as up:
        yield up


def _audit(site: Site) -> list[tuple[str, str, dict[str, object]]]:
    store = open_store(load(CollectorConfig, site.config))
    try:
        return [(e.action, e.object, dict(e.details)) for e in AuditLog(store).entries()]
    finally:
        store.close()


def _login(site: Site, idp: FakeOidc, user: str) -> tuple[httpx.Client, httpx.Response]:
    idp.auto_login = user
    client = httpx.Client(base_url=site.url, follow_redirects=True, timeout=10)
    return client, client.get("/login/oidc", params={"next": "/console/contracts"})


def _callback(site: Site, idp: FakeOidc, user: str) -> tuple[httpx.Client, str]:
    """A login stopped at the provider's redirect back: (the browser, the callback URL)."""
    idp.auto_login = user
    client = httpx.Client(base_url=site.url, follow_redirects=False, timeout=10)
    to_idp = client.get("/login/oidc").headers["location"]
    back = client.get(to_idp).headers["location"]
    assert back.startswith(site.url + "/login/oidc/callback?")
    return client, back


def test_an_sso_login_maps_the_role_and_creates_an_external_user(sso: tuple[Site, FakeOidc],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    site, idp = sso
    client, done = _login(site, idp, "olga")
    assert done.status_code == 200 and "Logged in as olga" in done.text
    assert 'content="0;url=/console/contracts"' in done.text
    page = client.get("/contracts")
    assert page.status_code == 200 and "olga (plant_it)" in page.text
    assert idp.refused == []
    actions = _audit(site)
    assert ("console.sso_user_added", "user/olga") in [(a, o) for a, o, _ in actions]
    assert any(a == "console.login" and d.get("method") == "oidc" for a, o, d in actions)
    # An SSO user has no password: the password form never logs it in.
    form = httpx.Client(base_url=site.url, timeout=10)
    pre = form.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    assert form.post("/login", data={"pre": pre, "username": "olga", "password": "!external"}).status_code == 401
    code, out = cli("collector", "user", "list", "--config", str(site.config), "--format", "json")
    assert code == 0 and '"login": "sso"' in out and '"login": "password"' in out
    code, out = cli("collector", "user", "passwd", "olga", "--password-stdin", "--config", str(site.config),
                    stdin="a-long-password\n")
    assert code == 1 and "logs in through single sign-on" in capsys.readouterr().err


def test_a_vendor_gets_the_vendor_from_its_claim(sso: tuple[Site, FakeOidc]) -> None:
    site, idp = sso
    client, done = _login(site, idp, "vic")
    assert done.status_code == 200
    assert "vic (vendor: integrator)" in client.get("/").text


def test_a_user_without_a_mapped_role_is_refused_with_a_clear_page(sso: tuple[Site, FakeOidc]) -> None:
    site, idp = sso
    client, done = _login(site, idp, "nora")
    assert done.status_code == 403 and "has no role in this console" in done.text
    assert client.get("/", follow_redirects=False).status_code == 303
    assert any(a == "console.sso_failed" and "no role" in str(d["reason"]) for a, _, d in _audit(site))


def test_a_bad_or_foreign_state_is_refused(sso: tuple[Site, FakeOidc]) -> None:
    site, idp = sso
    client, back = _callback(site, idp, "olga")
    query = parse_qs(urlsplit(back).query)
    forged = site.url + "/login/oidc/callback?" + urlencode({"code": query["code"][0], "state": "forged"})
    refused = client.get(forged)
    assert refused.status_code == 400 and "(state)" in refused.text
    # The right state in another browser (no state cookie: a login planted from elsewhere) is refused too.
    other = httpx.Client(timeout=10).get(back)
    assert other.status_code == 400 and "(state)" in other.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_tampered_id_token_is_refused(sso: tuple[Site, FakeOidc]) -> None:
    site, idp = sso
    idp.tamper = "signature"
    client, done = _login(site, idp, "olga")
    assert done.status_code == 400 and "signature does not verify" in done.text
    assert client.get("/", follow_redirects=False).status_code == 303
    assert any(a == "console.sso_failed" and "signature" in str(d["reason"]) for a, _, d in _audit(site))


def test_an_id_token_with_another_nonce_is_refused(sso: tuple[Site, FakeOidc]) -> None:
    site, idp = sso
    idp.tamper = "nonce"
    client, done = _login(site, idp, "olga")
    assert done.status_code == 400 and "nonce does not match" in done.text
    assert client.get("/", follow_redirects=False).status_code == 303
