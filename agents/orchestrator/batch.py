"""Batches of SWE-smith tasks for the orchestrator: validated single bugs, plus bugs of different files
combined into one task (SWE-smith's combine_module idea), validated again in the jail, so a task has
parts that agents can fix in parallel and a merge that matters."""

from __future__ import annotations

import hashlib

from datagen.swe.bugs import BugCandidate
from datagen.swe.repos import repo_from_row
from datagen.swe.tasks import instance_prefix, task_row, validate_bug


def combine_tasks(sandbox, repo_row: dict, tasks: list[dict], per_task: int = 2, limit: int = 8,
                  seed: int = 0) -> list[dict]:
    """Up to `limit` tasks, each the union of `per_task` validated bugs in different files of one repo."""
    repo = repo_from_row(repo_row)
    by_file: dict[str, list[dict]] = {}
    for t in sorted(tasks, key=lambda t: t["instance_id"]):
        if len(t["files"]) == 1:
            by_file.setdefault(t["files"][0], []).append(t)
    files = sorted(by_file)
    if len(files) < per_task:
        return []
    combos, i = [], 0
    while len(combos) < limit * 2 and i < 4 * limit:
        picked = [by_file[files[(i + j) % len(files)]][(i + seed) % len(by_file[files[(i + j) % len(files)]])]
                  for j in range(per_task)]
        i += 1
        if len({p["files"][0] for p in picked}) == per_task and picked not in combos:
            combos.append(picked)
    candidates = []
    for picked in combos:
        patch = "".join(p["patch"] if p["patch"].endswith("\n") else p["patch"] + "\n"
                        for p in sorted(picked, key=lambda p: p["files"][0]))
        digest = hashlib.sha256(patch.encode()).hexdigest()[:8]
        candidates.append(BugCandidate(f"{instance_prefix(repo)}.combine_module__{digest}", "combine_module", patch,
                                       ",".join(sorted(p["files"][0] for p in picked)),
                                       "+".join(p["entity"] for p in picked), "function",
                                       sum(int(p.get("complexity") or 0) for p in picked),
                                       "bugs of " + ", ".join(p["instance_id"] for p in picked)))
    baseline = list(repo_row["passed_tests"])
    results = sandbox.map(lambda b: validate_bug(sandbox, repo, baseline, b, 120.0), candidates)
    rows = []
    for bug, (run, f2p, p2p) in zip(candidates, results):
        if run.status in ("ok", "failed") and f2p and len(rows) < limit:
            row = task_row(repo, bug, f2p, p2p, run.wall_s, seed)
            row.update(files=bug.file.split(","), n_files=len(bug.file.split(",")))
            rows.append(row)
    return rows


# --- a small multi-module package (the bench's and the tests' default repository) ------------------------
_MODULES = {
    "numbers.py": '''
def clamp(x, lo, hi):
    if x < lo:
        return lo
    elif x > hi:
        return hi
    return x


def positive_total(xs):
    total = 0
    for x in xs:
        if x > 0:
            total += x
    return total


def mean(xs):
    if not xs:
        raise ValueError("mean of nothing")
    return sum(xs) / len(xs)
''',
    "text.py": '''
def initials(name):
    parts = [p for p in name.split() if p]
    return "".join(p[0].upper() for p in parts)


def count_vowels(s):
    n = 0
    for ch in s.lower():
        if ch in "aeiou":
            n += 1
    return n


def pad_left(s, width, fill=" "):
    if len(s) >= width:
        return s
    return fill * (width - len(s)) + s
''',
    "shapes.py": '''
class Rect:
    def __init__(self, w, h):
        if w < 0 or h < 0:
            raise ValueError("negative size")
        self.w = w
        self.h = h

    def area(self):
        return self.w * self.h

    def perimeter(self):
        return 2 * (self.w + self.h)


def largest(rects):
    best = None
    for r in rects:
        if best is None or r.area() > best.area():
            best = r
    return best
''',
    "stack.py": '''
class Stack:
    def __init__(self):
        self.items = []

    def push(self, x):
        self.items.append(x)
        return len(self.items)

    def pop(self):
        if not self.items:
            raise IndexError("pop from empty stack")
        return self.items.pop()

    def peek(self):
        if not self.items:
            return None
        return self.items[-1]
''',
}
_TESTS = {
    "test_numbers.py": '''
import pytest
from demo.numbers import clamp, mean, positive_total

@pytest.mark.parametrize("x,want", [(-5, 0), (5, 5), (50, 10)])
def test_clamp(x, want):
    assert clamp(x, 0, 10) == want

def test_positive_total():
    assert positive_total([1, -2, 3]) == 4

def test_mean():
    assert mean([1, 2, 3]) == 2
    with pytest.raises(ValueError):
        mean([])
''',
    "test_text.py": '''
from demo.text import count_vowels, initials, pad_left

def test_initials():
    assert initials("ada  lovelace") == "AL"

def test_count_vowels():
    assert count_vowels("Orchestra") == 3

def test_pad_left():
    assert pad_left("7", 3, "0") == "007"
    assert pad_left("1234", 3) == "1234"
''',
    "test_shapes.py": '''
import pytest
from demo.shapes import Rect, largest

def test_rect():
    r = Rect(2, 3)
    assert r.area() == 6 and r.perimeter() == 10

def test_negative():
    with pytest.raises(ValueError):
        Rect(-1, 2)

def test_largest():
    assert largest([Rect(1, 1), Rect(2, 5), Rect(3, 3)]).area() == 10
''',
    "test_stack.py": '''
import pytest
from demo.stack import Stack

def test_push_pop():
    s = Stack()
    assert s.push(1) == 1 and s.push(2) == 2
    assert s.pop() == 2 and s.peek() == 1

def test_empty():
    assert Stack().peek() is None
    with pytest.raises(IndexError):
        Stack().pop()
''',
}


def write_demo_repo(root) -> str:
    """A four-module package with a pytest suite, committed to git; its path."""
    import os
    import subprocess
    from pathlib import Path

    repo = Path(root) / "demo"
    (repo / "demo").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "demo" / "__init__.py").write_text("")
    for name, text in _MODULES.items():
        (repo / "demo" / name).write_text(text.lstrip())
    for name, text in _TESTS.items():
        (repo / "tests" / name).write_text(text.lstrip())
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "GIT_CONFIG_GLOBAL": "/dev/null"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "demo"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)
    return str(repo)


# --- build/dependency problems: the demo package with its version declared in pyproject.toml --------------
_PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "demo"
version = "0.3.1"
requires-python = ">=3.11"
dependencies = []
'''
_INIT = '''"""demo: small utilities. The version is declared once, in pyproject.toml, and read at import."""
import tomllib
from pathlib import Path

__version__ = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["version"]
'''
# how a release edit breaks the declaration: the package no longer imports, so every test fails at collection
BUILD_BREAKS = {
    "unquoted_version": ('version = "0.3.1"', "version = 0.3.1"),  # TOMLDecodeError: invalid number
    "dynamic_version": ('version = "0.3.1"', 'dynamic = ["version"]'),  # no static version: KeyError at import
}


def write_packaged_demo_repo(root) -> str:
    """The demo package as a packaged project: pyproject.toml declares the version that `demo/__init__.py`
    reads at import time (a build declaration the tests depend on before any code runs)."""
    import subprocess
    from pathlib import Path

    repo = Path(write_demo_repo(root))
    (repo / "pyproject.toml").write_text(_PYPROJECT)
    (repo / "demo" / "__init__.py").write_text(_INIT)
    (repo / "tests" / "test_version.py").write_text("import demo\n\n\ndef test_version():\n"
                                                    "    assert demo.__version__.count('.') == 2\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin", "HOME": str(root), "GIT_CONFIG_GLOBAL": "/dev/null"}
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "packaging: version in pyproject.toml"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env, capture_output=True)
    return str(repo)


def build_break_tasks(sandbox, repo_row: dict, singles: list[dict], limit: int = 2) -> list[dict]:
    """Tasks whose failure is a build problem: a broken pyproject.toml declaration (BUILD_BREAKS) together with
    a validated code bug of another file, validated again in the jail. Kept only when the break makes tests
    fail at collection that the code bug alone leaves passing (the tool fix is needed, and not enough)."""
    import difflib
    from pathlib import Path

    repo = repo_from_row(repo_row)
    text = (Path(repo.repo_dir) / "pyproject.toml").read_text()
    code = [t for t in sorted(singles, key=lambda t: t["instance_id"])
            if all(f.startswith("demo/") and not f.endswith("__init__.py") for f in t["files"])]
    candidates = []
    for i, t in enumerate(code[:limit]):
        name, (old, new) = list(BUILD_BREAKS.items())[i % len(BUILD_BREAKS)]
        broken = "".join(difflib.unified_diff(text.splitlines(True), text.replace(old, new).splitlines(True),
                                              "a/pyproject.toml", "b/pyproject.toml"))
        patch = broken + (t["patch"] if t["patch"].endswith("\n") else t["patch"] + "\n")
        digest = hashlib.sha256(patch.encode()).hexdigest()[:8]
        candidates.append((t, BugCandidate(f"{instance_prefix(repo)}.build_{name}__{digest}", f"build_{name}", patch,
                                           f"pyproject.toml,{t['files'][0]}", t["entity"], t["entity_kind"],
                                           int(t.get("complexity") or 0),
                                           f"pyproject.toml {name} on top of {t['instance_id']}")))
    baseline = list(repo_row["passed_tests"])
    results = sandbox.map(lambda c: validate_bug(sandbox, repo, baseline, c[1], 120.0), candidates)
    rows = []
    for (single, bug), (run, f2p, p2p) in zip(candidates, results):
        if run.status in ("ok", "failed") and set(f2p) > set(single["FAIL_TO_PASS"]):
            row = task_row(repo, bug, f2p, p2p, run.wall_s, 0)
            row.update(files=bug.file.split(","), n_files=2, failure="collection",
                       collection_error=run.output_tail[-600:])
            rows.append(row)
    return rows
