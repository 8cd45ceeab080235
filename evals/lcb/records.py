"""`code_generation_lite` records -> normalised LiveCodeBench problems (or a reason to reject the row).

A raw record is lcb_runner's `CodeGenerationProblem` on disk: every field a string, tests and
metadata as JSON text, private tests possibly base64/zlib/pickle (decoded by `safe_pickle`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from evals.lcb.safe_pickle import TestCaseDecodeError, UnsafePickleError, decode_test_cases

PLATFORMS = ("leetcode", "atcoder", "codeforces")
DIFFICULTIES = ("easy", "medium", "hard")
TEST_TYPES = ("stdin", "functional")
REQUIRED_FIELDS = ("question_title", "question_content", "platform", "question_id", "contest_id",
                   "contest_date", "starter_code", "difficulty", "public_test_cases", "private_test_cases",
                   "metadata")


class RejectedRecord(ValueError):
    """A raw record that cannot become a problem; `reason` says why (for the quarantine file)."""

    def __init__(self, reason: str, unsafe: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unsafe = unsafe


@dataclass
class LcbProblem:
    question_id: str
    question_title: str
    question_content: str
    platform: str
    contest_id: str
    contest_date: str  # ISO-8601 as in the source
    difficulty: str
    starter_code: str
    public_tests: list[dict] = field(default_factory=list)  # [{input, output, testtype}]
    private_tests: list[dict] = field(default_factory=list)
    func_name: str | None = None  # set: call-based grading; None: stdin grading

    @property
    def testtype(self) -> str:
        return "functional" if self.func_name else "stdin"

    @property
    def contest_day(self) -> date:
        return datetime.fromisoformat(self.contest_date).date()

    def evaluation_sample(self) -> dict:
        """lcb_runner's `get_evaluation_sample()`: public then private tests, and the function name."""
        tests = self.public_tests + self.private_tests
        return {"inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests],
                "fn_name": self.func_name}

    def to_row(self) -> dict:
        row = asdict(self)
        row["public_tests"] = json.dumps(self.public_tests)
        row["private_tests"] = json.dumps(self.private_tests)
        row["testtype"] = self.testtype
        row["n_public_tests"] = len(self.public_tests)
        row["n_private_tests"] = len(self.private_tests)
        return row

    @classmethod
    def from_row(cls, row: dict) -> "LcbProblem":
        def tests(value):
            return json.loads(value) if isinstance(value, str) else list(value or [])
        return cls(question_id=str(row["question_id"]), question_title=row.get("question_title") or "",
                   question_content=row.get("question_content") or "", platform=row.get("platform") or "",
                   contest_id=str(row.get("contest_id") or ""), contest_date=str(row.get("contest_date") or ""),
                   difficulty=row.get("difficulty") or "", starter_code=row.get("starter_code") or "",
                   public_tests=tests(row.get("public_tests")), private_tests=tests(row.get("private_tests")),
                   func_name=row.get("func_name") or None)


def normalise_record(raw: dict) -> LcbProblem:
    """One raw `code_generation_lite` record as a problem; raises RejectedRecord with the reason."""
    if not isinstance(raw, dict):
        raise RejectedRecord(f"record is a {type(raw).__name__}, expected an object")
    missing = [f for f in REQUIRED_FIELDS if f not in raw or raw[f] is None]
    if missing:
        raise RejectedRecord(f"missing field(s): {', '.join(missing)}")
    platform = str(raw["platform"]).lower()
    if platform not in PLATFORMS:
        raise RejectedRecord(f"platform {raw['platform']!r} not one of {', '.join(PLATFORMS)}")
    difficulty = str(raw["difficulty"]).lower()
    if difficulty not in DIFFICULTIES:
        raise RejectedRecord(f"difficulty {raw['difficulty']!r} not one of {', '.join(DIFFICULTIES)}")
    contest_date = raw["contest_date"]
    if isinstance(contest_date, datetime):
        contest_date = contest_date.isoformat()
    try:
        datetime.fromisoformat(str(contest_date))
    except ValueError:
        raise RejectedRecord(f"contest_date {contest_date!r} is not ISO-8601") from None
    try:
        metadata = json.loads(raw["metadata"]) if isinstance(raw["metadata"], str) else raw["metadata"]
    except ValueError as exc:
        raise RejectedRecord(f"metadata is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise RejectedRecord("metadata is not a JSON object")
    func_name = metadata.get("func_name") or None
    tests = {}
    for name in ("public_test_cases", "private_test_cases"):
        try:
            tests[name] = decode_test_cases(raw[name])
        except UnsafePickleError as exc:
            raise RejectedRecord(f"{name}: {exc}", unsafe=True) from None
        except TestCaseDecodeError as exc:
            raise RejectedRecord(f"{name}: {exc}") from None
        for i, t in enumerate(tests[name]):
            problem = _test_problem(t)
            if problem:
                raise RejectedRecord(f"{name}[{i}]: {problem}")
    if not tests["public_test_cases"] and not tests["private_test_cases"]:
        raise RejectedRecord("no test cases")
    return LcbProblem(
        question_id=str(raw["question_id"]), question_title=str(raw["question_title"]),
        question_content=str(raw["question_content"]), platform=platform, contest_id=str(raw["contest_id"]),
        contest_date=str(contest_date), difficulty=difficulty, starter_code=str(raw["starter_code"] or ""),
        public_tests=[_plain_test(t) for t in tests["public_test_cases"]],
        private_tests=[_plain_test(t) for t in tests["private_test_cases"]], func_name=func_name)


def _test_problem(test) -> str | None:
    if not isinstance(test, dict):
        return f"test is a {type(test).__name__}, expected an object"
    for key in ("input", "output", "testtype"):
        if not isinstance(test.get(key), str):
            return f"field {key!r} missing or not a string"
    if test["testtype"] not in TEST_TYPES:
        return f"testtype {test['testtype']!r} not one of {', '.join(TEST_TYPES)}"
    return None


def _plain_test(test: dict) -> dict:
    return {"input": test["input"], "output": test["output"], "testtype": test["testtype"]}


def parse_day(value: str | date | None) -> date | None:
    """YYYY-MM-DD (or a longer ISO timestamp) -> date; None stays None. Same rule as lcb_runner."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.strptime(str(value)[:10], "%Y-%m-%d").date()
    except ValueError:
        raise ValueError(f"invalid date {value!r}: expected YYYY-MM-DD") from None


def in_window(problem: LcbProblem, start_date=None, end_date=None, training_cutoff=None) -> bool:
    """Inclusive contest-date window; `training_cutoff` keeps only problems strictly after it."""
    return date_in_window(problem.contest_day, start_date, end_date, training_cutoff)


def date_in_window(contest_date, start_date=None, end_date=None, training_cutoff=None) -> bool:
    """The same window for any contest date (a date or an ISO text), e.g. a scenario instance's."""
    day = parse_day(contest_date)
    start, end, cutoff = parse_day(start_date), parse_day(end_date), parse_day(training_cutoff)
    return ((start is None or day >= start) and (end is None or day <= end)
            and (cutoff is None or day > cutoff))


def filter_window(problems, start_date=None, end_date=None, training_cutoff=None) -> list[LcbProblem]:
    return [p for p in problems if in_window(p, start_date, end_date, training_cutoff)]
