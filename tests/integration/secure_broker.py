"""The shipped Mosquitto config and ACL (packaging/mosquitto/) on free loopback ports, with a PKI made here.

Only ports, file paths and log/persistence locations are templated into the shipped files; every security
setting and the ACL are used exactly as shipped.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from linewarden import certs
from linewarden.config.base import BrokerConfig, Secret, TlsConfig
from linewarden.config.load import convert
from simulators.broker import Mosquitto, free_port

SHIPPED = Path(__file__).resolve().parents[2] / "packaging" / "mosquitto"
HOST = "127.0.0.1"
BROKER_DAYS = 20  # within the default 30-day warning, so the broker's certificate is reported as expiring


@dataclass(frozen=True)
class Identity:
    name: str
    cert: Path
    key: Path
    password_file: Path


class ShippedBroker(Mosquitto):
    """`port`: agents with a password; `mtls_port`: agents with a certificate; `collector_port`: the collector."""

    def __init__(self, agents: list[str], shipped: Path = SHIPPED) -> None:
        super().__init__()
        self.mtls_port = free_port()
        self.collector_port = free_port()
        self.dir = self._dir
        now = dt.datetime.now(dt.UTC)
        self.authority = certs.new_authority("linewarden test CA", now, days=365)
        self.ca_file = self._write("ca.pem", self.authority.cert_pem)
        broker = certs.issue(self.authority, "broker", now, BROKER_DAYS, server_names=[HOST], client=False)
        self._write("broker.pem", broker.cert_pem)
        self._write("broker.key", broker.key_pem)
        self.identities = {name: self.identity(name, now) for name in [*agents, "collector"]}
        self._passwd("linewarden-agents.passwd", agents)
        self._passwd("linewarden-collector.passwd", ["collector"])
        conf = (shipped / "linewarden.conf").read_text()
        for shipped_port, port in (("8883", self.port), ("8884", self.mtls_port), ("8885", self.collector_port)):
            conf = conf.replace(f"listener {shipped_port}\n", f"listener {port} {HOST}\n")
        conf = conf.replace("/etc/mosquitto/certs/", f"{self.dir}/").replace("/etc/mosquitto/", f"{self.dir}/")
        conf += f"persistence_location {self.dir}/\nlog_dest file {self.log}\n"
        assert "/etc/" not in conf and "listener 888" not in conf
        self.conf.write_text(conf)
        shutil.copy(shipped / "linewarden.acl", self.dir / "linewarden.acl")
        self._readable_by_broker()

    def identity(self, name: str, now: dt.datetime, days: int = 30) -> Identity:
        """A client certificate (common name `name`) and a password for `name`, written to the broker's folder."""
        issued = certs.issue(self.authority, name, now, days)
        stem = name.replace("/", ".")
        password = self._write(f"{stem}.password", f"pw-{stem}".encode())
        return Identity(name, self._write(f"{stem}.pem", issued.cert_pem), self._write(f"{stem}.key", issued.key_pem),
                        password)  # fmt: skip

    def config(
        self, who: str, *, port: int | None = None, mtls: bool = False, host: str = HOST, **tls: object
    ) -> BrokerConfig:
        """A client's broker section: user name and password, plus the client certificate with `mtls`."""
        ident = self.identities[who]
        client_cert = {"cert_file": ident.cert, "key_file": ident.key} if mtls else {}
        tls_config = convert(TlsConfig, {"ca_file": self.ca_file, **client_cert, **tls})
        if port == self.mtls_port:
            return BrokerConfig(host=host, port=port, tls=tls_config)
        return BrokerConfig(host=host, port=port or self.port, username=who,
                            password=Secret(file=ident.password_file), tls=tls_config)  # fmt: skip

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _passwd(self, name: str, users: list[str]) -> None:
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        path = self.dir / name
        path.write_text("")
        for user in users:
            password = self.identities[user].password_file.read_text()
            subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)

    def _readable_by_broker(self) -> None:
        """Mosquitto started as root drops to the `mosquitto` user before reading its password and ACL files."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            return
        for path in [self.dir, *self.dir.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
