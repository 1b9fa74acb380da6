"""What each console page must show (as an admin sees it on the browser tests' site): its parts by text, and
whether it draws a picture (the server's SVG)."""

from __future__ import annotations

_PARTS = {
    "/": ("Sites, lines and assets", "Open incidents", "Agents", "Clock skew", "line3-plc"),
    "/assets/": ("Timeline", "Probe figures, latest minute", "Version history and detected changes"),
    "/contracts": ("plc-support", "scada-support"),
    "/contracts/": ("Uptime against target", "Observed share", "Response and resolution per severity",
                    "Credits owed", "Cap 30", "Scorecard:", "recurrence", "Twelve-month trend", "Partial period",
                    "Download monthly review (PDF)", "(CSV)", "(JSON"),
    "/incidents/": ("Timeline", "ticket raised", "SLA clocks", "coverage segment", "Escalations and reminders",
                    "RCA:", "In the vendor's tool (read back)", "Escalation notices", "Disputes"),
    "/maintenance": ("Upcoming and in force", "Past 90 days"),
    "/changes": ("Change windows", "Remote sessions"),
    "/renewals": ("Renewals and expiries due",),
    "/audit": ("Chain verified",),
    "/agents": ("Liveness", "Config hash", "Dead letters"),
}
_PICTURES = ("/assets/", "/contracts/", "/incidents/")


def _key(path: str) -> str:
    path = path.split("?", 1)[0]
    if path.count("/") > 1:
        return "/" + path.split("/")[1] + "/"
    return path


def parts(path: str) -> tuple[str, ...]:
    return _PARTS[_key(path)]


def draws(path: str) -> bool:
    return _key(path) in _PICTURES
