"""The console in Debian's Chromium, driven by Playwright (never a downloaded browser): every role's view
and what it may not open or do, maintenance windows added (by plant IT and by a vendor over its own scope)
and cancelled, a change window approved, a live state change arriving by server-sent events, the review PDF,
a CSV table and the JSON report downloaded, screenshots of every page, and axe-core's accessibility rules
on each page."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linewarden.domain import State
from tests.browser import expected
from tests.browser.artefacts import artefacts_dir
from tests.browser.live import publish_state
from tests.browser.site import PASSWORD, Site, outage_month

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PAGES = {"overview": "/", "asset": "/assets/p1/line3-plc", "contracts": "/contracts",
         "contract": "/contracts/plc-support", "incident": "/incidents/inc-2", "maintenance": "/maintenance",
         "changes": "/changes", "renewals": "/renewals", "audit": "/audit", "agents": "/agents"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install "
                                                              "chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return artefacts_dir(tmp_path_factory, "chromium")


@pytest.fixture(scope="module")
def axe_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: axe-core cannot be fetched (apt-get install npm)")
    cache = tmp_path_factory.mktemp("axe")
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), "axe-core@4"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"npm could not install axe-core@4 (no registry?): {done.stderr[-300:]}")
    return (cache / "node_modules" / "axe-core" / "axe.min.js").read_text()


def _login(browser: Any, site: Site, user: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    page.goto(site.url + "/")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Overview')")
    return page


def test_every_page_as_admin_with_screenshots_and_no_script_errors(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "ada")
    for name, path in PAGES.items():
        page.goto(site.url + path)
        assert page.locator("h1").count() == 1
        text = page.locator("main").inner_text()
        assert [p for p in expected.parts(path) if p not in text] == [], name
        assert page.locator("main svg").count() >= (1 if expected.draws(path) else 0), name
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    page.goto(site.url + "/audit")
    page.fill("#f-action", "console.login")
    page.click("form.inline button")
    page.wait_for_url("**/audit?*action=console.login*")
    actions = page.locator("main tbody tr td:nth-child(5)").all_inner_texts()
    assert actions and set(actions) == {"console.login"}
    assert page.errors == []  # no CSP violation or script error on any page
    page.context.close()


def test_every_page_is_readable_without_javascript(browser: Any, site: Site) -> None:
    page = browser.new_context(java_script_enabled=False).new_page()
    page.goto(site.url + "/")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")  # a plain form post
    page.wait_for_selector("h1:text('Overview')")
    for name, path in PAGES.items():
        page.goto(site.url + path)
        assert page.locator("h1").count() == 1 and len(page.locator("main").inner_text()) > 60, name
        assert page.locator("h1").inner_text() not in ("Not found", "Not allowed", "Not done"), name
    page.goto(site.url + "/")
    assert page.locator('[data-asset="p1/a1/line3-plc"]').inner_text() in ("UP", "DOWN")  # states without a script
    page.context.close()


def test_a_vendor_sees_its_own_contract_and_not_the_others(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "ivy")
    page.goto(site.url + "/contracts")
    assert page.locator("a:text('plc-support')").count() == 1
    assert page.locator("text=scada-support").count() == 0
    page.goto(site.url + "/contracts/scada-support")
    assert page.locator("h1").inner_text() == "Not found"
    page.goto(site.url + "/")
    assert page.locator("text=scada-srv").count() == 0
    assert page.locator("nav >> text=Audit").count() == 0
    page.screenshot(path=str(shots / "vendor-overview.png"), full_page=True)
    for path, answer in {"/incidents/inc-2": "Not found", "/assets/p1/scada-srv": "Not found",
                         "/changes": "Not allowed", "/audit": "Not allowed", "/agents": "Not allowed"}.items():
        page.goto(site.url + path)
        assert page.locator("h1").inner_text() == answer, path
    page.context.close()


def test_procurement_sees_contracts_but_cannot_add_maintenance(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "pro")
    page.goto(site.url + "/contracts/scada-support")
    assert "Contract scada-support" in page.locator("h1").inner_text()
    page.goto(site.url + "/maintenance")
    assert page.locator("#check-window").count() == 0
    assert page.locator("text=may look at windows but not announce").count() == 1
    page.screenshot(path=str(shots / "procurement-maintenance.png"), full_page=True)
    # The form is not offered; sent anyway from this browser's session, with its CSRF token, it is refused.
    token = page.locator("form.who input[name=csrf]").get_attribute("value")
    window = {"csrf": token, "site": "p1", "assets": "line3-plc", "start": "2031-01-01T10:00",
              "end": "2031-01-01T12:00", "reason": "procurement tries"}
    assert page.request.post(site.url + "/maintenance/preview", form=window).status == 403
    assert page.request.post(site.url + "/maintenance/add", form=window).status == 403
    page.context.close()


def _announce(page: Any, site: Site, assets: str, reason: str, kind: str = "maintenance") -> None:
    """Fill in the maintenance form (4 days ahead by default) and check its notice."""
    page.goto(site.url + "/maintenance")
    page.select_option("#kind", kind)
    page.fill("#assets", assets)
    page.fill("#reason", reason)
    page.click("#check-window")


def test_plant_it_adds_a_window_seeing_the_notice_first_and_cancels_it(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "pia")
    _announce(page, site, "line3-plc", "firmware update from the browser test")
    preview = page.locator(".preview")
    assert "plc-support" in preview.inner_text() and "in time" in preview.inner_text()  # 4 days ahead, 72 h needed
    assert "given" in preview.inner_text() and "required" in preview.inner_text()  # before saving
    page.screenshot(path=str(shots / "maintenance-preview.png"), full_page=True)
    page.click("#save-window")
    row = page.locator("#upcoming tr:has-text('firmware update from the browser test')")
    row.wait_for()
    assert "console:pia" in row.inner_text() and "cancelled" not in row.inner_text()
    row.locator("button:text('Cancel')").click()
    page.wait_for_selector("#upcoming tr:has-text('firmware update from the browser test') >> text=cancelled")
    page.screenshot(path=str(shots / "maintenance-cancelled.png"), full_page=True)
    assert page.errors == []
    page.context.close()


def test_a_vendor_announces_over_its_own_scope_only(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "ivy")
    _announce(page, site, "line3-plc", "vendor window from chromium")
    preview = page.locator(".preview").inner_text()
    assert "plc-support" in preview and "scada-support" not in preview and "required" in preview
    page.click("#save-window")
    page.wait_for_selector("#upcoming tr:has-text('vendor window from chromium') >> text=console:ivy")
    page.screenshot(path=str(shots / "vendor-maintenance.png"), full_page=True)
    _announce(page, site, "scada-srv", "another vendor's asset")
    assert page.locator("h1").inner_text() == "Not allowed"
    page.context.close()


def test_plant_it_approves_a_change_window(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "pia")
    _announce(page, site, "line3-plc", "change from chromium", kind="change")
    page.click("#save-window")
    row = page.locator("#upcoming tr:has-text('change from chromium')")
    row.wait_for()
    window = (row.get_attribute("id") or "").removeprefix("window-")
    page.goto(site.url + "/changes")
    assert "not approved" in page.locator(f"#change-window-{window}").inner_text()
    page.fill(f"#ref-{window}", "CAB-CR-1")
    page.click(f"#change-window-{window} button")
    page.wait_for_selector(f"#change-window-{window} >> text=CAB-CR-1 by console:pia")
    page.screenshot(path=str(shots / "changes-approved.png"), full_page=True)
    assert page.errors == []
    page.context.close()


def test_a_state_change_arrives_live(browser: Any, site: Site, shots: Path) -> None:
    page = _login(browser, site, "pia")
    cell = page.locator('[data-asset="p1/a1/line3-plc"]')
    assert cell.inner_text() == "UP"
    page.wait_for_selector("#live-status:text('Live')")
    page.evaluate("window.__same_page = true")
    publish_state(site.broker_port, State.DOWN, "live test: connection refused")
    page.wait_for_selector('[data-asset="p1/a1/line3-plc"]:text-is("DOWN")', timeout=20_000)
    assert page.evaluate("window.__same_page") is True  # updated in place, not reloaded
    assert "live test: connection refused" in page.locator('[data-reason="p1/a1/line3-plc"]').inner_text()
    page.screenshot(path=str(shots / "overview-live.png"), full_page=True)
    page.context.close()


def _incident_row(page: Any, incident: str) -> tuple[str, str]:
    """(severity, disputed) of the incident's row on a contract page."""
    row = page.locator(f"tr:has(a:text-is('{incident}'))")
    return row.locator("td").nth(2).inner_text(), row.locator("td.disputed").inner_text()


def test_a_vendor_disputes_plant_it_settles_and_the_contract_page_follows(browser: Any, site: Site,
                                                                          shots: Path) -> None:
    contract = site.url + f"/contracts/plc-support?period={outage_month()}"
    ivy = _login(browser, site, "ivy")
    ivy.goto(contract)
    assert _incident_row(ivy, "inc-1") == ("S1", "no")
    ivy.goto(site.url + "/incidents/inc-1")
    ivy.select_option("#d-field", "severity")
    ivy.fill("#d-value", "S3")
    ivy.fill("#d-reason", "a spare line took over: production was never stopped")
    ivy.fill("#d-links", "https://example.test/shift-log")
    ivy.click("#open-dispute")
    ivy.wait_for_selector("#disputes >> text=open: disputed")
    ivy.screenshot(path=str(shots / "incident-disputed.png"), full_page=True)
    ivy.goto(contract)
    assert _incident_row(ivy, "inc-1") == ("S1", "disputed")
    pia = _login(browser, site, "pia")
    pia.goto(site.url + "/incidents/inc-1")
    dispute = pia.locator("#disputes tr[id^='dispute-']").first.get_attribute("id")
    assert dispute is not None
    pia.select_option(f"#outcome-{dispute[8:]}", "accepted")
    pia.fill(f"#sreason-{dispute[8:]}", "the shift log confirms the spare line")
    pia.click(f"#settle-{dispute[8:]}")
    pia.wait_for_selector(f"#{dispute} .outcome:text-is('accepted')")
    assert "console:pia" in pia.locator(f"#{dispute}").inner_text()
    pia.screenshot(path=str(shots / "incident-settled.png"), full_page=True)
    ivy.goto(contract)
    assert _incident_row(ivy, "inc-1") == ("S3", "no")
    ivy.screenshot(path=str(shots / "contract-after-dispute.png"), full_page=True)
    assert ivy.errors == [] and pia.errors == []
    ivy.context.close()
    pia.context.close()


def test_the_review_pdf_downloads_and_is_scoped(browser: Any, site: Site, shots: Path) -> None:
    period = outage_month()
    page = _login(browser, site, "ivy", accept_downloads=True)
    page.goto(site.url + f"/contracts/plc-support?period={period}")
    page.screenshot(path=str(shots / "contract-exports.png"), full_page=True)
    with page.expect_download() as started:
        page.click("#review-pdf")
    pdf = Path(started.value.path())
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "plc-support" in text
    with page.expect_download() as started:
        page.click("#csv-incidents")
    rows = list(csv.DictReader(io.StringIO(Path(started.value.path()).read_text())))
    assert "inc-1" in {r["incident"] for r in rows}
    with page.expect_download() as started:
        page.click("#report-json")
    [report] = json.loads(Path(started.value.path()).read_text())
    assert report["contract_id"] == "plc-support" and report["period"]["label"] == period
    for export in (f"{period}.pdf", f"{period}.json", f"{period}/incidents.csv"):
        theirs = page.request.get(site.url + f"/contracts/scada-support/reports/{export}")
        assert theirs.status == 404, export  # another vendor's review
    page.context.close()


def _serious(page: Any, axe_source: str) -> list[tuple[str, str, list[Any]]]:
    page.evaluate(axe_source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


def test_the_login_page_is_accessible(browser: Any, site: Site, axe_source: str, shots: Path) -> None:
    page = browser.new_context(bypass_csp=True).new_page()
    page.goto(site.url + "/login")
    page.screenshot(path=str(shots / "login.png"), full_page=True)
    assert _serious(page, axe_source) == []
    page.context.close()


def test_no_serious_accessibility_violations(browser: Any, site: Site, axe_source: str) -> None:
    # axe is injected past the page's own Content-Security-Policy, which would (rightly) refuse it
    page = _login(browser, site, "ada", bypass_csp=True)
    found = {}
    for name, path in {**PAGES, "not-found": "/contracts/nope"}.items():
        page.goto(site.url + path)
        bad = _serious(page, axe_source)
        if bad:
            found[name] = bad
    page.context.close()
    vendor = _login(browser, site, "ivy", bypass_csp=True)
    vendor.goto(site.url + "/incidents/inc-1")  # with the form to open a dispute
    found["incident-as-vendor"] = _serious(vendor, axe_source)
    vendor.context.close()
    assert {k: v for k, v in found.items() if v} == {}
