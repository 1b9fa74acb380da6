"""The Windows service: a thin pywin32 layer over `linewarden.service_host` (importable only on Windows).

    python -m linewarden.winservice agent|collector install|start|stop|remove|debug  [pywin32 options]

Config: %ProgramData%\\linewarden\\<role>.toml (LINEWARDEN_HOME overrides the folder); logs: a rotating
file in its `logs` folder, and WARNING and above in the Event Log (source `linewarden-<role>`).
Recovery (restart on failure) is set by packaging/windows/install-service.ps1 with `sc.exe failure`.
"""

from __future__ import annotations

import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any

import servicemanager
import win32event
import win32service
import win32serviceutil

from linewarden.service_host import ROLES, Role, ServiceHost


def home() -> Path:
    explicit = os.environ.get("LINEWARDEN_HOME")
    return Path(explicit) if explicit else Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "linewarden"


class _Service(win32serviceutil.ServiceFramework):  # type: ignore[misc]
    role: Role

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self._stopped = win32event.CreateEvent(None, 0, 0, None)
        event_log = logging.handlers.NTEventLogHandler(f"linewarden-{self.role}")
        self.host = ServiceHost(self.role, home() / f"{self.role}.toml", home() / "logs", [event_log])

    def SvcStop(self) -> None:
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
        self.host.stop()
        win32event.SetEvent(self._stopped)

    def SvcDoRun(self) -> None:
        servicemanager.LogInfoMsg(f"linewarden {self.role} starting; log file {self.host.log_file}")
        os.chdir(home())  # a service starts in System32: relative data_dir paths live under the linewarden folder
        code = self.host.run()
        if code != 0:
            # an error exit lets the service's failure actions (restart) apply
            raise RuntimeError(f"linewarden {self.role} exited with {code}; see {self.host.log_file}")
        servicemanager.LogInfoMsg(f"linewarden {self.role} stopped")


class AgentService(_Service):
    _svc_name_ = "linewarden-agent"
    _svc_display_name_ = "linewarden agent"
    _svc_description_ = "Polls PLCs and plant services and forwards events to the linewarden collector."
    role = "agent"


class CollectorService(_Service):
    _svc_name_ = "linewarden-collector"
    _svc_display_name_ = "linewarden collector"
    _svc_description_ = "Ingests agent events, runs SLA clocks, raises vendor tickets, serves the API."
    role = "collector"


SERVICES: dict[str, type[_Service]] = {"agent": AgentService, "collector": CollectorService}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ROLES:
        print("usage: python -m linewarden.winservice agent|collector install|start|stop|remove|debug", file=sys.stderr)
        return 2
    cls = SERVICES[argv[0]]
    # HandleCommandLine reads argv[1:] as pywin32's own command line; the class by its importable name
    # (under `python -m` this module is __main__, which the service host process cannot import)
    win32serviceutil.HandleCommandLine(
        cls, serviceClassString=f"linewarden.winservice.{cls.__name__}", argv=[sys.argv[0], *argv[1:]]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
