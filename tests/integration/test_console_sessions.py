"""Console users, sessions and page queries on real stores (SQLite, PostgreSQL): argon2id hashes, expiry,
disabling, the login pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.audit import AuditLog
from collector.console.errors import ConsoleError
from collector.console.queries import audit_entries, current_assets, live_version, period_fingerprint
from collector.console.sessions import Session, SessionState, csrf_ok, end_session, lookup, start_session
from collector.console.users import User, add_user, check_password, disable_user, set_password
from collector.store.base import Store
from linewarden.domain import Criticality, ProbeKind
from linewarden.wire import TargetInfo
from tests.integration.collector_helpers import T0, state_change
from tests.integration.store_params import STORES, open_store_param

PW = "long enough password"


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Both stores run the same rules (the SQL is written once)."""
    yield from open_store_param(request, tmp_path)


def test_passwords_are_argon2id_and_checked(store: Store) -> None:
    add_user(store, "pia", PW, "plant_it", None, ("p1",), 0, "t", "t")
    with store.reader() as sql:
        stored = sql.query("SELECT password_hash FROM console_users")[0]["password_hash"]
    assert stored.startswith("$argon2id$") and PW not in stored
    assert check_password(store, "pia", PW) is not None
    assert check_password(store, "pia", PW + "x") is None and check_password(store, "nobody", PW) is None


def test_bad_users_are_refused(store: Store) -> None:
    with pytest.raises(ConsoleError, match="10 characters"):
        add_user(store, "pia", "short", "plant_it", None, (), 0, "t", "t")
    with pytest.raises(ConsoleError, match="needs --vendor"):
        add_user(store, "ivy", PW, "vendor", None, (), 0, "t", "t")
    with pytest.raises(ConsoleError, match="user name"):
        add_user(store, "Bad Name", PW, "admin", None, (), 0, "t", "t")
    add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")
    with pytest.raises(ConsoleError, match="exists"):
        add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")


def test_a_session_expires_and_ends(store: Store) -> None:
    user = add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")
    sid, session = start_session(store, user, "password", "127.0.0.1", 1_000, ttl_ms=60_000)
    assert session.state == "full"
    assert lookup(store, sid, 60_999) is not None and lookup(store, sid, 61_000) is None
    assert lookup(store, sid + "x", 2_000) is None
    end_session(store, session, "127.0.0.1", 2_000)
    assert lookup(store, sid, 2_001) is None
    actions = [e.action for e in AuditLog(store).entries()]
    assert actions == ["console.user_added", "console.login", "console.logout"]


def test_disabling_or_a_new_password_ends_the_sessions(store: Store) -> None:
    user = add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")
    first, _ = start_session(store, user, "password", "o", 1_000, 60_000)
    set_password(store, "pia", PW + "!", 2_000, "t", "t")
    assert lookup(store, first, 3_000) is None and check_password(store, "pia", PW) is None
    second, _ = start_session(store, user, "password", "o", 3_000, 60_000)
    disable_user(store, "pia", 4_000, "t", "t")
    assert lookup(store, second, 5_000) is None and check_password(store, "pia", PW + "!") is None


def test_a_further_login_step_holds_the_session(store: Store) -> None:
    user = add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")

    def totp(_user: User, _session: Session) -> SessionState:
        return "mfa_pending"

    sid, session = start_session(store, user, "password", "o", 1_000, 60_000, steps=[totp])
    assert session.state == "mfa_pending"
    found = lookup(store, sid, 2_000)
    assert found is not None and found[0].state == "mfa_pending"  # the pages require "full"


def test_csrf_token_must_match(store: Store) -> None:
    user = add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")
    _, session = start_session(store, user, "password", "o", 1_000, 60_000)
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, "") and not csrf_ok(session, "forged")


def test_the_pages_queries_read_both_stores(store: Store) -> None:
    before = live_version(store)
    month, later = period_fingerprint(store, T0 - 1000, T0 + 1000), period_fingerprint(store, T0 + 1000, T0 + 9000)
    with store.transaction() as tx:
        tx.insert_event("p1", "a1", "e1", "b1", state_change(1, T0), T0)
    assert live_version(store) != before
    assert period_fingerprint(store, T0 - 1000, T0 + 1000) != month  # late data changes its month
    assert period_fingerprint(store, T0 + 1000, T0 + 9000) == later  # and no other
    for at, criticality in ((T0 + 2000, Criticality.CRITICAL), (T0 + 3000, Criticality.LOW)):
        with store.transaction() as tx:  # a later birth moves the target to another class: any month may change
            target = TargetInfo(id="plc-1", kind=ProbeKind.OPCUA, asset="line3-plc", criticality=criticality)
            tx.register_targets("p1", "a1", [target], at)
        assert period_fingerprint(store, T0 + 1000, T0 + 9000) != later
        later = period_fingerprint(store, T0 + 1000, T0 + 9000)
    [asset] = current_assets(store)
    assert (asset.site, asset.agent, asset.asset, asset.state) == ("p1", "a1", "line3-plc", "DOWN")
    add_user(store, "pia", PW, "plant_it", None, (), 0, "t", "t")
    assert [e["action"] for e in audit_entries(store, "t", "user_", "user/pia", 10)] == ["console.user_added"]
    assert audit_entries(store, "nobody", "", "", 10) == []
