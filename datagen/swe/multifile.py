"""Multi-file SWE tasks: validated single-file bugs of one repository combined, so the fix spans files.

SWE-smith's `combine` idea across files: two (or three) swesmith_tasks bugs of one repo, each in a DIFFERENT
file, become one task whose bug patch is their union (the gold fix is its reverse). The union is validated in
the Sandbox like a single bug (datagen.swe.tasks): it must apply, FAIL_TO_PASS = baseline tests that fail with
it, PASS_TO_PASS = the rest of the baseline, passing. Then each partial fix is run too: the task is kept only
when fixing any one file alone (the other bugs still in place) leaves some FAIL_TO_PASS test failing, so no
single-file fix resolves it.

Split: each component bug is assigned train or test by a stable hash of its own instance id, and only bugs of
the same side are combined, so a bug seen in a train task never appears in a test task.

Prompt: the problem statement (SWE-smith's static templates), the repository map (datagen.repomap, parsed on
the buggy files, ranked on the task's files and the statement) and the task's files as they are with the bug
(whole when they fit the budget, else the windows around the changed lines: oracle file retrieval, as the
SWE-bench "oracle" setting). Answer: SEARCH/REPLACE blocks (model.edits markers), each after a line naming its
file, that turn the buggy files back into the clean ones.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from datagen.repomap import approx_tokens, build_repo_map
from datagen.swe import interface
from datagen.swe.repos import PASSING, PreparedRepo, repo_from_row, run_tests
from datagen.swe.tasks import instance_prefix, static_problem_statement
from model.edits import EditBlock, apply_edit_blocks, format_edit_blocks, line_matches, whole_lines

TABLE = "multifile_tasks"
TASK_TYPE, LANGUAGE, STAGE = "diff_edit", "python", 3
ANSWER_INSTRUCTIONS = ("Fix the bugs. Answer with SEARCH/REPLACE blocks, each after a line naming its file; "
                       "the fix spans more than one file.")


@dataclass(frozen=True)
class MultiFileSettings:
    seed: int = 18
    max_tasks_per_repo: int = 40
    bugs_per_task: int = 2
    max_uses_per_bug: int = 5  # how many tasks one component bug may join
    test_percent: int = 30  # component bugs held out for test tasks
    interface_tasks: int = 10  # interface-change tasks per repo (datagen.swe.interface); 0 = none
    statement_budget_tokens: int = 200  # a statement listing hundreds of failing tests is cut in the prompt
    map_budget_tokens: int = 300
    files_budget_tokens: int = 1500
    window_lines: int = 6  # lines shown around each changed region when a file does not fit whole
    min_timeout_s: float = 20.0
    max_timeout_s: float = 120.0


# --- patches on the host (parsing only: nothing from the repository runs) --------------------------------
def patched_files(repo_dir: str | Path, patch: str) -> dict[str, str]:
    """path -> text after applying the unified diff `patch` to the clean checkout; ValueError naming the file
    when a hunk does not match."""
    from unidiff import PatchSet

    out = {}
    for pf in PatchSet(patch):
        path = pf.path
        if pf.is_added_file or pf.is_removed_file or not _inside(path):
            raise ValueError(f"patch touches {path!r}: only edits of existing files inside the repository")
        source = (Path(repo_dir) / path).read_text().splitlines(keepends=True)
        result, at = [], 0
        for hunk in pf:
            start = max(hunk.source_start - 1, 0)
            result += source[at:start]
            at = start
            for line in hunk:
                if line.is_added:
                    result.append(line.value)
                    continue
                if at >= len(source) or source[at].rstrip("\n") != line.value.rstrip("\n"):
                    raise ValueError(f"{path}: hunk at line {hunk.source_start} does not match the checkout")
                if line.is_context:
                    result.append(source[at])
                at += 1
        out[path] = "".join(result + source[at:])
    return out


def _inside(path: str) -> bool:
    pure = Path(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts


def fix_blocks(buggy: str, clean: str) -> list[EditBlock]:
    """SEARCH/REPLACE blocks turning `buggy` into `clean`: one per changed region, with the least context
    (growing from one line) that makes each SEARCH match exactly once where it is applied."""
    a, b = buggy.splitlines(keepends=True), clean.splitlines(keepends=True)
    blocks: list[EditBlock] = []
    text = whole_lines(buggy)
    shift = 0  # line offset of the text edited so far against `buggy`
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines = text.splitlines(keepends=True)
        s1, s2 = i1 + shift, i2 + shift
        for context in range(1, len(lines) + 1):
            lo, hi = max(0, s1 - context), min(len(lines), s2 + context)
            search = "".join(lines[lo:hi])
            if search and len(line_matches(text, search)) == 1:
                break
        block = EditBlock(search, "".join(lines[lo:s1]) + "".join(b[j1:j2]) + "".join(lines[s2:hi]))
        text = apply_edit_blocks(text, [block])
        blocks.append(block)
        shift += (j2 - j1) - (i2 - i1)
    if apply_edit_blocks(buggy, blocks) != whole_lines(clean):
        raise ValueError("the fix blocks do not reproduce the clean file")
    return blocks


def gold_answer(repo_dir: str | Path, patch: str) -> str:
    """The gold fix of a bug patch as SEARCH/REPLACE blocks, each after its file name line."""
    buggy = patched_files(repo_dir, patch)
    return "".join(format_edit_blocks(fix_blocks(text, (Path(repo_dir) / path).read_text()), path)
                   for path, text in sorted(buggy.items()))


# --- combining -------------------------------------------------------------------------------------------
def component_split(instance_id: str, test_percent: int) -> str:
    """train or test for a component bug, by a stable hash of its instance id."""
    bucket = int(hashlib.sha1(instance_id.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < test_percent else "train"


def combinations(bugs: list[dict], settings: MultiFileSettings) -> list[tuple[dict, ...]]:
    """Candidate groups of `bugs_per_task` bugs in distinct files and one split, seeded, each bug in at most
    `max_uses_per_bug` groups; at most twice max_tasks_per_repo (validation rejects some, and stops validating
    once enough are kept)."""
    rng = random.Random(settings.seed)
    by_split: dict[str, list[dict]] = {}
    for bug in sorted(bugs, key=lambda b: b["instance_id"]):
        by_split.setdefault(component_split(bug["instance_id"], settings.test_percent), []).append(bug)
    groups = []
    for split in sorted(by_split):
        candidates = [g for g in itertools.combinations(by_split[split], settings.bugs_per_task)
                      if len({b["files"][0] for b in g}) == len(g)]
        rng.shuffle(candidates)
        groups += candidates
    rng.shuffle(groups)
    uses: Counter = Counter()
    chosen = []
    for group in groups:
        if any(uses[b["instance_id"]] >= settings.max_uses_per_bug for b in group):
            continue
        uses.update(b["instance_id"] for b in group)
        chosen.append(group)
        if len(chosen) >= 2 * settings.max_tasks_per_repo:
            break
    return chosen


def union_patch(bugs: tuple[dict, ...]) -> str:
    return "".join(b["patch"] if b["patch"].endswith("\n") else b["patch"] + "\n" for b in bugs)


def combined_id(repo: PreparedRepo, bugs: tuple[dict, ...]) -> str:
    digest = hashlib.sha1("\n".join(sorted(b["instance_id"] for b in bugs)).encode()).hexdigest()[:8]
    return f"{instance_prefix(repo)}.combine_files__{digest}"


def validate_combination(sandbox, repo: PreparedRepo, baseline_passed: list[str], bugs: tuple[dict, ...],
                         timeout_s: float) -> dict:
    """{"ok", "reason", "f2p", "p2p", "xfail", "wall_s"}: the union's tests, then each one-file-only fix."""
    run = run_tests(sandbox, repo, union_patch(bugs), timeout_s=timeout_s)
    if run.status not in ("ok", "failed"):
        return {"ok": False, "reason": f"validation run {run.status}", "detail": run.output_tail[-300:]}
    f2p = [t for t in baseline_passed if run.tests.get(t) not in PASSING]
    p2p = [t for t in baseline_passed if run.tests.get(t) in PASSING]
    if not f2p:
        return {"ok": False, "reason": "no FAIL_TO_PASS test (the bugs cancel out)"}
    for fixed in bugs:
        rest = tuple(b for b in bugs if b is not fixed)
        partial = run_tests(sandbox, repo, union_patch(rest), timeout_s=timeout_s)
        if partial.status not in ("ok", "failed"):
            return {"ok": False, "reason": f"partial-fix run {partial.status}"}
        if all(partial.tests.get(t) in PASSING for t in f2p):
            return {"ok": False, "reason": f"fixing {fixed['files'][0]} alone resolves the task"}
    return {"ok": True, "reason": "", "f2p": f2p, "p2p": p2p, "wall_s": run.wall_s,
            "xfail": sorted(t for t in p2p if run.tests.get(t) == "XFAIL")}


# --- prompt and row ----------------------------------------------------------------------------------------
def shown_file(text: str, changed_lines: list[int], window: int) -> str:
    """The file's lines within `window` of a changed line (1-based), gaps shown as `...`."""
    lines = text.splitlines(keepends=True)
    keep = sorted({i for n in changed_lines for i in range(max(0, n - 1 - window), min(len(lines), n + window))})
    out, last = [], -1
    for i in keep:
        if i != last + 1:
            out.append("...\n")
        out.append(lines[i])
        last = i
    return "".join(out) + ("...\n" if keep and keep[-1] < len(lines) - 1 else "")


def buggy_lines(repo_dir: str | Path, patch: str) -> dict[str, list[int]]:
    """path -> the lines (1-based, in the buggy file) the bug added or next to which it removed lines."""
    from unidiff import PatchSet

    out: dict[str, list[int]] = {}
    for pf in PatchSet(patch):
        for hunk in pf:
            for line in hunk:
                if line.is_added:
                    out.setdefault(pf.path, []).append(line.target_line_no)
                elif line.is_removed:
                    out.setdefault(pf.path, []).append(max(1, hunk.target_start + hunk.target_length // 2))
    return out


def head_lines(text: str, budget_tokens: int, count) -> str:
    """The first lines of text within budget_tokens, and how many lines were left out."""
    lines = text.splitlines()
    kept: list[str] = []
    for line in lines:
        if count("\n".join(kept + [line])) > budget_tokens:
            break
        kept.append(line)
    left = len(lines) - len(kept)
    return "\n".join(kept) + (f"\n... ({left} more lines)" if left else "")


def multifile_prompt(statement: str, repo_dir: str | Path, buggy: dict[str, str], changed: dict[str, list[int]],
                     settings: MultiFileSettings, count_tokens=None) -> str:
    """Problem statement, ranked repository map, the task's files (whole or windows), the answer format."""
    count = count_tokens or approx_tokens
    statement = head_lines(statement.strip(), settings.statement_budget_tokens, count)
    repo_map = build_repo_map(repo_dir, overrides=buggy).render(
        focus_files=sorted(buggy), query=statement, budget_tokens=settings.map_budget_tokens, count_tokens=count,
        include_focus=False)
    whole = {p: t for p, t in buggy.items()}
    if count("".join(whole.values())) > settings.files_budget_tokens:
        whole = {p: shown_file(t, changed.get(p, []), settings.window_lines) for p, t in buggy.items()}
    files = "".join(f"{path}\n```python\n{text}```\n\n" for path, text in sorted(whole.items()))
    return (f"{statement.strip()}\n\nRepository map:\n{repo_map}\nFiles:\n{files}{ANSWER_INSTRUCTIONS}\n")


def task_row(repo: PreparedRepo, bugs: tuple[dict, ...], check: dict, split: str, settings: MultiFileSettings,
             instance_id: str = "", components: list[str] | None = None) -> dict:
    """The table row (task and TrainingExample columns) of a validated group; `instance_id` and `components`
    default to the combined bugs' (an interface change passes its own id and no component bugs)."""
    patch = union_patch(bugs)
    files = sorted(b["files"][0] for b in bugs)
    components = sorted(b["instance_id"] for b in bugs) if components is None else components
    row = {"instance_id": instance_id or combined_id(repo, bugs), "repo": f"swesmith/{instance_prefix(repo)}",
           "patch": patch, "FAIL_TO_PASS": check["f2p"], "PASS_TO_PASS": check["p2p"], "xfail_tests": check["xfail"],
           "files": json.dumps(files), "n_files": len(files), "components": json.dumps(components),
           "bug_types": json.dumps(sorted({b["bug_type"] for b in bugs})),
           "n_fail_to_pass": len(check["f2p"]), "n_pass_to_pass": len(check["p2p"]), "base_commit": repo.commit,
           "source_repo": repo.key, "validation_wall_s": check["wall_s"]}
    row["problem_statement"] = static_problem_statement(
        row, settings.seed, funcs=sorted({b["entity"] for b in bugs if b.get("entity")}))
    buggy = patched_files(repo.repo_dir, patch)
    prompt = multifile_prompt(row["problem_statement"], repo.repo_dir, buggy, buggy_lines(repo.repo_dir, patch),
                              settings)
    return {**row, "task_type": TASK_TYPE, "language": LANGUAGE, "prompt": prompt,
            "answer": gold_answer(repo.repo_dir, patch), "source_asset": TABLE, "split": split,
            "example_id": row["instance_id"], "edit_tags": "[]", "tool_calls": "[]", "stage": STAGE}


def build_multifile_tasks(sandbox, repo_row: dict, bugs: list[dict], settings: MultiFileSettings = MultiFileSettings(),
                          progress=None) -> tuple[list[dict], list[dict], dict]:
    """(task rows, rejected combinations with reasons, stats) for one swe_repos row and its swesmith_tasks."""
    repo = repo_from_row(repo_row)
    usable = [b for b in bugs if b.get("source") == "generated" and b.get("base_commit") == repo.commit
              and len(list(b["files"])) == 1]
    usable = [{**b, "files": list(b["files"])} for b in usable]
    groups = combinations(usable, settings) if len({b["files"][0] for b in usable}) > 1 else []
    timeout = min(settings.max_timeout_s, max(settings.min_timeout_s, 10 * float(repo_row["baseline_wall_s"])))
    baseline = list(repo_row["passed_tests"])
    renames = interface.interface_bugs(repo.repo_dir, instance_prefix(repo), settings.interface_tasks) \
        if settings.interface_tasks else []
    done, expected = [0], min(len(groups), settings.max_tasks_per_repo) + len(renames)

    def check(group):
        out = validate_combination(sandbox, repo, baseline, group, timeout)
        done[0] += 1
        if progress:
            progress(done[0], max(expected, done[0]))
        return out

    t0 = time.monotonic()
    rows, rejected, pending, validated = [], [], list(groups), 0
    while pending and len(rows) < settings.max_tasks_per_repo:  # validate only as many as may still be kept
        need = settings.max_tasks_per_repo - len(rows)
        batch, pending = pending[:need], pending[need:]
        validated += len(batch)
        for group, result in zip(batch, sandbox.map(check, batch)):
            if result["ok"]:
                split = component_split(group[0]["instance_id"], settings.test_percent)
                rows.append(task_row(repo, group, result, split, settings))
            else:
                rejected.append({"instance_id": combined_id(repo, group),
                                 "components": json.dumps([b["instance_id"] for b in group]), "reason": result["reason"]})
    n_combined = len(rows)
    results = sandbox.map(check, [interface.as_components(b) for b in renames])
    for bug, result in zip(renames, results):
        if not result["ok"]:
            rejected.append({"instance_id": bug["instance_id"], "components": "[]", "reason": result["reason"]})
        else:
            split = component_split(bug["instance_id"], settings.test_percent)
            rows.append(task_row(repo, interface.as_components(bug), result, split, settings, bug["instance_id"], []))
    stats = {"repo": repo.key, "bugs": len(bugs), "usable_bugs": len(usable),
             "files_with_bugs": len({b["files"][0] for b in usable}), "candidates": validated,
             "candidates_not_needed": len(pending),
             "tasks": n_combined, "interface_candidates": len(renames), "interface_tasks": len(rows) - n_combined,
             "rejected": len(rejected), "validate_s": round(time.monotonic() - t0, 2),
             "by_split": dict(Counter(r["split"] for r in rows))}
    return rows, rejected, stats


def build_multifile(settings: MultiFileSettings, sandbox, warehouse, log=None) -> dict:
    """Rebuild the multifile_tasks table from every materialised swesmith_tasks partition and its swe_repos row."""
    bugs_by_repo: dict[str, list[dict]] = {}
    for bug in warehouse.read_partition_rows("swesmith_tasks"):
        bugs_by_repo.setdefault(bug.get("source_repo") or "", []).append(bug)
    rows, rejected, per_repo = [], [], {}
    for key in sorted(k for k in bugs_by_repo if k):
        if not warehouse.has_table("swe_repos", partition=key):
            per_repo[key] = {"skipped": "no swe_repos row (materialise swe_repos for it)"}
            continue
        repo_row = warehouse.read_table("swe_repos", partition=key).to_pylist()[0]
        if repo_row.get("kind") == "dataset":
            continue

        def progress(done, total, key=key):
            if log and (done % 10 == 0 or done == total):
                log.info(f"{key}: validated {done}/{total} combinations")

        got, lost, stats = build_multifile_tasks(sandbox, repo_row, bugs_by_repo[key], settings, progress)
        rows += got
        rejected += lost
        per_repo[key] = stats
    if not rows:
        raise RuntimeError(f"{TABLE}: no multi-file task survived validation; per repo: {per_repo}. A repository "
                           "needs validated bugs in two or more files (add a multi-file package to HRM_SWE_REPOS)")
    warehouse.write_table(TABLE, rows)
    warehouse.write_quarantine(TABLE, rejected)
    return {"rows": len(rows), "rejected": len(rejected), "per_repo": per_repo,
            "by_split": dict(Counter(r["split"] for r in rows)),
            "by_repo": dict(Counter(r["source_repo"] for r in rows)),
            "by_n_files": dict(Counter(str(r["n_files"]) for r in rows)),
            "rejections": dict(Counter(r["reason"].split(" alone")[0] if "alone" in r["reason"] else r["reason"]
                                       for r in rejected))}


def tasks_check_frame(warehouse):
    """The columns the asset's blocking check audits."""
    frame = warehouse.read_table(TABLE).to_pandas()
    return frame[["instance_id", "n_files", "n_fail_to_pass", "split", "stage", "problem_statement", "answer"]]
