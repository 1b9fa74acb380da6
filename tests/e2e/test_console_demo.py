"""`linewarden demo --fast` without --no-console: after the report it serves the console on the demo's data,
prints the URL and a login that works, and stops cleanly when interrupted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
LINEWARDEN = "import sys; from linewarden.cli import main; sys.exit(main())"


def test_demo_ends_with_the_console_running(tmp_path: Path) -> None:
    out = (tmp_path / "screen.txt").open("w+")
    proc = subprocess.Popen([sys.executable, "-c", LINEWARDEN, "demo", "--fast", "--data-dir", str(tmp_path / "d")],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 150
        found = None
        while found is None:
            assert proc.poll() is None, Path(out.name).read_text()[-3000:]
            assert time.monotonic() < deadline, Path(out.name).read_text()[-3000:]
            found = re.search(r"(http://127\.0\.0\.1:\d+/console/)\n\s+log in as 'demo' with password '([^']+)'",
                              Path(out.name).read_text())
            time.sleep(0.5)
        url, password = found.group(1), found.group(2)
        client = httpx.Client(base_url=url.rstrip("/"), timeout=10)
        pre = client.get("/login").text.split('name="pre" value="', 1)[1].split('"', 1)[0]
        assert client.post("/login", data={"pre": pre, "username": "demo", "password": password}).status_code == 303
        overview = client.get("/")
        assert overview.status_code == 200 and "mes-app" in overview.text and "line2-plc" in overview.text
        assert "acme-mes" in client.get("/contracts").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "console stopped" in Path(out.name).read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
