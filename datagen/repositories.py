"""The repository of a corpus file, and the documentation tasks' split by repository.

A corpus row knows only its origin path (datagen/corpus.py: `local:<path>` or `hf:<dataset>#<row>`).
`repository_key` maps it to the unit a documentation task is held out by:

| language | origin layout | repository key |
| --- | --- | --- |
| rust | `.../cargo/registry/<crate>-<version>/...` (any dir holding `registry/`) | `rust:<crate>-<version>` |
| python | `.../lib/python3.X/site-packages/<pkg>/...` | `python:<pkg>` |
| python | `.../lib/python3.X/<module>.py` or `<package>/...` (standard library) | `python:stdlib/<module>` |
| go | `.../go/src/<package dir>/<file>.go` (the Go tree) | `go:<package dir>` |
| javascript | `.../node_modules/<pkg>/<dir...>/<file>.js` | `javascript:<pkg>/<dir...>` |
| cpp | `.../include/c++/<version>/<dir...>/<file>` | `cpp:<dir...>` (`cpp:.` at the top) |
| any | another local tree | `<language>:<parent directory>` |
| any | `hf:<dataset>#<row>` (rows carry no repository) | `<language>:hf:<dataset>#<row>` |

npm, libstdc++ and Go's standard library are each one project, so a whole-project key would put a language
wholly in one split; there the unit is the module directory (an npm `lib/` subdirectory, a header family, a Go
package), the smallest unit that shares authors, conventions and vocabulary.

The split (`doc_test_repositories`): per language, repositories in the order of a stable hash of their key
are test while their files stay within `DOC_TEST_PERCENT` of the language's files. Every file of a test
repository is test, and `curriculum.heldout_doc_ids` keeps those files out of training (their docstrings are
test answers, and completion examples would show them).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath
from typing import Iterable

DOC_TEST_PERCENT = 10
_PY_LIB = re.compile(r"/lib/python3\.\d+/(.+)$")
_GO_SRC = re.compile(r"/go/src/(.+)$")
_CARGO = re.compile(r"/registry/([^/]+)/")
_NODE = re.compile(r"/node_modules/((?:@[^/]+/)?[^/]+)/(.+)$")
_CXX = re.compile(r"/include/c\+\+/[^/]+/(.+)$")


def repository_key(language: str, origin: str) -> str:
    """The repository a corpus file belongs to (see the module docstring's table)."""
    if origin.startswith("hf:"):
        return f"{language}:{origin}"
    path = origin.removeprefix("local:")
    if language == "rust" and (m := _CARGO.search(path)):
        return f"rust:{m.group(1)}"
    if language == "python" and (m := _PY_LIB.search(path)):
        parts = m.group(1).split("/")
        if parts[0] in ("site-packages", "dist-packages") and len(parts) > 1:
            return f"python:{parts[1].removesuffix('.py')}"
        return f"python:stdlib/{parts[0].removesuffix('.py')}"
    if language == "go" and (m := _GO_SRC.search(path)):
        return f"go:{PurePosixPath(m.group(1)).parent}"
    if language == "javascript" and (m := _NODE.search(path)):
        return f"javascript:{m.group(1)}/{PurePosixPath(m.group(2)).parent}".removesuffix("/.")
    if language == "cpp" and (m := _CXX.search(path)):
        return f"cpp:{PurePosixPath(m.group(1)).parent}"
    return f"{language}:{PurePosixPath(path).parent}"


def _key_hash(key: str) -> int:
    return int(hashlib.sha1(f"doc-split\0{key}".encode()).hexdigest()[:8], 16)


def doc_test_repositories(corpus_rows: Iterable[dict], percent: int = DOC_TEST_PERCENT) -> set[str]:
    """The repository keys whose files are the documentation tasks' test split: per language, repositories
    in the order of a stable hash of their key, each taken while the test files stay within `percent` of the
    language's files (one large crate cannot take a language's training data); a language with two or more
    repositories and none taken gets the first one holding at most a quarter of its files."""
    files: dict[str, dict[str, int]] = {}
    for doc in corpus_rows:
        if not doc.get("origin"):  # a row without an origin has no repository and gives no doc task
            continue
        per_repo = files.setdefault(doc["language"], {})
        key = repository_key(doc["language"], doc["origin"])
        per_repo[key] = per_repo.get(key, 0) + 1
    chosen: set[str] = set()
    for per_repo in files.values():
        total, used, picked = sum(per_repo.values()), 0, set()
        ordered = sorted(per_repo, key=lambda k: (_key_hash(k), k))
        for key in ordered:
            if (used + per_repo[key]) * 100 <= total * percent:
                picked.add(key)
                used += per_repo[key]
        small = [k for k in ordered if per_repo[k] * 4 <= total]
        if not picked and len(per_repo) >= 2 and percent > 0 and small:
            picked = {small[0]}
        chosen |= picked
    return chosen


def doc_test_doc_ids(corpus_rows: Iterable[dict], percent: int = DOC_TEST_PERCENT) -> set[str]:
    """The doc ids of every file in a test repository: never trained on, by any task."""
    rows = list(corpus_rows)
    test = doc_test_repositories(rows, percent)
    return {r["doc_id"] for r in rows if r.get("origin") and repository_key(r["language"], r["origin"]) in test}
