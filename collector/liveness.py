"""Agent liveness: when an agent stopped watching, and when it was watching again. Pure; time is an argument.

A monitoring gap runs from the agent's last heartbeat (its measured time) to the first evidence that it
was watching again: a birth of a new boot, or any event measured after the gap's start. An agent that kept
measuring while it could not reach the broker replays what it measured; when that replay shows it was never
silent for longer than the tolerance (missed heartbeats × interval), the gap is withdrawn.

A restart always leaves a gap, from the old boot's last event to the new boot's birth: only the old boot's
own events (those it sent itself, and those the new boot replays from before its birth's `boot_seq`) move
the start of its gap; the new boot's first heartbeat, measured a few ms before its birth, never bridges the
restart. A birth without `boot_seq` (an agent from before) lets only the old boot's own batches count.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from enum import StrEnum

from collector.store.rows import AgentRow, GapRow

REASON_MISSED = "missed heartbeats"
REASON_RESTARTED = "agent restarted"
REASON_STOPPED = "agent stopped"


class Liveness(StrEnum):
    ALIVE = "alive"
    SILENT = "silent"  # heartbeats overdue
    STOPPED = "stopped"  # a death message


def tolerance_ms(agent: AgentRow, missed_heartbeats: int) -> int:
    return missed_heartbeats * agent.heartbeat_interval_s * 1000


def last_watched(agent: AgentRow, last_event: int | None = None) -> int:
    """Measured time the agent was last known watching: its last heartbeat, else its birth, or its boot's last
    event (`last_event`) when that is later."""
    watched = agent.birth_at if agent.last_heartbeat is None else max(agent.last_heartbeat, agent.birth_at)
    return watched if last_event is None else max(watched, last_event)


def watched_by(gap_boot: str, batch_boot: str, batch_epoch: str, agent: AgentRow, seq: int) -> bool:
    """Whether an event (seq `seq` of a batch sent by `batch_boot`) shows the boot of a gap still watching: a
    boot's own batches do; a later boot's only for what it replays from before its first seq (`boot_seq`)."""
    if batch_boot == gap_boot:
        return True
    return agent.boot_seq is not None and batch_epoch == agent.epoch and seq < agent.boot_seq


def overdue(agent: AgentRow, now: int, missed_heartbeats: int, watching_since: int) -> bool:
    """Heartbeats missed: nothing received for missed × interval.

    `watching_since` is when the collector started: an agent cannot be late while nobody listened.
    """
    return now >= overdue_at(agent, missed_heartbeats, watching_since)


def overdue_at(agent: AgentRow, missed_heartbeats: int, watching_since: int) -> int:
    """The first moment the agent is overdue if nothing more is received from it."""
    last = agent.birth_received_at
    if agent.last_heartbeat_received_at is not None:
        last = max(last, agent.last_heartbeat_received_at)
    return max(last, watching_since) + tolerance_ms(agent, missed_heartbeats) + 1


def next_check_at(
    agents: Iterable[AgentRow], silent: Container[tuple[str, str]], now: int, missed_heartbeats: int,
    watching_since: int,
) -> int | None:
    """When the liveness watch must look again: the first moment an agent not yet `silent` (by site, agent)
    becomes overdue, and no later than the shortest tolerance from `now`, because an agent silent now that
    comes back in the meantime is overdue at the earliest that long after it came back. None: no agents."""
    due: int | None = None
    for agent in agents:
        shortest = now + tolerance_ms(agent, missed_heartbeats)
        at = shortest if (agent.site, agent.agent) in silent else overdue_at(agent, missed_heartbeats, watching_since)
        due = min(at, shortest) if due is None else min(due, at, shortest)
    return due


def status(agent: AgentRow, open_gap: GapRow | None, now: int, missed_heartbeats: int, watching_since: int) -> Liveness:
    if open_gap is not None and open_gap.reason.startswith(REASON_STOPPED):
        return Liveness.STOPPED
    if open_gap is not None or overdue(agent, now, missed_heartbeats, watching_since):
        return Liveness.SILENT
    return Liveness.ALIVE


def first_evidence(gap_start: int, event_times: Iterable[int]) -> int | None:
    """The earliest measured time after the gap's start, if any."""
    later = [t for t in event_times if t > gap_start]
    return min(later) if later else None


def trimmed_start(start: int, end: int, event_times: Iterable[int], tolerance: int) -> int:
    """Move a closed gap's start over replayed events that continue the watch without a silence > tolerance."""
    for t in sorted(t for t in event_times if start < t < end):
        if t - start > tolerance:
            break
        start = t
    return start


def continuous(start: int, evidence: int, tolerance: int) -> bool:
    """The evidence comes soon enough after the last heartbeat that the agent never stopped watching."""
    return evidence - start <= tolerance


def oldest_unacked_age_ms(agent: AgentRow) -> int | None:
    """How old the agent's oldest unacknowledged event was when its latest heartbeat was made (both times the
    agent's own clock, so its skew does not count); None while the outbox was empty or the heartbeat did not say."""
    return unacked_age_ms(agent.last_heartbeat, agent.oldest_unacked_at)


def unacked_age_ms(last_heartbeat: int | None, oldest_unacked_at: int | None) -> int | None:
    if oldest_unacked_at is None or last_heartbeat is None:
        return None
    return max(0, last_heartbeat - oldest_unacked_at)
