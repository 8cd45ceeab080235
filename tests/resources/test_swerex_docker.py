"""SWE-ReX's docker deployment carries a session's repository, environment and read-only mounts into the
container (resources/swerex.py), run against the project image (deploy/docker/build.sh builds it when it
is missing: minutes the first time). Skipped with the reason where Docker or root is missing."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from resources.swerex import SweRexSessions

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "hrm-code:latest"  # has swe-rex (swerex-remote on PATH) and pytest


@pytest.fixture(scope="module")
def image():
    if shutil.which("docker") is None or os.geteuid() != 0:
        pytest.skip("needs root and Docker (scripts/setup.sh installs docker.io)")
    if subprocess.run(["bash", str(ROOT / "deploy/docker/dockerd.sh")]).returncode != 0:
        pytest.skip("no Docker engine could be started here")
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        subprocess.run(["bash", str(ROOT / "deploy/docker/build.sh")], check=True, timeout=1500,
                       env={**os.environ, "HRM_TOOLCHAIN_PACKAGES": ""})
    return IMAGE


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_docker_session_gets_the_repository_environment_and_mounts(image, tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "test_calc.py").write_text("from pkg.calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "marker").write_text("task environment\n")
    sessions = SweRexSessions(deployment="docker", startup_timeout_s=120, memory_mb=1024,
                              deployment_options={"image": image, "pull": "never", "startup_timeout": 120})
    with sessions.open(input_dir=repo, files={"NOTES.md": "fix add\n"}, ro_binds=[(env_dir, "/opt/swe-env")],
                       env={"TASK_FLAG": "on it's quoted"}) as session:
        assert session.run("test -f /.dockerenv && pwd").output == "/work"  # in a container, in /work
        assert session.run("find . -type f | sort").output.split() == [
            "./NOTES.md", "./pkg/calc.py", "./test_calc.py"]
        assert session.run('echo "$TASK_FLAG"').output == "on it's quoted"
        assert session.run("cat /opt/swe-env/marker").output == "task environment"
        assert session.run("touch /opt/swe-env/x").status == "failed"  # mounted read-only
        assert "1 failed" in session.run("python -m pytest -q -p no:cacheprovider test_calc.py").output
        session.run("sed -i 's/a - b/a + b/' pkg/calc.py")
        assert "1 passed" in session.run("python -m pytest -q -p no:cacheprovider test_calc.py").output
        limit = session.run("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                            "cat /sys/fs/cgroup/memory.max").output
        assert int(limit) == 1024 * 2**20
    assert (repo / "pkg" / "calc.py").read_text().endswith("a - b\n")  # the host's copy is untouched


def test_modal_and_remote_refuse_host_mounts_naming_them(tmp_path):
    from resources.sandbox import SandboxJob

    job = SandboxJob(command=["bash"], ro_binds=((tmp_path, "/opt/swe-env"),))
    for kind in ("remote", "modal"):
        with pytest.raises(ValueError, match="cannot mount host paths.*/opt/swe-env"):
            SweRexSessions(deployment=kind).deployment_config(job)
