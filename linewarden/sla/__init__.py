"""Pure SLA engine: uptime, response/resolution clocks, recurrence, credits and vendor scorecards.

Everything here is a pure function of its arguments: integer milliseconds since the epoch (UTC) for
times, `Decimal` for money and percentages. `report.build_report` is the entry point.
"""
