"""Decoding LiveCodeBench test blobs is bounded: a record of about 2 KB cannot make the loader allocate
more than a fixed amount, whichever constructor the restricted unpickler is asked to amplify with.

Each attack is a hand-written pickle stream inside a real record (base64 of zlib, as LiveCodeBench
stores them); peak allocation during decoding is measured with tracemalloc.
"""

import base64
import json
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest

from evals.lcb.records import RejectedRecord, normalise_record
from evals.lcb.safe_pickle import TestCaseDecodeError, UnsafePickleError, decode_test_cases, loads_plain_data
from evals.lcb.source import load_records

FIXTURES = Path(__file__).parents[2] / "fixtures" / "lcb"
PEAK_LIMIT = 16 << 20  # what decoding one small record may allocate, at most
RECORD_LIMIT = 2048  # characters of the crafted test field

PROTO2, STOP, MARK, POP = b"\x80\x02", b".", b"(", b"0"
TUPLE, TUPLE1, TUPLE2, REDUCE, EMPTY_LIST, APPEND = b"t", b"\x85", b"\x86", b"R", b"]", b"a"


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def put(i: int) -> bytes:
    return b"q" + bytes([i])


def get(i: int) -> bytes:
    return b"h" + bytes([i])


def binint(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def field(blob: bytes) -> str:
    return base64.b64encode(zlib.compress(blob, 9)).decode()


def peak_of(fn) -> tuple[int, Exception | None]:
    tracemalloc.start()
    try:
        fn()
        error = None
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


# --- the amplifying forms ------------------------------------------------------------------------
def nested_hex(levels: int = 25) -> bytes:
    """_codecs.encode(_codecs.encode(...(encode('ab', 'latin1'), 'hex')..., 'hex'): doubles per level."""
    head = PROTO2 + glob("_codecs", "encode") + put(0) + text("hex") + put(1) + POP
    base = get(0) + text("ab") + text("latin1") + TUPLE2 + REDUCE
    return head + get(0) * levels + base + (get(1) + TUPLE2 + REDUCE) * levels + STOP


def repeated_encode(size: int = 1 << 20, times: int = 64) -> bytes:
    """One memoised str encoded again and again: each call copies it (a tuple keeps them all)."""
    head = PROTO2 + glob("_codecs", "encode") + put(0) + text("a" * size) + put(1) + POP + text("latin1") + put(2) + POP
    return head + MARK + (get(0) + get(1) + get(2) + TUPLE2 + REDUCE) * times + TUPLE + STOP


def other_codec(codec: str, payload: str) -> bytes:
    return PROTO2 + glob("_codecs", "encode") + text(payload) + text(codec) + TUPLE2 + REDUCE + STOP


def bytearray_of_int(n: int = 64 << 20) -> bytes:
    return PROTO2 + glob("builtins", "bytearray") + binint(n) + TUPLE1 + REDUCE + STOP


def repeated_bytearray(size: int = 1 << 20, times: int = 64) -> bytes:
    head = PROTO2 + glob("builtins", "bytearray") + put(0) + POP + b"B" + struct.pack("<I", size) + b"\0" * size \
        + put(1) + POP
    return head + EMPTY_LIST + (get(0) + get(1) + TUPLE1 + REDUCE + APPEND) * times + STOP


def repeated_set(items: int = 500, times: int = 4000, kind: str = "set") -> bytes:
    """A list of `items` distinct ints, turned into a new set `times` times (each set a fresh table)."""
    numbers = b"".join(binint(i) for i in range(items))
    head = PROTO2 + glob("builtins", kind) + put(0) + POP + EMPTY_LIST + put(1) + MARK + numbers + b"e" + POP
    return head + EMPTY_LIST + (get(0) + get(1) + TUPLE1 + REDUCE + APPEND) * times + STOP


def huge_memo_index(index: int = 1 << 23) -> bytes:
    return PROTO2 + text("[]") + b"r" + struct.pack("<I", index) + STOP


ATTACKS = {
    "nested _codecs.encode hex": nested_hex,
    "repeated _codecs.encode of a memoised str": repeated_encode,
    "bytearray(int)": bytearray_of_int,
    "repeated bytearray of memoised bytes": repeated_bytearray,
    "repeated set of a memoised list": repeated_set,
    "repeated frozenset of a memoised list": lambda: repeated_set(kind="frozenset"),
    "memo index far ahead of the stream": huge_memo_index,
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_small_record_cannot_allocate_more_than_a_fixed_bound(name):
    blob = ATTACKS[name]()
    encoded = field(blob)
    assert len(encoded) <= RECORD_LIMIT, f"{name}: the crafted field is {len(encoded)} characters"
    peak, error = peak_of(lambda: decode_test_cases(encoded))
    assert isinstance(error, (UnsafePickleError, TestCaseDecodeError)), f"{name}: decoded ({error!r})"
    assert peak < PEAK_LIMIT, f"{name}: decoding peaked at {peak >> 20} MiB"


@pytest.mark.parametrize("name", list(ATTACKS))
def test_the_general_unpickler_refuses_each_amplifying_form_as_unsafe(name):
    blob = ATTACKS[name]()
    peak, error = peak_of(lambda: loads_plain_data(blob))
    assert isinstance(error, UnsafePickleError), f"{name}: {error!r}"
    assert "refused" in str(error)
    assert peak < PEAK_LIMIT + 4 * len(blob), f"{name}: peaked at {peak >> 20} MiB"


@pytest.mark.parametrize("codec", ["hex", "base64", "utf-32", "unicode_escape", "zlib", "rot13", "latin-1"])
def test_encode_is_accepted_only_as_pickle_writes_it(codec):
    with pytest.raises(UnsafePickleError, match="_codecs.encode"):
        loads_plain_data(other_codec(codec, "\U0001f600" if codec == "unicode_escape" else "ab"))
    assert loads_plain_data(other_codec("latin1", "abé")) == "abé".encode("latin1")


def test_a_bad_record_is_quarantined_with_file_row_and_reason(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "code_generation_pickled.jsonl").read_text().splitlines()]
    rows[1]["private_test_cases"] = field(nested_hex())
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_records([path])
    assert [p.question_id for p in result.problems] == [rows[0]["question_id"], rows[2]["question_id"]]
    (bad,) = result.rejected
    assert bad["file"] == str(path) and bad["row"] == 2 and bad["question_id"] == rows[1]["question_id"]
    assert bad["unsafe"] and "private_test_cases" in bad["reason"] and "_codecs.encode" in bad["reason"]
    with pytest.raises(RejectedRecord):
        normalise_record(rows[1])


def test_real_encodings_of_every_protocol_still_decode():
    tests = [{"input": "3\n1 2 3\n" * 50, "output": "6\n", "testtype": "stdin"},
             {"input": "é ü 漢字 \U0001f600", "output": "[1, 2]", "testtype": "functional"}]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert decode_test_cases(field(pickle.dumps(json.dumps(tests), protocol=protocol))) == tests
        as_bytes = json.dumps(tests).encode()
        assert decode_test_cases(field(pickle.dumps(as_bytes, protocol=protocol))) == tests
    with pytest.raises(TestCaseDecodeError, match="expected JSON text"):
        decode_test_cases(field(pickle.dumps([json.dumps(tests)], protocol=2)))
