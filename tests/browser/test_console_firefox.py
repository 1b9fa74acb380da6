"""The console in Debian's Firefox ESR, driven over Marionette: each role logs in, every page it may open
renders without a script error or a Content-Security-Policy violation (read from the browser's own console),
what a role may not open or do is refused, windows are added and cancelled, a change window is approved, a
live state change arrives, the review PDF, a CSV table and the JSON report are downloaded, and screenshots
of every page are kept."""

from __future__ import annotations

import base64
import csv
import io
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import expected
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
            "/maintenance", "/changes", "/renewals", "/audit?action=console.login", "/agents"],
    "pia": ["/", "/assets/p1/line3-plc", "/contracts/plc-support", "/incidents/inc-1", "/maintenance", "/changes",
            "/agents"],
    "pro": ["/", "/contracts/scada-support", "/maintenance", "/changes", "/renewals", "/audit", "/agents"],
    "ivy": ["/", "/assets/p1/line3-plc", "/contracts", "/contracts/plc-support", "/incidents/inc-1", "/maintenance"],
    "sam": ["/", "/contracts/scada-support", "/incidents/inc-2"],
}
REFUSED = {  # what each role may not open, and the page it gets instead
    "ivy": {"/contracts/scada-support": "Not found", "/incidents/inc-2": "Not found",
            "/assets/p1/scada-srv": "Not found", "/changes": "Not allowed", "/audit": "Not allowed",
            "/agents": "Not allowed", "/renewals": "Not allowed"},
    "sam": {"/contracts/plc-support": "Not found", "/incidents/inc-1": "Not found"},
    "pia": {"/renewals": "Not allowed"},
}
DOWNLOADS = "application/pdf,text/csv,application/json"
# Errors only (not warnings or notes) of web pages (not of the browser itself), since the last call.
ERRORS_SCRIPT = """
const found = Services.console.getMessageArray() || [];
Services.console.reset();
return found.filter(m => m instanceof Ci.nsIScriptError && !m.isFromChromeContext && (m.flags & 9) === 0)
            .map(m => m.category + ": " + m.errorMessage + " (" + m.sourceName + ")");
"""


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    marionette = pytest.importorskip("marionette_driver.marionette")
    assert FIREFOX is not None
    profile = tmp_path_factory.mktemp("firefox-profile")
    downloads = tmp_path_factory.mktemp("firefox-downloads")
    port = free_port()
    prefs = {**PREFS, "marionette.port": str(port), "browser.download.folderList": "2",
             "browser.download.dir": f'"{downloads}"', "browser.download.useDownloadDir": "true",
             "browser.download.always_ask_before_handling_new_types": "false",
             "browser.helperApps.neverAsk.saveToDisk": f'"{DOWNLOADS}"', "pdfjs.disabled": "true"}
    (profile / "user.js").write_text("".join(f'user_pref("{k}", {v});\n' for k, v in prefs.items()))
    log = (profile.parent / "firefox.log").open("wb")
    proc = subprocess.Popen([FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)],
                            stdout=log, stderr=subprocess.STDOUT,
                            # system access: to read the browser's console (script errors, CSP violations)
                            env={"MOZ_HEADLESS": "1", "MOZ_REMOTE_ALLOW_SYSTEM_ACCESS": "1", "HOME": str(profile),
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
        client.downloads = downloads
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


def _page_errors(client: Any) -> list[str]:
    """The script errors and Content-Security-Policy violations of the pages since the last call."""
    with client.using_context(client.CONTEXT_CHROME):
        return list(client.execute_script(ERRORS_SCRIPT))


def _shot(client: Any, shots: Path, name: str) -> None:
    (shots / f"{name}.png").write_bytes(base64.b64decode(client.screenshot(full=True)))


def _download(client: Any, link_id: str) -> Path:
    """Click the link and wait for its file in the download folder (the browser's own download)."""
    from marionette_driver import By

    from tests.waiting import wait_until

    before = set(client.downloads.iterdir())
    client.find_element(By.ID, link_id).click()

    def done() -> Path | None:
        new = [p for p in client.downloads.iterdir() if p not in before and not p.name.endswith(".part")]
        return new[0] if new and new[0].stat().st_size and not list(client.downloads.glob("*.part")) else None

    found = wait_until(done, timeout=30, what=f"the download of #{link_id}")
    assert found is not None
    return found


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
    from marionette_driver import By, Wait

    _login(firefox, site, user)
    _page_errors(firefox)
    for path in ROLE_PAGES[user]:
        firefox.navigate(site.url + path)
        heading = _wait_for(firefox, "h1").text
        assert heading not in ("Not found", "Not allowed", "Not done"), (user, path)
        assert firefox.find_elements(By.CSS_SELECTOR, "footer")  # the whole page arrived
        if user == "ada":
            text = firefox.find_element(By.ID, "main").text
            assert [p for p in expected.parts(path) if p not in text] == [], path
            assert len(firefox.find_elements(By.CSS_SELECTOR, "main svg")) >= (1 if expected.draws(path) else 0)
        _shot(firefox, shots, f"{user}{path.split('?')[0].replace('/', '_') or '_'}")
        assert _page_errors(firefox) == [], (user, path)  # no script error, no CSP violation
    if user == "ada":
        firefox.navigate(site.url + "/audit")
        _wait_for(firefox, "#f-action").send_keys("console.login")
        firefox.find_element(By.CSS_SELECTOR, "form.inline button").click()
        Wait(firefox, timeout=20).until(lambda c: "action=console.login" in c.get_url())
        actions = {td.text for td in firefox.find_elements(By.CSS_SELECTOR, "main tbody tr td:nth-child(5)")}
        assert actions == {"console.login"}
    for path, answer in REFUSED.get(user, {}).items():
        firefox.navigate(site.url + path)
        assert _wait_for(firefox, "h1").text == answer, (user, path)
    if user == "pro":
        firefox.navigate(site.url + "/maintenance")
        _wait_for(firefox, "h1")
        assert not firefox.find_elements(By.ID, "check-window")
        assert "may look at windows but not announce" in firefox.find_element(By.ID, "main").text
    if user == "ivy":
        firefox.navigate(site.url + "/")
        assert "scada-srv" not in _wait_for(firefox, "#main").text
        assert not firefox.find_elements(By.CSS_SELECTOR, "nav a[href$='/audit']")
    firefox.navigate(site.url + "/")
    _logout(firefox)


def _announce(client: Any, site: Site, assets: str, reason: str, kind: str = "maintenance") -> None:
    """Fill in the maintenance form (4 days ahead by default) and check its notice."""
    from marionette_driver import By

    client.navigate(site.url + "/maintenance")
    client.find_element(By.CSS_SELECTOR, f"#kind option[value='{kind}']").click()
    client.find_element(By.ID, "assets").send_keys(assets)
    client.find_element(By.ID, "reason").send_keys(reason)
    client.find_element(By.ID, "check-window").click()


def _saved(client: Any, reason: str) -> Any:
    """Save the window previewed; its row in the upcoming windows once shown."""
    from marionette_driver import By, Wait

    client.find_element(By.ID, "save-window").click()
    return Wait(client, timeout=20).until(lambda c: _window_row(c, reason))


def _window_row(client: Any, reason: str) -> Any:
    from marionette_driver import By

    for row in client.find_elements(By.CSS_SELECTOR, "#upcoming tbody tr"):
        if reason in row.text:
            return row
    return None


def test_plant_it_adds_and_cancels_a_window_and_sees_a_live_change(firefox: Any, site: Site, shots: Path) -> None:
    from marionette_driver import By, Wait, errors

    from linewarden.domain import State
    from tests.browser.live import publish_state

    _login(firefox, site, "pia")
    _announce(firefox, site, "line3-plc", "firefox window")
    preview = _wait_for(firefox, ".preview").text
    assert "plc-support" in preview and "in time" in preview  # 4 days ahead, 72 h required: shown before saving
    _shot(firefox, shots, "pia_maintenance_preview")
    row = _saved(firefox, "firefox window")
    assert "console:pia" in row.text and "cancelled" not in row.text
    _shot(firefox, shots, "pia_maintenance_added")
    row.find_element(By.CSS_SELECTOR, "button").click()  # Cancel
    Wait(firefox, timeout=20, ignored_exceptions=(errors.StaleElementException,)).until(
        lambda c: "cancelled" in _window_row(c, "firefox window").text)
    _shot(firefox, shots, "pia_maintenance_cancelled")
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
    assert _page_errors(firefox) == []
    _logout(firefox)


def test_a_vendor_announces_over_its_own_scope_only(firefox: Any, site: Site, shots: Path) -> None:
    _login(firefox, site, "ivy")
    _announce(firefox, site, "line3-plc", "vendor firmware window")
    preview = _wait_for(firefox, ".preview").text
    assert "plc-support" in preview and "scada-support" not in preview and "required" in preview
    assert "console:ivy" in _saved(firefox, "vendor firmware window").text
    _shot(firefox, shots, "ivy_maintenance_added")
    _announce(firefox, site, "scada-srv", "another vendor's asset")
    assert _wait_for(firefox, "h1").text == "Not allowed"
    firefox.navigate(site.url + "/")
    _logout(firefox)


def test_plant_it_approves_a_change_window(firefox: Any, site: Site, shots: Path) -> None:
    from marionette_driver import By, Wait, errors

    _login(firefox, site, "pia")
    _announce(firefox, site, "line3-plc", "firefox change", kind="change")
    _wait_for(firefox, ".preview")
    window = _saved(firefox, "firefox change").get_attribute("id").removeprefix("window-")
    firefox.navigate(site.url + "/changes")
    assert "not approved" in _wait_for(firefox, f"#change-window-{window}").text
    firefox.find_element(By.ID, f"ref-{window}").send_keys("CAB-FF-1")
    firefox.find_element(By.CSS_SELECTOR, f"#change-window-{window} button").click()
    Wait(firefox, timeout=20, ignored_exceptions=(errors.NoSuchElementException, errors.StaleElementException)).until(
        lambda c: "CAB-FF-1 by console:pia" in c.find_element(By.ID, f"change-window-{window}").text)
    _shot(firefox, shots, "pia_changes_approved")
    assert _page_errors(firefox) == []
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
    _shot(firefox, shots, "ivy_contract_disputed")
    pdf = _download(firefox, "review-pdf")
    assert pdf.name == f"review-plc-support-{period}.pdf" and pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "plc-support" in text
    rows = list(csv.DictReader(io.StringIO(_download(firefox, "csv-incidents").read_text())))
    assert "inc-1" in {r["incident"] for r in rows}
    [report] = json.loads(_download(firefox, "report-json").read_text())
    assert report["contract_id"] == "plc-support" and report["period"]["label"] == period
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
