"""Vendor tickets: one sink per vendor API, a dispatch outbox that raises each ticket exactly once."""
