"""What the deployment's run launcher adds to every run container (resources/docker_launcher.py)."""

import pytest
from docker.types import DeviceRequest

from resources.docker_launcher import DEPLOYMENT_LABEL, deployment_container_kwargs

BASE = {"cap_add": ["SYS_ADMIN"], "volumes": ["cache:/cache:ro"], "labels": ["team"]}


def _env(monkeypatch, **values):
    for name in ("HRM_DOCKER_DATA_VOLUME", "HRM_DOCKER_GPUS", "HRM_DEPLOYMENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_adds_the_data_volume_gpus_and_label_to_the_configured_kwargs(monkeypatch):
    _env(monkeypatch, HRM_DOCKER_DATA_VOLUME="hrm_data", HRM_DATA_DIR="/data", HRM_DOCKER_GPUS="all",
         HRM_DEPLOYMENT="hrm")
    kwargs = deployment_container_kwargs(BASE)
    assert kwargs["volumes"] == ["cache:/cache:ro", "hrm_data:/data:rw"]
    assert kwargs["labels"] == {"team": "", DEPLOYMENT_LABEL: "hrm"}
    assert kwargs["cap_add"] == ["SYS_ADMIN"]
    (request,) = kwargs["device_requests"]
    assert isinstance(request, DeviceRequest) and request.count == -1 and request.capabilities == [["gpu"]]
    assert BASE == {"cap_add": ["SYS_ADMIN"], "volumes": ["cache:/cache:ro"], "labels": ["team"]}  # untouched


def test_a_gpu_count_and_nothing_when_unset(monkeypatch):
    _env(monkeypatch, HRM_DOCKER_GPUS="2")
    assert deployment_container_kwargs({})["device_requests"][0].count == 2
    _env(monkeypatch)
    assert deployment_container_kwargs(BASE) == BASE


@pytest.mark.parametrize("value", ["yes", "-1", "1.5", "gpu:0"])
def test_a_bad_gpu_setting_is_refused_naming_it(monkeypatch, value):
    _env(monkeypatch, HRM_DOCKER_GPUS=value)
    with pytest.raises(ValueError, match="HRM_DOCKER_GPUS"):
        deployment_container_kwargs({})
