"""Where the browser tests leave their screenshots: LINEWARDEN_ARTEFACTS, else a folder of the test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def artefacts_dir(factory: pytest.TempPathFactory, browser: str) -> Path:
    root = os.environ.get("LINEWARDEN_ARTEFACTS")
    folder = Path(root) / browser if root else factory.mktemp(f"artefacts-{browser}")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the {browser} tests: {folder}")
    return folder
