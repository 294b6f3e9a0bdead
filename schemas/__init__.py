"""Pydantic models: the one source of every schema in the engine.

Structured-output JSON schemas (replies.py), the manifest and dataset Arrow schemas
and the `datasets` features (via arrow.py) are all derived from these classes.
"""
