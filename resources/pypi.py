"""PyPI source distributions: downloaded once into a cache (atomically), unpacked without escaping.

`pip download --no-deps --no-binary :all:` goes through the machine's pip configuration (index,
mirrors, certificates), so whatever PyPI access pip has, this has. A local .tar.gz/.zip path is
accepted in place of a project name, for machines without PyPI.
"""

from __future__ import annotations

import email.parser
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from resources.fetchers import FetchError

SDIST_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar.bz2")


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    archive: Path
    sha256: str


def fetch_sdist(name: str, version: str, cache_dir: str | Path, timeout_s: float = 300) -> Sdist:
    """The sdist of `name==version` from PyPI (or `name` as a local archive path), cached in cache_dir."""
    cache = Path(cache_dir)
    local = Path(name)
    if local.suffix in (".gz", ".tgz", ".zip", ".bz2") and local.is_file():
        return Sdist(local.name, version, local, _sha256(local))
    target_dir = cache / f"{_normalise(name)}-{version}"
    done = [p for p in target_dir.glob("*") if p.name.endswith(SDIST_SUFFIXES)] if target_dir.is_dir() else []
    if done:
        return Sdist(name, version, done[0], _sha256(done[0]))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}-", dir=cache))
    try:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(tmp / "dl"), f"{name}=={version}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        files = [p for p in (tmp / "dl").glob("*") if p.name.endswith(SDIST_SUFFIXES)]
        if proc.returncode != 0 or not files:
            raise FetchError(f"pip download of the {name}=={version} sdist failed "
                             f"(is PyPI reachable? pass a local sdist path instead): {proc.stderr.strip()[-1500:]}")
        os.replace(tmp / "dl", target_dir)  # atomic: a half-finished download never looks cached
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive = next(p for p in target_dir.glob("*") if p.name.endswith(SDIST_SUFFIXES))
    return Sdist(name, version, archive, _sha256(archive))


def unpack_sdist(archive: str | Path, dest: str | Path) -> Path:
    """Extract into dest (which must not exist) and return the project root (the single top dir)."""
    archive, dest = Path(archive), Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    _check_member(archive, member)
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # refuses links/paths that leave tmp
        entries = [p for p in tmp.iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        os.replace(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def sdist_metadata(root: str | Path) -> dict:
    """Name, version and Requires-Dist lines from the sdist's PKG-INFO (empty when absent)."""
    pkg_info = Path(root) / "PKG-INFO"
    if not pkg_info.exists():
        return {"name": None, "version": None, "requires_dist": []}
    msg = email.parser.Parser().parsestr(pkg_info.read_text(encoding="utf-8", errors="replace"))
    return {"name": msg.get("Name"), "version": msg.get("Version"),
            "requires_dist": [r.strip() for r in msg.get_all("Requires-Dist") or []]}


def _check_member(archive: Path, member: str) -> None:
    if member.startswith("/") or ".." in Path(member).parts:
        raise FetchError(f"{archive}: member {member!r} would be written outside the extraction dir")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
