"""resources/settings.py: one registry of settings, typed reads that refuse undeclared names, config
defaults read when a run builds its config, and the README table generated from the registry."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from resources import settings
from resources.settings import GROUPS, SETTINGS, UnknownSetting, env_bool, env_fields, env_float, env_int, env_str

REPO_ROOT = Path(__file__).resolve().parents[2]
CODE_FOLDERS = ("hrm_assets", "sensors", "evals", "datagen", "training", "resources", "hrm_cli")
READ_FUNCTIONS = {"env_str": str, "env_int": int, "env_float": float, "env_bool": bool, "from_env": None,
                  "declared": None, "value": None}
# Environment reads that are not settings: building a child process's environment, the program that runs
# inside the jail (it imports nothing of the project), torchrun's rank, and variables of other tools.
NOT_SETTINGS = (
    ("*", "{**os.environ"),
    ("evals/lcb/jail_runner.py", ""),
    ("training/phases.py", 'os.environ.get("PYTHONPATH")'),
    ("training/run.py", 'os.environ.get("RANK", "0")'),
    ("hrm_assets/expectations.py", 'os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")'),
    ("hrm_cli/materialize.py", 'os.environ.setdefault("DAGSTER_HOME"'),
    ("hrm_cli/materialize.py", 'os.environ["DAGSTER_HOME"]'),
)
# HRM_* words in the docs that name no setting: the folder a jailed test script writes its report to.
NOT_SETTING_WORDS = {"HRM_REPORT_DIR", "HRM_PYTEST_DONE"}  # a jail variable; the pytest runner's done line


def python_files(root: Path = REPO_ROOT):
    for folder in CODE_FOLDERS:
        yield from sorted((root / folder).rglob("*.py"))


# --- the registry ------------------------------------------------------------------------------
def test_each_setting_is_declared_once_with_a_type_default_and_meaning():
    assert len(SETTINGS) == len(settings._DECLARED)
    for s in settings._DECLARED:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]+", s.name), s.name
        assert s.kind in (str, int, float, bool), s.name
        assert type(s.default) is s.kind, f"{s.name}: default {s.default!r} is not {s.kind.__name__}"
        assert s.meaning and "\n" not in s.meaning, s.name
    assert not set(SETTINGS) & {f"{g.prefix}{f.upper()}" for g in GROUPS.values() for f in _group_fields(g)}


def _group_fields(group) -> list[str]:
    module, _, cls = group.owner.rpartition(".")
    return list(getattr(__import__(module, fromlist=[cls]), cls).model_fields)


def test_an_undeclared_name_is_refused(monkeypatch):
    monkeypatch.setenv("HRM_NOT_A_SETTING", "1")
    for read in (env_str, env_int, env_float, env_bool, settings.value, settings.from_env):
        with pytest.raises(UnknownSetting, match="HRM_NOT_A_SETTING is not a declared setting"):
            read("HRM_NOT_A_SETTING")
    with pytest.raises(UnknownSetting, match="HRM_NOPE_"):
        env_fields("HRM_NOPE_", ["concurrency"])


def test_a_setting_read_as_another_type_is_refused():
    with pytest.raises(TypeError, match="HRM_TRAIN_LR is declared as float, read as int"):
        env_int("HRM_TRAIN_LR")
    with pytest.raises(TypeError, match="HRM_LCB_SOURCE is declared as str, read as bool"):
        env_bool("HRM_LCB_SOURCE")


def test_values_are_typed_empty_is_unset_and_malformed_names_the_variable(monkeypatch):
    monkeypatch.setenv("HRM_TRAIN_LR", "0.01")
    monkeypatch.setenv("HRM_TRAIN_BATCH_SIZE", "3")
    monkeypatch.setenv("HRM_MODEL_PRESET", "")
    assert env_float("HRM_TRAIN_LR") == 0.01 and env_int("HRM_TRAIN_BATCH_SIZE") == 3
    assert env_str("HRM_MODEL_PRESET") == "cpu-default"
    for raw, expected in (("1", True), ("0", False), ("true", True), ("No", False), ("", False)):
        monkeypatch.setenv("HRM_WANDB", raw)
        assert env_bool("HRM_WANDB") is expected, raw
    monkeypatch.setenv("HRM_WANDB", "maybe")
    with pytest.raises(ValueError, match=r"HRM_WANDB='maybe': expected 1 or 0"):
        env_bool("HRM_WANDB")
    monkeypatch.setenv("HRM_TRAIN_BATCH_SIZE", "16k")
    with pytest.raises(ValueError, match=r"HRM_TRAIN_BATCH_SIZE='16k': expected an integer"):
        env_int("HRM_TRAIN_BATCH_SIZE")


def test_a_group_reads_only_the_fields_of_its_owner(monkeypatch):
    from resources.sandbox import default_sandbox

    monkeypatch.setenv("HRM_SANDBOX_CONCURRENCY", "3")
    monkeypatch.setenv("HRM_SANDBOX_TIMEOUT_S", "")
    monkeypatch.setenv("HRM_SANDBOX_NO_SUCH_FIELD", "1")
    assert env_fields("HRM_SANDBOX_", ["concurrency", "timeout_s", "no_such"]) == {"concurrency": "3"}
    sandbox = default_sandbox()
    assert sandbox.concurrency == 3 and sandbox.timeout_s == 60.0


def test_defaults_that_repeat_a_code_constant_equal_it():
    from datagen import pipeline as datagen_pipeline
    from datagen.swe.repos import DEFAULT_REPO_SPECS
    from evals import pipeline as evals_pipeline
    from evals.polyglot.exercises import UPSTREAM

    assert SETTINGS["HRM_DECONTAM_TABLES"].default == ",".join(datagen_pipeline.BENCHMARK_TABLES)
    assert SETTINGS["HRM_TASK_TABLES"].default == ",".join(datagen_pipeline.TASK_TABLES)
    assert SETTINGS["HRM_REPORT_MODELS"].default == ",".join(evals_pipeline.MODELS)
    assert UPSTREAM == SETTINGS["HRM_POLYGLOT_SOURCE"].default
    assert all(spec.split("==")[0] in SETTINGS["HRM_SWE_REPOS"].meaning for spec in DEFAULT_REPO_SPECS)


# --- asset configs read the environment when they are built ----------------------------------
def test_asset_config_defaults_are_read_when_the_config_is_built(monkeypatch):
    from hrm_assets import lcb, polyglot, swe, training

    monkeypatch.delenv("HRM_LCB_START_DATE", raising=False)
    assert lcb.LcbWindowConfig().start_date == ""
    monkeypatch.setenv("HRM_LCB_START_DATE", "2025-01-01")
    monkeypatch.setenv("HRM_POLYGLOT_SOURCE", "/srv/polyglot.bundle")
    monkeypatch.setenv("HRM_SWE_SEED", "7")
    monkeypatch.setenv("HRM_TRAIN_QAT", "1")
    assert lcb.LcbWindowConfig().start_date == "2025-01-01"
    assert polyglot.PolyglotSourceConfig().source == "/srv/polyglot.bundle"
    assert swe.SweTasksConfig().seed == 7
    assert training.CheckpointConfig().qat is True
    assert lcb.LcbWindowConfig(start_date="2024-06-01").start_date == "2024-06-01"  # run config wins


def test_a_run_reads_the_environment_of_its_own_time(monkeypatch):
    """Through Dagster: the variable is set after the asset module loaded and is still what the run sees."""
    from hrm_assets.lcb import LcbWindowConfig

    @dg.asset
    def window(config: LcbWindowConfig) -> dict:
        return {"start": config.start_date, "end": config.end_date}

    monkeypatch.setenv("HRM_LCB_START_DATE", "2025-02-03")
    monkeypatch.delenv("HRM_LCB_END_DATE", raising=False)
    result = dg.materialize([window])
    assert result.output_for_node("window") == {"start": "2025-02-03", "end": ""}
    result = dg.materialize([window], run_config={"ops": {"window": {"config": {"end_date": "2025-03-01"}}}})
    assert result.output_for_node("window") == {"start": "2025-02-03", "end": "2025-03-01"}


def test_every_config_field_declares_its_setting(monkeypatch):
    """Each dg.Config field whose default is a setting names it in its description, and its default is the
    registry's when the variable is unset."""
    from hrm_assets.definitions import _asset_modules

    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    seen = set()
    for module in _asset_modules():
        for cls in vars(module).values():
            if not (isinstance(cls, type) and issubclass(cls, dg.Config) and cls.__module__ == module.__name__):
                continue
            built = cls()
            for field_name, field in cls.model_fields.items():
                m = re.search(r"\(default: \$(\w+)\)", field.description or "")
                if m:
                    seen.add(m.group(1))
                    assert getattr(built, field_name) == SETTINGS[m.group(1)].default, (cls, field_name)
    assert len(seen) > 60, seen


# --- no other way to read a setting --------------------------------------------------------------
def _environ_uses(path: Path) -> list[tuple[int, str]]:
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os" \
                and node.attr in ("environ", "getenv", "environb", "putenv"):
            found.append((node.lineno, lines[node.lineno - 1].strip()))
    return sorted(found)


def environment_reads_outside_the_registry(root: Path = REPO_ROOT) -> list[str]:
    found = []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        if rel == "resources/settings.py":
            continue
        for lineno, line in _environ_uses(path):
            if not any(where in ("*", rel) and what in line for where, what in NOT_SETTINGS):
                found.append(f"{rel}:{lineno}: {line}")
    return found


def test_no_module_reads_the_environment_except_through_the_registry():
    assert environment_reads_outside_the_registry() == []


def test_the_environment_scan_finds_a_raw_read(tmp_path):
    (tmp_path / "sensors").mkdir()
    (tmp_path / "sensors" / "schedules.py").write_text(
        'import os\nCRON = os.environ.get("HRM_NIGHTLY_CRON", "0 1 * * *")\nTZ = os.getenv("HRM_SCHEDULE_TZ")\n'
        'env = {**os.environ, "LANG": "C"}\n')
    assert environment_reads_outside_the_registry(tmp_path) == [
        'sensors/schedules.py:2: CRON = os.environ.get("HRM_NIGHTLY_CRON", "0 1 * * *")',
        'sensors/schedules.py:3: TZ = os.getenv("HRM_SCHEDULE_TZ")']


def test_every_literal_name_read_in_code_is_declared_with_that_type():
    wrong = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in READ_FUNCTIONS
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                continue
            name, kind = node.args[0].value, READ_FUNCTIONS[node.func.id]
            where = f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
            if name not in SETTINGS:
                wrong.append(f"{where}: {name} is not declared")
            elif kind is not None and SETTINGS[name].kind is not kind:
                wrong.append(f"{where}: {node.func.id}({name}) but it is declared {SETTINGS[name].kind.__name__}")
    assert wrong == []


def test_the_docs_name_only_declared_settings():
    group_names = {f"{g.prefix}{f.upper()}" for g in GROUPS.values() for f in _group_fields(g)}
    unknown = set()
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for word in re.findall(r"\bHRM_[A-Z0-9_]*", path.read_text()):
            if word.endswith("_"):  # a family written as HRM_LCB_* or HRM_SANDBOX_<FIELD>
                known = any(n.startswith(word) for n in SETTINGS) or word in GROUPS
            else:
                known = word in SETTINGS or word in group_names or word in NOT_SETTING_WORDS
            if not known:
                unknown.add(f"{path.name}: {word}")
    assert sorted(unknown) == []


# --- the README's configuration table --------------------------------------------------------
BEGIN, END = "<!-- settings table: generated by `python -m resources.settings --markdown` -->", \
    "<!-- end of settings table -->"


def table_problems(readme: str) -> list[str]:
    """What differs between the README's table and the registry (empty when they agree)."""
    if BEGIN not in readme or END not in readme:
        return ["the README has no generated settings table"]
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    rows = {}
    for line in block.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[cells[0].strip("`")] = cells[1]
    expected = {s.name: settings.shown_default(s) for s in SETTINGS.values()}
    expected.update({f"{g.prefix}<FIELD>": f"each field's default in `{g.owner}`" for g in GROUPS.values()})
    problems = [f"missing from the README: {n}" for n in sorted(set(expected) - set(rows))]
    problems += [f"not a setting: {n}" for n in sorted(set(rows) - set(expected))]
    problems += [f"{n}: README says {rows[n]}, the registry {expected[n]}"
                 for n in sorted(set(rows) & set(expected)) if rows[n] != expected[n]]
    if not problems and block != settings.markdown_table():
        problems.append("the table's text differs from `python -m resources.settings --markdown`")
    return problems


def test_readme_table_lists_exactly_the_registry():
    assert table_problems((REPO_ROOT / "README.md").read_text()) == []


def test_a_stale_readme_table_is_detected():
    readme = (REPO_ROOT / "README.md").read_text()
    dropped = "\n".join(line for line in readme.splitlines() if not line.startswith("| `HRM_SWE_SEED`"))
    assert table_problems(dropped) == ["missing from the README: HRM_SWE_SEED"]
    changed = readme.replace("| `HRM_TRAIN_LR` | `0.002` |", "| `HRM_TRAIN_LR` | `0.001` |")
    assert table_problems(changed) == ["HRM_TRAIN_LR: README says `0.001`, the registry `0.002`"]
    extra = readme.replace(END, "| `HRM_GHOST` | `1` | gone |\n" + END)
    assert table_problems(extra) == ["not a setting: HRM_GHOST"]
    reworded = readme.replace("| seed of training |", "| the seed |")
    assert table_problems(reworded) == ["the table's text differs from `python -m resources.settings --markdown`"]


def test_the_command_prints_the_table():
    proc = subprocess.run([sys.executable, "-m", "resources.settings", "--markdown"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == settings.markdown_table()
    assert "<repo>/.hrm_data" in proc.stdout and str(REPO_ROOT) not in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "resources.settings"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
