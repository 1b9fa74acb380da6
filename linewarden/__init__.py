"""linewarden core: wire schema, domain models, calendars, SLA math, severity rules.

Nothing in this package opens a socket or reads a clock; time comes in as arguments.
The one exception is `linewarden.config.load`, which reads the TOML files the models validate.
"""

__version__ = "0.1.0"
