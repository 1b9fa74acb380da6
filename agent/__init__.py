"""The linewarden edge agent: probes, target states, incidents, SQLite outbox, MQTT forwarder."""

from agent import lean_imports

lean_imports.apply()  # before the agent's modules import pydantic and paho
