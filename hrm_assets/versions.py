"""Code versions and data versions, so that "stale" in the Dagster UI means something.

An asset's code version is a hash of the source of the plain module it calls and of every project module
that module imports, transitively (at module level or inside functions): a change anywhere in the code that
produces the asset changes its version, a change elsewhere does not. Configuration is not code: settings
(resources/settings.py) and where tables live (resources/warehouse.py) are left out, as Dagster tracks
config apart from code versions. A data version is a hash of what the asset wrote.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

import dagster as dg

from resources.warehouse import content_hash

REPO_ROOT = Path(__file__).resolve().parent.parent
PLAIN_PACKAGES = ("model", "datagen", "evals", "training", "inference", "resources", "agents")
NOT_CODE_VERSIONED = ("resources.settings", "resources.warehouse")


def module_file(name: str) -> Path | None:
    """The source file of a project module (`evals.pipeline`, `datagen`), or None when it is not one."""
    if name.split(".")[0] not in PLAIN_PACKAGES:
        return None
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def _imports(name: str) -> tuple[str, ...]:
    """The project modules `name` imports, and the packages above each of them."""
    path = module_file(name)
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from evals import humaneval` imports the module evals.humaneval
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    modules = set()
    for imported in found:
        parts = imported.split(".")
        modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return tuple(sorted(m for m in modules if module_file(m) and m not in NOT_CODE_VERSIONED))


def source_closure(*names: str) -> list[str]:
    """`names` and every project module they import, transitively, sorted."""
    seen, todo = set(), [n for n in names if module_file(n)]
    missing = [n for n in names if not module_file(n)]
    if missing:
        raise ValueError(f"not project modules: {missing} (expected modules under {', '.join(PLAIN_PACKAGES)})")
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [m for m in _imports(name) if m not in seen]
    return sorted(seen)


@lru_cache(maxsize=None)
def source_version(*names: str) -> str:
    """12 hex digits of sha256 over the closure's files (path and bytes): the code version of an asset that
    calls the modules `names`."""
    digest = hashlib.sha256()
    for name in source_closure(*names):
        path = module_file(name)
        digest.update(f"{path.relative_to(REPO_ROOT)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def hash_version(value) -> dg.DataVersion:
    """A data version from a content hash already computed (weights sha256, a commit, a table hash)."""
    return dg.DataVersion(str(value)[:16])


def files_version(path: Path) -> dg.DataVersion:
    """A data version from the bytes of a file or of every file under a directory (a tokenizer, an artifact)."""
    return hash_version(content_hash([Path(path)], Path(path).parent))


def json_version(value) -> dg.DataVersion:
    """A data version from JSON-able content (sorted keys), for results that are not files."""
    return hash_version(hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest())


def report_version(rows) -> dg.DataVersion:
    """A benchmark report's data version: its scores, not the report id, timestamp or commit each row carries,
    so that evaluating the same checkpoints again (seeded) gives the same version."""
    return json_version(sorted([r.model, r.checkpoint_hash, r.quantization, r.benchmark, r.metric, r.value, r.n,
                                r.ci_low, r.ci_high] for r in rows))
