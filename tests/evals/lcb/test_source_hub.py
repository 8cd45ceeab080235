"""`hrm lcb load --source hf://...` through huggingface_hub's real download code, against a local hub
mirror (HF_ENDPOINT) that serves the fixtures the way the hub's resolve endpoint does."""

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow  # the CLI in a child process against a local hub server

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"
REPO = Path(__file__).resolve().parents[3]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PREFIX = "/datasets/livecodebench/code_generation_lite/resolve/main/"


class _Hub(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    served: list[str] = []

    def _answer(self, with_body: bool):
        name = self.path.split("?")[0][len(PREFIX):] if self.path.startswith(PREFIX) else None
        body = self.files.get(name)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.served.append(name)
            self.wfile.write(body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)

    def log_message(self, *args):
        pass


def _hrm_load(tmp_path, env, release):
    out = tmp_path / f"out-{release}"
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from hrm_cli.main import main; sys.exit(main(sys.argv[1:]))",
         "lcb", "load", "--source", "hf://livecodebench/code_generation_lite", "--release", release,
         "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    return proc, out


def test_hub_download_loads_a_release_and_names_missing_files(tmp_path):
    _Hub.files = {"test.jsonl": (FIXTURES / "code_generation_plain.jsonl").read_bytes(),
                  "test2.jsonl": (FIXTURES / "code_generation_pickled.jsonl").read_bytes()}
    _Hub.served = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    try:
        proc, out = _hrm_load(tmp_path, env, "v1")
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.splitlines()[-1])
        assert summary["problems"] == 3 and summary["rejected"] == 0
        assert _Hub.served == ["test.jsonl"]
        assert Path(summary["files"][0]).is_relative_to(tmp_path / "hf")  # the hub cache, not the fixture
        assert len(pq.read_table(out / "problems.parquet")) == 3

        proc, _ = _hrm_load(tmp_path, env, "release_v3")
        assert proc.returncode == 2
        assert "test3.jsonl" in proc.stderr and "HRM_LCB_SOURCE" in proc.stderr
    finally:
        server.shutdown()
        server.server_close()

    # The hub's cache serves a release again with the hub gone, in huggingface_hub's offline mode.
    proc, out = _hrm_load(tmp_path, {**env, "HF_HUB_OFFLINE": "1"}, "v1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["problems"] == 3
