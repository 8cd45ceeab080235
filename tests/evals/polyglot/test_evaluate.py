"""Polyglot end to end on the real benchmark bundle: extraction, the evaluator in the Sandbox, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.polyglot.evaluate import Answer, evaluate, generator_solver, reference_solver
from evals.polyglot.exercises import EXPECTED_COUNTS, LANGUAGES, PINNED_COMMIT
from evals.polyglot.metrics import summarize
from evals.polyglot.pipeline import clone_benchmark, select_exercises

pytestmark = pytest.mark.slow  # clones the benchmark bundle and runs its tests in the jail

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def checkout(polyglot_bundle, tmp_path_factory):
    dest = tmp_path_factory.mktemp("polyglot") / "polyglot-benchmark"
    info = clone_benchmark(str(polyglot_bundle), dest, PINNED_COMMIT)
    assert info["commit"] == PINNED_COMMIT
    return dest


@pytest.fixture(scope="session")
def exercises(checkout):
    found, rejected = select_exercises(checkout)
    assert rejected == []
    return {ex.key: ex for ex in found}


def _run(exercises_, solver, sandbox, **kw):
    return {f"{r.language}/{r.exercise}": r for r in evaluate(exercises_, solver, sandbox, **kw)}


def test_extraction_reads_all_225_exercises(exercises):
    assert len(exercises) == 225
    for lang in LANGUAGES:
        assert sum(1 for k in exercises if k.startswith(lang + "/")) == EXPECTED_COUNTS[lang]
    for ex in exercises.values():
        assert ex.instructions.strip() and ex.solution_files and ex.test_files and ex.reference_files, ex.key
        assert not set(ex.test_files) & set(ex.solution_files), ex.key
    rust = exercises["rust/gigasecond"]
    assert "Cargo.toml" in rust.build_files and "Cargo.toml" not in rust.solution_files
    assert set(rust.reference_files) == {"src/lib.rs"}
    bowling = exercises["java/bowling"]
    assert set(bowling.reference_files) == {"src/main/java/BowlingGame.java", "src/main/java/Frame.java"}
    assert "cases_test.go" in exercises["go/alphametics"].editor_files
    assert "test/catch.hpp" in exercises["cpp/bank-account"].build_files
    # the cross-language key joins one exercise across tracks
    assert {k for k, e in exercises.items() if e.cross_language_key == "bowling"} >= {
        "python/bowling", "java/bowling", "rust/bowling", "javascript/bowling"}
    # instructions = introduction + instructions + append
    assert "Exception messages" in exercises["python/bowling"].instructions
    problem = exercises["go/alphametics"].to_eval_problem()  # the shared contract for generation loops
    assert problem.problem_id == "go/alphametics" and problem.grading_mode == "polyglot_tests"
    assert "alphametics.go" in problem.visible_files and "alphametics_test.go" in problem.hidden_tests
    assert "alphametics.go" in problem.prompt and "alphametics_test.go" not in problem.prompt


REFERENCE_SAMPLE = ["python/bowling", "python/zipper", "javascript/bowling", "java/bowling", "rust/gigasecond",
                    "go/dnd-character", "cpp/gigasecond", "cpp/bank-account"]


def test_reference_solutions_pass_in_every_language(exercises, sandbox):
    results = _run([exercises[k] for k in REFERENCE_SAMPLE], reference_solver, sandbox)
    assert {k: r.status for k, r in results.items()} == {k: "pass" for k in REFERENCE_SAMPLE}, \
        {k: r.output[-800:] for k, r in results.items() if r.status != "pass"}


def test_known_reference_failures_are_explained(exercises, sandbox):
    results = _run([exercises["rust/poker"], exercises["java/mazy-mice"]], reference_solver, sandbox)
    assert results["rust/poker"].status == "fail" and "`counter`" in results["rust/poker"].reason
    assert results["java/mazy-mice"].status == "fail" and "hasDimensions" in results["java/mazy-mice"].reason


def test_broken_solution_fails_then_second_try_sees_the_output(exercises, sandbox):
    ex = exercises["python/bowling"]
    seen = []

    def conversation(turn):  # a model's side of the two tries, as a generator
        seen.append(turn)
        turn = yield Answer(files={"bowling.py": "class BowlingGame:\n    pass\n"})
        seen.append(turn)
        yield Answer(files=ex.reference_files)

    result, = evaluate([ex], generator_solver(conversation), sandbox)
    assert result.tries == ["fail", "pass"] and result.status == "pass"
    assert "bowling.py" in seen[0].message and "Exception messages" in seen[0].message
    assert "See the testing errors above" in seen[1].message and "FAILED" in seen[1].message
    assert seen[1].files["bowling.py"] == "class BowlingGame:\n    pass\n"
    summary = summarize([result])
    assert summary["pass_rate_1"] == 0.0 and summary["pass_rate_2"] == 100.0


def test_malformed_diff_and_its_repair(exercises, sandbox):
    ex = exercises["python/bowling"]
    stub = ex.solution_files["bowling.py"]
    good = f"bowling.py\n```\n<<<<<<< SEARCH\n{stub}=======\n{ex.reference_files['bowling.py']}>>>>>>> REPLACE\n```\n"
    bad = "bowling.py\n```\n<<<<<<< SEARCH\nthis text is not in the stub\n=======\nx = 1\n>>>>>>> REPLACE\n```\n"
    always_bad = evaluate([ex], lambda turn: Answer(response=bad), sandbox, edit_format="diff")[0]
    assert always_bad.status == "malformed" and always_bad.tries == ["malformed", "malformed"]
    assert "does not match" in always_bad.reason
    repaired = evaluate([ex], lambda t: Answer(response=bad if t.try_number == 1 else good), sandbox,
                        edit_format="diff")[0]
    assert repaired.tries == ["malformed", "pass"]
    summary = summarize([always_bad, repaired])
    assert summary["percent_cases_well_formed"] == 0.0 and summary["pass_rate_2"] == 50.0


def test_a_hanging_solution_times_out(exercises, sandbox):
    ex = exercises["python/bowling"]
    hang = Answer(files={"bowling.py": "while True:\n    pass\n"})
    result, = evaluate([ex], lambda turn: hang if turn.try_number == 1 else None, sandbox, timeout_s=3)
    assert result.status == "timeout" and result.tries == ["timeout"] and result.seconds < 30


def _answers_dir(root: Path, exercises) -> Path:
    ref = exercises["python/bowling"]
    folder = root / "python" / ref.exercise
    folder.mkdir(parents=True)
    (path, stub), = ref.solution_files.items()
    (folder / "response.md").write_text(
        f"{path}\n```\n<<<<<<< SEARCH\n{stub}=======\n{ref.reference_files[path]}>>>>>>> REPLACE\n```\n")
    broken = root / "python" / "zipper"
    broken.mkdir(parents=True)
    (broken / "response.md").write_text("zipper.py\n<<<<<<< SEARCH\nnope\n=======\n>>>>>>> REPLACE\n")
    return root


def test_cli_eval_json_and_missing_toolchain(checkout, exercises, tmp_path):
    answers = _answers_dir(tmp_path / "answers", exercises)
    out = tmp_path / "report.json"
    env = {**os.environ, "HRM_TOOLCHAIN_DIR": str(tmp_path / "no-toolchains")}  # no jest there
    proc = subprocess.run(
        [sys.executable, "-m", "hrm_cli.main", "polyglot", "eval", "--source", str(checkout),
         "--languages", "python,javascript", "--exercises", "bowling,zipper", "--solutions", str(answers),
         "--format", "diff", "--workers", "2", "--json", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    for field in ("counts", "pass_rate_1", "pass_rate_2", "percent_cases_well_formed", "languages", "results"):
        assert field in report
    by_key = {f"{r['language']}/{r['exercise']}": r for r in report["results"]}
    assert set(by_key) == {"python/bowling", "python/zipper", "javascript/bowling", "javascript/zipper"}
    for r in report["results"]:
        assert set(r) >= {"language", "exercise", "status", "seconds"}
    assert by_key["python/bowling"]["status"] == "pass"
    assert by_key["python/zipper"]["status"] == "malformed"
    assert by_key["javascript/bowling"]["status"] == "unsupported" and "jest" in by_key["javascript/bowling"]["reason"]
    assert report["languages"]["python"]["counts"]["pass"] == 1
    assert report["languages"]["javascript"]["counts"]["unsupported"] == 2
    assert report["pass_rate_2"] == 50.0 and report["percent_cases_well_formed"] == 50.0
    assert json.loads(proc.stdout.strip().splitlines()[-1])["counts"]["total"] == 4


def test_candidate_code_cannot_touch_the_shared_builds(exercises, sandbox):
    from evals.polyglot.evaluate import default_cache_dir

    ex = exercises["go/bowling"]
    reference = ex.reference_files["bowling.go"]
    attack = ("\nfunc init() {\n"
              "\tif os.WriteFile(\"/opt/polyglot/gocache/pwned\", []byte(\"x\"), 0o644) == nil {\n"
              "\t\tpanic(\"wrote into the shared Go cache\")\n\t}\n\tos.RemoveAll(\"/opt/polyglot/gocache\")\n}\n")
    solution = reference.replace('import "errors"', 'import (\n\t"errors"\n\t"os"\n)', 1) + attack
    answer = Answer(files={"bowling.go": solution})
    result, = evaluate([ex], lambda t: answer if t.try_number == 1 else None, sandbox,
                       cache_dir=default_cache_dir())
    assert result.status == "pass", result.output[-2000:]
    caches = list(default_cache_dir().glob("go-*"))
    assert caches and all(not (c / "pwned").exists() and any(c.iterdir()) for c in caches)
    assert all(c.stat().st_uid == os.geteuid() for c in caches)


def test_unreadable_exercises_are_quarantined_with_the_file_named(checkout, tmp_path):
    import shutil

    from evals.polyglot.pipeline import TABLE, write_problems
    from resources.warehouse import Warehouse

    copy = tmp_path / "copy"
    for name in ("bowling", "zipper"):
        shutil.copytree(checkout / "python/exercises/practice" / name, copy / "python/exercises/practice" / name)
    (copy / "python/exercises/practice/zipper/.meta/config.json").write_text("{not json")
    warehouse = Warehouse(root=str(tmp_path / "data"))
    out = write_problems(warehouse, copy, "python")
    assert out["rows"] == 1 and out["rejected"] == 1
    assert warehouse.read_table(TABLE, "python").column("exercise").to_pylist() == ["bowling"]
    rejected, = [json.loads(line) for line in (tmp_path / "data/quarantine/polyglot_problems-python.jsonl").open()]
    assert rejected["exercise"] == "zipper" and "zipper/.meta/config.json" in rejected["reason"]
