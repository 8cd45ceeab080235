"""The one Definitions object: every asset module in this package, every schedule and sensor."""

from __future__ import annotations

import importlib
import pkgutil

import dagster as dg

import hrm_assets
import sensors
from hrm_assets.dagster_resources import default_resources
from resources.settings import env_int, env_str

_NOT_ASSET_MODULES = {"definitions", "dagster_resources", "expectations", "metadata", "versions"}
OWNERS = ["team:hrm-code"]


def _asset_modules():
    names = sorted(m.name for m in pkgutil.iter_modules(hrm_assets.__path__) if m.name not in _NOT_ASSET_MODULES)
    return [importlib.import_module(f"hrm_assets.{n}") for n in names]


def _automation():
    schedules, sensor_defs = [], []
    for info in sorted(pkgutil.iter_modules(sensors.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"sensors.{info.name}")
        for value in vars(module).values():
            if isinstance(value, dg.ScheduleDefinition):
                schedules.append(value)
            elif isinstance(value, dg.SensorDefinition):
                sensor_defs.append(value)
    return schedules, sensor_defs


def _owned_and_tagged(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Every asset: the team that owns it, and its stage as a tag (filterable in the UI's catalog)."""
    return spec.replace_attributes(owners=OWNERS, tags={**spec.tags, "stage": spec.group_name})


def _executor():
    # In-process by default: on 2 cores the multiprocess executor spends 6-12 s per step re-importing.
    if env_str("HRM_EXECUTOR") == "multiprocess":
        return dg.multiprocess_executor.configured({"max_concurrent": env_int("HRM_MAX_CONCURRENT")})
    return dg.in_process_executor


def build_definitions() -> dg.Definitions:
    modules = _asset_modules()
    schedules, sensor_defs = _automation()
    return dg.Definitions(
        assets=dg.map_asset_specs(_owned_and_tagged, dg.load_assets_from_modules(modules)),
        asset_checks=dg.load_asset_checks_from_modules(modules),
        schedules=schedules,
        sensors=sensor_defs,
        resources=default_resources(),
        executor=_executor(),
    )


defs = build_definitions()
