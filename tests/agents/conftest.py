import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("swe_tiny_repo_agents",
                                               Path(__file__).parents[1] / "datagen" / "swe" / "test_tasks.py")
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)


@pytest.fixture(scope="session")
def swe_task(tmp_path_factory, sandbox):
    """(prepared repo, swesmith_tasks row, AgentTask): a real SWE-smith task on the tiny repo, validated in the jail."""
    from agents.tasks import from_swesmith
    from datagen.swe.repos import baseline_row, parse_repo_spec, repo_from_row
    from datagen.swe.tasks import TaskSettings, build_tasks

    root = tmp_path_factory.mktemp("agent_swe")
    row = baseline_row(sandbox, parse_repo_spec(str(_tiny.make_tiny_repo(root))), root / "work")
    tasks, _, _ = build_tasks(sandbox, row, TaskSettings(max_bugs=4))
    repo = repo_from_row(row)
    return repo, tasks[0], from_swesmith(tasks[0], repo)


@pytest.fixture(scope="session")
def sessions():
    from resources.swerex import SweRexSessions

    return SweRexSessions(command_timeout_s=30, startup_timeout_s=30)
