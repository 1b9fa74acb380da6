"""Configuration models (frozen pydantic v2, unknown keys rejected) and the TOML loader."""
