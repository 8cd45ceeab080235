"""Decode LiveCodeBench's private tests without running anything from the download.

`code_generation_lite` stores `private_test_cases` as plain JSON or as base64 -> zlib -> pickle of a
JSON string. lcb_runner calls `pickle.loads` on it, which executes whatever the pickle names. Here
the pickle opcodes are checked against an allow-list of plain-data opcodes first, and the
unpickler refuses every global lookup, so a pickle can only ever build str, bytes, numbers,
booleans, None, lists, tuples, dicts and sets.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import io
import json
import pickle
import pickletools
import zlib

# Everything a pickle of plain data needs; no BUILD/INST/OBJ/NEWOBJ/EXT/PERSID, and GLOBAL/STACK_GLOBAL
# (hence REDUCE) only for the data constructors below.
_PLAIN_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
    "GET", "BINGET", "LONG_BINGET", "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2",
    "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "BYTEARRAY8", "EMPTY_LIST", "APPEND", "APPENDS", "LIST", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2",
    "TUPLE3", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "EMPTY_SET", "ADDITEMS", "FROZENSET",
})
# Older protocols build bytes and sets by calling these; they construct data and nothing else.
_DATA_CONSTRUCTORS = {
    ("_codecs", "encode"): codecs.encode,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset, ("__builtin__", "bytearray"): bytearray,
}
MAX_DECODED_BYTES = 2 << 30  # a zlib bomb stops here; the largest real test blobs are far smaller


class UnsafePickleError(ValueError):
    """The payload asks for something other than plain data; nothing from it was executed."""


class TestCaseDecodeError(ValueError):
    """The test-case field is neither JSON nor a decodable base64/zlib/pickle blob."""

    __test__ = False  # a name pytest would otherwise try to collect


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _DATA_CONSTRUCTORS[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"pickle refers to {module}.{name}; only plain data is accepted") from None

    def persistent_load(self, pid):
        raise UnsafePickleError("pickle uses persistent ids; only plain data is accepted")


def loads_plain_data(blob: bytes):
    """Unpickle `blob` if it holds plain data only; raises UnsafePickleError otherwise."""
    strings: list[str] = []  # the operands of a STACK_GLOBAL, for the error message
    try:
        for opcode, arg, _pos in pickletools.genops(blob):
            name = opcode.name
            target = None
            if name in ("GLOBAL", "INST") and arg:
                target = tuple(arg.split(" ", 1))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                target = (strings[-2], strings[-1])
            allowed = (name in _PLAIN_OPCODES or name == "REDUCE"
                       or (name in ("GLOBAL", "STACK_GLOBAL") and target in _DATA_CONSTRUCTORS))
            if not allowed:
                what = f" ({'.'.join(target)})" if target else ""
                raise UnsafePickleError(f"pickle opcode {name}{what} is not plain data; refused")
            if isinstance(arg, str):
                strings.append(arg)
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated or garbage stream
        raise TestCaseDecodeError(f"not a valid pickle stream: {exc}") from None
    try:
        return _PlainDataUnpickler(io.BytesIO(blob)).load()
    except UnsafePickleError:
        raise
    except Exception as exc:
        raise TestCaseDecodeError(f"pickle does not load: {exc}") from None


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise TestCaseDecodeError(f"decompressed tests exceed {limit} bytes")
    return out + inflater.flush()


def decode_test_cases(field: str, limit: int = MAX_DECODED_BYTES) -> list:
    """The list of test dicts in a `public_test_cases` / `private_test_cases` field (either encoding)."""
    if not isinstance(field, str):
        raise TestCaseDecodeError(f"test field is {type(field).__name__}, expected a string")
    try:
        value = json.loads(field)
    except ValueError:
        value = None
    else:
        if isinstance(value, list):
            return value
        raise TestCaseDecodeError(f"test JSON is a {type(value).__name__}, expected a list")
    try:
        packed = base64.b64decode(field.encode("utf-8"), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise TestCaseDecodeError(f"neither JSON nor base64: {exc}") from None
    try:
        raw = _inflate(packed, limit)
    except zlib.error as exc:
        raise TestCaseDecodeError(f"neither JSON nor base64+zlib: {exc}") from None
    text = loads_plain_data(raw)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        raise TestCaseDecodeError(f"pickled tests are a {type(text).__name__}, expected JSON text")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TestCaseDecodeError(f"pickled tests are not JSON: {exc}") from None
    if not isinstance(value, list):
        raise TestCaseDecodeError(f"pickled test JSON is a {type(value).__name__}, expected a list")
    return value


def encode_test_cases(tests: list) -> str:
    """The base64/zlib/pickle encoding LiveCodeBench uses (for fixtures and round-trip tests)."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode("ascii")
