"""Git workflows the model drives, in a jailed session over a repository copy (git runs only in the jail):
create a feature branch, commit a change with a model-written message, rebase onto an updated main (on a
conflict the model proposes the resolution and the tests decide: it is kept only when they pass, otherwise
the rebase is aborted and the branch stays as it was), and write the pull-request description from
`git diff main...feature`.

The text comes from a `Writer`: `write(kind, prompt) -> str` with kind `commit_message`, `resolution` (the
RESOLVE-block format of datagen.git_tasks) or `pr_description`. `GoldWriter` returns fixed texts (the oracle
pattern: a check of the plumbing and a demonstration); `ModelWriter` asks a checkpoint (greedy).
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import asdict, dataclass, field

from datagen.git_tasks import apply_resolution, commit_prompt, conflict_prompt, cut_diff
from datagen.swe.repos import ENV_MOUNT, PASSING, parse_pytest_summary, repo_from_row, test_command, write_nonce
from datagen.swe.trajectories import GIT_ENV
from inference.specs import load_local, parse_spec

KINDS = ("commit_message", "resolution", "pr_description")
_TASK = {"commit_message": "plan", "resolution": "diff_edit", "pr_description": "plan"}


@dataclass
class GitStep:
    name: str  # branch | commit | update_main | rebase | resolve | tests | rebase_continue | rebase_abort | pr
    command: str
    output: str
    exit_code: int | None
    ok: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class WorkflowRecord:
    feature: str
    main: str
    steps: list[GitStep] = field(default_factory=list)
    commit_message: str = ""
    conflict_files: list[str] = field(default_factory=list)
    resolution: str = ""
    resolution_status: str = "no_conflict"  # no_conflict | kept | rejected (answer) | tests_failed | error
    tests: dict[str, str] = field(default_factory=dict)
    rebased: bool = False
    pr_description: str = ""
    outcome: str = "error"  # rebased | aborted | error

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": [s.to_dict() for s in self.steps]}


class GoldWriter:
    """Fixed texts per kind (the oracle pattern): deterministic, no model."""

    name = "gold"

    def __init__(self, texts: dict[str, str]):
        self.texts = texts
        self.prompts: dict[str, str] = {}

    def write(self, kind: str, prompt: str) -> str:
        self.prompts[kind] = prompt
        return self.texts.get(kind, "")


class ModelWriter:
    """A `local:` checkpoint, greedy, one text per request (the prompt's tail kept when it is too long)."""

    def __init__(self, spec: str, max_new_tokens: int = 128):
        model, tok = load_local(parse_spec(spec))
        if tok is None:
            raise ValueError(f"{spec}: the checkpoint has no tokenizer/, so it cannot write text")
        self.name, self.model, self.tokenizer = spec, model, tok
        self.max_new_tokens = min(max_new_tokens, model.config.max_seq_len // 2)

    def write(self, kind: str, prompt: str) -> str:
        from model.generate import encode_prompt, generate_ids
        from model.vocab import language_id, task_id

        ids = encode_prompt(self.tokenizer, prompt)[-(self.model.config.max_seq_len - self.max_new_tokens):]
        new = generate_ids(self.model, [ids], language_id("python" if kind == "resolution" else "none"),
                           task_id(_TASK[kind]), max_new_tokens=self.max_new_tokens,
                           eos_id=getattr(self.tokenizer, "eos_id", None))[0]
        return self.tokenizer.decode(new)


def _run(session, record: WorkflowRecord, name: str, command: str, timeout_s: float = 60.0):
    r = session.run(command, timeout_s=timeout_s)
    record.steps.append(GitStep(name, command, r.output[-2000:], r.exit_code, r.status == "ok"))
    return r


def _write_files(session, files: dict[str, str]) -> None:
    for path, text in files.items():
        session.run(f"mkdir -p \"$(dirname {shlex.quote(path)})\"")
        if session.write_file(path, text).status != "ok":
            raise RuntimeError(f"could not write {path} in the session")


def suite_passes(output: str, nonce: str) -> tuple[bool, dict[str, str]]:
    """(at least one test ran and every test in pytest's own summary passed, the outcomes): only a report of
    the shared runner (datagen.swe.repos.RUNNER) ending with this run's `nonce` counts ("" never passes)."""
    tests = parse_pytest_summary(output, nonce) if nonce else {}
    return bool(tests) and all(o in PASSING for o in tests.values()), tests


def run_git_workflow(session, writer, *, feature: str, change: dict[str, str], main_update: dict[str, str],
                     test_command: str, main: str = "main", update_message: str = "upstream change",
                     max_diff_chars: int = 4000, test_timeout_s: float = 120.0) -> WorkflowRecord:
    """The whole workflow in `session` (its /work a git repo on `main`): branch `feature`, commit `change`
    (path -> text) with the writer's message, commit `main_update` on main, rebase the feature onto it
    (resolving a conflict with the writer, kept only if `test_command` passes), then the PR description.
    `test_command` runs pytest through the shared runner (`datagen.swe.repos.runner_command`) in /work: it
    reads the nonce this workflow writes there, and any other command's output never passes."""
    rec = WorkflowRecord(feature, main)
    try:
        if not _run(session, rec, "branch", f"git checkout -q -b {shlex.quote(feature)} {shlex.quote(main)}").status == "ok":
            return rec
        _write_files(session, change)
        diff = _run(session, rec, "diff", "git add -A && git diff --cached --no-color")
        rec.commit_message = writer.write("commit_message", commit_prompt(cut_diff(diff.output, max_diff_chars))).strip() \
            or "Update " + ", ".join(sorted(change))  # git refuses an empty message
        session.write_file("/tmp/.hrm_msg", rec.commit_message + "\n")
        if _run(session, rec, "commit", "git commit -q -F /tmp/.hrm_msg").status != "ok":
            return rec
        _run(session, rec, "update_main", f"git checkout -q {shlex.quote(main)}")
        _write_files(session, main_update)
        session.write_file("/tmp/.hrm_msg", update_message + "\n")
        _run(session, rec, "update_main", f"git commit -qam \"$(cat /tmp/.hrm_msg)\" && git checkout -q {shlex.quote(feature)}")
        rebase = _run(session, rec, "rebase", f"git rebase {shlex.quote(main)}")
        if rebase.status != "ok":
            _resolve(session, rec, writer, test_command, test_timeout_s)
        else:
            rec.rebased = True
        rec.outcome = "rebased" if rec.rebased else "aborted"
        pr = _run(session, rec, "pr", f"git diff --no-color {shlex.quote(main)}...{shlex.quote(feature)}")
        rec.pr_description = writer.write("pr_description", pr_prompt(rec.commit_message,
                                                                       cut_diff(pr.output, max_diff_chars))).strip()
    except Exception as exc:  # the session or the writer broke: recorded, nothing hangs
        rec.outcome = "error"
        rec.steps.append(GitStep("error", "", f"{type(exc).__name__}: {str(exc)[-500:]}", None, False))
    return rec


def pr_prompt(commit_message: str, diff: str) -> str:
    return ("Write the pull-request description (what changes and why, how it was tested) for this branch.\n"
            f"Commit: {commit_message}\n\n{diff}")


def _resolve(session, rec: WorkflowRecord, writer, test_command: str, test_timeout_s: float) -> None:
    """The rebase stopped: ask the writer, keep the resolution only when the tests pass, else abort."""
    names = _run(session, rec, "conflicts", "git diff --name-only --diff-filter=U")
    rec.conflict_files = [n for n in names.output.splitlines() if n.strip()]
    if not rec.conflict_files:
        rec.resolution_status = "error"
        _run(session, rec, "rebase_abort", "git rebase --abort")
        return
    conflicted = {}
    for path in rec.conflict_files:
        # bytes through base64, so the host sees exactly the jail's text
        r = session.run(f"base64 -w0 {shlex.quote(path)}")
        conflicted[path] = base64.b64decode(r.output.strip()).decode("utf-8", "replace")
    prompt = "\n\n".join(conflict_prompt(p, t, f"the feature branch {rec.feature}", f"the updated {rec.main}", 4)
                         for p, t in conflicted.items())
    rec.resolution = writer.write("resolution", prompt)
    try:
        resolved = apply_resolution(conflicted, rec.resolution)
    except ValueError as exc:
        rec.resolution_status = "rejected"
        rec.steps.append(GitStep("resolve", "", f"answer rejected: {exc}", None, False))
        _run(session, rec, "rebase_abort", "git rebase --abort")
        return
    _write_files(session, resolved)
    nonce = write_nonce(session, "/work")
    run = _run(session, rec, "tests", test_command + " 2>&1", timeout_s=test_timeout_s)
    ok, rec.tests = suite_passes(run.output, nonce)
    if not ok:
        rec.resolution_status = "tests_failed"
        _run(session, rec, "rebase_abort", "git rebase --abort")
        return
    cont = _run(session, rec, "rebase_continue",
                f"git add -- {' '.join(shlex.quote(p) for p in resolved)} && GIT_EDITOR=true git rebase --continue")
    rec.resolution_status = "kept" if cont.status == "ok" else "error"
    rec.rebased = cont.status == "ok"
    if not rec.rebased:
        _run(session, rec, "rebase_abort", "git rebase --abort")


def conflict_workflow(sessions, sandbox, repo_row: dict, row: dict, writer, test_timeout_s: float = 120.0
                      ) -> WorkflowRecord:
    """The workflow on a `git_tasks` conflict row: main holds both bugs (`base_files`), the feature fixes bug A
    (`ours_files`), main moves on with the fix of bug B (`theirs_files`), so the rebase stops on the row's
    conflict; the repository's own test command decides. (The benchmark's grade of the final files is
    evals.git.grade_resolution in a fresh jail.)"""
    repo = repo_from_row(repo_row)
    env = {"PATH": f"{ENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": repo.pythonpath,
           "PYTHONDONTWRITEBYTECODE": "1", **GIT_ENV}
    with sessions.open(input_dir=repo.repo_dir, ro_binds=[(repo.env_dir, ENV_MOUNT)], env=env,
                       sandbox=sandbox) as session:
        r = session.run("git checkout -q -B main && git clean -qfdx")
        if r.status != "ok":
            raise RuntimeError(f"{row['example_id']}: the checkout is not a usable git repository: {r.output[-300:]}")
        _write_files(session, json.loads(row["base_files"]))
        r = session.run("git commit -qam 'both bugs'")
        if r.status != "ok":
            raise RuntimeError(f"{row['example_id']}: could not commit the base: {r.output[-300:]}")
        return run_git_workflow(session, writer, feature="fix-a", change=json.loads(row["ours_files"]),
                                main_update=json.loads(row["theirs_files"]), test_command=shlex.join(test_command(repo)),
                                update_message=f"Fix: {row['desc_b']}", test_timeout_s=test_timeout_s)


def record_json(rec: WorkflowRecord) -> str:
    return json.dumps(rec.to_dict())
