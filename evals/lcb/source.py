"""Where `code_generation_lite` records come from: a local file or directory, or the Hugging Face hub.

Release tags follow lcb_runner: `release_vN` is cumulative (test.jsonl ... testN.jsonl), `vN` is one
release's new problems (testN.jsonl), `vX_vY` a range, `release_latest` everything. A directory may
also hold one folder per tag (the hub's parquet layout). Nothing is ever invented: a source with no
matching files is an error that says how to point the loader at data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from evals.lcb.records import LcbProblem, RejectedRecord, filter_window, normalise_record
from resources.settings import env_bool, env_str

HUB_DATASET = "livecodebench/code_generation_lite"
HUB_PREFIX = "hf://"
DEFAULT_SOURCE = HUB_PREFIX + HUB_DATASET  # an explicit load with HRM_LCB_SOURCE unset reads the hub
N_RELEASES = 6  # release_v6 is the newest tag the notes know; newer testN files are picked up when present
SOURCE_ENV = "HRM_LCB_SOURCE"
HOW_TO_POINT = (f"set the environment variable {SOURCE_ENV} (or the asset config field `source`, or "
                "`hrm lcb load --source`) to a directory holding code_generation_lite's test.jsonl ... "
                "test6.jsonl (or <tag>/*.parquet), or to one .jsonl/.parquet file")


class LcbSourceError(RuntimeError):
    """The source cannot supply the requested release."""


@dataclass
class LoadResult:
    problems: list[LcbProblem] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {file, row, question_id, reason, unsafe}
    files: list[str] = field(default_factory=list)


def release_file_numbers(tag: str, available: int = N_RELEASES) -> list[int]:
    """The testN.jsonl numbers that make up a release tag."""
    if tag == "release_latest":
        return list(range(1, max(available, N_RELEASES) + 1))
    m = re.fullmatch(r"release_v(\d+)", tag)
    if m:
        return list(range(1, int(m.group(1)) + 1))
    m = re.fullmatch(r"v(\d+)", tag)
    if m:
        return [int(m.group(1))]
    m = re.fullmatch(r"v(\d+)_v(\d+)", tag)
    if m and int(m.group(1)) <= int(m.group(2)):
        return list(range(int(m.group(1)), int(m.group(2)) + 1))
    raise ValueError(f"unknown LiveCodeBench release tag {tag!r}: expected release_vN, vN, vX_vY or "
                     "release_latest")


def release_file_name(n: int, ext: str = "jsonl") -> str:
    return f"test.{ext}" if n == 1 else f"test{n}.{ext}"


def resolve_source(source: str | None) -> str:
    return source or env_str(SOURCE_ENV) or DEFAULT_SOURCE


def release_files(source: str | None, tag: str) -> list[Path]:
    """Local files holding `tag` for `source` (downloads from the hub when the source is hf://...)."""
    source = resolve_source(source)
    if source.startswith(HUB_PREFIX) or source == "hub":
        repo = HUB_DATASET if source == "hub" else source[len(HUB_PREFIX):]
        return _hub_files(repo, tag)
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise LcbSourceError(f"LiveCodeBench source {source!r} does not exist; {HOW_TO_POINT}")
    folder = path / tag
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".jsonl", ".parquet"))
        if files:
            return files
    present = {p.name for p in path.iterdir()}
    found_max = max([n for n in range(1, 100) if any(release_file_name(n, e) in present
                                                      for e in ("jsonl", "parquet"))] or [0])
    files, missing = [], []
    for n in release_file_numbers(tag, found_max):
        for ext in ("jsonl", "parquet"):
            if release_file_name(n, ext) in present:
                files.append(path / release_file_name(n, ext))
                break
        else:
            missing.append(release_file_name(n))
    if tag == "release_latest":
        missing = []
    if missing or not files:
        raise LcbSourceError(f"LiveCodeBench source {path} lacks {', '.join(missing) or 'any testN.jsonl'} "
                             f"for release {tag!r} (found: {', '.join(sorted(present)) or 'nothing'}); "
                             f"{HOW_TO_POINT}")
    return files


def _hub_files(repo: str, tag: str) -> list[Path]:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub ships with datasets
        raise LcbSourceError(f"huggingface_hub is not installed ({exc}); {HOW_TO_POINT}") from None
    endpoint = env_str("HF_ENDPOINT")
    if not env_bool("HF_HUB_OFFLINE") and not _resolves(endpoint):
        # hf_hub_download would retry for ~25 s before giving up; a failed DNS lookup is final.
        raise LcbSourceError(f"the Hugging Face hub is unreachable (no DNS for {endpoint}),"
                             f" so {repo} cannot be fetched; {HOW_TO_POINT}")
    files = []
    for n in release_file_numbers(tag):
        if tag == "release_latest" and n > N_RELEASES:
            break
        name = release_file_name(n)
        try:
            files.append(Path(hf_hub_download(repo_id=repo, filename=name, repo_type="dataset")))
        except Exception as exc:
            raise LcbSourceError(
                f"cannot fetch {name} of {repo} from the Hugging Face hub ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); offline? {HOW_TO_POINT}") from None
    return files


def _resolves(url: str) -> bool:
    import socket
    from urllib.parse import urlparse

    host = urlparse(url).hostname or url
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def iter_raw_records(path: Path):
    """(row number, record or None, error) for every row of a jsonl or parquet file; rows count from 1."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, rec in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield i, rec, None
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line), None
            except ValueError as exc:
                yield i, None, f"not valid JSON: {exc}"


def load_records(files: list[Path]) -> LoadResult:
    """Normalise every record of `files`; bad rows go to `rejected` with file, row and reason."""
    files = [Path(f) for f in files]
    result = LoadResult(files=[str(f) for f in files])
    seen: dict[str, str] = {}
    for path in files:
        for row, raw, error in iter_raw_records(path):
            qid = raw.get("question_id") if isinstance(raw, dict) else None
            where = {"file": str(path), "row": row, "question_id": qid}
            if error:
                result.rejected.append({**where, "reason": error, "unsafe": False})
                continue
            try:
                problem = normalise_record(raw)
            except RejectedRecord as exc:
                result.rejected.append({**where, "reason": exc.reason, "unsafe": exc.unsafe})
                continue
            if problem.question_id in seen:
                result.rejected.append({**where, "reason": f"duplicate question_id (first at "
                                        f"{seen[problem.question_id]})", "unsafe": False})
                continue
            seen[problem.question_id] = f"{path}:{row}"
            result.problems.append(problem)
    return result


def load_release(source: str | None, tag: str, start_date=None, end_date=None,
                 training_cutoff=None) -> LoadResult:
    """Normalised problems of one release from `source`, optionally inside a contest-date window."""
    result = load_records(release_files(source, tag))
    result.problems = filter_window(result.problems, start_date, end_date, training_cutoff)
    return result
