"""The second factor in Debian's Chromium: an admin enrols (key read off the page, code computed here),
sees the recovery codes, logs out, and logs in again with password then code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulators.broker import Mosquitto
from tests.browser.site import PASSWORD, Site, prepare, running, totp
from tests.browser.test_console_chromium import CHROMIUM, browser

__all__ = ["browser"]  # the module's Chromium fixture

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Site]:
    with running(prepare(tmp_path_factory.mktemp("mfa-chromium"), mosquitto.port)) as up:
        yield up


def _password(page: Any, site: Site) -> None:
    page.goto(site.url + "/")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_an_admin_enrols_and_logs_in_with_a_code(browser: Any, site: Site) -> None:
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _password(page, site)
    page.wait_for_selector("h1:text('Set up a second factor')")
    secret = page.locator("#totp-secret").inner_text()
    assert page.locator("#totp-uri").inner_text().startswith("otpauth://totp/linewarden%3Aada?secret=" + secret)
    page.fill("#code", totp(secret))
    page.click("button:text('Turn on')")
    page.wait_for_selector("h1:text('Recovery codes')")
    assert page.locator("#recovery-codes li").count() == 10
    page.click("text=Continue to the console")
    page.wait_for_selector("h1:text('Overview')")
    page.click("button:text('Log out')")
    page.wait_for_selector("h1:text('Log in')")

    _password(page, site)
    page.wait_for_selector("h1:text('Second factor')")
    page.goto(site.url + "/contracts")  # no way round the code
    page.wait_for_selector("h1:text('Log in')")
    _password(page, site)
    page.wait_for_selector("h1:text('Second factor')")
    page.fill("#code", totp(secret, 1))  # the enrolment used this step's code
    page.click("button:text('Continue')")
    page.wait_for_selector("h1:text('Overview')")
    assert errors == []
    page.context.close()
