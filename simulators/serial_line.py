"""A pair of connected pseudo-terminals made by socat: a serial line without hardware.

The Modbus simulator opens one end (`device`), the agent the other (`host`), as if an RS-485 adapter joined
them. The paths are symlinks in a temporary directory; both exist once `start()` returns.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from linewarden.errors import SimulatorError
from simulators.lifecycle import AsyncService


def socat_binary() -> str | None:
    """The socat executable, None when it is not installed (Debian: apt-get install socat)."""
    return shutil.which("socat")


class PtyPair(AsyncService):
    """`async with PtyPair() as line: line.device, line.host`."""

    def __init__(self, timeout: float = 10.0) -> None:
        binary = socat_binary()
        if binary is None:
            raise SimulatorError("socat is not installed (Debian: apt-get install socat)")
        self._binary = binary
        self._timeout = timeout
        self._dir = Path(tempfile.mkdtemp(prefix="lw-serial-"))
        self.device = str(self._dir / "device")
        self.host = str(self._dir / "host")
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        if self._proc is None:
            await asyncio.to_thread(self._start)

    def _start(self) -> None:
        self._proc = proc = subprocess.Popen(
            [self._binary, f"pty,raw,echo=0,link={self.device}", f"pty,raw,echo=0,link={self.host}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self._timeout
        while not (Path(self.device).exists() and Path(self.host).exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                self._proc = None
                proc.kill()
                proc.wait(5)
                shutil.rmtree(self._dir, ignore_errors=True)
                raise SimulatorError("socat did not make the pseudo-terminal pair")
            time.sleep(0.01)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 5)
        shutil.rmtree(self._dir, ignore_errors=True)
