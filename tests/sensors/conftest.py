"""Sensors and schedules are evaluated with Dagster's context builders against a throwaway in-memory instance
(an on-disk test instance costs about a second per test to create)."""

import dagster as dg
import pytest


@pytest.fixture
def instance():
    return dg.DagsterInstance.ephemeral()
