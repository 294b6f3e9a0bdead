"""Errors that are the user's to fix (a configuration, a file, a folder): the CLI prints them as one or
two lines saying what to do, with no traceback (unless asked for with --debug)."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave the engine. Its message names the file, line or key and says
    what to do; it is shown as is."""
