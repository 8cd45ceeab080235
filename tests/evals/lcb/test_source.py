"""LiveCodeBench records: both private-test encodings load, bad rows are quarantined with file, row
and reason, and a pickle that tries to run code is refused without running anything."""

import base64
import json
import os
import pickle
import shutil
import zlib
from pathlib import Path

import pytest

from evals.lcb.records import LcbProblem, filter_window, normalise_record, RejectedRecord
from evals.lcb.safe_pickle import (TestCaseDecodeError, UnsafePickleError, decode_test_cases, encode_test_cases,
                                        loads_plain_data)
from evals.lcb.source import LcbSourceError, load_records, load_release, release_file_numbers, release_files

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"


class _Touch:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Eval:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (eval, (f"open({str(self.path)!r}, 'w').write('pwned')",))


def test_both_encodings_give_the_same_problems():
    plain = load_records([FIXTURES / "code_generation_plain.jsonl"])
    pickled = load_records([FIXTURES / "code_generation_pickled.jsonl"])
    assert not plain.rejected and not pickled.rejected
    assert [p.to_row() for p in plain.problems] == [p.to_row() for p in pickled.problems]
    by_id = {p.question_id: p for p in pickled.problems}
    assert set(by_id) == {"abc901_a", "2051_A", "3901"}
    assert by_id["3901"].func_name == "largestPairSum" and by_id["3901"].testtype == "functional"
    assert by_id["abc901_a"].func_name is None and len(by_id["abc901_a"].private_tests) == 3
    sample = by_id["abc901_a"].evaluation_sample()
    assert sample["inputs"][0] == "3\n1 2 3\n" and sample["fn_name"] is None  # public tests first


@pytest.mark.parametrize("payload", [_Touch, _Eval])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload, protocol):
    marker = tmp_path / "marker"
    blob = pickle.dumps(payload(marker), protocol=protocol)
    with pytest.raises(UnsafePickleError):
        loads_plain_data(blob)
    record = json.loads((FIXTURES / "code_generation_plain.jsonl").read_text().splitlines()[0])
    record["private_test_cases"] = base64.b64encode(zlib.compress(blob)).decode()
    with pytest.raises(RejectedRecord) as info:
        normalise_record(record)
    assert info.value.unsafe and "private_test_cases" in info.value.reason and "refused" in info.value.reason
    assert not marker.exists()


def test_bad_rows_are_quarantined_with_file_row_and_reason():
    marker = Path("/tmp/hrm-lcb-fixture-pickle-marker")
    marker.unlink(missing_ok=True)
    path = FIXTURES / "code_generation_bad.jsonl"
    result = load_records([path])
    assert [p.question_id for p in result.problems] == ["ok_row"]
    reasons = {r["row"]: r for r in result.rejected}
    assert all(r["file"] == str(path) for r in result.rejected)
    assert "missing field(s): platform" in reasons[1]["reason"]
    assert "contest_date '07/09/2024' is not ISO-8601" in reasons[2]["reason"]
    assert "not valid JSON" in reasons[3]["reason"]
    assert "private_test_cases" in reasons[4]["reason"] and not reasons[4]["unsafe"]
    assert reasons[5]["question_id"] == "evil_pickle" and reasons[5]["unsafe"]
    assert "posix.system" in reasons[5]["reason"]
    assert "testtype 'interactive'" in reasons[6]["reason"]
    assert not marker.exists()


def test_plain_data_pickles_of_every_protocol_decode():
    value = {"a": (1, 2.5, None, True, b"x", {1, 2}, frozenset([3]), bytearray(b"q")), "b": [10**30], "c": "é"}
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        assert loads_plain_data(pickle.dumps(value, protocol=protocol)) == value
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert decode_test_cases(encode_test_cases(tests)) == tests
    assert decode_test_cases(json.dumps(tests)) == tests


def test_undecodable_and_oversized_tests_are_errors():
    with pytest.raises(TestCaseDecodeError):
        decode_test_cases("%%% not base64 %%%")
    with pytest.raises(TestCaseDecodeError):
        decode_test_cases(json.dumps({"not": "a list"}))
    bomb = base64.b64encode(zlib.compress(pickle.dumps("[" + " " * 5_000_000 + "]"))).decode()
    with pytest.raises(TestCaseDecodeError, match="exceed"):
        decode_test_cases(bomb, limit=1_000_000)
    not_text = base64.b64encode(zlib.compress(pickle.dumps([1, 2]))).decode()
    with pytest.raises(TestCaseDecodeError, match="expected JSON text"):
        decode_test_cases(not_text)


def test_release_tags_map_to_files():
    assert release_file_numbers("release_v3") == [1, 2, 3]
    assert release_file_numbers("v4") == [4]
    assert release_file_numbers("v2_v5") == [2, 3, 4, 5]
    assert release_file_numbers("release_latest", available=7) == list(range(1, 8))
    with pytest.raises(ValueError, match="unknown LiveCodeBench release tag"):
        release_file_numbers("latest")


def test_directory_source_and_date_window(tmp_path):
    lines = (FIXTURES / "code_generation_pickled.jsonl").read_text().splitlines()
    (tmp_path / "test.jsonl").write_text(lines[0] + "\n")  # abc901_a, 2024-09-07
    (tmp_path / "test2.jsonl").write_text("\n".join(lines[1:]) + "\n")  # 2024-12-20, 2025-02-02
    assert [p.name for p in release_files(str(tmp_path), "release_v2")] == ["test.jsonl", "test2.jsonl"]
    assert [p.question_id for p in load_release(str(tmp_path), "v2").problems] == ["2051_A", "3901"]
    window = load_release(str(tmp_path), "release_v2", start_date="2024-09-07", end_date="2024-12-20")
    assert [p.question_id for p in window.problems] == ["abc901_a", "2051_A"]
    after = load_release(str(tmp_path), "release_latest", training_cutoff="2024-12-20")
    assert [p.question_id for p in after.problems] == ["3901"]
    with pytest.raises(LcbSourceError, match="lacks test3.jsonl"):
        release_files(str(tmp_path), "release_v3")
    (tmp_path / "v9").mkdir()
    shutil.copy(FIXTURES / "code_generation_plain.jsonl", tmp_path / "v9" / "part-0.jsonl")
    assert len(load_release(str(tmp_path), "v9").problems) == 3


def test_offline_hub_and_missing_source_fail_with_directions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.delenv("HRM_LCB_SOURCE", raising=False)
    with pytest.raises(LcbSourceError, match="HRM_LCB_SOURCE"):
        release_files(None, "release_v1")
    with pytest.raises(LcbSourceError, match="does not exist.*HRM_LCB_SOURCE"):
        release_files(str(tmp_path / "nowhere"), "release_v1")
    with pytest.raises(LcbSourceError, match="lacks test.jsonl"):
        release_files(str(tmp_path), "release_v1")


def test_window_filter_is_inclusive():
    problems = load_records([FIXTURES / "code_generation_plain.jsonl"]).problems
    assert len(filter_window(problems, "2024-09-07", "2025-02-02")) == 3
    assert len(filter_window(problems, "2024-09-08")) == 2
    row = problems[2].to_row()
    assert LcbProblem.from_row(row) == problems[2]
    with pytest.raises(ValueError, match="invalid date"):
        filter_window(problems, "yesterday")
