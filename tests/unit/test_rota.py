"""Who is on call: the rota as a pure function of the calendars and an instant (tables and properties), and the
config check that refuses a rota with gaps or overlaps and notify entries that reach nobody."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linewarden.book import load_book
from linewarden.calendar import Calendar
from linewarden.config.calendar import CalendarSection
from linewarden.config.collector import CollectorConfig
from linewarden.config.contacts import ContactsConfig, Rota
from linewarden.config.load import convert, load
from linewarden.errors import ConfigError
from linewarden.rota import Directory, coverage_problems, on_call
from linewarden.sla.coverage import CoverageCalendar

BERLIN = ZoneInfo("Europe/Berlin")
H = 3_600_000
REPO = Path(__file__).resolve().parents[2]


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=BERLIN).timestamp() * 1000)


def calendar(cid: str, hours: list[dict[str, Any]], holidays: list[str] | None = None) -> Calendar:
    data: dict[str, Any] = {"id": cid, "timezone": "Europe/Berlin", "hours": hours}
    if holidays:
        data["holidays"] = {"dates": holidays}
    return Calendar.from_config(convert(CalendarSection, data))


WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
OFFICE = calendar("office", [{"days": WEEKDAYS, "start": "08:00", "end": "18:00"}], ["2026-12-24", "2026-12-25"])
# Two shifts a weekday, 06:00-22:00; nights, weekends and the holidays are not production time.
PRODUCTION = calendar("production", [{"days": WEEKDAYS, "start": "06:00", "end": "22:00"}], ["2026-12-25"])
CALENDARS: dict[str, CoverageCalendar] = {"office": OFFICE, "production": PRODUCTION}

CONTACTS = [
    {"id": f"acme-{n}", "name": f"Acme {n}", "party": "vendor:acme", "email": f"{n}@acme.example",
     "channels": ["email"]}
    for n in ("desk", "night-a", "night-b", "lead")
] + [{"id": "plant-it", "name": "Plant IT", "party": "plant:plant-a", "email": "it@plant-a.example",
      "channels": ["email"]}]
DAY_AND_NIGHT: dict[str, Any] = {
    "party": "vendor:acme", "level": 1,
    "shifts": [
        {"contacts": ["acme-desk"], "calendar": "office", "when": "open"},
        {"contacts": ["acme-night-a", "acme-night-b"], "calendar": "office", "when": "closed",
         "rotate_every": "7d", "rotation_start": "2026-01-05T08:00:00+01:00"},
    ],
}


def directory(*rotas: dict[str, Any]) -> Directory:
    return Directory(ContactsConfig.model_validate({"contact": CONTACTS, "rota": list(rotas)}), CALENDARS)


@pytest.mark.parametrize(
    ("at", "who"),
    [
        (berlin(2026, 12, 1, 9), "acme-desk"),        # Tuesday, office hours
        (berlin(2026, 12, 1, 18), "acme-night-b"),    # Tuesday 18:00: the office closed, night-b's week
        (berlin(2026, 12, 1, 7, 59), "acme-night-b"),
        (berlin(2026, 12, 5, 12), "acme-night-b"),    # Saturday noon
        (berlin(2026, 12, 7, 7, 59), "acme-night-b"),  # Monday before eight: still the weekend's turn
        (berlin(2026, 12, 7, 8, 0), "acme-desk"),
        (berlin(2026, 12, 8, 19), "acme-night-a"),    # the turn passed on Monday 08:00
        (berlin(2026, 12, 24, 11), "acme-night-a"),   # Christmas Eve is a holiday of the office
        (berlin(2026, 12, 25, 11), "acme-night-a"),
    ],
)
def test_who_is_on_call_by_day_night_weekend_and_holiday(at: int, who: str) -> None:
    rota = directory(DAY_AND_NIGHT).rotas[("vendor:acme", 1)]
    assert on_call(rota, CALENDARS, at) == who


def test_a_rota_over_two_calendars_has_gaps_and_overlaps_where_they_differ() -> None:
    rota = Rota.model_validate({"party": "vendor:acme", "level": 2, "shifts": [
        {"contacts": ["acme-lead"], "calendar": "production", "when": "open"},
        {"contacts": ["acme-desk"], "calendar": "office", "when": "closed"},
    ]})
    problems = coverage_problems(rota, CALENDARS, berlin(2026, 12, 1), berlin(2026, 12, 2))
    # 06:00-08:00 and 18:00-22:00 both hold; 08:00-18:00 production runs with the office open: one, fine.
    assert [(p.kind, p.start, p.end) for p in problems] == [
        ("overlap", berlin(2026, 12, 1, 6), berlin(2026, 12, 1, 8)),
        ("overlap", berlin(2026, 12, 1, 18), berlin(2026, 12, 1, 22)),
    ]
    office_only = Rota.model_validate({"party": "vendor:acme", "level": 3, "shifts": [
        {"contacts": ["acme-lead"], "calendar": "office"}]})
    gaps = coverage_problems(office_only, CALENDARS, berlin(2026, 12, 4), berlin(2026, 12, 7, 12))
    assert [(p.kind, p.start, p.end) for p in gaps] == [
        ("gap", berlin(2026, 12, 4), berlin(2026, 12, 4, 8)),
        ("gap", berlin(2026, 12, 4, 18), berlin(2026, 12, 7, 8)),  # Friday night over the weekend
    ]
    assert on_call(office_only, CALENDARS, berlin(2026, 12, 5, 12)) is None


def test_notify_entries_resolve_to_the_party_on_call_at_that_moment() -> None:
    d = directory(DAY_AND_NIGHT, {"party": "plant:plant-a", "level": 1, "shifts": [{"contacts": ["plant-it"]}]})
    assert d.resolve("on-call:vendor:1", "acme", "plant-a", berlin(2026, 12, 5, 3)).contact.id == "acme-night-b"  # type: ignore[union-attr]
    assert d.resolve("on-call:plant:1", "acme", "plant-a", berlin(2026, 12, 5, 3)).contact.id == "plant-it"  # type: ignore[union-attr]
    assert d.resolve("acme-lead", "acme", "plant-a", 0).contact.id == "acme-lead"  # type: ignore[union-attr]
    assert "no rota for plant:plant-b" in d.resolve("on-call:plant:1", "acme", "plant-b", 0).problem
    assert "no contact" in d.resolve("someone", "acme", "plant-a", 0).problem


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["contact"][0].update(channels=["webhook"]), "needs webhook_url"),
        (lambda c: c["rota"][0]["shifts"][0].update(contacts=["nobody"]), "no contact 'nobody'"),
        (lambda c: c["rota"][0]["shifts"][0].update(contacts=["plant-it"]), "not vendor:acme's"),
        (lambda c: c["rota"].append(dict(c["rota"][0])), "a second rota for vendor:acme level 1"),
        (lambda c: c["rota"][0]["shifts"][1].update(rotation_start="2026-01-05T08:00:00"), "with its offset"),
    ],
)
def test_a_bad_directory_is_refused_naming_the_problem(change: Any, problem: str) -> None:
    config: dict[str, Any] = {"contact": [dict(c) for c in CONTACTS],
                              "rota": [{**DAY_AND_NIGHT, "shifts": [dict(s) for s in DAY_AND_NIGHT["shifts"]]}]}
    change(config)
    with pytest.raises(ValueError, match=problem):
        ContactsConfig.model_validate(config)


# ------------------------------------------------------------ properties

SPAN = (berlin(2026, 12, 14), berlin(2027, 1, 4))  # Christmas and New Year inside, a DST-free stretch
DEC_2026 = st.integers(min_value=SPAN[0], max_value=SPAN[1] - 1)
HOURS = st.lists(
    st.fixed_dictionaries({
        "days": st.lists(st.sampled_from([*WEEKDAYS, "sat", "sun"]), min_size=1, max_size=7, unique=True),
        "start": st.integers(0, 23).map(lambda h: f"{h:02d}:00"),
        "end": st.integers(0, 23).map(lambda h: f"{h:02d}:30"),
    }),
    min_size=1, max_size=3,
)
HOLIDAYS = st.lists(st.sampled_from(["2026-12-24", "2026-12-25", "2026-12-31", "2027-01-01"]), unique=True)


def _complete(hours: list[dict[str, Any]], holidays: list[str], people: int) -> tuple[Rota, dict[str, Any]]:
    calendars: dict[str, Any] = {"random": calendar("random", hours, holidays)}
    rota = Rota.model_validate({"party": "vendor:acme", "level": 1, "shifts": [
        {"contacts": ["acme-desk"], "calendar": "random", "when": "open"},
        {"contacts": ["acme-night-a", "acme-night-b", "acme-lead"][:people], "calendar": "random",
         "when": "closed", "rotate_every": "1d"},
    ]})
    return rota, calendars


@settings(max_examples=30, deadline=None)
@given(HOURS, HOLIDAYS, st.integers(1, 3), st.lists(DEC_2026, min_size=1, max_size=8))
def test_a_complete_rota_covers_every_instant_exactly_once(hours: Any, holidays: Any, people: int,
                                                           instants: list[int]) -> None:
    rota, calendars = _complete(hours, holidays, people)
    assert coverage_problems(rota, calendars, *SPAN) == []
    for at in instants:
        holding = [s for s in rota.shifts if calendars["random"].is_open(at) == (s.when == "open")]
        assert len(holding) == 1
        assert on_call(rota, calendars, at) in holding[0].contacts


@settings(max_examples=30, deadline=None)
@given(HOURS, HOLIDAYS, st.lists(DEC_2026, min_size=1, max_size=8))
def test_the_gaps_reported_are_exactly_where_nobody_is_on_call(hours: Any, holidays: Any,
                                                               instants: list[int]) -> None:
    calendars: dict[str, Any] = {"random": calendar("random", hours, holidays)}
    rota = Rota.model_validate({"party": "vendor:acme", "level": 1, "shifts": [
        {"contacts": ["acme-desk"], "calendar": "random", "when": "open"}]})
    gaps = coverage_problems(rota, calendars, *SPAN)
    assert all(g.kind == "gap" for g in gaps)
    for at in instants:
        in_gap = any(g.start <= at < g.end for g in gaps)
        assert in_gap == (on_call(rota, calendars, at) is None)


# ------------------------------------------------------------ config check

CONTRACT_TOML = """
[contract]
id = "acme-2026"
vendor = "acme"
document_sha256 = "%s"
currency = "EUR"
fee_per_period = 100
timezone = "Europe/Berlin"
[scope]
assets = ["line3-plc"]
[support]
tier = "premium"
[support.targets]
S1 = { response = "1h", resolution = "4h" }
[[escalation]]
after = "response_target"
severities = ["S1"]
notify = [NOTIFY]
""" % ("0" * 64)

CONTACTS_TOML = """
[[contact]]
id = "acme-desk"
name = "Acme service desk"
party = "vendor:acme"
email = "desk@acme.example"
channels = ["email"]

[[rota]]
party = "vendor:acme"
level = 1
[[rota.shifts]]
contacts = ["acme-desk"]
calendar = "office"
"""
NIGHTS = '[[rota.shifts]]\ncontacts = ["acme-desk"]\ncalendar = "office"\nwhen = "closed"\n'
OFFICE_TOML = (
    '[calendar]\nid = "office"\ntimezone = "Europe/Berlin"\n'
    '[[calendar.hours]]\ndays = ["mon", "tue", "wed", "thu", "fri"]\nstart = "08:00"\nend = "18:00"\n'
)


def _files(root: Path, contacts: str, notify: str) -> Path:
    for sub in ("calendars", "contracts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "calendars" / "office.toml").write_text(OFFICE_TOML)
    (root / "contracts" / "acme.toml").write_text(CONTRACT_TOML.replace("NOTIFY", notify))
    (root / "contacts.toml").write_text(contacts)
    path = root / "collector.toml"
    path.write_text('[escalation]\ncontacts = "contacts.toml"\n')
    return path


@pytest.mark.parametrize(
    ("contacts", "notify", "problem"),
    [
        (CONTACTS_TOML, '"on-call:vendor:1"',
         r"contacts.toml: rota\[0\]: vendor:acme level 1: nobody is on call from 2026-12-01T17:00:00\+00:00"),
        (CONTACTS_TOML + NIGHTS + NIGHTS, '"acme-desk"', r"rota\[0\]: .*shifts \[1, 2\] are all on call"),
        (CONTACTS_TOML + NIGHTS, '"on-call:vendor:2"', r"acme.toml: escalation\[0\].notify: 'on-call:vendor:2'"),
        (CONTACTS_TOML + NIGHTS, '"someone"', r"acme.toml: escalation\[0\].notify: no contact 'someone'"),
        (CONTACTS_TOML.replace('"office"', '"offices"'), '"acme-desk"', r"shifts\[0\].calendar: no calendar"),
    ],
)
def test_config_check_refuses_gaps_overlaps_and_entries_that_reach_nobody(
    tmp_path: Path, contacts: str, notify: str, problem: str
) -> None:
    path = _files(tmp_path, contacts, notify)
    with pytest.raises(ConfigError, match=problem):
        load_book(load(CollectorConfig, path), path, berlin(2026, 12, 1, 12))


def test_a_complete_directory_loads_with_the_book(tmp_path: Path) -> None:
    path = _files(tmp_path, CONTACTS_TOML + NIGHTS, '"on-call:vendor:1", "acme-desk"')
    book = load_book(load(CollectorConfig, path), path, berlin(2026, 12, 1, 12))
    assert book.contacts is not None and set(book.contacts.contacts) == {"acme-desk"}


def test_the_example_directory_fits_the_example_contracts_and_calendars() -> None:
    path = REPO / "config" / "collector.toml"
    base = load(CollectorConfig, path)
    escalation = base.escalation.model_copy(update={"contacts": Path("contacts.toml")})
    config = base.model_copy(update={"escalation": escalation})
    book = load_book(config, path, int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000))
    assert book.contacts is not None and ("vendor:acme", 1) in book.contacts.rotas
