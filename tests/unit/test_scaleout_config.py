"""Sharing the ingest: the share-group setting and the shared-subscription filters."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as paho
import pytest

from linewarden.config.collector import CollectorConfig
from linewarden.config.load import load
from linewarden.errors import ConfigError
from linewarden.mqtt import _unshared, shared


@pytest.mark.parametrize(
    ("group", "topic_filter", "expected"),
    [
        (None, "lw/v1/+/+/events", "lw/v1/+/+/events"),
        ("collectors", "lw/v1/+/+/events", "$share/collectors/lw/v1/+/+/events"),
    ],
)
def test_a_filter_is_shared_only_with_a_group(group: str | None, topic_filter: str, expected: str) -> None:
    assert shared(group, topic_filter) == expected
    assert _unshared(expected) == topic_filter


def test_a_shared_filter_matches_the_plain_topics_it_delivers() -> None:
    plain = _unshared(shared("g", "lw/v1/+/+/events"))
    assert paho.topic_matches_sub(plain, "lw/v1/plant-a/edge-1/events")
    assert not paho.topic_matches_sub(plain, "lw/v1/collector/state")


def test_a_share_group_needs_the_shared_database(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text('[collector]\nid = "c2"\n\n[ingest]\nshare_group = "collectors"\n')
    with pytest.raises(ConfigError) as raised:
        load(CollectorConfig, path)
    assert "collector.toml" in str(raised.value) and "ingest.share_group" in str(raised.value)
    assert "database_url" in str(raised.value)
    path.write_text('[collector]\ndatabase_url = "postgresql://db/lw"\n[ingest]\nshare_group = "collectors"\n')
    assert load(CollectorConfig, path).ingest.share_group == "collectors"


@pytest.mark.parametrize("bad", ["a/b", "+", "#", "Upper", ""])
def test_a_share_group_is_one_topic_level_without_wildcards(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\ndatabase_url = "postgresql://db/lw"\n\n[ingest]\nshare_group = "{bad}"\n')
    with pytest.raises(ConfigError, match="share_group"):
        load(CollectorConfig, path)
