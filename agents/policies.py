"""Policies: what writes the agent's next reply. `policy_from_spec` names them the way model specs do:

- `oracle`: not a model. It applies the task's gold patch through the tools and submits; its rows are
  demonstrations and a check of the infrastructure (a task the oracle cannot resolve is broken), always
  labelled `oracle` and kept apart from model rows.
- `local:CKPT_DIR[+ADAPTER_DIR][@int8|@nf4]`: one of our checkpoints (with a specialist adapter merged in),
  loaded once per spec and reused.
- `openai:BASE_URL#MODEL`: an OpenAI-compatible chat endpoint (`hrm serve`, vLLM, a hosted API).

A policy has `name`, `kind`, `act(messages) -> str` (the next assistant reply), `last_tokens` (tokens that
reply cost) and `reset(task)` (called at the start of each episode).
"""

from __future__ import annotations

import threading
from typing import Protocol

from agents.tools import Action
from inference.specs import load_local, parse_spec

STOP = "</function>"
_CACHE: dict[str, object] = {}
_LOCK = threading.Lock()


class Policy(Protocol):
    name: str  # "oracle" or the spec
    kind: str  # oracle | local | openai
    last_tokens: int  # tokens the last reply cost

    def reset(self, task) -> None: ...

    def act(self, messages: list[dict]) -> str: ...


def policy_from_spec(spec: str, max_new_tokens: int = 256, api_key: str = "") -> Policy:
    if spec == "oracle":
        return OraclePolicy()
    parsed = parse_spec(spec)  # ValueError naming the expected forms
    if parsed.kind == "local":
        return LocalPolicy(spec, *_load_local(parsed), max_new_tokens=max_new_tokens)
    return OpenAIPolicy(parsed, max_new_tokens=max_new_tokens, api_key=api_key)


def _load_local(parsed):
    with _LOCK:
        if parsed.text not in _CACHE:
            model, tok = load_local(parsed)
            if tok is None:
                raise ValueError(f"{parsed.text}: the checkpoint has no tokenizer/, so it cannot act as an agent")
            _CACHE[parsed.text] = (model, tok)
        return _CACHE[parsed.text]


def _count_tokens(text: str) -> int:
    return max(1, len(text) // 4)  # the oracle writes no tokens of a model; a rough size for the budget


class OraclePolicy:
    """The gold patch, hunk by hunk, as str_replace edits; `git apply` of the whole patch if an edit is refused;
    then the tests, then submit."""

    name = kind = "oracle"

    def __init__(self):
        self.plan: list[Action] = []
        self.last_tokens = 0
        self._fallback: Action | None = None

    def reset(self, task) -> None:
        from unidiff import PatchSet

        if not task.gold_patch:
            raise ValueError(f"{task.instance_id}: the task has no gold patch, so the oracle cannot act")
        self.plan = []
        for pf in PatchSet(task.gold_patch):
            for hunk in pf:
                # one line of context around the changes: short demonstrations (a small model's context is short);
                # if that is not unique in the file, the edit is refused and the fallback applies the patch
                lines = list(hunk)
                changed = [i for i, l in enumerate(lines) if l.is_added or l.is_removed]
                lines = lines[max(0, changed[0] - 1):changed[-1] + 2]
                old = "".join(l.value for l in lines if not l.is_added)
                new = "".join(l.value for l in lines if not l.is_removed)
                self.plan.append(Action("edit", {"path": pf.path, "old": old, "new": new},
                                        f"Apply the reference fix to {pf.path} near line {hunk.source_start}."))
        marker = "HRM_GOLD_PATCH_END"
        while marker in task.gold_patch:
            marker += "_"
        self._fallback = Action("bash", {"command": f"git checkout -q -- . && git apply <<'{marker}'\n"
                                                    f"{task.gold_patch}{marker}"},
                                "An edit was refused; apply the whole reference patch instead.")
        self.plan += [Action("run_tests", {}, "Check the fix with the task's tests."),
                      Action("submit", {}, "The reference fix is in place.")]

    def act(self, messages: list[dict]) -> str:
        last = messages[-1]["content"] if messages[-1]["role"] == "user" else ""
        if self._fallback and last.startswith("OBSERVATION:\nerror:"):
            self.plan = [a for a in self.plan if a.tool != "edit"]
            action, self._fallback = self._fallback, None
        elif self.plan:
            action = self.plan.pop(0)
        else:
            action = Action("submit", {})
        text = action.render()
        self.last_tokens = _count_tokens(text)
        return text


class LocalPolicy:
    """Our checkpoint, one reply per call: the transcript's tail as its prompt, in the form its agent_step
    training examples have (datagen.swe.examples.agent_prompt), decoding until `</function>`; greedy, or sampled
    at `temperature` (RL episodes). Each reply's prompt and generated ids are kept in `turns`."""

    kind = "local"

    def __init__(self, name: str, model, tokenizer, max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int | None = None):
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.max_new_tokens = min(max_new_tokens, model.config.max_seq_len // 2)
        self.temperature, self.seed = temperature, seed
        self.language = "python"
        self.last_tokens = 0
        self.turns: list[tuple[list[int], list[int]]] = []  # this episode's (prompt ids, generated ids) per reply

    def reset(self, task) -> None:
        from model.vocab import LANGUAGES

        self.language = task.language if task.language in LANGUAGES else "none"
        self.turns = []

    def condition(self) -> tuple[int, int]:
        """The (language id, task id) every reply of this episode is decoded with."""
        from model.vocab import language_id, task_id

        return language_id(self.language), task_id("agent_step")

    def act(self, messages: list[dict]) -> str:
        from datagen.swe.examples import agent_prompt
        from model.generate import cut_at_stop, encode_prompt, generate_ids
        from model.vocab import language_id, task_id

        budget = self.model.config.max_seq_len - self.max_new_tokens
        ids = encode_prompt(self.tokenizer, agent_prompt(messages))
        ids = ids[-budget:]  # too long: keep the end (the latest observation and the answer marker)
        seed = None if self.seed is None else self.seed + len(self.turns)  # a new draw each reply
        new = generate_ids(self.model, [ids], language_id(self.language), task_id("agent_step"),
                           max_new_tokens=self.max_new_tokens, eos_id=getattr(self.tokenizer, "eos_id", None),
                           temperature=self.temperature, seed=seed,
                           stop_when=lambda row: cut_at_stop(self.tokenizer.decode(row[-64:]), (STOP,))[1])[0]
        self.turns.append((ids, new))
        self.last_tokens = len(new)
        text, stopped = cut_at_stop(self.tokenizer.decode(new), (STOP,))
        return text + STOP if stopped else text


class OpenAIPolicy:
    """An OpenAI-compatible chat endpoint, temperature 0, stopping at `</function>`; `hrm serve` gets the local
    policy's prompt through its completions API, so a served checkpoint acts as the local one does."""

    kind = "openai"

    def __init__(self, spec, max_new_tokens: int = 512, api_key: str = "", timeout_s: float = 300.0):
        from inference.remote import connect

        self.name, self.spec, self.max_new_tokens = spec.text, spec, max_new_tokens
        self.last_tokens = 0
        self.language = "none"
        # `hrm serve` (ours) takes our extensions: the agent_step task embedding, and a prompt longer than the
        # context keeps its tail (the latest observation) instead of being refused
        self._client, self.ours = connect(spec, api_key, timeout_s)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIPolicy({self.name!r})"

    def reset(self, task) -> None:
        from model.vocab import LANGUAGES

        self.language = task.language if task.language in LANGUAGES else "none"

    def act(self, messages: list[dict]) -> str:
        if self.ours:  # our model served: the prompt its agent_step examples have, as the local policy sends it
            from datagen.swe.examples import agent_prompt

            r = self._client.completions.create(
                model=self.spec.model, prompt=agent_prompt(messages), temperature=0, max_tokens=self.max_new_tokens,
                stop=[STOP], extra_body={"task": "agent_step", "language": self.language, "truncate": "left"})
            choice = r.choices[0]
            text = choice.text or ""
        else:
            r = self._client.chat.completions.create(model=self.spec.model, messages=messages, temperature=0,
                                                     max_tokens=self.max_new_tokens, stop=[STOP])
            choice = r.choices[0]
            text = choice.message.content or ""
        self.last_tokens = r.usage.completion_tokens if r.usage is not None else len(text) // 4
        if choice.finish_reason == "stop" and "<function=" in text and not text.rstrip().endswith(STOP):
            text += STOP  # the endpoint cut the stop string off
        return text
