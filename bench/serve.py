"""`hrm serve` under load: tokens/s and time to first token (p50 / p95) with 1, 8 and 32 concurrent streaming
clients (the official openai client, each in its own thread, in another process than the server), and the 32
requests served one at a time vs all at once (batched ÷ one-at-a-time throughput; goal ≥ 4×). Same requests (greedy, same prompts and
max_tokens) at every level, so every level decodes the same tokens. Last line: one JSON object.

    .venv/bin/python bench/serve.py                                  # cpu-default preset, random weights
    .venv/bin/python bench/serve.py --checkpoint DIR [--quantization int8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from inference.engine import BatchEngine  # noqa: E402
from inference.server import create_app, free_port  # noqa: E402

PROMPTS = ["def fibonacci(n):", "Write a function that reverses a string.", "fn main() {", "class Stack:",
           "Sort a list of numbers in python.", "import os\n", "def is_prime(n):", "package main\n"]


def load(args):
    if args.checkpoint:
        from model.checkpoint import load_checkpoint

        return load_checkpoint(args.checkpoint, quantization=args.quantization)
    from model import ModelConfig, build_model
    from model.tokenizer import ByteTokenizer

    torch.manual_seed(0)
    tok = ByteTokenizer()
    return build_model(ModelConfig.preset(args.preset, vocab_size=tok.vocab_size, max_seq_len=512)).eval(), tok


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def one_request(client, i: int, max_tokens: int) -> tuple[float, int]:
    """(seconds to the first text, completion tokens) of one streamed request."""
    t0, first = time.perf_counter(), None
    usage = 0
    for chunk in client.completions.create(model="hrm", prompt=PROMPTS[i % len(PROMPTS)] + f" #{i}",
                                           max_tokens=max_tokens, temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].text and first is None:
            first = time.perf_counter() - t0
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
    return (first if first is not None else time.perf_counter() - t0), usage


def level(client, clients: int, requests: int, max_tokens: int) -> dict:
    """`requests` requests by `clients` concurrent clients (each sends its share one after another)."""
    results, lock = [], threading.Lock()

    def worker(ids):
        for i in ids:
            got = one_request(client, i, max_tokens)
            with lock:
                results.append(got)

    threads = [threading.Thread(target=worker, args=(range(c, requests, clients),)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(n for _, n in results)
    ttft = [t for t, _ in results]
    return {"clients": clients, "requests": requests, "tokens": tokens, "wall_s": round(wall, 3),
            "tokens_per_s": round(tokens / wall, 1), "ttft_p50_s": round(percentile(ttft, 0.5), 4),
            "ttft_p95_s": round(percentile(ttft, 0.95), 4)}


def wait_ready(client, server, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.models.list()
            return
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server process did not start") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--quantization", choices=["int8", "nf4"], default=None)
    parser.add_argument("--preset", default="cpu-default", help="model preset when no checkpoint is given")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="runs per level; the median run is reported")
    parser.add_argument("--serve-on", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_on:  # the server process
        import uvicorn

        model, tok = load(args)
        engine = BatchEngine(model, tok, max_batch=32, max_queue=1024)
        uvicorn.run(create_app(engine, tok, "hrm"), host="127.0.0.1", port=args.serve_on, log_level="warning")
        return

    import openai

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-on", str(port), *sys.argv[1:]])
    levels = {}
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0,
                               timeout=600)
        wait_ready(client, server)
        one_request(client, 0, 4)  # warm-up
        for clients in (1, 8, 32):
            runs = sorted((level(client, clients, args.requests, args.max_tokens) for _ in range(args.repeats)),
                          key=lambda r: r["tokens_per_s"])
            levels[clients] = runs[len(runs) // 2]
            print(json.dumps(levels[clients]), file=sys.stderr)
    finally:
        server.terminate()
        server.wait(30)
    tokens = {r["tokens"] for r in levels.values()}
    print(json.dumps({
        "model": args.checkpoint or f"{args.preset} (random weights)", "quantization": args.quantization or "none",
        "max_tokens": args.max_tokens, "requests_per_level": args.requests, "torch_threads": torch.get_num_threads(),
        "same_tokens_every_level": len(tokens) == 1,
        **{f"c{c}_{k}": r[k] for c, r in levels.items() for k in ("tokens_per_s", "ttft_p50_s", "ttft_p95_s")},
        "batched_over_sequential_at_32": round(levels[32]["tokens_per_s"] / levels[1]["tokens_per_s"], 2),
    }))


if __name__ == "__main__":
    main()
