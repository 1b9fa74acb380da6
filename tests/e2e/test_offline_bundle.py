"""The offline bundle: built for this machine, installed into a clean venv with pip barred from any index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_OFFLINE_HINTS = (
    "No matching distribution", "Could not find a version", "NewConnectionError", "Network is unreachable",
    "Temporary failure in name resolution", "ConnectTimeout",
)  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    # nothing to fetch from: an unroutable index, no extra links; install.sh adds --no-index itself
    env.update(PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")  # fmt: skip
    return env


def test_bundle_installs_with_no_index_and_runs(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    build = subprocess.run(
        ["bash", str(ROOT / "packaging/bundle/build.sh"), "--out", str(bundle), "current"],
        capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable}, timeout=480,
    )  # fmt: skip
    if build.returncode != 0:
        if any(hint in build.stderr for hint in _OFFLINE_HINTS):
            pytest.skip(f"no package index or pip cache to build the bundle from: {build.stderr.strip()[-300:]}")
        pytest.fail(f"bundle build failed:\n{build.stderr[-3000:]}")
    wheels = sorted(p.name for p in (bundle / "wheels/current").glob("*.whl"))
    assert any(w.startswith("linewarden-") for w in wheels)
    assert all(not w.endswith(".tar.gz") for w in wheels)

    venv = tmp_path / "somewhere else" / "venv"  # a path with a space, and run from another directory
    install = subprocess.run(
        [str(bundle / "install.sh"), "--prefix", str(venv), "--python", sys.executable],
        capture_output=True, text=True, env=_offline_env(), cwd=tmp_path, timeout=480,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]

    linewarden = venv / "bin" / "linewarden"
    assert subprocess.run([str(linewarden), "--version"], capture_output=True, text=True).stdout.startswith(
        "linewarden "
    )
    check = subprocess.run(
        [str(linewarden), "config", "check", str(bundle / "config/agent.toml"), str(bundle / "config/collector.toml")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    imports = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import collector.api.app, collector.metrics, psycopg, prometheus_client"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert imports.returncode == 0, imports.stderr

    # the systemd installers, from the bundle, run from elsewhere, into a scratch root
    root = tmp_path / "root"
    for role in ("collector", "agent"):
        done = subprocess.run(
            [str(bundle / f"packaging/systemd/install-{role}.sh")], capture_output=True, text=True, cwd=tmp_path,
            env={**_offline_env(), "LINEWARDEN_INSTALL_ROOT": str(root), "PYTHON": sys.executable}, timeout=480,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"ok: {root}/etc/linewarden/{role}.toml" in done.stdout
        assert (root / f"etc/systemd/system/linewarden-{role}.service").is_file()
    etc = root / "etc/linewarden"
    assert (etc / "calendars/production-plant-a.toml").is_file()  # named by agent.toml
    assert sorted(p.name for p in (etc / "contracts").glob("*.toml")) == sorted(
        p.name for p in (ROOT / "config/contracts").glob("*.toml")
    )
