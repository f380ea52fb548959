"""Helpers shared by tests: row factories (rows.py)."""
