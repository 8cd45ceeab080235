"""The run launcher of the Docker deployment (deploy/docker/dagster.yaml): dagster-docker's DockerRunLauncher,
each run in a container of the project image, plus what the deployment gives every run container.

Set in the daemon's environment (deploy/docker/compose.yaml sets them; resources/settings.py declares them):
- HRM_DOCKER_DATA_VOLUME: the shared data volume, mounted read-write at HRM_DATA_DIR (the warehouse,
  checkpoints and reports outlive the run container, and the webserver reads them).
- HRM_DOCKER_GPUS: `all`, a count, or empty: the host's GPUs for every run container (training, quantization).
- HRM_DEPLOYMENT: a label on every run container, so tearing the deployment down finds the containers the
  launcher started (compose only knows its own services).
Dagster's own `container_kwargs` still apply; these are added to them."""

from __future__ import annotations

from typing import Mapping

from dagster_docker import DockerRunLauncher as _DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext

from resources.settings import env_str

DEPLOYMENT_LABEL = "hrm/deployment"


def deployment_container_kwargs(base: Mapping) -> dict:
    """`base` (the launcher's container_kwargs) with the deployment's volume, GPUs and label added."""
    kwargs = dict(base)
    volume = env_str("HRM_DOCKER_DATA_VOLUME")
    if volume:
        kwargs["volumes"] = [*kwargs.get("volumes", []), f"{volume}:{env_str('HRM_DATA_DIR')}:rw"]
    gpus = env_str("HRM_DOCKER_GPUS").strip()
    if gpus:
        if gpus != "all" and not gpus.isdigit():
            raise ValueError(f"HRM_DOCKER_GPUS={gpus!r}: expected `all`, a number of GPUs, or empty")
        from docker.types import DeviceRequest

        count = -1 if gpus == "all" else int(gpus)
        kwargs["device_requests"] = [*kwargs.get("device_requests", []),
                                     DeviceRequest(count=count, capabilities=[["gpu"]])]
    deployment = env_str("HRM_DEPLOYMENT")
    if deployment:
        labels = kwargs.get("labels", {})
        labels = {k: "" for k in labels} if isinstance(labels, list) else dict(labels)
        kwargs["labels"] = {**labels, DEPLOYMENT_LABEL: deployment}
    return kwargs


class DockerRunLauncher(_DockerRunLauncher):
    def get_container_context(self, dagster_run) -> DockerContainerContext:
        context = super().get_container_context(dagster_run)
        return DockerContainerContext(
            registry=context.registry, env_vars=context.env_vars, networks=context.networks,
            container_kwargs=deployment_container_kwargs(context.container_kwargs))
