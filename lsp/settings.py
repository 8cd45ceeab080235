"""The server's settings and its command-line options (`hrm lsp`, `python -m lsp`); light to import, so the
`hrm` command line does not load the server to list its options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServerSettings:
    model: str  # a model spec (inference/specs.py)
    workspace: str = ""  # the workspace root; empty: the client's workspace folder holding the file
    log_file: str = ""  # JSON lines of every request; empty: stderr
    max_new_tokens: int = 48
    test_timeout_s: float = 60.0
    doc_prompt_chars: int = 1200  # the code in an "add docstring" prompt (HRM_DOC_PROMPT_CHARS, as doc_tasks)
    context_tokens: int = 256  # the repository map in a completion prompt; 0: the other open documents' heads


def add_arguments(parser) -> None:
    """`hrm lsp`'s options (also `python -m lsp`)."""
    from resources.settings import env_float, env_int, env_str

    parser.add_argument("--model", required=True,
                        help="model spec: local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4] or openai:BASE_URL#MODEL")
    parser.add_argument("--workspace", default="", help="the workspace root (default: the client's folder)")
    parser.add_argument("--log-file", default=env_str("HRM_LSP_LOG_FILE"),
                        help="JSON lines, one per request (default: HRM_DATA_DIR/lsp/requests.jsonl; '-': stderr)")
    parser.add_argument("--max-new-tokens", type=int, default=env_int("HRM_LSP_MAX_NEW_TOKENS"))
    parser.add_argument("--test-timeout", type=float, default=env_float("HRM_LSP_TEST_TIMEOUT_S"),
                        help="time limit of a file's tests run on save, seconds")
    parser.add_argument("--stdio", action="store_true", help="accepted for editors that pass it; stdio is the only transport")


def settings_from_args(args) -> ServerSettings:
    from inference.specs import parse_spec
    from resources.settings import env_int, env_str

    parse_spec(args.model)  # a bad spec fails here, before the editor waits on a server that cannot answer
    log_file = args.log_file or str(Path(env_str("HRM_DATA_DIR")) / "lsp" / "requests.jsonl")
    return ServerSettings(args.model, args.workspace, "" if log_file == "-" else log_file, args.max_new_tokens,
                          args.test_timeout, env_int("HRM_DOC_PROMPT_CHARS"),
                          env_int("HRM_LSP_CONTEXT_TOKENS"))
