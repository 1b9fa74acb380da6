"""Which node of a broker cluster to try next, and how long to wait before trying it (docs/broker-cluster.md).

Pure: times and the jitter are arguments. Nodes are tried in turn; a node that fails (refused, unreachable, no
CONNACK in time, connection lost) hands over to the next one at once, and only after every node failed in one
round does the client wait: `wait_min_s` doubling up to `wait_max_s`, jittered down by up to half so that a
plant's agents do not come back in step. A connection that stayed up for `stable_s` starts the count afresh; one
lost sooner still counts in its round, so a cluster whose every node accepts and then drops the client costs a
wait per round instead of a hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NodeRotation:
    nodes: int
    wait_min_s: float
    wait_max_s: float
    stable_s: float
    index: int = 0  # the node being tried or used
    _failed_in_round: int = field(default=0, init=False)
    _rounds: int = field(default=0, init=False)
    _up_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("a rotation needs at least one node")

    def connected(self, now: float) -> None:
        self._up_since = now

    def failed(self, now: float, jitter: float) -> tuple[int, float]:
        """The current node failed at `now`: the node to try next and the seconds to wait first.

        `jitter` in [0, 1] scales a round's wait between half and all of it."""
        if self._up_since is not None and now - self._up_since >= self.stable_s:
            self._failed_in_round = 0
            self._rounds = 0
        self._up_since = None
        self._failed_in_round += 1
        self.index = (self.index + 1) % self.nodes
        if self._failed_in_round < self.nodes:
            return self.index, 0.0
        self._failed_in_round = 0
        wait = min(self.wait_max_s, self.wait_min_s * 2 ** min(self._rounds, 30))
        self._rounds += 1
        return self.index, wait * (0.5 + min(max(jitter, 0.0), 1.0) / 2)
