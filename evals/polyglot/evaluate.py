"""The Polyglot evaluator: Aider's method over our Sandbox, for reference solutions or model answers.

For each exercise: the solver answers (try 1 sees the instructions and the stub files), the answer is
applied in the run's edit format, the tests are restored and run (180 s limit); on failure the test
output goes back to the solver for try 2. Statuses: pass, fail, timeout, unsupported, malformed.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Generator, Iterable, Protocol

from datagen.polyglot.harness import TEST_TIMEOUT_S, TestRunner, default_cache_dir, unsupported_reason
from evals.polyglot.edits import EDIT_FORMATS, MalformedAnswer, apply_answer, check_path
from evals.polyglot.exercises import Exercise, ExerciseError, list_files, read_text, solver_prompt
from resources.sandbox import Sandbox, SandboxUnavailable

STATUSES = ("pass", "fail", "timeout", "unsupported", "malformed")
MAX_FEEDBACK_CHARS = 12_000
MAX_ANSWER_FILE_BYTES = 1 << 20
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
    ignored_files: list[str] = field(default_factory=list)  # paths the solver gave but did not pass on


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
    cpu_s: float = 0.0  # CPU time of the test runs (compilers and tests) and everything they started
    ignored_files: list[str] = field(default_factory=list)  # answer files not at a solution path: dropped

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


def reference_solver(turn: Turn) -> Answer | None:
    return Answer(files=turn.exercise.reference_files) if turn.try_number == 1 else None


def directory_solver(root: str | Path, edit_format: str) -> Solver:
    """Answers from ROOT/<language>/<exercise>/: whole files at their paths, or response.md (diff).

    Only regular files inside the folder are read, and only at the exercise's solution paths; a symbolic
    link or special file anywhere in it refuses the whole answer (a malformed answer naming it)."""
    root = Path(root).resolve()

    def solve(turn: Turn) -> Answer | None:
        if turn.try_number > 1:
            return None
        ex = turn.exercise
        folder = root / ex.language / ex.exercise
        for part in (root / ex.language, folder):
            if part.is_symlink():
                raise MalformedAnswer(f"{part}: a symbolic link; refused")
        if not folder.is_dir():
            return None  # no answer: the stubs are tested
        try:
            present = list_files(folder, max_files=1000)
            if "response.md" in present:
                return Answer(response=read_text(folder, "response.md", MAX_ANSWER_FILE_BYTES))
            if edit_format == "diff":
                return None
            allowed = allowed_paths(ex)
            files = {p: read_text(folder, p, MAX_ANSWER_FILE_BYTES) for p in present if p in allowed}
        except ExerciseError as exc:
            raise MalformedAnswer(str(exc)) from exc
        return Answer(files=files, ignored_files=[p for p in present if p not in allowed])

    return solve


def allowed_paths(ex: Exercise) -> set[str]:
    """Where an answer may write: the exercise's solution files, and the files its reference solution
    consists of (Java's extra classes). Everything else, tests and build configuration included, comes
    from the benchmark."""
    return set(ex.solution_files) | set(ex.reference_files)


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
        try:
            result = evaluate_exercise(exercises[i], solver, runner, edit_format, tries)
        except SandboxUnavailable:
            raise
        except Exception as exc:  # one broken exercise or answer must not end the run
            ex = exercises[i]
            result = ExerciseResult(ex.language, ex.exercise, "fail", 0.0, reason=f"evaluator error: {exc}"[:500])
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
    allowed = allowed_paths(ex)
    message = solver_prompt(ex)
    for try_number in range(1, tries + 1):
        try:
            answer = solver(Turn(ex, try_number, message, dict(files)))
            if answer is None and try_number > 1:
                break
            files, ignored = _apply(answer, edit_format, files, allowed)
        except MalformedAnswer as exc:
            result.tries.append("malformed")
            result.reason = f"malformed answer: {exc}"
            message = f"{exc}\n\nFix the answer: the edits above could not be applied."
            continue
        result.ignored_files += [p for p in ignored if p not in result.ignored_files]
        run = runner.run(ex, files)
        result.seconds = round(result.seconds + run.seconds, 2)
        result.cpu_s = round(result.cpu_s + (run.cpu_s or 0.0), 2)
        result.tries.append(run.status)
        output = run.output
        if ignored:
            output += f"\n[only the solution files can be changed; ignored: {', '.join(sorted(ignored))}]\n"
        result.output = output[-4000:]
        if run.status == "pass":
            result.reason = ""
            break
        result.reason = explain_failure(ex.language, output, run.status)
        message = (f"{clean_test_output(output)}\n####\n\nSee the testing errors above.\n"
                   "The tests are correct, don't try and change them.\n"
                   f"Fix the code in {' '.join(sorted(ex.solution_files))} to resolve the errors.\n")
    result.status = "pass" if "pass" in result.tries else (result.tries[-1] if result.tries else "fail")
    if result.ignored_files and result.status != "pass":
        result.reason += f" (answer files not at a solution path were ignored: {', '.join(result.ignored_files[:5])})"
    return result


def _apply(answer: Answer | None, edit_format: str, files: dict[str, str],
           allowed: set[str]) -> tuple[dict[str, str], list[str]]:
    """(solution files after the answer, the answer's paths that were dropped: not a solution path)."""
    if answer is None:
        return files, []
    known = sorted(set(files) | allowed)
    if answer.files is not None:
        edited = {**files, **{check_path(p, known): c for p, c in answer.files.items()}}
    else:
        edited = apply_answer(answer.response or "", edit_format, files, known)
    ignored = sorted({p for p in edited if p not in allowed} | set(answer.ignored_files))
    return {p: c for p, c in edited.items() if p in allowed}, ignored


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
