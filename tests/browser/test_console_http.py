"""The console over plain HTTP against a running collector: login, sessions, CSRF, roles and scoping,
the security headers, and the API's vendor tokens scoped by the same rule."""

from __future__ import annotations

import csv
import io
import time

import httpx

from collector.audit import AuditLog
from collector.audit_evidence import append_checkpoint, generate_key, load_private_key, sign
from collector.store import open_store
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from tests.browser.site import PASSWORD, Site, cli, csrf, login, outage_month


def _audit_actions(site: Site) -> list[tuple[str, str]]:
    store = open_store(load(CollectorConfig, site.config))
    try:
        return [(e.actor, e.action) for e in AuditLog(store).entries()]
    finally:
        store.close()


def test_pages_need_a_login_and_send_a_strict_policy(site: Site) -> None:
    page = httpx.get(site.url + "/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/console/login")
    login_page = httpx.get(site.url + "/login")
    csp = login_page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert "<script>" not in login_page.text


def test_wrong_password_is_refused_and_audit_logged(site: Site) -> None:
    client = httpx.Client(base_url=site.url)
    pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    bad = client.post("/login", data={"pre": pre, "username": "pia", "password": "wrong password!"})
    assert bad.status_code == 401 and "wrong password" in bad.text
    assert ("console", "console.login_failed") in _audit_actions(site)


def test_session_cookie_is_httponly_and_strict(site: Site) -> None:
    client = httpx.Client(base_url=site.url)
    pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    done = client.post("/login", data={"pre": pre, "username": "pia", "password": PASSWORD})
    cookie = done.headers["set-cookie"]
    assert "lw_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; over HTTPS the cookie is Secure
    assert ("console:pia", "console.login") in _audit_actions(site)


def test_a_vendor_sees_only_its_own_contracts(site: Site) -> None:
    ivy = login(site, "ivy")
    assert ivy.get("/contracts/plc-support").status_code == 200
    assert ivy.get("/contracts/scada-support").status_code == 404
    listing = ivy.get("/contracts").text
    assert "plc-support" in listing and "scada-support" not in listing
    overview = ivy.get("/").text
    assert "line3-plc" in overview and "scada-srv" not in overview
    assert ivy.get("/incidents/inc-2").status_code == 404  # the scada vendor's incident
    assert ivy.get("/audit").status_code == 403 and ivy.get("/agents").status_code == 403


def test_procurement_may_not_add_maintenance(site: Site) -> None:
    pro = login(site, "pro")
    page = pro.get("/maintenance")
    assert page.status_code == 200 and "Check notice" not in page.text
    refused = pro.post("/maintenance/preview", data={"csrf": csrf(page.text), "site": "p1", "assets": "line3-plc",
                                                     "start": "2030-01-01T10:00", "end": "2030-01-01T12:00"})
    assert refused.status_code == 403
    assert pro.get("/audit").status_code == 200


def test_a_form_without_the_sessions_csrf_token_is_refused(site: Site) -> None:
    pia = login(site, "pia")
    refused = pia.post("/maintenance/add", data={"csrf": "forged", "site": "p1", "assets": "line3-plc",
                                                 "start": "2030-01-01T10:00", "end": "2030-01-01T12:00"})
    assert refused.status_code == 403 and "CSRF" in refused.text


def test_a_vendor_may_announce_only_over_its_own_scope(site: Site) -> None:
    ivy = login(site, "ivy")
    token = csrf(ivy.get("/maintenance").text)
    form = {"csrf": token, "site": "p1", "start": "2030-01-01T10:00", "end": "2030-01-01T12:00", "reason": "x"}
    assert ivy.post("/maintenance/preview", data={**form, "assets": "scada-srv"}).status_code == 403
    ok = ivy.post("/maintenance/preview", data={**form, "assets": "line3-plc"})
    assert ok.status_code == 200 and "plc-support" in ok.text and "in time" in ok.text


def test_disabled_user_loses_its_session(site: Site) -> None:
    code, _ = cli("collector", "user", "add", "tmp", "--role", "plant_it", "--password-stdin",
                  "--config", str(site.config), stdin=PASSWORD + "\n")
    assert code == 0
    tmp = login(site, "tmp")
    assert tmp.get("/").status_code == 200
    assert cli("collector", "user", "disable", "tmp", "--config", str(site.config))[0] == 0
    assert tmp.get("/").status_code == 303
    code, out = cli("collector", "user", "list", "--config", str(site.config), "--format", "json")
    assert code == 0 and '"tmp"' in out and '"disabled": null' in out  # the others are enabled


def test_api_vendor_tokens_use_the_same_scoping(site: Site) -> None:
    code, out = cli("collector", "token", "create", "--role", "vendor", "--vendor", "integrator",
                    "--config", str(site.config))
    assert code == 0
    token = out.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    month = httpx.get(site.url + "/", follow_redirects=False)  # any request: the month is now's
    assert month.status_code == 303
    from datetime import UTC, datetime

    period = datetime.now(UTC).strftime("%Y-%m")
    mine = httpx.get(f"{site.api}/reports/{period}", params={"contract": "plc-support"}, headers=headers)
    theirs = httpx.get(f"{site.api}/reports/{period}", params={"contract": "scada-support"}, headers=headers)
    listed = httpx.get(f"{site.api}/reports/{period}", headers=headers).json()
    assert mine.status_code == 200 and theirs.status_code == 403
    assert [r["contract_id"] for r in listed] == ["plc-support"]


PAGES = ["/", "/assets/p1/line3-plc", "/contracts", "/contracts/plc-support", "/incidents/inc-1",
         "/incidents/inc-2", "/maintenance", "/audit", "/agents"]


def test_every_page_renders_for_an_admin(site: Site) -> None:
    ada = login(site, "ada")
    for path in PAGES:
        page = ada.get(path)
        assert page.status_code == 200, (path, page.text[:500])
    contract = ada.get("/contracts/plc-support").text
    assert "Partial period" in contract and "Download monthly review (PDF)" in contract
    assert "Twelve-month trend" in contract and "Cap 30" in contract
    incident = ada.get("/incidents/inc-2").text
    assert "ticket raised" in incident and "left" in incident  # the S1 response clock is running


def test_hostile_requests_get_an_answer_never_a_500(site: Site) -> None:
    ada = login(site, "ada")
    token = csrf(ada.get("/maintenance").text)
    answers = [
        ada.get("/contracts/plc-support", params={"period": "9999-99"}),
        ada.get("/contracts/plc-support", params={"period": "2999-01"}),
        ada.get("/contracts/plc-support", params={"period": "'; DROP TABLE x"}),
        ada.get("/assets/p1/%3Cscript%3E"),
        ada.get("/incidents/nope"),
        ada.get("/audit", params={"actor": "%' OR 1=1 --", "limit": "5"}),
        ada.get("/audit", params={"limit": "lots"}),
        ada.get("/asset/../../etc/passwd"),
        ada.get("/static/..%2Fapp.py"),
        ada.post("/maintenance/preview", data={"csrf": token, "site": "p1", "start": "soon", "end": "later"}),
        ada.post("/maintenance/preview", data={"csrf": token, "site": "p1", "assets": "BAD NAME!",
                                               "start": "2030-01-01T10:00", "end": "2030-01-01T12:00"}),
        ada.post("/maintenance/preview", data={"csrf": token, "site": "p1", "assets": "line3-plc",
                                               "start": "2030-01-01T12:00", "end": "2030-01-01T10:00"}),
        ada.post("/maintenance/nope/cancel", data={"csrf": token}),
        ada.post("/maintenance/add", content=b"\xff\xfe" * 40_000,
                 headers={"Content-Type": "application/x-www-form-urlencoded"}),
        ada.get("/incidents/inc%00-1"),
        ada.get("/audit", params={"actor": "a\x00b"}),  # a NUL, which PostgreSQL cannot hold: refused on every store
    ]
    codes = [a.status_code for a in answers]
    assert codes[5] == 200  # a filter is only a filter
    assert all(400 <= c < 500 for i, c in enumerate(codes) if i != 5), codes
    assert "<script>" not in answers[3].text  # names are escaped where they are echoed


def test_a_window_added_and_cancelled_is_audit_logged_with_the_user(site: Site) -> None:
    pia = login(site, "pia")
    token = csrf(pia.get("/maintenance").text)
    form = {"csrf": token, "site": "p1", "assets": "line3-plc", "start": "2031-05-01T10:00",
            "end": "2031-05-01T12:00", "reason": "audit test"}
    added = pia.post("/maintenance/add", data=form)
    assert added.status_code == 303
    window = added.headers["location"].split("added=", 1)[1]
    assert pia.post(f"/maintenance/{window}/cancel", data={"csrf": token}).status_code == 303
    assert pia.post(f"/maintenance/{window}/cancel", data={"csrf": token}).status_code == 400  # already
    actions = _audit_actions(site)
    assert ("console:pia", "maintenance.recorded") in actions and ("console:pia", "maintenance.cancelled") in actions
    assert f"{window}" in pia.get("/maintenance").text


def _first_live_message(client: httpx.Client) -> str:
    with client.stream("GET", "/events") as events:
        assert events.headers["content-type"].startswith("text/event-stream")
        for line in events.iter_lines():
            if line.startswith("data: "):
                return line[6:]
    raise AssertionError("the stream ended without a message")


def test_the_live_stream_tells_a_vendor_only_of_its_own_assets(site: Site) -> None:
    assert "scada-srv" in _first_live_message(login(site, "pia"))
    mine = _first_live_message(login(site, "ivy"))
    assert "line3-plc" in mine and "scada-srv" not in mine
    assert httpx.get(site.url + "/events", follow_redirects=False).status_code == 303  # no login, no stream


def test_the_contract_page_shows_the_reports_own_figures(site: Site) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    code, out = cli("collector", "token", "create", "--role", "plant", "--config", str(site.config))
    assert code == 0
    token = out.strip().splitlines()[-1]
    outage = datetime.now(UTC).timestamp() - 2 * 86_400  # the month of inc-1 (site.history)
    period = datetime.fromtimestamp(outage, UTC).strftime("%Y-%m")
    [report] = httpx.get(f"{site.api}/reports/{period}", params={"contract": "plc-support"},
                         headers={"Authorization": f"Bearer {token}"}).json()
    page = login(site, "pro").get("/contracts/plc-support", params={"period": period}).text
    assert f"<strong>{Decimal(report['credits']['total']):.2f} EUR</strong>" in page
    assert report["credits"]["lines"]  # the outage and the late acknowledgement owe credits
    for line in report["credits"]["lines"]:
        assert f"{Decimal(line['amount']):.2f} EUR" in page and line["ref"] in page
    assert f"Scorecard: {report['scorecard']['score']} of 100" in page
    for u in report["uptime"]:
        shown = "n/a: not observed" if u["uptime_pct"] is None else f"{u['uptime_pct']} %"
        assert shown in page
    assert any(i["id"] == "inc-1" for i in report["incidents"]) and "inc-1" in page


def test_the_contract_page_flags_a_back_dated_window(site: Site) -> None:
    code, _ = cli("collector", "maintenance", "--config", str(site.config), "add", "--site", "p1",
                  "--asset", "line3-plc", "--by", "integrator", "--start", "2026-01-10T10:00", "--end",
                  "2026-01-10T12:00", "--announced-at", "2026-01-10T09:00", "--admin", "--backdate-reason",
                  "agreed by phone", "--id", "mw-phoned", "--no-publish")  # fmt: skip
    assert code == 0
    page = login(site, "pro").get("/contracts/plc-support", params={"period": "2026-01"}).text
    assert "window mw-phoned (back-dated)," in page  # 1 h notice: listed as short notice, and flagged


def test_a_window_may_select_a_line_and_must_cover_something(site: Site) -> None:
    pia, ivy = login(site, "pia"), login(site, "ivy")
    form = {"site": "p1", "start": "2031-06-01T10:00", "end": "2031-06-01T12:00", "reason": "line work"}
    line = pia.post("/maintenance/preview", data={**form, "csrf": csrf(pia.get("/maintenance").text), "lines": "a1"})
    assert line.status_code == 200
    preview = line.text.split('class="preview"', 1)[1].split("</div>", 1)[0]
    assert "line3-plc" in preview and "scada-srv" in preview  # both assets agent a1 watches
    assert "plc-support" in preview and "scada-support" in preview  # each contract's notice
    ghost = pia.post("/maintenance/preview", data={**form, "csrf": csrf(pia.get("/maintenance").text),
                                                   "assets": "ghost-plc"})
    assert ghost.status_code == 400 and "covers nothing" in ghost.text
    theirs = ivy.post("/maintenance/preview", data={**form, "csrf": csrf(ivy.get("/maintenance").text),
                                                    "lines": "a1"})
    assert theirs.status_code == 403  # the line holds another vendor's asset


def test_disputes_in_the_console_follow_roles_and_are_audit_logged(site: Site) -> None:
    ivy, sam, pro, pia = (login(site, u) for u in ("ivy", "sam", "pro", "pia"))
    page = ivy.get("/incidents/inc-1").text
    assert 'id="dispute-form"' in page
    form = {"csrf": csrf(page), "contract": "plc-support", "field": "cause", "value": "the plant's own switch",
            "reason": "the switch log shows the uplink down", "links": "https://example.test/switch-log\n"}
    assert ivy.post("/incidents/inc-1/disputes", data={**form, "csrf": "forged"}).status_code == 403
    hostile = [{**form, "links": "file:///etc/passwd"}, {**form, "field": "restored_at", "value": "soon"},
               {**form, "field": "excluded", "value": "maybe"}, {**form, "field": "nope"}, {**form, "reason": ""},
               {**form, "field": "severity", "value": "S9"}]
    assert [ivy.post("/incidents/inc-1/disputes", data=h).status_code for h in hostile] == [400] * 6
    assert ivy.post("/incidents/nope/disputes", data=form).status_code == 404
    opened = ivy.post("/incidents/inc-1/disputes", data=form)
    assert opened.status_code == 303, opened.text
    dispute = opened.headers["location"].split("disputed=", 1)[1].split("#", 1)[0]
    assert ivy.post("/incidents/inc-1/disputes", data=form).status_code == 400  # the field is disputed already
    sam_page = sam.get("/incidents/inc-2").text
    assert sam.post("/incidents/inc-1/disputes", data={**form, "csrf": csrf(sam_page)}).status_code == 404
    shown = pro.get("/incidents/inc-1").text
    assert "the switch log shows the uplink down" in shown and "open: disputed" in shown
    assert "/settle" not in shown and 'id="dispute-form"' not in shown  # procurement sees but cannot act
    settle = {"outcome": "rejected", "reason": "the switch was up all along", "value": ""}
    assert pro.post(f"/disputes/{dispute}/settle", data={**settle, "csrf": csrf(shown)}).status_code == 403
    assert ivy.post(f"/disputes/{dispute}/settle", data={**settle, "csrf": csrf(page)}).status_code == 403
    assert sam.post(f"/disputes/{dispute}/settle", data={**settle, "csrf": csrf(sam_page)}).status_code == 404
    token = csrf(pia.get("/incidents/inc-1").text)
    assert pia.post("/disputes/d-999/settle", data={**settle, "csrf": token}).status_code == 404
    assert pia.post("/disputes/%00/settle", data={**settle, "csrf": token}).status_code == 404
    assert pia.post(f"/disputes/{dispute}/settle", data={**settle, "csrf": token, "outcome": "amended",
                                                         "value": ""}).status_code == 400
    assert pia.post(f"/disputes/{dispute}/settle", data={**settle, "csrf": token}).status_code == 303
    assert pia.post(f"/disputes/{dispute}/settle", data={**settle, "csrf": token}).status_code == 400  # settled
    assert "the switch was up all along" in ivy.get("/incidents/inc-1").text
    actions = _audit_actions(site)
    assert ("console:ivy", "dispute.opened") in actions and ("console:pia", "dispute.settled") in actions


def test_exports_follow_the_viewers_scope(site: Site) -> None:
    ivy, pro = login(site, "ivy"), login(site, "pro")
    period = outage_month()
    contract = ivy.get("/contracts/plc-support", params={"period": period}).text
    pdf_link = f"/contracts/plc-support/reports/{period}.pdf"
    assert f'href="/console{pdf_link}"' in contract and f"/reports/{period}/incidents.csv" in contract
    pdf = ivy.get(pdf_link)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    table = ivy.get(f"/contracts/plc-support/reports/{period}/incidents.csv")
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert "inc-1" in table.text
    assert ivy.get(f"/contracts/scada-support/reports/{period}.pdf").status_code == 404
    report = ivy.get(f"/contracts/plc-support/reports/{period}.json")
    assert report.status_code == 200 and report.headers["content-type"] == "application/json"
    assert [r["contract_id"] for r in report.json()] == ["plc-support"] and "audit_checkpoint" in report.json()[0]
    assert ivy.get(f"/contracts/scada-support/reports/{period}.json").status_code == 404
    assert ivy.get(f"/contracts/scada-support/reports/{period}/incidents.csv").status_code == 404
    assert pro.get(f"/contracts/scada-support/reports/{period}.pdf").status_code == 200
    assert pro.get(f"/contracts/plc-support/reports/{period}/nope.csv").status_code == 404
    assert pro.get("/contracts/plc-support/reports/2999-01.pdf").status_code == 400
    assert pro.get("/contracts/plc-support/reports/x%27.pdf").status_code == 400


def test_exports_carry_the_latest_signed_checkpoint(site: Site) -> None:
    key = site.folder / "keys" / "audit.key"
    generate_key(key)
    cp = sign(load_private_key(key), 3, "ab" * 32, int(time.time() * 1000), "collector")
    append_checkpoint(load(CollectorConfig, site.config).checkpoint_file, cp)  # as `collector audit checkpoint`
    ivy, period = login(site, "ivy"), outage_month()
    table = ivy.get(f"/contracts/plc-support/reports/{period}/audit_checkpoint.csv")
    assert table.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(table.text, newline="")))
    assert (row["head"], row["key_id"]) == (cp.head, cp.key_id)
    pdf = ivy.get(f"/contracts/plc-support/reports/{period}.pdf")
    assert pdf.status_code == 200 and cp.head.encode() in pdf.content  # in its attachment, audit-checkpoint.json


def test_a_forged_forwarded_for_from_an_unlisted_address_is_ignored(site: Site) -> None:
    client = httpx.Client(base_url=site.url, headers={"X-Forwarded-For": "203.0.113.9"})
    pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
    assert client.post("/login", data={"pre": pre, "username": "pro", "password": "wrong password!"}).status_code == 401
    store = open_store(load(CollectorConfig, site.config))
    try:
        failed = [e for e in AuditLog(store).entries() if e.action == "console.login_failed"]
    finally:
        store.close()
    assert failed[-1].origin == "127.0.0.1"  # no proxy is listed: the header is not believed


def test_the_incident_page_shows_the_vendors_tool_and_escalation_notices(site: Site) -> None:
    now = int(time.time() * 1000)
    store = open_store(load(CollectorConfig, site.config))
    try:
        with store.transaction() as tx:  # as the read-back and the escalation notifier leave them
            tx.sql.execute(
                "INSERT INTO tickets (incident_id, contract_id, vendor, sink, vendor_id, vendor_display, severity,"
                " state, opened_at, raised_at, updated_at, vendor_status, vendor_assignee, vendor_first_response_at,"
                " read_back_at) VALUES ('inc-2', 'scada-support', 'scada', 'jira', '10042', 'SCADA-42', 'S1', 'open',"
                " ?, ?, ?, 'In Progress', 'joe.vendor', ?, ?)", (now - 600_000, now - 540_000, now, now - 300_000, now))
            tx.sql.execute(
                "INSERT INTO ticket_vendor_comments (incident_id, contract_id, comment_id, author, ours, body,"
                " created_at, read_at) VALUES ('inc-2', 'scada-support', 'c1', 'joe.vendor', ?, 'looking at the"
                " historian', ?, ?)", (False, now - 200_000, now))
            tx.sql.execute(
                "INSERT INTO escalation_notifications (id, timer_id, incident_id, contract_id, level, entry,"
                " contact_id, contact_name, channel, address, state, attempts, next_attempt_at, created_at, sent_at,"
                " acknowledged_at, acknowledged_by) VALUES (1, 1, 'inc-2', 'scada-support', 1, 'on-call:vendor:1',"
                " 'eve', 'Eve On-call', 'email', 'eve@scada.test', 'sent', 1, ?, ?, ?, ?, 'eve')",
                (now, now - 120_000, now - 120_000, now - 60_000))
    finally:
        store.close()
    for user in ("ada", "sam"):  # plant side and the ticket's own vendor
        page = login(site, user).get("/incidents/inc-2")
        assert page.status_code == 200
        readback = page.text.split('id="readback"', 1)[1].split("</table>", 1)[0]
        assert "In Progress" in readback and "joe.vendor" in readback and "looking at the historian" in readback
        notices = page.text.split('id="notices"', 1)[1].split("</table>", 1)[0]
        assert "Eve On-call" in notices and "eve@scada.test" in notices and "by eve" in notices
        assert "escalation level 1 notice sent (email)" in page.text  # on the timeline too
    assert login(site, "ivy").get("/incidents/inc-2").status_code == 404


def test_the_asset_page_shows_its_targets_latest_probe_figures(site: Site) -> None:
    from tests.browser.live import publish_probe_figures
    from tests.waiting import wait_until

    pia = login(site, "pia")

    def figures() -> str:
        return pia.get("/assets/p1/line3-plc").text.split('id="probes"', 1)[1].split("</table>", 1)[0]

    assert "none reported in the last 15 minutes" in figures()
    minute = int(time.time() * 1000) // 60_000 * 60_000 - 60_000
    publish_probe_figures(site.broker_port, minute, probes=12, failures=3, p95_ms=42.0)
    wait_until(lambda: "42.0 ms" in figures(), timeout=20, what="the probe figures")
    shown = figures()
    assert "<td>12</td><td>3</td>" in shown and "21.0 ms" in shown and "84.0 ms" in shown
    assert login(site, "sam").get("/assets/p1/line3-plc").status_code == 404  # another vendor's asset


def test_agent_health_shows_the_outbox_figures_of_the_latest_heartbeat(site: Site) -> None:
    from tests.browser.live import publish_heartbeat
    from tests.waiting import wait_until

    pia = login(site, "pia")

    def outbox_cell(path: str) -> str:
        table = pia.get(path).text.split('id="agents"', 1)[1].split("</table>", 1)[0]
        row = next(r for r in table.split("<tr>") if "<td>a1</td>" in r)
        return row.split("</td>")[8]  # the Outbox column

    now = int(time.time() * 1000)
    publish_heartbeat(site.broker_port, now, outbox_depth=42, oldest_unacked_at=now - 125_000)
    wait_until(lambda: "42 unacknowledged" in outbox_cell("/agents"), timeout=20, what="the outbox figures")
    for path in ("/agents", "/"):  # the agents page and the overview's agent health
        shown = outbox_cell(path)
        assert "42 unacknowledged, oldest 2m 5s old" in shown, (path, shown)
