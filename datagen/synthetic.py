"""Synthetic tasks a tiny model can learn, each with ground truth from RUNNING code in the Sandbox.

- Execution prediction: a seeded generator of small programs (Python and JavaScript) from named
  templates; the answer is the program's real stdout.
- Repair: a correct function plus a test (expected values come from running the correct function),
  mutated by one of: flipped operator, off-by-one literal, wrong variable. The mutant must fail the
  test (its failing output goes in the prompt); the answer is a SEARCH/REPLACE block that is applied
  to the mutant and must make the test pass again. The block is written and applied by `model.edits`,
  the format the model's tokenizer, decoder and validator use. A model's repair is graded from outside
  its process (`datagen.repair_grading.repair_verdict`), which also checks each reference fix here.

Two held-out splits, both with split "test" and told apart by the `heldout` column:
- "instances": new programs from the training templates (the in-distribution signal);
- "templates": every task of a held-out template (generalisation to program shapes never trained on).
Each is drawn from its own seeded stream, before the training tasks, and no held-out task shows a program
(normalised by `program_key`) that a training or validation task shows.

Programs run in batches (`datagen.batch_run`): one jailed interpreter runs a few hundred of them.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from datagen.batch_run import ProgramRun, run_programs
from datagen.repair_grading import repair_verdict
from model.edits import EditBlock, apply_edits, format_edit_blocks

LANGUAGES = ("python", "javascript")
FILE_NAMES = {"python": "main.py", "javascript": "main.js"}

_NAMES = ("xs", "nums", "values", "items", "data")
_ACC = ("total", "acc", "result", "count", "out")
_WORDS = ("apple", "banana", "cherry", "delta", "echo", "gamma", "kiwi", "lemon", "mango", "orbit", "pixel",
          "quartz", "river", "sigma", "tango", "vector", "zebra")


@dataclass
class Template:
    name: str
    stage: int  # curriculum stage: 1 basic syntax and patterns, 2 algorithmic reasoning
    render: Callable[[random.Random, str], str]


def _ints(rng, n, lo=-9, hi=20):
    return [rng.randint(lo, hi) for _ in range(n)]


def _list(xs, language):
    return "[" + ", ".join(str(x) for x in xs) + "]"


# --- execution-prediction templates: render(rng, language) -> a program that prints its answer -----------
def _arith(rng, lang):
    a, b, c = rng.randint(1, 50), rng.randint(1, 50), rng.randint(1, 9)
    op1, op2 = rng.choice("+-*"), rng.choice("+-*")
    if lang == "python":
        return f"a = {a}\nb = {b}\nc = {c}\nprint(a {op1} b {op2} c)\n"
    return f"const a = {a};\nconst b = {b};\nconst c = {c};\nconsole.log(a {op1} b {op2} c);\n"


def _string_ops(rng, lang):
    w, k = rng.choice(_WORDS), rng.randint(1, 4)
    op = rng.choice(["reverse", "upper", "slice", "len"])
    py = {"reverse": "s[::-1]", "upper": "s.upper()", "slice": f"s[{k}:]", "len": "len(s) * 2"}[op]
    js = {"reverse": "s.split('').reverse().join('')", "upper": "s.toUpperCase()", "slice": f"s.slice({k})",
          "len": "s.length * 2"}[op]
    return f's = "{w}"\nprint({py})\n' if lang == "python" else f'const s = "{w}";\nconsole.log({js});\n'


def _list_index(rng, lang):
    xs = _ints(rng, rng.randint(4, 7))
    i, j = rng.randrange(len(xs)), rng.randrange(len(xs))
    n = rng.choice(_NAMES)
    if lang == "python":
        return f"{n} = {_list(xs, lang)}\nprint({n}[{i}] + {n}[{j}])\n"
    return f"const {n} = {_list(xs, lang)};\nconsole.log({n}[{i}] + {n}[{j}]);\n"


def _conditional(rng, lang):
    x, k = rng.randint(-10, 30), rng.randint(0, 20)
    a, b = rng.sample(_WORDS, 2)
    if lang == "python":
        return f'x = {x}\nif x > {k}:\n    print("{a}")\nelse:\n    print("{b}")\n'
    return f'const x = {x};\nif (x > {k}) {{\n  console.log("{a}");\n}} else {{\n  console.log("{b}");\n}}\n'


def _loop_sum(rng, lang):
    lo, hi, m = rng.randint(0, 5), rng.randint(8, 25), rng.randint(2, 5)
    t = rng.choice(_ACC)
    if lang == "python":
        return f"{t} = 0\nfor i in range({lo}, {hi}):\n    if i % {m} == 0:\n        {t} += i\nprint({t})\n"
    return (f"let {t} = 0;\nfor (let i = {lo}; i < {hi}; i++) {{\n  if (i % {m} === 0) {{\n    {t} += i;\n  }}\n}}\n"
            f"console.log({t});\n")


def _collatz(rng, lang):
    n = rng.randint(2, 40)
    if lang == "python":
        return (f"n = {n}\nsteps = 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\n"
                f"print(steps)\n")
    return (f"let n = {n};\nlet steps = 0;\nwhile (n !== 1) {{\n  n = n % 2 === 0 ? n / 2 : 3 * n + 1;\n  steps++;\n}}\n"
            f"console.log(steps);\n")


def _func_call(rng, lang):
    a, b, c = rng.randint(1, 5), rng.randint(-5, 5), rng.randint(-3, 6)
    if lang == "python":
        return f"def f(x):\n    return x * {a} + {b}\n\nprint(f(f({c})))\n"
    return f"function f(x) {{\n  return x * {a} + {b};\n}}\nconsole.log(f(f({c})));\n"


def _recursion(rng, lang):
    kind, n = rng.choice(["fib", "fact", "sumdigits"]), rng.randint(3, 10)
    if kind == "sumdigits":
        n = rng.randint(10, 99999)
    py = {"fib": "def g(n):\n    if n < 2:\n        return n\n    return g(n - 1) + g(n - 2)\n",
          "fact": "def g(n):\n    if n <= 1:\n        return 1\n    return n * g(n - 1)\n",
          "sumdigits": "def g(n):\n    if n < 10:\n        return n\n    return n % 10 + g(n // 10)\n"}[kind]
    js = {"fib": "function g(n) {\n  if (n < 2) return n;\n  return g(n - 1) + g(n - 2);\n}\n",
          "fact": "function g(n) {\n  if (n <= 1) return 1;\n  return n * g(n - 1);\n}\n",
          "sumdigits": "function g(n) {\n  if (n < 10) return n;\n  return n % 10 + g(Math.floor(n / 10));\n}\n"}[kind]
    return f"{py}\nprint(g({n}))\n" if lang == "python" else f"{js}console.log(g({n}));\n"


def _char_count(rng, lang):
    w = rng.choice(_WORDS) + rng.choice(_WORDS)
    c = rng.choice(w)
    if lang == "python":
        return f's = "{w}"\ncount = 0\nfor ch in s:\n    if ch == "{c}":\n        count += 1\nprint(count)\n'
    return (f'const s = "{w}";\nlet count = 0;\nfor (const ch of s) {{\n  if (ch === "{c}") {{\n    count++;\n  }}\n}}\n'
            f"console.log(count);\n")


def _filter_map(rng, lang):
    xs, k, r = _ints(rng, rng.randint(4, 8), 0, 15), rng.randint(2, 4), rng.randint(0, 1)
    n = rng.choice(_NAMES)
    if lang == "python":
        return f"{n} = {_list(xs, lang)}\nys = [x * {k} for x in {n} if x % 2 == {r}]\nprint(sum(ys))\n"
    return (f"const {n} = {_list(xs, lang)};\nconst ys = {n}.filter(x => x % 2 === {r}).map(x => x * {k});\n"
            f"console.log(ys.reduce((a, b) => a + b, 0));\n")


def _pair_count(rng, lang):
    xs, t = _ints(rng, rng.randint(4, 7), 0, 9), rng.randint(4, 14)
    if lang == "python":
        return (f"xs = {_list(xs, lang)}\npairs = 0\nfor i in range(len(xs)):\n    for j in range(i + 1, len(xs)):\n"
                f"        if xs[i] + xs[j] == {t}:\n            pairs += 1\nprint(pairs)\n")
    return (f"const xs = {_list(xs, lang)};\nlet pairs = 0;\nfor (let i = 0; i < xs.length; i++) {{\n"
            f"  for (let j = i + 1; j < xs.length; j++) {{\n    if (xs[i] + xs[j] === {t}) {{\n      pairs++;\n    }}\n"
            f"  }}\n}}\nconsole.log(pairs);\n")


def _string_build(rng, lang):
    w, k = rng.choice(_WORDS), rng.randint(2, 3)
    if lang == "python":
        return f's = "{w}"\nout = ""\nfor i, ch in enumerate(s):\n    if i % {k} == 0:\n        out += ch\nprint(out)\n'
    return (f'const s = "{w}";\nlet out = "";\nfor (let i = 0; i < s.length; i++) {{\n  if (i % {k} === 0) {{\n'
            f"    out += s[i];\n  }}\n}}\nconsole.log(out);\n")


EXEC_TEMPLATES = [Template("arith", 1, _arith), Template("string_ops", 1, _string_ops),
                  Template("list_index", 1, _list_index), Template("conditional", 1, _conditional),
                  Template("loop_sum", 2, _loop_sum), Template("collatz", 2, _collatz),
                  Template("func_call", 2, _func_call), Template("recursion", 2, _recursion),
                  Template("char_count", 2, _char_count), Template("filter_map", 2, _filter_map),
                  Template("pair_count", 2, _pair_count), Template("string_build", 2, _string_build)]


# --- repair templates: a correct function `solve` and argument lists for its test ------------------------
@dataclass
class RepairSource:
    code: str  # the function definition(s)
    calls: list[str]  # argument lists, as source text


def _r_sum_above(rng, lang):
    k, n, t = rng.randint(0, 6), rng.choice(_NAMES), rng.choice(_ACC)
    calls = [_list(_ints(rng, rng.randint(3, 6), -5, 12), lang) for _ in range(3)]
    if lang == "python":
        code = f"def solve({n}):\n    {t} = 0\n    for x in {n}:\n        if x > {k}:\n            {t} += x\n    return {t}\n"
    else:
        code = (f"function solve({n}) {{\n  let {t} = 0;\n  for (const x of {n}) {{\n    if (x > {k}) {{\n"
                f"      {t} += x;\n    }}\n  }}\n  return {t};\n}}\n")
    return RepairSource(code, calls)


def _r_running_max(rng, lang):
    n = rng.choice(_NAMES)
    calls = [_list(_ints(rng, rng.randint(3, 6), -20, 40), lang) for _ in range(3)]
    if lang == "python":
        code = f"def solve({n}):\n    best = {n}[0]\n    for i in range(1, len({n})):\n        if {n}[i] > best:\n            best = {n}[i]\n    return best\n"
    else:
        code = (f"function solve({n}) {{\n  let best = {n}[0];\n  for (let i = 1; i < {n}.length; i++) {{\n"
                f"    if ({n}[i] > best) {{\n      best = {n}[i];\n    }}\n  }}\n  return best;\n}}\n")
    return RepairSource(code, calls)


def _r_product_range(rng, lang):
    calls = [str(rng.randint(2, 8)) for _ in range(3)]
    if lang == "python":
        code = "def solve(n):\n    prod = 1\n    for i in range(1, n + 1):\n        prod = prod * i\n    return prod\n"
    else:
        code = "function solve(n) {\n  let prod = 1;\n  for (let i = 1; i <= n; i++) {\n    prod = prod * i;\n  }\n  return prod;\n}\n"
    return RepairSource(code, calls)


def _r_first_multiple(rng, lang):
    k, n = rng.randint(2, 5), rng.choice(_NAMES)
    calls = [_list(_ints(rng, rng.randint(3, 6), 1, 20), lang) for _ in range(3)]
    if lang == "python":
        code = f"def solve({n}):\n    for i in range(len({n})):\n        if {n}[i] % {k} == 0:\n            return i\n    return -1\n"
    else:
        code = (f"function solve({n}) {{\n  for (let i = 0; i < {n}.length; i++) {{\n    if ({n}[i] % {k} === 0) {{\n"
                f"      return i;\n    }}\n  }}\n  return -1;\n}}\n")
    return RepairSource(code, calls)


def _r_count_char(rng, lang):
    c = rng.choice("aeiou")
    calls = [f'"{rng.choice(_WORDS)}{rng.choice(_WORDS)}"' for _ in range(3)]
    if lang == "python":
        code = f'def solve(s):\n    count = 0\n    for ch in s:\n        if ch == "{c}":\n            count = count + 1\n    return count\n'
    else:
        code = (f'function solve(s) {{\n  let count = 0;\n  for (const ch of s) {{\n    if (ch === "{c}") {{\n'
                f"      count = count + 1;\n    }}\n  }}\n  return count;\n}}\n")
    return RepairSource(code, calls)


def _r_clamp(rng, lang):
    lo, hi = rng.randint(-5, 2), rng.randint(5, 12)
    calls = [str(rng.randint(-12, 20)) for _ in range(3)]
    if lang == "python":
        code = f"def solve(x):\n    low = {lo}\n    high = {hi}\n    if x < low:\n        return low\n    if x > high:\n        return high\n    return x\n"
    else:
        code = (f"function solve(x) {{\n  const low = {lo};\n  const high = {hi};\n  if (x < low) {{\n    return low;\n  }}\n"
                f"  if (x > high) {{\n    return high;\n  }}\n  return x;\n}}\n")
    return RepairSource(code, calls)


def _r_sum_pairs(rng, lang):
    n = rng.choice(_NAMES)
    calls = [_list(_ints(rng, rng.randint(3, 6), -5, 9), lang) for _ in range(3)]
    if lang == "python":
        code = (f"def solve({n}):\n    total = 0\n    for i in range(len({n}) - 1):\n        total += {n}[i] * {n}[i + 1]\n"
                f"    return total\n")
    else:
        code = (f"function solve({n}) {{\n  let total = 0;\n  for (let i = 0; i < {n}.length - 1; i++) {{\n"
                f"    total += {n}[i] * {n}[i + 1];\n  }}\n  return total;\n}}\n")
    return RepairSource(code, calls)


REPAIR_TEMPLATES = [Template("sum_above", 3, _r_sum_above), Template("running_max", 3, _r_running_max),
                    Template("product_range", 3, _r_product_range), Template("first_multiple", 3, _r_first_multiple),
                    Template("count_char", 3, _r_count_char), Template("clamp", 3, _r_clamp),
                    Template("sum_pairs", 3, _r_sum_pairs)]
DEFAULT_HELDOUT = ("list_index", "pair_count", "string_build", "first_multiple", "sum_pairs")


# --- mutations -----------------------------------------------------------------------------------------
_OP_FLIPS = [(" + ", " - "), (" - ", " + "), (" * ", " + "), (" < ", " <= "), (" > ", " >= "), (" <= ", " < "),
             (" >= ", " > "), (" == ", " != "), (" === ", " !== "), (" += ", " -= ")]
_INT = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_IDENT = re.compile(r"\b[a-z_][a-z0-9_]*\b")
_KEYWORDS = {"def", "return", "for", "in", "if", "else", "while", "range", "len", "function", "let", "const",
             "of", "solve", "print", "console", "log", "length", "true", "false", "and", "or", "not"}


def mutations(code: str, rng: random.Random) -> list[tuple[str, int, str, str]]:
    """Candidate single-line mutants of the function body: (kind, line index, old line, new line)."""
    out = []
    lines = code.split("\n")
    idents = sorted({m for line in lines for m in _IDENT.findall(line)} - _KEYWORDS)
    for i, line in enumerate(lines):
        if i == 0 or not line.strip() or line.strip() in ("}", "{"):
            continue
        for old, new in _OP_FLIPS:
            if old in line:
                out.append(("flipped operator", i, line, line.replace(old, new, 1)))
        for m in _INT.finditer(line):
            v = int(m.group(1))
            for nv in {v + 1, max(0, v - 1)} - {v}:
                out.append(("off by one", i, line, line[:m.start()] + str(nv) + line[m.end():]))
        used = [m for m in _IDENT.finditer(line) if m.group(0) in idents]
        for m in used:
            for other in idents:
                if other != m.group(0):
                    out.append(("wrong variable", i, line, line[:m.start()] + other + line[m.end():]))
    # round-robin over the kinds, so the cheap-to-find "wrong variable" mutants do not crowd out the rest
    by_kind: dict[str, list] = {}
    for m in out:
        by_kind.setdefault(m[0], []).append(m)
    kinds = sorted(by_kind)
    rng.shuffle(kinds)
    for k in kinds:
        rng.shuffle(by_kind[k])
    return [by_kind[k][i] for i in range(max(map(len, by_kind.values()), default=0)) for k in kinds
            if i < len(by_kind[k])]


def search_replace_block(file_name: str, mutant: str, line_index: int, fixed_line: str) -> tuple[str, list[int]]:
    """The smallest SEARCH/REPLACE block (with context lines until the SEARCH text is unique) that
    turns mutant back into the fixed program, and the 0/1 tags of the mutant's lines it touches."""
    lines = mutant.split("\n")
    last = len(lines) - 2 if len(lines) > 1 and not lines[-1] else len(lines) - 1  # "" after a final "\n" is no line
    lo = hi = line_index
    while True:
        search = "\n".join(lines[lo:hi + 1])
        if mutant.count(search) == 1 or (lo == 0 and hi == last):
            break
        lo, hi = max(0, lo - 1), min(last, hi + 1)
    replace = "\n".join(lines[lo:line_index] + [fixed_line] + lines[line_index + 1:hi + 1])
    block = format_edit_blocks([EditBlock(search, replace)], file_name)
    tags = [1 if i == line_index else 0 for i in range(len(lines))]
    return block, tags


# --- test harnesses ------------------------------------------------------------------------------------
def print_results_program(lang: str, rs: RepairSource) -> str:
    """The correct function plus code that prints each call's result as a source literal."""
    if lang == "python":
        return rs.code + "\n" + "".join(f"print(repr(solve({c})))\n" for c in rs.calls)
    return rs.code + "\n" + "".join(f"console.log(JSON.stringify(solve({c})));\n" for c in rs.calls)


def test_block(lang: str, calls: list[str], expected: list[str]) -> str:
    """Statements that call `solve` on each argument list and fail loudly on a wrong result."""
    if lang == "python":
        body = "".join(f"got = solve({c})\nassert got == {e}, {('solve(' + c + ') returned ')!r} + repr(got) + "
                       f"{(', expected ' + e)!r}\n" for c, e in zip(calls, expected))
        return body
    body = "".join(f"if (JSON.stringify(solve({c})) !== JSON.stringify({e})) {{\n"
                   f"  throw new Error(`solve({c}) returned ${{JSON.stringify(solve({c}))}}, expected {e}`);\n}}\n"
                   for c, e in zip(calls, expected))
    return body


def with_tests(code: str, tests: str) -> str:
    return code + "\n" + tests


# --- generation ----------------------------------------------------------------------------------------
HELDOUT_SPLITS = ("instances", "templates")  # the `heldout` column of split "test" rows


@dataclass
class SyntheticConfig:
    exec_per_template: int = 8  # training tasks per template and language (every validation_every-th: validation)
    repair_per_template: int = 6  # per language
    languages: tuple[str, ...] = LANGUAGES
    heldout_templates: tuple[str, ...] = DEFAULT_HELDOUT
    # tasks of each type in EACH held-out split (instances, templates), spread evenly over the split's
    # templates and languages (rounded up per template and language): n = 120 puts a 95 % interval
    # within about +-9 points
    heldout_exec_tasks: int = 120
    heldout_repair_tasks: int = 120
    validation_every: int = 10  # every n-th training-template task goes to "validation"
    seed: int = 0
    timeout_s: float = 10.0  # the grader's limit on a held-out reference fix (batched programs get _PROGRAM_LIMIT_S)


@dataclass
class SyntheticResult:
    tasks: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)


def program_key(program: str) -> str:
    """A program with every whitespace run collapsed: held-out tasks never share one with training tasks."""
    return " ".join(program.split())


def _templates(templates: list[Template], cfg: SyntheticConfig) -> tuple[list[Template], list[Template]]:
    """(training templates, held-out templates)."""
    return ([t for t in templates if t.name not in cfg.heldout_templates],
            [t for t in templates if t.name in cfg.heldout_templates])


def _per_cell(total: int, templates: list[Template], cfg: SyntheticConfig) -> int:
    cells = len(templates) * len(cfg.languages)
    return math.ceil(total / cells) if cells and total > 0 else 0


def _split(index: int, cfg: SyntheticConfig) -> str:
    return "validation" if cfg.validation_every and index % cfg.validation_every == cfg.validation_every - 1 else "train"


def _task_id(kind: str, template: str, lang: str, source: str) -> str:
    return f"{kind}-{template}-{lang}-{hashlib.sha1(source.encode()).hexdigest()[:10]}"


_MUTANTS_TRIED = 12  # candidate mutants run per task; the first whose test fails is the bug
_MUTANTS_PER_ROUND = 2
_PROGRAM_LIMIT_S = 0.5  # per generated program in a batch; they run in microseconds unless they hang


def _run_all(sandbox, programs: list[tuple[str, str]], timeout_s: float) -> list[ProgramRun]:
    """Run (language, source) programs in batches per language; results in the given order."""
    out: list[ProgramRun | None] = [None] * len(programs)
    for lang in sorted({lang for lang, _ in programs}):
        where = [i for i, (l, _) in enumerate(programs) if l == lang]
        for i, run in zip(where, run_programs(sandbox, lang, [programs[i][1] for i in where], timeout_s)):
            out[i] = run
    return out


def exec_prompt(lang: str, source: str) -> str:
    return f"What does this {lang} program print?\n### {FILE_NAMES[lang]}\n{source}"


def repair_prompt(lang: str, mutant: str, failure: str) -> str:
    return (f"A test of this {lang} function fails. Fix the bug with a SEARCH/REPLACE edit.\n"
            f"### {FILE_NAMES[lang]}\n{mutant}### test output\n{failure}\n")


def _failure_text(run: ProgramRun) -> str:
    return run.error.strip()[:400] or f"{run.status}"


def _draw_programs(rng: random.Random, templates: list[Template], cfg: SyntheticConfig, per_cell: int,
                   heldout: str, taken: set[str]) -> list[tuple[Template, str, str, str]]:
    """per_cell programs per template and language whose keys are not in `taken` (which gains them);
    fewer where a template has run out of new programs."""
    jobs = []
    for t in templates:
        for lang in cfg.languages:
            picked = 0
            for _ in range(per_cell * 20):
                if picked == per_cell:
                    break
                src = t.render(rng, lang)
                if program_key(src) not in taken:
                    taken.add(program_key(src))
                    jobs.append((t, lang, src, heldout))
                    picked += 1
    return jobs


def exec_program_plan(cfg: SyntheticConfig) -> list[tuple[Template, str, str, str]]:
    """(template, language, program, heldout) of every execution-prediction task to run, each split from its
    own seeded stream. The held-out splits are drawn first, so their size does not depend on how many
    training programs a small template has, and training takes only programs neither split shows."""
    train_templates, held_templates = _templates(EXEC_TEMPLATES, cfg)
    taken: set[str] = set()
    jobs = _draw_programs(random.Random(f"exec-instances-{cfg.seed}"), train_templates, cfg,
                          _per_cell(cfg.heldout_exec_tasks, train_templates, cfg), "instances", taken)
    jobs += _draw_programs(random.Random(f"exec-templates-{cfg.seed}"), held_templates, cfg,
                           _per_cell(cfg.heldout_exec_tasks, held_templates, cfg), "templates", taken)
    jobs += _draw_programs(random.Random(f"exec-{cfg.seed}"), train_templates, cfg, cfg.exec_per_template, "", taken)
    return jobs


def generate_exec_tasks(sandbox, cfg: SyntheticConfig) -> SyntheticResult:
    jobs = exec_program_plan(cfg)
    results = _run_all(sandbox, [(lang, src) for _, lang, src, _ in jobs], _PROGRAM_LIMIT_S)
    out = SyntheticResult()
    counters: dict = {}
    for (t, lang, src, heldout), res in zip(jobs, results):
        tid = _task_id("exec", t.name, lang, src)
        if not res.ok:
            out.rejected.append({"task_id": tid, "reason": f"program did not run: {res.status}: {res.error[-300:]}",
                                 "source": src})
            continue
        idx = counters[(t.name, lang, heldout)] = counters.get((t.name, lang, heldout), -1) + 1
        out.tasks.append({"task_id": tid, "task_type": "exec_predict", "template": t.name, "stage": t.stage,
                          "language": lang, "prompt": exec_prompt(lang, src), "answer": res.stdout,
                          "program": src, "test_program": "", "edit_tags": [], "mutation": "",
                          "split": "test" if heldout else _split(idx, cfg), "heldout": heldout,
                          "sandbox_wall_s": 0.0})
    return out


@dataclass
class _RepairJob:
    template: Template
    lang: str
    source: RepairSource
    rng: random.Random  # orders the mutation candidates
    index: int
    heldout: str


def _build_repairs(sandbox, jobs: list[_RepairJob], cfg: SyntheticConfig, taken: frozenset[str] = frozenset(),
                   grade_reference: bool = True) -> list[tuple[dict | None, str]]:
    """(task, "") or (None, reason) per job, each with a mutant whose key is not in `taken`.

    Every program runs in the Sandbox, batched: the correct function (its results become the test's
    expected values), up to _MUTANTS_TRIED mutants against that test (the first that fails is the bug) and
    the reference fix against the test. With grade_reference the reference fix also goes through the
    model's grader (`repair_verdict`), which must accept it."""
    truths = _run_all(sandbox, [(j.lang, print_results_program(j.lang, j.source)) for j in jobs], _PROGRAM_LIMIT_S)
    built: list[tuple[dict | None, str]] = [(None, "")] * len(jobs)
    candidates: dict[int, list[tuple[str, int, str, str, str]]] = {}  # job: (kind, line, old line, mutant, tests)
    for n, (job, truth) in enumerate(zip(jobs, truths)):
        expected = truth.stdout.strip().splitlines()
        if not truth.ok:
            built[n] = (None, f"correct program did not run: {truth.status}: {truth.error[-300:]}")
            continue
        if len(expected) != len(job.source.calls):
            built[n] = (None, f"expected {len(job.source.calls)} result lines, got {len(expected)}")
            continue
        tests = test_block(job.lang, job.source.calls, expected)
        built[n] = (None, "no mutation made the test fail")
        tried = 0
        for kind, line_index, old, new in mutations(job.source.code, job.rng):
            if tried == _MUTANTS_TRIED:
                break
            lines = job.source.code.split("\n")
            lines[line_index] = new
            mutant = "\n".join(lines)
            if program_key(mutant) in taken:  # another split already shows this mutant
                continue
            tried += 1
            candidates.setdefault(n, []).append((kind, line_index, old, mutant, tests))
    chosen: dict[int, dict] = {}
    # rounds of a few candidates per job, so a job stops at its first failing mutant: a mutant that hangs
    # costs its whole time limit
    for first in range(0, _MUTANTS_TRIED, _MUTANTS_PER_ROUND):
        batch = [(n, c) for n, cs in candidates.items() if n not in chosen for c in cs[first:first + _MUTANTS_PER_ROUND]]
        runs = _run_all(sandbox, [(jobs[n].lang, with_tests(c[3], c[4])) for n, c in batch], _PROGRAM_LIMIT_S)
        for (n, (kind, line_index, old, mutant, tests)), run in zip(batch, runs):
            if n in chosen or run.status != "failed":  # passes (equivalent mutant) or hangs: not a clean bug
                continue
            job = jobs[n]
            answer, tags = search_replace_block(FILE_NAMES[job.lang], mutant, line_index, old)
            if apply_edits(mutant, answer) != job.source.code:
                continue
            chosen[n] = {"answer": answer, "edit_tags": tags, "mutation": kind, "mutant": mutant,
                         "failure": _failure_text(run), "tests": tests}
    order = sorted(chosen)
    fixed = _run_all(sandbox, [(jobs[n].lang, with_tests(apply_edits(chosen[n]["mutant"], chosen[n]["answer"]),
                                                          chosen[n]["tests"])) for n in order], _PROGRAM_LIMIT_S)
    for n, run in zip(order, fixed):
        built[n] = (chosen[n], "") if run.ok else (None, f"fixed program fails: {run.status}: {run.error[-300:]}")
    if grade_reference:
        graded = [n for n in order if built[n][0] is not None]
        verdicts = sandbox.map(lambda n: repair_verdict(sandbox, jobs[n].lang, chosen[n]["mutant"], chosen[n]["answer"],
                                                        chosen[n]["tests"], cfg.timeout_s), graded)
        for n, (ok, why) in zip(graded, verdicts):
            if not ok:  # the grader must accept the reference fix
                built[n] = (None, f"fixed program fails: {why}")
    return built


def _build_repair(sandbox, t: Template, lang: str, rs: RepairSource, rng: random.Random, cfg: SyntheticConfig,
                  taken: frozenset[str] = frozenset()):
    """One repair task (see _build_repairs), or (None, reason)."""
    return _build_repairs(sandbox, [_RepairJob(t, lang, rs, rng, 0, "")], cfg, taken)[0]


def _repair_jobs(rng: random.Random, cells: list[tuple[Template, str, int]], cfg: SyntheticConfig, heldout: str,
                 first_index: int = 0) -> list[_RepairJob]:
    """`count` jobs for each (template, language, count)."""
    tag = f"{heldout}-" if heldout else ""
    return [_RepairJob(t, lang, t.render(rng, lang), random.Random(f"{cfg.seed}-{tag}{t.name}-{lang}-{i}"), i, heldout)
            for t, lang, count in cells for i in range(first_index, first_index + count)]


def _repair_rows(jobs: list[_RepairJob], built: list[tuple], cfg: SyntheticConfig, taken: set[str],
                 out: SyntheticResult) -> None:
    """Append the built tasks of `jobs` to out; a held-out task whose mutant's key is in `taken` (an
    earlier held-out task's) is dropped, and each kept one joins `taken`; a task that repeats one in out is
    dropped."""
    ids = {t["task_id"] for t in out.tasks}
    for job, (task, reason) in zip(jobs, built):
        t, lang, rs, heldout = job.template, job.lang, job.source, job.heldout
        tid = _task_id("repair", t.name, lang, rs.code + "".join(rs.calls) + (task["mutant"] if task else ""))
        if task is None:
            out.rejected.append({"task_id": tid, "reason": reason, "source": rs.code})
            continue
        if tid in ids:  # the same function, calls and mutant again (a template with few variants)
            continue
        key = program_key(task["mutant"])
        if heldout and key in taken:
            out.rejected.append({"task_id": tid, "reason": "mutant repeats an earlier task's", "source": task["mutant"]})
            continue
        taken.add(key)
        ids.add(tid)
        out.tasks.append({"task_id": tid, "task_type": "repair", "template": t.name, "stage": t.stage,
                          "language": lang, "prompt": repair_prompt(lang, task["mutant"], task["failure"]),
                          "answer": task["answer"], "program": task["mutant"], "test_program": task["tests"],
                          "edit_tags": task["edit_tags"], "mutation": task["mutation"],
                          "split": "test" if heldout else _split(job.index, cfg), "heldout": heldout,
                          "sandbox_wall_s": 0.0})


_REPAIR_ROUNDS = 3  # held-out rounds: a later round redraws the tasks an earlier one lost to repeated mutants


def generate_repair_tasks(sandbox, cfg: SyntheticConfig) -> SyntheticResult:
    """Both held-out splits first, then the training tasks, whose mutants avoid every held-out task's.
    Only held-out reference fixes go through the model's grader (training ones are checked by running)."""
    train_templates, held_templates = _templates(REPAIR_TEMPLATES, cfg)
    out, taken = SyntheticResult(), set()
    for heldout, templates, rng in (
            ("instances", train_templates, random.Random(f"repair-instances-{cfg.seed}")),
            ("templates", held_templates, random.Random(f"repair-templates-{cfg.seed}"))):
        want = _per_cell(cfg.heldout_repair_tasks, templates, cfg)
        drawn: dict[tuple, int] = {}
        for _ in range(_REPAIR_ROUNDS):
            have = Counter((t["template"], t["language"]) for t in out.tasks if t["heldout"] == heldout)
            cells = [(t, lang, want - have[(t.name, lang)]) for t in templates for lang in cfg.languages
                     if want > have[(t.name, lang)]]
            if not cells:
                break
            jobs = []
            for t, lang, count in cells:
                jobs += _repair_jobs(rng, [(t, lang, count)], cfg, heldout, drawn.get((t.name, lang), 0))
                drawn[(t.name, lang)] = drawn.get((t.name, lang), 0) + count
            _repair_rows(jobs, _build_repairs(sandbox, jobs, cfg, frozenset(taken)), cfg, taken, out)
    cells = [(t, lang, cfg.repair_per_template) for t in train_templates for lang in cfg.languages]
    jobs = _repair_jobs(random.Random(f"repair-{cfg.seed}"), cells, cfg, "")
    built = _build_repairs(sandbox, jobs, cfg, frozenset(taken), grade_reference=False)
    _repair_rows(jobs, built, cfg, taken, out)
    return out


def generate_synthetic_tasks(sandbox, cfg: SyntheticConfig) -> SyntheticResult:
    """Execution-prediction and repair tasks, with ground truth from the sandbox."""
    ex, rep = generate_exec_tasks(sandbox, cfg), generate_repair_tasks(sandbox, cfg)
    return SyntheticResult(ex.tasks + rep.tasks, ex.rejected + rep.rejected)


def training_leaks(tasks: list[dict]) -> list[dict]:
    """Held-out (split "test") tasks whose program a training or validation task also shows: must be empty."""
    seen = {program_key(t["program"]) for t in tasks if t["split"] != "test"}
    return [t for t in tasks if t["split"] == "test" and program_key(t["program"]) in seen]


# --- grading of model answers (repairs: datagen/repair_grading.py) --------------------------------------
def exec_answer_correct(expected: str, predicted: str) -> bool:
    """Exact match of printed output, ignoring trailing whitespace."""
    return expected.rstrip() == predicted.rstrip()
