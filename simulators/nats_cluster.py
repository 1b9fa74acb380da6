"""A real three-node NATS cluster speaking MQTT 3.1.1 on loopback, for the broker-cluster test and local runs.

Each node has its own server name, JetStream store, client, route, monitoring and MQTT ports; the routes list
every node, so the cluster forms in any start order. `kill(i)` is a `kill -9` of one node. The configuration is
the one docs/broker-cluster.md shows.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from linewarden.errors import SimulatorError
from simulators.broker import free_port, wait_port

HOST = "127.0.0.1"
CLUSTER_NAME = "linewarden"


def nats_binary() -> str | None:
    found = shutil.which("nats-server") or "/usr/sbin/nats-server"
    return found if Path(found).exists() else None


@dataclass(frozen=True)
class NatsNode:
    name: str
    client_port: int
    route_port: int
    http_port: int
    mqtt_port: int

    @property
    def mqtt(self) -> str:
        return f"{HOST}:{self.mqtt_port}"


def node_config(node: NatsNode, nodes: list[NatsNode], store_dir: Path) -> str:
    routes = ", ".join(f'"nats-route://{HOST}:{n.route_port}"' for n in nodes if n is not node)
    return f"""server_name: {node.name}
listen: {HOST}:{node.client_port}
http: {HOST}:{node.http_port}
jetstream {{
  store_dir: "{store_dir}"
}}
cluster {{
  name: {CLUSTER_NAME}
  listen: {HOST}:{node.route_port}
  routes: [{routes}]
}}
mqtt {{
  listen: {HOST}:{node.mqtt_port}
  # every MQTT stream (sessions, retained messages, QoS 1 messages) on all three nodes
  stream_replicas: 3
  # how long a QoS 1 message waits for the subscriber's PUBACK before it is sent again
  ack_wait: "30s"
}}
"""


class NatsCluster:
    """Three nats-server processes; `start()`, `kill(i)`, `cleanup()`; a context manager."""

    def __init__(self, size: int = 3, binary: str | None = None) -> None:
        found = binary or nats_binary()
        if found is None:
            raise SimulatorError("nats-server is not installed (Debian: apt-get install nats-server)")
        self.binary = found
        self._dir = Path(tempfile.mkdtemp(prefix="lw-nats-"))
        self.nodes = [
            NatsNode(f"n{i + 1}", free_port(), free_port(), free_port(), free_port()) for i in range(size)
        ]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * size

    def log(self, i: int) -> Path:
        return self._dir / f"{self.nodes[i].name}.log"

    def start(self, timeout: float = 60.0) -> None:
        for i, node in enumerate(self.nodes):
            store = self._dir / f"{node.name}-jetstream"
            store.mkdir(exist_ok=True)
            conf = self._dir / f"{node.name}.conf"
            conf.write_text(node_config(node, self.nodes, store))
            self.procs[i] = subprocess.Popen(
                [self.binary, "-c", str(conf), "-l", str(self.log(i))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        for i, node in enumerate(self.nodes):
            if not wait_port(HOST, node.mqtt_port, max(deadline - time.monotonic(), 0.1)):
                self.cleanup()
                raise SimulatorError(f"nats-server {node.name} did not listen for MQTT; see {self.log(i)}")
        for i, node in enumerate(self.nodes):
            while not self._healthy(node):
                if time.monotonic() > deadline:
                    raise SimulatorError(f"nats-server {node.name}: JetStream not ready; see {self.log(i)}")
                time.sleep(0.1)

    @staticmethod
    def _healthy(node: NatsNode) -> bool:
        """The node's JetStream is current with the cluster (a meta leader is known)."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{node.http_port}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self, i: int) -> None:
        """kill -9 one node."""
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)
            self.procs[i] = None

    def running(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def cleanup(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            self.procs[i] = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
