"""What a downloaded repository asks to have installed, screened before pip sees any of it.

The test environment is built on the host, so only requirements pip can satisfy with a wheel from
the configured index are accepted: `name[extras] specifiers ; marker`. Everything else in a
requirements file or in PKG-INFO is refused and reported (`file:line: text: refused (why)`):
direct URL and VCS references, local paths and archives, editable installs, `-r`/`-c` includes
and pip options (`--index-url`, `--find-links`, `--trusted-host`, ...). Combined with pip's
`--only-binary=:all:` this means no build backend or setup.py of a downloaded package ever runs
on the host.
"""

from __future__ import annotations

import re
from pathlib import Path

REQUIREMENT_FILES = ("requirements-test.txt", "requirements_test.txt", "test-requirements.txt", "requirements.txt")
TEST_EXTRAS = ("test", "tests", "testing")
MAX_FILE_BYTES = 1 << 20
_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz",
                     ".tar.lz", ".tlz", ".egg")
_OPTION = re.compile(r"(?:^|\s)(--?[A-Za-z][\w-]*)")
_OPTION_WHY = {
    "-e": "an editable install builds the package from source",
    "--editable": "an editable install builds the package from source",
    "-r": "includes another requirements file",
    "--requirement": "includes another requirements file",
    "-c": "includes a constraints file",
    "--constraint": "includes a constraints file",
    "-i": "changes the package index",
    "--index-url": "changes the package index",
    "--extra-index-url": "adds a package index",
    "-f": "adds a find-links location",
    "--find-links": "adds a find-links location",
    "--trusted-host": "trusts a host without TLS",
    "--no-binary": "asks for source builds",
}


def screen(text: str) -> tuple[str | None, str]:
    """(the requirement to hand pip, "") for a plain `name[extras] specifiers ; marker`, else (None, why)."""
    from packaging.requirements import InvalidRequirement, Requirement

    line = text.strip()
    options = _OPTION.findall(line)
    hashes_only = options and all(o == "--hash" for o in options)
    if options and not hashes_only:
        first = options[0]
        return None, _OPTION_WHY.get(first, f"pip option {first} is not accepted from a downloaded repository")
    if hashes_only:  # `name==1.0 --hash=sha256:...`: the pin stays, the hashes are dropped
        line = line[:_OPTION.search(line).start()].strip()
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        if "://" in line or line.startswith((".", "/", "~", "file:")) or "/" in line.split(";")[0]:
            return None, "a URL or a local path, not a package from the index"
        return None, f"not a PEP 508 requirement ({str(exc).splitlines()[0]})"
    if req.url:
        return None, f"a direct reference to {req.url}, not a package from the index"
    if req.name.lower().endswith(_ARCHIVE_SUFFIXES):
        return None, "names a local archive, not a package from the index"
    return str(req), ""


def refusal(source: str, line: int, text: str, why: str) -> str:
    return f"{source}:{line}: {text.strip()[:200]}: refused ({why})"


def from_requires_dist(lines: list[tuple[int, str]], source: str = "PKG-INFO") -> tuple[list[str], list[str]]:
    """(accepted, refused) among an sdist's Requires-Dist lines: the unconditional ones plus the
    test/tests/testing extras (their `extra` marker dropped); other extras are not wanted."""
    from packaging.requirements import InvalidRequirement, Requirement

    accepted, refused = set(), []
    for n, text in lines:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            req = None
        if req is not None:
            marker = str(req.marker) if req.marker else ""
            extra = re.search(r'extra\s*==\s*"([^"]+)"', marker)
            if extra and extra.group(1) not in TEST_EXTRAS:
                continue
            if extra:
                req.marker = None
            elif req.marker and not req.marker.evaluate():
                continue
            text = str(req)
        plain, why = screen(text)
        if plain is None:
            refused.append(refusal(source, n, text, why))
        else:
            accepted.add(plain)
    return sorted(accepted), refused


def from_files(repo_dir: str | Path) -> tuple[list[str], list[str]]:
    """(accepted, refused) over the repo's requirements files (top level, regular files only)."""
    repo_dir = Path(repo_dir)
    accepted, refused = set(), []
    for name in REQUIREMENT_FILES:
        f = repo_dir / name
        if not f.exists() and not f.is_symlink():
            continue
        if f.is_symlink() or not f.is_file():
            refused.append(refusal(name, 0, "", "not a regular file (a link or a special file); not read"))
            continue
        if f.stat().st_size > MAX_FILE_BYTES:
            refused.append(refusal(name, 0, "", f"larger than {MAX_FILE_BYTES} bytes; not read"))
            continue
        for n, line in logical_lines(f.read_text(encoding="utf-8", errors="replace")):
            plain, why = screen(line)
            if plain is None:
                refused.append(refusal(name, n, line, why))
            else:
                accepted.add(plain)
    return sorted(accepted), refused


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each requirement: comments dropped, `\\` continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw)
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            out.append((start, line))
    if pending.strip():
        out.append((start, pending.strip()))
    return out
