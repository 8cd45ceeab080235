"""How to compile and run a single-file program of each language inside the sandbox."""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from resources.toolchains import LANGUAGES, toolchain

_SOURCE_NAMES = {"python": "main.py", "javascript": "main.js", "cpp": "main.cpp", "rust": "main.rs",
                 "go": "main.go", "java": "Main.java", "shell": "main.sh"}
# language -> (compile step or None, run command), each a shell script run in /work
_PHASES = {
    "python": (None, "python3 main.py"),
    "javascript": (None, "node main.js"),
    "cpp": ("g++ -O2 -std=c++17 -o /tmp/prog main.cpp", "exec /tmp/prog"),
    "rust": ("rustc -O --edition 2021 -o /tmp/prog main.rs", "exec /tmp/prog"),
    "go": ("go build -o /tmp/prog main.go", "exec /tmp/prog"),
    # single-file source launch compiles in memory: the public class may have any name, and its compile
    # counts as run time
    "java": (None, "exec java -XX:+UseSerialGC -Xshare:off Main.java"),
    "shell": (None, "bash main.sh"),
}
_RECIPES = {lang: run if build is None else f"{build} && {run}" for lang, (build, run) in _PHASES.items()}


def single_file_job(language: str, source: str) -> tuple[dict[str, str], list[str]]:
    """Files and command that compile (where needed) and run `source` as a `language` program."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    tc = toolchain(language)
    if not tc.available:
        raise RuntimeError(f"{language} toolchain unavailable: {tc.reason}")
    name = _SOURCE_NAMES[language]
    return {name: source}, ["sh", "-c", _RECIPES[language]]


def single_file_phases(language: str, source: str) -> tuple[dict[str, str], list[str] | None, list[str]]:
    """Files, compile step (None where the language has none) and run command of `source`, for a jail
    that limits the two apart (`SandboxJob.compile`)."""
    files, _ = single_file_job(language, source)
    build, run = _PHASES[language]
    return files, None if build is None else ["sh", "-c", build], ["sh", "-c", run]


def source_name(language: str) -> str:
    return str(PurePosixPath(_SOURCE_NAMES[language]))


def shell_quote(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
