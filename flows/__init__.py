"""The Prefect flows (build-coarse, push-coarse, evaluate) and the command line that runs them.

Prefect reads its settings once, when it is first imported: the local-mode defaults are applied here,
before any module of this package imports Prefect (flows.cli imports flows.progress, which imports
prefect.artifacts), or they would come too late to take effect."""

from flows.prefect_defaults import apply_prefect_defaults

apply_prefect_defaults()
