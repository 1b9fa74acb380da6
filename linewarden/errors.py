"""The one exception tree of linewarden. Every error the code raises on purpose derives from LinewardenError."""


class LinewardenError(Exception):
    """Base of every error raised on purpose by linewarden, the agent, the collector and the simulators."""


class ConfigError(LinewardenError):
    """A configuration file is missing, malformed or invalid. The message names file, key and problem."""

    def __init__(self, file: str, key: str, problem: str, line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class WireError(LinewardenError):
    """A payload on the wire does not match the protocol."""


class ProbeError(LinewardenError):
    """A probe could not produce a result; the message is the failure reason."""


class StoreError(LinewardenError):
    """A database operation failed in a way the caller must handle."""


class StorageFull(StoreError):
    """The disk (or the database's size cap) is full: the transaction was rolled back; retry when space returns."""


class StoreUnavailable(StoreError):
    """The database server cannot be reached (restarted, connection lost): nothing was committed; retry later."""


class TicketError(LinewardenError):
    """A ticket sink could not complete a request."""


class SimulatorError(LinewardenError):
    """A simulator was asked something it cannot do."""


class BrokerError(LinewardenError):
    """An MQTT operation failed: not connected, queue full, connection lost before PUBACK, or a failure reason."""


class ConnectionLost(BrokerError):
    """The connection ended before the message's PUBACK: not a refusal by the broker; send it again."""


class TicketRejected(TicketError):
    """The vendor refused a ticket request (bad credentials, unknown project, invalid field): retrying will not help."""


class TicketNotFound(TicketError):
    """No ticket with that incident and contract (or none the caller may see)."""


class TicketStateError(TicketError):
    """The ticket is not in a state that allows the step (e.g. a pause the contract does not allow)."""


class MaintenanceRefused(LinewardenError):
    """A maintenance window is not recorded: it covers nothing, or its announcement time is not acceptable."""


class BackdateForbidden(MaintenanceRefused):
    """An announcement dated before the collector received it, from someone who may not back-date."""
