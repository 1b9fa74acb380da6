"""The contract's own life as procurement uses it: renewals due with the scorecard trend (CLI, API, console),
and e-signature evidence imported, checked against the contract's document hash, shown and audit-logged."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import httpx

from collector.audit import AuditLog
from collector.console.app import create_console
from collector.console.users import add_user
from collector.service import wall_clock_ms
from collector.store import open_store
from linewarden.book import load_book
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig, ConsoleConfig
from linewarden.config.load import load
from tests.integration.review_helpers import imported_config, running_api
from tests.integration.test_collector_cli import CONTRACT

ESIGN = Path(__file__).parent.parent / "data" / "esign"
SIGNED = (ESIGN / "signed-contract.pdf").read_bytes()


def _with_life(tmp_path: Path) -> tuple[Path, date]:
    config = imported_config(tmp_path)
    today = date.today()
    life = CONTRACT.replace('id = "plc-support"', 'id = "plc-renewal"').replace(
        hashlib.sha256(b"%PDF-1.4 signed support contract, page 1 of 1").hexdigest(), hashlib.sha256(SIGNED).hexdigest()
    ) + f"""
[term]
start = {today - timedelta(days=100)}
end = {today + timedelta(days=60)}
renewal_notice = "30 days"

[termination]
for_convenience = "6 months"
duties = ["hand over the PLC program sources", "export all monitoring data"]

[[escrow]]
item = "PLC program sources"
agent = "EscrowTech GmbH"
deposited = {today - timedelta(days=200)}
refresh = "3 months"
"""
    (tmp_path / "contracts" / "renewal.toml").write_text(life)
    return config, today


def _cli(*args: str) -> int:
    return main(["collector", *args])


def test_renewals_and_signatures_in_the_cli(tmp_path, capsys):
    config, today = _with_life(tmp_path)
    capsys.readouterr()
    assert _cli("contract", "renewals", "--config", str(config), "--days", "20", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == [], "the notice deadline is 31 days away"
    assert _cli("contract", "renewals", "--config", str(config), "--days", "45", "--format", "json") == 0
    [due] = json.loads(capsys.readouterr().out)
    assert (due["contract"], due["kind"], due["notice_deadline"], due["days_left"]) == (
        "plc-renewal", "expiry", str(today + timedelta(days=31)), 31)
    months = (today.year - (today - timedelta(days=100)).year) * 12 + today.month - \
        (today - timedelta(days=100)).month + 1  # fmt: skip
    assert len(due["trend"]) == months and due["trend"][-1]["partial"] is True
    sep = [m for m in due["trend"] if m["period"] == "2026-09"]
    if sep:  # the imported outage month, while it is still in the term's window
        assert sep[0]["incidents"] == 1 and sep[0]["credits_owed"] == "150.00"

    evidence = ["--audit-events", str(ESIGN / "docusign-audit-events.json"),
                "--envelope-json", str(ESIGN / "docusign-envelope.json")]
    wrong = tmp_path / "draft.pdf"
    wrong.write_bytes(b"%PDF-1.4 an unsigned draft")
    assert _cli("contract", "esign", "import", "plc-renewal", "--config", str(config), "--platform", "docusign",
                "--document", str(wrong), *evidence) == 1
    assert "it is not the signed contract" in capsys.readouterr().err
    assert _cli("contract", "esign", "import", "plc-renewal", "--config", str(config), "--platform", "docusign",
                "--document", str(ESIGN / "signed-contract.pdf"), *evidence) == 0
    out = capsys.readouterr().out
    assert "imported: docusign 4c3b2a19-8f7e-4d6c-b5a4-93827160f5e4" in out and "203.0.113.45" in out
    assert _cli("contract", "esign", "import", "plc-renewal", "--config", str(config), "--platform", "signnow",
                "--document", str(ESIGN / "signed-contract.pdf"),
                "--history", str(ESIGN / "docusign-envelope.json")) == 1
    assert "not a list of events" in capsys.readouterr().err
    assert _cli("contract", "esign", "import", "plc-renewal", "--config", str(config), "--platform", "signnow",
                "--document", str(ESIGN / "signed-contract.pdf"), "--history", "/dev/zero") == 1
    assert "/dev/zero: not a regular file" in capsys.readouterr().err
    assert _cli("contract", "show", "plc-renewal", "--config", str(config), "--format", "json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [s["ip"] for s in shown["signatures"][0]["signers"]] == ["203.0.113.45", "2001:db8::20"]
    assert shown["escrow"][0]["status"] == "refresh_overdue"
    assert shown["termination"]["duties"] == ["hand over the PLC program sources", "export all monitoring data"]

    cfg = load(CollectorConfig, config)
    store = open_store(cfg)
    try:
        actions = [(e.action, e.object) for e in AuditLog(store).entries()]
        assert ("contract.esign_refused", "esign/plc-renewal/docusign/4c3b2a19-8f7e-4d6c-b5a4-93827160f5e4") in actions
        assert ("contract.esign_imported", "esign/plc-renewal/docusign/4c3b2a19-8f7e-4d6c-b5a4-93827160f5e4") in actions
        assert AuditLog(store).verify() is None
    finally:
        store.close()


async def test_the_api_and_the_console_show_renewals_to_procurement_and_a_contract_to_its_vendor(tmp_path):
    config, _ = _with_life(tmp_path)
    assert _cli("contract", "esign", "import", "plc-renewal", "--config", str(config), "--platform", "adobe_sign",
                "--document", str(ESIGN / "signed-contract.pdf"), "--events", str(ESIGN / "adobe-sign-events.json"),
                "--id", "CBJCHBCAABAAagreement") == 0
    async with running_api(config) as api:
        due = await api.http.get("/contracts/renewals", params={"days": 45}, headers=api.plant)
        assert due.status_code == 200 and [r["contract"] for r in due.json()] == ["plc-renewal"]
        assert (await api.http.get("/contracts/renewals", headers=api.vendor)).status_code == 403
        mine = await api.http.get("/contracts/plc-renewal", headers=api.vendor)
        assert mine.status_code == 200
        [sig] = mine.json()["signatures"]
        assert sig["platform"] == "adobe_sign" and [s["email"] for s in sig["signers"]] == [
            "ivo@integrator.example", "petra@plant-a.example"]
        assert (await api.http.get("/contracts/plc-renewal", headers=api.other)).status_code == 403

    cfg = load(CollectorConfig, config)
    store = open_store(cfg)
    try:
        add_user(store, "paula", "a long procurement password", "procurement", None, (), wall_clock_ms(), "t", "here")
        add_user(store, "ivy", "a long vendor password!", "vendor", "integrator", (), wall_clock_ms(), "t", "here")
        app = create_console(store, load_book(cfg, config), wall_clock_ms, ConsoleConfig(mfa_required_roles=[]))
        for user, password, renewals_status in (("paula", "a long procurement password", 200),
                                                ("ivy", "a long vendor password!", 403)):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as web:
                pre = (await web.get("/login")).text.split('name="pre" value="', 1)[1].split('"', 1)[0]
                done = await web.post("/login", data={"pre": pre, "username": user, "password": password})
                assert done.status_code == 303
                page = await web.get("/renewals", params={"days": 45})
                assert page.status_code == renewals_status
                if renewals_status == 200:
                    assert "plc-renewal" in page.text and "give notice by" in page.text and "<svg" in page.text
                contract = (await web.get("/contracts/plc-renewal")).text
                assert "Petra Procurement" in contract and "2001:db8::20" in contract
                assert "refresh overdue" in contract and "hand over the PLC program sources" in contract
    finally:
        store.close()
