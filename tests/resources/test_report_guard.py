"""The report guard: it hands back only regular report files, ends what the script left running, limits
time and output, and its document must have the exact shape."""

import json

import pytest


def _guarded(sandbox, script: str, timeout: float = 10, **limits) -> dict | None:
    from resources.report_guard import guard_bind, guard_command, read_document
    from resources.sandbox import SandboxJob

    job = SandboxJob(command=guard_command(["sh", "-c", script], timeout, 900_000, **limits),
                     ro_binds=[guard_bind()], timeout_s=timeout + 10)
    return read_document(sandbox.run_job(job).stdout)


@pytest.mark.slow
def test_the_guard_reads_only_regular_report_files_and_ends_what_the_script_left(sandbox):
    doc = _guarded(sandbox, 'echo out; echo report > "$HRM_REPORT_DIR/r.txt"; ln -s /etc/passwd "$HRM_REPORT_DIR/link"; '
                            'mkfifo "$HRM_REPORT_DIR/fifo"; (sleep 60; echo late) & exit 3')
    assert doc["exit_code"] == 3 and doc["output"] == "out\n" and doc["reports"] == {"r.txt": "report\n"}
    assert sorted(s.split(":")[0] for s in doc["skipped"]) == ["fifo", "link"]
    assert doc["wall_s"] < 5  # the background sleep was killed, not waited for


@pytest.mark.slow
def test_the_guard_limits_time_and_output(sandbox):
    slow = _guarded(sandbox, "echo started; sleep 60", timeout=2)
    assert slow["timed_out"] and slow["exit_code"] != 0 and "started" in slow["output"]
    loud = _guarded(sandbox, "yes", max_output_bytes=200_000)
    assert loud["output_limit"] and loud["output_bytes"] > 200_000 and len(loud["output"]) < 100_000


def test_a_guard_document_must_have_the_exact_shape():
    from resources.report_guard import GUARD_FORMAT, read_document

    good = {"format": GUARD_FORMAT, "exit_code": 0, "signal": 0, "timed_out": False, "output_limit": False,
            "output": "", "output_bytes": 0, "cpu_s": 0.5, "wall_s": 1.0, "reports": {"a.xml": "<x/>"},
            "skipped": [], "reports_truncated": False}
    assert read_document(json.dumps(good)) == good
    for key, bad in (("exit_code", True), ("exit_code", 0.0), ("reports", {"a.xml": 1}), ("format", "other")):
        assert read_document(json.dumps({**good, key: bad})) is None, key
    assert read_document(json.dumps(good) + json.dumps(good)) is None  # two documents: none
    assert read_document("[" * 100_000) is None
