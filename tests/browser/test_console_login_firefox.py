"""Logging in from Debian's Firefox ESR over Marionette. The second factor: an admin enrols (key read off the
page, code computed here), keeps a recovery code, and logs in again with password and that code, then with an
app code. Single sign-on: through the local OpenID provider's login page and back, as the mapped role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulators.broker import Mosquitto
from tests.browser.oidc_site import oidc_site
from tests.browser.site import PASSWORD, Site, prepare, running, totp
from tests.browser.test_console_firefox import FIREFOX, _logout, _wait_for, firefox
from tests.fakes.oidc import FakeOidc

__all__ = ["firefox"]  # the module's Firefox fixture

pytestmark = pytest.mark.skipif(FIREFOX is None, reason="Debian's firefox-esr is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Site]:
    with running(prepare(tmp_path_factory.mktemp("mfa-firefox"), mosquitto.port)) as up:
        yield up


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[tuple[Site, FakeOidc]]:
    with oidc_site(tmp_path_factory.mktemp("oidc-firefox"), mosquitto.port) as up:
        yield up


def _password(client: Any, site: Site) -> str:
    """Log in as the admin with the password; the heading of the page that follows."""
    from marionette_driver import By

    client.navigate(site.url + "/login")
    client.find_element(By.ID, "username").send_keys("ada")
    client.find_element(By.ID, "password").send_keys(PASSWORD)
    client.find_element(By.CSS_SELECTOR, "form.login button").click()
    return str(_wait_for(client, "h1").text)


def _code(client: Any, code: str) -> None:
    from marionette_driver import By

    client.find_element(By.ID, "code").send_keys(code)
    client.find_element(By.CSS_SELECTOR, "form.login button").click()


def test_an_admin_enrols_then_logs_in_with_a_recovery_code_and_with_a_code(firefox: Any, site: Site) -> None:
    from marionette_driver import By, Wait

    assert _password(firefox, site) == "Set up a second factor"
    secret = firefox.find_element(By.ID, "totp-secret").text
    _code(firefox, totp(secret))
    assert _wait_for(firefox, "h1").text == "Recovery codes"
    codes = [li.text for li in firefox.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]
    assert len(codes) == 10
    firefox.find_element(By.LINK_TEXT, "Continue to the console").click()
    _wait_for(firefox, "header nav")
    _logout(firefox)

    assert _password(firefox, site) == "Second factor"
    _code(firefox, codes[0])
    _wait_for(firefox, "header nav")
    _logout(firefox)

    assert _password(firefox, site) == "Second factor"
    _code(firefox, codes[0])  # used once already
    Wait(firefox, timeout=20).until(lambda c: c.find_elements(By.CSS_SELECTOR, "p.error"))
    _code(firefox, totp(secret, 1))  # the enrolment used this step's code
    _wait_for(firefox, "header nav")
    _logout(firefox)


def test_a_user_logs_in_through_the_identity_provider(firefox: Any, sso: tuple[Site, FakeOidc]) -> None:
    from marionette_driver import By, Wait

    site, idp = sso
    firefox.navigate(site.url + "/")
    _wait_for(firefox, "#sso").click()
    Wait(firefox, timeout=20).until(lambda c: c.get_url().startswith(idp.issuer + "/authorize?"))
    firefox.find_element(By.ID, "username").send_keys("olga")
    firefox.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    Wait(firefox, timeout=20).until(lambda c: [h.text for h in c.find_elements(By.CSS_SELECTOR, "h1")] == ["Overview"])
    assert "olga (plant_it)" in firefox.find_element(By.CSS_SELECTOR, "form.who").text
    assert firefox.get_url() == site.url + "/"
    assert idp.refused == []
    _logout(firefox)
