"""The sandbox contains hostile programs: after each, nothing of it runs and the host is untouched."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resources.sandbox import MAX_SLOTS, Sandbox, SandboxJob

pytestmark = pytest.mark.slow  # the jail runs hostile programs

# Our own uid range, so jails of other test modules or processes running meanwhile don't count.
UID_BASE = 63000


def _sandbox(**kw) -> Sandbox:
    return Sandbox(uid_base=UID_BASE, **kw)


def _jailed_pids(sb: Sandbox) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int((entry / "status").read_text().split("Uid:")[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if sb.uid_base <= uid < sb.uid_base + MAX_SLOTS:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def clean(sandbox):
    sb = _sandbox(timeout_s=30, concurrency=2)
    yield sb
    deadline = time.monotonic() + 5
    while _jailed_pids(sb) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _jailed_pids(sb) == [], "a jailed process outlived its sandbox"


def py(code: str) -> list[str]:
    return ["python3", "-c", code]


def test_runs_as_unprivileged_user_with_cleared_env(clean, monkeypatch):
    monkeypatch.setenv("HRM_TEST_SECRET", "hunter2")
    r = clean.run(py("import os; print(os.getuid(), os.getgid()); print(sorted(os.environ))"))
    assert r.status == "ok", r
    uid, gid = map(int, r.stdout.split("\n")[0].split())
    assert uid >= clean.uid_base and gid >= clean.uid_base
    assert "HRM_TEST_SECRET" not in r.stdout


def test_fork_bomb_is_stopped(clean):
    code = ("import os, time\n"
            "n = 0\n"
            "while True:\n"
            "    try:\n"
            "        os.fork(); n += 1\n"
            "    except OSError:\n"
            "        time.sleep(0.01)\n")
    t0 = time.monotonic()
    r = clean.run(py(code), timeout_s=5, max_processes=64)
    assert r.status == "timeout"
    assert time.monotonic() - t0 < 15


def test_memory_bomb_reports_memory(clean):
    r = clean.run(py("chunks = []\nwhile True: chunks.append(bytearray(64 << 20))"), memory_mb=512)
    assert r.status == "memory", r


def test_disk_fill_hits_the_tmpfs_cap_not_the_host(clean):
    before = os.statvfs("/").f_bavail
    script = "i=0; while dd if=/dev/zero of=f$i bs=1M count=100 2>/dev/null; do i=$((i+1)); done; echo stopped at $i; exit 1"
    r = clean.run(["sh", "-c", script], timeout_s=60)
    assert r.status == "failed" and "stopped at" in r.stdout
    stopped = int(r.stdout.split()[-1])
    assert stopped * 100 <= clean.work_mb
    assert abs(os.statvfs("/").f_bavail - before) * os.statvfs("/").f_frsize < 200 << 20


def test_single_huge_file_hits_the_file_size_limit(clean):
    r = _sandbox(max_file_size_mb=16, work_mb=512).run(
        ["sh", "-c", "dd if=/dev/zero of=big bs=1M count=64"])
    assert r.status == "failed"


def test_infinite_loop_times_out(clean):
    t0 = time.monotonic()
    r = clean.run(py("while True: pass"), timeout_s=2)
    assert r.status == "timeout" and r.exit_code != 0
    assert 1.9 <= r.wall_s < 6 and time.monotonic() - t0 < 8


def test_setsid_background_process_dies_with_the_jail(clean):
    marker = f"sleep {4242 + os.getpid() % 1000}"
    r = clean.run(["sh", "-c", f"setsid {marker} > /dev/null 2>&1 & echo started"], timeout_s=10)
    assert r.status == "ok" and "started" in r.stdout
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


def test_timeout_kills_detached_grandchildren(clean):
    r = clean.run(["sh", "-c", "(setsid sh -c 'while true; do sleep 1; done' &) ; sleep 100"], timeout_s=2)
    assert r.status == "timeout"


def test_no_network_even_to_host_loopback(clean):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    server.settimeout(3)
    t = threading.Thread(target=lambda: accepted.append(_try_accept(server)))
    t.start()
    code = (f"import socket\n"
            f"for host in ('127.0.0.1', '1.1.1.1', 'pypi.org'):\n"
            f"    try:\n"
            f"        socket.create_connection((host, {port} if host == '127.0.0.1' else 443), timeout=2)\n"
            f"        print('CONNECTED', host)\n"
            f"    except OSError as e:\n"
            f"        print('blocked', host, e)\n")
    r = clean.run(py(code))
    t.join()
    server.close()
    assert "CONNECTED" not in r.stdout, r.stdout
    assert accepted == [None]


def _try_accept(server):
    try:
        conn, _ = server.accept()
        conn.close()
        return "accepted"
    except OSError:
        return None


def test_host_paths_are_invisible_or_read_only(clean, tmp_path):
    tmp_path.chmod(0o755)
    host_file = tmp_path / "precious.txt"
    host_file.write_text("keep me")
    code = (f"import os\n"
            f"for p in ['/etc/shadow', '/root/.bashrc', '{host_file}', '{Path.cwd()}/pyproject.toml']:\n"
            f"    try:\n"
            f"        open(p).read(); print('READ', p)\n"
            f"    except OSError as e:\n"
            f"        print('denied', p, e.errno)\n"
            f"for p in ['/usr/bin/hrm-evil', '/opt/venv/evil', '/etc/passwd', '{host_file}', '/tmp/../usr/x']:\n"
            f"    try:\n"
            f"        open(p, 'w').write('x'); print('WROTE', p)\n"
            f"    except OSError as e:\n"
            f"        print('denied', p, e.errno)\n")
    r = clean.run(py(code))
    assert r.status == "ok", r
    assert "READ" not in r.stdout and "WROTE" not in r.stdout, r.stdout
    assert host_file.read_text() == "keep me"
    assert not Path("/usr/bin/hrm-evil").exists()


def test_killing_parent_and_everything_spares_the_host(clean):
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        r = clean.run(["sh", "-c", f"kill -9 $PPID; kill -9 1; kill -9 {os.getpid()}; kill -9 {bystander.pid}; "
                                   "kill -9 -1; echo survived"])
        assert r.status in ("ok", "failed")
        assert bystander.poll() is None
    finally:
        bystander.kill()


def test_huge_output_is_capped(clean):
    sb = _sandbox(max_output_bytes=100_000)
    t0 = time.monotonic()
    r = sb.run(py("import sys\nwhile True: sys.stdout.write('x' * 65536)"), timeout_s=20)
    assert r.status == "output_limit"
    assert len(r.stdout) <= 100_000
    assert time.monotonic() - t0 < 10


def test_stdin_and_files(clean):
    r = clean.run(["sh", "-c", "cat data/in.txt; cat"], files={"data/in.txt": "from file\n"}, stdin=b"from stdin")
    assert r.stdout == "from file\nfrom stdin"


def test_input_dir_is_copied_and_host_copy_untouched(clean, tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "a.txt").chmod(0o644)
    r = clean.run(["sh", "-c", "cat a.txt; echo two > a.txt; cat a.txt"], input_dir=tmp_path)
    assert r.stdout == "onetwo\n"
    assert (tmp_path / "a.txt").read_text() == "one"


def test_file_paths_cannot_escape(clean):
    with pytest.raises(ValueError):
        clean.run(["true"], files={"../../etc/evil": "x"})


def test_a_process_talks_over_pipes_and_its_jail_dies_on_exit(clean):
    # A long-lived jailed process (as the LCB grader keeps one per worker) that leaves a setsid
    # sleeper behind: leaving the context kills all of it.
    job = SandboxJob(command=["sh", "-c", "setsid sleep 300 & while read line; do echo \"got $line $(id -u)\"; done"])
    with clean.process(job) as jail:
        for word in ("a", "b"):
            jail.proc.stdin.write(f"{word}\n".encode())
            jail.proc.stdin.flush()
            got, text, uid = jail.proc.stdout.readline().decode().split()
            assert (got, text) == ("got", word) and int(uid) >= clean.uid_base
        assert _jailed_pids(clean)
    assert jail.proc.returncode is not None


def test_run_many_runs_in_parallel_up_to_concurrency():
    sb = _sandbox(concurrency=2)
    t0 = time.monotonic()
    results = sb.run_many([SandboxJob(command=["sleep", "1"]) for _ in range(4)])
    wall = time.monotonic() - t0
    assert [r.status for r in results] == ["ok"] * 4
    assert 1.9 < wall < 3.9


HELLO = {
    "python": "print(6 * 7)",
    "javascript": "console.log(6 * 7)",
    "cpp": "#include <iostream>\nint main() { std::cout << 6 * 7 << std::endl; }",
    "rust": "fn main() { println!(\"{}\", 6 * 7); }",
    "go": "package main\nimport \"fmt\"\nfunc main() { fmt.Println(6 * 7) }",
    "java": "public class Answer { public static void main(String[] a) { System.out.println(6 * 7); } }",
    "shell": "echo $((6 * 7))",
}


@pytest.mark.parametrize("language", sorted(HELLO))
def test_cli_runs_each_language(sandbox, tmp_path, language):
    import json

    src = tmp_path / "prog.txt"
    src.write_text(HELLO[language])
    proc = subprocess.run([sys.executable, "-m", "hrm_cli.main", "sandbox", "run", "--language", language,
                           "--timeout", "120", str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) >= {"status", "exit_code", "stdout", "stderr", "wall_s"}
    assert out["status"] == "ok" and out["stdout"].strip() == "42", out


def test_cli_reports_hostile_program_and_exits_zero(sandbox, tmp_path):
    import json

    src = tmp_path / "loop.py"
    src.write_text("while True: pass")
    proc = subprocess.run([sys.executable, "-m", "hrm_cli.main", "sandbox", "run", "--language", "python",
                           "--timeout", "1", str(src)], capture_output=True, text=True)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["status"] == "timeout"


def test_layers_name_each_protection(clean):
    layers = clean.layers()
    assert set(layers) == {"user", "memory", "tmpfs", "seccomp", "keyring", "proc"}
    assert all(isinstance(v, str) and v for v in layers.values())


def test_a_long_lived_jail_reports_an_oom_kill(clean):
    from resources.cgroups import memory_hierarchy

    if memory_hierarchy()[0] is None:
        pytest.skip("no memory cgroup here")
    job = SandboxJob(command=["sh", "-c", "read line; python3 -c 'import os\nfds = []\nwhile True:\n"
                                          "    fds.append(os.memfd_create(\"x\")); os.write(fds[-1], bytes(32 << 20))'; "
                                          "echo child $?"], memory_mb=128)
    with clean.process(job) as jail:
        assert not jail.oom_killed()
        jail.proc.stdin.write(b"go\n")
        jail.proc.stdin.flush()
        assert jail.proc.stdout.readline().decode().split() == ["child", "137"]
        assert jail.oom_killed()


def test_cgroup_detection_on_v1_v2_and_hybrid_layouts(tmp_path):
    from resources import cgroups

    hybrid = cgroups.cgroup_mounts(
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "32 25 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu\n")
    own = cgroups.own_cgroups("4:memory:/process_api/ab\n1:cpu:/\n0::/\n")
    assert cgroups.under_mount(hybrid["memory"], own["memory"]) == Path("/sys/fs/cgroup/memory/process_api/ab")
    # v2 seen from a container whose cgroupfs is its own subtree, bind-mounted (no cgroup namespace)
    v2 = cgroups.cgroup_mounts("35 24 0:30 /docker/c1 /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n")
    assert "memory" not in v2
    assert cgroups.under_mount(v2[""], cgroups.own_cgroups("0::/docker/c1\n")[""]) == Path("/sys/fs/cgroup")
    assert cgroups.under_mount(v2[""], "/docker/c1/job") == Path("/sys/fs/cgroup/job")
    # v2: memory delegated below our cgroup, or not available at all, or we live in our own leaf
    tree = tmp_path / "cg"
    (tree / cgroups.HOST_LEAF).mkdir(parents=True)
    (tree / "cgroup.controllers").write_text("cpu memory pids\n")
    (tree / "cgroup.subtree_control").write_text("memory\n")
    assert cgroups.v2_base(tree)[0] == cgroups.Hierarchy(2, tree)
    assert cgroups.v2_base(tree / cgroups.HOST_LEAF)[0] == cgroups.Hierarchy(2, tree)
    (tree / "cgroup.controllers").write_text("cpu pids\n")
    hierarchy, why = cgroups.v2_base(tree)
    assert hierarchy is None and "not available" in why


def test_cli_layers_prints_one_json_object(sandbox):
    import json

    proc = subprocess.run([sys.executable, "-m", "hrm_cli.main", "sandbox", "layers"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) == {"user", "memory", "tmpfs", "seccomp", "keyring", "proc"}
