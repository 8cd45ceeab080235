import json
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HRM_SHARED_DIR", REPO_ROOT.parent / "shared"))
POLYGLOT_BUNDLE = Path(os.environ.get("HRM_POLYGLOT_BUNDLE", SHARED / "mirrors" / "polyglot-benchmark.bundle"))


def _require(condition: bool, why: str) -> None:
    # On CI a missing tool is a set-up bug, so fail; on a developer machine, skip with the reason.
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="session")
def sandbox():
    from resources.sandbox import Sandbox

    _require(shutil.which("bwrap") is not None, "bubblewrap missing: run scripts/setup.sh as root")
    return Sandbox(timeout_s=30, concurrency=2)


@pytest.fixture(scope="session")
def polyglot_bundle() -> Path:
    _require(POLYGLOT_BUNDLE.exists(), f"polyglot bundle not found at {POLYGLOT_BUNDLE}")
    return POLYGLOT_BUNDLE


@pytest.fixture(scope="session")
def token_shards(tmp_path_factory):
    """(two tiny parquet token shards, tokenizer dir): 4 languages, codegen/repair/tool_use, 4 validation rows."""
    from model.data import write_shard
    from model.tokenizer import train_tokenizer
    from model.vocab import tool_id

    programs = {
        "python": ("add two numbers", "def add(a, b):\n    return a + b\n"),
        "rust": ("add two numbers", "fn add(a: i32, b: i32) -> i32 { a + b }\n"),
        "go": ("add two numbers", "func add(a, b int) int { return a + b }\n"),
        "cpp": ("print hello", "int main() { std::cout << \"hello\"; }\n"),
    }
    root = tmp_path_factory.mktemp("token_shards")
    tok = train_tokenizer([p + "\n" + a for p, a in programs.values()] * 10, vocab_size=512, out_dir=root / "tokenizer")
    rows = []
    for i in range(6):
        for language, (prompt, answer) in programs.items():
            ids, prompt_len = tok.encode_example(f"{prompt} #{i % 3}", answer)
            task = {"go": "tool_use", "cpp": "repair"}.get(language, "codegen")
            rows.append({"input_ids": ids, "prompt_len": prompt_len, "language": language, "task_type": task,
                         "edit_tags": [j % 2 for j in range(prompt_len)] if task == "repair" else [],
                         "tool_label": tool_id("git") if task == "tool_use" else -1,
                         "split": "validation" if i == 5 else "train", "example_id": f"{language}-{i}"})
    files = [write_shard(str(root / "shard-0.parquet"), rows[:12]), write_shard(str(root / "shard-1.parquet"), rows[12:])]
    return files, root / "tokenizer"


@pytest.fixture(scope="session")
def data_warehouse(tmp_path_factory, sandbox):
    """A warehouse holding corpus, synthetic tasks, tokenizer, examples and curriculum shards, built by the
    plain pipeline functions (shared by the training-phase and training-asset tests)."""
    import json

    from datagen import pipeline as dp
    from hrm_assets import training_data as td
    from resources.warehouse import Warehouse

    funcs = "\n".join(f'def helper_{i}(value):\n    """Scale value by {i}."""\n    doubled = value * {i}\n'
                      f'    return doubled + {i}\n' for i in range(12))
    src = tmp_path_factory.mktemp("src")
    for i in range(3):
        (src / f"m{i}.py").write_text(funcs.replace("helper_", f"m{i}_").replace("Scale", f"Scale{i}"))
    wh = Warehouse(root=str(tmp_path_factory.mktemp("wh")))
    dp.build_code_corpus(dp.CorpusSettings(sources=json.dumps({"python": [str(src)]}), min_bytes=50), wh)
    dp.build_synthetic_tasks(td.SyntheticTasksConfig(exec_per_template=1, repair_per_template=1, heldout_exec_tasks=1,
                                                      heldout_repair_tasks=1).to_settings(), sandbox, wh)
    dp.build_tokenizer(dp.TokenizerSettings(vocab_size=400), wh)
    dp.build_training_examples(dp.ExamplesSettings(), wh)
    for stage in dp.STAGE_KEYS:
        dp.build_curriculum_shard(dp.ShardSettings(max_seq_len=256), wh, stage)
    return wh


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matmuls on a shared 2-core machine: thread hand-offs cost more than the work."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, token_shards):
    """A tiny HRM trained for 40 steps on the test shards (it writes readable code) with their tokenizer."""
    from hrm_cli.main import main

    files, tok = token_shards
    root = tmp_path_factory.mktemp("serve")
    config = root / "run.json"
    config.write_text(json.dumps({"model": {"preset": "tiny", "max_seq_len": 128},
                                  "train": {"max_steps": 40, "batch_size": 8, "lr": 1e-2, "warmup_steps": 3,
                                            "log_every": 40, "checkpoint_every": 40}}))
    out = root / "ckpt"
    assert main(["train", "--config", str(config), "--shards", str(Path(files[0]).parent), "--out", str(out),
                 "--tokenizer", str(tok)]) == 0
    return out


class Webhook:
    """A local HTTP server that records each POST: `status` is the HTTP status it answers, `hang_s` how long it
    waits before answering."""

    def __init__(self):
        import http.server
        import threading

        self.received, self.status, self.hang_s = [], 200, 0.0
        self.release = threading.Event()  # ends a hanging handler at close
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if hook.hang_s:
                    hook.release.wait(hook.hang_s)
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # close() joins the handler threads: one left sleeping into the next test once raced CPython 3.11's
        # AST builder (gh-106905) in tests/resources/test_partitions.py
        self.server.daemon_threads = False
        # a short poll: shutdown() waits for it, once per test
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN-s3cret"

    def bodies(self) -> list:
        return [json.loads(r["body"].decode("utf-8")) for r in self.received]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def closed_port_url() -> str:
    """A webhook URL nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/T0KEN-s3cret"
