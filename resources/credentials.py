"""Secrets an asset passes on, as a Dagster resource whose fields are set with `dg.EnvVar`: the UI and the
run's config show the variable's name, never its value (a `dg.Config` default would be shown)."""

from __future__ import annotations

import dagster as dg

from resources.settings import env_str


class Credentials(dg.ConfigurableResource):
    # for openai: model specs' endpoints; empty: the endpoint falls back to inference.specs.api_key()
    openai_api_key: str = ""


def default_credentials() -> Credentials:
    """HRM_OPENAI_API_KEY by name when it is set (dg.EnvVar refuses a variable that is not)."""
    if env_str("HRM_OPENAI_API_KEY"):
        return Credentials(openai_api_key=dg.EnvVar("HRM_OPENAI_API_KEY"))
    return Credentials()
