"""Agent-to-agent messages: a typed protocol over a pluggable transport, every message recorded.

Five kinds, each with the payload keys it must carry:
  task          the orchestrator hands a sub-task to an agent (role, attempt, description)
  result        an agent's outcome (status, patch, usage)
  request_help  an agent gives a sub-task back and asks for another role (reason)
  cancel        the orchestrator stops an attempt (reason)
  heartbeat     an agent is alive and making progress (attempt)
`Bus` validates and records; a `Transport` only moves messages. `InProcessTransport` (queues) serves one
process; `DirectoryTransport` (one JSON file per message, renamed into place) lets agents in other
processes or Dagster runs that share a filesystem talk to the same orchestrator. A file there that is not a
valid message (bad JSON, a missing or mistyped field, an unknown kind, too large) is removed and recorded in
`rejected` with the reason; it never reaches the reader. Whether a valid message may be believed (its sender
was given that sub-task, it carries the attempt's token) is the orchestrator's check.
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
from urllib.parse import quote

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
        for name, types in (("kind", str), ("sender", str), ("recipient", str), ("subtask_id", str),
                            ("payload", dict), ("seq", int), ("sent_at", (int, float))):
            if not isinstance(getattr(self, name), types) or isinstance(getattr(self, name), bool):
                raise ValueError(f"message field {name!r} has type {type(getattr(self, name)).__name__}")
        if self.kind not in REQUIRED:
            raise ValueError(f"message kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        missing = [k for k in REQUIRED[self.kind] if k not in self.payload]
        if missing:
            raise ValueError(f"{self.kind} message for {self.subtask_id!r} lacks {missing}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Message":
        fields = ("kind", "sender", "recipient", "subtask_id", "payload", "seq", "sent_at")
        if not isinstance(d, dict) or set(d) != set(fields):
            raise ValueError(f"a message has exactly the fields {', '.join(fields)}")
        return cls(**{k: d[k] for k in fields})


def _plain(value):
    """JSON for what task rows may hold besides plain types (numpy arrays from parquet)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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

    MAX_BYTES = 16 * 2**20

    def __init__(self, root: str | Path, poll_s: float = 0.02):
        self.root, self.poll_s = Path(root), poll_s
        self._n = itertools.count()
        self._lock = threading.Lock()
        self.rejected: list[dict] = []  # files that were not messages: {file, recipient, reason}

    def _box(self, recipient: str) -> Path:
        return self.root / quote(recipient, safe="")  # any name is one directory, never a path

    def put(self, message: Message) -> None:
        box = self._box(message.recipient)
        box.mkdir(parents=True, exist_ok=True)
        name = f"{message.seq:012d}-{os.getpid()}-{next(self._n)}.json"
        tmp = box / f".{name}"
        tmp.write_text(json.dumps(message.to_dict(), default=_plain))
        os.replace(tmp, box / name)  # readers never see half a message

    def get(self, recipient: str, timeout_s: float) -> Message | None:
        box = self._box(recipient)
        deadline = time.monotonic() + timeout_s
        while True:
            for path in sorted(box.glob("[0-9]*.json")) if box.is_dir() else []:
                try:
                    too_big = path.stat().st_size > self.MAX_BYTES
                    text = "" if too_big else path.read_text(errors="replace")
                    path.unlink()
                except FileNotFoundError:  # another reader took it
                    continue
                try:
                    if too_big:
                        raise ValueError(f"larger than {self.MAX_BYTES} bytes")
                    message = Message.from_dict(json.loads(text))
                    if message.recipient != recipient:
                        raise ValueError(f"addressed to {message.recipient!r}, found in {recipient!r}'s box")
                    return message
                except (ValueError, TypeError, RecursionError) as exc:  # not a message: recorded, never read
                    with self._lock:
                        self.rejected.append({"file": path.name, "recipient": recipient,
                                              "reason": f"malformed: {str(exc)[:200]}", "at": time.time()})
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll_s)


class Bus:
    """Sends typed messages over a transport and keeps every one sent, in order."""

    def __init__(self, transport: Transport | None = None):
        self.transport = transport or InProcessTransport()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.log: list[Message] = []  # sent here, or received from another process
        self.rejected: list[dict] = []  # what was refused on the way in, with the reason
        self._sent: set[tuple] = set()
        self.busy_s = 0.0  # time spent sending and taking messages (not blocked waiting for one)

    def send(self, kind: str, sender: str, recipient: str, subtask_id: str, **payload) -> Message:
        t0 = time.perf_counter()
        with self._lock:
            msg = Message(kind, sender, recipient, subtask_id, payload, next(self._seq), time.time())
            self.log.append(msg)
            self._sent.add((msg.sender, msg.seq, msg.sent_at))
        self.transport.put(msg)
        self._spent(time.perf_counter() - t0)
        return msg

    def receive(self, recipient: str, timeout_s: float) -> Message | None:
        msg = self.transport.get(recipient, timeout_s)
        bad = getattr(self.transport, "rejected", None)
        with self._lock:
            while bad:
                self.rejected.append(bad.pop(0))
            if msg is not None and (msg.sender, msg.seq, msg.sent_at) not in self._sent:
                self.log.append(msg)  # from another process: recorded where it arrives
        return msg

    def reject(self, msg: Message, reason: str) -> None:
        with self._lock:
            self.rejected.append({"kind": msg.kind, "sender": msg.sender, "subtask_id": msg.subtask_id,
                                  "seq": msg.seq, "reason": reason, "at": time.time()})

    def _spent(self, seconds: float) -> None:
        with self._lock:
            self.busy_s += seconds

    def records(self, run_id: str) -> list[dict]:
        with self._lock:
            return [{"run_id": run_id, **m.to_dict(),  # an attempt's token is a credential: not kept
                     "payload": json.dumps({k: v for k, v in m.payload.items() if k != "token"}, default=_plain)}
                    for m in self.log]
