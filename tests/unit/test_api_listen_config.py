"""`[api]`: plain HTTP only on loopback or behind listed proxies; a certificate needs its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError


def _load(tmp_path: Path, api: str) -> CollectorConfig:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndata_dir = "{tmp_path}"\n[api]\n{api}\n')
    return load(CollectorConfig, path)


def test_plain_http_on_every_address_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, 'host = "0.0.0.0"')
    assert "plain HTTP on 0.0.0.0 (not loopback)" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("api", [
    'host = "127.0.0.1"', 'host = "::1"', 'host = "localhost"',
    'host = "0.0.0.0"\ntls_cert_file = "c.pem"\ntls_key_file = "k.pem"',
    'host = "0.0.0.0"\ntrusted_proxies = ["10.0.0.5"]',
])
def test_loopback_https_or_a_listed_proxy_is_accepted(tmp_path: Path, api: str) -> None:
    _load(tmp_path, api)


@pytest.mark.parametrize("api", ['tls_cert_file = "c.pem"', 'trusted_proxies = ["proxy.example"]'])
def test_a_certificate_without_its_key_or_a_proxy_by_name_is_refused(tmp_path: Path, api: str) -> None:
    with pytest.raises(ConfigError):
        _load(tmp_path, api)
