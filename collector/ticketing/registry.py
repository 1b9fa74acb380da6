"""The one table of ticket sinks: a contract's `[ticketing] kind` names its sink here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collector.ticketing.base import TicketSink
from collector.ticketing.email import EmailTicketSink
from collector.ticketing.jira import JiraTicketSink
from collector.ticketing.jira_readback import JiraReader
from collector.ticketing.pagerduty import PagerDutyTicketSink
from collector.ticketing.readback import VendorReader
from collector.ticketing.servicenow import ServiceNowTicketSink
from collector.ticketing.servicenow_readback import ServiceNowReader
from collector.ticketing.webhook import WebhookTicketSink
from linewarden.config.contract import JiraSink, ServiceNowSink, SinkConfig

# Each factory takes the config model of its own kind; the discriminated SinkConfig union guarantees the match.
SINKS: dict[str, Callable[[Any], TicketSink]] = {
    "webhook": WebhookTicketSink,
    "email": EmailTicketSink,
    "jira": JiraTicketSink,
    "servicenow": ServiceNowTicketSink,
    "pagerduty": PagerDutyTicketSink,
}


def make_sink(config: SinkConfig) -> TicketSink:
    """The sink for a contract's `[ticketing]` section. Raises TicketRejected when its secret is missing."""
    return SINKS[config.kind](config)


def make_reader(config: SinkConfig) -> VendorReader | None:
    """The read-back of a contract's `[ticketing]` section, or None when it reads nothing back (its kind cannot,
    or `readback` is absent or disabled). Raises TicketRejected when its secret is missing."""
    if isinstance(config, JiraSink | ServiceNowSink) and config.readback is not None and config.readback.enabled:
        return JiraReader(config, config.readback) if isinstance(config, JiraSink) else ServiceNowReader(
            config, config.readback
        )
    return None
