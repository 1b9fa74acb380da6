"""What ships to plant hosts: the systemd units' sandbox and the Windows installer's folder permissions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
UNITS = sorted((PACKAGING / "systemd").glob("*.service"))
MAX_EXPOSURE = 2.0


def test_there_is_a_unit_for_the_agent_and_the_collector() -> None:
    assert [u.name for u in UNITS] == ["linewarden-agent.service", "linewarden-collector.service"]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_systemd_rates_the_unit_exposure_at_most_2(unit: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd provides it)")
    done = subprocess.run([analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    if found is None and "--offline" in done.stderr:
        pytest.skip(f"this systemd-analyze cannot rate unit files offline: {done.stderr.strip()[:200]}")
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_the_windows_installer_gives_the_folder_to_system_and_administrators_only() -> None:
    script = (PACKAGING / "windows" / "install-service.ps1").read_text()  # what install-agent.ps1 runs
    [line] = [ln for ln in script.splitlines() if ln.lstrip().startswith("& icacls.exe")]
    assert "/inheritance:r" in line, "inherited Users read access must go"
    grants = re.findall(r'"\*(S-[\d-]+):\(OI\)\(CI\)F"', line)
    assert grants == ["S-1-5-18", "S-1-5-32-544"]  # SYSTEM, Administrators; nobody else
    assert script.index("icacls.exe") < script.index("pip.exe"), "restricted before anything is written into it"
