"""`hrm serve`'s API through the official openai client (completions and chat, streamed and not) and plain
HTTP for the errors; answers equal the generator's own."""

import json
import time
import urllib.error
import urllib.request

import pytest

from inference.engine import BatchEngine
from inference.server import BackgroundServer, create_app
from model.checkpoint import load_checkpoint
from model.generate import generate

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]  # a served model: 5 s to start


@pytest.fixture(scope="module")
def served(tiny_checkpoint):
    model, tok = load_checkpoint(tiny_checkpoint)
    engine = BatchEngine(model, tok, max_batch=8, max_queue=12)
    with BackgroundServer(create_app(engine, tok, "hrm")) as base_url:
        yield base_url, model, tok, engine
    engine.close()


@pytest.fixture(scope="module")
def client(served):
    import openai

    return openai.OpenAI(base_url=served[0], api_key="unused", max_retries=0)


def post(base_url, path, body, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(base_url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def expected(served, prompt, n=10, language="python", stop=()):
    _, model, tok, _ = served
    return generate(model, tok, [prompt], language=language, stop=stop, max_new_tokens=n)[0]


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["hrm"]


def test_completion_greedy_equals_the_generator_with_usage(client, served):
    r = client.completions.create(model="hrm", prompt="add two numbers #1", max_tokens=10, temperature=0,
                                  extra_body={"language": "python"})
    assert r.choices[0].text == expected(served, "add two numbers #1")
    assert r.usage.prompt_tokens == len(served[2].encode_prompt("add two numbers #1"))
    assert r.usage.completion_tokens <= 10 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason in ("stop", "length")


def test_streamed_completion_and_chat_join_to_the_same_text(client, served):
    want = expected(served, "print hello #2")
    pieces = [c.choices[0].text for c in client.completions.create(
        model="hrm", prompt="print hello #2", max_tokens=10, temperature=0, stream=True,
        extra_body={"language": "python"}) if c.choices]
    assert "".join(pieces) == want and len([p for p in pieces if p]) >= 2
    chat = client.chat.completions.create(model="hrm", messages=[{"role": "user", "content": "print hello #2"}],
                                          max_tokens=10, temperature=0, extra_body={"language": "python"})
    assert chat.choices[0].message.content == want and chat.choices[0].message.role == "assistant"
    chunks = list(client.chat.completions.create(
        model="hrm", messages=[{"role": "user", "content": "print hello #2"}], max_tokens=10, temperature=0,
        stream=True, stream_options={"include_usage": True}, extra_body={"language": "python"}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens


def test_n_seed_and_stop(client, served):
    r = client.completions.create(model="hrm", prompt="add two numbers #0", max_tokens=12, temperature=1.0,
                                  n=3, seed=5)
    again = client.completions.create(model="hrm", prompt="add two numbers #0", max_tokens=12, temperature=1.0,
                                      n=3, seed=5)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.text for c in r.choices] == [c.text for c in again.choices]
    free = expected(served, "add two numbers #0", n=12, language="none")
    stop = free[3:5]
    cut = client.completions.create(model="hrm", prompt="add two numbers #0", max_tokens=12, temperature=0,
                                    stop=[stop])
    assert cut.choices[0].text == free[:free.index(stop)] and cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("body, status, param", [
    ({"model": "gpt-4", "prompt": "x"}, 404, "model"),
    ({"model": "hrm"}, 400, "prompt"),
    ({"model": "hrm", "prompt": 5}, 400, "prompt"),
    ({"model": "hrm", "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "hrm", "prompt": "x", "max_tokens": "9"}, 400, "max_tokens"),
    ({"model": "hrm", "prompt": "x", "temperature": 3}, 400, "temperature"),
    ({"model": "hrm", "prompt": "x", "n": 100}, 400, "n"),
    ({"model": "hrm", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"model": "hrm", "prompt": "x", "logprobs": 2}, 400, "logprobs"),
    ({"model": "hrm", "prompt": "x", "language": "cobol"}, 400, "language"),
    ({"model": "hrm", "prompt": "x " * 200, "max_tokens": 10}, 400, "max_tokens"),
])
def test_bad_completion_requests_get_openai_errors(served, body, status, param):
    code, got = post(served[0], "/completions", body)
    assert code == status and got["error"]["param"] == param and got["error"]["message"]


def test_bad_chat_requests_and_bad_json(served):
    for messages in (None, [], [{"role": "user"}], [{"role": "wizard", "content": "x"}],
                     [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]):
        code, got = post(served[0], "/chat/completions", {"model": "hrm", "messages": messages})
        assert code == 400 and got["error"]["param"] == "messages", messages
    code, got = post(served[0], "/completions", None, raw=b"{not json")
    assert code == 400 and got["error"]["type"] == "invalid_request_error"


def test_long_prompts_keep_their_tail_only_when_asked(client, served):
    prompt = "x " * 200
    r = client.completions.create(model="hrm", prompt=prompt, max_tokens=8, temperature=0,
                                  extra_body={"truncate": "left"})
    assert r.usage.prompt_tokens == 128 - 8


def test_a_full_queue_answers_429_and_a_request_bigger_than_the_queue_400(served, client):
    base_url = served[0]
    code, got = post(base_url, "/completions", {"model": "hrm", "prompt": "x", "n": 13, "max_tokens": 2})
    assert code == 400 and got["error"]["param"] == "n"
    stream = client.completions.create(model="hrm", prompt="add two numbers #1", n=10, max_tokens=100,
                                       temperature=1.0, stream=True)
    next(iter(stream))  # ten rows are running
    code, got = post(base_url, "/completions", {"model": "hrm", "prompt": "x", "n": 3, "max_tokens": 2})
    stream.close()  # the client leaves: its rows are cancelled
    assert code == 429 and got["error"]["code"] == "queue_full"
    engine = served[3]
    deadline = time.monotonic() + 30
    while engine.load() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.load() == 0
    code, got = post(base_url, "/completions", {"model": "hrm", "prompt": "x", "n": 3, "max_tokens": 2})
    assert code == 200 and len(got["choices"]) == 3
