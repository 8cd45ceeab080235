"""Git tasks from real repositories: merge conflicts between two bug fixes, and commit messages from history.

Conflicts. Two validated SWE-smith bugs of one repo (swesmith_tasks rows) in the same file whose patches touch
the same or adjacent lines are composed: `base` is the clean file with BOTH bugs applied, branch `fix-a`
reverts bug A, branch `fix-b` reverts bug B, and real `git merge fix-b` on `fix-a` (in a throwaway repo we
create, hooks and config off) decides whether they conflict. Only pairs git really reports as conflicting
are kept. The gold resolution is the clean file (both fixes); FAIL_TO_PASS is the union of the two bugs'
FAIL_TO_PASS, PASS_TO_PASS the repo's clean passing tests minus those, so keeping one side only ("ours" or
"theirs") fails the other bug's tests. Every kept task is checked in the Sandbox: gold passes every test,
ours and theirs each fail some FAIL_TO_PASS test.

Answer format (task type `diff_edit`): one block per conflict, the lines that replace it, markers excluded:

    --- RESOLVE path/to/file.py #1
    resolved lines
    --- END

(`--- FILE path` ... `--- END` gives a whole file instead). SEARCH/REPLACE cannot carry a conflict: git's
`=======` line is its divider.

Commit messages. Every configured git history (HRM_GIT_HISTORY_SOURCES: local repos, bundles, URLs; by
default the Polyglot benchmark source and the git-kind swe_repos) gives one row per commit with exactly one
parent: its diff (capped) -> the human message (task type `plan`).

Splits are held out whole: a conflict pair by a stable hash of its two bug ids, and a train pair sharing a bug
with a test pair is dropped (no test fix is in a train row); a commit by a stable hash of its sha, or of its repository when there
are several histories.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from datagen.swe.repos import ENV_MOUNT, PASSING, PreparedRepo, new_nonce, parse_pytest_summary, test_command
from datagen.swe.trajectories import benchmark_owned
from resources.fetchers import git_clone
from resources.sandbox import Sandbox, SandboxJob

TABLE = "git_tasks"
KINDS = ("conflict", "commit_message")
_CONFLICT_START, _CONFLICT_BASE, _CONFLICT_MID, _CONFLICT_END = "<<<<<<<", "|||||||", "=======", ">>>>>>>"
_RESOLVE = re.compile(r"^--- RESOLVE (\S+) #(\d+)\s*$")
_FILE = re.compile(r"^--- FILE (\S+)\s*$")
_END = "--- END"
_HOST_GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
                 "GIT_AUTHOR_NAME": "hrm-git", "GIT_AUTHOR_EMAIL": "git@hrm.invalid",
                 "GIT_COMMITTER_NAME": "hrm-git", "GIT_COMMITTER_EMAIL": "git@hrm.invalid",
                 "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
                 "GIT_TERMINAL_PROMPT": "0"}


@dataclass(frozen=True)
class GitTaskSettings:
    seed: int = 18
    test_percent: int = 30  # share of bugs (conflicts) or commits (messages) held out, by stable hash
    max_pairs_per_repo: int = 40  # conflicting pairs validated per repo
    max_gap_lines: int = 3  # bug hunks at most this many lines apart are tried as a pair
    context_lines: int = 4  # lines of the conflicted file shown around each conflict
    max_diff_chars: int = 4000  # a commit's diff in the prompt is cut to this many characters
    history_sources: tuple[str, ...] = ()  # git histories for commit messages (paths, bundles, URLs)
    max_commits_per_source: int = 500
    timeout_s: float = 120.0


def stable_split(key: str, test_percent: int, seed: int = 0) -> str:
    digest = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)
    return "test" if digest % 100 < test_percent else "train"


def _without_git_vars(env: dict) -> dict:
    """The environment without GIT_* variables (a GIT_DIR or GIT_WORK_TREE of the caller would redirect git)."""
    return {k: v for k, v in env.items() if not k.startswith("GIT_")}


def _host_git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """git on the host, only ever in a repository this module created or cloned (hooks and config off)."""
    proc = subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                           "-c", "commit.gpgsign=false", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**_without_git_vars({**os.environ}), **_HOST_GIT_ENV})
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} in {cwd} failed: {proc.stderr.strip()[-500:]}")
    return proc


# --- conflict markers and answers ---------------------------------------------------------------------
def split_conflicts(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the clean segments around the conflicts, (ours, theirs) per conflict); len(segments) = conflicts + 1.
    ValueError when the markers do not nest."""
    segments, conflicts = [], []
    current, ours, theirs, state = [], [], [], "clean"
    for line in text.splitlines(keepends=True):
        if line.startswith(_CONFLICT_START + " ") or line.rstrip("\n") == _CONFLICT_START:
            if state != "clean":
                raise ValueError("a conflict starts inside another")
            segments.append("".join(current))
            current, ours, theirs, state = [], [], [], "ours"
        elif state in ("ours", "base") and line.startswith(_CONFLICT_BASE):
            state = "base"
        elif state in ("ours", "base") and line.rstrip("\n") == _CONFLICT_MID:
            state = "theirs"
        elif state == "theirs" and (line.startswith(_CONFLICT_END + " ") or line.rstrip("\n") == _CONFLICT_END):
            conflicts.append(("".join(ours), "".join(theirs)))
            state = "clean"
        elif state == "clean":
            current.append(line)
        elif state == "ours":
            ours.append(line)
        elif state == "theirs":
            theirs.append(line)
    if state != "clean":
        raise ValueError("a conflict is not closed")
    segments.append("".join(current))
    return segments, conflicts


def has_markers(text: str) -> bool:
    """A conflict's start or end marker on any line (a lone `=======` is also an rst underline, so not alone)."""
    return any(line.startswith((_CONFLICT_START, _CONFLICT_END, _CONFLICT_BASE)) for line in text.splitlines())


def gold_pieces(conflicted: str, resolved: str) -> list[str] | None:
    """The text that replaces each conflict so that the file becomes `resolved`, or None when the clean
    segments of `conflicted` are not, in order, pieces of `resolved`."""
    segments, conflicts = split_conflicts(conflicted)
    pattern = "".join(re.escape(s) + ("(.*?)" if i < len(conflicts) else "") for i, s in enumerate(segments))
    m = re.fullmatch(pattern, resolved, re.S)
    return list(m.groups()) if m else None


def format_resolution(path: str, pieces: list[str]) -> str:
    return "".join(f"--- RESOLVE {path} #{i}\n{p}{'' if not p or p.endswith(chr(10)) else chr(10)}{_END}\n"
                   for i, p in enumerate(pieces, 1))


def format_files(files: dict[str, str]) -> str:
    """Whole-file answer blocks (`--- FILE path` ... `--- END`): e.g. the gold of a conflict another tool made."""
    return "".join(f"--- FILE {p}\n{t}{'' if not t or t.endswith(chr(10)) else chr(10)}{_END}\n"
                   for p, t in sorted(files.items()))


def safe_relative(path: str) -> str:
    """`path` if it is a plain relative path (no `..`, not absolute, no backslash); ValueError otherwise."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or "\\" in path or any(part in ("..", "") for part in path.split("/")) \
            or path.startswith("~"):
        raise ValueError(f"path {path!r} is not a plain relative path in the repository")
    return str(p)


def apply_resolution(conflicted: dict[str, str], answer: str) -> dict[str, str]:
    """The resolved files: each conflicted file with the answer's RESOLVE blocks (or its FILE block) in place.
    ValueError (naming the reason) for an empty answer, a block for a file outside the task, a test or runner
    file, an unplaced or repeated block, or conflict markers left anywhere."""
    if not answer.strip():
        raise ValueError("empty answer")
    pieces: dict[str, dict[int, str]] = {}
    whole: dict[str, str] = {}
    lines = answer.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        head = lines[i].rstrip("\n")
        m_res, m_file = _RESOLVE.match(head), _FILE.match(head)
        if not (m_res or m_file):
            i += 1
            continue  # prose between blocks is ignored
        path = safe_relative((m_res or m_file).group(1))
        if benchmark_owned(path, set()):
            raise ValueError(f"{path}: a test or test-runner file; only the conflicted files may change")
        if path not in conflicted:
            raise ValueError(f"{path}: not a conflicted file of this task ({', '.join(sorted(conflicted))})")
        body, i = [], i + 1
        while i < len(lines) and lines[i].rstrip("\n") != _END:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"block for {path} has no `{_END}` line")
        i += 1
        if m_file:
            if path in whole:
                raise ValueError(f"{path}: two FILE blocks")
            whole[path] = "".join(body)
        else:
            k = int(m_res.group(2))
            if k in pieces.setdefault(path, {}):
                raise ValueError(f"{path}: conflict #{k} resolved twice")
            pieces[path][k] = "".join(body)
    if not pieces and not whole:
        raise ValueError("no `--- RESOLVE <path> #<n>` or `--- FILE <path>` block in the answer")
    out = {}
    for path, text in conflicted.items():
        if path in whole:
            out[path] = whole[path]
            continue
        segments, conflicts = split_conflicts(text)
        given = pieces.get(path, {})
        extra = sorted(set(given) - set(range(1, len(conflicts) + 1)))
        if extra:
            raise ValueError(f"{path}: no conflict #{extra[0]} (the file has {len(conflicts)})")
        missing = [k for k in range(1, len(conflicts) + 1) if k not in given]
        if missing:
            raise ValueError(f"{path}: conflict markers left (conflict #{missing[0]} not resolved)")
        out[path] = segments[0] + "".join(given[k] + segments[k] for k in range(1, len(conflicts) + 1))
    for path, text in out.items():
        if has_markers(text):
            raise ValueError(f"{path}: conflict markers left in the resolution")
    return out


# --- making conflicts -----------------------------------------------------------------------------------
def hunk_lines(patch: str) -> list[tuple[int, int]]:
    """(first, last) line of the original file each hunk of a bug patch covers."""
    from unidiff import PatchSet

    return [(h.source_start, h.source_start + max(h.source_length, 1) - 1) for pf in PatchSet(patch) for h in pf]


def near(a: list[tuple[int, int]], b: list[tuple[int, int]], gap: int) -> bool:
    return any(x0 <= y1 + gap and y0 <= x1 + gap for x0, x1 in a for y0, y1 in b)


def candidate_pairs(tasks: list[dict], gap: int) -> list[tuple[dict, dict]]:
    """Pairs of one-file bugs in the same file whose hunks overlap or lie within `gap` lines (sorted ids)."""
    one_file = sorted((t for t in tasks if len(t["files"]) == 1), key=lambda t: t["instance_id"])
    spans = {t["instance_id"]: hunk_lines(t["patch"]) for t in one_file}
    return [(a, b) for i, a in enumerate(one_file) for b in one_file[i + 1:]
            if a["files"][0] == b["files"][0] and near(spans[a["instance_id"]], spans[b["instance_id"]], gap)]


@dataclass
class Conflict:
    path: str
    base: str  # both bugs
    ours: str  # fix-a: bug A fixed (bug B still there)
    theirs: str  # fix-b: bug B fixed
    conflicted: str  # the file after `git merge fix-b` on fix-a, markers in it
    resolved: str  # the clean file: both fixes


def make_conflict(original: str, path: str, patch_a: str, patch_b: str) -> tuple[Conflict | None, str]:
    """(the conflict of merging the two fixes, "") or (None, why not) — composed and merged with real git."""
    with tempfile.TemporaryDirectory(prefix="hrm-git-conflict-") as tmp:
        repo = Path(tmp) / "repo"
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(original)
        (Path(tmp) / "a.patch").write_text(patch_a)
        (Path(tmp) / "b.patch").write_text(patch_b)
        _host_git(repo, "init", "-q", "-b", "main")
        _host_git(repo, "add", "-A")
        _host_git(repo, "commit", "-qm", "clean")
        if not any(_applies_in_order(repo, path, original, [Path(tmp) / n for n in order])
                   for order in (("a.patch", "b.patch"), ("b.patch", "a.patch"))):
            return None, "the bug patches do not compose (in either order, one fails on top of the other)"
        base = (repo / path).read_text()
        _host_git(repo, "commit", "-qam", "both bugs")
        branches = {}
        for branch, name in (("fix-a", "a.patch"), ("fix-b", "b.patch")):
            _host_git(repo, "checkout", "-q", "-b", branch, "main")
            if _host_git(repo, "apply", "-R", "-C0", "--whitespace=nowarn", str(Path(tmp) / name), check=False).returncode:
                return None, f"bug {name[0]} does not revert on top of the other"
            branches[branch] = (repo / path).read_text()
            _host_git(repo, "commit", "-qam", f"fix bug {name[0]}")
        _host_git(repo, "checkout", "-q", "fix-a")
        merge = _host_git(repo, "merge", "--no-edit", "-q", "fix-b", check=False)
        conflicted = (repo / path).read_text()
        if merge.returncode == 0:
            return None, "git merges the two fixes cleanly"
        if not has_markers(conflicted):
            return None, f"the merge failed without conflict markers: {merge.stdout[-200:]}{merge.stderr[-200:]}"
    return Conflict(path, base, branches["fix-a"], branches["fix-b"], conflicted, original), ""


def _applies_in_order(repo: Path, path: str, original: str, patches: list[Path]) -> bool:
    """Apply `patches` one after the other to the clean file; on failure restore it and say False."""
    for patch in patches:
        if _host_git(repo, "apply", "-C0", "--whitespace=nowarn", str(patch), check=False).returncode:
            (repo / path).write_text(original)
            return False
    return True


def conflict_prompt(path: str, conflicted: str, desc_a: str, desc_b: str, context: int) -> str:
    """The merge request: both branches' descriptions and each conflict with `context` lines around it."""
    lines = conflicted.splitlines(keepends=True)
    shown, k, i = [], 0, 0
    starts = [n for n, l in enumerate(lines) if l.startswith(_CONFLICT_START)]
    ends = [n for n, l in enumerate(lines) if l.startswith(_CONFLICT_END)]
    for start, end in zip(starts, ends):
        k += 1
        lo, hi = max(0, start - context), min(len(lines), end + 1 + context)
        shown.append(f"{path} conflict #{k} (lines {lo + 1}-{hi}):\n" + "".join(lines[lo:hi]))
        i = hi
    return (f"Merging branch fix-b into fix-a stopped on conflicts in {path}.\n"
            f"fix-a: {desc_a}\nfix-b: {desc_b}\n"
            "Keep both fixes. For each conflict write the lines that replace it, markers removed:\n"
            f"--- RESOLVE {path} #N\n<lines>\n{_END}\n\n" + "\n".join(shown))


def fix_description(task: dict) -> str:
    tests = list(task["FAIL_TO_PASS"])
    return f"fix the bug in `{task['entity']}` ({task['files'][0]}) that fails {tests[0]}" + \
        (f" and {len(tests) - 1} more test(s)" if len(tests) > 1 else "")


def conflict_row(repo_row: dict, a: dict, b: dict, c: Conflict, settings: GitTaskSettings) -> dict:
    pieces = gold_pieces(c.conflicted, c.resolved)
    f2p = sorted(set(a["FAIL_TO_PASS"]) | set(b["FAIL_TO_PASS"]))
    p2p = sorted(set(repo_row["passed_tests"]) - set(f2p))
    pair = f"{a['instance_id']}+{b['instance_id'].rsplit('.', 1)[-1]}"
    split = stable_split(pair, settings.test_percent, settings.seed)
    return {"task_type": "diff_edit", "language": "python",
            "prompt": conflict_prompt(c.path, c.conflicted, fix_description(a), fix_description(b),
                                      settings.context_lines),
            "answer": format_resolution(c.path, pieces), "source_asset": TABLE, "split": split,
            "example_id": f"git-conflict.{pair}", "edit_tags": [], "tool_calls": [],
            "kind": "conflict", "repo": repo_row["key"], "files": json.dumps([c.path]),
            "conflicted_files": json.dumps({c.path: c.conflicted}), "resolved_files": json.dumps({c.path: c.resolved}),
            "ours_files": json.dumps({c.path: c.ours}), "theirs_files": json.dumps({c.path: c.theirs}),
            "base_files": json.dumps({c.path: c.base}), "bug_a": a["instance_id"], "bug_b": b["instance_id"],
            "desc_a": fix_description(a), "desc_b": fix_description(b), "n_conflicts": len(pieces),
            "FAIL_TO_PASS": f2p, "PASS_TO_PASS": p2p, "commit": "", "message": "", "source": repo_row["spec"]}


def held_out_whole(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(rows to keep, train rows dropped because they share a bug with a test row): no test fix in train."""
    test_bugs = {r[k] for r in rows if r["split"] == "test" for k in ("bug_a", "bug_b")}
    leaked = [r for r in rows if r["split"] == "train" and {r["bug_a"], r["bug_b"]} & test_bugs]
    return [r for r in rows if r not in leaked], leaked


# --- running the tests on resolved files -------------------------------------------------------------------
def run_with_files(sandbox: Sandbox, repo: PreparedRepo, files: dict[str, str], timeout_s: float) -> dict[str, str]:
    """Test id -> outcome of the repo's suite in the jail with `files` written over the clean checkout; only
    the shared runner's own report counts (datagen.swe.repos: RUNNER, parse_pytest_summary with the nonce)."""
    nonce, nonce_files = new_nonce()
    job = SandboxJob(command=test_command(repo), files={**files, **nonce_files},
                     input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT)],
                     env={"PYTHONPATH": repo.pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}, timeout_s=timeout_s)
    result = sandbox.run_job(job)
    return parse_pytest_summary(result.stdout, nonce) if result.status in ("ok", "failed") else {}


def verdict(tests: dict[str, str], f2p: list[str], p2p: list[str]) -> tuple[bool, str]:
    """(every FAIL_TO_PASS and PASS_TO_PASS test PASSED, why not)."""
    if not tests:
        return False, "no pytest summary (the run crashed, timed out or printed after pytest)"
    bad_f2p = [t for t in f2p if tests.get(t) not in PASSING]
    bad_p2p = [t for t in p2p if tests.get(t) not in PASSING]
    if bad_f2p or bad_p2p:
        first = (bad_f2p or bad_p2p)[0]
        return False, (f"{len(bad_f2p)} FAIL_TO_PASS and {len(bad_p2p)} PASS_TO_PASS tests not passing "
                       f"(first: {first} {tests.get(first, 'MISSING')})")
    return True, "all tests pass"


def validate_conflict(sandbox: Sandbox, repo: PreparedRepo, row: dict, timeout_s: float) -> str:
    """"" when gold passes every test and ours and theirs each fail a FAIL_TO_PASS test; else why not."""
    f2p, p2p = list(row["FAIL_TO_PASS"]), list(row["PASS_TO_PASS"])
    ok, why = verdict(run_with_files(sandbox, repo, json.loads(row["resolved_files"]), timeout_s), f2p, p2p)
    if not ok:
        return f"gold resolution fails: {why}"
    for side in ("ours_files", "theirs_files"):
        tests = run_with_files(sandbox, repo, json.loads(row[side]), timeout_s)
        if not tests or all(tests.get(t) in PASSING for t in f2p):
            return f"keeping {side.split('_')[0]} only passes every FAIL_TO_PASS test (or crashed)"
    return ""


def build_conflict_rows(sandbox: Sandbox, repo_row: dict, tasks: list[dict], settings: GitTaskSettings,
                        progress=None) -> tuple[list[dict], list[dict], dict]:
    """(conflict rows, rejected pairs with reasons, stats) for one swe_repos row and its swesmith_tasks rows."""
    from datagen.swe.repos import repo_from_row

    repo = repo_from_row(repo_row)
    t0 = time.monotonic()
    pairs = candidate_pairs(tasks, settings.max_gap_lines)
    built, rejected = [], []
    for a, b in pairs:
        pair_id = f"{a['instance_id']}+{b['instance_id']}"
        path = a["files"][0]
        original = (Path(repo.repo_dir) / path).read_text()
        conflict, why = make_conflict(original, path, a["patch"], b["patch"])
        if conflict is None:
            rejected.append({"pair": pair_id, "reason": why})
        elif gold_pieces(conflict.conflicted, conflict.resolved) is None:
            rejected.append({"pair": pair_id, "reason": "the merged file's clean parts are not the clean file's"})
        else:
            built.append(conflict_row(repo_row, a, b, conflict, settings))
        if len(built) >= settings.max_pairs_per_repo:
            break
    done = [0]

    def check(row):
        out = validate_conflict(sandbox, repo, row, settings.timeout_s)
        done[0] += 1
        if progress:
            progress(done[0], len(built))
        return out

    built, leaked = held_out_whole(built)
    rejected += [{"pair": r["example_id"], "reason": "shares a bug with a test pair"} for r in leaked]
    reasons = sandbox.map(check, built)
    rows = [r for r, why in zip(built, reasons) if not why]
    rejected += [{"pair": r["example_id"], "reason": why} for r, why in zip(built, reasons) if why]
    stats = {"repo": repo.key, "candidate_pairs": len(pairs), "conflicts": len(built), "validated": len(rows),
             "wall_s": round(time.monotonic() - t0, 2)}
    return rows, rejected, stats


# --- commit messages from real histories --------------------------------------------------------------------
def history_clone(source: str, root: Path) -> Path:
    """A clone of `source` (path, bundle or URL) made by us under `root` (its own hooks and config never run)."""
    name = hashlib.sha256(source.encode()).hexdigest()[:12]
    dest = Path(root) / f"history-{name}"
    git_clone(source, dest)
    return dest


def commit_pairs(repo: Path, max_commits: int, max_diff_chars: int) -> list[dict]:
    """(sha, diff, human message) per commit with exactly one parent, newest first; the diff is cut at
    `max_diff_chars` (at a line end, with a note). Read with git in a clone we made."""
    log = _host_git(repo, "log", "--no-merges", f"--max-count={max_commits}", "--format=%H %P%x00%B%x01").stdout
    out = []
    for entry in log.split("\x01"):
        head, _, message = entry.strip("\n").partition("\x00")
        shas = head.split()
        if len(shas) != 2 or not message.strip():
            continue  # a root commit (no parent) or an empty message
        diff = _host_git(repo, "diff", "--no-color", "--no-ext-diff", shas[1], shas[0]).stdout
        out.append({"commit": shas[0], "diff": cut_diff(diff, max_diff_chars), "message": message.strip()})
    return out


def cut_diff(diff: str, limit: int) -> str:
    if len(diff) <= limit:
        return diff
    cut = diff[:limit].rsplit("\n", 1)[0] + "\n"
    return cut + f"[... diff cut: {len(diff) - len(cut)} of {len(diff)} characters left out ...]\n"


def commit_prompt(diff: str) -> str:
    return f"Write the commit message for this change (a short summary line, then details if needed).\n\n{diff}"


def commit_rows(source: str, repo_key: str, pairs: list[dict], split_by_repo: bool,
                settings: GitTaskSettings) -> list[dict]:
    rows = []
    for p in pairs:
        split = stable_split(repo_key if split_by_repo else p["commit"], settings.test_percent, settings.seed)
        rows.append({"task_type": "plan", "language": "none", "prompt": commit_prompt(p["diff"]),
                     "answer": p["message"], "source_asset": TABLE, "split": split,
                     "example_id": f"git-commit.{repo_key}.{p['commit'][:12]}", "edit_tags": [], "tool_calls": [],
                     "kind": "commit_message", "repo": repo_key, "files": "[]", "conflicted_files": "{}",
                     "resolved_files": "{}", "ours_files": "{}", "theirs_files": "{}", "base_files": "{}",
                     "bug_a": "", "bug_b": "", "desc_a": "", "desc_b": "", "n_conflicts": 0,
                     "FAIL_TO_PASS": [], "PASS_TO_PASS": [], "commit": p["commit"], "message": p["message"],
                     "source": source})
    return rows


def build_commit_rows(sources: list[str], root: Path, settings: GitTaskSettings) -> tuple[list[dict], list[dict]]:
    """(commit-message rows of every history source, sources that could not be read with the reason)."""
    rows, failed = [], []
    split_by_repo = len(sources) > 1
    for source in sources:
        try:
            repo = history_clone(source, root)
            pairs = commit_pairs(repo, settings.max_commits_per_source, settings.max_diff_chars)
        except Exception as exc:  # one unreadable source is recorded, the others still count
            failed.append({"source": source, "reason": f"{type(exc).__name__}: {str(exc)[-300:]}"})
            continue
        key = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source.rstrip("/")).name.removesuffix(".git").removesuffix(".bundle")).strip("-")
        rows += commit_rows(source, key or "history", pairs, split_by_repo, settings)
    return rows, failed


def default_history_sources(polyglot_source: str, repo_rows: list[dict]) -> list[str]:
    """The Polyglot benchmark source and every git-kind swe_repos checkout (a clone the project made)."""
    out = [polyglot_source] if polyglot_source else []
    out += [r["repo_dir"] for r in repo_rows if r.get("kind") in ("git", "swesmith", "path")
            and Path(r.get("repo_dir") or "/nonexistent", ".git").is_dir()]
    return list(dict.fromkeys(out))


# --- the table ----------------------------------------------------------------------------------------------
def hold_out_one_conflict(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(rows, train rows dropped): where there are conflicts but the hash split held none out (few repositories,
    few pairs), the conflict of the smallest hash goes to the test split, so the benchmark has an item; train
    conflicts sharing one of its bugs are then dropped, as `held_out_whole` does."""
    conflicts = [r for r in rows if r["kind"] == "conflict"]
    if not conflicts or any(r["split"] == "test" for r in conflicts):
        return rows, []
    min(conflicts, key=lambda r: hashlib.sha256(r["example_id"].encode()).hexdigest())["split"] = "test"
    kept, leaked = held_out_whole(conflicts)
    return [r for r in rows if r["kind"] != "conflict"] + kept, leaked


def build_git_tasks(settings: GitTaskSettings, sandbox: Sandbox, warehouse, polyglot_source: str,
                    log=None) -> dict:
    """git_tasks from every materialised swe_repos / swesmith_tasks partition and the history sources; writes
    the table (rejections to the quarantine) and returns the counts its asset reports."""
    repo_rows = {r["key"]: r for key in warehouse.partitions("swe_repos")
                 for r in warehouse.read_table("swe_repos", partition=key).to_pylist()}
    rows, rejected, stats = [], [], []
    for key in warehouse.partitions("swesmith_tasks"):
        repo_row = repo_rows.get(key)
        if repo_row is None or repo_row.get("kind") == "dataset":
            continue  # task rows without a prepared checkout cannot be merged or tested here
        tasks = warehouse.read_table("swesmith_tasks", partition=key).to_pylist()
        got, rej, st = build_conflict_rows(sandbox, repo_row, tasks, settings)
        rows += got
        rejected += [{**r, "repo": key} for r in rej]
        stats.append(st)
        if log:
            log.info(f"git_tasks: {key}: {st}")
    rows, leaked = hold_out_one_conflict(rows)
    rejected += [{"pair": r["example_id"], "reason": "shares a bug with a test pair"} for r in leaked]
    sources = list(settings.history_sources) or default_history_sources(polyglot_source, list(repo_rows.values()))
    commits, failed = build_commit_rows(sources, warehouse.path("clones", "git-histories", ".keep").parent, settings)
    rows += commits
    rejected += [{"pair": "", **f} for f in failed]
    if not rows:
        raise RuntimeError(f"git_tasks: no conflict and no commit task (repos {stats}, history failures {failed})")
    warehouse.write_table(TABLE, rows)
    warehouse.write_quarantine(TABLE, rejected)
    counts: dict[str, int] = {}
    for r in rows:
        counts[f"{r['kind']}/{r['split']}"] = counts.get(f"{r['kind']}/{r['split']}", 0) + 1
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    return {"rows": len(rows), "counts": counts, "repos": stats, "history_sources": sources,
            "history_failures": failed, "rejected": len(rejected), "rejections": reasons}
