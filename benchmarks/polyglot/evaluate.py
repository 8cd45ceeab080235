"""The Polyglot evaluator: Aider's method over our Sandbox, for reference solutions or model answers.

For each exercise: the solver answers (try 1 sees the instructions and the stub files), the answer is
applied in the run's edit format, the tests are restored and run (180 s limit); on failure the test
output goes back to the solver for try 2. Statuses: pass, fail, timeout, unsupported, malformed.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Generator, Iterable, Protocol

from benchmarks.polyglot.edits import EDIT_FORMATS, MalformedAnswer, apply_answer, check_path
from benchmarks.polyglot.exercises import Exercise, solver_prompt
from benchmarks.polyglot.runners import TEST_TIMEOUT_S, TestRunner, split_cpu_seconds, unsupported_reason
from resources.sandbox import Sandbox
from resources.warehouse import default_data_dir

STATUSES = ("pass", "fail", "timeout", "unsupported", "malformed")
MAX_FEEDBACK_CHARS = 12_000
# Slow test suites first, fast ones last, so parallel workers finish together.
_SCHEDULE = ("java", "cpp", "go", "javascript", "rust", "python")


@dataclass
class Turn:
    """What the solver is given on one try."""

    exercise: Exercise
    try_number: int  # 1-based
    message: str  # try 1: instructions + addendum; later tries: test output + fix request
    files: dict[str, str]  # the solution files as they stand (stubs on try 1)


@dataclass
class Answer:
    """A solver's reply: text in the run's edit format, or whole files already split by path."""

    response: str | None = None
    files: dict[str, str] | None = None


class Solver(Protocol):
    def __call__(self, turn: Turn) -> Answer | None: ...  # None: no (further) answer


@dataclass
class ExerciseResult:
    language: str
    exercise: str
    status: str
    seconds: float  # wall time of the test runs
    tries: list[str] = field(default_factory=list)  # status of each try
    reason: str = ""
    output: str = ""  # tail of the last test run's output
    cpu_s: float = 0.0  # CPU time of the test runs (compilers and tests), as the jail's shell counts it

    @property
    def passed_on_try(self) -> int | None:
        return self.tries.index("pass") + 1 if "pass" in self.tries else None

    def to_dict(self) -> dict:
        return asdict(self)


def generator_solver(start: Callable[[Turn], Generator[Answer, Turn, None]]) -> Solver:
    """A solver from a generator per exercise: `start(turn1)` yields the first answer, and every later
    turn (with the test output) arrives through `send` and gets the next yield; returning ends it."""
    running: dict[str, Generator] = {}
    lock = threading.Lock()

    def solve(turn: Turn) -> Answer | None:
        key = turn.exercise.key
        try:
            if turn.try_number == 1:
                gen = start(turn)
                with lock:
                    running[key] = gen
                return next(gen)
            with lock:
                gen = running.get(key)
            return gen.send(turn) if gen is not None else None
        except StopIteration:
            with lock:
                running.pop(key, None)
            return None

    return solve


def default_cache_dir() -> Path:
    """Where shared builds (Catch main, Go cache, Java CDS archives) live between runs, keyed by a hash."""
    return Path(os.environ.get("HRM_POLYGLOT_CACHE") or Path(default_data_dir()) / "cache" / "polyglot")


def reference_solver(turn: Turn) -> Answer | None:
    return Answer(files=turn.exercise.reference_files) if turn.try_number == 1 else None


def directory_solver(root: str | Path, edit_format: str) -> Solver:
    """Answers from ROOT/<language>/<exercise>/: whole files at their paths, or response.md (diff)."""
    root = Path(root)

    def solve(turn: Turn) -> Answer | None:
        if turn.try_number > 1:
            return None
        folder = root / turn.exercise.language / turn.exercise.exercise
        response = folder / "response.md"
        if response.is_file():
            return Answer(response=response.read_text(encoding="utf-8", errors="replace"))
        if edit_format == "diff" or not folder.is_dir():
            return None  # no answer: the stubs are tested
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            files[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8", errors="replace")
        return Answer(files=files)

    return solve


def evaluate(exercises: Iterable[Exercise], solver: Solver, sandbox: Sandbox, edit_format: str = "whole",
             tries: int = 2, timeout_s: float = TEST_TIMEOUT_S, cache_dir: str | Path | None = None,
             progress: Callable[[ExerciseResult], None] | None = None,
             log: Callable[[str], None] | None = None, stats: dict | None = None) -> list[ExerciseResult]:
    """Run every exercise (in parallel, `sandbox.concurrency` at a time); results in input order.

    `stats`, if given, receives "shared_builds": the shared builds this run made, with their times."""
    if edit_format not in EDIT_FORMATS:
        raise ValueError(f"unknown edit format {edit_format!r}; expected one of {', '.join(EDIT_FORMATS)}")
    exercises = list(exercises)
    runner = TestRunner(sandbox, cache_dir or default_cache_dir(), timeout_s, log)
    order = sorted(range(len(exercises)), key=lambda i: _priority(exercises, i))

    def one(i: int) -> ExerciseResult:
        result = evaluate_exercise(exercises[i], solver, runner, edit_format, tries)
        if progress:
            progress(result)
        return result

    results = sandbox.map(one, order)
    if stats is not None:
        stats["shared_builds"] = runner.shared_builds
    by_index = dict(zip(order, results))
    return [by_index[i] for i in range(len(exercises))]


def _priority(exercises: list[Exercise], i: int) -> tuple:
    ex = exercises[i]
    lang_rank = _SCHEDULE.index(ex.language) if ex.language in _SCHEDULE else len(_SCHEDULE)
    # The first C++ and Go exercises go first: they build the shared Catch main / Go cache (Java, which
    # builds its archives on its first exercise, comes next anyway).
    first = next(j for j, e in enumerate(exercises) if e.language == ex.language) == i
    return (0 if first and ex.language in ("cpp", "go") else 1, lang_rank, i)


def evaluate_exercise(ex: Exercise, solver: Solver, runner: TestRunner, edit_format: str = "whole",
                      tries: int = 2) -> ExerciseResult:
    result = ExerciseResult(ex.language, ex.exercise, "fail", 0.0)
    reason = unsupported_reason(ex.language)
    if reason:
        result.status, result.reason = "unsupported", reason
        return result
    files = dict(ex.solution_files)
    message = solver_prompt(ex)
    for try_number in range(1, tries + 1):
        answer = solver(Turn(ex, try_number, message, dict(files)))
        if answer is None and try_number > 1:
            break
        try:
            files = _apply(answer, edit_format, files)
        except MalformedAnswer as exc:
            result.tries.append("malformed")
            result.reason = f"malformed answer: {exc}"
            message = f"{exc}\n\nFix the answer: the edits above could not be applied."
            continue
        status, output, seconds, cpu = _run_tests(ex, files, runner)
        result.seconds = round(result.seconds + seconds, 2)
        result.cpu_s = round(result.cpu_s + (cpu or 0.0), 2)
        result.tries.append(status)
        result.output = output[-4000:]
        if status == "pass":
            result.reason = ""
            break
        result.reason = explain_failure(ex.language, output, status)
        message = (f"{clean_test_output(output)}\n####\n\nSee the testing errors above.\n"
                   "The tests are correct, don't try and change them.\n"
                   f"Fix the code in {' '.join(sorted(ex.solution_files))} to resolve the errors.\n")
    result.status = "pass" if "pass" in result.tries else (result.tries[-1] if result.tries else "fail")
    return result


def _apply(answer: Answer | None, edit_format: str, files: dict[str, str]) -> dict[str, str]:
    if answer is None:
        return files
    if answer.files is not None:
        known = list(files)
        return {**files, **{check_path(p, known): c for p, c in answer.files.items()}}
    return apply_answer(answer.response or "", edit_format, files)


def _run_tests(ex: Exercise, files: dict[str, str], runner: TestRunner) -> tuple[str, str, float, float | None]:
    """(status, output, wall seconds, CPU seconds) of one test run."""
    start = time.monotonic()
    run = runner.sandbox.run_job(runner.job(ex, files))
    seconds = time.monotonic() - start
    stderr, cpu = split_cpu_seconds(run.stderr)
    output = run.stdout + stderr
    if run.status == "ok":
        return "pass", output, seconds, cpu
    if run.status == "timeout":
        return "timeout", output + f"\nTests timed out! (limit {runner.timeout_s:g} s)\n", seconds, cpu
    if run.status in ("memory", "output_limit", "error"):
        output += f"\n[sandbox: {run.status}]\n"
    return "fail", output, seconds, cpu


def clean_test_output(output: str) -> str:
    """Test output as the solver sees it: timings removed (as Aider does), long output cut in the middle."""
    output = re.sub(r"\bin \d+\.\d+s\b", "", output)
    output = output.replace("/work/", "")
    if len(output) > MAX_FEEDBACK_CHARS:
        half = MAX_FEEDBACK_CHARS // 2
        output = output[:half] + "\n[... output cut ...]\n" + output[-half:]
    return output


_REASONS = [
    ("rust", re.compile(r"unlinked crate `(\w+)`|can't find crate for `(\w+)`"),
     "the solution uses crate `{0}`, which the exercise's Cargo.toml does not declare (the harness hides "
     "Cargo.toml, so it cannot be added)"),
    ("rust", re.compile(r"no matching package named `([\w-]+)` found"),
     "crate `{0}` is not in the offline registry (/usr/share/cargo/registry)"),
    ("java", re.compile(r"package ([\w.]+) does not exist"),
     "package {0} is not available: no jar provides it here (Gradle cannot fetch dependencies offline)"),
    ("java", re.compile(r"symbol:\s+method (\w+)\(.*\)\s+location: (?:class|interface) \w*Assert\b"),
     "the tests call AssertJ's {0}(), missing from the installed AssertJ (Debian's 3.14; the exercise's "
     "build.gradle pins 3.25)"),
    ("cpp", re.compile(r"Could NOT find (\w+)"), "library {0} not installed on this machine"),
    (None, re.compile(r"Tests timed out!"), "tests timed out"),
]


def explain_failure(language: str, output: str, status: str) -> str:
    """A one-line reason for a failed run, from the patterns that explain the known failures."""
    for lang, pattern, template in _REASONS:
        if lang not in (None, language):
            continue
        m = pattern.search(output)
        if m:
            value = next((g for g in m.groups() if g), "") if m.groups() else ""
            return template.format(value)
    if status == "timeout":
        return "tests timed out"
    lines = [l.strip() for l in output.splitlines() if l.strip()]
    errors = [l for l in lines if re.search(r"error|fail|assert|panic|exception", l, re.I)]
    return ((errors or lines or ["no output"])[0])[:300]
