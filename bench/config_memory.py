"""What a loaded agent configuration holds in memory, per configured Modbus point.

    .venv/bin/python bench/config_memory.py [--targets N]      (default 150, as footprint.py's Modbus targets)

Validates an agent configuration of N Modbus targets with 1 and with 100 points each (every point with a
condition, as footprint.py's), the way the agent loads its file (`linewarden.config.load.validate`), and prints
the Python memory the validated configuration holds (tracemalloc, after a warm-up that builds what the first
validation builds) and its cost per point. The same script runs on any revision, to compare model kinds.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linewarden.config.agent import AgentConfig  # noqa: E402
from linewarden.config.load import validate  # noqa: E402


def agent_data(targets: int, points: int) -> dict[str, Any]:
    specs = [{"name": f"p{i}", "address": i, "condition": {"min": 0.0}} for i in range(points)]
    return {
        "agent": {"id": "a1", "site": "s1"},
        "assets": [{"id": "line1", "criticality": "high"}],
        "targets": [
            {"id": f"t{i}", "asset": "line1", "type": "modbus", "host": "127.0.0.1", "port": 1502 + i, "points": specs}
            for i in range(targets)
        ],
    }


def held_bytes(data: dict[str, Any]) -> int:
    """Bytes the validated configuration of `data` holds, beyond the input itself."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    config = validate(AgentConfig, data, "bench")
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del config
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=150)
    args = parser.parse_args()
    validate(AgentConfig, agent_data(1, 1), "warm-up")
    small, large = held_bytes(agent_data(args.targets, 1)), held_bytes(agent_data(args.targets, 100))
    print(f"{args.targets} Modbus targets: {small / 1e6:.2f} MB with 1 point each, {large / 1e6:.2f} MB with 100")
    print(f"per configured point: {(large - small) / (99 * args.targets):.0f} bytes")


if __name__ == "__main__":
    main()
