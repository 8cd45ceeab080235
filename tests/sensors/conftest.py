"""Sensors and schedules are evaluated with Dagster's context builders against a throwaway instance."""

import dagster as dg
import pytest


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst
