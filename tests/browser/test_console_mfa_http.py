"""The console's second factor over HTTP against a running collector with the default `[console]`
settings (admins must have TOTP): enrolment, login with a code, recovery codes, lockouts, session expiry."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from collector.audit import AuditLog
from collector.console.totp_vault import open_vault, user_owner
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from simulators.broker import Mosquitto
from tests.browser.site import PASSWORD, Site, prepare, running, totp


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Site]:
    with running(prepare(tmp_path_factory.mktemp("mfa"), mosquitto.port)) as up:
        yield up


def _sql(site: Site, statement: str, params: tuple[object, ...] = ()) -> list[dict[str, object]]:
    store = open_store(load(CollectorConfig, site.config))
    try:
        with store.transaction() as tx:
            if statement.startswith("SELECT"):
                return [dict(r) for r in tx.sql.query(statement, params)]
            tx.sql.execute(statement, params)
            return []
    finally:
        store.close()


def _actions(site: Site) -> list[str]:
    store = open_store(load(CollectorConfig, site.config))
    try:
        return [e.action for e in AuditLog(store).entries()]
    finally:
        store.close()


def _password(site: Site, user: str, password: str = PASSWORD) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=site.url, follow_redirects=False, timeout=10)
    pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    return client, client.post("/login", data={"pre": pre, "username": user, "password": password, "next": ""})


def _csrf(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _enrolled_secret(site: Site, user: str = "ada") -> str:
    """The user's secret as the collector reads it: decrypted with the key file (the database has no other)."""
    config = load(CollectorConfig, site.config)
    store = open_store(config)
    try:
        rows = _sql(site, "SELECT totp_secret FROM console_users WHERE username = ?", (user,))
        secret = open_vault(store, config.totp_key_file, str(site.config)).open(str(rows[0]["totp_secret"]),
                                                                                user_owner(user))
    finally:
        store.close()
    assert secret is not None
    return secret


def _no_secret_in_the_clear(site: Site, secret: str) -> None:
    stored = [str(v) for r in _sql(site, "SELECT totp_secret, pending_totp FROM console_users JOIN console_sessions "
                                        "USING (username)") for v in r.values() if v is not None]  # fmt: skip
    assert stored and not any(secret in v or re.search(r"[A-Z2-7]{32}", v) for v in stored)


def test_an_admin_enrols_after_the_password_and_gets_recovery_codes_once(site: Site) -> None:
    ada, done = _password(site, "ada")
    assert done.status_code == 303 and "/console/mfa/enrol" in done.headers["location"]
    assert ada.get("/").status_code == 303  # no page before the second factor
    page = ada.get("/mfa/enrol")
    secret = page.text.split('id="totp-secret">', 1)[1].split("<", 1)[0]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    _no_secret_in_the_clear(site, secret)  # the secret offered, kept on the session until a code is given
    assert f"otpauth://totp/linewarden%3Aada?secret={secret}&amp;issuer=linewarden" in page.text
    wrong = ada.post("/mfa/enrol", data={"csrf": _csrf(page.text), "code": "000000" if totp(secret) != "000000"
                                         else "111111"})
    assert wrong.status_code == 400 and "does not match" in wrong.text
    shown = ada.post("/mfa/enrol", data={"csrf": _csrf(page.text), "code": totp(secret)})
    assert shown.status_code == 200
    codes = re.findall(r"<li><code>([0-9a-f]{8}-[0-9a-f]{8})</code></li>", shown.text)
    assert len(codes) == 10
    assert ada.get("/").status_code == 200
    stored = {str(r["code_sha256"]) for r in _sql(site, "SELECT code_sha256 FROM console_recovery_codes")}
    assert len(stored) == 10 and not any(c in s for c in codes for s in stored)
    assert "console.mfa_enrolled" in _actions(site)
    _no_secret_in_the_clear(site, secret)
    assert _enrolled_secret(site) == secret


def test_an_enrolled_admin_logs_in_with_password_then_code_and_a_code_counts_once(site: Site) -> None:
    secret = _enrolled_secret(site)
    ada, done = _password(site, "ada")
    assert done.status_code == 303 and "/console/login/code" in done.headers["location"]
    assert ada.get("/").status_code == 303
    page = ada.get("/login/code")
    assert ada.post("/login/code", data={"csrf": _csrf(page.text), "code": "12345"}).status_code == 401
    code = totp(secret, 1)  # the enrolment used this step's code: the next one (allowed clock drift)
    ok = ada.post("/login/code", data={"csrf": _csrf(page.text), "code": code})
    assert ok.status_code == 303 and ada.get("/").status_code == 200
    again, _ = _password(site, "ada")
    replay = again.post("/login/code", data={"csrf": _csrf(again.get("/login/code").text), "code": code})
    assert replay.status_code == 401 and again.get("/").status_code == 303


def test_a_recovery_code_logs_in_once(site: Site) -> None:
    rows = _sql(site, "SELECT code_sha256 FROM console_recovery_codes WHERE used_at IS NULL")
    assert len(rows) == 10
    # The codes were shown once (first test); make a known one the way the collector stores it.
    _sql(site, "UPDATE console_recovery_codes SET code_sha256 = ? WHERE code_sha256 = ?",
         (hashlib.sha256(b"0123abcd4567ef89").hexdigest(), rows[0]["code_sha256"]))
    ada, _ = _password(site, "ada")
    used = ada.post("/login/code", data={"csrf": _csrf(ada.get("/login/code").text), "code": "0123abcd-4567ef89"})
    assert used.status_code == 303 and ada.get("/").status_code == 200
    again, _ = _password(site, "ada")
    reused = again.post("/login/code", data={"csrf": _csrf(again.get("/login/code").text),
                                             "code": "0123abcd-4567ef89"})
    assert reused.status_code == 401
    assert "console.recovery_code_used" in _actions(site)


def test_a_secret_copied_into_another_users_row_accepts_no_code(site: Site) -> None:
    secret = _enrolled_secret(site)
    _sql(site, "UPDATE console_users SET totp_secret = (SELECT totp_secret FROM console_users WHERE username = "
         "'ada') WHERE username = 'sam'")  # fmt: skip
    try:
        sam, done = _password(site, "sam")
        assert done.status_code == 303 and "/console/login/code" in done.headers["location"]
        refused = sam.post("/login/code", data={"csrf": _csrf(sam.get("/login/code").text), "code": totp(secret)})
        assert refused.status_code == 401 and sam.get("/").status_code == 303
    finally:
        _sql(site, "UPDATE console_users SET totp_secret = NULL WHERE username = 'sam'")


def test_roles_not_listed_log_in_with_the_password_alone(site: Site) -> None:
    pia, done = _password(site, "pia")
    assert done.status_code == 303 and done.headers["location"] == "/console/"
    assert pia.get("/").status_code == 200


def test_sessions_end_when_idle_and_at_their_absolute_expiry(site: Site) -> None:
    pia, _ = _password(site, "pia")
    assert pia.get("/").status_code == 200
    _sql(site, "UPDATE console_sessions SET last_seen_at = last_seen_at - ? WHERE username = 'pia'",
         (31 * 60_000,))  # unused for 31 minutes (idle limit 30)
    assert pia.get("/").status_code == 303
    sam, _ = _password(site, "sam")
    assert sam.get("/").status_code == 200
    _sql(site, "UPDATE console_sessions SET expires_at = ? WHERE username = 'sam'", (1,))
    assert sam.get("/").status_code == 303


def test_five_failed_logins_lock_the_user_out_even_with_the_right_password(site: Site) -> None:
    for _ in range(5):
        assert _password(site, "pro", "wrong password!")[1].status_code == 401
    locked = _password(site, "pro")[1]
    assert locked.status_code == 429 and "try again later" in locked.text
    assert _password(site, "ivy")[1].status_code == 303  # another user from the same address is not locked


def test_many_failures_from_one_address_lock_the_address_out(site: Site) -> None:
    """Last in the module: afterwards no login from this address works for 15 minutes."""
    for i in range(20):
        _password(site, f"nobody{i}", "wrong password!")
    locked = _password(site, "ivy")[1]
    assert locked.status_code == 429
