"""Jailed SWE-ReX sessions: stateful shells that contain hostile commands like any sandboxed program."""

import os
import time
import uuid
from pathlib import Path

import pytest

from resources.swerex import SweRexSessions

pytestmark = pytest.mark.slow  # jailed shell sessions


def _host_pids_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _gone(marker: str, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while _host_pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not _host_pids_with(marker)


@pytest.fixture
def sessions(sandbox):
    return SweRexSessions(command_timeout_s=20, startup_timeout_s=60)


def test_session_keeps_state_as_unprivileged_user_without_host_env(sessions, sandbox, monkeypatch):
    monkeypatch.setenv("HRM_TEST_SECRET", "hunter2")
    with sessions.open(files={"notes.txt": "hello\n"}, sandbox=sandbox) as s:
        assert s.run("pwd").output == "/work"
        assert int(s.run("id -u").output) >= sandbox.uid_base
        assert s.run("cat notes.txt").output == "hello"
        assert s.run("mkdir -p sub && cd sub && export GREETING=hi").status == "ok"
        r = s.run("pwd; echo $GREETING")
        assert r.output.splitlines() == ["/work/sub", "hi"]
        assert "hunter2" not in s.run("env").output
        failed = s.run("ls /does-not-exist")
        assert failed.status == "failed" and failed.exit_code == 2


def test_printing_prompt_like_text_does_not_cut_a_command_short(sessions, sandbox):
    with sessions.open(sandbox=sandbox) as s:
        r = s.run("echo SHELLPS1PREFIX; sleep 0.5; echo after")
        assert r.output.splitlines() == ["SHELLPS1PREFIX", "after"] and r.exit_code == 0
        assert s.run("echo next").output == "next"


def test_host_files_and_network_are_out_of_reach(sessions, sandbox):
    repo_root = Path(__file__).resolve().parents[2]
    with sessions.open(sandbox=sandbox) as s:
        assert s.run(f"ls {repo_root}").status == "failed"
        assert s.run("cat /etc/shadow").status == "failed"
        assert s.run("touch /usr/hrm-owned").status == "failed"
        net = s.run("python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)\"")
        assert net.status == "failed" and ("unreachable" in net.output or "Errno" in net.output)
    assert not Path("/usr/hrm-owned").exists()


def test_timeout_really_stops_the_command_and_keeps_the_session(sessions, sandbox):
    marker = f"{31000 + uuid.uuid4().int % 999}.5"
    with sessions.open(sandbox=sandbox) as s:
        s.run("cd /tmp && export KEEP=1")
        r = s.run(f"sleep {marker}; echo finished", timeout_s=1.5)
        assert r.status == "timeout"
        assert _gone(f"sleep {marker}"), "the timed-out command is still running"
        after = s.run("pwd; echo $KEEP")
        assert after.output.splitlines() == ["/tmp", "1"], "an interrupt must not reset the session"
        assert s.resets == 0


def test_a_command_deaf_to_ctrl_c_is_killed_as_a_job_and_its_notice_never_reaches_the_next_command(
        sessions, sandbox):
    marker = f"{33000 + uuid.uuid4().int % 999}.5"
    code = f"import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep({marker})"
    with sessions.open(sandbox=sandbox) as s:
        s.run("cd /tmp")
        assert s.run(f'python3 -c "{code}"', timeout_s=1.5).status == "timeout"
        assert _gone(marker)
        assert s.run("pwd").output == "/tmp"  # not "[1]+  Killed ..." first
        assert s.resets == 0


def test_command_that_ignores_interrupts_is_killed_with_its_jail(sessions, sandbox):
    marker = f"{32000 + uuid.uuid4().int % 999}.5"
    code = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            f"signal.signal(signal.SIGTSTP, signal.SIG_IGN); time.sleep({marker})")
    with sessions.open(sandbox=sandbox) as s:
        r = s.run(f'python3 -c "{code}"', timeout_s=1.5)
        assert r.status == "timeout"
        assert s.resets == 1
        assert _gone(marker)
        assert s.run("echo back").output == "back"


def test_background_processes_die_when_the_session_closes(sessions, sandbox):
    marker = f"{33000 + uuid.uuid4().int % 999}.5"
    with sessions.open(sandbox=sandbox) as s:
        assert s.run(f"(setsid nohup sleep {marker} >/dev/null 2>&1 &) ; sleep 0.2; echo started").status == "ok"
        assert _host_pids_with(f"sleep {marker}"), "the background process should be running"
    assert _gone(f"sleep {marker}"), "a background process outlived its session"


def test_session_resource_limits_hold(sandbox):
    limited = SweRexSessions(command_timeout_s=30, startup_timeout_s=60, memory_mb=256, max_processes=40)
    with limited.open(sandbox=sandbox) as s:
        mem = s.run("python3 -c 'x = bytearray(1024 ** 3)'")
        assert mem.status == "failed" and "MemoryError" in mem.output
        s.write_file("/tmp/forks.py", "import os\nn = 0\ntry:\n    while n < 200:\n        if os.fork() == 0:\n"
                                      "            os._exit(0)\n        n += 1\nexcept OSError:\n    print('stopped', n)\n")
        forks = s.run("python3 /tmp/forks.py")
        assert "stopped" in forks.output, forks
        assert s.run("echo alive").output == "alive"


def test_host_heredoc_escape_is_refused(sessions, sandbox, tmp_path):
    target = tmp_path / "pwned"
    with sessions.open(sandbox=sandbox) as s:
        r = s.run(f"true\nSOUNIQUEEOF\ntouch {target}")
        assert r.status == "error"
        assert s.run("echo ok").output == "ok"
    assert not target.exists()


def test_long_commands_and_file_writes_survive_the_terminal_line_limit(sessions, sandbox):
    body = "x = 1\n" + "# " + "y" * 9000 + "\nprint(x + 1)\n"
    with sessions.open(sandbox=sandbox) as s:
        assert s.run("echo " + "z" * 6000 + " | wc -c").output == "6001"
        assert s.write_file("/work/prog.py", body).status == "ok"
        assert s.run("python3 prog.py").output == "2"
        assert s.run("cat prog.py | md5sum").output.split()[0] == __import__("hashlib").md5(body.encode()).hexdigest()


def test_parallel_sessions_run_at_once(sessions, sandbox):
    def work(i):
        with sessions.open(sandbox=sandbox) as s:
            return s.run(f"sleep 1; echo {i}").output

    t0 = time.monotonic()
    assert sessions.map(work, list(range(4)), workers=4) == ["0", "1", "2", "3"]
    assert time.monotonic() - t0 < 30


def test_non_local_deployments_come_from_config():
    from swerex.deployment.config import DockerDeploymentConfig, RemoteDeploymentConfig

    docker = SweRexSessions(deployment="docker", deployment_options={"image": "python:3.12"}).deployment_config()
    assert isinstance(docker, DockerDeploymentConfig) and docker.image == "python:3.12"
    remote = SweRexSessions(deployment="remote", deployment_options={"host": "http://10.0.0.5", "port": 8000,
                                                                     "auth_token": "t"}).deployment_config()
    assert isinstance(remote, RemoteDeploymentConfig) and remote.port == 8000
    with pytest.raises(ValueError, match="deployment"):
        SweRexSessions(deployment="ssh").open()
