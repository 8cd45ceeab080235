"""Rewards from execution: each sample of a task is judged by running it in the Sandbox, never by its text.

- exec_predict: 1 when the predicted output equals what the program printed (the task's answer), else 0.
- repair: the SEARCH/REPLACE answer is applied with the model's strict apply and the repaired file runs the
  task's hidden calls in the jail (datagen.repair_grading.run_cases). Every call right: 1. Otherwise partial
  credit, `FORMAT + (1 - FORMAT) * PARTIAL * fixed * kept`: `fixed` is the share of the calls the mutant got
  wrong that now come out right, `kept` the share of those it got right that still do (the PASS_TO_PASS /
  FAIL_TO_PASS split of a repository task). A failing call the prompt shows does not count in `fixed`: a
  sample could special-case it. An edit that applies and runs but fixes no hidden failing call earns only
  the format reward. An answer that does not apply, a run that does not end normally, or results that are
  missing or framed wrongly (an early exit with status 0, printed "pass" lines) earn 0: there is no format
  reward for output the grader could not read.
- agent episodes (agents/episode_rl.py), graded at the end by `verify` in a fresh jail: resolved earns 1. A
  patch that changes a graded file, applies and whose tests ran earns `FORMAT + (1 - FORMAT) * PARTIAL *
  fixed * kept` over the task's FAIL_TO_PASS / PASS_TO_PASS tests (only FORMAT for a task graded by its whole
  suite, when pytest's report was read). No patch, a patch that only touches the files the benchmark owns (they are graded in their clean
  versions), one that does not apply, or tests that did not run earn 0.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from datagen.repair_grading import repair_cases, run_cases
from datagen.synthetic import exec_answer_correct
from model.edits import apply_edits

FORMAT = 0.1  # a well-formed edit whose program ran and reported every call
PARTIAL = 0.5  # the most a partial fix earns, before the format reward


@dataclass
class Reward:
    value: float
    kind: str  # exact, wrong, no_answer, fixed, partial, unchanged, no_apply, run_failed, bad_task
    detail: str = ""


def exec_reward(expected: str, answer: str) -> Reward:
    if not answer.strip():
        return Reward(0.0, "no_answer")
    return Reward(1.0, "exact") if exec_answer_correct(expected, answer) else Reward(0.0, "wrong")


class RepairRewards:
    """Repair rewards for the tasks of one run; what each task's mutant returns is run once and kept."""

    def __init__(self, sandbox, timeout_s: float = 10.0):
        self.sandbox, self.timeout_s = sandbox, timeout_s
        self._mutant: dict[str, list | None] = {}
        self._lock = threading.Lock()

    def _mutant_results(self, task: dict, calls: list[str]) -> list | None:
        with self._lock:
            if task["task_id"] in self._mutant:
                return self._mutant[task["task_id"]]
        got, _ = run_cases(self.sandbox, task["language"], task["program"], calls, self.timeout_s)
        with self._lock:
            self._mutant[task["task_id"]] = got
        return got

    def __call__(self, task: dict, answer: str) -> Reward:
        try:
            cases = repair_cases(task["language"], task["test_program"])
        except (ValueError, SyntaxError) as exc:
            return Reward(0.0, "bad_task", str(exc))
        try:
            fixed = apply_edits(task["program"], answer)
        except ValueError as exc:
            return Reward(0.0, "no_apply", str(exc)[:200])
        calls, expected = [c for c, _ in cases], [e for _, e in cases]
        got, why = run_cases(self.sandbox, task["language"], fixed, calls, self.timeout_s)
        if got is None:
            return Reward(0.0, "run_failed", why)
        right = [g == e for g, e in zip(got, expected)]
        if all(right):
            return Reward(1.0, "fixed")
        before = self._mutant_results(task, calls)
        was_right = [g == e for g, e in zip(before, expected)] if before is not None else [False] * len(calls)
        failing = [i for i, ok in enumerate(was_right) if not ok and f"solve({calls[i]})" not in task.get("prompt", "")]
        passing = [i for i, ok in enumerate(was_right) if ok]
        fixed_share = sum(right[i] for i in failing) / len(failing) if failing else 0.0
        kept_share = sum(right[i] for i in passing) / len(passing) if passing else 1.0
        value = FORMAT + (1 - FORMAT) * PARTIAL * fixed_share * kept_share
        return Reward(value, "partial" if fixed_share else "unchanged",
                      f"fixed {fixed_share:.2f} of failing, kept {kept_share:.2f} of passing")


def task_reward(repair: RepairRewards, task: dict, answer: str) -> Reward:
    if task["task_type"] == "exec_predict":
        return exec_reward(task["answer"], answer)
    if task["task_type"] == "repair":
        return repair(task, answer)
    raise ValueError(f"task {task['task_id']}: no reward for task type {task['task_type']!r}")


def episode_reward(episode) -> Reward:
    """The reward of an agent episode (an agents.episode_rl.EpisodeSample) from its verdict."""
    v = episode.verdict or {}
    if not episode.graded_change:
        return Reward(0.0, "no_patch", episode.status)
    if v.get("status") not in ("ok", "failed"):
        return Reward(0.0, "run_failed", str(v.get("status", "not verified")))
    if v.get("resolved"):
        return Reward(1.0, "fixed")
    f2p, p2p = v.get("fail_to_pass") or {}, v.get("pass_to_pass") or {}
    if not f2p:  # graded by its whole suite: the format reward only when pytest's report was read
        if not v.get("tests"):
            return Reward(0.0, "run_failed", "no test report")
        return Reward(FORMAT, "unchanged", "not resolved; the task is graded by its whole suite")
    fixed_share = sum(o == "PASSED" for o in f2p.values()) / len(f2p)
    kept_share = sum(o == "PASSED" for o in p2p.values()) / len(p2p) if p2p else 1.0
    value = FORMAT + (1 - FORMAT) * PARTIAL * fixed_share * kept_share
    return Reward(value, "partial" if fixed_share else "unchanged",
                  f"fixed {fixed_share:.2f} of FAIL_TO_PASS, kept {kept_share:.2f} of PASS_TO_PASS")
