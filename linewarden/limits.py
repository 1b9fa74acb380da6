"""The wire protocol's bounds that the agent's configuration also enforces (docs/limits.md).

Apart from linewarden.wire, which imports them, so that loading a configuration does not load the wire models.
"""

from __future__ import annotations

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"  # site, agent, asset and target ids
MAX_TARGETS = 2000  # targets of one agent (birth, heartbeat, incident)
MAX_BATCH_EVENTS = 10_000  # events in one batch
MAX_INTERVAL_S = 86_400  # a heartbeat interval
