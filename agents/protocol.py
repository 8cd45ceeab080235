"""Agent-to-agent messages: a typed protocol over a pluggable transport, every message recorded.

Five kinds, each with the payload keys it must carry:
  task          the orchestrator hands a sub-task to an agent (role, attempt, description)
  result        an agent's outcome (status, patch, usage)
  request_help  an agent gives a sub-task back and asks for another role (reason)
  cancel        the orchestrator stops an attempt (reason)
  heartbeat     an agent is alive and making progress (attempt)
`Bus` validates and records; a `Transport` only moves messages. `InProcessTransport` (queues) serves one
process; `DirectoryTransport` (one JSON file per message, renamed into place) lets agents in other
processes or Dagster runs that share a filesystem talk to the same orchestrator.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

REQUIRED = {"task": ("role", "attempt", "description"), "result": ("status", "patch", "usage"),
            "request_help": ("reason",), "cancel": ("reason",), "heartbeat": ("attempt",)}
KINDS = tuple(REQUIRED)


@dataclass(frozen=True)
class Message:
    kind: str
    sender: str
    recipient: str
    subtask_id: str
    payload: dict = field(default_factory=dict)
    seq: int = 0
    sent_at: float = 0.0  # time.time(), comparable across processes

    def __post_init__(self):
        if self.kind not in REQUIRED:
            raise ValueError(f"message kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        missing = [k for k in REQUIRED[self.kind] if k not in self.payload]
        if missing:
            raise ValueError(f"{self.kind} message for {self.subtask_id!r} lacks {missing}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        return cls(**{k: d[k] for k in ("kind", "sender", "recipient", "subtask_id", "payload", "seq", "sent_at")})


class Transport(Protocol):
    def put(self, message: Message) -> None: ...
    def get(self, recipient: str, timeout_s: float) -> Message | None: ...


class InProcessTransport:
    def __init__(self):
        self._queues: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()

    def _queue(self, recipient: str) -> queue.Queue:
        with self._lock:
            return self._queues.setdefault(recipient, queue.Queue())

    def put(self, message: Message) -> None:
        self._queue(message.recipient).put(message)

    def get(self, recipient: str, timeout_s: float) -> Message | None:
        try:
            return self._queue(recipient).get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None


class DirectoryTransport:
    """Messages as files `<root>/<recipient>/<seq>-<pid>-<n>.json`, read in order and removed."""

    def __init__(self, root: str | Path, poll_s: float = 0.02):
        self.root, self.poll_s = Path(root), poll_s
        self._n = itertools.count()

    def put(self, message: Message) -> None:
        box = self.root / message.recipient
        box.mkdir(parents=True, exist_ok=True)
        name = f"{message.seq:012d}-{os.getpid()}-{next(self._n)}.json"
        tmp = box / f".{name}"
        tmp.write_text(json.dumps(message.to_dict()))
        os.replace(tmp, box / name)  # readers never see half a message

    def get(self, recipient: str, timeout_s: float) -> Message | None:
        box = self.root / recipient
        deadline = time.monotonic() + timeout_s
        while True:
            for path in sorted(box.glob("[0-9]*.json")) if box.is_dir() else []:
                try:
                    text = path.read_text()
                    path.unlink()
                except FileNotFoundError:  # another reader took it
                    continue
                return Message.from_dict(json.loads(text))
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll_s)


class Bus:
    """Sends typed messages over a transport and keeps every one sent, in order."""

    def __init__(self, transport: Transport | None = None):
        self.transport = transport or InProcessTransport()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.log: list[Message] = []
        self.busy_s = 0.0  # time spent sending and taking messages (not blocked waiting for one)

    def send(self, kind: str, sender: str, recipient: str, subtask_id: str, **payload) -> Message:
        t0 = time.perf_counter()
        with self._lock:
            msg = Message(kind, sender, recipient, subtask_id, payload, next(self._seq), time.time())
            self.log.append(msg)
        self.transport.put(msg)
        self._spent(time.perf_counter() - t0)
        return msg

    def receive(self, recipient: str, timeout_s: float) -> Message | None:
        return self.transport.get(recipient, timeout_s)

    def _spent(self, seconds: float) -> None:
        with self._lock:
            self.busy_s += seconds

    def records(self, run_id: str) -> list[dict]:
        with self._lock:
            return [{"run_id": run_id, **m.to_dict(), "payload": json.dumps(m.payload)} for m in self.log]
