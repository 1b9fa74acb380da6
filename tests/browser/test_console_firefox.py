"""The console in Debian's Firefox ESR, driven over Marionette: each role logs in, every page it may open
renders without a script error, a vendor cannot open another vendor's contract, and screenshots are kept."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.artefacts import artefacts_dir
from tests.browser.site import PASSWORD, Site, free_port

FIREFOX = shutil.which("firefox-esr")
pytestmark = pytest.mark.skipif(FIREFOX is None, reason="Debian's firefox-esr is not installed (apt-get install "
                                                        "firefox-esr; .ci/run installs it)")
PREFS = {
    "browser.shell.checkDefaultBrowser": "false", "app.update.disabledForTesting": "true",
    "datareporting.policy.dataSubmissionEnabled": "false", "toolkit.telemetry.reportingpolicy.firstRun": "false",
    "network.captive-portal-service.enabled": "false", "browser.safebrowsing.malware.enabled": "false",
    "browser.safebrowsing.phishing.enabled": "false", "extensions.update.enabled": "false",
    "browser.startup.homepage_override.mstone": '"ignore"', "network.connectivity-service.enabled": "false",
}
ROLE_PAGES = {
    "ada": ["/", "/assets/p1/line3-plc", "/contracts", "/contracts/scada-support", "/incidents/inc-2",
            "/maintenance", "/audit", "/agents"],
    "pia": ["/", "/contracts/plc-support", "/maintenance", "/agents"],
    "pro": ["/", "/contracts/scada-support", "/audit"],
    "ivy": ["/", "/contracts/plc-support", "/incidents/inc-1", "/maintenance"],
    "sam": ["/", "/contracts/scada-support", "/incidents/inc-2"],
}


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    marionette = pytest.importorskip("marionette_driver.marionette")
    assert FIREFOX is not None
    profile = tmp_path_factory.mktemp("firefox-profile")
    port = free_port()
    prefs = {**PREFS, "marionette.port": str(port)}
    (profile / "user.js").write_text("".join(f'user_pref("{k}", {v});\n' for k, v in prefs.items()))
    log = (profile.parent / "firefox.log").open("wb")
    proc = subprocess.Popen([FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)],
                            stdout=log, stderr=subprocess.STDOUT, env={"MOZ_HEADLESS": "1", "HOME": str(profile),
                                                                       "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("firefox-esr did not open its Marionette port") from None
                time.sleep(0.3)
        client = marionette.Marionette(host="127.0.0.1", port=port)
        client.start_session()
        yield client
        client.delete_session()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_for(client: Any, css: str) -> Any:
    from marionette_driver import By, Wait

    return Wait(client, timeout=20).until(lambda c: c.find_element(By.CSS_SELECTOR, css))


def _login(client: Any, site: Site, user: str) -> None:
    from marionette_driver import By

    client.navigate(site.url + "/login")
    client.find_element(By.ID, "username").send_keys(user)
    client.find_element(By.ID, "password").send_keys(PASSWORD)
    client.find_element(By.CSS_SELECTOR, "form.login button").click()
    _wait_for(client, "header nav")


def _logout(client: Any) -> None:
    from marionette_driver import By

    client.find_element(By.CSS_SELECTOR, "form.who button").click()
    _wait_for(client, "form.login")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artefacts_dir(tmp_path_factory, "firefox")


@pytest.mark.parametrize("user", list(ROLE_PAGES))
def test_each_role_sees_its_pages(firefox: Any, site: Site, shots: Path, user: str) -> None:
    from marionette_driver import By

    _login(firefox, site, user)
    for path in ROLE_PAGES[user]:
        firefox.navigate(site.url + path)
        heading = _wait_for(firefox, "h1").text
        assert heading not in ("Not found", "Not allowed", "Not done"), (user, path)
        assert firefox.find_elements(By.CSS_SELECTOR, "footer")  # the whole page arrived
        name = f"{user}{path.replace('/', '_') or '_'}.png"
        (shots / name).write_bytes(base64.b64decode(firefox.screenshot(full=True)))
    if user == "ivy":
        firefox.navigate(site.url + "/contracts/scada-support")
        assert _wait_for(firefox, "h1").text == "Not found"
    if user == "pro":
        firefox.navigate(site.url + "/maintenance")
        _wait_for(firefox, "h1")
        assert not firefox.find_elements(By.ID, "check-window")
    firefox.navigate(site.url + "/")
    _logout(firefox)


def test_plant_it_adds_a_window_and_sees_a_live_change(firefox: Any, site: Site, shots: Path) -> None:
    from marionette_driver import By, Wait, errors

    from linewarden.domain import State
    from tests.browser.live import publish_state

    _login(firefox, site, "pia")
    firefox.navigate(site.url + "/maintenance")
    firefox.find_element(By.ID, "assets").send_keys("line3-plc")
    firefox.find_element(By.ID, "reason").send_keys("firefox window")
    firefox.find_element(By.ID, "check-window").click()
    assert "in time" in _wait_for(firefox, ".preview").text
    firefox.find_element(By.ID, "save-window").click()
    Wait(firefox, timeout=20).until(lambda c: "firefox window" in c.find_element(By.ID, "upcoming").text)
    (shots / "pia_maintenance_added.png").write_bytes(base64.b64decode(firefox.screenshot(full=True)))
    firefox.navigate(site.url + "/")
    Wait(firefox, timeout=20).until(lambda c: "Live" in c.find_element(By.ID, "live-status").text)
    firefox.execute_script("window.__same_page = true", sandbox=None)
    publish_state(site.broker_port, State.DEGRADED, "firefox live test")
    cell = '[data-asset="p1/a1/line3-plc"]'
    # A live update replaces the cell: one found just before may be gone when its text is read (stale).
    Wait(firefox, timeout=20, ignored_exceptions=(errors.NoSuchElementException, errors.StaleElementException)).until(
        lambda c: c.find_element(By.CSS_SELECTOR, cell).text == "DEGRADED"
    )
    assert firefox.execute_script("return window.__same_page === true", sandbox=None)  # updated in place
    _logout(firefox)


def _incident_row(client: Any, incident: str) -> tuple[str, str]:
    """(severity, disputed) of the incident's row on the contract page shown."""
    from marionette_driver import By

    for row in client.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = row.find_elements(By.CSS_SELECTOR, "td")
        if cells and cells[0].text == incident:
            return cells[2].text, row.find_element(By.CSS_SELECTOR, "td.disputed").text
    raise AssertionError(f"no row of {incident}")


def test_a_dispute_opened_and_settled_and_the_review_pdf(firefox: Any, site: Site, shots: Path) -> None:
    from marionette_driver import By, Wait

    from tests.browser.site import outage_month

    period = outage_month()
    contract = site.url + f"/contracts/plc-support?period={period}"
    _login(firefox, site, "ivy")
    firefox.navigate(site.url + "/incidents/inc-1")
    firefox.find_element(By.CSS_SELECTOR, "#d-field option[value='severity']").click()
    firefox.find_element(By.ID, "d-value").send_keys("S2")
    firefox.find_element(By.ID, "d-reason").send_keys("the line ran on its spare")
    firefox.find_element(By.ID, "open-dispute").click()
    Wait(firefox, timeout=20).until(lambda c: "open: disputed" in c.find_element(By.ID, "disputes").text)
    firefox.navigate(contract)
    _wait_for(firefox, "footer")
    assert _incident_row(firefox, "inc-1") == ("S1", "disputed")
    link = firefox.find_element(By.ID, "review-pdf").get_attribute("href")
    answer = firefox.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " fetch(arguments[0]).then(r => done([r.status, r.headers.get('content-type')]), e => done([0, String(e)]));",
        script_args=[link], sandbox=None)
    assert answer == [200, "application/pdf"]
    firefox.navigate(site.url + f"/contracts/scada-support/reports/{period}.pdf")
    assert _wait_for(firefox, "h1").text == "Not found"  # another vendor's review
    firefox.navigate(site.url + "/")
    _logout(firefox)
    _login(firefox, site, "pia")
    firefox.navigate(site.url + "/incidents/inc-1")
    form = _wait_for(firefox, "form.settle")
    form.find_element(By.CSS_SELECTOR, "option[value='amended']").click()
    form.find_element(By.CSS_SELECTOR, "input[name='value']").send_keys("S3")
    form.find_element(By.CSS_SELECTOR, "input[name='reason']").send_keys("spare line, but slower: S3")
    form.find_element(By.CSS_SELECTOR, "button").click()
    Wait(firefox, timeout=20).until(lambda c: "amended" in c.find_element(By.CSS_SELECTOR, "#disputes .outcome").text)
    (shots / "pia_incident_settled.png").write_bytes(base64.b64decode(firefox.screenshot(full=True)))
    firefox.navigate(contract)
    _wait_for(firefox, "footer")
    assert _incident_row(firefox, "inc-1") == ("S3", "no")
    (shots / "pia_contract_after_dispute.png").write_bytes(base64.b64decode(firefox.screenshot(full=True)))
    _logout(firefox)
