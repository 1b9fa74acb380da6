"""The web console: server-rendered pages for plant IT, procurement and vendors (docs/console.md)."""
