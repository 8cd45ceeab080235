"""Decode LiveCodeBench's private tests without running anything from the download.

`code_generation_lite` stores `private_test_cases` as plain JSON or as base64 -> zlib -> pickle of a
JSON string. lcb_runner calls `pickle.loads` on it, which executes whatever the pickle names. Here
the pickle opcodes are checked against an allow-list of plain-data opcodes first, and the
unpickler refuses every global lookup, so a pickle can only ever build str, bytes, numbers,
booleans, None, lists, tuples, dicts and sets.

Decoding is also bounded: the few constructors old protocols call (`_codecs.encode`, `bytearray`,
`bytes`, `set`, `frozenset`) are accepted only in the exact forms pickle writes for plain data, and
together may build at most twice as many items as the pickle has bytes (nested or repeated calls
would otherwise double memory every few bytes); memo indices may not run ahead of the stream (the
C unpickler sizes its memo table by the largest index). The test fields go through the stricter
`text_only` mode: the pickle must hold one str or bytes and nothing else, as LiveCodeBench's do, so
memory stays within a small multiple of the inflated size.
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
# A pickle of one str or bytes (every protocol) needs no more than these.
_TEXT_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "EMPTY_TUPLE", "TUPLE", "TUPLE2", "REDUCE", "GLOBAL", "STACK_GLOBAL",
})
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
# Older protocols build bytes and sets by calling these (checked forms: see _PlainDataUnpickler).
_DATA_CONSTRUCTORS = {
    ("_codecs", "encode"): "encode",
    ("builtins", "bytes"): "bytes", ("builtins", "bytearray"): "bytearray",
    ("builtins", "set"): "set", ("builtins", "frozenset"): "frozenset",
    ("__builtin__", "bytes"): "bytes", ("__builtin__", "bytearray"): "bytearray",
    ("__builtin__", "set"): "set", ("__builtin__", "frozenset"): "frozenset",
}
_TEXT_CONSTRUCTORS = {k for k, v in _DATA_CONSTRUCTORS.items() if v in ("encode", "bytes")}
MAX_DECODED_BYTES = 2 << 30  # a zlib bomb stops here; the largest real test blobs are far smaller


class UnsafePickleError(ValueError):
    """The payload asks for something other than plain data; nothing from it was executed."""


class TestCaseDecodeError(ValueError):
    """The test-case field is neither JSON nor a decodable base64/zlib/pickle blob."""

    __test__ = False  # a name pytest would otherwise try to collect


class _PlainDataUnpickler(pickle.Unpickler):
    """Calls a data constructor only in the forms pickle itself writes, and charges what each builds
    (characters, bytes or items) to `budget`, so a few bytes of stream cannot build gigabytes."""

    def __init__(self, file, budget: int):
        super().__init__(file)
        self.budget = budget

    def find_class(self, module: str, name: str):
        kind = _DATA_CONSTRUCTORS.get((module, name))
        if kind is None:
            raise UnsafePickleError(f"pickle refers to {module}.{name}; only plain data is accepted")
        return getattr(self, f"_new_{kind}")

    def persistent_load(self, pid):
        raise UnsafePickleError("pickle uses persistent ids; only plain data is accepted")

    def _charge(self, n: int, what: str) -> None:
        self.budget -= n
        if self.budget < 0:
            raise UnsafePickleError(f"pickle builds more data through {what} than its own size allows "
                                    "(an amplifying construction); refused")

    @staticmethod
    def _refuse(form: str, args: tuple):
        shown = ", ".join(type(a).__name__ for a in args)
        raise UnsafePickleError(f"pickle calls {form} with ({shown}); only the exact form pickle writes for plain "
                                "data is accepted; refused")

    def _new_encode(self, *args):
        if len(args) != 2 or type(args[0]) is not str or type(args[1]) is not str or args[1] != "latin1":
            self._refuse("_codecs.encode", args)  # the form is encode(text, 'latin1')
        self._charge(len(args[0]), "_codecs.encode")
        return codecs.encode(args[0], "latin1")

    def _new_bytes(self, *args):
        if args:
            self._refuse("bytes", args)  # only b'' is pickled as a call
        return b""

    def _new_bytearray(self, *args):
        if args and (len(args) != 1 or type(args[0]) is not bytes):
            self._refuse("bytearray", args)
        self._charge(len(args[0]) if args else 0, "bytearray")
        return bytearray(*args)

    def _new_set(self, *args):
        return set(self._items(args, "set"))

    def _new_frozenset(self, *args):
        return frozenset(self._items(args, "frozenset"))

    def _items(self, args: tuple, form: str) -> list:
        if args and (len(args) != 1 or type(args[0]) is not list):
            self._refuse(form, args)
        items = args[0] if args else []
        self._charge(len(items), form)
        return items


def loads_plain_data(blob: bytes, text_only: bool = False):
    """Unpickle `blob` if it holds plain data only; raises UnsafePickleError otherwise.

    With `text_only`, the pickle must hold a single str or bytes (anything else is a TestCaseDecodeError)."""
    strings: list[str] = []  # the operands of a STACK_GLOBAL, for the error message
    try:
        for n_ops, (opcode, arg, _pos) in enumerate(pickletools.genops(blob)):
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
            if text_only and (name not in _TEXT_OPCODES or (target and target not in _TEXT_CONSTRUCTORS)):
                what = f" ({'.'.join(target)})" if target else ""
                raise TestCaseDecodeError(f"the pickle holds more than one str (opcode {name}{what}), "
                                          "expected JSON text")
            if name in _MEMO_PUTS and arg > n_ops:
                raise UnsafePickleError(f"pickle memo index {arg} runs ahead of the stream (opcode {n_ops}); "
                                        "the unpickler would size its memo by it; refused")
            if isinstance(arg, str):
                strings.append(arg)
    except (UnsafePickleError, TestCaseDecodeError):
        raise
    except Exception as exc:  # truncated or garbage stream
        raise TestCaseDecodeError(f"not a valid pickle stream: {exc}") from None
    try:
        return _PlainDataUnpickler(io.BytesIO(blob), budget=2 * len(blob) + 64).load()
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
    text = loads_plain_data(raw, text_only=True)
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
