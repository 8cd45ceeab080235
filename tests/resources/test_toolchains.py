"""resources/toolchains.py: each language's toolchain is found on the host, with a reason when it is not,
and the compilers it binds run inside the real jail."""

import os
import shutil
import sys
from pathlib import Path

import pytest

from resources import toolchains
from resources.toolchains import LANGUAGES, all_toolchains, missing_java_jars, toolchain

VERSION_COMMANDS = {"python": "python3 --version", "javascript": "node --version", "cpp": "g++ --version",
                    "rust": "rustc --version && cargo --version", "go": "go version", "java": "javac -version",
                    "shell": "bash --version"}


def detected_with_path(monkeypatch, path: str, language: str):
    """What `toolchain(language)` finds when the host PATH is `path` (the cache is emptied before and after)."""
    toolchain.cache_clear()
    try:
        with monkeypatch.context() as m:
            m.setenv("PATH", path)
            return toolchain(language)
    finally:
        toolchain.cache_clear()


def test_every_language_has_a_toolchain_or_a_reason():
    found = all_toolchains()
    assert [tc.language for tc in found] == list(LANGUAGES)
    for tc in found:
        assert tc.available or tc.reason, tc
        for host, jail in tc.binds:
            assert Path(host).exists() and jail.startswith("/"), (tc.language, host, jail)
    assert toolchain("python").available and toolchain("shell").available


def test_an_unknown_language_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown language 'cobol'; expected one of python, javascript"):
        toolchain("cobol")


def test_python_binds_the_base_installation_and_the_venv_at_opt_venv():
    tc = toolchain("python")
    assert (sys.base_prefix, sys.base_prefix) in tc.binds
    if sys.prefix != sys.base_prefix:
        assert (sys.prefix, "/opt/venv") in tc.binds and tc.path == ("/opt/venv/bin",)
    assert tc.env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_rust_and_go_are_offline_and_bound_from_their_roots():
    rust, go = toolchain("rust"), toolchain("go")
    if not (rust.available and go.available):
        pytest.skip(f"rust: {rust.reason or 'ok'}; go: {go.reason or 'ok'}")
    sysroot = dict((jail, host) for host, jail in rust.binds)["/opt/rust"]
    assert (Path(sysroot) / "bin" / "cargo").exists() and rust.env["CARGO_NET_OFFLINE"] == "true"
    goroot = dict((jail, host) for host, jail in go.binds)["/opt/go"]
    assert (Path(goroot) / "bin" / "go").exists()
    assert go.env["GOPROXY"] == "off" and go.env["GOTOOLCHAIN"] == "local" and go.env["GOROOT"] == "/opt/go"


@pytest.mark.parametrize("language, reason", [("rust", "rustc not found on PATH"), ("java", "javac not found"),
                                              ("javascript", "node not found"), ("cpp", "missing g++, cmake, make"),
                                              ("shell", "bash missing")])
def test_a_host_without_the_tools_reports_what_is_missing(monkeypatch, tmp_path, language, reason):
    tc = detected_with_path(monkeypatch, str(tmp_path), language)
    assert not tc.available and reason in tc.reason and tc.binds == ()


def test_a_rustc_without_cargo_or_that_fails_is_not_used(monkeypatch, tmp_path):
    sysroot = tmp_path / "sysroot"
    (sysroot / "bin").mkdir(parents=True)
    rustc = tmp_path / "bin" / "rustc"
    rustc.parent.mkdir()
    rustc.write_text(f"#!/bin/sh\necho {sysroot}\n")
    rustc.chmod(0o755)
    tc = detected_with_path(monkeypatch, str(rustc.parent), "rust")
    assert not tc.available and tc.reason == f"no cargo in the Rust sysroot {sysroot}"
    rustc.write_text("#!/bin/sh\nexit 3\n")
    tc = detected_with_path(monkeypatch, str(rustc.parent), "rust")
    assert not tc.available and "rustc --print sysroot failed" in tc.reason


def test_missing_java_jars_are_the_ones_not_on_disk():
    assert missing_java_jars() == [j for j in toolchains.JAVA_JARS if not os.path.exists(j)]


@pytest.mark.slow
@pytest.mark.parametrize("language", LANGUAGES)
def test_each_toolchain_runs_inside_the_jail(sandbox, language):
    tc = toolchain(language)
    if not tc.available:
        pytest.skip(tc.reason)
    if language == "java" and not shutil.which("java"):
        pytest.skip("no java runtime")
    result = sandbox.run(["sh", "-c", VERSION_COMMANDS[language] + " 2>&1"])
    assert result.status == "ok" and result.stdout.strip(), (result.status, result.stdout, result.stderr)
