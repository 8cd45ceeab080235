"""`hrm serve`: an OpenAI-compatible HTTP server over the continuous-batching engine (Starlette + uvicorn).

GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream as server-sent events or not), with
max_tokens, temperature, top_p, stop, n, seed and usage counts. Extensions in the request body (the openai
client sends them with `extra_body`): `language` and `task` (our model's language and task embeddings;
defaults "none" and "codegen") and `truncate: "left"` (a prompt too long for the context keeps its tail, as
our evaluation does; without it such a prompt is a 400). Errors are OpenAI-shaped:
{"error": {"message", "type", "param", "code"}}: 400 bad request, 404 unknown model, 429 queue full,
503 engine down.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

from inference.chat import chat_prompt
from inference.engine import BatchEngine, EngineClosed, QueueFull, Sequence
from model.vocab import LANGUAGES, TASK_TYPES, language_id, task_id

MAX_N = 16
MAX_STOP = 4
UNSUPPORTED = {"logprobs": "logprobs", "top_logprobs": "logprobs", "echo": "echo", "suffix": "suffix",
               "logit_bias": "logit_bias", "tools": "tool calling", "functions": "function calling"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error",
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.kind, self.code = status, message, param, kind, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _number(body: dict, name: str, default, low: float, high: float, integer: bool = False):
    value = body.get(name)
    if value is None:
        return default
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise ApiError(400, f"{name} must be {what} from {low} to {high}, got {value!r}", name)
    return value


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOP or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, f"stop must be a non-empty string or a list of at most {MAX_STOP} of them", "stop")
    return tuple(stops)


def _choice(body: dict, name: str, options, default: str) -> str:
    value = body.get(name, default)
    if value not in options:
        raise ApiError(400, f"{name} must be one of {', '.join(options)}; got {value!r}", name)
    return value


class LoopInbox:
    """Hands engine events to the event loop's request queues with one loop wake-up per batch of events (a
    decoding step makes one event per running row; a wake-up each would cost more than the step)."""

    def __init__(self, loop):
        self.loop, self.items, self.lock, self.scheduled = loop, [], threading.Lock(), False

    def put(self, queue: asyncio.Queue, item) -> None:
        with self.lock:
            self.items.append((queue, item))
            if self.scheduled:
                return
            self.scheduled = True
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self.lock:
            items, self.items, self.scheduled = self.items, [], False
        for queue, item in items:
            queue.put_nowait(item)


class Server:
    def __init__(self, engine: BatchEngine, tokenizer, model_name: str = "hrm"):
        self.engine, self.tokenizer, self.model_name = engine, tokenizer, model_name
        self.created = int(time.time())
        self._inbox: LoopInbox | None = None

    # -- request parsing ---------------------------------------------------------------------------
    def _check_common(self, body) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        if body.get("model") != self.model_name:
            raise ApiError(404, f"the model {body.get('model')!r} does not exist; this server serves "
                                f"{self.model_name!r}", "model", code="model_not_found")
        for field, what in UNSUPPORTED.items():
            if body.get(field) not in (None, False, 0, [], {}):
                raise ApiError(400, f"{what} is not supported by this server", field)
        if _number(body, "best_of", 1, 1, 1, integer=True) != 1:
            raise ApiError(400, "best_of is not supported", "best_of")

    def _sequences(self, body: dict, prompts: list[str], default_max: int | None, max_field: str) -> list[Sequence]:
        n = _number(body, "n", 1, 1, MAX_N, integer=True)
        temperature = float(_number(body, "temperature", 1.0, 0, 2))
        top_p = float(_number(body, "top_p", 1.0, 0, 1))
        if top_p == 0:
            raise ApiError(400, "top_p must be above 0", "top_p")
        seed = _number(body, "seed", None, -2**63, 2**63 - 1, integer=True)
        stop = _stop(body)
        language = _choice(body, "language", LANGUAGES, "none")
        task = _choice(body, "task", TASK_TYPES, "codegen")
        truncate = body.get("truncate")
        if truncate not in (None, "left"):
            raise ApiError(400, f'truncate must be "left" or absent; got {truncate!r}', "truncate")
        context = self.engine.max_seq_len
        max_tokens = _number(body, max_field, default_max, 1, context - 1, integer=True)
        sequences = []
        for i, text in enumerate(prompts):
            ids = list(self.tokenizer.encode_prompt(text))
            budget = max_tokens if max_tokens is not None else max(context - len(ids), 1)
            if len(ids) + budget > context:
                if truncate != "left":
                    raise ApiError(400, f"the prompt is {len(ids)} tokens and {max_field} is {budget}: more than "
                                        f"the model's context of {context} tokens (send truncate: \"left\" to keep "
                                        f"the prompt's tail)", "prompt" if max_tokens is None else max_field,
                                   code="context_length_exceeded")
                ids = ids[len(ids) + budget - context:]
            for j in range(n):
                sequences.append(Sequence(
                    prompt_ids=ids, max_new_tokens=budget, sink=None, language_id=language_id(language),
                    task_id=task_id(task), temperature=temperature, top_p=top_p,
                    seed=None if seed is None else seed + i * n + j, stop=stop))
        return sequences

    def parse_completion(self, body) -> tuple[list[Sequence], list[int]]:
        self._check_common(body)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(400, "prompt must be a string or a non-empty list of strings", "prompt")
        seqs = self._sequences(body, prompts, 16, "max_tokens")
        return seqs, [len(s.prompt_ids) for s in seqs[::len(seqs) // len(prompts)]]

    def parse_chat(self, body) -> tuple[list[Sequence], list[int]]:
        self._check_common(body)
        try:
            prompt = chat_prompt(body.get("messages"))
        except ValueError as exc:
            raise ApiError(400, str(exc), "messages") from None
        field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        seqs = self._sequences(body, [prompt], None, field)
        return seqs, [len(seqs[0].prompt_ids)]

    # -- running -----------------------------------------------------------------------------------
    def start(self, seqs: list[Sequence]) -> asyncio.Queue:
        if len(seqs) > self.engine.max_queue:
            raise ApiError(400, f"the request asks for {len(seqs)} completions; this server holds at most "
                                f"{self.engine.max_queue} at once", "n")
        if self._inbox is None:
            self._inbox = LoopInbox(asyncio.get_running_loop())
        inbox, queue = self._inbox, asyncio.Queue()
        for i, seq in enumerate(seqs):
            seq.sink = lambda event, i=i: inbox.put(queue, (i, event))
        try:
            self.engine.submit(seqs)
        except QueueFull as exc:
            raise ApiError(429, f"{exc}; retry later", kind="rate_limit_error", code="queue_full") from None
        except EngineClosed as exc:
            raise ApiError(503, f"the model is not available: {exc}", kind="server_error",
                           code="service_unavailable") from None
        except ValueError as exc:
            raise ApiError(400, str(exc), "prompt", code="context_length_exceeded") from None
        return queue

    async def events(self, seqs: list[Sequence], queue: asyncio.Queue):
        """Lists of (choice index, event), as they arrive, until every sequence ended; a client that leaves
        cancels its sequences."""
        open_ = len(seqs)
        try:
            while open_:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                open_ -= sum(event[0] != "text" for _, event in batch)
                yield batch
        finally:
            for seq in seqs:
                seq.cancelled = True

    @staticmethod
    def usage(seqs: list[Sequence], prompt_lengths: list[int]) -> dict:
        prompt, completion = sum(prompt_lengths), sum(len(s.new_ids) for s in seqs)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def create_app(engine: BatchEngine, tokenizer, model_name: str = "hrm"):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    server = Server(engine, tokenizer, model_name)

    def error(exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    async def read(request: Request):
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": [{
            "id": model_name, "object": "model", "created": server.created, "owned_by": "hrm-code",
            "max_model_len": engine.max_seq_len, "languages": list(LANGUAGES), "tasks": list(TASK_TYPES)}]})

    async def health(request: Request):
        ok = engine.error is None
        return JSONResponse({"status": "ok" if ok else engine.error, "load": engine.load()},
                            status_code=200 if ok else 503)

    def endpoint(parse, chat: bool):
        kind = "chat.completion" if chat else "text_completion"

        async def handle(request: Request):
            try:
                body = await read(request)
                seqs, prompt_lengths = parse(body)
                queue = server.start(seqs)
            except ApiError as exc:
                return error(exc)
            rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
            head = {"id": rid, "created": int(time.time()), "model": model_name}
            if body.get("stream"):
                options = body.get("stream_options") or {}
                return StreamingResponse(_sse(server, seqs, queue, head, chat, prompt_lengths,
                                              bool(isinstance(options, dict) and options.get("include_usage"))),
                                         media_type="text/event-stream")
            texts, reasons, failure = [""] * len(seqs), [None] * len(seqs), None
            async for batch in server.events(seqs, queue):
                for i, event in batch:
                    if event[0] == "text":
                        texts[i] += event[1]
                    elif event[0] == "done":
                        reasons[i] = event[1]
                    else:
                        failure = event[1]
            if failure:
                return error(ApiError(500, f"generation failed: {failure}", kind="server_error"))
            choices = [({"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": r}
                        if chat else {"index": i, "text": t, "logprobs": None, "finish_reason": r})
                       for i, (t, r) in enumerate(zip(texts, reasons))]
            return JSONResponse({**head, "object": kind, "choices": choices,
                                 "usage": server.usage(seqs, prompt_lengths)})
        return handle

    async def not_found(request: Request, exc):
        return error(ApiError(404, f"no route {request.method} {request.url.path}", kind="not_found_error"))

    routes = [Route("/v1/models", models, methods=["GET"]), Route("/health", health, methods=["GET"]),
              Route("/v1/completions", endpoint(server.parse_completion, False), methods=["POST"]),
              Route("/v1/chat/completions", endpoint(server.parse_chat, True), methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.server = server
    return app


async def _sse(server: Server, seqs, queue, head: dict, chat: bool, prompt_lengths, include_usage: bool):
    kind = "chat.completion.chunk" if chat else "text_completion"

    def chunk(choices, **extra) -> str:
        return f"data: {json.dumps({**head, 'object': kind, 'choices': choices, **extra})}\n\n"

    if chat:
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                     for i in range(len(seqs))])
    async for batch in server.events(seqs, queue):
        out = []
        for i, event in batch:
            if event[0] == "error":
                body = ApiError(500, f"generation failed: {event[1]}", kind="server_error").body()
                yield "".join(out) + f"data: {json.dumps(body)}\n\n"
                return
            text, reason = (event[1], None) if event[0] == "text" else ("", event[1])
            if chat:
                out.append(chunk([{"index": i, "delta": {"content": text} if text else {}, "finish_reason": reason}]))
            else:
                out.append(chunk([{"index": i, "text": text, "logprobs": None, "finish_reason": reason}]))
        yield "".join(out)
    if include_usage:
        yield chunk([], usage=server.usage(seqs, prompt_lengths))
    yield "data: [DONE]\n\n"


def serve(checkpoint: str, quantization: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          model_name: str = "hrm", max_batch: int = 32, max_queue: int = 256, adapter: str | None = None) -> None:
    import uvicorn

    from model.checkpoint import load_checkpoint

    model, tokenizer = load_checkpoint(checkpoint, quantization=quantization, adapter=adapter)
    if tokenizer is None:
        raise ValueError(f"{checkpoint} has no tokenizer/: a served model needs one")
    engine = BatchEngine(model, tokenizer, max_batch=max_batch, max_queue=max_queue)
    try:
        uvicorn.run(create_app(engine, tokenizer, model_name), host=host, port=port, log_level="warning")
    finally:
        engine.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """The app served by uvicorn in a thread on a free local port (for tests and benchmarks):
    `with BackgroundServer(app) as base_url: ...` (base_url ends with /v1)."""

    def __init__(self, app, host: str = "127.0.0.1"):
        import uvicorn

        self.port = free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning"))
        self.base_url = f"http://{host}:{self.port}/v1"

    def __enter__(self) -> str:
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server did not start on port {self.port}")
            time.sleep(0.02)
        return self.base_url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
