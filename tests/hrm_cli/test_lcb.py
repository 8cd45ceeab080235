"""`hrm lcb load` and `hrm lcb grade` on the fixtures (both private-test encodings)."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hrm_cli.main import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lcb"


def test_load_writes_parquet_and_quarantine(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "test.jsonl").write_text((FIXTURES / "code_generation_plain.jsonl").read_text())
    (src / "test2.jsonl").write_text((FIXTURES / "code_generation_bad.jsonl").read_text())
    out = tmp_path / "out"
    assert main(["lcb", "load", "--source", str(src), "--release", "release_v2", "--start-date", "2024-01-01",
                 "--end-date", "2025-12-31", "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["problems"] == 4 and summary["rejected"] == 6 and summary["unsafe_rejected"] == 1
    table = pq.read_table(out / "problems.parquet").to_pylist()
    assert {r["question_id"] for r in table} == {"abc901_a", "2051_A", "3901", "ok_row"}
    reasons = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert len(reasons) == 6 and all(r["reason"] and r["file"].endswith("test2.jsonl") for r in reasons)


def test_load_without_data_says_how_to_point_at_it(tmp_path, capsys):
    assert main(["lcb", "load", "--source", str(tmp_path), "--release", "v1", "--out", str(tmp_path / "o")]) == 2
    assert "HRM_LCB_SOURCE" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["code_generation_plain.jsonl", "code_generation_pickled.jsonl"])
def test_grade_writes_pass_at_k_and_per_test_codes(sandbox, tmp_path, capsys, fixture):
    out = tmp_path / "graded.json"
    assert main(["lcb", "grade", "--problems", str(FIXTURES / fixture), "--generations",
                 str(FIXTURES / "generations.json"), "--timeout", "1", "--workers", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    expected = json.loads((FIXTURES / "expected_graded.json").read_text())
    assert {q["question_id"]: q["graded_list"] for q in result["questions"]} == expected
    assert result["pass@1"] == pytest.approx(0.4) and result["pass@5"] == 1.0
    by_id = {q["question_id"]: q for q in result["questions"]}
    assert by_id["abc901_a"]["results"][0] == [True, True, True, True]
    assert json.loads(capsys.readouterr().out)["n_generations"] == 15


@pytest.mark.slow
def test_grade_refuses_generations_for_quarantined_problems(sandbox, tmp_path, capsys):
    gens = tmp_path / "gens.json"
    gens.write_text(json.dumps([{"question_id": "evil_pickle", "code_list": ["print(1)"]}]))
    assert main(["lcb", "grade", "--problems", str(FIXTURES / "code_generation_bad.jsonl"), "--generations",
                 str(gens), "--json", str(tmp_path / "o.json")]) == 2
    assert "rejected problems: evil_pickle" in capsys.readouterr().err
    assert not Path("/tmp/hrm-lcb-fixture-pickle-marker").exists()


@pytest.mark.slow
def test_humaneval_command_grades_samples(sandbox, tmp_path, capsys):
    from evals import humaneval

    problems = humaneval.load_problems()[:3]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p["task_id"], "completion": c}) + "\n"
                               for p in problems for c in (p["canonical_solution"], "    return None\n")))
    out = tmp_path / "he.json"
    assert main(["lcb", "humaneval", "--samples", str(samples), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["pass@1"] == 0.5 and [t["graded_list"] for t in result["tasks"]] == [[True, False]] * 3


@pytest.mark.slow
def test_repair_prompts_from_a_graded_run(sandbox, tmp_path, capsys):
    graded = tmp_path / "graded.json"
    problems = str(FIXTURES / "code_generation_plain.jsonl")
    assert main(["lcb", "grade", "--problems", problems, "--generations", str(FIXTURES / "generations.json"),
                 "--timeout", "1", "--json", str(graded)]) == 0
    capsys.readouterr()
    out = tmp_path / "repair.jsonl"
    assert main(["lcb", "repair-prompts", "--problems", problems, "--graded", str(graded), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"generations": 15, "to_repair": 9, "out": str(out)}
    first = json.loads(out.read_text().splitlines()[1])
    assert first["messages"][0]["role"] == "system" and "got a wrong answer" in first["messages"][1]["content"]
