"""PyPI source distributions: located on pip's indexes, downloaded (never built), cached atomically,
unpacked without escaping.

The sdist is found on the simple index pages (PEP 503) and find-links locations pip is configured
with (`pip config list`, which includes the PIP_* environment variables), so whatever PyPI access or
mirror pip has, this has. It is downloaded with urllib and checked against the sha256 the index
gives. `pip download` is not used: to learn an sdist's metadata it runs the sdist's build backend,
i.e. code from the download, on the host. A local .tar.gz/.zip path is accepted in place of a
project name, for machines without an index.
"""

from __future__ import annotations

import ast
import email.parser
import hashlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from resources.fetchers import FetchError

SDIST_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar.bz2")
DEFAULT_INDEX = "https://pypi.org/simple/"
MAX_SDIST_BYTES = 512 << 20  # a download larger than this is refused
MAX_UNPACKED_BYTES = 2 << 30  # sum of member sizes of an archive we unpack
MAX_MEMBERS = 100_000
MAX_METADATA_BYTES = 4 << 20


@dataclass(frozen=True)
class Sdist:
    name: str
    version: str
    archive: Path
    sha256: str


def fetch_sdist(name: str, version: str, cache_dir: str | Path, timeout_s: float = 300) -> Sdist:
    """The sdist of `name==version` from pip's indexes (or `name` as a local archive path), cached in cache_dir."""
    cache = Path(cache_dir)
    local = Path(name)
    if local.suffix in (".gz", ".tgz", ".zip", ".bz2") and local.is_file():
        return Sdist(local.name, version, local, _sha256(local))
    target_dir = cache / f"{_normalise(name)}-{version}"
    done = [p for p in target_dir.glob("*") if p.name.endswith(SDIST_SUFFIXES)] if target_dir.is_dir() else []
    if done:
        return Sdist(name, version, done[0], _sha256(done[0]))
    settings = pip_settings()
    url, filename, want_sha = find_sdist(name, version, settings, timeout_s)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}-", dir=cache))
    try:
        (tmp / "dl").mkdir()
        got_sha = _download(url, tmp / "dl" / filename, settings, timeout_s)
        if want_sha and got_sha != want_sha:
            raise FetchError(f"{url}: sha256 {got_sha} does not match the index's {want_sha}")
        os.replace(tmp / "dl", target_dir)  # atomic: a half-finished download never looks cached
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    archive = target_dir / filename
    return Sdist(name, version, archive, _sha256(archive))


# --- locating the sdist ----------------------------------------------------------------------
def pip_settings() -> dict[str, str]:
    """pip's configuration for `pip download` (config files, then PIP_* variables on top), key -> value."""
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if proc.returncode != 0:
        raise FetchError(f"`pip config list` failed: {proc.stderr.strip()[-500:]}")
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    for m in re.finditer(r"^(\S+?)\.([a-z0-9-]+)=(.*)$", proc.stdout, re.M):
        section, key, shown = m.groups()
        try:
            value = str(ast.literal_eval(shown))  # pip prints each value with %r
        except (ValueError, SyntaxError):
            continue
        if section == ":env:":
            env[key] = value
        elif section in ("global", "download"):
            files[key] = value
    return {**files, **env}


def find_sdist(name: str, version: str, settings: dict[str, str], timeout_s: float = 60) -> tuple[str, str, str]:
    """(URL, file name, sha256 or "") of the sdist of name==version on pip's find-links and indexes."""
    places = _split(settings.get("find-links", ""))
    if settings.get("no-index", "").lower() not in ("1", "true", "yes", "on"):
        places += [_index_page(i, name) for i in
                   _split(settings.get("index-url", "")) or [DEFAULT_INDEX]] + \
                  [_index_page(i, name) for i in _split(settings.get("extra-index-url", ""))]
    looked, errors = [], []
    for place in places:
        try:
            links = _links(place, settings, timeout_s)
        except (OSError, ValueError) as exc:
            errors.append(f"{place}: {exc}")
            continue
        looked.append(place)
        for filename, url in links:
            if _is_sdist_of(filename, name, version):
                sha = urllib.parse.urlparse(url).fragment
                sha = sha.split("=", 1)[1] if sha.startswith("sha256=") else ""
                return urllib.parse.urldefrag(url)[0], filename, sha
    raise FetchError(f"no sdist of {name}=={version} on pip's indexes (looked at {', '.join(looked) or 'nothing'}"
                     + (f"; unreachable: {'; '.join(errors)[:1000]}" if errors else "")
                     + "); pass a local sdist path instead")


def _split(value: str) -> list[str]:
    return [v for v in value.split() if v]


def _index_page(index: str, name: str) -> str:
    return index.rstrip("/") + "/" + _normalise(name) + "/"


def _is_sdist_of(filename: str, name: str, version: str) -> bool:
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    suffix = next((s for s in SDIST_SUFFIXES if filename.endswith(s)), None)
    if suffix is None or "/" in filename or filename.startswith("."):
        return False
    stem_name, _, stem_version = filename[:-len(suffix)].rpartition("-")
    if canonicalize_name(stem_name) != canonicalize_name(name):
        return False
    try:
        return Version(stem_version) == Version(version)
    except InvalidVersion:
        return stem_version == version


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def _links(place: str, settings: dict[str, str], timeout_s: float) -> list[tuple[str, str]]:
    """(file name, absolute URL) of every file a find-links location or index page lists."""
    path = Path(urllib.parse.unquote(urllib.parse.urlparse(place).path)) if place.startswith("file:") else \
        (Path(place) if "://" not in place else None)
    if path is not None:
        if path.is_dir() and not (path / "index.html").is_file():  # a find-links directory
            return [(p.name, p.resolve().as_uri()) for p in sorted(path.iterdir()) if p.is_file()]
        page = path / "index.html" if path.is_dir() else path
        if not page.is_file():
            return []
        text, base = page.read_text(encoding="utf-8", errors="replace"), page.resolve().as_uri()
    else:
        with _open(place, settings, timeout_s) as resp:
            text, base = resp.read(MAX_METADATA_BYTES).decode("utf-8", "replace"), resp.geturl()
    parser = _Anchors()
    parser.feed(text)
    out = []
    for href in parser.hrefs:
        url = urllib.parse.urljoin(base, href)
        filename = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
        out.append((filename, url))
    return out


def _open(url: str, settings: dict[str, str], timeout_s: float):
    parts = urllib.parse.urlparse(url)
    if parts.scheme not in ("https", "http", "file"):
        raise ValueError(f"URL scheme {parts.scheme!r} is not fetched")
    if parts.scheme == "http" and parts.hostname not in _split(settings.get("trusted-host", "")):
        raise ValueError("plain http to a host pip does not trust (trusted-host)")
    context = ssl.create_default_context(cafile=settings.get("cert") or None) if parts.scheme == "https" else None
    request = urllib.request.Request(url, headers={"Accept": "text/html", "User-Agent": "hrm-code"})
    return urllib.request.urlopen(request, timeout=timeout_s, context=context)


def _download(url: str, dest: Path, settings: dict[str, str], timeout_s: float) -> str:
    digest, size = hashlib.sha256(), 0
    try:
        with _open(url, settings, timeout_s) as resp, open(dest, "wb") as out:
            while chunk := resp.read(1 << 20):
                size += len(chunk)
                if size > MAX_SDIST_BYTES:
                    raise FetchError(f"{url}: larger than {MAX_SDIST_BYTES} bytes; refused")
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError) as exc:
        raise FetchError(f"download of {url} failed: {exc}") from None
    return digest.hexdigest()


# --- unpacking and metadata ------------------------------------------------------------------
def unpack_sdist(archive: str | Path, dest: str | Path) -> Path:
    """Extract into dest (which must not exist) and return the project root (the single top dir)."""
    archive, dest = Path(archive), Path(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_sizes(archive, len(infos), sum(i.file_size for i in infos))
                for member in zf.namelist():
                    _check_member(archive, member)
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_sizes(archive, len(members), sum(m.size for m in members))
                tf.extractall(tmp, filter="data")  # refuses links/paths that leave tmp
        entries = [p for p in tmp.iterdir()]
        root = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        os.replace(root, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise FetchError(f"{archive}: not a readable archive: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def sdist_metadata(root: str | Path) -> dict:
    """Name, version and Requires-Dist lines from the sdist's PKG-INFO (empty when absent).

    `requires_dist_lines` pairs each Requires-Dist value with its line number in PKG-INFO."""
    pkg_info = Path(root) / "PKG-INFO"
    if pkg_info.is_symlink() or not pkg_info.is_file():
        return {"name": None, "version": None, "requires_dist": [], "requires_dist_lines": []}
    if pkg_info.stat().st_size > MAX_METADATA_BYTES:
        raise FetchError(f"{pkg_info}: larger than {MAX_METADATA_BYTES} bytes; refused")
    text = pkg_info.read_text(encoding="utf-8", errors="replace")
    msg = email.parser.Parser().parsestr(text, headersonly=True)
    lines: list[tuple[int, str]] = []
    folding = False  # inside a Requires-Dist header folded over several lines
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            break  # end of the headers
        if line[:1] in (" ", "\t"):
            if folding:
                lines[-1] = (lines[-1][0], f"{lines[-1][1]} {line.strip()}")
            continue
        folding = line.lower().startswith("requires-dist:")
        if folding:
            lines.append((n, line.split(":", 1)[1].strip()))
    return {"name": msg.get("Name"), "version": msg.get("Version"),
            "requires_dist": [r for _, r in lines], "requires_dist_lines": lines}


def _check_sizes(archive: Path, members: int, total: int) -> None:
    if members > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
        raise FetchError(f"{archive}: {members} members, {total} bytes unpacked; more than the "
                         f"{MAX_MEMBERS} / {MAX_UNPACKED_BYTES} allowed")


def _check_member(archive: Path, member: str) -> None:
    if member.startswith("/") or ".." in Path(member).parts:
        raise FetchError(f"{archive}: member {member!r} would be written outside the extraction dir")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
