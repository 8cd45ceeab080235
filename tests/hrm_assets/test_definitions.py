"""The code location loads, and every folder imports only the layers below it (docs/architecture.md)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_definitions_load():
    from hrm_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.group_name and node.group_name != "default", f"{key} has no stage group"


# Layers, top to bottom: a folder imports only the folders listed for it (and itself).
ALLOWED_IMPORTS = {
    "hrm_cli": {"hrm_assets", "lsp", "agents", "training", "evals", "inference", "datagen", "resources", "model"},
    "bench": {"lsp", "agents", "training", "evals", "inference", "datagen", "resources", "model"},
    "hrm_assets": {"sensors", "agents", "training", "evals", "inference", "datagen", "resources", "model"},
    "sensors": {"training", "evals", "inference", "datagen", "resources", "model"},
    "agents": {"inference", "datagen", "resources", "model"},
    "lsp": {"agents", "inference", "datagen", "resources", "model"},
    "training": {"datagen", "resources", "model"},
    "evals": {"inference", "datagen", "resources", "model"},
    "datagen": {"resources", "model"},
    "inference": {"resources", "model"},
    "resources": set(),
    "model": set(),
}
DAGSTER_FREE = {"model", "datagen", "evals", "training", "inference", "agents", "lsp"}  # the plain pipeline code the assets call
NOT_CODE = {"tests", "scripts", "docs", "deploy"}
HELPER_MODULES = ("hrm_assets.expectations", "hrm_assets.metadata", "hrm_assets.versions")  # asset modules share these


def project_imports(path: Path) -> list[str]:
    """Every module `path` imports, at module level or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def code_folders() -> list[str]:
    return sorted(p.name for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name not in NOT_CODE and any(p.rglob("*.py")))


def layer_violations(root: Path = REPO_ROOT) -> list[str]:
    found = []
    for folder, allowed in ALLOWED_IMPORTS.items():
        for path in sorted((root / folder).rglob("*.py")):
            for name in project_imports(path):
                top = name.split(".")[0]
                if top in ALLOWED_IMPORTS and top != folder and top not in allowed:
                    found.append(f"{path.relative_to(root)} imports {name}")
                if top == "dagster" and folder in DAGSTER_FREE:
                    found.append(f"{path.relative_to(root)} imports dagster")
    for path in sorted((root / "hrm_assets").glob("*.py")):
        if path.stem == "definitions":  # composes asset modules and sensors
            continue
        for name in project_imports(path):
            if name.startswith("hrm_assets") and name not in HELPER_MODULES:
                found.append(f"{path.relative_to(root)} imports {name}: asset modules do not import each other")
            if name.split(".")[0] == "sensors":
                found.append(f"{path.relative_to(root)} imports {name}: only definitions.py loads sensors")
    return found


def test_every_code_folder_has_a_layer():
    assert set(code_folders()) <= set(ALLOWED_IMPORTS), sorted(set(code_folders()) - set(ALLOWED_IMPORTS))


def test_imports_follow_the_layers():
    assert layer_violations() == []


def test_layer_check_catches_a_sensor_that_imports_an_asset_module(tmp_path):
    for folder in ALLOWED_IMPORTS:
        (tmp_path / folder).mkdir()
    (tmp_path / "sensors" / "alerts.py").write_text("def f():\n    from hrm_assets.evaluation import x\n")
    (tmp_path / "model" / "hrm.py").write_text("import dagster\nfrom datagen import synthetic\n")
    (tmp_path / "hrm_assets" / "evaluation.py").write_text("from hrm_assets.training import latest_checkpoint\n")
    assert sorted(layer_violations(tmp_path)) == [
        "hrm_assets/evaluation.py imports hrm_assets.training: asset modules do not import each other",
        "model/hrm.py imports dagster", "model/hrm.py imports datagen",
        "sensors/alerts.py imports hrm_assets.evaluation"]


@pytest.mark.slow
def test_workspace_yaml_loads_with_dagster_cli():
    proc = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
