"""Probe kinds. Each module `agent/probes/<type>.py` holds one probe class; `registry.probe_class` finds it."""
