"""`hrm lsp` completion latency on CPU: a real LSP client (pygls) starts the server over stdio with a model
spec, opens a real source file and asks for completions at N positions spread over it, one after another (as an
editor does while someone types). Reports client-side p50 / p95 / mean milliseconds per request (JSON-RPC
included), the server's own logged figures, and the machine's load average. Last line: one JSON object.

    .venv/bin/python bench/lsp.py                         # the published hrm checkpoint of HRM_DATA_DIR
    .venv/bin/python bench/lsp.py --model local:CKPT_DIR --requests 40 --file model/edits.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def default_model() -> str:
    from resources.warehouse import Warehouse
    from training.pipeline import published_checkpoint

    directory, _ = published_checkpoint(Warehouse(), "hrm_checkpoint")
    return f"local:{directory}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def positions(text: str, n: int, seed: int) -> list[tuple[int, int]]:
    """n cursor positions on non-blank lines: line ends and points inside lines, as someone typing leaves them."""
    rng = random.Random(seed)
    lines = [(i, l) for i, l in enumerate(text.split("\n")) if l.strip()]
    picked = []
    for _ in range(n):
        i, line = rng.choice(lines)
        picked.append((i, len(line) if rng.random() < 0.6 else rng.randint(len(line) - len(line.lstrip()), len(line))))
    return picked


async def run(args) -> dict:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient

    source = Path(args.file).resolve()
    text = source.read_text()
    log = Path(tempfile.mkdtemp(prefix="hrm-bench-lsp-")) / "requests.jsonl"
    client = LanguageClient("hrm-bench-lsp", "1")
    client.feature(types.WINDOW_LOG_MESSAGE)(lambda params: None)  # the server's per-request debug lines
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}  # CPU, as the issue asks
    t0 = time.perf_counter()
    await client.start_io(sys.executable, "-m", "lsp", "--model", args.model, "--workspace", str(source.parent),
                          "--log-file", str(log), "--max-new-tokens", str(args.max_new_tokens), env=env, cwd=str(REPO))
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities(),
                                                         root_uri=source.parent.as_uri()))
    client.initialized(types.InitializedParams())
    uri = source.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text)))
    here = types.TextDocumentIdentifier(uri)
    wall, empty = [], 0
    for k, (line, character) in enumerate(positions(text, args.warmup + args.requests, args.seed)):
        start = time.perf_counter()
        got = await client.text_document_completion_async(types.CompletionParams(here, types.Position(line, character)))
        ms = (time.perf_counter() - start) * 1000
        if k == args.warmup - 1 or (args.warmup == 0 and k == 0):
            ready_s = time.perf_counter() - t0
        if k >= args.warmup:
            wall.append(ms)
            empty += not got.items
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    server_ms = [r["ms"] for r in map(json.loads, log.read_text().splitlines())
                 if r["method"] == "textDocument/completion"][args.warmup:]
    return {"bench": "lsp_completion", "model": args.model, "device": "cpu", "file": str(source.relative_to(REPO))
            if source.is_relative_to(REPO) else str(source), "requests": len(wall), "max_new_tokens": args.max_new_tokens,
            "p50_ms": round(percentile(wall, 0.5), 1), "p95_ms": round(percentile(wall, 0.95), 1),
            "mean_ms": round(statistics.fmean(wall), 1), "server_p50_ms": round(percentile(server_ms, 0.5), 1),
            "server_p95_ms": round(percentile(server_ms, 0.95), 1), "empty_completions": empty,
            "startup_and_warmup_s": round(ready_s, 2), "load_avg": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model spec (default: local:<published hrm checkpoint>)")
    parser.add_argument("--file", default=str(REPO / "model" / "edits.py"), help="the source file completed in")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.model = args.model or default_model()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
