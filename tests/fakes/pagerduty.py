"""Fake PagerDuty Events API v2: `POST /v2/enqueue`, checked as PagerDuty documents it (routing_key of 32
characters in the body, event_action, dedup_key <= 255, trigger payload summary/source/severity), answering
202 {status, message, dedup_key} or 400 {status: "invalid event", message, errors}."""

from __future__ import annotations

from typing import Any

from tests.fakes.server import FakeVendor, Rejected, Reply, Request, require_json

SEVERITIES = {"critical", "error", "warning", "info"}


def _invalid(*errors: str) -> Rejected:
    return Rejected(400, {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)})


class FakePagerDuty(FakeVendor):
    def __init__(self, routing_key: str) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.alerts: dict[str, dict[str, Any]] = {}  # dedup_key -> {status, severity, log}
        self.alerts_created = 0

    def handle(self, req: Request) -> Reply:
        if req.method != "POST" or req.path != "/v2/enqueue":
            raise Rejected(404, {"status": "not found"})
        event = require_json(req, 400, {"status": "invalid event", "message": "Content-Type must be JSON"})
        errors = []
        if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
            errors.append("'routing_key' must be the 32-character integration key")
        elif event["routing_key"] != self.routing_key:
            errors.append("'routing_key' is not a known integration key")
        action = event.get("event_action")
        if action not in {"trigger", "acknowledge", "resolve"}:
            errors.append("'event_action' must be trigger, acknowledge or resolve")
        key = event.get("dedup_key")
        if key is not None and (not isinstance(key, str) or len(key) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in {"acknowledge", "resolve"} and not key:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            payload = event.get("payload") or {}
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("'payload.summary' is required, at most 1024 characters")
            if not payload.get("source"):
                errors.append("'payload.source' is required")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' must be critical, error, warning or info")
        if errors:
            raise _invalid(*errors)
        with self.lock:
            alert = self.alerts.get(key)
            if action == "trigger":
                if alert is None or alert["status"] == "resolved":
                    alert = self.alerts[key] = {"status": "triggered", "log": []}
                    self.alerts_created += 1
                alert["severity"] = event["payload"]["severity"]
            if alert is not None:  # acknowledge/resolve for an unknown or resolved alert are dropped
                if action == "acknowledge" and alert["status"] != "resolved":
                    alert["status"] = "acknowledged"
                if action == "resolve":
                    alert["status"] = "resolved"
                alert["log"].append(action)
        if action == "trigger":
            self.maybe_stall()
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": key})
