"""The collector's HTTP API for vendors and plant IT."""
