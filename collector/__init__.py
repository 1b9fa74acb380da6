"""The linewarden collector: ingest, store, contracts, SLA reports, vendor tickets, audit."""
