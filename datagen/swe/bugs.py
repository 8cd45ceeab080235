"""Candidate bugs from SWE-smith's procedural (AST) modifiers, seeded and without Docker or GitHub.

The direct route of swesmith 0.0.9: `bug_gen.adapters` finds functions and classes, each
`MODIFIERS_PYTHON` modifier rewrites the ones it can change, `generate_patch_fast` turns the
rewrite into a unified diff. Each modifier is re-created with our seed, so the bugs of one repo
do not depend on which repos were processed before it in the same process.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

_SKIP_DIRS = {"tests", "test", "testing", "docs", "doc", "examples", "benchmarks", ".git", "build", "dist"}


@dataclass(frozen=True)
class BugCandidate:
    instance_id: str
    bug_type: str  # the modifier name, e.g. func_pm_remove_cond
    patch: str  # bug-introducing diff (the gold fix is its reverse)
    file: str
    entity: str
    entity_kind: str  # function | class
    complexity: int
    explanation: str

    def to_dict(self) -> dict:
        return asdict(self)


def source_files(repo_dir: str | Path) -> list[Path]:
    """Library .py files: not tests, docs, examples or setup scripts, and never a symlink (a link in a
    downloaded repo may point at a host file, whose text would end up in a bug patch)."""
    repo_dir = Path(repo_dir)
    out = []
    for p in sorted(repo_dir.rglob("*.py")):
        if p.is_symlink() or not p.is_file():
            continue
        rel = p.relative_to(repo_dir)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        name = rel.name
        if name.startswith("test_") or name.endswith("_test.py") or name in ("conftest.py", "setup.py", "noxfile.py"):
            continue
        out.append(p)
    return out


def generate_bugs(repo_dir: str | Path, instance_prefix: str, seed: int = 24, max_per_modifier: int = 20,
                  max_bugs: int = 200) -> list[BugCandidate]:
    """Up to max_bugs distinct candidate bugs; instance ids are `<instance_prefix>.<bug_type>__<hash8>`."""
    from swesmith.bug_gen.adapters.python import get_entities_from_file_py
    from swesmith.bug_gen.procedural.python import MODIFIERS_PYTHON
    from swesmith.bug_gen.utils import generate_patch_fast
    from swesmith.constants import generate_hash

    repo_dir = str(Path(repo_dir).resolve())
    entities: list = []
    for f in source_files(repo_dir):
        try:
            get_entities_from_file_py(entities, str(f))
        except (UnicodeDecodeError, ValueError, RecursionError, MemoryError):
            continue  # not UTF-8, NUL bytes, or nested too deep to parse: no bugs from this file
    rng = random.Random(seed)
    seen, ids, bugs = set(), set(), []
    for template in MODIFIERS_PYTHON:
        modifier = type(template)(likelihood=template.likelihood, seed=seed)
        candidates = [e for e in entities if modifier.can_change(e)]
        if len(candidates) > max_per_modifier:
            candidates = rng.sample(candidates, max_per_modifier)
        for entity in candidates:
            rewrite = modifier.modify(entity)
            if rewrite is None:
                continue
            patch = generate_patch_fast(entity, rewrite, repo_dir)
            if not patch or patch in seen:
                continue
            seen.add(patch)
            kind = "class" if entity.signature.startswith("class ") else "function"
            # SWE-smith hashes the rewrite alone; identical code in two places would share an id
            digest = rewrite.get_hash()
            instance_id = f"{instance_prefix}.{modifier.name}__{digest}"
            if instance_id in ids:
                digest = generate_hash(rewrite.rewrite + entity.file_path + str(entity.line_start))
                instance_id = f"{instance_prefix}.{modifier.name}__{digest}"
            ids.add(instance_id)
            bugs.append(BugCandidate(
                instance_id=instance_id,
                bug_type=modifier.name, patch=patch, file=str(Path(entity.file_path).relative_to(repo_dir)),
                entity=entity.name, entity_kind=kind, complexity=int(entity.complexity),
                explanation=rewrite.explanation))
    rng.shuffle(bugs)  # a max_bugs cut keeps a mix of modifiers
    return bugs[:max_bugs]
