"""The console's TOTP secrets at rest, against a real SQLite store and key file: secrets stored in the
clear are encrypted at start, a value moved to another user's row does not decrypt, and a missing or wrong
key file stops `collector run` with one line naming the setting."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest

from collector.console.totp import new_secret
from collector.console.totp_vault import TotpVault, open_vault, session_owner, user_owner
from collector.console.users import add_user
from collector.store import open_store
from collector.store.base import Store
from linewarden.cli import main
from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError

T0 = 1_790_000_000_000


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'contracts = []\ncalendars = []\n[collector]\ndata_dir = "{tmp_path / "data"}"\n'
                    f'[audit]\nsigning_key = "{tmp_path / "keys" / "audit.key"}"\n')
    store = open_store(load(CollectorConfig, path))
    try:
        for name in ("ada", "bob"):
            add_user(store, name, "a long enough password", "admin", None, (), T0, "test", "here")
    finally:
        store.close()
    return path


def _secrets(store: Store) -> dict[str, str | None]:
    with store.reader() as sql:
        rows = sql.query("SELECT username, totp_secret FROM console_users")
    return {str(r["username"]): r["totp_secret"] for r in rows}


def _set(store: Store, username: str, value: str) -> None:
    with store.transaction() as tx:
        tx.sql.execute("UPDATE console_users SET totp_secret = ? WHERE username = ?", (value, username))


def _ada_enrolled(config: Path) -> tuple[CollectorConfig, TotpVault]:
    """The config and its vault, with ada's TOTP secret stored sealed."""
    cfg = load(CollectorConfig, config)
    store = open_store(cfg)
    try:
        vault = open_vault(store, cfg.totp_key_file, str(config))
        _set(store, "ada", vault.seal(new_secret(), user_owner("ada")))
    finally:
        store.close()
    return cfg, vault


def test_secrets_in_the_clear_are_encrypted_at_start_with_a_key_file_made_beside_the_signing_key(
    config: Path,
) -> None:
    cfg = load(CollectorConfig, config)
    assert cfg.totp_key_file == config.parent / "keys" / "console-totp.key"
    store = open_store(cfg)
    try:
        secret = new_secret()
        _set(store, "ada", secret)  # as an earlier version stored it
        vault = open_vault(store, cfg.totp_key_file, str(config))
        assert stat.S_IMODE(cfg.totp_key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(cfg.totp_key_file.parent.stat().st_mode) == 0o700
        stored = _secrets(store)["ada"]
        assert stored is not None and secret not in stored and not re.search(r"[A-Z2-7]{32}", stored)
        assert vault.open(stored, user_owner("ada")) == secret
        again = open_vault(store, cfg.totp_key_file, str(config))  # the next start: same key, nothing to do
        assert again.key_id == vault.key_id and _secrets(store)["ada"] == stored
    finally:
        store.close()


def test_a_secret_copied_to_another_users_row_does_not_decrypt(config: Path) -> None:
    cfg = load(CollectorConfig, config)
    store = open_store(cfg)
    try:
        vault = open_vault(store, cfg.totp_key_file, str(config))
        secret = new_secret()
        _set(store, "ada", vault.seal(secret, user_owner("ada")))
        moved = _secrets(store)["ada"]
        assert moved is not None
        _set(store, "bob", moved)
        assert vault.open(moved, user_owner("ada")) == secret
        assert vault.open(moved, user_owner("bob")) is None
        assert open_vault(store, cfg.totp_key_file, str(config)).key_id == vault.key_id  # no config matter
    finally:
        store.close()


def test_a_missing_or_wrong_key_file_stops_the_collector_with_one_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, vault = _ada_enrolled(config)
    key = cfg.totp_key_file
    kept = key.read_bytes()
    run = ["collector", "run", "--config", str(config)]
    cases = {
        "missing": (None, "not found, but 1 TOTP secret(s) in the database were encrypted"),
        "another key": (base64.b64encode(b"k" * 32).decode() + "\n", "restore the right file"),
        "not a key": ("hello\n", "is not a TOTP key file"),
    }
    for name, (content, problem) in cases.items():
        if content is None:
            key.unlink()
        else:
            key.write_text(content)
        assert main(run) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {config}: console.totp_key_file: "), err
        assert problem in err, (name, err)
    key.write_bytes(kept)
    store = open_store(cfg)
    try:
        assert open_vault(store, key, str(config)).key_id == vault.key_id
        with pytest.raises(ConfigError):
            open_vault(store, key.with_name("other.key"), str(config))  # a new key would not read ada's secret
        assert not key.with_name("other.key").exists()
    finally:
        store.close()


def test_an_ephemeral_vault_reads_only_its_own() -> None:
    one, two = TotpVault.ephemeral(), TotpVault.ephemeral()
    sealed = one.seal("JBSWY3DPEHPK3PXP", user_owner("ada"))
    assert one.open(sealed, user_owner("ada")) == "JBSWY3DPEHPK3PXP"
    assert two.open(sealed, user_owner("ada")) is None
    assert one.open(sealed[:-4] + "AAAA", user_owner("ada")) is None  # altered


def _session(store: Store, sid: str, username: str, pending: str | None) -> None:
    with store.transaction() as tx:
        tx.sql.execute("INSERT INTO console_sessions (id_sha256, username, state, method, csrf, origin, created_at,"
                       " expires_at, pending_totp) VALUES (?, ?, 'mfa', 'password', 'c', 'here', ?, ?, ?)",
                       (sid, username, T0, T0 + 3_600_000, pending))


def test_after_a_lost_key_file_reset_mfa_all_lets_the_collector_start_and_users_enrol_again(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, vault = _ada_enrolled(config)
    store = open_store(cfg)
    try:
        with store.transaction() as tx:
            tx.sql.execute("INSERT INTO console_recovery_codes (username, code_sha256) VALUES ('ada', 'h')")
        _session(store, "s-ada", "ada", None)
        _session(store, "s-bob", "bob", vault.seal(new_secret(), session_owner("s-bob")))  # bob was enrolling
    finally:
        store.close()
    cfg.totp_key_file.unlink()  # lost
    assert main(["collector", "run", "--config", str(config)]) == 2
    assert "restore that file" in capsys.readouterr().err
    assert main(["collector", "user", "reset-mfa", "--config", str(config)]) == 2  # neither a user nor --all
    assert main(["collector", "user", "reset-mfa", "--all", "--config", str(config)]) == 0
    assert "second factor cleared for ada;" in capsys.readouterr().out
    store = open_store(cfg)
    try:
        assert _secrets(store) == {"ada": None, "bob": None}
        with store.reader() as sql:
            assert not sql.query("SELECT 1 FROM console_recovery_codes")
            sessions = sql.query("SELECT ended_at, pending_totp FROM console_sessions ORDER BY id_sha256")
            audit = sql.query("SELECT action, object FROM audit_log WHERE action = 'console.mfa_reset'")
        assert [(r["ended_at"] is not None, r["pending_totp"]) for r in sessions] == [(True, None), (True, None)]
        assert [(r["action"], r["object"]) for r in audit] == [("console.mfa_reset", "user/ada")]
        fresh = open_vault(store, cfg.totp_key_file, str(config))  # what `collector run` does: a new key now
        assert fresh.key_id != vault.key_id and cfg.totp_key_file.exists()
    finally:
        store.close()
    assert main(["collector", "user", "reset-mfa", "carol", "--config", str(config)]) == 1
    assert "no user 'carol'" in capsys.readouterr().err
