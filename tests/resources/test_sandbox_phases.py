"""Compile and run under separate limits, and the prebuilt toolchain caches every jail shares: a Go hello
world passes with `--timeout 5`, the JSON says which phase ended a job, and no jail can change what a
later jail compiles against."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import resources.sandbox as sandbox_module
from resources import mounts, toolcache
from resources.sandbox import Sandbox, SandboxJob
from resources.toolchains import toolchain

UID_BASE = 63400  # our own uid range (see tests/resources/test_sandbox.py)
GO_HELLO = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello", 6*7) }\n'


def _sandbox(**kw) -> Sandbox:
    return Sandbox(uid_base=UID_BASE, concurrency=2, **kw)


def _cli(tmp_path: Path, language: str, source: str, *flags: str) -> dict:
    src = tmp_path / "prog.txt"
    src.write_text(source)
    proc = subprocess.run([sys.executable, "-m", "hrm_cli.main", "sandbox", "run", "--language", language,
                           *flags, str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def go_cache(sandbox):
    if not toolchain("go").available:
        pytest.skip(toolchain("go").reason)
    if os.geteuid() != 0:
        pytest.skip("the prebuilt caches are sealed root-owned: root only")
    built = toolcache.build(_sandbox())
    assert toolcache.go_cache() is not None, built
    return toolcache.go_cache()


@pytest.mark.slow
def test_go_hello_world_passes_with_a_five_second_timeout(go_cache, tmp_path):
    out = _cli(tmp_path, "go", GO_HELLO, "--timeout", "5")
    assert (out["status"], out["phase"], out["stdout"]) == ("ok", "run", "hello 42\n"), out
    assert set(out) >= {"status", "exit_code", "stdout", "stderr", "wall_s", "compile_wall_s", "run_wall_s"}
    # the standard library comes from the prebuilt cache: a cold one took over 5 s here
    assert out["compile_wall_s"] < 2.5, out


@pytest.mark.slow
def test_a_slow_compile_does_not_count_against_the_run_limit(sandbox):
    # the compile step sleeps and burns CPU past the run's wall and CPU limits; the run itself is quick
    r = _sandbox().run(["sh", "-c", "echo ran"], timeout_s=1,
                       compile=["python3", "-c", "import time\nt = time.process_time()\n"
                                                "while time.process_time() - t < 2.5: pass\ntime.sleep(0.5)"])
    assert (r.status, r.phase, r.stdout) == ("ok", "run", "ran\n"), r
    assert r.compile_wall_s >= 3 and r.run_wall_s < 1 and r.wall_s >= 3


@pytest.mark.slow
@pytest.mark.parametrize("language", ["cpp", "rust"])
def test_a_compile_longer_than_the_run_limit_passes(sandbox, tmp_path, language):
    if not toolchain(language).available:
        pytest.skip(toolchain(language).reason)
    source = {"cpp": "#include <iostream>\n#include <map>\n#include <regex>\n"
                     "int main() { std::map<int, int> m{{4, 2}}; std::cout << m[4] << std::endl; }\n",
              "rust": "use std::collections::HashMap;\nfn main() { let mut m = HashMap::new(); m.insert(4, 2); "
                      "println!(\"{}\", m[&4]); }\n"}[language]
    out = _cli(tmp_path, language, source, "--timeout", "0.1")
    assert (out["status"], out["phase"], out["stdout"]) == ("ok", "run", "2\n"), out
    assert out["compile_wall_s"] > 0.1 > out["run_wall_s"], out  # the compile alone outlasts the run limit


@pytest.mark.slow
def test_a_program_that_loops_forever_times_out_in_the_run_phase(go_cache, tmp_path):
    out = _cli(tmp_path, "go", "package main\n\nfunc main() {\n\tfor {\n\t}\n}\n", "--timeout", "1")
    assert (out["status"], out["phase"]) == ("timeout", "run"), out
    assert 0.9 < out["run_wall_s"] < 3, out


@pytest.mark.slow
def test_a_run_that_burns_cpu_past_its_limit_is_a_run_timeout(sandbox):
    # The run's CPU limit is timeout + 1 s even though the compile step's was larger: two threads
    # spinning use it up before the wall clock runs out, and SIGXCPU reads as a timeout of the run.
    spin = "import threading\ndef f():\n    while True: pass\nfor _ in range(2): threading.Thread(target=f).start()\nf()"
    r = _sandbox().run(["python3", "-c", spin], timeout_s=2, compile=["true"], compile_timeout_s=30)
    assert (r.status, r.phase) == ("timeout", "run"), r


@pytest.mark.slow
@pytest.mark.parametrize("language", ["cpp", "rust", "go"])
def test_a_compile_past_its_limit_ends_in_the_compile_phase(sandbox, tmp_path, language):
    if not toolchain(language).available:
        pytest.skip(toolchain(language).reason)
    source = {"cpp": "#include <iostream>\nint main() { std::cout << 1; }\n",
              "rust": "fn main() { println!(\"1\"); }\n", "go": GO_HELLO}[language]
    out = _cli(tmp_path, language, source, "--timeout", "30", "--compile-timeout", "0.05")
    assert (out["status"], out["phase"], out["run_wall_s"]) == ("timeout", "compile", None), out


@pytest.mark.slow
def test_a_compile_error_fails_in_the_compile_phase(sandbox, tmp_path):
    out = _cli(tmp_path, "cpp", "int main() { return }\n", "--timeout", "5")
    assert (out["status"], out["phase"], out["stdout"]) == ("failed", "compile", ""), out
    assert "error" in out["stderr"] and out["exit_code"] != 0


@pytest.mark.slow
def test_neither_phase_holds_the_phase_pipe(sandbox):
    r = _sandbox().run(["sh", "-c", "ls /proc/self/fd; { echo x >&6; } 2>/dev/null || echo closed"],
                       compile=["sh", "-c", "ls /proc/self/fd; echo compiled"])
    assert r.status == "ok", r
    compile_out, run_out = r.stdout.split("compiled\n")
    for listing in (compile_out, run_out):
        fds = [line for line in listing.split("\n") if line.isdigit()]
        assert "0" in fds and "6" not in fds, r.stdout
    assert run_out.endswith("closed\n"), r.stdout


def test_a_job_without_a_compile_step_is_all_run(sandbox):
    r = _sandbox().run(["sh", "-c", "echo hi; exit 3"])
    assert (r.status, r.exit_code, r.phase, r.compile_wall_s, r.run_wall_s) == ("failed", 3, "run", None, r.wall_s)


# A jailed program tries every way to change the shared cache: write, append, truncate, remove, rename,
# chmod and hard-link each entry; replace a folder; and leave a new entry for the next jail to find.
_POISON = r"""
import json, os
root = os.environ["GOCACHE"]
done = {"write": 0, "truncate": 0, "remove": 0, "rename": 0, "chmod": 0, "link": 0, "folder": 0}
tried = 0
for sub in sorted(os.listdir(root)):
    d = os.path.join(root, sub)
    if not os.path.isdir(d):
        continue
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        tried += 1
        for what, act in (("write", lambda: open(p, "r+b").write(b"poison")),
                          ("truncate", lambda: os.truncate(p, 0)),
                          ("chmod", lambda: os.chmod(p, 0o666)),
                          ("link", lambda: os.link(p, os.path.join(d, "hl-" + name))),
                          ("rename", lambda: os.rename(p, p + ".x")),
                          ("remove", lambda: os.unlink(p))):
            try:
                act()
                done[what] += 1
            except OSError:
                pass
    try:
        os.rename(d, d + ".x")
        done["folder"] += 1
    except OSError:
        pass
with open(os.path.join(root, "00", "poison-entry"), "w") as f:
    f.write("poison")
print(json.dumps({"tried": tried, "done": done}))
"""


def _signature(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            st = os.lstat(n)
            out[os.path.relpath(n, root)] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ino)
    return out


@pytest.mark.slow
def test_a_jail_cannot_poison_the_shared_cache_for_a_later_jail(go_cache):
    before = _signature(go_cache)
    sb = _sandbox()
    attack = sb.run(["python3", "-c", _POISON], timeout_s=120)
    assert attack.status == "ok", attack
    report = json.loads(attack.stdout)
    assert report["tried"] > 100, report  # it saw the prebuilt entries
    assert report["done"] == dict.fromkeys(report["done"], 0), report
    assert _signature(go_cache) == before  # nothing of the host's copy changed, nothing added
    # the next jail builds against the untouched cache (fast: the standard library is all hits), and the
    # attacker's new entry is gone with its jail
    listing = sb.run(["sh", "-c", 'ls -a "$GOCACHE/00"'])
    assert listing.status == "ok" and listing.stdout.count("\n") > 2 and "poison" not in listing.stdout, listing
    run = sb.run(["/tmp/prog"], compile=["sh", "-c", "go build -o /tmp/prog main.go"], files={"main.go": GO_HELLO})
    assert (run.status, run.stdout) == ("ok", "hello 42\n"), run
    assert run.compile_wall_s < 2.5, run


def test_the_cache_is_unused_unless_root_owned_and_hidden(tmp_path, monkeypatch):
    key = toolcache._go_key()
    if key is None:
        pytest.skip("no Go toolchain")
    root = tmp_path / "caches"
    (root / f"go-{key}").mkdir(parents=True)
    monkeypatch.setattr(toolcache, "CACHE_ROOT", root)
    toolcache.go_cache.cache_clear()
    try:
        os.chmod(root / f"go-{key}", 0o1777)
        root.chmod(0o755)  # reachable by every host user: not used
        assert toolcache.go_cache() is None
        root.chmod(0o700)
        toolcache.go_cache.cache_clear()
        expected = root / f"go-{key}" if os.geteuid() == 0 else None  # tmp_path is the caller's own
        assert toolcache.go_cache() == expected
        os.chmod(root / f"go-{key}", 0o755)  # not sealed
        toolcache.go_cache.cache_clear()
        assert toolcache.go_cache() is None
    finally:
        toolcache.go_cache.cache_clear()


# --- the jail's filesystems, mounted by the host process -------------------------------------------
def test_a_jails_filesystems_are_private_to_root_and_gone_after_it(sandbox):
    if os.geteuid() != 0:
        pytest.skip("the host mounts the jail's filesystems as root only")
    sb = _sandbox()
    with sb.process(SandboxJob(command=["sh", "-c", "echo secret > /work/f; echo ready; read x"])) as jail:
        assert jail.proc.stdout.readline() == b"ready\n"
        stage = next(Path(p) for p in mounts.mount_points() if f"/hrm-sbx-{os.getpid()}-" in p
                     and p.endswith("/work")).parent
        assert (stage.stat().st_mode & 0o777) == 0o700 and (stage / "work" / "f").read_text() == "secret\n"
    assert not any(str(stage) in p for p in mounts.mount_points()) and not stage.exists()


def test_filesystems_a_dead_process_left_are_reaped(sandbox, tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("root only")
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    stage = Path(sandbox_module.STAGE_DIR or "/tmp") / f"hrm-sbx-{dead}-left"
    (stage / "work").mkdir(parents=True)
    mounts.mount(stage, stage, None, mounts.MS_BIND)
    mounts.mount(None, stage, None, mounts.MS_PRIVATE)
    mounts.mount("sandbox", stage / "work", "tmpfs", 0, "size=1048576")
    (stage / "work" / "left").write_text("x")
    monkeypatch.setattr(sandbox_module, "_reap_done", False)
    sandbox_module._reap_stale_mounts()
    assert not any(str(stage) in p for p in mounts.mount_points()) and not stage.exists()
