"""Backends answer stages: a served model (OpenAI-compatible), the measuring annotators, and more."""
