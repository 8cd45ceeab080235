"""Source repositories for SWE tasks: a pinned checkout, an environment, and a baseline test run.

A repo spec is one line of text:
  `addict==2.4.0`                      a PyPI sdist (pinned version), turned into a one-commit git repo
  `git+https://host/owner/repo@<sha>`  a git repository at a commit
  `swesmith:mewwts__addict.75284f95`   a SWE-smith profile (its GitHub repo at the profile's commit)
  `/some/local/dir[@<sha>]`            a local directory or git repository
  `dataset:<path or HF name>`          not a repo: SWE-smith task rows to load (see datagen.swe.hf)
The environment is a venv with the repo's dependencies and pytest, built outside the jail from
wheels only (`--only-binary=:all:`: no sdist is built, so no code from a download runs on the host)
and bound read-only at /opt/swe-env; requirements that are not plain index packages are refused and
listed in `refused_requirements` (see datagen.swe.requirements). The repo itself is copied into the
jail's /work for every run. A downloaded tree that carries its own `.git` is refused: git would read
its config (hooks, fsmonitor) on the host.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datagen.swe import requirements as reqs
from resources.fetchers import FetchError, git_clone
from resources.pypi import fetch_sdist, sdist_metadata, unpack_sdist
from resources.sandbox import Sandbox, SandboxJob
from resources.settings import env_str, split_csv

# Small pure-Python libraries whose sdists ship their tests and need no compiled dependencies.
DEFAULT_REPO_SPECS = ("addict==2.4.0", "inflection==0.5.1", "cachetools==8.0.2")
ENV_MOUNT = "/opt/swe-env"
TEST_EXTRAS = reqs.TEST_EXTRAS
_AUTHOR = {"GIT_AUTHOR_NAME": "hrm-swe", "GIT_AUTHOR_EMAIL": "swe@hrm.invalid",
           "GIT_COMMITTER_NAME": "hrm-swe", "GIT_COMMITTER_EMAIL": "swe@hrm.invalid",
           "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z"}
_SUMMARY_LINE = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS)\s+(\S.*?)(?:\s+-\s+.*)?$")
_SUMMARY_HEADER = re.compile(r"^=+ short test summary info =+$")
# pytest 9 counts unittest subTest results too: "476 passed, 24 subtests passed in 1.42s"
_STAT = r"\d+ (?:subtests )?[a-z]+"
_FINAL_STATS = re.compile(rf"^=*\s*(?:no tests ran|{_STAT}(?:, {_STAT})*) in [\d.]+s(?: \([\d:.]+\))?\s*=*$")
PASSING = ("PASSED", "XFAIL")


@dataclass(frozen=True)
class RepoSpec:
    key: str  # partition key and the `<owner>__<repo>` part of instance ids
    kind: str  # pypi | git | swesmith | path | dataset
    location: str
    version: str = ""  # pinned version (pypi) or commit (git/path); resolved commit is recorded

    @property
    def text(self) -> str:
        return {"pypi": f"{self.location}=={self.version}", "git": f"git+{self.location}@{self.version}",
                "swesmith": f"swesmith:{self.location}", "dataset": f"dataset:{self.location}",
                "path": self.location + (f"@{self.version}" if self.version else "")}[self.kind]


def parse_repo_spec(text: str) -> RepoSpec:
    text = text.strip()
    if text.startswith("dataset:"):
        loc = text[len("dataset:"):]
        return RepoSpec("dataset-" + _slug(Path(loc).stem if os.sep in loc else loc), "dataset", loc)
    if text.startswith("swesmith:"):
        name = text[len("swesmith:"):]
        return RepoSpec(name.split(".")[0], "swesmith", name)
    if text.startswith("git+"):
        url, _, commit = text[4:].rpartition("@") if "@" in text[4:].split("/")[-1] else (text[4:], "", "")
        owner_repo = "__".join(url.rstrip("/").removesuffix(".git").split("/")[-2:])
        return RepoSpec(_slug(owner_repo), "git", url, commit)
    if text.startswith(("/", "./", "~")):
        path, _, commit = text.partition("@")
        return RepoSpec(_slug("local__" + Path(path).expanduser().name), "path", str(Path(path).expanduser()), commit)
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9._+!-]+)", text)
    if not m:
        raise ValueError(f"repo spec {text!r}: expected NAME==VERSION, git+URL@COMMIT, swesmith:PROFILE, "
                         "a local path, or dataset:SOURCE")
    return RepoSpec("pypi__" + _slug(m.group(1).lower()), "pypi", m.group(1), m.group(2))


def configured_specs() -> list[RepoSpec]:
    """Specs from HRM_SWE_REPOS (comma-separated) or the defaults."""
    texts = list(split_csv(env_str("HRM_SWE_REPOS"))) or list(DEFAULT_REPO_SPECS)
    return [parse_repo_spec(t) for t in texts]


def spec_for_key(key: str) -> RepoSpec:
    for spec in configured_specs():
        if spec.key == key:
            return spec
    try:  # a partition added by hand may carry its spec as its key
        return parse_repo_spec(key)
    except ValueError:
        raise ValueError(f"swe repo partition {key!r} is neither a configured repo "
                         f"({', '.join(s.key for s in configured_specs())}) nor a repo spec") from None


@dataclass
class PreparedRepo:
    key: str
    spec: str
    repo_dir: str  # a git checkout at `commit`
    commit: str
    env_dir: str
    requirements: list[str] = field(default_factory=list)
    pythonpath: str = "/work"
    test_paths: list[str] = field(default_factory=list)
    refused_requirements: list[str] = field(default_factory=list)  # `file:line: text: refused (why)`

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TestRun:
    status: str  # the sandbox status; patch_failed when the patch did not apply
    tests: dict[str, str]  # test id -> PASSED/FAILED/ERROR/XFAIL/XPASS
    wall_s: float
    output_tail: str = ""

    @property
    def passed(self) -> list[str]:
        return sorted(t for t, s in self.tests.items() if s in PASSING)

    @property
    def failed(self) -> list[str]:
        return sorted(t for t, s in self.tests.items() if s not in PASSING)


# --- checkout -----------------------------------------------------------------------------
def prepare_repo(spec: RepoSpec, root: str | Path) -> PreparedRepo:
    """Check out `spec` under root/repos/<key> (a git repo) and build its env under root/envs."""
    if spec.kind == "dataset":
        raise ValueError(f"{spec.text} is a task dataset, not a repository")
    root = Path(root)
    repo_dir = root / "repos" / (f"{spec.key}-{spec.version}" if spec.kind == "pypi" else spec.key)
    requirements: list[str] = []
    refused: list[str] = []
    if spec.kind == "pypi":
        sdist = fetch_sdist(spec.location, spec.version, root / "sdists")
        commit = _commit_of_tree(repo_dir) if (repo_dir / ".git").is_dir() else None
        if commit is None:
            repo_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{spec.key}-", dir=repo_dir.parent))
            try:
                src = unpack_sdist(sdist.archive, staging / "src")
                commit = _commit_all(src, f"{spec.location} {spec.version} (sdist sha256 {sdist.sha256[:16]})")
                _swap_in(src, repo_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        requirements, refused = reqs.from_requires_dist(sdist_metadata(repo_dir)["requires_dist_lines"])
    elif spec.kind in ("git", "swesmith"):
        url, commit = (spec.location, spec.version) if spec.kind == "git" else _swesmith_profile(spec.location)
        commit = git_clone(url, repo_dir, commit or None)
    else:  # local path: a git repo is cloned, a plain directory is committed as-is
        src = Path(spec.location)
        if not src.is_dir():
            raise FetchError(f"repo spec {spec.text}: {src} is not a directory")
        if (src / ".git").exists():
            commit = git_clone(str(src), repo_dir, spec.version or None)
        else:
            repo_dir.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{spec.key}-", dir=repo_dir.parent))
            try:
                shutil.copytree(src, staging / "src", symlinks=True)
                commit = _commit_all(staging / "src", f"snapshot of {src}")
                _swap_in(staging / "src", repo_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    if not requirements and not refused:
        requirements, refused = reqs.from_files(repo_dir)
    env_dir = ensure_env(requirements, root / "envs")
    pythonpath = ":".join((["/work/src"] if (repo_dir / "src").is_dir() else []) + ["/work"])
    return PreparedRepo(spec.key, spec.text, str(repo_dir), commit, str(env_dir), requirements, pythonpath,
                        refused_requirements=refused)


def _swesmith_profile(name: str) -> tuple[str, str]:
    from swesmith.profiles import registry  # ~3 s import; only for swesmith: specs

    try:
        profile = registry.get(name)
    except Exception as exc:
        raise ValueError(f"swesmith profile {name!r} not in swesmith's registry: {exc}") from exc
    return f"https://github.com/{profile.owner}/{profile.repo}.git", profile.commit


def _git(repo: Path, *args: str) -> str:
    # the repo's .git is always one we made; hooks and fsmonitor stay off all the same
    proc = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", *args], cwd=repo,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **_AUTHOR, "GIT_CONFIG_GLOBAL": "/dev/null"})
    if proc.returncode != 0:
        raise FetchError(f"git {' '.join(args)} in {repo} failed: {proc.stderr.strip()[-1000:]}")
    return proc.stdout.strip()


def _commit_all(repo: Path, message: str) -> str:
    refuse_git_dirs(repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A", "-f")
    _git(repo, "commit", "-q", "--no-gpg-sign", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def refuse_git_dirs(tree: Path) -> None:
    """A downloaded tree may not carry `.git` (a directory, or a file pointing elsewhere) at any depth:
    git would take its config, hooks and fsmonitor command from there and run them on the host."""
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            if name.lower() == ".git":
                rel = Path(dirpath, name).relative_to(tree)
                raise FetchError(f"{tree}: contains {rel}; a tree with its own git metadata is refused "
                                 "(git would run its hooks/config on the host)")


def _commit_of_tree(repo: Path) -> str | None:
    try:
        return _git(repo, "rev-parse", "HEAD")
    except FetchError:
        return None


def _swap_in(src: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old")
    if dest.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
    os.replace(src, dest)
    shutil.rmtree(old, ignore_errors=True)


# --- environment ----------------------------------------------------------------------------
def ensure_env(requirements: list[str], envs_root: str | Path) -> Path:
    """A venv (pytest + requirements) keyed by its contents; built once from wheels only, renamed into place.

    Every requirement must be a plain index requirement (datagen.swe.requirements.screen); pip runs
    with --only-binary=:all:, so a package (or dependency) that only has an sdist fails the build
    instead of running its build backend here."""
    for r in requirements:
        if reqs.screen(r)[0] is None:
            raise ValueError(f"requirement {r!r} is not a plain index requirement: {reqs.screen(r)[1]}")
    pytest_pin = f"pytest=={importlib.metadata.version('pytest')}"
    wanted = sorted(set(requirements) | {pytest_pin})
    digest = hashlib.sha256(json.dumps([sys.version, wanted, "only-binary"]).encode()).hexdigest()[:12]
    env = Path(envs_root) / f"env-{digest}"
    if (env / ".hrm-env.json").exists():
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{env.name}-", dir=env.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True,
                       capture_output=True, timeout=120)
        (tmp / "cwd").mkdir()  # pip resolves relative names against its cwd: give it an empty one
        proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(tmp / "venv" / "bin" / "python"),
                               "install", "-q", "--disable-pip-version-check", "--no-input",
                               "--only-binary=:all:", *wanted],
                              cwd=tmp / "cwd", capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise FetchError(f"installing {wanted} into the test env failed (wheels only: a package without a "
                             f"wheel is never built on the host): {proc.stderr.strip()[-1500:]}")
        (tmp / "venv" / ".hrm-env.json").write_text(json.dumps({"requirements": wanted}))
        try:
            os.replace(tmp / "venv", env)
        except OSError:  # another worker built the same env first
            if not (env / ".hrm-env.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return env


# --- test runs ---------------------------------------------------------------------------------------------
# Every grader runs pytest through RUNNER: `python -I` (no sitecustomize/usercustomize/.pth from the repo or
# PYTHONPATH at startup) reads the run's nonce from NONCE_FILE in the working dir and unlinks it before pytest or
# anything of the repo is imported, imports pytest from the env, then puts the cwd and PYTHONPATH on sys.path (as
# `python -m pytest` does), runs pytest.main, writes the done line `HRM_PYTEST_DONE <nonce>` straight to fd 1 and
# ends with os._exit, so atexit handlers never run. The nonce is never in argv or the environment (both readable through /proc/self);
# `parse_pytest_summary` takes pytest's summary only from output that ends with exactly that done line. Without
# a nonce file (an agent running the tests to read them) the runner prints no done line and exits normally.
# Code running inside the pytest process can still rewrite the report in-process: docs/security.md.
NONCE_FILE = ".hrm_pytest_nonce"
PYTEST_DONE = "HRM_PYTEST_DONE"
PYTEST_ARGS = ("-rA", "--tb=no", "--color=no", "-q", "-p", "no:cacheprovider")
_NONCE = re.compile(r"[0-9a-f]{32}")
RUNNER_SOURCE = f"""\
import os, stat, sys


def read_nonce():
    try:
        fd = os.open({NONCE_FILE!r}, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        data = os.read(fd, 64) if stat.S_ISREG(st.st_mode) and st.st_nlink == 1 else b''
    finally:
        os.close(fd)
    try:
        os.unlink({NONCE_FILE!r})
    except OSError:
        return None  # left where the code under test could read it: no done line
    text = data.decode('ascii', 'replace').strip()
    return text if len(text) == 32 and all(c in '0123456789abcdef' for c in text) else None


def main():
    nonce = read_nonce()
    if os.environ.get('PYTHONDONTWRITEBYTECODE'):
        sys.dont_write_bytecode = True
    done = ('\\n{PYTEST_DONE} ' + nonce + '\\n').encode() if nonce else None
    del nonce
    import pytest  # from the env, before the repo is on sys.path: a pytest.py in the repo is not it
    extra = [os.getcwd()] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    sys.path[:0] = extra
    rc = int(pytest.main(sys.argv[1:]))
    if done is None:
        raise SystemExit(rc)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, done)
    finally:
        os._exit(rc)


main()
"""
# one line (a terminal session takes it as typed), the source above made readable by exec
RUNNER = f"exec({RUNNER_SOURCE!r})"


def new_nonce() -> tuple[str, dict[str, str]]:
    """(a fresh nonce, the files mapping that puts it in the jail's work dir for SandboxJob `files=`)."""
    nonce = secrets.token_hex(16)
    return nonce, {NONCE_FILE: nonce}


def runner_command(python: str, args: list[str] | tuple[str, ...]) -> list[str]:
    """argv that runs pytest with `args` through RUNNER under the interpreter `python`."""
    return [python, "-I", "-c", RUNNER, *args]


def write_nonce(session, workdir: str) -> str:
    """For session callers: a fresh nonce written to `workdir`/NONCE_FILE right before the runner runs there
    (any file, link or staging file already at that name is removed first, so nothing is written through a
    link the code under test planted). Returns the nonce ("" when the write failed: the run cannot pass)."""
    nonce, _ = new_nonce()
    path = f"{workdir.rstrip('/')}/{NONCE_FILE}"
    if session.run(f"rm -f -- {shlex.quote(path)} {shlex.quote(path + '.b64')}").status != "ok":
        return ""
    return nonce if session.write_file(path, nonce).status == "ok" else ""


def take_nonce_shell(stage: str = "/tmp") -> str:
    """Shell that moves a nonce `write_nonce(session, stage)` wrote into the current directory (a rename: no
    link at the target is followed), for session scripts that rebuild the work dir after the nonce is written;
    then run the runner there."""
    return f"mv -f -- {shlex.quote(stage.rstrip('/') + '/' + NONCE_FILE)} ./{NONCE_FILE} 2>/dev/null; "


def test_command(repo: PreparedRepo) -> list[str]:
    """The repo's suite under the env's python, through RUNNER."""
    return runner_command(f"{ENV_MOUNT}/bin/python", [*PYTEST_ARGS, *repo.test_paths])


def run_tests(sandbox: Sandbox, repo: PreparedRepo, patch: str | None = None,
              timeout_s: float = 180) -> TestRun:
    """The repo's suite in the jail, with `patch` (a unified diff) applied first; outcomes only from the
    runner's own report (`parse_pytest_summary` with this run's nonce)."""
    nonce, files = new_nonce()
    script = ""
    if patch is not None:
        files[".hrm_bug.patch"] = patch
        script = "git apply --whitespace=nowarn .hrm_bug.patch || { echo HRM_PATCH_FAILED; exit 97; }; " \
                 "rm -f .hrm_bug.patch; "
    cmd = ["sh", "-c", script + 'exec "$@"', "run-tests", *test_command(repo)]
    job = SandboxJob(command=cmd, files=files, input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT)],
                     env={"PYTHONPATH": repo.pythonpath}, timeout_s=timeout_s)
    result = sandbox.run_job(job)
    if "HRM_PATCH_FAILED" in result.stdout and result.exit_code == 97:
        return TestRun("patch_failed", {}, result.wall_s, result.stderr[-2000:])
    return TestRun(result.status, parse_pytest_summary(result.stdout, nonce), result.wall_s,
                   (result.stdout[-1500:] + result.stderr[-1500:]))


def pytest_report(stdout: str, nonce: str) -> str | None:
    """The output before the done line when it ends with exactly `HRM_PYTEST_DONE <nonce>` and no other line
    carries the done marker; else None (the run was forged, cut short or printed after pytest)."""
    if not nonce or not _NONCE.fullmatch(nonce):
        raise ValueError("parse_pytest_summary needs the run's nonce (new_nonce())")
    lines = stdout.rstrip().splitlines()
    if not lines or lines[-1].strip() != f"{PYTEST_DONE} {nonce}":
        return None
    if any(PYTEST_DONE in line or nonce in line for line in lines[:-1]):
        return None
    return "\n".join(lines[:-1])


def parse_pytest_summary(stdout: str, nonce: str) -> dict[str, str]:
    """Test id -> outcome from pytest's `-rA` short summary (collection errors name no test) in a RUNNER run.

    The output must end with the done line for `nonce` (`pytest_report`): a summary printed by the code under
    test after pytest finished (atexit, os._exit, a raw write to fd 1) has no done line after it. Of what
    precedes the done line only pytest's own summary counts: the lines after its last `short test summary
    info` header up to its final stats line, which must end that part. A second stats line inside the summary
    voids the whole report, so a test id printed by the code under test is never read as an outcome."""
    report = pytest_report(stdout, nonce)
    return {} if report is None else _summary(report)


def final_stats(stdout: str, nonce: str) -> str:
    """pytest's final stats line of a RUNNER run ("" when the run is not the runner's own)."""
    report = pytest_report(stdout, nonce)
    lines = [line.strip() for line in (report or "").splitlines() if line.strip()]
    return lines[-1] if lines and _FINAL_STATS.match(lines[-1]) else ""


def _summary(text: str) -> dict[str, str]:
    """The short summary's outcomes when `text` ends with pytest's final stats line; else {}."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    headers = [i for i, line in enumerate(lines) if _SUMMARY_HEADER.match(line)]
    if not lines or not headers or not _FINAL_STATS.match(lines[-1]):
        return {}
    block = lines[headers[-1] + 1:-1]
    if any(_FINAL_STATS.match(line) for line in block):
        return {}
    tests: dict[str, str] = {}
    for line in block:
        m = _SUMMARY_LINE.match(line)
        if m and "::" in m.group(2):
            tests[m.group(2)] = m.group(1)
    return tests


def baseline_row(sandbox: Sandbox, spec: RepoSpec, root: str | Path) -> dict:
    """Prepare the repo and run its suite once, clean: the row of the swe_repos table."""
    t0 = time.monotonic()
    repo = prepare_repo(spec, root)
    run = run_tests(sandbox, repo)
    return {**repo.to_dict(), "kind": spec.kind, "baseline_status": run.status,
            "n_tests": len(run.tests), "n_passed": len(run.passed), "passed_tests": run.passed,
            "failed_tests": run.failed, "baseline_wall_s": run.wall_s,
            "prepare_wall_s": round(time.monotonic() - t0 - run.wall_s, 3), "output_tail": run.output_tail}


def repo_from_row(row: dict) -> PreparedRepo:
    fields = PreparedRepo.__dataclass_fields__
    return PreparedRepo(**{k: (list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v)
                           for k, v in row.items() if k in fields})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
