"""`linewarden sim`: run simulated devices or a whole plant, inject faults, play scenarios.

    linewarden sim plant --config config/plant.toml [--control-port N]
    linewarden sim opcua|modbus|mes [--port N] [--name NAME] [--control-port N]
    linewarden sim devices --control URL [--format table|json|csv]
    linewarden sim fault DEVICE FAULT [--seconds S] [--ms MS] [--code N] ... --control URL
    linewarden sim scenario FILE --control URL [--speed X]

Running commands print one line per device (`name kind endpoint`), then `control URL` and `ready`, and run
until Ctrl-C or SIGTERM. Exit codes: 0 ok, 1 runtime failure, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from linewarden.errors import SimulatorError
from linewarden.output import FORMATS, Format, render
from simulators.config import load_plant, load_scenario
from simulators.control import ControlClient, ControlServer
from simulators.fault_spec import FaultSpec
from simulators.faults import Device
from simulators.mes import MesServer
from simulators.modbus_plc import ModbusPlc
from simulators.opcua_plc import OpcUaPlc
from simulators.plant import Plant
from simulators.scenario import Applied, ScenarioRunner

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
_FAULT_OPTIONS = (
    ("--seconds", float, "down: how long (omit: until 'up')"),
    ("--ms", int, "slow: added latency in milliseconds"),
    ("--code", int, "exception: Modbus exception code (2 illegal address, 4 device failure, 11 gateway ...)"),
    ("--unit", int, "exception, degraded: Modbus unit id (omit: all units)"),
    ("--fault-code", int, "degraded: fault code to show"),
    ("--service-level", int, "degraded: OPC UA ServiceLevel 0..255"),
    ("--component", str, "degraded: MES component"),
    ("--version", str, "set_version: new version (Modbus: major.minor)"),
    ("--build", str, "set_version: new build number"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linewarden sim", description="simulated plant devices and faults")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    plant = sub.add_parser("plant", help="run every device of a plant file, with the control API")
    plant.add_argument("--config", type=Path, default=Path("config/plant.toml"), help="plant TOML file")
    plant.add_argument("--control-port", type=int, help="control API port (default: from the plant file)")

    for kind, help_text in (("opcua", "an OPC UA PLC"), ("modbus", "a Modbus TCP gateway"), ("mes", "an MES")):
        one = sub.add_parser(kind, help=f"run {help_text} alone")
        one.add_argument("--port", type=int, default=0, help="listen port (default: a free one)")
        one.add_argument("--host", default="127.0.0.1")
        one.add_argument("--name", default={"opcua": "plc1", "modbus": "gw1", "mes": "mes"}[kind])
        one.add_argument("--control-port", type=int, help="also serve the control API on this port")
        if kind == "opcua":
            one.add_argument("--heartbeat-period", type=float, default=1.0, help="seconds")
            one.add_argument(
                "--shift-namespace", action="store_true", help="PLC namespace index not 2, moves on restart"
            )
            one.add_argument("--max-nodes-per-read", type=int, default=0, help="0 = unlimited")
        if kind == "modbus":
            one.add_argument("--units", default="1,2,3", help="unit ids behind the gateway, e.g. 1,2,3")
            one.add_argument("--word-order", choices=("big", "little"), default="big")

    devices = sub.add_parser("devices", help="list the devices of a running plant and their faults")
    devices.add_argument("--control", required=True, help="control API URL, e.g. http://127.0.0.1:8790")
    devices.add_argument("--format", choices=FORMATS, default="table")

    fault = sub.add_parser("fault", help="inject a fault into a device of a running plant")
    fault.add_argument("device")
    fault.add_argument(
        "fault",
        help="down, up, slow, degraded, exception, drop_connections, stop_listening, "
        "start_listening, set_version, restart, clear",
    )
    for flag, kind_type, help_text in _FAULT_OPTIONS:
        fault.add_argument(flag, type=kind_type, help=help_text)
    fault.add_argument("--stale-heartbeat", action=argparse.BooleanOptionalAction, help="degraded: freeze heartbeat")
    fault.add_argument("--running", action=argparse.BooleanOptionalAction, help="degraded: RUN (yes) or STOP")
    fault.add_argument("--refuse", action=argparse.BooleanOptionalAction, help="MES down: refuse or answer 503")
    fault.add_argument("--control", required=True, help="control API URL")

    scenario = sub.add_parser("scenario", help="play a scenario file against a running plant")
    scenario.add_argument("file", type=Path)
    scenario.add_argument("--control", required=True, help="control API URL")
    scenario.add_argument("--speed", type=float, default=1.0, help="time compression, e.g. 10 = ten times faster")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # injected faults make the server libraries log errors on purpose
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        if args.cmd == "plant":
            config = load_plant(args.config)
            port = config.plant.control_port if args.control_port is None else args.control_port
            return asyncio.run(_serve(Plant.from_config(config), config.plant.host, port))
        if args.cmd in ("opcua", "modbus", "mes"):
            return asyncio.run(_serve(Plant([_one_device(args)]), args.host, args.control_port))
        if args.cmd == "devices":
            return asyncio.run(_devices(args.control, args.format))
        if args.cmd == "fault":
            return asyncio.run(_fault(args))
        return asyncio.run(_scenario(args.file, args.control, args.speed))
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME


def _one_device(args: argparse.Namespace) -> Device:
    if args.cmd == "opcua":
        return OpcUaPlc(
            args.name,
            host=args.host,
            port=args.port,
            heartbeat_period=args.heartbeat_period,
            shift_namespace=args.shift_namespace,
            max_nodes_per_read=args.max_nodes_per_read,
        )
    if args.cmd == "modbus":
        try:
            units = [int(u) for u in args.units.split(",")]
        except ValueError:
            raise SimulatorError(f"--units is a comma-separated list of unit ids, not {args.units!r}") from None
        return ModbusPlc(args.name, host=args.host, port=args.port, units=units, word_order=args.word_order)
    return MesServer(args.name, host=args.host, port=args.port)


async def _serve(plant: Plant, host: str, control_port: int | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            loop.add_signal_handler(sig, stop.set)
    async with plant:
        for device in plant.devices.values():
            print(f"{device.name} {device.kind} {device.endpoint}", flush=True)
        if control_port is None:
            print("ready", flush=True)
            await stop.wait()
            return EXIT_OK
        async with ControlServer(plant, host, control_port) as control:
            print(f"control {control.url}", flush=True)
            print("ready", flush=True)
            await stop.wait()
    return EXIT_OK


async def _devices(url: str, fmt: Format) -> int:
    async with ControlClient(url) as client:
        devices = await client.devices()
    if fmt == "table":
        rows = [
            {
                "name": d["name"],
                "kind": d["kind"],
                "endpoint": d["endpoint"],
                "state": "up" if d["up"] else "down",
            }
            for d in devices
        ]
        print(render(rows, fmt))
    else:
        print(render(devices, fmt))
    return EXIT_OK


async def _fault(args: argparse.Namespace) -> int:
    params = {
        name: getattr(args, name)
        for name in (
            "seconds",
            "ms",
            "code",
            "unit",
            "fault_code",
            "service_level",
            "component",
            "version",
            "build",
            "stale_heartbeat",
            "running",
            "refuse",
        )
        if getattr(args, name) is not None
    }
    try:
        spec = FaultSpec.model_validate({"fault": args.fault, **params})
    except ValidationError as exc:
        print(f"error: {exc.errors()[0]['msg']}", file=sys.stderr)
        return EXIT_USAGE
    async with ControlClient(args.control) as client:
        await client.apply(args.device, spec)
    print(f"{args.device}: {spec.describe()}")
    return EXIT_OK


async def _scenario(path: Path, url: str, speed: float) -> int:
    scenario = load_scenario(path)

    def report(done: Applied) -> None:
        outcome = f"error: {done.error}" if done.error else "ok"
        print(f"t={done.at:7.1f}s  {done.action.device}  {done.action.spec.describe()}  {outcome}", flush=True)

    async with ControlClient(url) as client:
        runner = ScenarioRunner(client, scenario, speed=speed, on_applied=report)
        applied = await runner.run()
    return EXIT_RUNTIME if any(a.error for a in applied) else EXIT_OK
