"""The Docker deployment (deploy/docker/) for real: images built here from Debian's packages, Postgres, the
webserver and the daemon up; a run launched through the webserver's GraphQL API executes in a container of
its own, its graders' jail working inside it, its records in Postgres and its table on the shared volume;
then everything is torn down. Needs root and Docker (scripts/setup.sh installs docker.io, debootstrap and
docker-compose); skipped with the reason where they are missing. The first build takes about six minutes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from inference.server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "docker"
ASSET = "humaneval_problems"  # a run of seconds whose blocking check runs 164 solutions in the jail
CHECKS = {"humaneval_problems_valid", "humaneval_canonical_solutions_pass"}


def _missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker CLI (scripts/setup.sh installs docker.io as root)"
    engine = subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    if not engine and (os.geteuid() != 0 or shutil.which("dockerd") is None):
        return "no Docker engine answers and none can be started here (root and docker.io are needed)"
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        return "building the base image needs root and debootstrap"
    has_compose = (shutil.which("docker-compose") is not None
                   or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0)
    return None if has_compose else "no docker compose (scripts/setup.sh installs docker-compose)"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def _leftovers(name: str) -> list[str]:
    return [line for line in (
        _docker("ps", "-aq", "--filter", f"label=hrm/deployment={name}"),
        _docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={name}"),
        _docker("volume", "ls", "-q", "--filter", f"name={name}_"),
        _docker("network", "ls", "-q", "--filter", f"name={name}_network")) if line]


@pytest.fixture(scope="module")
def deployment():
    reason = _missing()
    if reason:
        pytest.skip(reason)
    name = f"hrmtest{os.getpid()}"
    env = {**os.environ, "HRM_DEPLOYMENT": name, "HRM_UI_PORT": str(free_port()),
           "HRM_TOOLCHAIN_PACKAGES": ""}  # a Python-only image: the run below grades Python only
    env.pop("HRM_POSTGRES_PASSWORD", None)
    try:
        subprocess.run(["bash", str(DEPLOY / "up.sh")], env=env, check=True, timeout=1500)
        yield name, int(env["HRM_UI_PORT"]), env
    finally:
        subprocess.run(["bash", str(DEPLOY / "down.sh"), "--volumes"], env=env, timeout=300)


def _graphql(port: int, query: str, **variables) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


def _wait_for_location(port: int) -> None:
    deadline = time.monotonic() + 180
    while True:
        entries = _graphql(port, "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                 "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
        entry = entries["workspaceOrError"]["locationEntries"][0]
        if entry["loadStatus"] == "LOADED":
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            return
        assert time.monotonic() < deadline, f"the code location did not load: {entry}"
        time.sleep(2)


def _launch(port: int, asset: str) -> str:
    result = _graphql(port, """
        mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
          ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""", params={
        "selector": {"repositoryLocationName": "hrm_code", "repositoryName": "__repository__",
                     "jobName": "__ASSET_JOB", "assetSelection": [{"path": [asset]}]},
        "runConfigData": {}})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def _wait_for_run(port: int, run_id: str) -> dict:
    deadline = time.monotonic() + 600
    while True:
        run = _graphql(port, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }",
                       id=run_id)["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return {"status": run["status"], "tags": {t["key"]: t["value"] for t in run["tags"]}}
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after 10 minutes"
        time.sleep(2)


def test_a_run_launched_through_the_webserver_executes_in_its_own_container(deployment):
    name, port, env = deployment
    _wait_for_location(port)
    run_id = _launch(port, ASSET)
    run = _wait_for_run(port, run_id)
    container_id = run["tags"].get("docker/container_id")
    assert run["status"] == "SUCCESS", (run, container_id and _docker("logs", "--tail", "60", container_id))

    # its own container: the project image, labelled with the run and the deployment, exited cleanly, the data
    # volume mounted, not one of the deployment's services
    for _ in range(60):
        state = json.loads(_docker("inspect", container_id))[0]
        if not state["State"]["Running"]:
            break
        time.sleep(1)
    assert state["State"]["ExitCode"] == 0
    assert state["Config"]["Image"] == "hrm-code:latest"
    assert state["Config"]["Labels"]["dagster/run_id"] == run_id
    assert state["Config"]["Labels"]["hrm/deployment"] == name
    assert "com.docker.compose.service" not in state["Config"]["Labels"]
    assert f"{name}_data:/data:rw" in state["HostConfig"]["Binds"]

    # the asset and its blocking checks (one runs the canonical solutions in the jail inside the container)
    events = _graphql(port, """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
        __typename ... on MaterializationEvent { assetKey { path } }
        ... on AssetCheckEvaluationEvent { evaluation { checkName success } } } } } }""", id=run_id)
    events = events["logsForRun"]["events"]
    assert [e["assetKey"]["path"] for e in events if e["__typename"] == "MaterializationEvent"] == [[ASSET]]
    checks = {e["evaluation"]["checkName"]: e["evaluation"]["success"]
              for e in events if e["__typename"] == "AssetCheckEvaluationEvent"}
    assert checks == dict.fromkeys(CHECKS, True)

    # the run's records are in Postgres, its table on the shared volume
    postgres = _docker("ps", "-q", "--filter", f"label=com.docker.compose.project={name}",
                       "--filter", "label=com.docker.compose.service=postgres")
    rows = _docker("exec", postgres, "psql", "-tA", "-U", "dagster", "-d", "dagster", "-c",
                   f"SELECT status FROM runs WHERE run_id = '{run_id}'")
    assert rows == "SUCCESS"
    listing = _docker("run", "--rm", "-v", f"{name}_data:/data:ro", "hrm-code:latest",
                      "find", "/data/tables", "-name", "*.parquet")
    assert f"/data/tables/{ASSET}/" in listing

    # torn down: services, the run container, volumes and network gone
    subprocess.run(["bash", str(DEPLOY / "down.sh"), "--volumes"], env=env, check=True, timeout=300)
    assert _leftovers(name) == []
