"""Every command form the README shows parses as shown, with the shared options anywhere."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.cli import _parser as agent_parser
from collector.cli import build_parser as collector_parser
from linewarden.cli import config_parser
from linewarden.cli_options import resolve
from linewarden.output import iso_time, render
from simulators.cli import build_parser as sim_parser
from simulators.demo import _parser as demo_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

PLACEHOLDERS = {
    "F": "cfg.toml", "FILE...": "a.toml", "FILE": "f.jsonl", "FILE.jsonl": "f.jsonl", "PDF": "doc.pdf",
    "DIR": "out", "ID": "x1", "WINDOW_ID": "mw-1", "TIME": "2026-12-05T06:00+01:00", "YYYY-MM": "2026-11",
    "KIND": "agent", "S": "plant-a", "WHO": "someone", "V": "acme", "L": "label", "R": "why", "A": "plc-1",
    "N": "4840", "HOST:PORT": "127.0.0.1:1883", "D": "demo-data", "DEVICE": "plc1", "FAULT": "down",
    "URL": "http://127.0.0.1:1",
}  # fmt: skip
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "agent": agent_parser, "collector": collector_parser, "config": config_parser, "sim": sim_parser,
    "demo": demo_parser,
}  # fmt: skip
SHARED_APPS = ("agent", "collector")


def _synopsis_lines() -> list[str]:
    block = README.split("## Command line", 1)[1].split("```", 2)[1]
    # a line's description starts after a run of spaces
    return [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines() if line.startswith("linewarden ")]


def _shell_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            if line.startswith("linewarden "):
                lines.append(line.split("#", 1)[0].split(">", 1)[0].strip())
    return lines


def _tokens(form: str) -> list[str]:
    return re.findall(r"\[[^\]]*\]|\S+", form)


def _concrete(tokens: list[str]) -> Iterator[list[str]]:
    """Each optional group left out, then each put in; each alternative `a|b` in turn; placeholders filled."""
    for with_optional in (False, True):
        words: list[list[str]] = []
        for tok in tokens:
            if tok.startswith("["):
                if with_optional:
                    words += [[w] for w in tok[1:-1].split()]
                continue
            words.append([tok])
        choices = []
        for i, (word,) in enumerate(words):
            if word in PLACEHOLDERS:
                after_format = i > 0 and words[i - 1][0] == "--format"
                choices.append(["json"] if after_format else [PLACEHOLDERS[word]])
            else:
                choices.append(word.split("|") if "|" in word and not word.startswith("-") else [word])
        yield from (list(c) for c in itertools.product(*choices))


def _parse(argv: list[str]) -> argparse.Namespace:
    app, rest = argv[0], argv[1:]
    parser = PARSERS[app]()
    try:
        args = parser.parse_args(rest)
    except SystemExit as exc:
        raise AssertionError(f"README form does not parse: linewarden {' '.join(argv)}") from exc
    return resolve(parser, args) if app in SHARED_APPS else args


def _forms() -> list[list[str]]:
    out = []
    for line in _synopsis_lines() + _shell_lines():
        tokens = _tokens(line)[1:]  # drop "linewarden"
        if tokens == ["--version"]:
            continue
        out += list(_concrete(tokens))
    return out


def test_the_readme_shows_the_forms_that_failed_before() -> None:
    forms = [" ".join(f) for f in _forms()]
    for expected in ("collector contract list --config cfg.toml", "collector maintenance list --config cfg.toml",
                     "collector token revoke --config cfg.toml x1"):  # fmt: skip
        assert expected in forms
    assert len(forms) > 40


@pytest.mark.parametrize("argv", _forms(), ids=lambda a: " ".join(a))
def test_readme_form_parses_with_shared_options_anywhere(argv: list[str]) -> None:
    args = _parse(argv)
    if argv[0] not in SHARED_APPS or "--config" not in argv:
        return
    i = argv.index("--config")
    rest = argv[:i] + argv[i + 2 :]
    # the same command with --config right after the app name, and at the very end
    for moved in ([rest[0], "--config", argv[i + 1], *rest[1:]], [*rest, "--config", argv[i + 1]]):
        assert vars(_parse(moved)) == vars(args), moved


def test_shared_options_at_every_level_and_required_once() -> None:
    parser = collector_parser()
    before = ["--log-level", "DEBUG", "maintenance", "--config", "c.toml", "list", "--log-format", "json"]
    after = ["maintenance", "list", "--config", "c.toml", "--log-level", "debug", "--log-format", "json"]
    for argv in (before, after):
        args = resolve(parser, parser.parse_args(argv))
        assert (args.config, args.log_level, args.log_format) == (Path("c.toml"), "debug", "json")
    with pytest.raises(SystemExit):
        resolve(parser, parser.parse_args(["maintenance", "list"]))
    args = resolve(parser, parser.parse_args(["agents", "--config", "c.toml"]))
    assert (args.log_level, args.log_format) == (None, None)  # the config decides


def test_one_time_and_boolean_style_in_tables_and_csv() -> None:
    at = 1_764_925_200_000  # 2025-12-05T09:00:00Z
    assert iso_time(at) == "2025-12-05T09:00:00+00:00"
    assert iso_time(at, "Europe/Berlin") == "2025-12-05T10:00:00+01:00"
    rows = [{"at": iso_time(at), "ok": True, "flagged": False}]
    assert render(rows, "csv").splitlines()[1] == "2025-12-05T09:00:00+00:00,yes,no"
    assert "yes" in render(rows, "table").splitlines()[2]
    assert json.loads(render(rows, "json"))[0]["ok"] is True


def test_a_closed_pipe_ends_without_a_traceback(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has exited: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "linewarden.cli", "config", "schema", "agent"],
            stdout=write_end, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == 0


def test_the_three_forms_that_failed_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from linewarden.cli import main

    (tmp_path / "contracts").mkdir()
    for contract in (ROOT / "config/contracts").glob("*.toml"):
        (tmp_path / "contracts" / contract.name).write_text(contract.read_text())
    (tmp_path / "calendars").mkdir()
    for calendar in (ROOT / "config/calendars").glob("*.toml"):
        (tmp_path / "calendars" / calendar.name).write_text(calendar.read_text())
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\nproduction_calendar = "production-plant-a"\n')
    config = str(cfg)

    assert main(["collector", "contract", "list", "--config", config, "--format", "json"]) == 0
    assert {c["contract"] for c in json.loads(capsys.readouterr().out)} == {"acme-mes-2026", "integrator-plc-2026"}
    assert main(["collector", "maintenance", "list", "--config", config]) == 0
    capsys.readouterr()
    assert main(["collector", "token", "create", "--config", config, "--role", "admin"]) == 0
    capsys.readouterr()
    assert main(["collector", "--config", config, "token", "list", "--format", "json"]) == 0
    [token] = json.loads(capsys.readouterr().out)
    assert token["revoked"] is None
    assert main(["collector", "token", "revoke", "--config", config, token["id"]]) == 0
    assert main(["collector", "token", "list", "--config", config, "--format", "json"]) == 0
    [token] = json.loads(capsys.readouterr().out)
    assert token["revoked"].endswith("+00:00")
