"""The linewarden edge agent: probes, target states, incidents, SQLite outbox, MQTT forwarder."""
