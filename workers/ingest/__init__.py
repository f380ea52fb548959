"""Ingestion: vector store files become embedded chunks (pipeline.py drives it)."""
