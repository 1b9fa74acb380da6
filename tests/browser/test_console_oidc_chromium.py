"""Single sign-on in Debian's Chromium: the login page's SSO link leads through the local OpenID provider's
login page and back to the page asked for, as the role the provider's claims map to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulators.broker import Mosquitto
from tests.browser.oidc_site import oidc_site
from tests.browser.site import Site
from tests.browser.test_console_chromium import CHROMIUM, browser
from tests.fakes.oidc import FakeOidc

__all__ = ["browser"]  # the module's Chromium fixture

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[tuple[Site, FakeOidc]]:
    with oidc_site(tmp_path_factory.mktemp("oidc-chromium"), mosquitto.port) as up:
        yield up


def test_a_user_logs_in_through_the_identity_provider(browser: Any, sso: tuple[Site, FakeOidc]) -> None:
    site, idp = sso
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site.url + "/")
    page.wait_for_selector("h1:text('Log in')")
    page.click("#sso")
    page.wait_for_url(idp.issuer + "/authorize?*")
    page.fill("#username", "olga")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Overview')")
    assert "olga (plant_it)" in page.locator("form.who").inner_text()
    assert page.url == site.url + "/"
    assert idp.refused == [] and errors == []
    page.context.close()
