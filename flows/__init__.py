"""Prefect flows and the processing stages they run."""
