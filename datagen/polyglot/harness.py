"""How each language's tests run in the Sandbox, the way Aider's harness runs them.

Per run: the exercise's stubs, the candidate's files, then build, editor and test files restored from
the pristine exercise (skipped tests enabled), all copied into the jail's /work. Three things are built
once (per cache folder, keyed by a hash of their inputs) and bound read-only into later jails, because
rebuilding them dominated the time: Catch's main object for C++ (~12 s per exercise), a Go build cache
with the standard library (a cold `go test` takes ~30 s) and class-data-sharing archives for javac and
JUnit (~0.5 s of JVM start-up per Java exercise). Each is built in a jail of its own from trusted inputs
(the toolchains, the benchmark's Catch files, our own warm-up code), never from candidate code, and
sealed root-owned before any later jail sees it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from datagen.polyglot.exercise import Exercise, relative_path
from datagen.polyglot.reports import enable_skipped_tests, judge, test_sources
from resources.report_guard import guard_bind, guard_command, read_document
from resources.sandbox import Sandbox, SandboxJob
from resources.settings import env_str
from resources.toolchains import JAVA_JARS, TOOLCHAIN_DIR, toolchain
from resources.warehouse import default_data_dir

TEST_TIMEOUT_S = 180.0  # Aider's limit for one test run
GUARD_GRACE_S = 15.0  # the jail outlives the guard's own limit by this much, so the guard can report
SHARED_MOUNT = "/opt/polyglot"
# C++ bank-account runs 1000 threads at once: each counts as a process, and each 8 MB stack counts
# against the data limit (RLIMIT_DATA is virtual size, so 8 GB of mostly untouched stacks).
TEST_MAX_PROCESSES = 2048
TEST_MEMORY_MB = {"cpp": 10240}
_JAVA_REQUIRED_JARS = JAVA_JARS[:3]  # JUnit console, AssertJ, Byte Buddy; org.json only for rest-api
_JVM_FLAGS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
_JAVAC_FLAGS = " ".join(f"-J{f}" for f in _JVM_FLAGS.split())
_JUNIT_ARGS = "org.junit.platform.console.ConsoleLauncher --disable-banner --disable-ansi-colors"
_JAVA_WARM_TEST = """import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

public class WarmTest {
    @Test
    public void warm() {
        assertThat(java.util.List.of(1, 2)).containsExactly(1, 2);
    }
}
"""
# Standard-library packages the Go cache is warmed with: what the exercises import, and a few more.
_GO_WARM_PACKAGES = ("bufio", "bytes", "cmp", "container/heap", "container/list", "crypto/rand", "errors",
                     "fmt", "io", "iter", "log", "maps", "math", "math/big", "math/bits", "math/rand",
                     "os", "reflect", "regexp", "runtime", "slices", "sort", "strconv", "strings", "sync",
                     "sync/atomic", "testing", "time", "unicode", "unicode/utf8")


def default_cache_dir() -> Path:
    """Where shared builds (Catch main, Go cache, Java CDS archives) live between runs, keyed by a hash."""
    return Path(env_str("HRM_POLYGLOT_CACHE") or Path(default_data_dir()) / "cache" / "polyglot")


def unsupported_reason(language: str) -> str | None:
    """Why this machine cannot run `language` tests, or None when it can."""
    tc = toolchain(language)
    if not tc.available:
        return f"{language} toolchain missing: {tc.reason}"
    if language == "javascript" and not (TOOLCHAIN_DIR / "npm" / "node_modules" / ".bin" / "jest").exists():
        return f"jest not installed under {TOOLCHAIN_DIR / 'npm'} (run scripts/setup.sh)"
    if language == "java":
        if not shutil.which("java"):
            return "java runtime not found (apt-get install default-jdk-headless)"
        missing = [j for j in _JAVA_REQUIRED_JARS if not Path(j).exists()]
        if missing:
            return f"Java test jars missing: {', '.join(missing)} (run scripts/setup.sh as root)"
    return None


def test_workspace(ex: Exercise, solution: dict[str, str]) -> dict[str, str]:
    """Exercise-relative files for one test run; editor, build and test files always pristine."""
    files = {**ex.solution_files, **solution, **ex.build_files, **ex.editor_files}
    for path, content in ex.test_files.items():
        files[path] = enable_skipped_tests(ex.language, content)
    bad = [p for p in files if relative_path(p) != p]
    if bad:
        raise ValueError(f"{ex.key}: file paths outside the exercise: {bad[:3]}")
    return files


def session_command(ex: Exercise) -> str:
    """The exercise's tests as an agent runs them in its shell, in /work holding `test_workspace(ex, {})`:
    the tools and flags of `TestRunner`'s run, output for a person to read, build output outside /work
    (kept in /tmp between runs, so later builds are incremental). Only feedback: verification is a
    `TestRunner` run in a fresh jail."""
    tests = " ".join(shlex.quote(p) for p in sorted(ex.test_files))
    if ex.language == "python":
        return ("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -I -B -m pytest -q -rA --tb=short -p no:cacheprovider "
                f"--noconftest -c /dev/null --rootdir=/work {tests}")
    if ex.language == "javascript":
        # jest's babel transform resolves its presets from /work/node_modules; git is told to leave the link out
        return ("{ [ -e node_modules ] || ln -s /opt/npm/node_modules node_modules; } && "
                "{ grep -qsx /node_modules .git/info/exclude || echo /node_modules >> .git/info/exclude; }; "
                f"jest --ci --runInBand --testTimeout=30000 --runTestsByPath {tests}")
    if ex.language == "rust":
        return ("{ grep -qsx /Cargo.lock .git/info/exclude || echo /Cargo.lock >> .git/info/exclude; }; "
                "CARGO_TARGET_DIR=/tmp/hrm-target cargo test -- --include-ignored")
    if ex.language == "go":
        return "go test ./..."
    if ex.language == "java":
        jars = _java_class_path()
        return (f"rm -rf /tmp/classes && find src -name '*.java' > /tmp/sources && "
                f"javac {_JAVAC_FLAGS} -encoding UTF-8 -nowarn -d /tmp/classes -cp {jars} @/tmp/sources && "
                f"java {_JVM_FLAGS} -cp {jars} {_JUNIT_ARGS} --details=tree --class-path /tmp/classes "
                "--scan-class-path")
    if ex.language == "cpp":
        # The exercise's CMakeLists takes its name from its folder's name: /tmp/hrm-cpp/<exercise> links to /work.
        # With the shared Catch main bound in (`TestRunner.session_binds`), it is linked instead of compiled.
        name, catch = shlex.quote(ex.exercise), f"{SHARED_MOUNT}/catch"
        shared, own = (" ".join(shlex.quote(line) for line in _cmake_top(ex.exercise, c)) for c in (catch, None))
        return (f"mkdir -p /tmp/hrm-cpp && ln -sfn /work /tmp/hrm-cpp/{name} && "
                f"{{ if [ -f {catch}/tests-main.o ]; then printf '%s\\n' {shared}; else printf '%s\\n' {own}; fi; }} "
                "> /tmp/hrm-cpp/CMakeLists.txt && "
                "cmake -Wno-dev -DEXERCISM_RUN_ALL_TESTS=1 -G 'Unix Makefiles' -S /tmp/hrm-cpp -B /tmp/hrm-cpp/build "
                f">/dev/null && cmake --build /tmp/hrm-cpp/build --target {name} && /tmp/hrm-cpp/build/{name}/{name}")
    raise ValueError(f"{ex.key}: no test command for {ex.language!r}")


def _cmake_top(exercise: str, catch_dir: str | None) -> list[str]:
    """A top-level CMake project over the exercise's folder. Exercism's CMakeLists link `catchlib`'s objects
    when EXERCISM_COMMON_CATCH is on: with `catch_dir`, the prebuilt Catch main is that object library."""
    top = ["cmake_minimum_required(VERSION 3.5.1)", "project(polyglot_cpp CXX)"]
    if catch_dir:
        top += ["add_library(catchlib OBJECT IMPORTED)",
                f"set_property(TARGET catchlib PROPERTY IMPORTED_OBJECTS {catch_dir}/tests-main.o)",
                "set(EXERCISM_COMMON_CATCH ON)"]
    return top + [f"add_subdirectory({exercise})"]


class TestRunner:
    """Builds the jail job for an exercise's test run, with the per-run shared builds."""

    def __init__(self, sandbox: Sandbox, cache_dir: str | Path, timeout_s: float = TEST_TIMEOUT_S, log=None):
        self.sandbox = sandbox
        self.cache_dir = Path(cache_dir)
        self.timeout_s = timeout_s
        self.log = log or (lambda msg: None)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._built: dict[str, Path | None] = {}
        self.shared_builds: dict[str, dict] = {}  # name -> status, seconds, cpu_s (builds made by this runner)

    def job(self, ex: Exercise, solution: dict[str, str]) -> SandboxJob:
        """The jail job of one test run: the language's script under the report guard, which hands the test
        framework's report (written in $HRM_REPORT_DIR) back on the jail's stdout."""
        files = test_workspace(ex, solution)
        recipe = getattr(self, f"_{ex.language}")
        files, script, binds = recipe(ex, files)
        limit = self.sandbox.max_output_bytes
        command = guard_command(["sh", "-c", script], self.timeout_s, max_document_bytes=limit - 4096,
                                max_output_bytes=limit)
        return SandboxJob(command=command, files=files, ro_binds=[*binds, guard_bind()],
                          timeout_s=self.timeout_s + GUARD_GRACE_S, max_processes=TEST_MAX_PROCESSES,
                          memory_mb=max(self.sandbox.memory_mb, TEST_MEMORY_MB.get(ex.language, 0)))

    def run(self, ex: Exercise, solution: dict[str, str]) -> "TestRun":
        """Run the tests on `solution` and judge them from the framework's report, never from an exit code
        alone: a pass needs exit status 0 and a report in which every expected test ran and passed."""
        job = self.job(ex, solution)
        start = time.monotonic()
        result = self.sandbox.run_job(job)
        seconds = time.monotonic() - start
        doc = read_document(result.stdout)
        if doc is None:
            if result.status == "timeout":
                return TestRun("timeout", f"Tests timed out! (limit {self.timeout_s:g} s)\n", seconds, None)
            note = (f"[test harness: no result came back from the test run (jail status {result.status}); "
                    "the test process killed or stopped the harness, or could not start]")
            return TestRun("fail", f"{result.stderr[-2000:]}\n{note}\n", seconds, None)
        status, output = judge(ex.language, test_sources(ex), doc, self.timeout_s)
        return TestRun(status, output, seconds, doc["cpu_s"])

    def session_binds(self, ex: Exercise) -> list[tuple[str, str]]:
        """Read-only binds of the shared builds `session_command` uses (the Catch main, for C++)."""
        catch_dir = self._shared("cpp", ex) if ex.language == "cpp" else None
        return [(str(catch_dir), f"{SHARED_MOUNT}/catch")] if catch_dir else []

    # --- per-language recipes: (files, shell script, read-only binds) ----------------------------
    def _python(self, ex, files):
        # -I: neither the working directory nor PYTHON* variables shape the interpreter; pytest then puts
        # the test folder on the path itself. No plugins, no conftest, no ini file but our own settings.
        tests = " ".join(shlex.quote(p) for p in sorted(ex.test_files))
        return files, ("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -I -B -m pytest -q -p no:cacheprovider "
                       "--noconftest -c /dev/null --rootdir=/work "
                       f'--junitxml="$HRM_REPORT_DIR/pytest.xml" {tests}'), []

    def _javascript(self, ex, files):
        # Jest's 5 s per-test default fails parallel-letter-frequency's worker-thread test on a loaded
        # 2-core machine; the 180 s limit on the whole run still applies.
        tests = " ".join(shlex.quote(p) for p in sorted(ex.test_files))
        return files, ("ln -s /opt/npm/node_modules node_modules && jest --ci --runInBand --testTimeout=30000 "
                       f'--json --outputFile="$HRM_REPORT_DIR/jest.json" --runTestsByPath {tests}'), []

    def _rust(self, ex, files):
        # One cargo run per test target, each with its own libtest log (libtest truncates the log file per
        # test binary); then the library's own unit and doc tests, as a plain `cargo test` would run them.
        targets = sorted(PurePosixPath(p).stem for p in test_sources(ex))
        runs = [f"cargo test --test {shlex.quote(t)} -- --include-ignored "
                f'--logfile "$HRM_REPORT_DIR/{shlex.quote(t)}.libtest.log"' for t in targets]
        runs += ["cargo test --lib -- --include-ignored", "cargo test --doc -- --include-ignored"]
        return files, " && ".join(runs), []

    def _java(self, ex, files):
        # Class-data-sharing archives of javac's and JUnit's classes (built once) cut JVM start-up; the
        # JVM checks them and silently falls back if they do not match. Test classes go to JUnit's own
        # --class-path so the JVM class path is the jars alone, as when the archive was made.
        jars = _java_class_path()
        archives = self._shared("java", ex)
        javac_cds = f"-J-XX:SharedArchiveFile={SHARED_MOUNT}/java/javac.jsa " if archives else ""
        junit_cds = f"-XX:SharedArchiveFile={SHARED_MOUNT}/java/junit.jsa " if archives else ""
        binds = [(str(archives), f"{SHARED_MOUNT}/java")] if archives else []
        script = (f"find src -name '*.java' > /tmp/sources && "
                  f"javac {javac_cds}{_JAVAC_FLAGS} -encoding UTF-8 -nowarn -d /tmp/classes -cp {jars} @/tmp/sources && "
                  f"java {junit_cds}{_JVM_FLAGS} -cp {jars} {_JUNIT_ARGS} --details=tree --class-path /tmp/classes "
                  '--scan-class-path --reports-dir "$HRM_REPORT_DIR/junit"')
        return files, script, binds

    def _go(self, ex, files):
        cache = self._shared("go", ex)
        binds = [(str(cache), f"{SHARED_MOUNT}/gocache")] if cache else []
        copy = f"cp -R {SHARED_MOUNT}/gocache /tmp/gocache && " if cache else ""
        # The JSON event stream is the report; the host turns its output events back into go test's text.
        return files, f'{copy}go test -json ./... > "$HRM_REPORT_DIR/go-test.json"', binds

    def _cpp(self, ex, files):
        catch_dir = self._shared("cpp", ex)
        binds = [(str(catch_dir), f"{SHARED_MOUNT}/catch")] if catch_dir else []
        top = _cmake_top(ex.exercise, f"{SHARED_MOUNT}/catch" if catch_dir else None)
        nested = {f"{ex.exercise}/{p}": c for p, c in files.items()}
        nested["CMakeLists.txt"] = "\n".join(top) + "\n"
        # Build the test binary only (the exercise's `make` target would also run it, without a report),
        # then run it with Catch's XML reporter writing outside /work.
        exe = shlex.quote(f"./{ex.exercise}/{ex.exercise}")
        script = ("mkdir build && cd build && cmake -Wno-dev -DEXERCISM_RUN_ALL_TESTS=1 -G 'Unix Makefiles' .. "
                  f">/dev/null && cmake --build . --target {shlex.quote(ex.exercise)} && "
                  f'{exe} -r xml -o "$HRM_REPORT_DIR/catch.xml"')
        return nested, script, binds

    # --- shared builds ---------------------------------------------------------------------------
    def _shared(self, kind: str, ex: Exercise) -> Path | None:
        """The host folder of a shared build for `ex` (built on first use), or None if it failed."""
        inputs = self._shared_inputs(kind, ex)
        if inputs is None:
            return None
        files, script = inputs
        digest = hashlib.sha256(repr((kind, script, sorted(files.items()))).encode()).hexdigest()[:16]
        name = f"{kind}-{digest}"
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._built:
                self._built[name] = self._build_shared(name, files, script)
            return self._built[name]

    def _shared_inputs(self, kind: str, ex: Exercise):
        if kind == "cpp":
            main, header = ex.build_files.get("test/tests-main.cpp"), ex.build_files.get("test/catch.hpp")
            if main is None or header is None or "CATCH_CONFIG_MAIN" not in main:
                return None
            return ({"test/tests-main.cpp": main, "test/catch.hpp": header},
                    "g++ -std=c++17 -g -c test/tests-main.cpp -o /cache/tests-main.o")
        if kind == "go":
            goroot = next((Path(src) for src, dest in toolchain("go").binds if dest == "/opt/go"), None)
            version = (goroot / "VERSION").read_text().splitlines()[0] if goroot and (goroot / "VERSION").exists() else ""
            packages = sorted(p for p in _GO_WARM_PACKAGES if goroot and (goroot / "src" / p).is_dir())
            imports = "\n".join(f'\t_ "{p}"' for p in packages)
            files = {"go.mod": "module warmup\n\ngo 1.18\n",
                     "warmup.go": f"package warmup\n\nimport (\n{imports}\n)\n",
                     "warmup_test.go": 'package warmup\n\nimport "testing"\n\nfunc TestWarm(t *testing.T) {}\n',
                     "VERSION": version}
            return files, "GOCACHE=/cache go test ./..."
        if kind == "java":
            jars = _java_class_path()
            javac = Path(shutil.which("javac") or "javac").resolve()
            stamp = [(j, Path(j).stat().st_size, Path(j).stat().st_mtime) for j in jars.split(":")] + [str(javac)]
            script = (f"javac -J-XX:ArchiveClassesAtExit=/cache/javac.jsa {_JAVAC_FLAGS} -d /tmp/warm -cp {jars} "
                      f"WarmTest.java && java -XX:ArchiveClassesAtExit=/cache/junit.jsa {_JVM_FLAGS} -cp {jars} "
                      f"{_JUNIT_ARGS} --details=none --class-path /tmp/warm --scan-class-path "
                      f"&& test -s /cache/javac.jsa && test -s /cache/junit.jsa")
            return {"WarmTest.java": _JAVA_WARM_TEST, "STAMP": repr(stamp)}, script
        raise ValueError(kind)

    def _build_shared(self, name: str, files: dict[str, str], script: str) -> Path | None:
        target = self.cache_dir / name
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.cache_dir))
        staging.chmod(0o777)  # written by the jail's unprivileged uid
        self.log(f"building shared {name} (once per cache)")
        result = self.sandbox.run_job(SandboxJob(command=["sh", "-c", _accounted(script)], files=files,
                                                 rw_binds=[(str(staging), "/cache")], timeout_s=900))
        self.shared_builds[name] = {"status": result.status, "seconds": result.wall_s,
                                    "cpu_s": split_cpu_seconds(result.stderr)[1]}
        if not result.ok:
            shutil.rmtree(staging, ignore_errors=True)
            self.log(f"shared build {name} failed ({result.status}); exercises build it themselves: "
                     f"{result.stdout[-500:]}")
            return None
        _seal(staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished the same build first
            shutil.rmtree(staging, ignore_errors=True)
        return target


@dataclass
class TestRun:
    status: str  # pass, fail or timeout
    output: str  # what the tests printed, with the harness's notes
    seconds: float
    cpu_s: float | None


def _accounted(script: str) -> str:
    """The script with its output merged into stdout, and its CPU time (`times`) on stderr."""
    return f"{{ {script} ; }} 2>&1; rc=$?; times >&2; exit $rc"


_TIMES = re.compile(r"(\d+)m([\d.]+)s (\d+)m([\d.]+)s\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$")


def split_cpu_seconds(stderr: str) -> tuple[str, float | None]:
    """(stderr without the `times` report, CPU seconds of the script and its children)."""
    m = _TIMES.search(stderr)
    if not m:
        return stderr, None
    v = [float(x) for x in m.groups()]
    cpu = sum(v[i] * 60 + v[i + 1] for i in (0, 2, 4, 6))
    return stderr[:m.start()], round(cpu, 2)


def _java_class_path() -> str:
    return ":".join(j for j in JAVA_JARS if Path(j).exists())


def _seal(root: Path) -> None:
    """Root-owned and read-only for everyone else, so no later jail can change it."""
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath, *(os.path.join(dirpath, f) for f in filenames)]:
            if os.geteuid() == 0:
                os.lchown(n, 0, 0)
            if not os.path.islink(n):
                os.chmod(n, 0o755 if os.path.isdir(n) else 0o644)
