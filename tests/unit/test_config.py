"""Config files: every example validates; each class of error names the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from linewarden.cli import main
from linewarden.config.agent import AgentConfig
from linewarden.config.base import MAX_SECRET_BYTES, Secret
from linewarden.config.contract import BusinessDays, ContractConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").rglob("*.toml"))
AGENT_EXAMPLE = (ROOT / "config" / "agent.toml").read_text()


def test_there_are_examples_of_each_kind() -> None:
    names = {p.relative_to(ROOT / "config").parts[0] for p in EXAMPLES}
    assert {"agent.toml", "collector.toml", "contracts", "calendars"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_config_validates(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(path)]) == 0, capsys.readouterr().err
    assert "ok:" in capsys.readouterr().out


def _write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> str:
    path = _write(tmp_path, text)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert err.count("\n") == 1, "one message, one line"
    return err


def test_unknown_key_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace('heartbeat_interval = "60s"', 'heartbeat_intervall = "60s"')
    err = _error(tmp_path, text, capsys)
    assert "agent.heartbeat_intervall: unknown key" in err


def test_unknown_key_inside_a_target_names_its_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace("max_gap = 10", "max_gapp = 10")
    err = _error(tmp_path, text, capsys)
    assert "targets[1].max_gapp: unknown key" in err


def test_wrong_type_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace("port = 502", 'port = "five-oh-two"')
    err = _error(tmp_path, text, capsys)
    assert "targets[1].port:" in err and "integer" in err


def test_an_unknown_kind_or_choice_lists_the_valid_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(tmp_path, AGENT_EXAMPLE.replace('type = "modbus"', 'type = "modbux"', 1), capsys)
    assert "targets[1].type: invalid value 'modbux' (one of 'opcua', 'modbus', 'http', 'tcp'," in err
    err = _error(tmp_path, AGENT_EXAMPLE.replace("port = 502", 'port = 502\ntransport = "rtu"'), capsys)
    assert "targets[1].transport: invalid value 'rtu' (one of 'rtu_over_tcp', 'serial', 'tcp')" in err


def test_a_collectors_broker_is_checked_by_its_struct_with_its_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '[collector]\n[broker]\nnodes = ["a:1"]\nround_wait_max = "0s"\n', "collector.toml")
    assert main(["config", "check", str(path)]) == 2
    assert "broker.round_wait_max: must be longer than zero" in capsys.readouterr().err


def test_a_collector_config_holding_structs_round_trips_through_json() -> None:
    from linewarden.config.collector import CollectorConfig

    data = {"collector": {"database_url": {"env": "LW_DB"}}, "broker": {"keepalive": "45s", "tls": {"ca_file": "/ca"}}}
    config = CollectorConfig.model_validate(data)
    assert CollectorConfig.model_validate(json.loads(json.dumps(config.model_dump(mode="json")))) == config


def test_duration_without_unit_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace('interval = "5s"', "interval = 5")
    err = _error(tmp_path, text, capsys)
    assert "defaults.interval:" in err and "'5s'" in err


def test_bad_time_zone_names_file_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace('timezone = "Europe/Berlin"', 'timezone = "Europe/Berlln"')
    err = _error(tmp_path, text, capsys)
    assert "agent.timezone: unknown time zone 'Europe/Berlln'" in err


def test_bad_toml_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace('site = "plant-a"', "site = plant-a")
    err = _error(tmp_path, text, capsys)
    line = 1 + AGENT_EXAMPLE.splitlines().index(
        next(x for x in AGENT_EXAMPLE.splitlines() if x.startswith('site = "plant-a"'))
    )
    assert f"agent.toml:{line}: invalid TOML" in err


def test_missing_required_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = AGENT_EXAMPLE.replace('site = "plant-a"', "")
    err = _error(tmp_path, text, capsys)
    assert "agent.site: required key is missing" in err


def test_calendar_times_are_typed(tmp_path: Path) -> None:
    from linewarden.config.calendar import CalendarConfig

    path = _write(
        tmp_path,
        '[calendar]\nid = "c"\ntimezone = "UTC"\n[[calendar.hours]]\ndays = ["mon"]\nstart = 480\nend = 17:00:00\n',
        "cal.toml",
    )
    with pytest.raises(ConfigError) as exc:
        load(CalendarConfig, path)
    assert exc.value.key == "calendar.hours[0].start"


def test_contract_parses_money_as_decimal_and_business_days() -> None:
    contract = load(ContractConfig, ROOT / "config" / "contracts" / "acme-mes.toml")
    assert str(contract.contract.fee_per_period) == "10000.00"
    assert contract.rca.due == BusinessDays(days=5)
    assert [b.below_pct for b in contract.credits.uptime] == sorted(
        (b.below_pct for b in contract.credits.uptime), reverse=True
    )


def test_contract_bands_out_of_order_are_rejected(tmp_path: Path) -> None:
    text = (ROOT / "config" / "contracts" / "acme-mes.toml").read_text()
    text = text.replace("below_pct = 99.0\nfee_pct = 50", "below_pct = 99.95\nfee_pct = 50")
    path = _write(tmp_path, text, "contract.toml")
    with pytest.raises(ConfigError, match="highest below_pct"):
        load(ContractConfig, path)


def test_target_naming_an_unknown_asset_is_rejected(tmp_path: Path) -> None:
    text = AGENT_EXAMPLE.replace('asset = "plc-2"', 'asset = "plc-9"')
    with pytest.raises(ConfigError, match="'plc-9'"):
        load(AgentConfig, _write(tmp_path, text))


def test_secrets_are_read_from_env_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_TEST_SECRET", "hunter2")
    secret = Secret(env="LW_TEST_SECRET")
    assert secret.reveal() == "hunter2"
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    monkeypatch.delenv("LW_TEST_SECRET")
    with pytest.raises(ValueError, match="LW_TEST_SECRET is not set"):
        secret.reveal()


def test_a_secret_file_is_read_only_when_it_is_a_small_regular_file(tmp_path: Path) -> None:
    small = tmp_path / "secret"
    small.write_text("hunter2\n")
    assert Secret(file=small).reveal() == "hunter2"
    big = tmp_path / "big"
    big.write_text("x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(ValueError, match=f"secret file {big}: larger than {MAX_SECRET_BYTES} bytes"):
        Secret(file=big).reveal()
    with pytest.raises(ValueError, match="secret file /dev/zero: not a regular file"):  # read, it never ends
        Secret(file=Path("/dev/zero")).reveal()


@pytest.mark.parametrize("kind", ["agent", "collector", "contract", "calendar"])
def test_schema_is_printed_for_each_kind(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["type"] == "object" and schema["additionalProperties"] is False


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_check_follows_the_agents_production_calendar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "production-plant-a.toml").write_text(
        '[calendar]\nid = "p"\ntimezone = "Mars/Olympus"\nalways = true\n'
    )
    err = _error(tmp_path, AGENT_EXAMPLE, capsys)
    assert "agent.production_calendar:" in err and "calendar.timezone: unknown time zone 'Mars/Olympus'" in err


def test_check_follows_a_collectors_contracts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "contracts").mkdir()
    contract = (ROOT / "config" / "contracts" / "plc-programs.toml").read_text()
    (tmp_path / "contracts" / "plc.toml").write_text(contract)  # names calendar business-hours-de: not there
    path = _write(tmp_path, '[collector]\nid = "c"\n', "collector.toml")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "plc.toml: support.coverage: no calendar with id 'business-hours-de'" in err


def test_a_target_beyond_what_the_support_calendar_can_reach_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Business hours hold ~2,000 h a year: 9,000 days of them are not found within the calendar's search
    horizon, which used to fail only when a ticket was recorded."""
    for folder in ("contracts", "calendars"):
        (tmp_path / folder).mkdir()
    for name in ("business-hours-de", "production-plant-a"):
        source = ROOT / "config" / "calendars" / f"{name}.toml"
        (tmp_path / "calendars" / f"{name}.toml").write_text(source.read_text())
    contract = (ROOT / "config" / "contracts" / "plc-programs.toml").read_text()
    s1 = 'S1 = { response = "2h", resolution = "8h" }'
    assert s1 in contract
    (tmp_path / "contracts" / "plc.toml").write_text(contract.replace(s1, s1.replace('"8h"', '"9000d"')))
    path = _write(tmp_path, '[collector]\nid = "c"\nproduction_calendar = "production-plant-a"\n', "collector.toml")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "plc.toml: support.targets.S1.resolution: calendar 'business-hours-de' is not open long enough" in err
    assert len(err.strip().splitlines()) == 1


def test_the_readmes_config_examples_validate() -> None:
    import re
    import tomllib

    from linewarden.config.kinds import KINDS, detect_kind
    from linewarden.config.load import validate

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    kinds = []
    for block in blocks:
        data = tomllib.loads(block)
        kind = detect_kind(data)
        assert kind is not None
        validate(KINDS[kind], data, "README.md")
        kinds.append(kind)
    assert sorted(kinds) == ["agent", "calendar", "contract"]
