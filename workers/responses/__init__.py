"""Responses on the run engine: claimed, executed and ended like runs (docs/responses.md)."""
