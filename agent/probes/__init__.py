"""Probe kinds. Each module `agent/probes/<type>.py` holds one probe class; `registry.PROBES` maps type → class."""
