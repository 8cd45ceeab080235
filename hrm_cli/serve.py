"""`hrm serve`: an OpenAI-compatible server for a checkpoint (inference/server.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    s = sub.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible HTTP API",
                       description="GET /v1/models, POST /v1/completions and /v1/chat/completions (stream or not); "
                                   "concurrent requests decode in one continuous batch.")
    s.add_argument("--checkpoint", required=True, type=Path)
    s.add_argument("--quantization", choices=["int8", "nf4"], default=None)
    s.add_argument("--adapter", type=Path, default=None, help="a LoRA adapter directory merged into the checkpoint")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--model-name", default="hrm", help="the model id clients send (default: hrm)")
    s.add_argument("--max-batch", type=int, default=32, help="rows decoded together at most")
    s.add_argument("--max-queue", type=int, default=256,
                   help="sequences waiting or running at most; more get HTTP 429")
    s.set_defaults(handler=_serve)


def _serve(args) -> int:
    from inference.server import serve

    try:
        serve(str(args.checkpoint), args.quantization, args.host, args.port, args.model_name, args.max_batch,
              args.max_queue, adapter=args.adapter)
    except (FileNotFoundError, ValueError) as exc:
        print(f"hrm serve: {exc}", file=sys.stderr)
        return 2
    return 0
