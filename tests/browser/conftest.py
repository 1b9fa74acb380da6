"""One running collector per test module (tests/browser/site.py), shared by its tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.broker import Mosquitto
from tests.browser.site import Site, prepare, running


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Iterator[Site]:
    with running(prepare(tmp_path_factory.mktemp("console"), mosquitto.port)) as up:
        yield up
